/**
 * The reachable state graph, recorded during the depth-first search for the non-progress check
 * (nonProgress.ts): a node per fingerprint, an edge per (state, enabled delivery), labelled with the
 * delivery's channel and with the progress thread it moved on, if any (progress.ts).
 *
 * The graph is the *unreduced* one. Sleep sets prune transitions, never states, so every reachable state
 * is visited; but a pruned transition can be the one edge that closes a cycle (the "ignoring problem" of
 * partial-order reduction), so when a state is visited for the first time the search records all of its
 * enabled deliveries: those it will explore as it explores them, and those its sleep set prunes right
 * away — through the diamond each closes (`diamond`), or by stepping it without checking invariants (the
 * reduction argument covers safety; the edge is only needed for its target and label).
 * test/explore/liveness.test.ts checks the edge count against the unreduced search and shows findings the
 * reduced edges alone would miss or invent; nonProgressIndependent.test.ts compares graphs edge by edge.
 *
 * A node is *complete* when all its enabled deliveries are recorded. A search stopped by a bound leaves
 * some nodes incomplete; the check then looks at complete nodes only, so whatever it finds is real, and
 * says it was not exhaustive.
 *
 * Storage is typed arrays: per node its fingerprint, its wants (one bit per progress thread) and its
 * degree; per edge source, target, channel, progress thread, whether it was pruned and the next edge of
 * its source — about 44 bytes per state and 16 per edge while recording, and 12 more per edge while the
 * edges are sorted.
 *
 * A pruned delivery costs a step and a fingerprint unless `diamond` finds its target among edges already
 * recorded, which it mostly does: that keeps the unreduced graph from costing an unreduced search.
 */
import type { AnyMachineSnapshot } from 'xstate';
import type { Message } from '../../protocol/messages.ts';
import type { Model, World } from '../../runtime/world.ts';
import type { Hash64 } from '../structuralHash.ts';
import type { ProgressThread } from '../progress.ts';

/** The recorded graph in compressed form: node v's out-edges are start[v] … start[v + 1] − 1. */
export interface FrozenGraph {
  nodes: number;
  edges: number;
  /** Number of actors: channel c is the messages from actor ⌊c / n⌋ to actor c mod n. */
  actors: number;
  threads: readonly ProgressThread[];
  /** Words per node in `wants`. */
  wantWords: number;
  wants: Uint32Array;
  complete: Uint8Array;
  fpHi: Int32Array;
  fpLo: Int32Array;
  start: Int32Array;
  dst: Int32Array;
  channel: Uint16Array;
  /** Progress thread index + 1 that the edge moved on; 0 for none. */
  progress: Uint8Array;
  /** 1 for an edge the sleep sets pruned (the search stepped it only for the graph). */
  pruned: Uint8Array;
}

function grown<T extends Int32Array | Uint32Array | Uint16Array | Uint8Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

export class StateGraph {
  readonly n: number;
  readonly wantWords: number;
  /** Actor index → progress thread index, or −1. */
  private readonly threadOf: Int16Array;
  // fingerprint → node id, open addressing over (hi, lo) pairs; id + 1 in `slots` (0 = empty).
  private keys = new Int32Array(2 << 16);
  private slots = new Int32Array(1 << 16);
  private mask = (1 << 16) - 1;
  private count = 0;
  private fpHi = new Int32Array(1 << 16);
  private fpLo = new Int32Array(1 << 16);
  private wants = new Uint32Array(1 << 16);
  /** Enabled deliveries once the search has expanded the node; −1 before. */
  private degree = new Int32Array(1 << 16);
  private recorded = new Int32Array(1 << 16);
  private eSrc = new Int32Array(1 << 16);
  private eDst = new Int32Array(1 << 16);
  private eChannel = new Uint16Array(1 << 16);
  private eProgress = new Uint8Array(1 << 16);
  private ePruned = new Uint8Array(1 << 16);
  /** Each node's recorded edges as a list, newest first (−1 ends it): the search looks edges up by channel. */
  private eNext = new Int32Array(1 << 16);
  private first = new Int32Array(1 << 16).fill(-1);
  private edgeCount = 0;

