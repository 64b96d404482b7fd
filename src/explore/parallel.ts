/**
 * The explorer on several cores: the main thread and `workers − 1` worker threads each run a share of
 * the search (share.ts) against one visited table (sharedStateTable.ts). The main thread takes a share
 * rather than waiting: its code is already compiled by the time the workers have started.
 *
 * Depth-first: the main thread first searches breadth-first, without reduction, until a layer is wide
 * enough to keep every thread busy (or a few thousand states are seen); that layer is the frontier. Each
 * entry is a schedule (choices from the initial world); a thread takes the next entry from a shared
 * counter, steps its model along it and searches depth-first from there with sleep sets, as the
 * one-thread search does. Whatever order the threads reach states in, every reachable state is visited —
 * sleep sets prune transitions, and the shared table's claimed channels keep the revisit rule per state —
 * so an exhaustive search counts the same states with any number of workers (test/explore/workers.test.ts);
 * transitions, the maximum depth and the schedule a violation is first found along depend on timing. The
 * first violation stops every thread; the caller minimises it, and minimisation does not depend on which
 * schedule it started from.
 *
 * Random and PCT walks: walk i is a function of the seed and i (sample.ts), so the threads take walk
 * indices from a shared counter. A violation in walk v stops the walks after v but not those before it,
 * and the lowest violating walk is the result: the one a single thread would have reported. Its counts
 * (states, transitions, walks) include what the other threads had run meanwhile.
 */
import { Worker } from 'node:worker_threads';
import type { Scenario } from '../scenario/schema.ts';
import type { Model, World } from '../runtime/world.ts';
import { enabledChoices, initialWorld, step } from '../runtime/step.ts';
import { ModelBug } from '../runtime/errors.ts';
import { invariantsOf, type Invariant } from './invariants/index.ts';
import { CLAIM_WORDS, noSleep, type Bound, type ExploreBounds, type ExploreProgress, type ExploreResult, type Violation } from './explore.ts';
import { fingerprint } from './fingerprint.ts';
import type { Hash64 } from './structuralHash.ts';
import { SharedStateTable } from './sharedStateTable.ts';
import { pctSteps, type SampledViolation, type SampleResult } from './sample.ts';
import { CONTROL, modelOfScenario, runShare, STATS, STOP, type InvariantEntries, type ParallelSearch, type ShareJob, type ShareReport } from './share.ts';
import type { WorkerReport } from './exploreWorker.ts';
import { TransitionCache } from './transitionCache.ts';
import { CompiledModel } from './compiledModel.ts';

export interface ParallelRequest {
  /** With its policy overrides applied. */
  scenario: Scenario;
  invariants: InvariantEntries;
  bounds: ExploreBounds;
  search: ParallelSearch;
  /** Threads, the main one included. */
  workers: number;
  /** Where the breadth-first seed stops (defaults FRONTIER_PER_WORKER · workers entries, SEED_STATES states); tests set them small so workers meet the violation. */
  seed?: { width?: number; states?: number };
  /** The worker's compiled module; default the one beside this file. Tests running TypeScript sources point it into dist/. */
  workerUrl?: URL;
}

/** The frontier is wide enough at this many entries per thread; more evens out the subtrees' sizes. */
const FRONTIER_PER_WORKER = 64;
/** …or once the breadth-first seed has seen this many states: the rest is the workers' job. */
const SEED_STATES = 2_000;

interface SeedNode {
  world: World;
  fp: Hash64;
  parent: SeedNode | null;
  choice: number;
}

interface Seed {
  frontier: number[][];
  transitions: number;
  terminals: number;
  maxDepth: number;
  bound: Bound | null;
  violation: Violation | null;
}

const scheduleOf = (n: SeedNode): number[] => {
  const choices: number[] = [];
  for (let m: SeedNode | null = n; m !== null && m.parent !== null; m = m.parent) choices.push(m.choice);
  return choices.reverse();
};

/**
 * Breadth-first from the initial world, every transition, until the frontier is `width` wide. States are
 * entered claiming nothing and claim every channel when their layer is expanded, so a worker that reaches
 * an expanded state goes no further, and one that reaches a frontier state explores it like a new one.
 */
