/**
 * The visited set: 64-bit fingerprints (hash compaction, fingerprint.ts) in an open-addressing table of
 * typed arrays, 9 bytes a slot — the fingerprint, and one byte of claims (below). Robin Hood insertion keeps
 * probe sequences short at high load, so the table grows only at 90% full, by half: it holds a state in
 * 10–15 bytes, which is what decides how large an exhaustive search fits in memory (a JS Set of strings
 * costs several times that). The slot of a fingerprint comes from its high word scaled to the table's
 * size (Lemire's multiply-shift), so any size works.
 *
 * Omission: two distinct states whose 64-bit fingerprints are equal count as one, and the second is
 * never expanded. For n states that happens with probability about n²/2⁶⁵: 3·10⁻⁸ at one million states,
 * 3·10⁻⁶ at ten million, 8·10⁻⁵ at the 54 million of three vCPUs faulting one 2M range.
 *
 * Claims: per state, the deliveries some visit has claimed for exploration (the engine's sleep-set revisit
 * rule, depthFirst.ts), one bit per deliverable channel in channel-id order. A state has rarely more than
 * eight deliverable messages; a ninth and later are never recorded as claimed, so every visit that does not
 * sleep on them explores them again — more work, never a missed state.
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
   * An arrival at state `h` with sleep set `sleep` (a bitmask over the state's deliverable channels in
   * channel-id order, one 32-bit word; zero words when the search keeps no claims): writes into `explore`
   * the deliveries this arrival must explore — those it does not sleep on and no earlier arrival has
   * claimed — and claims them. Returns whether the state is new. `h` is read during the call only.
   *
   * Claimed bits are the complement of the stored sleep set of Godefroid's revisit rule ("explore
   * stored & ~current, store stored & current"): kept that way round, a fresh slot (all zero) means
   * "nothing claimed", and one atomic OR is the whole update.
   */
  arrive(h: Hash64, sleep: Uint32Array, explore: Uint32Array): boolean;
}

/** Bits of claims a slot keeps. */
export const CLAIM_BITS = 8;
const CLAIM_MASK = (1 << CLAIM_BITS) - 1;

/** Table size after growing from `cap` (and the least one). */
const MIN_CAPACITY = 1 << 10;
const MAX_LOAD = 0.9;

/** The slot a fingerprint's high word starts probing at, in a table of `cap` slots. */
export const homeOf = (hi: number, cap: number): number => Math.floor(((hi >>> 0) / 4294967296) * cap);

export class StateTable implements VisitedSet {
  private hi: Int32Array;
  private lo: Int32Array;
  private claims: Uint8Array;
  private cap: number;
  private count = 0;

  /** `words`: 1 to keep claims, 0 to keep states only. */
  constructor(
    readonly words: number,
    capacity = MIN_CAPACITY,
  ) {
    this.cap = Math.max(MIN_CAPACITY, capacity);
    this.hi = new Int32Array(this.cap);
    this.lo = new Int32Array(this.cap);
    this.claims = new Uint8Array(this.cap);
  }

  get size(): number {
    return this.count;
  }

  /** Bytes the table holds now. */
  get bytes(): number {
    return 9 * this.cap;
  }

  arrive(h: Hash64, sleep: Uint32Array, explore: Uint32Array): boolean {
    // (0, 0) marks an empty slot; a fingerprint that is (0, 0) is stored as (0, 1).
    const hi = h.hi | 0;
    const lo = (h.hi | h.lo) === 0 ? 1 : h.lo | 0;
    const cap = this.cap;
    let i = homeOf(hi, cap);
    for (let dist = 0; ; dist++) {
      const rh = this.hi[i]!;
      const rl = this.lo[i]!;
      if (rh === hi && rl === lo) return this.claim(i, false, sleep, explore);
      if ((rh | rl) === 0) break;
      // Robin Hood: a resident nearer its home than we are to ours means we are not in the table.
      let rd = i - homeOf(rh, cap);
      if (rd < 0) rd += cap;
      if (rd < dist) break;
      if (++i === cap) i = 0;
    }
    if (this.count + 1 > MAX_LOAD * cap) this.grow();
    this.count++;
    return this.claim(this.insert(hi, lo, 0), true, sleep, explore);
  }

