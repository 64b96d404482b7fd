/**
 * The explorer's engine: depth-first over flat worlds of a compiled model (flatStack.ts, compiledModel.ts),
 * with sleep sets, optionally the persistent-set reduction (reduction.ts), a visited set of fingerprints,
 * the invariants checked after every delivery (checks.ts) and, when asked, the non-progress state graph
 * recorded (liveness/stateGraph.ts). explore.ts describes the search; this file is how it runs.
 *
 * Sleep sets are bitsets over channels (sender · n + receiver). The visited set (stateTable.ts) keeps per
 * state the deliveries claimed for exploration as a bitmask over the state's deliverable channels in
 * channel-id order ("ranks"), which a state determines whatever the schedule that reached it.
 */
import type { Message } from '../protocol/messages.ts';
import type { Model, World } from '../runtime/world.ts';
import type { CompiledModel } from './compiledModel.ts';
import type { InvariantChecks } from './checks.ts';
import { flatten } from './flatWorld.ts';
import { FlatStack } from './flatStack.ts';
import type { StateGraph } from './liveness/stateGraph.ts';
import type { PersistentSets } from './reduction.ts';
import type { VisitedSet } from './stateTable.ts';
import { StackDelivery } from './stackDelivery.ts';

/** What stopped a search before it was exhaustive (see explore.ts). */
export type Bound = 'depth' | 'states' | 'time' | 'walks' | 'interrupted' | 'preemptions';

/** An invariant that broke, its words, and the scheduler choices that lead there from the initial world. */
export interface Violation {
  invariant: string;
  detail: string;
  /** Scheduler choices from the initial world; the last delivery is the violating one. */
  choices: number[];
  /** A non-progress finding: the choices are the prefix and one turn of the loop. */
  lasso?: import('./liveness/lasso.ts').Lasso;
}

/** Channel ids are sender·n + receiver over actor indices; a sleep set is a bitset over them. */
export class Channels {
  readonly n: number;
  readonly words: number;
  /** Per receiver: the bits of every channel into it. */
  readonly into: Uint32Array[];
  constructor(private readonly model: Model) {
    this.n = model.actors.length;
    this.words = Math.ceil((this.n * this.n) / 32);
    this.into = model.actors.map((_, to) => {
      const m = new Uint32Array(this.words);
      for (let from = 0; from < this.n; from++) {
        const c = from * this.n + to;
        m[c >>> 5]! |= 1 << (c & 31);
      }
      return m;
    });
  }
  of(m: Message): number {
    return this.model.indexOf.get(m.from)! * this.n + this.model.indexOf.get(m.to)!;
  }
}

/** Words of the per-state data the engine keeps in a visited set: one, a bitmask over deliverable-channel ranks. */
export const CLAIM_WORDS = 1;

/** Counters a search accumulates; a worker keeps its own and the main thread adds them up. */
export interface SearchCounters {
  transitions: number;
  maxDepth: number;
  /** New states with nothing in flight. */
  terminals: number;
  bound: Bound | null;
}

/** One depth-first search's fixed parts: the one-thread explorer has one, each worker thread its own. */
export interface Search {
  model: Model;
  compiled: CompiledModel;
  checks: InvariantChecks;
  visited: VisitedSet;
  /** Null without the sleep-set reduction (the visited set then keeps no data words). */
  channels: Channels | null;
  /** The persistent-set reduction (needs `channels`); null without. */
  persistent?: PersistentSets | null;
  maxDepth: number;
  counters: SearchCounters;
  /** After each new state, at `depth`: true stops the search (and has set `counters.bound`, or another worker stopped it). */
  afterNewState(depth: number): boolean;
  /** The state graph for the non-progress check (one-thread search only). */
  graph?: StateGraph | null;
  /** Set (typically by `afterNewState`) to make a resumable search return PAUSED at its next step. */
  pause?: boolean;
}

/** A fresh arrival's sleep set; also the "everything" of a root that explores all it has. */
export const noSleep = (words: number): Uint32Array => new Uint32Array(words);

/** What a resumable search returns when `Search.pause` asked it to stop for now. */
export const PAUSED = Symbol('paused');
/** What it returns when a transition sent outside the persistent-set reduction's topology: start again (reduction.ts). */
export const RESTART = Symbol('restart');

