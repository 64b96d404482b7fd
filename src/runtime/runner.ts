/**
 * Runs a model to quiescence (no message left in flight) under a scheduler, reporting every delivery.
 * No I/O: the CLI decides what to print and where the log goes.
 */
import type { Message } from '../protocol/messages.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import { enabledChoices, initialWorld, step } from './step.ts';
import type { Failure, Model, World } from './world.ts';

/**
 * One step of a run: the step number, the scheduler's choice, the delivered message and the world after it.
 */
export interface Delivery {
  seq: number;
  choice: number;
  message: Message;
  world: World;
}

/**
 * How a run ended: `ok`, or `failure` with the first failure the model reached (or the step bound) as
 * `reason`.
 */
export interface Outcome {
  status: 'ok' | 'failure';
  reason: string | null;
  failures: Failure[];
  steps: number;
}

export interface RunOptions {
  scheduler: Scheduler;
  /** A bound on deliveries; reaching it is reported as a failure (a livelock, or a scenario that never ends). */
  maxSteps?: number;
  onDelivery?: (d: Delivery) => void;
}

export const DEFAULT_MAX_STEPS = 100_000;

/**
 * Runs a model to quiescence (nothing in flight), a failure, or `maxSteps`, calling `onDelivery` after each
 * step. Synchronous; `runEvents` is the same run as a stream.
 */
export function runModel(model: Model, opts: RunOptions): { world: World; outcome: Outcome } {
  const max = opts.maxSteps ?? DEFAULT_MAX_STEPS;
  let world = initialWorld(model);
  while (world.pending.length > 0) {
    if (world.seq >= max) return { world, outcome: outcomeOf(world) };
    const enabled = enabledChoices(model, world);
    const choice = opts.scheduler.choose(enabled);
    const r = step(model, world, choice, enabled);
    world = r.world;
    opts.onDelivery?.({ seq: world.seq, choice, message: r.delivered, world });
  }
  return { world, outcome: outcomeOf(world) };
}

/** How a run ended: with the first failure it reached, ok when quiescent without one, else stopped by the step bound. */
export function outcomeOf(world: World): Outcome {
  const f = world.failures;
  // A failure says more than the bound that stopped a run after it (or an explored schedule ending there).
  if (world.pending.length > 0 && f.length === 0) {
    return { status: 'failure', reason: `step bound ${world.seq} reached with ${world.pending.length} message(s) still in flight`, failures: [...f], steps: world.seq };
  }
  return f.length === 0
    ? { status: 'ok', reason: null, failures: [], steps: world.seq }
    : { status: 'failure', reason: `${f[0]!.reason}: ${f[0]!.detail}`, failures: [...f], steps: world.seq };
}
