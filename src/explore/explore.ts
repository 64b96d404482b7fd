/**
 * Exhaustive exploration of a model's interleavings: depth-first over the scheduler's choices (the only
 * nondeterminism, architecture.md), with a visited set of state fingerprints (fingerprint.ts) so a state
 * reached by two schedules is expanded once. After every delivery the invariants are checked; the first
 * violation stops the search and is returned with the choices that lead to it, which replay exactly.
 *
 * Bounds: depth (deliveries along one schedule), distinct states and wall time. A search that hit none of
 * them and found nothing is exhaustive for the scenario: every reachable state was checked.
 *
 * Not yet here (issue 5): a reduction over independent deliveries, random/PCT sampling, worker threads,
 * minimising a counterexample. The search is plain DFS, so a counterexample is a schedule, not the shortest.
 */
import type { Message } from '../protocol/messages.ts';
import { enabledChoices, initialWorld, step } from '../runtime/step.ts';
import type { Model, World } from '../runtime/world.ts';
import { fingerprint } from './fingerprint.ts';
import type { Invariant } from './invariants.ts';

export interface ExploreBounds {
  maxDepth: number;
  maxStates: number;
  /** Wall-clock limit in ms; the clock is read only between states, never by the model. */
  maxMillis: number;
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
  violation: Violation | null;
}

interface Frame {
  world: World;
  enabled: readonly Message[];
  next: number;
}

export function explore(
  model: Model,
  invariants: readonly Invariant[],
  bounds: ExploreBounds,
  opts: { now?: () => number; onProgress?: (p: ExploreProgress) => void; progressEvery?: number } = {},
): ExploreResult {
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const visited = new Set<string>();
  const root = initialWorld(model);
  visited.add(fingerprint(model, root));
  const stack: Frame[] = [{ world: root, enabled: enabledChoices(model, root), next: 0 }];
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
    violation,
  });

  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.enabled.length) {
      stack.pop();
      continue;
    }
    const choice = top.next++;
    if (stack.length > bounds.maxDepth) {
      bound = 'depth';
      continue;
    }
    const r = step(model, top.world, choice, top.enabled);
    transitions++;
    for (const inv of invariants) {
      const problem = inv.check(model, top.world, r.world, r.delivered);
      if (problem !== null) return result('violation', { invariant: inv.name, detail: problem, choices: [...choices.slice(0, stack.length - 1), choice] });
    }
    const fp = fingerprint(model, r.world);
    if (visited.has(fp)) continue;
    visited.add(fp);
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
    choices.length = stack.length - 1;
    choices.push(choice);
    stack.push({ world: r.world, enabled: enabledChoices(model, r.world), next: 0 });
    maxDepth = Math.max(maxDepth, stack.length - 1);
  }
  return result('clean', null);
}