function seedFrontier(model: Model, invariants: readonly Invariant[], cache: TransitionCache, table: SharedStateTable, bounds: ExploreBounds, width: number, states: number): Seed {
  const transition = cache.transition;
  const words = table.words;
  const claimNothing = noSleep(words).fill(0xffff_ffff);
  const claimAll = noSleep(words);
  const scratch = noSleep(words);
  const rootWorld = initialWorld(model);
  const root: SeedNode = { world: rootWorld, fp: fingerprint(model, rootWorld), parent: null, choice: -1 };
  table.arrive(root.fp, claimNothing, scratch);
  const seed: Seed = { frontier: [], transitions: 0, terminals: 0, maxDepth: 0, bound: null, violation: null };
  let layer: SeedNode[] = [];
  if (rootWorld.pending.length === 0) seed.terminals++;
  else layer.push(root);
  for (let depth = 0; layer.length > 0; depth++) {
    if (layer.length >= width || table.size >= states || depth >= bounds.maxDepth) break;
    const next: SeedNode[] = [];
    for (const node of layer) {
      table.arrive(node.fp, claimAll, scratch);
      const enabled = enabledChoices(model, node.world);
      for (let c = 0; c < enabled.length; c++) {
        const r = step(model, node.world, c, enabled, transition);
        seed.transitions++;
        for (const inv of invariants) {
          const problem = inv.check(model, node.world, r.world, r.delivered);
          if (problem !== null) return { ...seed, violation: { invariant: inv.name, detail: problem, choices: [...scheduleOf(node), c] } };
        }
        const fp = fingerprint(model, r.world);
        if (!table.arrive(fp, claimNothing, scratch)) continue;
        if (r.world.pending.length === 0) seed.terminals++;
        else next.push({ world: r.world, fp, parent: node, choice: c });
        if (table.size >= bounds.maxStates) return { ...seed, bound: 'states' };
      }
    }
    layer = next;
    if (next.length > 0) seed.maxDepth = depth + 1;
  }
  return { ...seed, frontier: layer.map(scheduleOf) };
}

/**
 * Runs `req` on the main thread and `req.workers − 1` worker threads. Progress comes about every
 * `progressMs` from the shared counters; the wall-clock bound raises the shared stop flag.
 */
