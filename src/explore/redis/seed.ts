/**
 * The first frontier of a Redis search, computed by the coordinator as parallel.ts computes it for
 * threads: breadth-first from the initial world over every delivery, until a layer is `width` wide or
 * `states` states are seen. Expanded states go to the visited hash claiming every channel (a worker that
 * reaches one goes no further), the last layer's states claiming none, and each of those becomes an
 * `arrive` entry: the worker that takes it claims the state with an empty sleep set and explores what it
 * gets, so an entry that another worker's search reached first costs one claim.
 */
import { enabledChoices, initialWorld, step } from '../../runtime/step.ts';
import type { Model, World } from '../../runtime/world.ts';
import type { Bound, ExploreBounds, Violation } from '../explore.ts';
import { fingerprint } from '../fingerprint.ts';
import type { Invariant } from '../invariants/index.ts';
import type { Hash64 } from '../structuralHash.ts';
import { TransitionCache } from '../transitionCache.ts';

export interface SeedState {
  fp: Hash64;
  /** Expanded by the seed: every channel claimed. */
  expanded: boolean;
}

export interface Seed {
  states: SeedState[];
  /** Schedules of the last layer. */
  frontier: number[][];
  transitions: number;
  terminals: number;
  maxDepth: number;
  bound: Bound | null;
  violation: Violation | null;
}

interface Node {
  world: World;
  state: SeedState;
  parent: Node | null;
  choice: number;
}

const scheduleOf = (n: Node): number[] => {
  const choices: number[] = [];
  for (let m: Node | null = n; m !== null && m.parent !== null; m = m.parent) choices.push(m.choice);
  return choices.reverse();
};

export function seedFrontier(model: Model, invariants: readonly Invariant[], bounds: ExploreBounds, width: number, maxSeedStates: number): Seed {
  const transition = new TransitionCache().transition;
  const seen = new Map<string, SeedState>();
  const keyOf = (h: Hash64) => `${h.hi}:${h.lo}`;
  const rootWorld = initialWorld(model);
  const rootState: SeedState = { fp: fingerprint(model, rootWorld), expanded: false };
  seen.set(keyOf(rootState.fp), rootState);
  const seed: Seed = { states: [rootState], frontier: [], transitions: 0, terminals: 0, maxDepth: 0, bound: null, violation: null };
  let layer: Node[] = [];
  if (rootWorld.pending.length === 0) seed.terminals++;
  else layer.push({ world: rootWorld, state: rootState, parent: null, choice: -1 });
  for (let depth = 0; layer.length > 0; depth++) {
    if (layer.length >= width || seen.size >= maxSeedStates || depth >= bounds.maxDepth) break;
    const next: Node[] = [];
    for (const node of layer) {
      node.state.expanded = true;
      const enabled = enabledChoices(model, node.world);
      for (let c = 0; c < enabled.length; c++) {
        const r = step(model, node.world, c, enabled, transition);
        seed.transitions++;
        for (const inv of invariants) {
          const problem = inv.check(model, node.world, r.world, r.delivered);
          if (problem !== null) return { ...seed, violation: { invariant: inv.name, detail: problem, choices: [...scheduleOf(node), c] } };
        }
        const fp = fingerprint(model, r.world);
        if (seen.has(keyOf(fp))) continue;
        const state: SeedState = { fp, expanded: false };
        seen.set(keyOf(fp), state);
        seed.states.push(state);
        if (r.world.pending.length === 0) seed.terminals++;
        else next.push({ world: r.world, state, parent: node, choice: c });
        if (seen.size >= bounds.maxStates) return { ...seed, bound: 'states' };
      }
    }
    layer = next;
    if (next.length > 0) seed.maxDepth = depth + 1;
  }
  return { ...seed, frontier: layer.map(scheduleOf) };
}
