/**
 * One thread's share of a parallel exploration (parallel.ts), the same code on the main thread and in
 * each worker thread (exploreWorker.ts): take frontier schedules and search depth-first from each with
 * the shared visited table, or take walk indices and run those walks, until nothing is left or the
 * shared stop flag is up. A thread builds its own model, invariants and transition cache from the job's
 * data: functions do not cross a thread boundary, and the model is deterministic, so every thread's
 * model steps exactly like the others.
 */
import type { Scenario } from '../scenario/schema.ts';
import { actorsFor } from '../../machines/registry.ts';
import { enabledChoices, initialWorld, step } from '../runtime/step.ts';
import { createModel, type Model, type World } from '../runtime/world.ts';
import { CLAIM_WORDS, depthFirst, Channels, noSleep, RESTART, type Bound, type ExploreBounds, type Search, type SearchCounters, type Violation } from './explore.ts';
import { CompiledModel } from './compiledModel.ts';
import { InvariantChecks } from './checks.ts';
import { fingerprint } from './fingerprint.ts';
import { invariantsOf, type Invariant } from './invariants/index.ts';
import { sample, type SampledViolation, type SampleMode } from './sample.ts';
import { SharedStateTable, type SharedTableBuffers } from './sharedStateTable.ts';
import { TransitionCache } from './transitionCache.ts';

/** A scenario's `invariants:` entries or the command line's names; undefined: the library's defaults. */
export type InvariantEntries = Scenario['invariants'];

export type ParallelSearch = { mode: 'dfs' } | { mode: SampleMode; seed: number; walks: number; pctDepth: number };

/** Slots of the control words every thread shares. */
export const CONTROL = {
  /** Why the threads stop: 0 running, else one of STOP. */
  stop: 0,
  /** The next frontier entry or walk to take. */
  next: 1,
  /** Sampling: the lowest walk that broke an invariant so far. */
  firstViolatingWalk: 2,
  length: 3,
} as const;
/** `interrupted`: the user stopped the search (Ctrl-C, an aborted signal). */
export const STOP = { violation: 1, states: 2, time: 3, error: 4, interrupted: 5 } as const;

/** Per thread, in a shared Float64Array: what progress lines show while the threads run. */
export const STATS = { transitions: 0, maxDepth: 1, depth: 2, length: 3 } as const;

/** What a thread gets (structured-cloned into a worker; the buffers are shared, not copied). */
export interface ShareJob {
  /** 0 is the main thread. */
  thread: number;
  scenario: Scenario;
  invariants: InvariantEntries;
  bounds: ExploreBounds;
  search: ParallelSearch;
  table: SharedTableBuffers;
  control: SharedArrayBuffer;
  stats: SharedArrayBuffer;
}

export interface ShareReport {
  transitions: number;
  maxDepth: number;
  terminals: number;
  walks: number;
  walksCut: number;
  cacheHits: number;
  cacheMisses: number;
  /** A bound the thread itself hit (depth), if any. */
  bound: Bound | null;
  violation: Violation | SampledViolation | null;
  /** From the share's start to its end: how evenly the work was spread. */
  busyMs: number;
  /** Depth-first: the states this thread entered first (0 for walks, whose tables do not say). */
  newStates: number;
}

export function modelOfScenario(scenario: Scenario): Model {
  return createModel(actorsFor(scenario));
}

/** A thread's own model, invariants, transition cache (for walks) and compiled model (for the depth-first search). */
export interface ShareLocals {
  model: Model;
  invariants: readonly Invariant[];
  cache: TransitionCache;
  compiled: CompiledModel;
}

export function shareLocals(job: ShareJob): ShareLocals {
  const model = modelOfScenario(job.scenario);
  return { model, invariants: invariantsOf(job.invariants), cache: new TransitionCache(), compiled: new CompiledModel(model) };
}

/**
 * Runs a thread's share; `frontier` holds the depth-first search's schedules (none for walks). `tick` is
 * called every few hundred new states or after each walk; the main thread reports progress and watches
 * the clock there, since its timers cannot fire while it searches.
 */
