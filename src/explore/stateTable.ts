/**
 * The visited set: 64-bit fingerprints in an open-addressing table of typed arrays, each with a few
 * 32-bit words of data (the explorer keeps the channels already claimed for exploration from the state).
 * About 2·(8 + 4·words) bytes per state at the table's load — a JS Set of strings costs several times
 * that, and the visited set is what limits how far an exhaustive search can go.
 */
import type { Hash64 } from './structuralHash.ts';

/**
 * What a search needs of its visited set. This table serves one thread; sharedStateTable.ts serves
 * worker threads with the same contract.
 */
export interface VisitedSet {
  readonly size: number;
  /** Bytes the table holds now. */
  readonly bytes: number;
  /**
   * An arrival at state `h` with sleep set `sleep` (one bit per channel): writes into `explore` the
   * channels this arrival must explore — those it does not sleep on and no earlier arrival has claimed —
   * and claims them. Returns whether the state is new. With zero data words it only records the state.
   *
   * Claimed bits are the complement of the stored sleep set of Godefroid's revisit rule ("explore
   * stored & ~current, store stored & current"): kept that way round, a fresh slot (all zero) means
   * "nothing claimed", and one atomic OR per word is the whole update.
   */
  arrive(h: Hash64, sleep: Uint32Array, explore: Uint32Array): boolean;
}

export class StateTable implements VisitedSet {
  private keys: Int32Array;
  private data: Uint32Array;
  private mask: number;
  private count = 0;

  constructor(
    readonly words: number,
    capacityLog2 = 16,
  ) {
    this.keys = new Int32Array(2 << capacityLog2);
    this.data = new Uint32Array(words << capacityLog2);
    this.mask = (1 << capacityLog2) - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes the table holds now (keys and data). */
  get bytes(): number {
    return this.keys.byteLength + this.data.byteLength;
  }

  /** The slot of `h`, or -1. */
  find(h: Hash64): number {
    // (0, 0) marks an empty slot; a fingerprint that is (0, 0) is stored as (0, 1).
    const hi = h.hi | 0;
    const lo = (h.hi | h.lo) === 0 ? 1 : h.lo | 0;
    for (let i = (hi ^ Math.imul(lo, 0x9e3779b1)) & this.mask; ; i = (i + 1) & this.mask) {
      const k = this.keys[2 * i]!;
      const l = this.keys[2 * i + 1]!;
      if (k === hi && l === lo) return i;
      if (k === 0 && l === 0) return -1;
    }
  }

  /** Inserts `h` (which must be absent) and returns its slot; its data words start at zero. */
  insert(h: Hash64): number {
    if ((this.count + 1) * 2 > this.mask + 1) this.grow();
    const hi = h.hi | 0;
    const lo = (h.hi | h.lo) === 0 ? 1 : h.lo | 0;
    let i = (hi ^ Math.imul(lo, 0x9e3779b1)) & this.mask;
    while (this.keys[2 * i] !== 0 || this.keys[2 * i + 1] !== 0) i = (i + 1) & this.mask;
    this.keys[2 * i] = hi;
    this.keys[2 * i + 1] = lo;
    this.count++;
    return i;
  }

  arrive(h: Hash64, sleep: Uint32Array, explore: Uint32Array): boolean {
    let slot = this.find(h);
    const fresh = slot < 0;
    if (fresh) slot = this.insert(h);
    const base = slot * this.words;
    for (let w = 0; w < this.words; w++) {
      const old = this.data[base + w]!;
      const awake = ~sleep[w]!;
      explore[w] = awake & ~old;
      this.data[base + w] = old | awake;
    }
    return fresh;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldData = this.data;
    const oldCap = this.mask + 1;
    const cap = oldCap * 2;
    this.keys = new Int32Array(2 * cap);
    this.data = new Uint32Array(this.words * cap);
    this.mask = cap - 1;
    for (let j = 0; j < oldCap; j++) {
      const hi = oldKeys[2 * j]!;
      const lo = oldKeys[2 * j + 1]!;
      if (hi === 0 && lo === 0) continue;
      let i = (hi ^ Math.imul(lo, 0x9e3779b1)) & this.mask;
      while (this.keys[2 * i] !== 0 || this.keys[2 * i + 1] !== 0) i = (i + 1) & this.mask;
      this.keys[2 * i] = hi;
      this.keys[2 * i + 1] = lo;
      this.data.set(oldData.subarray(j * this.words, (j + 1) * this.words), i * this.words);
    }
  }
}
