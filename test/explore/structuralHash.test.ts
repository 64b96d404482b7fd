/**
 * The explorer's state identity (structuralHash.ts, fingerprint.ts): equal data hash equal whatever the
 * key order or object identity, different data hash differently, and the per-object cache never serves a
 * stale hash for an object that was rebuilt with other contents.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { structuralHash, hashKey } from '../../src/explore/structuralHash.ts';
import { fingerprint } from '../../src/explore/fingerprint.ts';
import { stringifyCanonical } from '../../src/log/canonical.ts';
import { runExample } from '../helpers.ts';

/** Plain data as machine contexts hold it: no undefined in arrays, no NaN. */
const plain = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.bigInt({ min: -(1n << 70n), max: 1n << 70n }),
    fc.string({ maxLength: 6 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 4 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

/** JSON with sorted keys and typed scalars: the equality the hash is meant to have. */
function canonical(v: unknown): string {
  if (typeof v === 'bigint') return `n${v}`;
  if (typeof v === 'number') return `d${Object.is(v, -0) ? 0 : v}`;
  if (typeof v === 'string') return `s${JSON.stringify(v)}`;
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return String(v);
}

const reversedKeys = (v: unknown): unknown => {
  if (Array.isArray(v)) return v.map(reversedKeys);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reversedKeys(x)]));
  return v;
};

describe('structural hash', () => {
  it('is the same for a deep copy with keys in another order', () => {
    fc.assert(fc.property(plain, (v) => hashKey(structuralHash(reversedKeys(v))) === hashKey(structuralHash(v))));
  });

  it('differs when the data differs (and agrees when it does not)', () => {
    fc.assert(
      fc.property(plain, plain, (a, b) => (canonical(a) === canonical(b)) === (hashKey(structuralHash(a)) === hashKey(structuralHash(b)))),
      { numRuns: 2000 },
    );
  });

  it('tells 1, 1n, "1", true and [1] apart, and a missing key from an undefined one not', () => {
    const keys = [1, 1n, '1', true, [1], { a: 1 }, null].map((v) => hashKey(structuralHash(v)));
    expect(new Set(keys).size).toBe(keys.length);
    expect(hashKey(structuralHash({ a: 1, b: undefined }))).toBe(hashKey(structuralHash({ a: 1 })));
    expect(hashKey(structuralHash(-1n))).not.toBe(hashKey(structuralHash(0xffffffffn)));
  });
});

describe('world fingerprint', () => {
  it('agrees with the canonical text of the actors and the per-channel queues on every step of a two-vCPU run', () => {
    const run = runExample('td-poweroff', 7);
    const byHash = new Map<string, string>();
    for (const d of run.deliveries) {
      const key = hashKey(fingerprint(run.model, d.world));
      const queues: Record<string, unknown[]> = {};
      for (const m of d.world.pending) (queues[`${m.from}>${m.to}`] ??= []).push([m.kind, m.name, m.payload]);
      const text = canonical({ actors: d.world.snapshots.map((s) => ({ v: s.value, st: s.status, c: s.context })), queues: JSON.parse(stringifyCanonical(queues)), failures: d.world.failures.length });
      const seen = byHash.get(key);
      if (seen !== undefined) expect(seen).toBe(text);
      byHash.set(key, text);
    }
    // ...and one text never gets two fingerprints.
    expect(new Set(byHash.values()).size).toBe(byHash.size);
  });
});
