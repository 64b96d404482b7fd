/**
 * Preemption-bounded exhaustive search (CHESS: Musuvathi, Qadeer, "Iterative context bounding for
 * systematic testing of multithreaded programs", PLDI 2007): every schedule with at most K preemptions,
 * for K = 0, 1, 2 … up to the bound asked for. The races found so far need one to three preemptions, and
 * the schedules with few preemptions are a small part of a space that grows a thousandfold from two vCPUs
 * to three, so "exhaustive up to K preemptions" is a strong statement that ends in seconds.
 *
 * A preemption is what minimise.ts counts: a delivery that leaves the thread of execution the previous
 * delivery started — that delivery sent a message that is now deliverable (the head of its channel) and
 * another one is chosen. A forced switch (nothing it sent is deliverable) costs nothing.
 *
 * Soundness with a visited set: whether the next delivery costs a preemption depends on the state and on
 * which deliverable messages the last delivery sent, so a search node is the pair (state, those channels),
 * and the table keeps per node the fewest preemptions it was reached with. A node reached again with fewer
 * is explored again (the earlier visit cut schedules this one may take); reached with as many or more, it
 * is not — whatever the later visit could do within the bound, the earlier one did. So each level visits
 * exactly the states reachable with at most K preemptions. Sleep sets and persistent sets are off here:
 * they prune by reordering independent deliveries, and a reordering changes the preemptions a schedule
 * costs, so a pruned schedule could be the only one within the bound.
 *
 * A delivery over the bound is still made and checked, only not explored further, and where it leads is
 * noted. When every such state was visited by the level anyway, the states the level visited are closed
 * under every delivery: the search has seen every reachable state and checked every delivery, it is simply
 * exhaustive, and the iteration stops there. A violation on a delivery over the bound is reported at the
 * end of the level if the level itself found none: its schedule has K + 1 preemptions and no schedule
 * with K or fewer breaks an invariant. The non-progress check needs the unreduced graph of the
 * whole space and is not made here.
 */
import { initialWorld } from '../runtime/step.ts';
import type { Model } from '../runtime/world.ts';
import { CompiledModel } from './compiledModel.ts';
import { InvariantChecks } from './checks.ts';
import { StackDelivery } from './stackDelivery.ts';
import { PAUSED, type Violation } from './depthFirst.ts';
import type { Exploration, ExploreBounds, ExploreOptions, ExploreResult } from './explore.ts';
import { flatten } from './flatWorld.ts';
import { FlatStack } from './flatStack.ts';
import type { Invariant } from './invariants/index.ts';
import { StateTable } from './stateTable.ts';
import { fmix } from './structuralHash.ts';

/** One level of the iteration: the search with at most `preemptions` preemptions. */
export interface PreemptionLevel {
  preemptions: number;
  states: number;
  transitions: number;
  /** Deliveries not explored further because they exceeded the bound. */
  cut: number;
  /** States those deliveries lead to that the level did not visit; 0: the level saw every reachable state. */
  unreached: number;
  elapsedMs: number;
  /** What stopped the level before it was done, or null: only a level that ran to its end is exhaustive up to its K. */
  stopped: 'depth' | 'states' | 'time' | 'interrupted' | null;
}

/** The most preemptions a bound may ask for (the table keeps a node's count in a byte). */
export const MAX_PREEMPTIONS = 250;

interface Level {
  run: () => Violation | null | typeof PAUSED;
  states: StateTable;
  counters: { transitions: number; maxDepth: number; terminals: number; cut: number; bound: 'depth' | 'states' | 'time' | null };
  /** The first violation on a delivery over the bound (K + 1 preemptions). */
  overBound: () => Violation | null;
  /** States reached over the bound and not visited by the level. */
  unreached: () => number;
}

/**
 * The iteration K = 0 … `maxPreemptions` (or only `maxPreemptions` with `only`), run a slice at a time like
 * startExplore. Stops at the first violation — found with the fewest preemptions any schedule needs — or
 * at a level that cut nothing.
 */
