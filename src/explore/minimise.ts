/**
 * The shortest schedule that breaks an invariant, and among those the one with the fewest preemptions.
 *
 * The depth-first search stops at the first violation it meets, along whatever schedule led there: often
 * hundreds of deliveries with vCPUs interleaved at every step. Here a breadth-first search over the same
 * choices finds the least depth at which the invariant breaks (fewest steps), carrying for each state
 * the fewest preemptions it can be reached with at that depth. A preemption is a delivery that leaves
 * the thread of execution the previous delivery started: that delivery sent a message that could be
 * delivered now, and another one was chosen — what a reader experiences as "meanwhile, on the other
 * vCPU". Forced switches (the previous delivery sent nothing deliverable, e.g. a thread now waits for a
 * lock) cost nothing.
 *
 * A state first reached at depth k is never worth reaching later: any schedule through it at a greater
 * depth has a shorter twin. So each depth keeps only states not seen before, keyed by fingerprint plus the
 * channels of the previous delivery's messages (which decide the cost of the next step).
 */
import type { Message } from '../protocol/messages.ts';
import { enabledChoices, initialWorld, step } from '../runtime/step.ts';
import type { Model, World } from '../runtime/world.ts';
import { fingerprint } from './fingerprint.ts';
import type { Invariant } from './invariants/index.ts';
import { hashKey } from './structuralHash.ts';
import { TransitionCache } from './transitionCache.ts';

interface Node {
  world: World;
  /** hashKey of the world's fingerprint. */
  fp: string;
  preemptions: number;
  parent: Node | null;
  choice: number;
  /** Messages the delivery that produced this node sent. */
  sent: readonly Message[];
}

export interface Minimised {
  /** Scheduler choices from the initial world. */
  choices: number[];
  preemptions: number;
  detail: string;
}

/**
 * `minimal` with the counterexample, or why there is none (`bound`, `not-found`), with the states searched.
 */
export type MinimiseResult = { status: 'minimal'; counterexample: Minimised; states: number } | { status: 'bound'; states: number } | { status: 'not-found'; states: number };

/** Preemptions along a schedule given as choices (for reporting the unminimised one). */
export function countPreemptions(model: Model, choices: readonly number[]): number {
  let world = initialWorld(model);
  let sent: readonly Message[] = [];
  let n = 0;
  for (const c of choices) {
    const enabled = enabledChoices(model, world);
    if (isPreemption(enabled, sent, enabled[c]!)) n++;
    const r = step(model, world, c, enabled);
    world = r.world;
    sent = r.sent;
  }
  return n;
}

/** Exported for the inspector, which marks each preemption of a schedule it shows. */
export function isPreemption(enabled: readonly Message[], sent: readonly Message[], chosen: Message): boolean {
  if (sent.length === 0 || sent.includes(chosen)) return false;
  return enabled.some((m) => sent.includes(m));
}

/** How far the minimiser's breadth-first search has gone. */
export interface MinimiseProgress {
  /** Breadth-first depth reached: no schedule shorter than this breaks the invariant. */
  depth: number;
  /** The depth it cannot exceed (the counterexample as found). */
  maxDepth: number;
  states: number;
}

/**
 * The shortest schedule that breaks `invariant`, and among those the one with the fewest preemptions
 * (breadth-first over the same choices).
 */
export function minimise(model: Model, invariant: Invariant, opts: { maxStates: number; maxDepth: number; onProgress?: (p: MinimiseProgress) => void }): MinimiseResult {
  const transition = new TransitionCache().transition;
  const rootWorld = initialWorld(model);
  const root: Node = { world: rootWorld, fp: hashKey(fingerprint(model, rootWorld)), preemptions: 0, parent: null, choice: -1, sent: [] };
  const seen = new Set<string>([root.fp]);
  let layer: Node[] = [root];
  for (let depth = 1; depth <= opts.maxDepth && layer.length > 0; depth++) {
    const next = new Map<string, Node>();
    let best: { node: Node; choice: number; preemptions: number; detail: string } | null = null;
    for (const node of layer) {
      const enabled = enabledChoices(model, node.world);
      for (let c = 0; c < enabled.length; c++) {
        const cost = node.preemptions + (isPreemption(enabled, node.sent, enabled[c]!) ? 1 : 0);
        const r = step(model, node.world, c, enabled, transition);
        const problem = invariant.check(model, node.world, r.world, r.delivered);
        if (problem !== null) {
          if (best === null || cost < best.preemptions) best = { node, choice: c, preemptions: cost, detail: problem };
          continue;
        }
        if (r.world.pending.length === 0) continue;
        const fp = hashKey(fingerprint(model, r.world));
        if (seen.has(fp)) continue;
        const key = fp + r.sent.map((m) => `${m.from}>${m.to}`).sort().join(',');
        const old = next.get(key);
        if (old === undefined || cost < old.preemptions) next.set(key, { world: r.world, fp, preemptions: cost, parent: node, choice: c, sent: r.sent });
      }
    }
    if (best !== null) {
      const choices = [best.choice];
      for (let n: Node | null = best.node; n !== null && n.parent !== null; n = n.parent) choices.push(n.choice);
      return { status: 'minimal', counterexample: { choices: choices.reverse(), preemptions: best.preemptions, detail: best.detail }, states: seen.size };
    }
    for (const n of next.values()) seen.add(n.fp);
    opts.onProgress?.({ depth, maxDepth: opts.maxDepth, states: seen.size });
    if (seen.size > opts.maxStates) return { status: 'bound', states: seen.size };
    layer = [...next.values()];
  }
  return { status: layer.length === 0 ? 'not-found' : 'bound', states: seen.size };
}
