/**
 * Exhaustive exploration of a model's interleavings: depth-first over the scheduler's choices (the only
 * nondeterminism, architecture.md), with a visited set of state fingerprints (fingerprint.ts) so a state
 * reached by two schedules is expanded once. After every delivery the invariants are checked; the first
 * violation stops the search and is returned with the choices that lead to it, which replay exactly.
 *
 * Reduction (sleep sets, Godefroid 1996): two deliveries to different actors commute — each changes only
 * its receiver and appends to queues the other does not read from the head of — so after exploring
 * delivery t from a state, the sibling branches need not try t again until a delivery to t's receiver
 * has happened. Sleep sets prune transitions, never states: every reachable state is still visited and
 * checked. With a visited set that is only true if a state revisited with a smaller sleep set explores
 * what the earlier visit slept on, so each state keeps the channels its visits have claimed — the
 * complement of the intersection of their sleep sets (stateTable.ts), which is also what lets worker
 * threads share one table (parallel.ts). test/explore/explore.test.ts compares the count with an
 * unreduced breadth-first search.
 * A transition is identified by its channel (sender, receiver), since only a channel's oldest message is
 * deliverable.
 *
 * Bounds: depth (deliveries along one schedule), distinct states and wall time. A search that hit none of
 * them and found nothing is exhaustive for the scenario: every reachable state was checked.
 *
 * Liveness: with a `liveness` invariant (non-progress) the search also records the unreduced state graph
 * (liveness/stateGraph.ts: a state's pruned deliveries are recorded at its first visit too), and when it ends
 * clean the graph is searched for fair non-progress cycles (liveness/nonProgress.ts); one is reported as a
 * violation whose choices are a lasso, prefix then one turn of the loop.
 */
import type { Message } from '../protocol/messages.ts';
import { enabledChoices, initialWorld, runTransition, step, type ActorTransition } from '../runtime/step.ts';
import type { Model, World } from '../runtime/world.ts';
import { fingerprint } from './fingerprint.ts';
import type { Invariant } from './invariants/index.ts';
import { StateGraph, type FrozenGraph } from './liveness/stateGraph.ts';
import { findNonProgress } from './liveness/nonProgress.ts';
import { buildLasso, type Lasso } from './liveness/lasso.ts';
import { progressThreadsOf, type ProgressThread } from './progress.ts';
import { StateTable, type VisitedSet } from './stateTable.ts';
import { TransitionCache } from './transitionCache.ts';

/**
 * What stops a search before it is exhaustive: deliveries along one schedule, distinct states, wall-clock
 * milliseconds.
 */
export interface ExploreBounds {
  maxDepth: number;
  maxStates: number;
  /** Wall-clock limit in ms; the clock is read only between states, never by the model. */
  maxMillis: number;
}

/**
 * Tuning and instrumentation of a search: progress callback and interval, the reduction and the transition
 * cache (both on by default).
 */
export interface ExploreOptions {
  now?: () => number;
  onProgress?: (p: ExploreProgress) => void;
  progressEvery?: number;
  /** Sleep-set reduction (default on). Off explores every transition, for comparison. */
  reduction?: boolean;
  /** Memoised actor transitions (default on). */
  cache?: boolean;
  /** The progress threads of the non-progress check (default: progressThreadsOf the model). */
  progressThreads?: (model: Model) => ProgressThread[];
  /** Called with the recorded state graph before the non-progress check runs on it (tests compare it with their own). */
  onGraph?: (g: FrozenGraph) => void;
}

/** Counters of a running search, for progress displays. */
export interface ExploreProgress {
  states: number;
  transitions: number;
  depth: number;
  maxDepth: number;
  /** Work waiting: frames on the stack, frontier entries no worker has taken, or walks not yet run. */
  queue: number;
  elapsedMs: number;
}

/** What stopped a search that was not exhaustive; sampling adds its walk budget. */
/** `interrupted`: stopped from outside (Ctrl-C, an unsubscribed stream, an aborted signal). */
export type Bound = 'depth' | 'states' | 'time' | 'walks' | 'interrupted';

/**
 * An invariant that broke, its words, and the scheduler choices that lead there from the initial world.
 */
