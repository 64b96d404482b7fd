/**
 * Seeded sampling of interleavings, for scenarios too large to search exhaustively: repeated walks from
 * the initial world, each a single schedule run to quiescence (nothing in flight) or the depth bound, with
 * the invariants checked after every delivery as the depth-first search checks them. Distinct states are
 * counted with the same fingerprints, so a user sees how much of the space the walks covered; sampling is
 * never exhaustive.
 *
 * Two ways to choose the next delivery:
 * - `random`: uniformly among the enabled deliveries.
 * - `pct`: Probabilistic Concurrency Testing (Burckhardt, Kothari, Musuvathi, Nagarakatte, "A Randomized
 *   Scheduler with Probabilistic Guarantees of Finding Bugs", ASPLOS 2010). Each thread gets a random
 *   distinct priority d … d+n−1; d−1 change points are drawn among steps 1 … k, change point i carrying
 *   priority i; the highest-priority thread with a deliverable message runs, and the thread about to run
 *   step k_i drops to priority i first, so another thread takes that step. A bug that needs d ordering
 *   constraints is found by one walk with probability at least 1/(n·k^(d−1)), where uniform choice
 *   gives exponentially little for deep bugs; the race examples need one preemption each (d = 2).
 *
 * A PCT "thread" is the receiving actor of a delivery. Delivering a message runs the receiver's transition,
 * so the actors are the sequential processes of the model: a KVM vCPU thread, the guest on a vCPU, a CPU,
 * the module, the TDP MMU. Deliveries to one actor on several channels compete like threads waiting on
 * one lock; among them the sender with the higher priority goes first, so a priority change also decides
 * who reaches the module or mmu_lock first. An actor serving both vCPUs (the module, kvm.mmu) is one
 * thread for both, which is what it is in the model: one step at a time.
 *
 * k, the number of steps change points are drawn from, is the length of the scenario's oldest-first run
 * (the same for every seed), at most the depth bound — the depth bound itself (5,000 by default) is far
 * longer than a walk, and change points past a walk's end do nothing. Past step k a PCT walk chooses
 * uniformly, as `random` does: strict priorities starve the thread a spinning one waits for (a vCPU
 * retrying on a frozen SPTE never lets the thread that froze it finish), and such a walk would run to the
 * depth bound; the guarantee above is about the first k steps only.
 *
 * Determinism: walk i draws from its own generator, seeded from the run's seed and i (walkSeed), so a walk
 * does not depend on the walks before it, and workers can split walks between them (parallel.ts).
 */
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { Message } from '../protocol/messages.ts';
import { enabledChoices, initialWorld, runTransition, step } from '../runtime/step.ts';
import { fifoScheduler } from '../runtime/scheduler/fifo.ts';
import type { Model, World } from '../runtime/world.ts';
import type { Bound, ExploreBounds, ExploreOptions, ExploreResult, Violation } from './explore.ts';
import { fingerprint } from './fingerprint.ts';
import type { Invariant } from './invariants/index.ts';
import { StateTable, type VisitedSet } from './stateTable.ts';
import { fmix } from './structuralHash.ts';
import { TransitionCache } from './transitionCache.ts';

/** How walks choose: `random` (uniform) or `pct` (Probabilistic Concurrency Testing priorities). */
export type SampleMode = 'random' | 'pct';
export const SAMPLE_MODES: readonly SampleMode[] = ['random', 'pct'];

type Rng = ReturnType<typeof xoroshiro128plus>;

/** `ExploreBounds` plus the number of walks. */
export interface SampleBounds extends ExploreBounds {
  /** Walks to run. */
  walks: number;
}

/** Mode, seed and PCT depth of seeded walks, with progress and sharing hooks. */
export interface SampleOptions extends Pick<ExploreOptions, 'now' | 'onProgress' | 'cache'> {
  mode: SampleMode;
  seed: number;
  /** PCT's d: the number of ordering constraints a bug may need (d − 1 priority change points). */
  pctDepth?: number;
  /** Progress after every this many walks. */
  progressEvery?: number;
  /** Which walk to run next, null when none is left; workers share a counter. Default 0, 1, 2, … */
  nextWalk?: () => number | null;
  /** A cache this thread already has (memoising is per thread); default a new one, unless `cache` is false. */
  transitionCache?: TransitionCache;
  /** Another table for distinct states (workers share one); default a table of this run's own. */
  visited?: VisitedSet;
  /** Polled before and during walk `walk`: true stops the run (another worker decided, or the walk is not needed). */
  stopped?: (walk: number) => boolean;
}

