/**
 * The shared visited table keeps the one-thread table's contract: for any sequence of arrivals (state,
 * sleep set) both say the same about freshness and what to explore, and the state count agrees.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { StateTable } from '../../src/explore/stateTable.ts';
import { SharedStateTable } from '../../src/explore/sharedStateTable.ts';

const WORDS = 3;

describe('SharedStateTable', () => {
  it('answers every arrival as StateTable does, fingerprint words of 0 included', () => {
    const fingerprint = fc.record({ hi: fc.constantFrom(0, 1, -1, 7, 0x7fffffff), lo: fc.constantFrom(0, 1, 2, -5, 0x12345678) });
    const arrival = fc.record({ h: fingerprint, sleep: fc.array(fc.nat({ max: 0xffff_ffff }), { minLength: WORDS, maxLength: WORDS }) });
    fc.assert(
      fc.property(fc.array(arrival, { maxLength: 60 }), (arrivals) => {
        const one = new StateTable(WORDS, 4);
        const shared = SharedStateTable.create(WORDS, 100);
        for (const { h, sleep } of arrivals) {
          const s = Uint32Array.from(sleep);
          const a = new Uint32Array(WORDS);
          const b = new Uint32Array(WORDS);
          expect(shared.arrive(h, s, b)).toBe(one.arrive(h, s, a));
          expect(b).toEqual(a);
        }
        expect(shared.size).toBe(one.size);
      }),
    );
  });

  it('refuses a state bound whose table would not fit, naming the flag', () => {
    expect(() => SharedStateTable.create(4, 2 ** 29)).toThrow(/--max-states 536870912 needs a shared visited table of \d+\.\d GiB/);
  });
});