export interface Violation {
  invariant: string;
  detail: string;
  /** Scheduler choices from the initial world; the last delivery is the violating one. */
  choices: number[];
  /** A non-progress finding: the choices are the prefix and one turn of the loop. */
  lasso?: Lasso;
}

/** How the non-progress check went (null in ExploreResult when it did not run). */
export interface LivenessSummary {
  /** Every reachable state was in the graph with all its deliveries: no finding means there is none. */
  exhaustive: boolean;
  states: number;
  edges: number;
  /** Edges the sleep sets pruned from the search, which the graph records all the same. */
  prunedEdges: number;
  bytes: number;
  /** Time of the graph search after the depth-first search (recording is in the search's own time). */
  checkMs: number;
  /** Components of the graph holding a finding. */
  findings: number;
}

/**
 * A search's summary: clean or a violation, whether it was exhaustive or which bound stopped it, and its
 * counts.
 */
export interface ExploreResult {
  status: 'clean' | 'violation';
  /** Every reachable state was visited (no bound was hit). */
  exhaustive: boolean;
  /** Which bound stopped the search, if one did. */
  bound: Bound | null;
  states: number;
  transitions: number;
  maxDepth: number;
  /** Schedules that ran to quiescence (no message in flight). */
  terminals: number;
  elapsedMs: number;
  /** Bytes held by the visited set at the end. */
  visitedBytes: number;
  /** Share of deliveries answered from the transition cache. */
  cacheHitRate: number;
  violation: Violation | null;
  /** The non-progress check, when a `liveness` invariant asked for it. */
  liveness?: LivenessSummary | null;
  /** With worker threads, per thread (the main one first): its time from start to report, and the states it entered first (parallel.ts). */
  threads?: { busyMs: number; newStates: number }[];
}

