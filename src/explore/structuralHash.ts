/**
 * A 64-bit structural hash of plain data (what actor contexts, state values and message payloads are),
 * cached per object. Snapshots are immutable and a transition shares every unchanged sub-object with the
 * snapshot before it, so re-hashing a new context costs the path that changed plus one cache lookup per
 * untouched child — not a serialisation of the whole context, which is what made the first explorer spend
 * 60% of its time in JSON.stringify and SHA-256.
 *
 * Equality: plain objects compare by their own enumerable keys in any order (an `undefined` value is an
 * absent key, as in JSON); arrays by position; bigints, numbers, strings, booleans and null by value, each
 * with a type tag so 1, 1n and '1' differ. Two 32-bit lanes with different multipliers and a murmur3
 * finaliser give 64 bits: among ten million distinct states the chance that two share a hash is about
 * 3·10⁻⁶ (hash compaction, as in Spin's -DHC mode; the explorer says so in its summary).
 */

export interface Hash64 {
  readonly hi: number;
  readonly lo: number;
}

// The result of the last hashValue() call, in two registers rather than an allocated pair.
let HA = 0;
let HB = 0;

const T_NULL = 0x1;
const T_UNDEF = 0x2;
const T_TRUE = 0x3;
const T_FALSE = 0x4;
const T_NUM = 0x10;
const T_STR = 0x20;
const T_BIG = 0x30;
const T_ARR = 0x40;
const T_OBJ = 0x50;

/** murmur3's 32-bit finaliser: every input bit flips each output bit with probability about one half. */
export function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Folds a pair of 32-bit words into the two lanes (wa into lane A, wb into lane B); order-dependent. */
function fold2(a: number, b: number, wa: number, wb: number): void {
  HA = fmix(Math.imul(a ^ wa, 0xcc9e2d51) + 0x6b43a9b5);
  HB = fmix(Math.imul((b + wb) | 0, 0x1b873593) ^ 0x2545f491 ^ wa);
}

const fold = (a: number, b: number, w: number): void => fold2(a, b, w, w);

const objectCache = new WeakMap<object, Hash64>();
const stringCache = new Map<string, Hash64>();
const STRING_CACHE_LIMIT = 1 << 16;

function hashString(s: string): void {
  const c = stringCache.get(s);
  if (c !== undefined) {
    HA = c.hi;
    HB = c.lo;
    return;
  }
  let a = 0x811c9dc5 ^ T_STR;
  let b = 0x9747b28c ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    a = Math.imul(a ^ ch, 0x01000193);
    b = Math.imul(b ^ ch, 0x5bd1e995);
    b ^= b >>> 15;
  }
  HA = fmix(a ^ s.length);
  HB = fmix(b ^ 0x68e31da4);
  if (stringCache.size >= STRING_CACHE_LIMIT) stringCache.clear();
  stringCache.set(s, { hi: HA, lo: HB });
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

function hashNumber(n: number): void {
  if ((n | 0) === n) {
    fold(T_NUM, T_NUM, n);
  } else {
    f64[0] = n;
    fold(T_NUM + 1, T_NUM + 1, u32[0]!);
    fold(HA, HB, u32[1]!);
  }
}

function hashBigint(x: bigint): void {
  let a = T_BIG;
  let b = T_BIG;
  let words = 0;
  // Two's-complement words from the bottom until only sign bits are left; the sign is folded last.
  while (x !== 0n && x !== -1n) {
    fold(a, b, Number(BigInt.asUintN(32, x)));
    a = HA;
    b = HB;
    x >>= 32n;
    words++;
  }
  fold(a, b, x === 0n ? words : ~words);
}

function hashArray(arr: readonly unknown[]): void {
  let a = T_ARR ^ arr.length;
  let b = 0x3c6ef372 ^ arr.length;
  for (let i = 0; i < arr.length; i++) {
    hashValue(arr[i]);
    fold2(a, b, HA, HB);
    a = HA;
    b = HB;
  }
  HA = a;
  HB = b;
}

function hashObject(o: Record<string, unknown>): void {
  // Entries combine by addition, so key order does not matter.
  let sa = 0;
  let sb = 0;
  let n = 0;
  for (const k in o) {
    const v = o[k];
    if (v === undefined) continue;
    hashValue(v);
    const va = HA;
    const vb = HB;
    hashString(k);
    fold2(HA, HB, va, vb);
    sa = (sa + HA) | 0;
    sb = (sb + HB) | 0;
    n++;
  }
  fold(sa ^ T_OBJ, sb, n);
}

/** Sets HA/HB to the hash of `v`. */
function hashValue(v: unknown): void {
  switch (typeof v) {
    case 'number':
      hashNumber(v);
      return;
    case 'string':
      hashString(v);
      return;
    case 'bigint':
      hashBigint(v);
      return;
    case 'boolean':
      HA = HB = v ? T_TRUE : T_FALSE;
      return;
    case 'undefined':
      HA = HB = T_UNDEF;
      return;
    case 'object': {
      if (v === null) {
        HA = HB = T_NULL;
        return;
      }
      const c = objectCache.get(v);
      if (c !== undefined) {
        HA = c.hi;
        HB = c.lo;
        return;
      }
      if (Array.isArray(v)) hashArray(v);
      else hashObject(v as Record<string, unknown>);
      objectCache.set(v, { hi: HA, lo: HB });
      return;
    }
    default:
      throw new TypeError(`structuralHash: ${typeof v} is not plain data`);
  }
}

export function structuralHash(v: unknown): Hash64 {
  hashValue(v);
  return { hi: HA, lo: HB };
}

/** Order-dependent combination of hashes already computed (a world's actors, in actor order). */
export class HashBuilder {
  private a = 0x5be0cd19;
  private b = 0x1f83d9ab;
  add(h: Hash64): this {
    fold2(this.a, this.b, h.hi, h.lo);
    this.a = HA;
    this.b = HB;
    return this;
  }
  addValue(v: unknown): this {
    hashValue(v);
    return this.add({ hi: HA, lo: HB });
  }
  addWord(w: number): this {
    fold(this.a, this.b, w);
    this.a = HA;
    this.b = HB;
    return this;
  }
  digest(): Hash64 {
    return { hi: fmix(this.a ^ 0x510e527f), lo: fmix(this.b ^ 0x9b05688c) };
  }
}

export const hashKey = (h: Hash64): string => (h.hi >>> 0).toString(16).padStart(8, '0') + (h.lo >>> 0).toString(16).padStart(8, '0');
