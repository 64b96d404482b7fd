/**
 * Exploring a scenario's interleavings as a stream: what it searches, progress while it searches (and
 * while it minimises a finding), the finding, and the summary. `tdxsim explore` consumes this stream;
 * so can a program (`takeUntil`, `filter`, `bufferCount` …). The search itself is the explorer's
 * (src/explore/): the stream only gives the event loop a turn between slices of it, which changes no
 * state it visits and no verdict.
 */
import { Observable, filter, lastValueFrom, type OperatorFunction } from 'rxjs';
import { startExplore, type Bound, type ExploreBounds, type ExploreProgress, type ExploreResult, type Violation } from '../explore/explore.ts';
import type { Lasso } from '../explore/liveness/lasso.ts';
import { INVARIANTS, invariantNamed, invariantsOf, type Invariant } from '../explore/invariants/index.ts';
import { countPreemptions, minimise, type MinimiseProgress } from '../explore/minimise.ts';
import { exploreInWorkers } from '../explore/parallel.ts';
import { exploreThroughRedis, type RedisSearchRequest } from '../explore/redis/coordinator.ts';
import { startPreemptionBounded, type PreemptionLevel } from '../explore/preemptionBounded.ts';
import { PCT_DEPTH_DEFAULT, startSample, type SampleMode, type SampleResult } from '../explore/sample.ts';
import type { PolicyOverrides } from '../policies.ts';
import type { Model } from '../runtime/world.ts';
import type { Scenario } from '../scenario/schema.ts';
import { withPolicies } from './policies.ts';
import { modelFor } from './session.ts';

/**
 * `dfs`: every interleaving, depth-first; `random` / `pct`: seeded walks for spaces too large for that.
 */
export type ExploreMode = 'dfs' | SampleMode;
/** The search modes: `dfs` (exhaustive), `random` and `pct` (seeded walks). */
export const EXPLORE_MODES: readonly ExploreMode[] = ['dfs', 'random', 'pct'];

/** `tdxsim explore`'s defaults. */
export const EXPLORE_DEFAULTS = { maxDepth: 5_000, maxStates: 2_000_000, timeSeconds: 300, mode: 'dfs', seed: 0, walks: 10_000, pctDepth: PCT_DEPTH_DEFAULT, workers: 1 } as const;

/** What to search and how. Every field is optional: the defaults are `tdxsim explore`'s. */
export interface ExploreSettings {
  /**
   * Invariants by name (`tdxsim invariants`), or invariant objects.
   * @default the scenario's `invariants:`, else the library's defaults
   */
  invariants?: readonly string[] | readonly Invariant[];
  /** Policy switches to override (`tdxsim policies`). */
  policies?: PolicyOverrides;
  /** `dfs`: every interleaving, depth-first; `random` / `pct`: seeded walks. @default 'dfs' */
  mode?: ExploreMode;
  /** Walks' seed (random, pct). @default 0 */
  seed?: number;
  /** Walks to run (random, pct). @default 10000 */
  walks?: number;
  /** PCT's d. @default 3 */
  pctDepth?: number;
  /** Threads sharing the search, this one included. @default 1 */
  workers?: number;
  /**
   * dfs: search every schedule with at most K preemptions, for K = 0, 1 … this (src/explore/preemptionBounded.ts);
   * stops at the first violation or at a level that saw every state. One thread, no reduction.
   */
  preemptions?: number;
  /** With `preemptions`: only the level K itself, not the ones below. @default false */
  singleLevel?: boolean;
  /**
   * dfs: the persistent-set reduction on top of sleep sets (src/explore/reduction.ts): fewer states, the same
   * violations and end states; left off (with a note) when non-progress is checked. @default false
   */
  persistentSets?: boolean;
  /** Deliveries along one schedule. @default 5000 */
  maxDepth?: number;
  /** Distinct states. @default 2000000 */
  maxStates?: number;
  /** Wall-clock seconds. @default 300 */
  timeSeconds?: number;
  /** Minimise a finding (fewest steps, then fewest preemptions). @default true */
  minimise?: boolean;
  /**
   * Check non-progress cycles when the invariants include them (it needs the one-thread depth-first
   * search's state graph; elsewhere it is left out, with a note in `start`). @default true
   */
  nonProgress?: boolean;
  /**
   * Search through Redis with workers on any number of machines (src/explore/redis/): this process
   * coordinates, and searches too unless `searchHere` is false. Depth-first only.
   */
  redis?: Pick<RedisSearchRequest, 'url' | 'searchId' | 'searchHere' | 'leaseMs'>;
  /** A progress event every this many states (dfs) or walks (random, pct). @default 10000 / 1000 */
  progressEvery?: number;
  /**
   * Stop early and still get the summary so far: the search ends with bound `interrupted` (Ctrl-C in the
   * CLI). Unsubscribing also stops it, but then there is no one to tell.
   */
  signal?: AbortSignal;
}

