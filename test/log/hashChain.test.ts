import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NotJsonError, stringifyCanonical } from '../../src/log/canonical.ts';
import { chainHash, GENESIS, sealRecord, unsealLine } from '../../src/log/hashChain.ts';

// Property bodies are blocks, not `(v) => expect(...)`: vitest matchers return an Assertion object, and
// fast-check fails a property that returns anything other than true or undefined.

/** Independent reference for what values become on disk: bigints as hex, and -0 as 0 (as JSON does). */
function hexify(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (typeof value === 'bigint') return value < 0n ? `-0x${(-value).toString(16)}` : `0x${value.toString(16)}`;
  if (Array.isArray(value)) return value.map(hexify);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, hexify(v)]));
  }
  return value;
}

const withBigints = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.jsonValue({ maxDepth: 1 }),
    fc.bigInt(),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.string(), tie('value'), { maxKeys: 3 }),
  ),
})).value;

const record = fc.dictionary(fc.string({ unit: 'binary' }), withBigints, { minKeys: 1, maxKeys: 5 });

function thrown(f: () => unknown): NotJsonError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(NotJsonError);
    expect(err).toBeInstanceOf(TypeError);
    return err as NotJsonError;
  }
  throw new Error('expected a throw');
}

describe('stringifyCanonical', () => {
  it('is JSON.stringify for plain JSON values', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => {
        expect(stringifyCanonical(v)).toBe(JSON.stringify(v));
      }));
  });

  it('writes bigints as 0x-prefixed lowercase hex, negative ones as -0x', () => {
    expect(stringifyCanonical({ a: 0n, b: 0xfee0_0000n, c: -255n, d: [2n ** 64n - 1n] })).toBe(
      '{"a":"0x0","b":"0xfee00000","c":"-0xff","d":["0xffffffffffffffff"]}',
    );
    fc.assert(fc.property(withBigints, (v) => {
        expect(JSON.parse(stringifyCanonical(v))).toEqual(hexify(v));
      }));
  });

  it('omits undefined properties, as JSON does, and accepts null-prototype objects', () => {
    const bare = Object.assign(Object.create(null) as object, { x: 1 });
    expect(stringifyCanonical({ a: undefined, b: bare })).toBe('{"b":{"x":1}}');
  });

  it.each([
    ['undefined inside an array', { payload: { list: [1, undefined] } }, 'payload.list[1]'],
    ['a hole in an array', { payload: { list: [1, , 3] } }, 'payload.list[1]'],
    ['a function', { payload: { f: () => 0 } }, 'payload.f'],
    ['a symbol', { s: Symbol('x') }, 's'],
    ['NaN', { payload: { x: NaN } }, 'payload.x'],
    ['Infinity', { a: [{ b: -Infinity }] }, 'a[0].b'],
    ['a Map', { payload: { m: new Map() } }, 'payload.m'],
    ['a Set', { 'odd key': new Set([1]) }, '["odd key"]'],
    ['a class instance', { p: new (class Spte {})() }, 'p'],
    ['a Date (toJSON)', { when: new Date(0) }, 'when'],
    ['a boxed string', { s: new String('x') }, 's'],
    ['a top-level undefined', undefined, '(root)'],
  ])('refuses %s and names its path', (_what, value, path) => {
    const err = thrown(() => stringifyCanonical(value));
    expect(err.path).toBe(path);
    expect(err.message).toContain(path);
  });

  it('refuses cycles', () => {
    const a: Record<string, unknown> = { x: 1 };
    a['self'] = a;
    expect(thrown(() => stringifyCanonical({ a })).path).toBe('a.self');
  });
});

describe('chainHash', () => {
  it('is the first 11 base64url characters of sha256(prev + "\\n" + body)', () => {
    // Pinned: computed independently with `printf '\n{"a":1}' | openssl dgst -sha256 -binary | basenc --base64url`.
    expect(chainHash(GENESIS, '{"a":1}')).toBe('c5XcZoYEmcs');
  });

  it('depends on the previous hash, so lines cannot be moved', () => {
    expect(chainHash('c5XcZoYEmcs', '{"a":1}')).not.toBe(chainHash(GENESIS, '{"a":1}'));
  });
});

describe('sealRecord / unsealLine', () => {
  it('appends the hash as the last field and unsealing recovers exactly the hashed body', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^([0-9a-f]{16})?$/), record, (prev, rec) => {
        const { line, hash } = sealRecord(prev, rec);
        const body = stringifyCanonical(rec);
        expect(hash).toBe(chainHash(prev, body));
        expect(line.endsWith(`,"h":"${hash}"}`)).toBe(true);
        expect(unsealLine(line)).toEqual({ body, hash });
        expect(JSON.parse(line)).toEqual({ ...(hexify(rec) as object), h: hash });
      }),
    );
  });

  it('pins the on-disk form of a record', () => {
    expect(sealRecord(GENESIS, { a: 1 }).line).toBe('{"a":1,"h":"c5XcZoYEmcs"}');
  });

  it.each([
    ['no hash', '{"a":1}'],
    ['a character outside base64url', '{"a":1,"h":"c5XcZoYEmc+"}'],
    ['10 characters', '{"a":1,"h":"c5XcZoYEmc"}'],
    ['a space', '{"a":1, "h":"c5XcZoYEmcs"}'],
    ['hash not last', '{"h":"c5XcZoYEmcs","a":1}'],
    ['trailing CR', '{"a":1,"h":"c5XcZoYEmcs"}\r'],
    ['only the seal', ',"h":"c5XcZoYEmcs"}'],
    ['the version 1 key', '{"a":1,"hash":"c5XcZoYEmcs"}'],
  ])('unsealLine rejects a line with %s', (_what, line) => {
    expect(unsealLine(line)).toBeNull();
  });

  it('refuses records that are not non-empty objects', () => {
    expect(() => sealRecord(GENESIS, {})).toThrow(TypeError);
    expect(() => sealRecord(GENESIS, [1])).toThrow(TypeError);
  });
});
