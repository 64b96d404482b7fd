/**
 * The explorer's engine: depth-first over flat worlds (flatWorld.ts) of a compiled model
 * (compiledModel.ts), with sleep sets, a visited set of fingerprints, the invariants checked after every
 * delivery (checks.ts) and, when asked, the non-progress state graph recorded (liveness/stateGraph.ts).
 * explore.ts describes the search; this file is how it runs fast.
 *
 * The stack is an arena: frame d's world is a vector of ints, its child is written right after it, and a
 * frame's deliverable messages, sleep set and fingerprint sums live in typed columns indexed by depth.
 * A delivery is a lookup of the compiled transition (XState runs only the first time a receiver state meets
 * a message), a copy of the vector with the receiver's id replaced, the delivered message dropped and the
 * sent ones appended, and an update of the fingerprint's sums: the receiver's term, the delivered
 * channel's positions, the new messages' terms. Nothing is allocated on that path; a World is built only
 * for what asks for one (an invariant without a footprint, a new node of the state graph).
 *
 * Sleep sets are bitsets over channels (sender · n + receiver). The visited set (stateTable.ts) keeps per
 * state the deliveries claimed for exploration as a bitmask over the state's deliverable channels in
 * channel-id order ("ranks"), which a state determines whatever the schedule that reached it.
 */
import type { Message } from '../protocol/messages.ts';
import { ModelBug } from '../runtime/errors.ts';
import type { Model, World } from '../runtime/world.ts';
import type { CompiledModel } from './compiledModel.ts';
import type { CheckedDelivery, InvariantChecks } from './checks.ts';
import { finishInto } from './fingerprint.ts';
import { flatten, flatLength, materialize } from './flatWorld.ts';
import type { StateGraph } from './liveness/stateGraph.ts';
import type { VisitedSet } from './stateTable.ts';
import type { Hash64 } from './structuralHash.ts';

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

/**
 * Depth-first from `root`, reached by `prefix` and already in the visited set, exploring the deliveries
 * whose ranks are in `explore` (a claim mask from the visited set; null: every enabled delivery). The
 * first violation ends it, with its choices from the initial world; null when the subtree is done or
 * `afterNewState` stopped it.
 */
export function depthFirst(search: Search, root: World, prefix: readonly number[], explore: Uint32Array | null): Violation | null {
  const run = depthFirstRun(search, root, prefix, explore);
  for (;;) {
    const r = run();
    if (r !== PAUSED) return r;
  }
}

/** Sorted insertion keeps at most this many deliverable messages per state; the todo mask is 32 bits. */
const MAX_ENABLED = 32;

/**
 * `depthFirst` as a function that can be called again: when `search.pause` is set it returns PAUSED at
 * the top of its loop, where the stack is consistent, and the next call carries on from there. That is
 * what lets an exploration give the event loop a turn (Ctrl-C, a stream's unsubscribe, progress on a
 * terminal) without a worker thread and without changing which states are visited.
 */