export function startPreemptionBounded(
  model: Model,
  invariants: readonly Invariant[],
  bounds: ExploreBounds,
  maxPreemptions: number,
  opts: Pick<ExploreOptions, 'now' | 'onProgress' | 'progressEvery'> & { pauseEvery?: number; only?: boolean; onLevel?: (l: PreemptionLevel) => void } = {},
): Exploration {
  if (!Number.isInteger(maxPreemptions) || maxPreemptions < 0 || maxPreemptions > MAX_PREEMPTIONS) throw new RangeError(`preemption bound ${maxPreemptions}: a whole number from 0 to ${MAX_PREEMPTIONS}`);
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const compiled = new CompiledModel(model);
  const checks = new InvariantChecks(model, invariants.filter((i) => i.liveness !== true));
  const every = opts.progressEvery ?? 10_000;
  const pauseEvery = opts.pauseEvery ?? 0;
  const root = flatten(compiled, initialWorld(model));
  const levels: PreemptionLevel[] = [];
  let k = opts.only ? maxPreemptions : 0;
  let levelStart = start;
  let level = startLevel(compiled, checks, root, bounds, k, {
    now,
    start,
    every,
    pauseEvery,
    ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
  });
  let done = false;
  let interrupted = false;
  let violation: Violation | null = null;
  let elapsed = 0;

  const closeLevel = (stopped: PreemptionLevel['stopped'] = level.counters.bound): PreemptionLevel => {
    const l: PreemptionLevel = { preemptions: k, states: level.states.size, transitions: level.counters.transitions, cut: level.counters.cut, unreached: level.unreached(), elapsedMs: now() - levelStart, stopped };
    levels.push(l);
    opts.onLevel?.(l);
    return l;
  };
  const finish = () => {
    done = true;
    elapsed = now() - start;
  };

  return {
    step() {
      if (done) return true;
      const r = level.run();
      if (r === PAUSED) return false;
      const l = closeLevel();
      if (r !== null || (level.counters.bound === null && level.overBound() !== null)) {
        violation = r ?? level.overBound();
        finish();
      } else if (level.counters.bound !== null || l.unreached === 0 || k >= maxPreemptions) finish();
      else {
        k++;
        levelStart = now();
        level = startLevel(compiled, checks, root, bounds, k, { now, start, every, pauseEvery, ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}) });
      }
      return done;
    },
    interrupt() {
      if (done) return;
      interrupted = true;
      closeLevel('interrupted');
      finish();
    },
    result(): ExploreResult {
      const v = violation as Violation | null;
      const c = level.counters;
      const last = levels.at(-1);
      const cut = last === undefined || last.unreached > 0;
      const bound = interrupted ? 'interrupted' : v !== null ? null : (c.bound ?? (cut ? 'preemptions' : null));
      return {
        status: v === null ? 'clean' : 'violation',
        exhaustive: done && v === null && bound === null,
        bound,
        states: level.states.size,
        transitions: c.transitions,
        maxDepth: c.maxDepth,
        terminals: c.terminals,
        elapsedMs: done ? elapsed : now() - start,
        visitedBytes: level.states.bytes,
        cacheHitRate: compiled.hits + compiled.misses === 0 ? 0 : compiled.hits / (compiled.hits + compiled.misses),
        violation: v,
        preemptions: { bound: maxPreemptions, levels: [...levels] },
      };
    },
  };
}

/** Mixes the deliverable channels the last delivery sent (a rank mask of the state) into its fingerprint: the search node's key. */
function nodeKey(out: { hi: number; lo: number }, hi: number, lo: number, sent: number): void {
  out.hi = (hi ^ fmix(Math.imul(sent, 0x9e3779b1) + 0x2545f491)) | 0;
  out.lo = (lo + fmix(sent ^ 0x7f4a7c15)) | 0;
}