interface Frame {
  world: World;
  enabled: readonly Message[];
  /** Indices into `enabled` still to explore from this visit. */
  todo: number[];
  next: number;
  /** The sleep set this visit arrived with, plus every channel explored from it so far. */
  sleep: Uint32Array;
  /** The state's node in the liveness graph (−1 without one), and whether this visit records its edges. */
  node: number;
  record: boolean;
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

const has = (set: Uint32Array, c: number): boolean => (set[c >>> 5]! & (1 << (c & 31))) !== 0;

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
  invariants: readonly Invariant[];
  visited: VisitedSet;
  transition: ActorTransition;
  /** Null without the sleep-set reduction. */
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

/**
 * Depth-first from `root`, reached by `prefix` and already in the visited set, exploring the channels in
 * `explore` (null: every enabled delivery). The first violation ends it, with its choices from the
 * initial world; null when the subtree is done or `afterNewState` stopped it.
 */
export function depthFirst(search: Search, root: World, prefix: readonly number[], explore: Uint32Array | null): Violation | null {
  const run = depthFirstRun(search, root, prefix, explore);
  for (;;) {
    const r = run();
    if (r !== PAUSED) return r;
  }
}

/** What a resumable search returns when `Search.pause` asked it to stop for now. */
export const PAUSED = Symbol('paused');

/**
 * `depthFirst` as a function that can be called again: when `search.pause` is set it returns PAUSED at
 * the top of its loop, where the stack is consistent, and the next call carries on from there. That is
 * what lets an exploration give the event loop a turn (Ctrl-C, a stream's unsubscribe, progress on a
 * terminal) without a worker thread and without changing which states are visited.
 */
export function depthFirstRun(search: Search, root: World, prefix: readonly number[], explore: Uint32Array | null): () => Violation | null | typeof PAUSED {
  const { model, invariants, visited, transition, counters } = search;
  const ch = search.channels;
  const words = ch?.words ?? 0;
  const empty = noSleep(words);
  const scratch = noSleep(words);

  const graph = search.graph ?? null;

  /** `via`: the frame's parent node and the channel delivered from it, for the graph's diamond lookups. */
  const frameFor = (world: World, sleep: Uint32Array, only: Uint32Array | null, node: number, record: boolean, viaNode = -1, viaChannel = -1): Frame => {
    const enabled = enabledChoices(model, world);
    const todo: number[] = [];
    for (let i = 0; i < enabled.length; i++) if (only === null || has(only, ch!.of(enabled[i]!))) todo.push(i);
    if (record) {
      // The first visit records every edge: the pruned ones here, the others as they are explored.
      graph!.expand(node, enabled.length);
      for (let i = 0, t = 0; i < enabled.length; i++) {
        if (todo[t] === i) {
          t++;
          continue;
        }
        if (viaNode >= 0 && graph!.diamond(node, graph!.channelOf(enabled[i]!), viaNode, viaChannel)) continue;
        const r = step(model, world, i, enabled, transition);
        graph!.edge(node, graph!.node(fingerprint(model, r.world), r.world), world, r, true);
      }
    }
    return { world, enabled, todo, next: 0, sleep, node, record };
  };

  const rootNode = graph === null ? -1 : graph.node(fingerprint(model, root), root);
  const stack: Frame[] = [frameFor(root, empty.slice(), explore, rootNode, graph !== null)];
  /** choices[k] led from stack[k] to stack[k + 1]; entries past the top frame are stale. */
  const choices: number[] = [];
  const base = prefix.length;
  return () => {
    while (stack.length > 0) {
      if (search.pause) {
        search.pause = false;
        return PAUSED;
      }
      const top = stack[stack.length - 1]!;
      if (top.next >= top.todo.length) {
        stack.pop();
        continue;
      }
      const choice = top.todo[top.next++]!;
      if (base + stack.length > search.maxDepth) {
        counters.bound = 'depth';
        continue;
      }
      const r = step(model, top.world, choice, top.enabled, transition);
      counters.transitions++;
      for (const inv of invariants) {
        const problem = inv.check(model, top.world, r.world, r.delivered);
        if (problem !== null) return { invariant: inv.name, detail: problem, choices: [...prefix, ...choices.slice(0, stack.length - 1), choice] };
      }
      // The child's sleep set: what this frame sleeps on (including siblings already explored) and does
      // not depend on this delivery, i.e. goes to another receiver. Then this channel counts as explored.
      let childSleep = empty;
      if (ch !== null) {
        const into = ch.into[model.indexOf.get(r.delivered.to)!]!;
        childSleep = new Uint32Array(words);
        for (let w = 0; w < words; w++) childSleep[w] = top.sleep[w]! & ~into[w]!;
        const c = ch.of(r.delivered);
        top.sleep[c >>> 5]! |= 1 << (c & 31);
      }
      const fp = fingerprint(model, r.world);
      const child = graph === null ? -1 : graph.node(fp, r.world);
      if (top.record) graph!.edge(top.node, child, top.world, r, false);
      // A revisit explores what earlier arrivals slept on and this one does not (stateTable.ts).
      const fresh = visited.arrive(fp, childSleep, scratch);
      if (fresh) {
        if (search.afterNewState(base + stack.length)) return null;
        if (r.world.pending.length === 0) {
          counters.terminals++;
          graph?.expand(child, 0);
          continue;
        }
      } else {
        let any = 0;
        for (let w = 0; w < words; w++) any |= scratch[w]!;
        if (any === 0) continue;
      }
      choices.length = stack.length - 1;
      choices.push(choice);
      stack.push(frameFor(r.world, childSleep, ch === null ? null : scratch, child, fresh && graph !== null, top.node, graph === null ? -1 : graph.channelOf(r.delivered)));
      counters.maxDepth = Math.max(counters.maxDepth, base + stack.length - 1);
    }
    return null;
  };
}

/**
 * A depth-first exploration set up but not yet run: `step()` advances it until it is done or pauses (every
 * `pauseEvery` new states), `result()` describes it at any time (the summary so far, if interrupted).
 */
export interface Exploration {
  step(): boolean;
  /** Stop for good: the result reports `bound: 'interrupted'` unless the search had already finished. */
  interrupt(): void;
  result(): ExploreResult;
}

/**
 * The same search as `explore`, set up to be run a slice at a time (`step()`), interrupted, and summarised
 * at any point. The non-progress check, if asked for, runs on the recorded graph when the search is done.
 */
export function startExplore(model: Model, invariants: readonly Invariant[], bounds: ExploreBounds, opts: ExploreOptions & { pauseEvery?: number } = {}): Exploration {
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const cache = opts.cache === false ? null : new TransitionCache();
  const channels = opts.reduction === false ? null : new Channels(model);
  const visited = new StateTable(channels?.words ?? 0);
  const counters: SearchCounters = { transitions: 0, maxDepth: 0, terminals: 0, bound: null };
  const every = opts.progressEvery ?? 10_000;
  const pauseEvery = opts.pauseEvery ?? 0;
  let depth = 0;
  const liveness = invariants.find((i) => i.liveness === true);
  const graph = liveness === undefined ? null : new StateGraph(model, (opts.progressThreads ?? progressThreadsOf)(model));
  const search: Search = {
    model,
    invariants: invariants.filter((i) => i.liveness !== true),
    graph,
    visited,
    transition: cache?.transition ?? runTransition,
    channels,
    maxDepth: bounds.maxDepth,
    counters,
    afterNewState(d) {
      depth = d;
      if (pauseEvery > 0 && visited.size % pauseEvery === 0) search.pause = true;
      if (visited.size % every === 0) {
        opts.onProgress?.({ states: visited.size, transitions: counters.transitions, depth, maxDepth: counters.maxDepth, queue: depth, elapsedMs: now() - start });
        if (now() - start > bounds.maxMillis) {
          counters.bound = 'time';
          return true;
        }
      }
      if (visited.size >= bounds.maxStates) {
        counters.bound = 'states';
        return true;
      }
      return false;
    },
  };

  const root = initialWorld(model);
  const all = noSleep(channels?.words ?? 0);
  visited.arrive(fingerprint(model, root), all, all);
  if (root.pending.length === 0) counters.terminals++;
  const run = depthFirstRun(search, root, [], channels === null ? null : all);
  let done = false;
  let violation: Violation | null = null;
  let livenessSummary: LivenessSummary | null = null;
  let elapsed = 0;
  const finish = (v: Violation | null) => {
    violation = v;
    // An interrupted search's graph is a fragment: checking it would report loops that are not there.
    if (graph !== null && violation === null && counters.bound !== 'interrupted') {
      const checkStart = now();
      const bytes = graph.bytes;
      const g = graph.freeze();
      opts.onGraph?.(g);
      const found = findNonProgress(g);
      if (found.lasso !== null) {
        const built = buildLasso(model, g, found.lasso);
        violation = { invariant: liveness!.name, detail: built.detail, choices: built.choices, lasso: built.lasso };
      }
      let pruned = 0;
      for (let e = 0; e < g.edges; e++) pruned += g.pruned[e]!;
      livenessSummary = { exhaustive: counters.bound === null, states: g.nodes, edges: g.edges, prunedEdges: pruned, bytes, checkMs: now() - checkStart, findings: found.findings.length };
    }
    done = true;
    elapsed = now() - start;
  };
  return {
    step() {
      if (done) return true;
      const r = run();
      if (r !== PAUSED) finish(r);
      return done;
    },
    interrupt() {
      if (done) return;
      counters.bound = 'interrupted';
      finish(null);
    },
    result(): ExploreResult {
      const v = violation as Violation | null;
      return {
        status: v === null ? 'clean' : 'violation',
        exhaustive: done && v === null && counters.bound === null,
        bound: counters.bound,
        states: visited.size,
        transitions: counters.transitions,
        maxDepth: counters.maxDepth,
        terminals: counters.terminals,
        elapsedMs: done ? elapsed : now() - start,
        visitedBytes: visited.bytes,
        cacheHitRate: cache === null || counters.transitions === 0 ? 0 : cache.hits / (cache.hits + cache.misses),
        violation: v,
        ...(liveness === undefined ? {} : { liveness: livenessSummary }),
      };
    },
  };
}

/**
 * Depth-first search of every interleaving of a model, checking the invariants after each delivery;
 * synchronous. Stops at the first violation or a bound.
 */
export function explore(model: Model, invariants: readonly Invariant[], bounds: ExploreBounds, opts: ExploreOptions = {}): ExploreResult {
  const x = startExplore(model, invariants, bounds, opts);
  while (!x.step());
  return x.result();
}
