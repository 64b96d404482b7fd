/**
 * The visited tables: the shared one keeps the one-thread table's contract — for any sequence of arrivals
 * (state, sleep set) both say the same about freshness and what to explore, and the state count agrees —
 * and both hold a state in at most 16 bytes once past their first few hundred states.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CLAIM_BITS, StateTable } from '../../src/explore/stateTable.ts';
import { SharedStateTable } from '../../src/explore/sharedStateTable.ts';

describe('SharedStateTable', () => {
  it('answers every arrival as StateTable does, fingerprint words of 0 included', () => {
    const fingerprint = fc.record({ hi: fc.constantFrom(0, 1, -1, 7, 0x7fffffff, -0x80000000), lo: fc.constantFrom(0, 1, 2, -5, 0x12345678) });
    const arrival = fc.record({ h: fingerprint, sleep: fc.nat({ max: 0xffff_ffff }) });
    fc.assert(
      fc.property(fc.array(arrival, { maxLength: 60 }), (arrivals) => {
        const one = new StateTable(1);
        const shared = SharedStateTable.create(1, 100);
        for (const { h, sleep } of arrivals) {
          const s = Uint32Array.of(sleep);
          const a = new Uint32Array(1);
          const b = new Uint32Array(1);
          expect(shared.arrive(h, s, b)).toBe(one.arrive(h, s, a));
          expect(b).toEqual(a);
        }
        expect(shared.size).toBe(one.size);
      }),
    );
  });

  it('refuses a state bound whose table would not fit, naming the flag', () => {
    expect(() => SharedStateTable.create(1, 2 ** 30)).toThrow(/--max-states 1073741824 needs a shared visited table of \d+\.\d GiB/);
  });
});

/** n distinct pseudo-random fingerprints. */
function* fingerprints(n: number): Generator<{ hi: number; lo: number }> {
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + i) | 0;
    yield { hi: x, lo: i };
  }
}

describe('StateTable', () => {
  it('finds every state it was given and no other, through its growth', () => {
    const t = new StateTable(0);
    const none = new Uint32Array(0);
    for (const h of fingerprints(50_000)) expect(t.arrive(h, none, none)).toBe(true);
    expect(t.size).toBe(50_000);
    for (const h of fingerprints(50_000)) expect(t.arrive(h, none, none)).toBe(false);
    expect(t.arrive({ hi: 0x12345, lo: -1 }, none, none)).toBe(true);
    expect(t.size).toBe(50_001);
  });

  it('keeps a state in at most 16 bytes (a 64-bit fingerprint and a byte of claims, 60–90% full)', () => {
    const t = new StateTable(1);
    const sleep = new Uint32Array(1);
    const explore = new Uint32Array(1);
    let n = 0;
    let worst = 0;
    for (const h of fingerprints(300_000)) {
      t.arrive(h, sleep, explore);
      n++;
      if (n >= 1_000) worst = Math.max(worst, t.bytes / t.size);
    }
    expect(worst).toBeLessThanOrEqual(16);
    expect(t.bytes / t.size).toBeGreaterThanOrEqual(9);
  });

  it(`remembers claims for the first ${CLAIM_BITS} deliverable channels and lets every later visit explore the rest`, () => {
    const t = new StateTable(1);
    const h = { hi: 42, lo: 7 };
    const out = new Uint32Array(1);
    expect(t.arrive(h, Uint32Array.of(~0b11 | 0), out)).toBe(true);
    expect(out[0]).toBe(0b11);
    // Ranks 0 and 1 are claimed; rank 9 is awake but cannot be stored, so it comes back each time.
    expect(t.arrive(h, Uint32Array.of(~(0b111 | (1 << 9)) | 0), out)).toBe(false);
    expect(out[0]).toBe(0b100 | (1 << 9));
    expect(t.arrive(h, Uint32Array.of(~(0b111 | (1 << 9)) | 0), out)).toBe(false);
    expect(out[0]).toBe(1 << 9);
  });
});