export const PCT_DEPTH_DEFAULT = 3;

export interface SampledViolation extends Violation {
  /** The walk that found it; walk i replays from the run's seed alone. */
  walk: number;
}

/** The summary of seeded walks: the search's counts plus mode, seed and walks run. */
export interface SampleResult extends ExploreResult {
  mode: SampleMode;
  seed: number;
  /** Walks run to their end (quiescence, the depth bound or a violation). */
  walks: number;
  /** Walks the depth bound cut before quiescence. */
  walksCut: number;
  /** PCT's k (null for random walks). */
  pctSteps: number | null;
  cacheHits: number;
  cacheMisses: number;
  violation: SampledViolation | null;
}

/**
 * Walk i's seed: the run's seed and i through a 32-bit mix (murmur3's finaliser), so nearby seeds and
 * nearby walks get unrelated generators.
 */
export function walkSeed(seed: number, walk: number): number {
  return fmix((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(walk + 1, 0x85ebca6b)) >>> 0);
}

/** PCT's k for a model: its oldest-first run's length, at least 1, at most the depth bound. */
export function pctSteps(model: Model, maxDepth: number): number {
  const fifo = fifoScheduler();
  let world = initialWorld(model);
  let n = 0;
  while (world.pending.length > 0 && n < maxDepth) {
    const enabled = enabledChoices(model, world);
    world = step(model, world, fifo.choose(enabled), enabled).world;
    n++;
  }
  return Math.max(1, n);
}

/** Chooses among `enabled` at step `at` (0-based) of a walk. */
type Chooser = (enabled: readonly Message[], at: number) => number;

const uniform =
  (rng: Rng): Chooser =>
  (enabled) =>
    enabled.length === 1 ? 0 : uniformInt(rng, 0, enabled.length - 1);

function pctChooser(model: Model, rng: Rng, d: number, k: number): Chooser {
  const n = model.actors.length;
  // Priorities d … d+n−1 in random order (Fisher–Yates); change points get 1 … d−1, below all of them.
  const priority = Array.from({ length: n }, (_, i) => d + i);
  for (let i = n - 1; i > 0; i--) {
    const j = uniformInt(rng, 0, i);
    [priority[i], priority[j]] = [priority[j]!, priority[i]!];
  }
  const changeAt = new Map<number, number>();
  const points = Math.min(d - 1, k);
  for (let i = 1; i <= points; ) {
    const s = uniformInt(rng, 1, k);
    if (changeAt.has(s)) continue;
    changeAt.set(s, i++);
  }
  const highest = (enabled: readonly Message[]): number => {
    let best = 0;
    for (let i = 1; i < enabled.length; i++) {
      const a = enabled[i]!;
      const b = enabled[best]!;
      const pa = priority[model.indexOf.get(a.to)!]!;
      const pb = priority[model.indexOf.get(b.to)!]!;
      if (pa > pb || (pa === pb && priority[model.indexOf.get(a.from)!]! > priority[model.indexOf.get(b.from)!]!)) best = i;
    }
    return best;
  };
  const fair = uniform(rng);
  return (enabled, at) => {
    if (at >= k) return fair(enabled, at);
    const best = highest(enabled);
    const lowered = changeAt.get(at + 1);
    if (lowered === undefined) return best;
    priority[model.indexOf.get(enabled[best]!.to)!] = lowered;
    return highest(enabled);
  };
}

/**
 * Seeded random or PCT walks over a model's interleavings, checking invariants after each delivery;
 * synchronous. Never exhaustive.
 */
export function sample(model: Model, invariants: readonly Invariant[], bounds: SampleBounds, opts: SampleOptions): SampleResult {
  const x = startSample(model, invariants, bounds, opts);
  while (!x.step());
  return x.result();
}

/** Walks set up but not yet run; `step()` runs `pauseEvery` walks at a time (all of them if 0). */
export interface Sampling {
  step(): boolean;
  interrupt(): void;
  result(): SampleResult;
}