/**
 * Depth-first from `root`, reached by `prefix` and already in the visited set, exploring the deliveries
 * whose ranks are in `explore` (a claim mask from the visited set; null: every enabled delivery). The
 * first violation ends it, with its choices from the initial world; null when the subtree is done or
 * `afterNewState` stopped it.
 */
export function depthFirst(search: Search, root: World, prefix: readonly number[], explore: Uint32Array | null): Violation | null | typeof RESTART {
  const run = depthFirstRun(search, root, prefix, explore);
  for (;;) {
    const r = run();
    if (r !== PAUSED) return r;
  }
}

/** The fingerprints of the frames on the stack, counted (a state can be on it twice): the cycle proviso's question. */
class OnStack {
  private hi = new Int32Array(1 << 10);
  private lo = new Int32Array(1 << 10);
  private n = new Int32Array(1 << 10);
  private mask = (1 << 10) - 1;
  private used = 0;
  private slot(hi: number, lo: number): number {
    let i = (hi ^ Math.imul(lo, 0x9e3779b1)) & this.mask;
    while (this.n[i] !== 0 || this.hi[i] !== 0 || this.lo[i] !== 0) {
      if (this.hi[i] === hi && this.lo[i] === lo) return i;
      i = (i + 1) & this.mask;
    }
    return i;
  }
  has(hi: number, lo: number): boolean {
    return this.n[this.slot(hi, lo)]! > 0;
  }
  add(hi: number, lo: number): void {
    if (2 * (this.used + 1) > this.mask) this.grow();
    const i = this.slot(hi, lo);
    if (this.hi[i] !== hi || this.lo[i] !== lo || (this.n[i] === 0 && hi === 0 && lo === 0)) this.used++;
    this.hi[i] = hi;
    this.lo[i] = lo;
    this.n[i]!++;
  }
  /** Entries stay (count 0) until the next growth, so probe runs are never broken. */
  remove(hi: number, lo: number): void {
    this.n[this.slot(hi, lo)]!--;
  }
  private grow(): void {
    const { hi, lo, n } = this;
    const cap = 2 * (this.mask + 1);
    this.hi = new Int32Array(cap);
    this.lo = new Int32Array(cap);
    this.n = new Int32Array(cap);
    this.mask = cap - 1;
    this.used = 0;
    for (let j = 0; j < n.length; j++) {
      if (n[j] === 0) continue;
      const i = this.slot(hi[j]!, lo[j]!);
      this.hi[i] = hi[j]!;
      this.lo[i] = lo[j]!;
      this.n[i] = n[j]!;
      this.used++;
    }
  }
}

/**
 * `depthFirst` as a function that can be called again: when `search.pause` is set it returns PAUSED at
 * the top of its loop, where the stack is consistent, and the next call carries on from there. That is
 * what lets an exploration give the event loop a turn (Ctrl-C, a stream's unsubscribe, progress on a
 * terminal) without a worker thread and without changing which states are visited.
 */
