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
 * what the earlier visit slept on, so each state keeps the sleep set it was visited with
 * (test/explore/explore.test.ts compares the count with an unreduced breadth-first search).
 * A transition is identified by its channel (sender, receiver), since only a channel's oldest message is
 * deliverable.
 *
 * Bounds: depth (deliveries along one schedule), distinct states and wall time. A search that hit none of
 * them and found nothing is exhaustive for the scenario: every reachable state was checked.
 */
import type { Message } from '../protocol/messages.ts';
import { enabledChoices, initialWorld, runTransition, step } from '../runtime/step.ts';
import type { Model, World } from '../runtime/world.ts';
import { fingerprint } from './fingerprint.ts';
import type { Invariant } from './invariants/index.ts';
import { StateTable } from './stateTable.ts';
import { TransitionCache } from './transitionCache.ts';

export interface ExploreBounds {
  maxDepth: number;
  maxStates: number;
  /** Wall-clock limit in ms; the clock is read only between states, never by the model. */
  maxMillis: number;
}

export interface ExploreOptions {
  now?: () => number;
  onProgress?: (p: ExploreProgress) => void;
  progressEvery?: number;
  /** Sleep-set reduction (default on). Off explores every transition, for comparison. */
  reduction?: boolean;
  /** Memoised actor transitions (default on). */
  cache?: boolean;
}

export interface ExploreProgress {
  states: number;
  transitions: number;
  depth: number;
  maxDepth: number;
  stack: number;
  elapsedMs: number;
}

export interface Violation {
  invariant: string;
  detail: string;
  /** Scheduler choices from the initial world; the last delivery is the violating one. */
  choices: number[];
}

export interface ExploreResult {
  status: 'clean' | 'violation';
  /** Every reachable state was visited (no bound was hit). */
  exhaustive: boolean;
  /** Which bound stopped the search, if one did. */
  bound: 'depth' | 'states' | 'time' | null;
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
}

interface Frame {
  world: World;
  enabled: readonly Message[];
  /** Indices into `enabled` still to explore from this visit. */
  todo: number[];
  next: number;
  /** The sleep set this visit arrived with, plus every channel explored from it so far. */
  sleep: Uint32Array;
}

/** Channel ids are sender·n + receiver over actor indices; a sleep set is a bitset over them. */
class Channels {
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

export function explore(model: Model, invariants: readonly Invariant[], bounds: ExploreBounds, opts: ExploreOptions = {}): ExploreResult {
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const reduce = opts.reduction ?? true;
  const cache = opts.cache === false ? null : new TransitionCache();
  const transition = cache?.transition ?? runTransition;
  const ch = new Channels(model);
  const visited = new StateTable(reduce ? ch.words : 0);
  const empty = new Uint32Array(ch.words);

  const frameFor = (world: World, sleep: Uint32Array, only: Uint32Array | null): Frame => {
    const enabled = enabledChoices(model, world);
    const todo: number[] = [];
    for (let i = 0; i < enabled.length; i++) {
      const c = ch.of(enabled[i]!);
      if (only !== null ? has(only, c) : !has(sleep, c)) todo.push(i);
    }
    return { world, enabled, todo, next: 0, sleep };
  };

  const root = initialWorld(model);
  visited.insert(fingerprint(model, root));
  const stack: Frame[] = [frameFor(root, empty.slice(), null)];
  /** choices[k] led from stack[k] to stack[k + 1]; entries past the top frame are stale. */
  const choices: number[] = [];
  let transitions = 0;
  let maxDepth = 0;
  let terminals = root.pending.length === 0 ? 1 : 0;
  let bound: ExploreResult['bound'] = null;
  const every = opts.progressEvery ?? 10_000;
  const result = (status: ExploreResult['status'], violation: Violation | null): ExploreResult => ({
    status,
    exhaustive: status === 'clean' && bound === null,
    bound,
    states: visited.size,
    transitions,
    maxDepth,
    terminals,
    elapsedMs: now() - start,
    visitedBytes: visited.bytes,
    cacheHitRate: cache === null || transitions === 0 ? 0 : cache.hits / (cache.hits + cache.misses),
    violation,
  });

  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.todo.length) {
      stack.pop();
      continue;
    }
    const choice = top.todo[top.next++]!;
    if (stack.length > bounds.maxDepth) {
      bound = 'depth';
      continue;
    }
    const r = step(model, top.world, choice, top.enabled, transition);
    transitions++;
    for (const inv of invariants) {
      const problem = inv.check(model, top.world, r.world, r.delivered);
      if (problem !== null) return result('violation', { invariant: inv.name, detail: problem, choices: [...choices.slice(0, stack.length - 1), choice] });
    }
    // The child's sleep set: what this frame sleeps on (including siblings already explored) and does
    // not depend on this delivery, i.e. goes to another receiver. Then this channel counts as explored.
    let childSleep = empty;
    if (reduce) {
      const into = ch.into[model.indexOf.get(r.delivered.to)!]!;
      childSleep = new Uint32Array(ch.words);
      for (let w = 0; w < ch.words; w++) childSleep[w] = top.sleep[w]! & ~into[w]!;
      const c = ch.of(r.delivered);
      top.sleep[c >>> 5]! |= 1 << (c & 31);
    }
    const fp = fingerprint(model, r.world);
    const slot = visited.find(fp);
    let only: Uint32Array | null = null;
    if (slot >= 0) {
      if (!reduce) continue;
      // Revisit: explore what the earlier visit slept on and this one does not; remember the intersection.
      const stored = visited.dataOf(slot);
      let any = 0;
      only = new Uint32Array(ch.words);
      for (let w = 0; w < ch.words; w++) {
        only[w] = stored[w]! & ~childSleep[w]!;
        any |= only[w]!;
        stored[w] = stored[w]! & childSleep[w]!;
      }
      if (any === 0) continue;
    } else {
      const s = visited.insert(fp);
      if (reduce) visited.dataOf(s).set(childSleep);
      if (visited.size % every === 0) {
        opts.onProgress?.({ states: visited.size, transitions, depth: stack.length, maxDepth, stack: stack.length, elapsedMs: now() - start });
        if (now() - start > bounds.maxMillis) {
          bound = 'time';
          break;
        }
      }
      if (visited.size >= bounds.maxStates) {
        bound = 'states';
        break;
      }
      if (r.world.pending.length === 0) {
        terminals++;
        continue;
      }
    }
    choices.length = stack.length - 1;
    choices.push(choice);
    stack.push(frameFor(r.world, childSleep, only));
    maxDepth = Math.max(maxDepth, stack.length - 1);
  }
  return result('clean', null);
}