/** Everything the search was asked to do, as `tdxsim explore` prints it first. */
export interface ExploreStart {
  type: 'start';
  scenario: Scenario;
  model: Model;
  invariants: readonly Invariant[];
  bounds: ExploreBounds;
  mode: ExploreMode;
  seed: number;
  walks: number;
  pctDepth: number;
  workers: number;
  /** Searching through Redis: where, and the search's id. */
  redis?: { url: string; searchId: string };
  /** What the search will not check and why (e.g. non-progress with walks or worker threads). */
  notes: string[];
  /** The preemption bound of a preemption-bounded search, else null. */
  preemptions: number | null;
  singleLevel: boolean;
  persistentSets: boolean;
}

/** A level of a preemption-bounded search is done: every schedule with at most `preemptions` preemptions was searched. */
export interface PreemptionLevelEvent extends PreemptionLevel {
  type: 'level';
}

/**
 * A reading of the search: states, transitions, depth, work queued, elapsed time, and the bounds they count
 * against.
 */
export interface SearchProgressEvent extends ExploreProgress {
  type: 'progress';
  phase: 'search';
  bounds: ExploreBounds;
}

/**
 * A reading of the minimiser: how deep its breadth-first search has gone without breaking the invariant.
 */
export interface MinimiseProgressEvent extends MinimiseProgress {
  type: 'progress';
  phase: 'minimise';
}

/** A violated invariant: the schedule that breaks it, minimised unless asked not to. */
export interface Finding {
  type: 'finding';
  invariant: string;
  /** The monitor's N, for a bounded monitor. */
  bound?: number;
  detail: string;
  /** Scheduler choices from the initial world; the last delivery breaks the invariant. */
  choices: number[];
  preemptions: number;
  /** The schedule as the search found it. */
  asFound: { steps: number; preemptions: number };
  /** How minimisation went: `minimal`, `bound` (state bound reached), `not-found`, or `off`. */
  minimised: 'minimal' | 'bound' | 'not-found' | 'off';
  /** States the breadth-first minimiser searched. */
  minimiserStates: number;
  /** A non-progress finding: the choices are the prefix and one turn of the loop. */
  lasso?: Lasso;
}

/** The end of an exploration: the search's summary and the finding, if any. */
export interface ExploreDone {
  type: 'done';
  result: ExploreResult | SampleResult;
  finding: Finding | null;
}

/**
 * What an exploration stream emits: `start`, progress (search, then minimisation), a `finding` if an
 * invariant broke, and `done`.
 */
export type ExploreEvent = ExploreStart | SearchProgressEvent | MinimiseProgressEvent | PreemptionLevelEvent | Finding | ExploreDone;

/** Invariant names (validated) or objects; none → the scenario's, else the defaults. */
export function resolveInvariants(scenario: Scenario, given: readonly string[] | readonly Invariant[] | undefined): Invariant[] {
  if (given === undefined) return invariantsOf(scenario.invariants);
  return given.map((g) => {
    if (typeof g !== 'string') return g;
    const spec = invariantNamed(g);
    if (spec === undefined) throw new RangeError(`unknown invariant "${g}"; known: ${INVARIANTS.map((i) => i.name).join(', ')}`);
    return spec.create();
  });
}

/** Why a search was not exhaustive, in the words of its summary. */
export function boundText(bound: Bound | null): string {
  return bound === null ? 'no bound' : bound === 'interrupted' ? 'interrupted' : `${bound} bound reached`;
}

/** States between two turns of the event loop, and walks: a slice takes tens of milliseconds. */
const DFS_SLICE = 4_096;
const WALK_SLICE = 32;

/**
 * Searches `scenario`'s interleavings once per subscription: `start`, progress events, a `finding` if an
 * invariant breaks (minimised), then `done` with the summary. The search runs in slices on this thread
 * (with `workers` > 1, on worker threads too), so the stream can be composed with timers and stopped.
 */