export function depthFirstRun(search: Search, root: World, prefix: readonly number[], explore: Uint32Array | null): () => Violation | null | typeof PAUSED {
  const { model, compiled: cm, checks, visited, counters } = search;
  const n = cm.n;
  const ch = search.channels;
  const words = ch?.words ?? 0;
  const graph = search.graph ?? null;
  const base = prefix.length;
  const claimWords = ch === null ? 0 : CLAIM_WORDS;
  const sleepMask = new Uint32Array(claimWords);
  const exploreMask = new Uint32Array(claimWords);
  const fp = { hi: 0, lo: 0 } as Hash64 & { hi: number; lo: number };

  // The arena of state vectors and the per-frame columns; all grow on demand.
  let mem = new Int32Array(1 << 14);
  let cap = 0;
  let off = new Int32Array(0);
  let len = new Int32Array(0);
  let sa = new Int32Array(0);
  let sb = new Int32Array(0);
  let enOff = new Int32Array(0);
  let enCnt = new Int32Array(0);
  let todo = new Int32Array(0);
  let next = new Int32Array(0);
  let nodeOf = new Int32Array(0);
  let record = new Uint8Array(0);
  let choiceOf = new Int32Array(0);
  let sl = new Uint32Array(0);
  /** Per frame, its deliverable messages: positions in its pending list, in choice order. */
  let en = new Int32Array(1024);
  const grow = (): void => {
    const c = Math.max(64, cap * 2);
    const g = <T extends Int32Array | Uint32Array | Uint8Array>(a: T, per = 1): T => {
      const b = new (a.constructor as new (k: number) => T)(c * per);
      b.set(a);
      return b;
    };
    off = g(off);
    len = g(len);
    sa = g(sa);
    sb = g(sb);
    enOff = g(enOff);
    enCnt = g(enCnt);
    todo = g(todo);
    next = g(next);
    nodeOf = g(nodeOf);
    record = g(record);
    choiceOf = g(choiceOf);
    sl = g(sl, Math.max(1, words));
    cap = c;
  };
  const room = (need: number): void => {
    if (need <= mem.length) return;
    const b = new Int32Array(Math.max(need, 2 * mem.length));
    b.set(mem);
    mem = b;
  };
  grow();

  // Scratch for finding channel heads.
  const chanStamp = new Int32Array(cm.channels);
  let stamp = 0;
  const rank = new Int32Array(MAX_ENABLED);

  /** Frame d's deliverable messages into `en` at enOff[d]: the head of each channel, by receiver then send order. */
  const enable = (d: number): void => {
    const o = off[d]!;
    const k = mem[o + n]!;
    const e0 = enOff[d]!;
    if (e0 + k > en.length) {
      const b = new Int32Array(Math.max(e0 + k, 2 * en.length));
      b.set(en);
      en = b;
    }
    stamp++;
    let cnt = 0;
    for (let j = 0; j < k; j++) {
      const m = mem[o + n + 1 + j]!;
      const c = cm.channelOf(m);
      if (chanStamp[c] === stamp) continue;
      chanStamp[c] = stamp;
      const to = cm.receiverOf(m);
      let i = cnt++;
      while (i > 0 && cm.receiverOf(mem[o + n + 1 + en[e0 + i - 1]!]!) > to) {
        en[e0 + i] = en[e0 + i - 1]!;
        i--;
      }
      en[e0 + i] = j;
    }
    if (cnt > MAX_ENABLED) throw new ModelBug(`${cnt} messages deliverable at once; the explorer handles at most ${MAX_ENABLED}`);
    enCnt[d] = cnt;
  };

  const channelAt = (d: number, i: number): number => cm.channelOf(mem[off[d]! + n + 1 + en[enOff[d]! + i]!]!);

  /** Ranks of frame d's deliverable channels in channel-id order, into `rank`. */
  const ranks = (d: number): void => {
    const cnt = enCnt[d]!;
    for (let i = 0; i < cnt; i++) {
      const c = channelAt(d, i);
      let r = 0;
      for (let j = 0; j < cnt; j++) if (channelAt(d, j) < c) r++;
      rank[i] = r;
    }
  };

  /** The fingerprint sums of the vector at `o`, from scratch. */
  const sumsOf = (o: number): [number, number] => {
    let a = 0;
    let b = 0;
    for (let i = 0; i < n; i++) {
      a = (a + cm.stateTermA(mem[o + i]!)) | 0;
      b = (b + cm.stateTermB(mem[o + i]!)) | 0;
    }
    const k = mem[o + n]!;
    for (let j = 0; j < k; j++) {
      const m = mem[o + n + 1 + j]!;
      let pos = 0;
      for (let i = 0; i < j; i++) if (cm.channelOf(mem[o + n + 1 + i]!) === cm.channelOf(m)) pos++;
      a = (a + cm.messageTermA(m, pos)) | 0;
      b = (b + cm.messageTermB(m, pos)) | 0;
    }
    const f = mem[o + n + 1 + k]!;
    for (let j = 0; j < f; j++) {
      a = (a + cm.failureTermA(mem[o + n + 2 + k + 2 * j]!)) | 0;
      b = (b + cm.failureTermB(mem[o + n + 2 + k + 2 * j]!)) | 0;
    }
    return [a, b];
  };

  // What `buildChild` leaves behind.
  let childA = 0;
  let childB = 0;
  let childPos = 0;
  let childMsg = 0;
  let childFrom = 0;

  /**
   * Writes at `o2` the world after delivering frame d's deliverable message number `i`, sets `childA`,
   * `childB` and the fingerprint `fp`, and returns the compiled transition.
   */
  const buildChild = (d: number, i: number, o2: number): number => {
    const o = off[d]!;
    const k = mem[o + n]!;
    const p = en[enOff[d]! + i]!;
    const m = mem[o + n + 1 + p]!;
    const a = cm.receiverOf(m);
    const s = mem[o + a]!;
    const e = cm.transition(s, m, base + d + 1);
    const after = cm.afterOf(e);
    const ns = cm.sendsOf(e);
    const nf = cm.failuresOf(e);
    const f = mem[o + n + 1 + k]!;
    room(o2 + n + 2 + k - 1 + ns + 2 * (f + nf));
    const v = mem;
    for (let j = 0; j < n; j++) v[o2 + j] = v[o + j]!;
    v[o2 + a] = after;
    let A = (sa[d]! - cm.stateTermA(s) + cm.stateTermA(after)) | 0;
    let B = (sb[d]! - cm.stateTermB(s) + cm.stateTermB(after)) | 0;
    const c = cm.channelOf(m);
    A = (A - cm.messageTermA(m, 0)) | 0;
    B = (B - cm.messageTermB(m, 0)) | 0;
    let w = o2 + n + 1;
    let q = 1;
    for (let j = 0; j < k; j++) {
      if (j === p) continue;
      const x = v[o + n + 1 + j]!;
      v[w++] = x;
      // Later messages of the delivered channel move up one position.
      if (j > p && cm.channelOf(x) === c) {
        A = (A + cm.messageTermA(x, q - 1) - cm.messageTermA(x, q)) | 0;
        B = (B + cm.messageTermB(x, q - 1) - cm.messageTermB(x, q)) | 0;
        q++;
      }
    }
    const st = cm.sendsStart(e);
    for (let t = 0; t < ns; t++) {
      const x = cm.poolAt(st + t);
      const cx = cm.channelOf(x);
      let pos = 0;
      for (let r = o2 + n + 1; r < w; r++) if (cm.channelOf(v[r]!) === cx) pos++;
      v[w++] = x;
      A = (A + cm.messageTermA(x, pos)) | 0;
      B = (B + cm.messageTermB(x, pos)) | 0;
    }
    const k2 = k - 1 + ns;
    v[o2 + n] = k2;
    v[w++] = f + nf;
    for (let j = 0; j < 2 * f; j++) v[w++] = v[o + n + 2 + k + j]!;
    for (let t = 0; t < nf; t++) {
      const id = cm.poolAt(st + ns + t);
      v[w++] = id;
      v[w++] = base + d + 1;
      A = (A + cm.failureTermA(id)) | 0;
      B = (B + cm.failureTermB(id)) | 0;
    }
    childA = A;
    childB = B;
    childPos = p;
    childMsg = m;
    childFrom = s;
    finishInto(fp, A, B, k2, f + nf);
    return e;
  };

  // The delivery being checked, as checks.ts and the invariants' fast paths read it.
  let dFrame = 0;
  let dChild = 0;
  let dSends = 0;
  let dBefore: World | null = null;
  let dAfter: World | null = null;
  const beforeWorld = (): World => (dBefore ??= materialize(cm, mem, off[dFrame]!, base + dFrame));
  const afterWorld = (): World => (dAfter ??= materialize(cm, mem, dChild, base + dFrame + 1, { world: beforeWorld(), removed: childPos, sent: dSends }));
  const delivery: CheckedDelivery = {
    model,
    ids: cm,
    entry: 0,
    receiver: 0,
    pendingAfter: 0,
    delivered: cm.messages[0]!,
    stateId: (i) => mem[dChild + i]!,
    snapshot: (i) => cm.snapshots[mem[dChild + i]!]!,
    before: beforeWorld,
    after: afterWorld,
    deliveredInWorld: () => beforeWorld().pending[childPos]!,
  };

  /** Frame d's pruned deliveries as graph edges, on its first visit (explore.ts, "Liveness"). */
  const recordPruned = (d: number, viaNode: number, viaChannel: number): void => {
    const g = graph!;
    const node = nodeOf[d]!;
    const cnt = enCnt[d]!;
    g.expand(node, cnt);
    const scratch = off[d]! + len[d]!;
    for (let i = 0; i < cnt; i++) {
      if ((todo[d]! & (1 << i)) !== 0) continue;
      if (viaNode >= 0 && g.diamond(node, channelAt(d, i), viaNode, viaChannel)) continue;
      const e = buildChild(d, i, scratch);
      const v = g.node(fp, () => materialize(cm, mem, scratch, base + d + 1));
      const to = cm.receiverOf(childMsg);
      g.edge(node, v, to, cm.snapshots[childFrom]!, cm.snapshots[cm.afterOf(e)]!, cm.messages[childMsg]!, true);
    }
  };

  // The root frame.
  const rootVec = flatten(cm, root);
  room(rootVec.length);
  mem.set(rootVec, 0);
  off[0] = 0;
  len[0] = rootVec.length;
  [sa[0], sb[0]] = sumsOf(0);
  enOff[0] = 0;
  enable(0);
  let t0 = 0;
  if (explore === null || ch === null) t0 = enCnt[0]! >= 32 ? -1 : (1 << enCnt[0]!) - 1;
  else {
    ranks(0);
    for (let i = 0; i < enCnt[0]!; i++) if ((explore[0]! & (1 << rank[i]!)) !== 0) t0 |= 1 << i;
  }
  todo[0] = t0;
  next[0] = 0;
  record[0] = graph !== null ? 1 : 0;
  if (graph !== null) {
    finishInto(fp, sa[0]!, sb[0]!, mem[n]!, mem[n + 1 + mem[n]!]!);
    nodeOf[0] = graph.node(fp, () => root);
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
      const cnt = enCnt[d]!;
      let i = next[d]!;
      const t = todo[d]!;
      while (i < cnt && (t & (1 << i)) === 0) i++;
      if (i >= cnt) {
        top--;
        continue;
      }
      next[d] = i + 1;
      if (base + d + 1 > search.maxDepth) {
        counters.bound = 'depth';
        continue;
      }
      if (d + 2 >= cap) grow();
      const o2 = off[d]! + len[d]!;
      const e = buildChild(d, i, o2);
      counters.transitions++;
      const k2 = mem[o2 + n]!;
      const receiver = cm.receiverOf(childMsg);

      dFrame = d;
      dChild = o2;
      dSends = cm.sendsOf(e);
      dBefore = null;
      dAfter = null;
      delivery.entry = e;
      delivery.receiver = receiver;
      delivery.pendingAfter = k2;
      (delivery as { delivered: Message }).delivered = cm.messages[childMsg]!;
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
      if (ch !== null) {
        const into = ch.into[receiver]!;
        for (let w = 0; w < words; w++) sl[d2 * words + w] = sl[d * words + w]! & ~into[w]!;
        const c = cm.channelOf(childMsg);
        sl[d * words + (c >>> 5)]! |= 1 << (c & 31);
      }
      const childNode = graph === null ? -1 : graph.node(fp, () => afterWorld());
      if (record[d] === 1) graph!.edge(nodeOf[d]!, childNode, receiver, cm.snapshots[childFrom]!, cm.snapshots[cm.afterOf(e)]!, cm.messages[childMsg]!, false);

      // The child as a frame (not yet pushed): its vector, sums and deliverable messages.
      off[d2] = o2;
      len[d2] = flatLength(n, mem, o2);
      sa[d2] = childA;
      sb[d2] = childB;
      enOff[d2] = enOff[d]! + cnt;
      enable(d2);
      const cnt2 = enCnt[d2]!;
      // A revisit explores what earlier arrivals slept on and this one does not (stateTable.ts).
      let fresh: boolean;
      let t2: number;
      if (ch === null) {
        fresh = visited.arrive(fp, sleepMask, exploreMask);
        t2 = fresh ? (cnt2 >= 32 ? -1 : (1 << cnt2) - 1) : 0;
      } else {
        ranks(d2);
        let asleep = cnt2 >= 32 ? 0 : -1 << cnt2;
        for (let j = 0; j < cnt2; j++) {
          const c = channelAt(d2, j);
          if ((sl[d2 * words + (c >>> 5)]! & (1 << (c & 31))) !== 0) asleep |= 1 << rank[j]!;
        }
        sleepMask[0] = asleep;
        fresh = visited.arrive(fp, sleepMask, exploreMask);
        const claim = exploreMask[0]!;
        t2 = 0;
        for (let j = 0; j < cnt2; j++) if ((claim & (1 << rank[j]!)) !== 0) t2 |= 1 << j;
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
      top = d2;
      if (record[d2] === 1) recordPruned(d2, nodeOf[d]!, cm.channelOf(childMsg));
      if (base + d2 > counters.maxDepth) counters.maxDepth = base + d2;
    }
    return null;
  };
}