  /** Whether `h` is in the table. */
  has(h: Hash64): boolean {
    return this.slotOf(h) >= 0;
  }

  private slotOf(h: Hash64): number {
    const hi = h.hi | 0;
    const lo = (h.hi | h.lo) === 0 ? 1 : h.lo | 0;
    const cap = this.cap;
    let i = homeOf(hi, cap);
    for (let dist = 0; ; dist++) {
      const rh = this.hi[i]!;
      const rl = this.lo[i]!;
      if (rh === hi && rl === lo) return i;
      if ((rh | rl) === 0) return -1;
      let rd = i - homeOf(rh, cap);
      if (rd < 0) rd += cap;
      if (rd < dist) return -1;
      if (++i === cap) i = 0;
    }
  }

  /**
   * For a table of search nodes with a cost (the preemption-bounded search): true when `h` is new or
   * comes now at a lower `cost` (0–254) than every earlier arrival, which is then remembered.
   */
  lower(h: Hash64, cost: number): boolean {
    const hi = h.hi | 0;
    const lo = (h.hi | h.lo) === 0 ? 1 : h.lo | 0;
    const cap = this.cap;
    let i = homeOf(hi, cap);
    for (let dist = 0; ; dist++) {
      const rh = this.hi[i]!;
      const rl = this.lo[i]!;
      if (rh === hi && rl === lo) {
        // Stored as cost + 1, so a fresh slot's 0 is "no cost yet".
        if (cost + 1 >= this.claims[i]!) return false;
        this.claims[i] = cost + 1;
        return true;
      }
      if ((rh | rl) === 0) break;
      let rd = i - homeOf(rh, cap);
      if (rd < 0) rd += cap;
      if (rd < dist) break;
      if (++i === cap) i = 0;
    }
    if (this.count + 1 > MAX_LOAD * cap) this.grow();
    this.count++;
    this.insert(hi, lo, cost + 1);
    return true;
  }

  private claim(i: number, fresh: boolean, sleep: Uint32Array, explore: Uint32Array): boolean {
    if (this.words === 0) return fresh;
    const awake = ~sleep[0]!;
    const old = this.claims[i]!;
    explore[0] = awake & ~old;
    this.claims[i] = (old | awake) & CLAIM_MASK;
    return fresh;
  }

  /** Places (hi, lo) with claims `c`, moving richer residents on; returns where (hi, lo) went. */
  private insert(hi: number, lo: number, c: number): number {
    const cap = this.cap;
    let i = homeOf(hi, cap);
    let dist = 0;
    let placed = -1;
    for (;;) {
      const rh = this.hi[i]!;
      const rl = this.lo[i]!;
      if ((rh | rl) === 0) {
        this.hi[i] = hi;
        this.lo[i] = lo;
        this.claims[i] = c;
        return placed < 0 ? i : placed;
      }
      let rd = i - homeOf(rh, cap);
      if (rd < 0) rd += cap;
      if (rd < dist) {
        const rc = this.claims[i]!;
        this.hi[i] = hi;
        this.lo[i] = lo;
        this.claims[i] = c;
        if (placed < 0) placed = i;
        hi = rh;
        lo = rl;
        c = rc;
        dist = rd;
      }
      if (++i === cap) i = 0;
      dist++;
    }
  }

  private grow(): void {
    const { hi, lo, claims } = this;
    this.cap = Math.ceil(this.cap * 1.5);
    this.hi = new Int32Array(this.cap);
    this.lo = new Int32Array(this.cap);
    this.claims = new Uint8Array(this.cap);
    for (let j = 0; j < hi.length; j++) if ((hi[j]! | lo[j]!) !== 0) this.insert(hi[j]!, lo[j]!, claims[j]!);
  }
}