export function exploreScenario(scenario: Scenario, settings: ExploreSettings = {}): Observable<ExploreEvent> {
  return new Observable<ExploreEvent>((subscriber) => {
    const s = withPolicies(scenario, settings.policies);
    const model = modelFor(s);
    const mode = settings.mode ?? EXPLORE_DEFAULTS.mode;
    const workers = settings.workers ?? EXPLORE_DEFAULTS.workers;
    if (settings.redis !== undefined && mode !== 'dfs') throw new RangeError('--redis searches depth-first (--mode dfs), not by walks');
    const preemptions = settings.preemptions ?? null;
    const persistentSets = settings.persistentSets === true;
    const conflict =
      preemptions === null
        ? null
        : mode !== 'dfs'
          ? `a preemption bound applies to --mode dfs, not ${mode}`
          : workers > 1
            ? 'a preemption-bounded search runs on one thread (--workers 1)'
            : persistentSets
              ? 'a preemption-bounded search explores without reduction; drop --persistent-sets'
              : null;
    if (conflict !== null) throw new RangeError(conflict);
    if (persistentSets && (mode !== 'dfs' || workers > 1)) throw new RangeError(`persistent sets apply to a depth-first search on one thread (--mode dfs, --workers 1)`);
    const { invariants, notes } = withoutUncheckableLiveness(resolveInvariants(s, settings.invariants), settings.nonProgress !== false, mode, workers, preemptions !== null, settings.redis !== undefined);
    const liveness = invariants.find((i) => i.liveness === true);
    if (persistentSets && liveness !== undefined) notes.push(`persistent sets left off: ${liveness.name} needs the unreduced state graph (--no-non-progress to reduce)`);
    const bounds: ExploreBounds = {
      maxDepth: settings.maxDepth ?? EXPLORE_DEFAULTS.maxDepth,
      maxStates: settings.maxStates ?? EXPLORE_DEFAULTS.maxStates,
      maxMillis: (settings.timeSeconds ?? EXPLORE_DEFAULTS.timeSeconds) * 1000,
    };
    const seed = settings.seed ?? EXPLORE_DEFAULTS.seed;
    const walks = settings.walks ?? EXPLORE_DEFAULTS.walks;
    const pctDepth = settings.pctDepth ?? EXPLORE_DEFAULTS.pctDepth;
    const redis = settings.redis !== undefined ? { redis: { url: settings.redis.url, searchId: settings.redis.searchId } } : {};
    const singleLevel = settings.singleLevel === true;
    subscriber.next({ type: 'start', scenario: s, model, invariants, bounds, mode, seed, walks, pctDepth, workers, ...redis, notes, preemptions, singleLevel, persistentSets });
    const onProgress = (p: ExploreProgress) => subscriber.next({ type: 'progress', phase: 'search', bounds, ...p });
    let closed = false;

    const conclude = (result: ExploreResult | SampleResult) => {
      if (closed) return;
      const finding = result.violation === null ? null : findingOf(model, invariants, result.violation, bounds, settings.minimise !== false, (p) => subscriber.next({ type: 'progress', phase: 'minimise', ...p }));
      if (finding !== null) subscriber.next(finding);
      subscriber.next({ type: 'done', result, finding });
      subscriber.complete();
    };

    const names = settings.invariants === undefined ? s.invariants : invariants.map((i) => (i.bound === undefined ? i.name : { name: i.name, bound: i.bound }));
    if (settings.redis !== undefined) {
      exploreThroughRedis({ ...settings.redis, scenario: s, invariants: names, bounds }, { onProgress, ...(settings.signal !== undefined ? { signal: settings.signal } : {}) }).then(conclude, (e: unknown) => subscriber.error(e));
      return () => {
        closed = true;
      };
    }

    if (workers > 1) {
      const search = mode === 'dfs' ? { mode } : { mode, seed, walks, pctDepth };
      exploreInWorkers({ scenario: s, invariants: names, bounds, search, workers }, { onProgress, ...(settings.signal !== undefined ? { signal: settings.signal } : {}) }).then(conclude, (e: unknown) => subscriber.error(e));
      return () => {
        closed = true;
      };
    }

    const every = settings.progressEvery !== undefined ? { progressEvery: settings.progressEvery } : {};
    const x =
      preemptions !== null
        ? startPreemptionBounded(model, invariants, bounds, preemptions, { onProgress, pauseEvery: DFS_SLICE, only: singleLevel, onLevel: (l) => subscriber.next({ type: 'level', ...l }), ...every })
        : mode === 'dfs'
        ? startExplore(model, invariants, bounds, { onProgress, pauseEvery: DFS_SLICE, persistentSets, ...every })
        : startSample(model, invariants, { ...bounds, walks }, { mode, seed, pctDepth, onProgress, pauseEvery: WALK_SLICE, ...(settings.progressEvery !== undefined ? { progressEvery: settings.progressEvery } : {}) });
    let timer: ReturnType<typeof setImmediate> | null = null;
    const onAbort = () => x.interrupt();
    settings.signal?.addEventListener('abort', onAbort, { once: true });
    const slice = () => {
      timer = null;
      try {
        if (settings.signal?.aborted) x.interrupt();
        if (!x.step()) {
          timer = setImmediate(slice);
          return;
        }
        settings.signal?.removeEventListener('abort', onAbort);
        conclude(x.result());
      } catch (e) {
        subscriber.error(e);
      }
    };
    slice();
    return () => {
      closed = true;
      settings.signal?.removeEventListener('abort', onAbort);
      if (timer !== null) clearImmediate(timer);
    };
  });
}