export async function exploreInWorkers(
  req: ParallelRequest,
  opts: {
    onProgress?: (p: ExploreProgress) => void;
    progressMs?: number;
    now?: () => number;
    /**
     * Stops every thread when aborted; the result then says `interrupted`. With a signal the main thread
     * only coordinates and `workers` worker threads search, because a thread that searches cannot hear a
     * signal (Ctrl-C) until it is done; without one the main thread takes a share, which saves a thread.
     */
    signal?: AbortSignal;
  } = {},
): Promise<ExploreResult | SampleResult> {
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const { bounds, search } = req;
  const model = modelOfScenario(req.scenario);
  const invariants = invariantsOf(req.invariants);
  const cache = new TransitionCache();
  const table = SharedStateTable.create(search.mode === 'dfs' ? CLAIM_WORDS : 0, bounds.maxStates);
  const control = new SharedArrayBuffer(4 * CONTROL.length);
  const ctl = new Int32Array(control);
  ctl[CONTROL.firstViolatingWalk] = 0x7fff_ffff;
  const stats = new SharedArrayBuffer(8 * STATS.length * req.workers);
  const stat = new Float64Array(stats);

  const job = (thread: number): ShareJob => ({ thread, scenario: req.scenario, invariants: req.invariants, bounds, search, table: table.buffers, control, stats });
  // Started first: loading the model in a worker takes about as long as the seed here.
  const mainSearches = opts.signal === undefined;
  const workers = startWorkers(req.workerUrl ?? new URL('./exploreWorker.js', import.meta.url), mainSearches ? 1 : 0, req.workers, job, ctl);
  const interrupt = () => Atomics.compareExchange(ctl, CONTROL.stop, 0, STOP.interrupted);
  opts.signal?.addEventListener('abort', interrupt, { once: true });
  if (opts.signal?.aborted) interrupt();
  const abandon = async (stop: number) => {
    Atomics.store(ctl, CONTROL.stop, stop);
    workers.start([]);
    await Promise.allSettled(workers.reports);
  };
  let seed: Seed;
  try {
    seed =
      search.mode === 'dfs'
        ? seedFrontier(model, invariants, cache, table, bounds, req.seed?.width ?? FRONTIER_PER_WORKER * req.workers, req.seed?.states ?? SEED_STATES)
        : { frontier: [], transitions: 0, terminals: 0, maxDepth: 0, bound: null, violation: null };
  } catch (e) {
    await abandon(STOP.error);
    throw e;
  }
  if (search.mode === 'dfs' && (seed.violation !== null || seed.bound !== null || seed.frontier.length === 0)) {
    await abandon(STOP.violation);
    return {
      status: seed.violation === null ? 'clean' : 'violation',
      exhaustive: seed.violation === null && seed.bound === null,
      bound: seed.bound,
      states: table.size,
      transitions: seed.transitions,
      maxDepth: seed.maxDepth,
      terminals: seed.terminals,
      elapsedMs: now() - start,
      visitedBytes: table.bytes,
      cacheHitRate: 0,
      violation: seed.violation,
    };
  }

  const queued = search.mode === 'dfs' ? seed.frontier.length : search.walks;
  const progress = () => {
    let transitions = seed.transitions;
    let maxDepth = seed.maxDepth;
    let depth = 0;
    for (let t = 0; t < req.workers; t++) {
      transitions += stat[t * STATS.length + STATS.transitions]!;
      maxDepth = Math.max(maxDepth, stat[t * STATS.length + STATS.maxDepth]!);
      depth = Math.max(depth, stat[t * STATS.length + STATS.depth]!);
    }
    const queue = queued - Math.min(Atomics.load(ctl, CONTROL.next), queued);
    opts.onProgress?.({ states: table.size, transitions, depth, maxDepth, queue, elapsedMs: now() - start });
  };
  const every = opts.progressMs ?? 1_000;
  const stopAtTime = () => Atomics.compareExchange(ctl, CONTROL.stop, 0, STOP.time);

  workers.start(seed.frontier);
  let lastProgress = now();
  let mine: ShareReport | null = null;
  if (mainSearches) {
    try {
      // The seed's model and cache go on into this thread's share: what they learnt is not learnt twice.
      mine = runShare(job(0), seed.frontier, { model, invariants, cache, compiled: new CompiledModel(model) }, () => {
        const t = now();
        if (t - start > bounds.maxMillis) stopAtTime();
        if (t - lastProgress < every) return;
        lastProgress = t;
        progress();
      });
    } catch (e) {
      await abandon(STOP.error);
      throw e;
    }
  }
  const interval = setInterval(progress, every);
  const timer = setTimeout(stopAtTime, Math.min(0x7fff_ffff, Math.max(0, bounds.maxMillis - (now() - start))));
  let reports: ShareReport[];
  try {
    reports = [...(mine === null ? [] : [mine]), ...(await Promise.all(workers.reports))];
  } finally {
    clearInterval(interval);
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', interrupt);
  }

  const stopped = Atomics.load(ctl, CONTROL.stop);
  const violations = reports.map((r) => r.violation).filter((v): v is Violation | SampledViolation => v !== null);
  // Sampling: the lowest walk, as one thread reports it. Depth-first: the shortest schedule found.
  const violation = violations.sort((a, b) => ('walk' in a && 'walk' in b ? a.walk - b.walk : a.choices.length - b.choices.length))[0] ?? null;
  const stopBound: Bound | null = stopped === STOP.states ? 'states' : stopped === STOP.time ? 'time' : stopped === STOP.interrupted ? 'interrupted' : null;
  const bound = stopBound ?? (reports.some((r) => r.bound === 'depth') ? 'depth' : search.mode === 'dfs' ? null : 'walks');
  const sum = (f: (r: ShareReport) => number) => reports.reduce((n, r) => n + f(r), 0);
  const hits = sum((r) => r.cacheHits);
  const misses = sum((r) => r.cacheMisses);
  const merged: ExploreResult = {
    status: violation === null ? 'clean' : 'violation',
    exhaustive: search.mode === 'dfs' && violation === null && bound === null,
    bound: violation === null ? bound : null,
    states: table.size,
    transitions: seed.transitions + sum((r) => r.transitions),
    maxDepth: Math.max(seed.maxDepth, ...reports.map((r) => r.maxDepth)),
    terminals: seed.terminals + sum((r) => r.terminals),
    elapsedMs: now() - start,
    visitedBytes: table.bytes,
    cacheHitRate: hits + misses === 0 ? 0 : hits / (hits + misses),
    violation,
    threads: reports.map((r) => ({ busyMs: r.busyMs, newStates: r.newStates })),
  };
  if (search.mode === 'dfs') return merged;
  return {
    ...merged,
    mode: search.mode,
    seed: search.seed,
    walks: sum((r) => r.walks),
    walksCut: sum((r) => r.walksCut),
    pctSteps: search.mode === 'pct' ? pctSteps(model, bounds.maxDepth) : null,
    cacheHits: hits,
    cacheMisses: misses,
    violation: violation as SampledViolation | null,
  };
}

/**
 * Starts threads first … n−1 (first is 1 when the main thread takes share 0), which build their models and
 * wait for `start(frontier)`. Each report promise
 * settles with the thread's report, or rejects with its failure.
 */
function startWorkers(url: URL, first: number, n: number, job: (thread: number) => ShareJob, ctl: Int32Array): { start(frontier: number[][]): void; reports: Promise<ShareReport>[] } {
  const threads = Array.from({ length: n - first }, (_, i) => new Worker(url, { workerData: job(first + i) }));
  let started = false;
  const reports = threads.map(
    (worker, i) =>
      new Promise<ShareReport>((resolve, reject) => {
        let report: WorkerReport | null = null;
        worker.on('message', (m: WorkerReport) => (report = m));
        worker.on('error', (e) => {
          Atomics.store(ctl, CONTROL.stop, STOP.error);
          reject(e);
        });
        worker.on('exit', () => {
          const r = report as WorkerReport | null;
          if (r?.type === 'done') return resolve(r);
          Atomics.store(ctl, CONTROL.stop, STOP.error);
          reject(r === null ? new Error(`explore worker ${first + i} exited without a report`) : r.name === 'ModelBug' ? new ModelBug(r.message) : new Error(r.message));
        });
      }),
  );
  return {
    start(frontier) {
      if (started) return;
      started = true;
      for (const t of threads) t.postMessage(frontier);
    },
    reports,
  };
}
