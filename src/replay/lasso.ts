/**
 * `replay --verify` of a non-progress counterexample: a lasso log (prefix, then one turn of a loop, the
 * end record's `outcome.lasso` marking where the loop starts). Replay has already re-derived every event
 * and state hash; what is left to check is the claim itself:
 * - the loop returns to its start: the world after the last event is the world after event `loopStart`
 *   (the initial world for 0), compared as the explorer identifies states (src/explore/liveness/loopState.ts;
 *   the events' `state` hashes cannot be equal, since they cover message ids, which grow);
 * - the loop is fair: no channel has a message in flight in every state of the loop without one of its
 *   messages being delivered in it;
 * - the starving thread wants progress in every state of the loop and no delivery in it is its progress
 *   (for "no end state is reachable" there is no such thread to check);
 * - the words: starving thread, `retries` and the outcome's reason are what the model says of this loop.
 */
import { LogError } from '../log/errors.ts';
import type { ParsedLog } from '../log/reader.ts';
import { enabledChoices, initialWorld, step } from '../runtime/step.ts';
import type { Model, World } from '../runtime/world.ts';
import type { Message } from '../protocol/messages.ts';
import { invariantNamed } from '../explore/invariants/index.ts';
import { progressThreadsOf } from '../explore/progress.ts';
import { describeLoop, type Lasso } from '../explore/liveness/lasso.ts';
import { loopStateDifference } from '../explore/liveness/loopState.ts';

/** The end record's `outcome.lasso`, if it has one. */
export function lassoOf(outcome: object): unknown {
  return (outcome as { lasso?: unknown }).lasso;
}

function parseLasso(raw: unknown, steps: number, log: ParsedLog, file: string): Lasso {
  const l = raw as Partial<Lasso> | null;
  const bad = (field: string, why: string) => new LogError('BAD_RECORD', file, log.lines, `end.outcome.lasso.${field}: ${why}`, `outcome.lasso.${field}`);
  if (typeof l !== 'object' || l === null) throw new LogError('BAD_RECORD', file, log.lines, 'end.outcome.lasso: expected an object with loopStart, starving and retries', 'outcome.lasso');
  if (typeof l.loopStart !== 'number' || !Number.isInteger(l.loopStart) || l.loopStart < 0 || l.loopStart >= steps) throw bad('loopStart', `expected an integer from 0 to ${steps - 1} (the log has ${steps} steps)`);
  if (typeof l.starving !== 'string') throw bad('starving', 'expected a thread or actor id');
  if (typeof l.retries !== 'string') throw bad('retries', 'expected a string');
  return l as Lasso;
}

const channelOf = (m: Message) => `${m.from} → ${m.to}`;

export function verifyLasso(model: Model, claimed: { invariant: string; detail: string }, raw: unknown, log: ParsedLog, file: string, last: World): void {
  const lasso = parseLasso(raw, log.events.length, log, file);
  if (invariantNamed(claimed.invariant)?.create().liveness !== true) {
    throw new LogError('BAD_RECORD', file, log.lines, `end.outcome.lasso: a lasso belongs to a liveness invariant (non-progress), not to "${claimed.invariant}"`, 'outcome.lasso');
  }
  const reason = `violation of ${claimed.invariant}: ${claimed.detail}`;
  if (log.end!.outcome.status !== 'failure' || log.end!.outcome.reason !== reason) {
    throw new LogError('BAD_RECORD', file, log.lines, `end.outcome: a counterexample's outcome is failure with reason "${reason}"`, 'outcome');
  }
  const diverged = (why: string) => new LogError('REPLAY_DIVERGED', file, log.lines, `replay diverged: ${why}`, 'outcome.lasso');

  // The loop's states (the one before each of its deliveries) and its deliveries; the events replayed already.
  let world = initialWorld(model);
  const states: World[] = [];
  const loop: Message[] = [];
  log.events.forEach((ev, i) => {
    const r = step(model, world, ev.choice, enabledChoices(model, world));
    if (i >= lasso.loopStart) {
      states.push(world);
      loop.push(r.delivered);
    }
    world = r.world;
  });
  const differs = loopStateDifference(model, states[0]!, last);
  if (differs !== null) throw diverged(`the loop does not return to the state after step ${lasso.loopStart}: ${differs}`);

  let always = new Set(states[0]!.pending.map(channelOf));
  for (const w of states) {
    const here = new Set(w.pending.map(channelOf));
    always = new Set([...always].filter((c) => here.has(c)));
  }
  for (const m of loop) always.delete(channelOf(m));
  if (always.size > 0) throw diverged(`the loop is not fair: ${[...always].sort()[0]} has a message in flight all along it and none is delivered`);

  const threads = progressThreadsOf(model);
  const thread = threads.find((t) => t.id === lasso.starving) ?? null;
  if (thread !== null) {
    loop.forEach((m, k) => {
      const before = states[k]!;
      const after = k + 1 < states.length ? states[k + 1]! : last;
      if (!thread.wants(model, before)) throw diverged(`${thread.id} has nothing left to do after step ${lasso.loopStart + k}`);
      if (m.to === thread.id && thread.progressed(before.snapshots[thread.actor]!, after.snapshots[thread.actor]!, m)) throw diverged(`${thread.id} moves on at step ${lasso.loopStart + k + 1}`);
    });
  }
  const words = describeLoop(model, thread, lasso.loopStart, loop, states[0]!);
  for (const k of ['starving', 'retries'] as const) {
    if (words.lasso[k] !== lasso[k]) throw diverged(`the loop's ${k} is "${words.lasso[k]}", the log says "${lasso[k]}"`);
  }
  if (words.detail !== claimed.detail) throw diverged(`the loop reads "${words.detail}", the log says "${claimed.detail}"`);
}