function startLevel(
  cm: CompiledModel,
  checks: InvariantChecks,
  root: Int32Array,
  bounds: ExploreBounds,
  K: number,
  o: { now: () => number; start: number; every: number; pauseEvery: number; onProgress?: ExploreOptions['onProgress'] },
): Level {
  const n = cm.n;
  const states = new StateTable(0);
  const nodes = new StateTable(1);
  const none = new Uint32Array(0);
  const counters: Level['counters'] = { transitions: 0, maxDepth: 0, terminals: 0, cut: 0, bound: null };
  const S = new FlatStack(cm, 0);
  const fp = S.fp;
  const key = { hi: 0, lo: 0 };
  let next = new Int32Array(0);
  let pre = new Int32Array(0);
  /** Per frame: positions of its deliverable messages that the delivery leading to it sent. */
  let sentBy = new Int32Array(0);
  let choiceOf = new Int32Array(0);
  const fit = () => {
    const g = (a: Int32Array<ArrayBuffer>) => {
      const b = new Int32Array(S.depth);
      b.set(a);
      return b;
    };
    next = g(next);
    pre = g(pre);
    sentBy = g(sentBy);
    choiceOf = g(choiceOf);
  };
  fit();

  const delivery = new StackDelivery(cm, S, 0);

  /** Positions of frame d's deliverable messages that are among the `ns` messages the last delivery appended. */
  const sentPositions = (d: number, ns: number): number => {
    const o = S.off[d]!;
    const k = S.mem[o + n]!;
    let mask = 0;
    for (let i = 0; i < S.enCnt[d]!; i++) if (S.en[S.enOff[d]! + i]! >= k - ns) mask |= 1 << i;
    return mask;
  };
  const rankMask = (d: number, positions: number): number => {
    S.ranks(d);
    let r = 0;
    for (let i = 0; i < S.enCnt[d]!; i++) if ((positions & (1 << i)) !== 0) r |= 1 << S.rank[i]!;
    return r;
  };

  S.setRoot(root);
  states.arrive(fp, none, none);
  nodeKey(key, fp.hi, fp.lo, 0);
  nodes.lower(key, 0);
  if (S.pendingAt(0) === 0) counters.terminals++;
  next[0] = 0;
  pre[0] = 0;
  sentBy[0] = 0;
  let top = 0;
  let pauseCount = 0;
  let overBound: Violation | null = null;
  /** Fingerprints of states reached over the bound and not visited when they were. */
  let pendingHi = new Int32Array(1024);
  let pendingLo = new Int32Array(1024);
  let pendingCount = 0;
  const choicesTo = (d: number, i: number): number[] => {
    const choices: number[] = [];
    for (let j = 0; j < d; j++) choices.push(choiceOf[j]!);
    choices.push(i);
    return choices;
  };

  const run = (): Violation | null | typeof PAUSED => {
    while (top >= 0) {
      if (o.pauseEvery > 0 && pauseCount >= o.pauseEvery) {
        pauseCount = 0;
        return PAUSED;
      }
      const d = top;
      const i = next[d]!;
      if (i >= S.enCnt[d]!) {
        top--;
        continue;
      }
      next[d] = i + 1;
      const cost = pre[d]! + (sentBy[d] !== 0 && (sentBy[d]! & (1 << i)) === 0 ? 1 : 0);
      if (d + 1 > bounds.maxDepth) {
        counters.bound = 'depth';
        continue;
      }
      if (S.room(d)) fit();
      const o2 = S.off[d]! + S.len[d]!;
      const e = S.buildChild(d, i, o2);
      counters.transitions++;
      if (cost > K) counters.cut++;
      delivery.at(d, o2, e);
      const k2 = delivery.pendingAfter;
      const violated = checks.check(delivery);
      if (violated !== null) {
        const v = { invariant: violated.invariant, detail: violated.detail, choices: choicesTo(d, i) };
        if (cost <= K) return v;
        overBound ??= v;
      }
      if (cost > K) {
        if (!states.has(fp)) {
          if (pendingCount === pendingHi.length) {
            const h = new Int32Array(2 * pendingCount);
            const l = new Int32Array(2 * pendingCount);
            h.set(pendingHi);
            l.set(pendingLo);
            pendingHi = h;
            pendingLo = l;
          }
          pendingHi[pendingCount] = fp.hi;
          pendingLo[pendingCount++] = fp.lo;
        }
        continue;
      }
      const cHi = fp.hi;
      const cLo = fp.lo;
      const fresh = states.arrive(fp, none, none);
      if (fresh) {
        pauseCount++;
        if (k2 === 0) counters.terminals++;
        if (states.size % o.every === 0) {
          o.onProgress?.({ states: states.size, transitions: counters.transitions, depth: d + 1, maxDepth: counters.maxDepth, queue: d + 1, elapsedMs: o.now() - o.start });
          if (o.now() - o.start > bounds.maxMillis) {
            counters.bound = 'time';
            return null;
          }
        }
        if (states.size >= bounds.maxStates) {
          counters.bound = 'states';
          return null;
        }
      }
      if (k2 === 0) continue;
      S.pushChild(d);
      const sent = sentPositions(d + 1, cm.sendsOf(e));
      nodeKey(key, cHi, cLo, rankMask(d + 1, sent));
      if (!nodes.lower(key, cost)) continue;
      choiceOf[d] = i;
      next[d + 1] = 0;
      pre[d + 1] = cost;
      sentBy[d + 1] = sent;
      top = d + 1;
      if (top > counters.maxDepth) counters.maxDepth = top;
    }
    return null;
  };
  const unreached = (): number => {
    let u = 0;
    const h = { hi: 0, lo: 0 };
    for (let j = 0; j < pendingCount; j++) {
      h.hi = pendingHi[j]!;
      h.lo = pendingLo[j]!;
      if (!states.has(h)) u++;
    }
    return u;
  };
  return { run, states, counters, overBound: () => overBound, unreached };
}
