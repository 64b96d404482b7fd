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
import { initialWorld } from '../runtime/step.ts';
import type { Model } from '../runtime/world.ts';
import { CompiledModel } from './compiledModel.ts';
import { InvariantChecks } from './checks.ts';
import { CLAIM_WORDS, Channels, depthFirstRun, noSleep, PAUSED, RESTART, type Bound, type Search, type SearchCounters, type Violation } from './depthFirst.ts';
import { PersistentSets, Topology } from './reduction.ts';
import { fingerprint } from './fingerprint.ts';
import type { Invariant } from './invariants/index.ts';
import { StateGraph, type FrozenGraph } from './liveness/stateGraph.ts';
import { findNonProgress } from './liveness/nonProgress.ts';
import { buildLasso } from './liveness/lasso.ts';
import { progressThreadsOf, type ProgressThread } from './progress.ts';
import { StateTable } from './stateTable.ts';

export { CLAIM_WORDS, Channels, depthFirst, depthFirstRun, noSleep, PAUSED, RESTART, type Bound, type Search, type SearchCounters, type Violation } from './depthFirst.ts';

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
  /**
   * The persistent-set reduction on top of sleep sets (reduction.ts; default off): deliveries to an actor
   * only one actor ever sends to, and that no invariant sees, are explored alone. Fewer states, the same
   * violations and end states. Not with the non-progress check, whose graph must be the unreduced one:
   * with a liveness invariant it is left off and `ExploreResult.reductionOff` says why.
   */
  persistentSets?: boolean | { walks: number };
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
  /** The persistent-set reduction, when asked for: how often the search started again on a channel the topology lacked. */
  persistentSets?: { restarts: number; channels: number } | null;
  /** Why an asked-for persistent-set reduction was left off. */
  reductionOff?: string;
  /** A preemption-bounded search (preemptionBounded.ts): the bound and each level run, the last one last. */
  preemptions?: { bound: number; levels: import('./preemptionBounded.ts').PreemptionLevel[] };
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
  const compiled = new CompiledModel(model, { memoise: opts.cache !== false });
  const channels = opts.reduction === false ? null : new Channels(model);
  const counters: SearchCounters = { transitions: 0, maxDepth: 0, terminals: 0, bound: null };
  const every = opts.progressEvery ?? 10_000;
  const pauseEvery = opts.pauseEvery ?? 0;
  let depth = 0;
  const liveness = invariants.find((i) => i.liveness === true);
  const safety = invariants.filter((i) => i.liveness !== true);
  const reductionOff =
    !opts.persistentSets ? undefined : liveness !== undefined ? `${liveness.name} needs the unreduced state graph` : channels === null ? 'it works with sleep sets, which are off' : undefined;
  // The topology's first guess comes from seeded walks (`walks: 0`: the initial world's channels only).
  const topology = opts.persistentSets && reductionOff === undefined ? Topology.learn(compiled, opts.persistentSets === true ? undefined : opts.persistentSets.walks) : null;
  let restarts = 0;
  // Room for the first 60,000 states (0.6 MB): growing through the small sizes costs more than it saves.
  let visited = new StateTable(channels === null ? 0 : CLAIM_WORDS, 1 << 16);
  let graph = liveness === undefined ? null : new StateGraph(model, (opts.progressThreads ?? progressThreadsOf)(model));
  const search: Search = {
    model,
    compiled,
    checks: new InvariantChecks(model, safety),
    persistent: topology === null ? null : new PersistentSets(compiled, topology, safety),
    graph,
    visited,
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
  const begin = () => {
    const all = noSleep(channels === null ? 0 : CLAIM_WORDS);
    visited.arrive(fingerprint(model, root), all, all);
    counters.terminals = root.pending.length === 0 ? 1 : 0;
    return depthFirstRun(search, root, [], channels === null ? null : all);
  };
  let run = begin();
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
      if (r === RESTART) {
        // A send outside the learnt topology: start again with it (reduction.ts).
        restarts++;
        search.persistent!.refresh();
        visited = search.visited = new StateTable(CLAIM_WORDS, 1 << 16);
        Object.assign(counters, { transitions: 0, maxDepth: 0, terminals: 0, bound: null });
        run = begin();
        return false;
      }
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
        cacheHitRate: compiled.hits + compiled.misses === 0 ? 0 : compiled.hits / (compiled.hits + compiled.misses),
        violation: v,
        ...(liveness === undefined ? {} : { liveness: livenessSummary }),
        ...(opts.persistentSets ? { persistentSets: topology === null ? null : { restarts, channels: topology.allowed.reduce((a, b) => a + b, 0) } } : {}),
        ...(reductionOff !== undefined ? { reductionOff } : {}),
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