/**
 * The non-progress check needs the one-thread depth-first search's state graph (src/explore/liveness/); with
 * walks or worker threads, or when turned off, it is left out, and said so unless turned off.
 */
function withoutUncheckableLiveness(invariants: Invariant[], wanted: boolean, mode: ExploreMode, workers: number, bounded: boolean, redis: boolean): { invariants: Invariant[]; notes: string[] } {
  const liveness = invariants.filter((i) => i.liveness === true);
  if (liveness.length === 0 || (wanted && mode === 'dfs' && workers === 1 && !bounded && !redis)) return { invariants, notes: [] };
  const why = bounded
    ? 'it needs the state graph of the whole space, which a preemption-bounded search does not visit'
    : `it needs the state graph of a depth-first search on one thread (--mode dfs, --workers 1${redis ? ', not through Redis' : ''})`;
  const notes = wanted ? [`${liveness.map((i) => i.name).join(', ')} not checked: ${why}`] : [];
  return { invariants: invariants.filter((i) => i.liveness !== true), notes };
}

/** A violation as the search found it, then minimised (breadth-first over the same choices). */
function findingOf(model: Model, invariants: readonly Invariant[], v: Violation, bounds: ExploreBounds, doMinimise: boolean, onProgress: (p: MinimiseProgress) => void): Finding {
  const inv = invariants.find((i) => i.name === v.invariant)!;
  const asFound = { steps: v.choices.length, preemptions: countPreemptions(model, v.choices) };
  const base = { type: 'finding' as const, invariant: v.invariant, ...(inv.bound !== undefined ? { bound: inv.bound } : {}), asFound };
  // A lasso is already as short as the state graph makes it (src/explore/liveness): prefix by breadth-first
  // search, loop by the shortest fair cycle found; the breadth-first minimiser knows only safety violations.
  if (v.lasso !== undefined) return { ...base, detail: v.detail, choices: v.choices, preemptions: asFound.preemptions, minimised: 'off', minimiserStates: 0, lasso: v.lasso };
  if (!doMinimise) return { ...base, detail: v.detail, choices: v.choices, preemptions: asFound.preemptions, minimised: 'off', minimiserStates: 0 };
  const m = minimise(model, inv, { maxStates: bounds.maxStates, maxDepth: v.choices.length, onProgress });
  if (m.status === 'minimal') return { ...base, detail: m.counterexample.detail, choices: m.counterexample.choices, preemptions: m.counterexample.preemptions, minimised: 'minimal', minimiserStates: m.states };
  return { ...base, detail: v.detail, choices: v.choices, preemptions: asFound.preemptions, minimised: m.status, minimiserStates: m.states };
}

/** Only the progress events (of the search and of minimisation). */
export const explorationProgress = (): OperatorFunction<ExploreEvent, SearchProgressEvent | MinimiseProgressEvent> =>
  filter((e): e is SearchProgressEvent | MinimiseProgressEvent => e.type === 'progress');

/** Only the finding (at most one). */
export const findings = (): OperatorFunction<ExploreEvent, Finding> => filter((e): e is Finding => e.type === 'finding');

/** Only the summary at the end. */
export const explorationDone = (): OperatorFunction<ExploreEvent, ExploreDone> => filter((e): e is ExploreDone => e.type === 'done');

/** The summary of `exploreScenario`, as a promise. */
export function exploreToEnd(scenario: Scenario, settings: ExploreSettings = {}): Promise<ExploreDone> {
  return lastValueFrom(exploreScenario(scenario, settings).pipe(explorationDone()));
}