export function depthFirstRun(search: Search, root: World, prefix: readonly number[], explore: Uint32Array | null): () => Violation | null | typeof PAUSED | typeof RESTART {
  const { compiled: cm, checks, visited, counters } = search;
  const ch = search.channels;
  const words = ch?.words ?? 0;
  const graph = search.graph ?? null;
  const por = ch === null ? null : (search.persistent ?? null);
  const base = prefix.length;
  const claimWords = ch === null ? 0 : CLAIM_WORDS;
  const sleepMask = new Uint32Array(claimWords);
  const exploreMask = new Uint32Array(claimWords);
  const S = new FlatStack(cm, base);
  const fp = S.fp;
  const onStack = por === null ? null : new OnStack();

  // This search's own columns, as deep as the stack's.
  let todo = new Int32Array(0);
  let next = new Int32Array(0);
  let nodeOf = new Int32Array(0);
  let record = new Uint8Array(0);
  let choiceOf = new Int32Array(0);
  let sl = new Uint32Array(0);
  /** Persistent-set reduction: the frame explores one delivery for now; and P3 asked for all of them after. */
  let reduced = new Uint8Array(0);
  let expandAll = new Uint8Array(0);
  let fpHi = new Int32Array(0);
  let fpLo = new Int32Array(0);
  const fit = (): void => {
    const c = S.depth;
    const g = <T extends Int32Array | Uint32Array | Uint8Array>(a: T, per = 1): T => {
      const b = new (a.constructor as new (k: number) => T)(c * per);
      b.set(a);
      return b;
    };
    todo = g(todo);
    next = g(next);
    nodeOf = g(nodeOf);
    record = g(record);
    choiceOf = g(choiceOf);
    sl = g(sl, Math.max(1, words));
    reduced = g(reduced);
    expandAll = g(expandAll);
    fpHi = g(fpHi);
    fpLo = g(fpLo);
  };
  fit();

  // The delivery being checked, as checks.ts and the invariants' fast paths read it.
  const delivery = new StackDelivery(cm, S, base);

  /** Frame d's deliveries as a rank mask of what it sleeps on (bits past its deliverable ones set). */
  const sleepRanks = (d: number): number => {
    const cnt = S.enCnt[d]!;
    let asleep = cnt >= 32 ? 0 : -1 << cnt;
    for (let j = 0; j < cnt; j++) {
      const c = S.channelAt(d, j);
      if ((sl[d * words + (c >>> 5)]! & (1 << (c & 31))) !== 0) asleep |= 1 << S.rank[j]!;
    }
    return asleep;
  };
  const claimedPositions = (d: number, claim: number): number => {
    let t = 0;
    for (let j = 0; j < S.enCnt[d]!; j++) if ((claim & (1 << S.rank[j]!)) !== 0) t |= 1 << j;
    return t;
  };

  /** A deliverable message of frame d that may be explored alone (reduction.ts P1, P2), or −1. */
  const persistentOne = (d: number): number => {
    const cnt = S.enCnt[d]!;
    for (let j = 0; j < cnt; j++) {
      const m = S.msgAt(d, j);
      if (por!.candidate[cm.receiverOf(m)] !== 1 || !por!.alone(S, d, j)) continue;
      const known = cm.transitions;
      const e = cm.transition(S.mem[S.off[d]! + cm.receiverOf(m)]!, m, base + d + 1);
      if (e >= known && !por!.check(e, m)) return -2;
      if (por!.invisible(e)) return j;
    }
    return -1;
  };

  /** Frame d's pruned deliveries as graph edges, on its first visit (explore.ts, "Liveness"). */
  const recordPruned = (d: number, viaNode: number, viaChannel: number): void => {
    const g = graph!;
    const node = nodeOf[d]!;
    const cnt = S.enCnt[d]!;
    g.expand(node, cnt);
    const scratch = S.off[d]! + S.len[d]!;
    for (let i = 0; i < cnt; i++) {
      if ((todo[d]! & (1 << i)) !== 0) continue;
      if (viaNode >= 0 && g.diamond(node, S.channelAt(d, i), viaNode, viaChannel)) continue;
      const e = S.buildChild(d, i, scratch);
      let v = g.lookup(fp);
      if (v < 0) v = g.addNode(fp, S.glance(scratch, base + d + 1));
      g.edge(node, v, cm.receiverOf(S.childMsg), cm.snapshots[S.childFrom]!, cm.snapshots[cm.afterOf(e)]!, cm.messages[S.childMsg]!, true);
    }
  };

  // The root frame.
  S.setRoot(flatten(cm, root));
  let t0 = 0;
  if (explore === null || ch === null) t0 = S.enCnt[0]! >= 32 ? -1 : (1 << S.enCnt[0]!) - 1;
  else {
    S.ranks(0);
    t0 = claimedPositions(0, explore[0]!);
  }
  todo[0] = t0;
  next[0] = 0;
  record[0] = graph !== null ? 1 : 0;
  fpHi[0] = fp.hi;
  fpLo[0] = fp.lo;
  onStack?.add(fp.hi, fp.lo);
  if (graph !== null) {
    nodeOf[0] = graph.addNode(fp, root);
    recordPruned(0, -1, -1);
  } else nodeOf[0] = -1;
  let top = 0;

  return () => {
    while (top >= 0) {
      if (search.pause) {
        search.pause = false;
        return PAUSED;
      }
      const d = top;
      const cnt = S.enCnt[d]!;
      let i = next[d]!;
      const t = todo[d]!;
      while (i < cnt && (t & (1 << i)) === 0) i++;
      if (i >= cnt) {
        if (reduced[d] === 1 && expandAll[d] === 1) {
          // P3: a delivery explored alone went back onto the stack; now explore the rest as well.
          reduced[d] = 0;
          S.ranks(d);
          sleepMask[0] = sleepRanks(d);
          fp.hi = fpHi[d]!;
          fp.lo = fpLo[d]!;
          visited.arrive(fp, sleepMask, exploreMask);
          todo[d] = claimedPositions(d, exploreMask[0]!);
          next[d] = 0;
          continue;
        }
        onStack?.remove(fpHi[d]!, fpLo[d]!);
        top--;
        continue;
      }
      next[d] = i + 1;
      if (base + d + 1 > search.maxDepth) {
        counters.bound = 'depth';
        continue;
      }
      if (S.room(d)) fit();
      const o2 = S.off[d]! + S.len[d]!;
      const known = cm.transitions;
      const e = S.buildChild(d, i, o2);
      if (por !== null && e >= known && !por.check(e, S.childMsg)) return RESTART;
      counters.transitions++;
      delivery.at(d, o2, e);
      const k2 = delivery.pendingAfter;
      const receiver = delivery.receiver;
      const violated = checks.check(delivery);
      if (violated !== null) {
        const choices = [...prefix];
        for (let j = 0; j < d; j++) choices.push(choiceOf[j]!);
        choices.push(i);
        return { invariant: violated.invariant, detail: violated.detail, choices };
      }

      // The child's sleep set: what this frame sleeps on (including siblings already explored) and does
      // not depend on this delivery, i.e. goes to another receiver. Then this channel counts as explored.
      const d2 = d + 1;
      const deliveredChannel = cm.channelOf(S.childMsg);
      if (ch !== null) {
        const into = ch.into[receiver]!;
        for (let w = 0; w < words; w++) sl[d2 * words + w] = sl[d * words + w]! & ~into[w]!;
        sl[d * words + (deliveredChannel >>> 5)]! |= 1 << (deliveredChannel & 31);
      }
      // P3: a delivery explored alone that leads back onto the stack; its frame expands in full later.
      if (reduced[d] === 1 && onStack!.has(fp.hi, fp.lo)) expandAll[d] = 1;
      let childNode = graph === null ? -1 : graph.lookup(fp);
      if (graph !== null && childNode < 0) childNode = graph.addNode(fp, S.glance(o2, base + d + 1));
      if (record[d] === 1) graph!.edge(nodeOf[d]!, childNode, receiver, cm.snapshots[S.childFrom]!, cm.snapshots[cm.afterOf(e)]!, cm.messages[S.childMsg]!, false);

      // The child as a frame (not yet pushed).
      const cfHi = fp.hi;
      const cfLo = fp.lo;
      S.pushChild(d);
      const cnt2 = S.enCnt[d2]!;
      // A revisit explores what earlier arrivals slept on and this one does not (stateTable.ts).
      let fresh: boolean;
      let t2: number;
      let alone = -1;
      if (ch === null) {
        fresh = visited.arrive(fp, sleepMask, exploreMask);
        t2 = fresh ? (cnt2 >= 32 ? -1 : (1 << cnt2) - 1) : 0;
      } else {
        S.ranks(d2);
        let asleep = sleepRanks(d2);
        if (por !== null && cnt2 > 1) {
          alone = persistentOne(d2);
          if (alone === -2) return RESTART;
          // Under reduction a visit claims its persistent set only; the rest stays for a later, full visit.
          if (alone >= 0) asleep |= ~(1 << S.rank[alone]!);
          fp.hi = cfHi;
          fp.lo = cfLo;
        }
        sleepMask[0] = asleep;
        fresh = visited.arrive(fp, sleepMask, exploreMask);
        t2 = claimedPositions(d2, exploreMask[0]!);
      }
      if (fresh) {
        if (search.afterNewState(base + d2)) return null;
        if (k2 === 0) {
          counters.terminals++;
          graph?.expand(childNode, 0);
          continue;
        }
      } else if (t2 === 0) continue;
      choiceOf[d] = i;
      todo[d2] = t2;
      next[d2] = 0;
      nodeOf[d2] = childNode;
      record[d2] = fresh && graph !== null ? 1 : 0;
      reduced[d2] = alone >= 0 ? 1 : 0;
      expandAll[d2] = 0;
      fpHi[d2] = cfHi;
      fpLo[d2] = cfLo;
      onStack?.add(cfHi, cfLo);
      top = d2;
      if (record[d2] === 1) recordPruned(d2, nodeOf[d]!, deliveredChannel);
      if (base + d2 > counters.maxDepth) counters.maxDepth = base + d2;
    }
    return null;
  };
}