/** The same walks as `sample`, set up to be run a slice of walks at a time. */
export function startSample(model: Model, invariants: readonly Invariant[], bounds: SampleBounds, opts: SampleOptions & { pauseEvery?: number }): Sampling {
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const cache = opts.cache === false ? null : (opts.transitionCache ?? new TransitionCache());
  const transition = cache?.transition ?? runTransition;
  const visited = opts.visited ?? new StateTable(0);
  const none = new Uint32Array(0);
  const d = opts.pctDepth ?? PCT_DEPTH_DEFAULT;
  const k = opts.mode === 'pct' ? pctSteps(model, bounds.maxDepth) : null;
  let counter = 0;
  const nextWalk = opts.nextWalk ?? (() => (counter < bounds.walks ? counter++ : null));
  const stopped = opts.stopped ?? (() => false);
  const every = opts.progressEvery ?? 1_000;

  const root = initialWorld(model);
  let terminals = 0;
  if (visited.arrive(fingerprint(model, root), none, none) && root.pending.length === 0) terminals++;
  let transitions = 0;
  let maxDepth = 0;
  let walks = 0;
  let walksCut = 0;
  let bound: Bound | null = null;
  let violation: SampledViolation | null = null;
  const progress = (depth: number) =>
    opts.onProgress?.({ states: visited.size, transitions, depth, maxDepth, queue: bounds.walks - walks, elapsedMs: now() - start });

  let done = false;
  let pausedAt = -1;
  const pauseEvery = opts.pauseEvery ?? 0;
  let elapsed = 0;
  const runWalks = (): boolean => {
    run: for (;;) {
      if (pauseEvery > 0 && walks > 0 && walks % pauseEvery === 0 && walks !== pausedAt) {
        pausedAt = walks;
        return false;
      }
      const walk = nextWalk();
      if (walk === null) {
        bound = 'walks';
        break;
      }
      if (stopped(walk)) break;
      if (now() - start > bounds.maxMillis) {
        bound = 'time';
        break;
      }
      const rng = xoroshiro128plus(walkSeed(opts.seed, walk));
      const choose = k === null ? uniform(rng) : pctChooser(model, rng, d, k);
      const choices: number[] = [];
      let world: World = root;
      for (;;) {
        if (world.pending.length === 0) break;
        if (choices.length >= bounds.maxDepth) {
          walksCut++;
          break;
        }
        if ((transitions & 0x3ff) === 0 && transitions > 0) {
          if (stopped(walk)) break run;
          if (now() - start > bounds.maxMillis) {
            bound = 'time';
            break run;
          }
        }
        const enabled = enabledChoices(model, world);
        const choice = choose(enabled, choices.length);
        choices.push(choice);
        const r = step(model, world, choice, enabled, transition);
        transitions++;
        for (const inv of invariants) {
          const problem = inv.check(model, world, r.world, r.delivered);
          if (problem !== null) {
            violation = { invariant: inv.name, detail: problem, choices, walk };
            maxDepth = Math.max(maxDepth, choices.length);
            walks++;
            break run;
          }
        }
        world = r.world;
        if (visited.arrive(fingerprint(model, world), none, none)) {
          if (world.pending.length === 0) terminals++;
          if (visited.size >= bounds.maxStates) {
            bound = 'states';
            maxDepth = Math.max(maxDepth, choices.length);
            break run;
          }
        }
      }
      maxDepth = Math.max(maxDepth, choices.length);
      walks++;
      if (walks % every === 0) progress(choices.length);
    }
    return true;
  };
  return {
    step() {
      if (done) return true;
      if (runWalks()) {
        done = true;
        elapsed = now() - start;
      }
      return done;
    },
    interrupt() {
      if (done) return;
      bound = 'interrupted';
      done = true;
      elapsed = now() - start;
    },
    result(): SampleResult {
      const hits = cache?.hits ?? 0;
      const misses = cache?.misses ?? 0;
      return {
        status: violation === null ? 'clean' : 'violation',
        exhaustive: false,
        bound,
        states: visited.size,
        transitions,
        maxDepth,
        terminals,
        elapsedMs: done ? elapsed : now() - start,
        visitedBytes: visited.bytes,
        cacheHitRate: hits + misses === 0 ? 0 : hits / (hits + misses),
        violation,
        mode: opts.mode,
        seed: opts.seed,
        walks,
        walksCut,
        pctSteps: k,
        cacheHits: hits,
        cacheMisses: misses,
      };
    },
  };
}