  constructor(
    private readonly model: Model,
    readonly threads: readonly ProgressThread[],
  ) {
    this.n = model.actors.length;
    if (this.n * this.n > 0xffff) throw new RangeError(`the non-progress check labels edges with 16-bit channel ids; ${this.n} actors are too many`);
    if (threads.length > 0xfe) throw new RangeError(`the non-progress check labels edges with 8-bit thread ids; ${threads.length} progress threads are too many`);
    this.wantWords = Math.max(1, Math.ceil(threads.length / 32));
    this.wants = new Uint32Array(this.wantWords << 16);
    this.degree.fill(-1);
    this.threadOf = new Int16Array(this.n).fill(-1);
    threads.forEach((t, i) => (this.threadOf[t.actor] = i));
  }

  get nodes(): number {
    return this.count;
  }
  get edges(): number {
    return this.edgeCount;
  }
  /** Bytes the graph holds now. */
  get bytes(): number {
    const arrays = [this.keys, this.slots, this.fpHi, this.fpLo, this.wants, this.degree, this.recorded, this.first, this.eSrc, this.eDst, this.eChannel, this.eProgress, this.ePruned, this.eNext];
    return arrays.reduce((s, a) => s + a.byteLength, 0);
  }

  channelOf(m: Message): number {
    return this.model.indexOf.get(m.from)! * this.n + this.model.indexOf.get(m.to)!;
  }

  /** The id of the state with fingerprint `h` (world `w`, built only for a new node), new ids numbered in order of discovery. */
  node(h: Hash64, w: () => World): number {
    const id = this.lookup(h);
    return id >= 0 ? id : this.addNode(h, w());
  }

  /** The id of the state with fingerprint `h`, or −1. */
  lookup(h: Hash64): number {
    const hi = h.hi | 0;
    const lo = h.lo | 0;
    for (let i = (hi ^ Math.imul(lo, 0x9e3779b1)) & this.mask; ; i = (i + 1) & this.mask) {
      const s = this.slots[i]!;
      if (s === 0) return -1;
      if (this.keys[2 * i] === hi && this.keys[2 * i + 1] === lo) return s - 1;
    }
  }

  /** A new node for the state with fingerprint `h` (not in the graph yet), world `world`. */
  addNode(h: Hash64, world: World): number {
    const hi = h.hi | 0;
    const lo = h.lo | 0;
    let i = (hi ^ Math.imul(lo, 0x9e3779b1)) & this.mask;
    while (this.slots[i] !== 0) i = (i + 1) & this.mask;
    const id = this.count++;
    this.keys[2 * i] = hi;
    this.keys[2 * i + 1] = lo;
    this.slots[i] = id + 1;
    if (this.count * 2 > this.mask + 1) this.rehash();
    if (id >= this.fpHi.length) {
      const cap = this.fpHi.length * 2;
      this.fpHi = grown(this.fpHi, cap);
      this.fpLo = grown(this.fpLo, cap);
      this.wants = grown(this.wants, cap * this.wantWords);
      this.recorded = grown(this.recorded, cap);
      const old = this.degree.length;
      this.degree = grown(this.degree, cap);
      this.degree.fill(-1, old);
      this.first = grown(this.first, cap);
      this.first.fill(-1, old);
    }
    this.fpHi[id] = hi;
    this.fpLo[id] = lo;
    const base = id * this.wantWords;
    this.threads.forEach((t, k) => {
      if (t.wants(this.model, world)) this.wants[base + (k >>> 5)]! |= 1 << (k & 31);
    });
    return id;
  }

  /** The search expands node `v`, which has `enabled` deliveries (0 for an end state). */
  expand(v: number, enabled: number): void {
    this.degree[v] = enabled;
  }

  /**
   * Node `u` delivers `delivered` to actor `to`, taking it from state `before` to `after`, and reaches node
   * `v`; `pruned`: the search itself does not explore it.
   */
  edge(u: number, v: number, to: number, before: AnyMachineSnapshot, after: AnyMachineSnapshot, delivered: Message, pruned: boolean): void {
    const k = this.threadOf[to]!;
    const progress = k >= 0 && this.threads[k]!.progressed(before, after, delivered) ? k + 1 : 0;
    this.add(u, v, this.channelOf(delivered), progress, pruned);
  }