export function runShare(job: ShareJob, frontier: readonly number[][], locals: ShareLocals, tick: () => void = () => {}): ShareReport {
  const started = performance.now();
  const ctl = new Int32Array(job.control);
  const stat = new Float64Array(job.stats, 8 * STATS.length * job.thread, STATS.length);
  const { model, invariants, cache, compiled } = locals;
  const table = new SharedStateTable(job.table);
  const stopped = (): boolean => Atomics.load(ctl, CONTROL.stop) !== 0;
  const publish = (transitions: number, maxDepth: number, depth: number) => {
    stat[STATS.transitions] = transitions;
    stat[STATS.maxDepth] = maxDepth;
    stat[STATS.depth] = depth;
    tick();
  };

  if (job.search.mode === 'dfs') {
    const channels = new Channels(model);
    const counters: SearchCounters = { transitions: 0, maxDepth: 0, terminals: 0, bound: null };
    let news = 0;
    const search: Search = {
      model,
      compiled,
      checks: new InvariantChecks(model, invariants),
      visited: table,
      channels,
      maxDepth: job.bounds.maxDepth,
      counters,
      afterNewState(depth) {
        if ((++news & 0xff) === 0) publish(counters.transitions, counters.maxDepth, depth);
        if (stopped()) return true;
        if (table.size < job.bounds.maxStates) return false;
        Atomics.compareExchange(ctl, CONTROL.stop, 0, STOP.states);
        counters.bound = 'states';
        return true;
      },
    };
    const explore = noSleep(CLAIM_WORDS);
    let violation: Violation | null = null;
    // The worlds along the last schedule rebuilt: frontier entries come in breadth-first order, so the
    // next one a thread takes mostly shares a long prefix with it, and only the rest is stepped again.
    const root = initialWorld(model);
    let trailPath: readonly number[] = [];
    const trail: World[] = [];
    for (let i = Atomics.add(ctl, CONTROL.next, 1); i < frontier.length && !stopped(); i = Atomics.add(ctl, CONTROL.next, 1)) {
      const path = frontier[i]!;
      let shared = 0;
      while (shared < path.length && shared < trailPath.length && path[shared] === trailPath[shared]) shared++;
      trail.length = shared;
      let world = shared === 0 ? root : trail[shared - 1]!;
      for (let k = shared; k < path.length; k++) {
        world = step(model, world, path[k]!, enabledChoices(model, world), cache.transition).world;
        trail.push(world);
      }
      trailPath = path;
      // Another thread may have come this way already: explore only what it has not claimed.
      table.arrive(fingerprint(model, world), noSleep(CLAIM_WORDS), explore);
      if (explore.every((w) => w === 0)) continue;
      const found = depthFirst(search, world, path, explore);
      // Worker threads run without the persistent-set reduction, the only source of a restart.
      if (found === RESTART) throw new Error('model bug: a worker search asked for a restart');
      violation = found;
      if (violation !== null) {
        Atomics.compareExchange(ctl, CONTROL.stop, 0, STOP.violation);
        break;
      }
    }
    return { ...counters, walks: 0, walksCut: 0, cacheHits: compiled.hits + cache.hits, cacheMisses: compiled.misses + cache.misses, violation, busyMs: performance.now() - started, newStates: news };
  }

  const { walks, seed, pctDepth, mode } = job.search;
  const first = (): number => Atomics.load(ctl, CONTROL.firstViolatingWalk);
  const r = sample(model, invariants, { ...job.bounds, walks }, {
    mode,
    seed,
    pctDepth,
    visited: table,
    transitionCache: cache,
    // Walks after a violating one are not needed: the lowest violating walk is the result.
    nextWalk: () => {
      const i = Atomics.add(ctl, CONTROL.next, 1);
      return i < walks && i < first() ? i : null;
    },
    stopped: (walk) => stopped() || walk > first(),
    onProgress: (p) => publish(p.transitions, p.maxDepth, p.depth),
    progressEvery: 1,
  });
  if (r.violation !== null) {
    // Atomic minimum: the lowest walk that broke an invariant.
    for (let cur = first(); r.violation.walk < cur; cur = first()) if (Atomics.compareExchange(ctl, CONTROL.firstViolatingWalk, cur, r.violation.walk) === cur) break;
  }
  // A bound one thread hits ends the run for all of them.
  if (r.bound === 'states') Atomics.compareExchange(ctl, CONTROL.stop, 0, STOP.states);
  if (r.bound === 'time') Atomics.compareExchange(ctl, CONTROL.stop, 0, STOP.time);
  return {
    transitions: r.transitions,
    maxDepth: r.maxDepth,
    terminals: r.terminals,
    walks: r.walks,
    walksCut: r.walksCut,
    cacheHits: r.cacheHits,
    cacheMisses: r.cacheMisses,
    bound: null,
    violation: r.violation,
    busyMs: performance.now() - started,
    newStates: 0,
  };
}
