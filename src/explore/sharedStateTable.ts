/**
 * The visited set shared by worker threads: the slots of stateTable.ts (a 64-bit fingerprint and a byte of
 * claims, 9 bytes) in SharedArrayBuffers, with a fixed capacity — a table that grows would have to stop
 * every worker to move. It is sized from the state bound at 80% load, so the search stops at its bound
 * before the table fills, and a search that reaches the bound holds a state in about 11 bytes.
 *
 * Insertion without locks: a slot is taken by one 64-bit compare-exchange of its key from 0 (empty), so
 * no reader ever sees half a key; keys are read as two 32-bit halves (no BigInt on the hot path) and only
 * a half that reads 0 — a key half that really is 0, or a key being written between the two reads — is
 * re-read as one 64-bit value. Probing is linear (Robin Hood would move keys under other threads' feet).
 * As in stateTable.ts, the fingerprint (0, 0) is stored as (0, 1): the two tables tell the same states
 * apart, so workers count what one thread counts.
 *
 * Claims are updated by one Atomics.or on the slot's byte: of two workers arriving at once, each explores
 * exactly what the other had not claimed before it.
 */
import type { Hash64 } from './structuralHash.ts';
import { CLAIM_BITS, homeOf, type VisitedSet } from './stateTable.ts';

export interface SharedTableBuffers {
  keys: SharedArrayBuffer;
  claims: SharedArrayBuffer;
  /** [0]: the number of states. */
  meta: SharedArrayBuffer;
  words: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Past this the table is not allocated: the bound asks for more memory than one search should take. */
const MAX_BYTES = 8 * 2 ** 30;
const LOAD = 0.8;
const CLAIM_MASK = (1 << CLAIM_BITS) - 1;

export class SharedStateTable implements VisitedSet {
  private readonly keys: BigInt64Array;
  /** The same memory as `keys`, as 32-bit halves. */
  private readonly halves: Int32Array;
  private readonly claims: Uint8Array;
  private readonly meta: Int32Array;
  private readonly cap: number;
  readonly words: number;

  /** A table for up to `maxStates` states (plus what workers insert while they notice the bound). */
  static create(words: number, maxStates: number, flag = '--max-states'): SharedStateTable {
    const cap = Math.ceil(maxStates / LOAD) + 4096;
    const bytes = cap * 9;
    if (bytes > MAX_BYTES) throw new RangeError(`${flag} ${maxStates} needs a shared visited table of ${(bytes / 2 ** 30).toFixed(1)} GiB for worker threads; lower ${flag} (or use --workers 1, whose table grows as needed)`);
    return new SharedStateTable({ keys: new SharedArrayBuffer(8 * cap), claims: new SharedArrayBuffer(cap), meta: new SharedArrayBuffer(4), words });
  }

  constructor(readonly buffers: SharedTableBuffers) {
    this.keys = new BigInt64Array(buffers.keys);
    this.halves = new Int32Array(buffers.keys);
    this.claims = new Uint8Array(buffers.claims);
    this.meta = new Int32Array(buffers.meta);
    this.cap = this.keys.length;
    this.words = buffers.words;
  }

  get size(): number {
    return Atomics.load(this.meta, 0);
  }

  get bytes(): number {
    return this.keys.byteLength + this.claims.byteLength;
  }

  arrive(h: Hash64, sleep: Uint32Array, explore: Uint32Array): boolean {
    const hi = h.hi | 0;
    const lo = (h.hi | h.lo) === 0 ? 1 : h.lo | 0;
    const first = LITTLE_ENDIAN ? lo : hi;
    const second = LITTLE_ENDIAN ? hi : lo;
    const halves = this.halves;
    let key: bigint | null = null;
    let fresh = false;
    let i = homeOf(hi, this.cap);
    for (let probes = 0; ; probes++, i = i + 1 === this.cap ? 0 : i + 1) {
      if (probes >= this.cap) throw new Error(`model bug: the shared visited table is full (${this.size} states); its capacity comes from the state bound`);
      const a = Atomics.load(halves, 2 * i);
      const b = Atomics.load(halves, 2 * i + 1);
      if (a !== 0 && b !== 0) {
        if (a === first && b === second) break;
        continue;
      }
      key ??= (BigInt(hi) << 32n) | BigInt(lo >>> 0);
      const seen: bigint = a === 0 && b === 0 ? Atomics.compareExchange(this.keys, i, 0n, key) : Atomics.load(this.keys, i);
      if (seen === 0n) {
        Atomics.add(this.meta, 0, 1);
        fresh = true;
        break;
      }
      if (seen === key) break;
    }
    if (this.words > 0) {
      const awake = ~sleep[0]! & CLAIM_MASK;
      explore[0] = ~sleep[0]! & ~Atomics.or(this.claims, i, awake);
    }
    return fresh;
  }
}