  /**
   * The edge of a delivery on `channel` from node `s`, pruned there, found without stepping it: `s` was
   * reached from node `p` by a delivery on `via`, and the pruned one is independent of it (a sleep set
   * holds only deliveries to other receivers), so its target is p —channel→ x —via→ y, and it moves the
   * same thread on as from p (its receiver's state is the same in p and s). False when p's or x's edge
   * is not recorded yet (x still on the search's stack); the caller steps it then.
   */
  diamond(s: number, channel: number, p: number, via: number): boolean {
    const e1 = this.find(p, channel);
    if (e1 < 0) return false;
    const e2 = this.find(this.eDst[e1]!, via);
    if (e2 < 0) return false;
    this.add(s, this.eDst[e2]!, channel, this.eProgress[e1]!, true);
    return true;
  }

  private find(u: number, channel: number): number {
    for (let e = this.first[u]!; e >= 0; e = this.eNext[e]!) if (this.eChannel[e] === channel) return e;
    return -1;
  }

  private add(u: number, v: number, channel: number, progress: number, pruned: boolean): void {
    const e = this.edgeCount++;
    if (e >= this.eSrc.length) {
      const cap = this.eSrc.length * 2;
      this.eSrc = grown(this.eSrc, cap);
      this.eDst = grown(this.eDst, cap);
      this.eChannel = grown(this.eChannel, cap);
      this.eProgress = grown(this.eProgress, cap);
      this.ePruned = grown(this.ePruned, cap);
      this.eNext = grown(this.eNext, cap);
    }
    this.eSrc[e] = u;
    this.eDst[e] = v;
    this.eChannel[e] = channel;
    this.ePruned[e] = pruned ? 1 : 0;
    this.eProgress[e] = progress;
    this.eNext[e] = this.first[u]!;
    this.first[u] = e;
    this.recorded[u]!++;
  }

  /** Sorts the edges by source (counting sort) and drops the lookup table; the recorder is spent after. */
  freeze(): FrozenGraph {
    const nodes = this.count;
    const edges = this.edgeCount;
    const start = new Int32Array(nodes + 1);
    for (let e = 0; e < edges; e++) start[this.eSrc[e]! + 1]!++;
    for (let v = 0; v < nodes; v++) start[v + 1]! += start[v]!;
    const at = start.slice(0, nodes);
    const dst = new Int32Array(edges);
    const channel = new Uint16Array(edges);
    const progress = new Uint8Array(edges);
    const pruned = new Uint8Array(edges);
    for (let e = 0; e < edges; e++) {
      const j = at[this.eSrc[e]!]!++;
      dst[j] = this.eDst[e]!;
      channel[j] = this.eChannel[e]!;
      progress[j] = this.eProgress[e]!;
      pruned[j] = this.ePruned[e]!;
    }
    const complete = new Uint8Array(nodes);
    for (let v = 0; v < nodes; v++) complete[v] = this.degree[v]! >= 0 && this.recorded[v] === this.degree[v] ? 1 : 0;
    const g: FrozenGraph = {
      nodes,
      edges,
      actors: this.n,
      threads: this.threads,
      wantWords: this.wantWords,
      wants: this.wants.slice(0, nodes * this.wantWords),
      complete,
      fpHi: this.fpHi.slice(0, nodes),
      fpLo: this.fpLo.slice(0, nodes),
      start,
      dst,
      channel,
      progress,
      pruned,
    };
    this.keys = this.slots = this.eSrc = this.eDst = this.eNext = this.first = new Int32Array(0);
    this.eProgress = this.ePruned = new Uint8Array(0);
    this.eChannel = new Uint16Array(0);
    return g;
  }

  private rehash(): void {
    const oldKeys = this.keys;
    const oldSlots = this.slots;
    const cap = (this.mask + 1) * 2;
    this.keys = new Int32Array(2 * cap);
    this.slots = new Int32Array(cap);
    this.mask = cap - 1;
    for (let j = 0; j < oldSlots.length; j++) {
      const s = oldSlots[j]!;
      if (s === 0) continue;
      const hi = oldKeys[2 * j]!;
      const lo = oldKeys[2 * j + 1]!;
      let i = (hi ^ Math.imul(lo, 0x9e3779b1)) & this.mask;
      while (this.slots[i] !== 0) i = (i + 1) & this.mask;
      this.keys[2 * i] = hi;
      this.keys[2 * i + 1] = lo;
      this.slots[i] = s;
    }
  }
}

/** Does node v want progress for thread k? */
export const wantsAt = (g: FrozenGraph, v: number, k: number): boolean => (g.wants[v * g.wantWords + (k >>> 5)]! & (1 << (k & 31))) !== 0;
