/**
 * Replay and time travel: rebuild every actor's state at any step by re-executing the header's scenario
 * with the logged scheduler choices, checking each delivery and state hash against the log as it goes.
 * Event sourcing in the plain sense: state at step N = fold of the first N events over the initial world.
 */
import { stringifyCanonical } from '../log/canonical.ts';
import { LogError } from '../log/errors.ts';
import type { ParsedLog } from '../log/reader.ts';
import { actorsFor } from '../../machines/registry.ts';
import { parseScenarioObject, ScenarioError } from '../scenario/load.ts';
import type { Scenario } from '../scenario/schema.ts';
import { enabledChoices, initialWorld, step } from '../runtime/step.ts';
import { outcomeOf } from '../runtime/runner.ts';
import { createModel, type Model, type World } from '../runtime/world.ts';
import { worldHash } from '../runtime/worldHash.ts';
import { MODEL_VERSION } from '../version.ts';
import type { Scheduler as SchedulerDescriptor } from '../log/schema.ts';
import type { Message } from '../protocol/messages.ts';
import { invariantNamed } from '../explore/invariants/index.ts';
import { fifoScheduler } from '../runtime/scheduler/fifo.ts';
import { randomScheduler } from '../runtime/scheduler/random.ts';
import type { Scheduler } from '../runtime/scheduler/scheduler.ts';
import type { Failure } from '../runtime/world.ts';
import { verifyLasso } from './lasso.ts';

/** What a counterexample's end record says broke (the schema has typed it already). */
interface ClaimedViolation {
  invariant: string;
  bound?: number | undefined;
  detail: string;
}

/**
 * The scheduler the header names, re-created so --verify can check that it picks each logged choice. An
 * explored schedule (a counterexample) has no rule behind its choices: null.
 */
export function schedulerOf(d: SchedulerDescriptor): Scheduler | null {
  switch (d.kind) {
    case 'fifo':
      return fifoScheduler();
    case 'random':
      return randomScheduler(d.seed);
    case 'explore':
      return null;
  }
}

export function describeScheduler(d: SchedulerDescriptor): string {
  return d.kind === 'random' ? `random, seed ${d.seed}` : d.kind;
}

function describeFailure(f: Failure | undefined): string {
  return f === undefined ? 'none' : `${f.actor} at step ${f.seq}: ${f.reason}: ${f.detail}`;
}

/** A counterexample's end record: the invariant it names must break at the last step, with the same words. */
function verifyViolation(model: Model, claimed: ClaimedViolation, before: { world: World; delivered: Message } | null, after: World, log: ParsedLog, file: string): void {
  const spec = invariantNamed(claimed.invariant);
  if (spec === undefined) {
    throw new LogError('BAD_RECORD', file, log.lines, `end.outcome.violation: unknown invariant "${claimed.invariant}"`, 'outcome.violation.invariant');
  }
  const reason = `violation of ${claimed.invariant}: ${claimed.detail}`;
  if (log.end!.outcome.status !== 'failure' || log.end!.outcome.reason !== reason) {
    throw new LogError('BAD_RECORD', file, log.lines, `end.outcome: a counterexample's outcome is failure with reason "${reason}"`, 'outcome');
  }
  const found = before === null ? null : spec.create(claimed.bound).check(model, before.world, after, before.delivered);
  if (found !== claimed.detail) {
    throw new LogError('REPLAY_DIVERGED', file, log.lines, `replay diverged: at the last step ${claimed.invariant} ${found === null ? 'holds' : `says "${found}"`}, the log says "${claimed.detail}"`, 'outcome');
  }
}

/**
 * The world at the requested step, the message delivered there (re-derived, typed), and whether the whole log
 * verified.
 */
export interface ReplayResult {
  scenario: Scenario;
  model: Model;
  /** The world after step `to` (0 = before the first delivery). */
  world: World;
  /**
   * Step `to`'s message as the model re-derived it (null for step 0): the log's record with its values
   * typed again (bigints, not their '0x…' strings), so views decode it as they decode a live run.
   */
  delivered: Message | null;
  /** Worlds at every step up to `to`, index = seq, when `keepAll` was asked for. */
  history: World[] | null;
  /** True when every event and the end record were re-derived exactly (verify mode). */
  verified: boolean;
  modelVersionMatches: boolean;
}

/** Header is line 1, so event seq N is line N + 1. */
const lineOf = (seq: number) => seq + 1;

/** The scenario a log's header carries, validated again (a log replays without its scenario file). */
export function scenarioFromLog(log: ParsedLog, file: string): Scenario {
  try {
    return parseScenarioObject(log.header.scenario, `${file}:1 (header.scenario)`);
  } catch (e) {
    if (e instanceof ScenarioError) throw new LogError('BAD_RECORD', file, 1, `header.scenario: ${e.message}`, 'scenario');
    throw e;
  }
}

/**
 * Re-executes a log's scenario with its logged choices up to step `to` (default: the end), checking every
 * message and state hash on the way; `verify` also checks the end record. This is how any step of a log is
 * reached.
 * @throws LogError at the first line the model disagrees with
 */
export function replayLog(log: ParsedLog, file: string, opts: { to?: number; verify?: boolean; keepAll?: boolean } = {}): ReplayResult {
  const scenario = scenarioFromLog(log, file);
  const model = createModel(actorsFor(scenario));
  const to = opts.to ?? log.events.length;
  if (!Number.isInteger(to) || to < 0 || to > log.events.length) {
    throw new RangeError(`--to ${opts.to}: the log has steps 0..${log.events.length}`);
  }
  const last = opts.verify ? log.events.length : to;
  if (opts.verify && log.header.model !== MODEL_VERSION) {
    throw new LogError('REPLAY_DIVERGED', file, 1, `header.model: the log was written by ${log.header.model}, this is ${MODEL_VERSION}: only the model that wrote a log can vouch for it`, 'model');
  }
  // --verify also checks that the header's scheduler would have made every logged choice.
  const scheduler = opts.verify ? schedulerOf(log.header.scheduler) : null;
  const initial = initialWorld(model);
  let world = initial;
  /** The world before the last replayed delivery, and that delivery: what an invariant is checked on. */
  let before: { world: World; delivered: Message } | null = null;
  const history: World[] | null = opts.keepAll ? [world] : null;
  let atTo = world;
  let atToMessage: Message | null = null;
  for (let i = 0; i < last; i++) {
    const ev = log.events[i]!;
    const enabled = enabledChoices(model, world);
    if (ev.choice >= enabled.length) {
      throw new LogError('REPLAY_DIVERGED', file, lineOf(ev.seq), `replay diverged: choice ${ev.choice} but only ${enabled.length} message(s) are deliverable here`, 'choice');
    }
    const picks = scheduler?.choose(enabled);
    if (picks !== undefined && picks !== ev.choice) {
      throw new LogError('REPLAY_DIVERGED', file, lineOf(ev.seq), `replay diverged at choice: the header's scheduler (${describeScheduler(log.header.scheduler)}) picks ${picks} here, the log says ${ev.choice}`, 'choice');
    }
    const r = step(model, world, ev.choice, enabled);
    before = { world, delivered: r.delivered };
    world = r.world;
    const m = r.delivered;
    const got = { from: m.from, to: m.to, kind: m.kind, name: m.name, payload: stringifyCanonical(m.payload), cause: m.cause };
    const want = { from: ev.from, to: ev.to, kind: ev.kind, name: ev.name, payload: stringifyCanonical(ev.payload), cause: ev.cause };
    for (const k of Object.keys(want) as (keyof typeof want)[]) {
      if (got[k] !== want[k]) {
        throw new LogError('REPLAY_DIVERGED', file, lineOf(ev.seq), `replay diverged at ${k}: the model delivers ${String(got[k])}, the log says ${String(want[k])}`, k);
      }
    }
    const h = worldHash(model, world);
    if (h !== ev.state) {
      throw new LogError('REPLAY_DIVERGED', file, lineOf(ev.seq), `replay diverged: state hash ${h} after this step, the log says ${ev.state}`, 'state');
    }
    history?.push(world);
    if (i + 1 === to) {
      atTo = world;
      atToMessage = m;
    }
  }
  if (to === 0) atTo = history?.[0] ?? initial;
  if (opts.verify) verifyEnd(model, log, file, before, world);
  return { scenario, model, world: atTo, delivered: atToMessage, history, verified: !!opts.verify, modelVersionMatches: log.header.model === MODEL_VERSION };
}

/**
 * The end record against the re-execution: the outcome (or, for a counterexample, the violation or the
 * lasso it claims) and the failures the model reached. `end.steps` needs no check here: the reader has
 * matched it with the events, each of which was re-derived.
 */
export function verifyEnd(model: Model, log: ParsedLog, file: string, before: { world: World; delivered: Message } | null, world: World): void {
  const end = log.end;
  if (end === null) {
    throw new LogError('TORN_LINE', file, log.lines, 'the log has no end record: the run that wrote it was cut off, so it cannot be verified to the end', null);
  }
  const { outcome } = end;
  if (outcome.lasso !== undefined) {
    // A non-progress cycle: src/replay/lasso.ts checks that the loop closes, is fair and starves who it names.
    if (outcome.violation === undefined) throw new LogError('BAD_RECORD', file, log.lines, 'end.outcome: a lasso names its invariant in outcome.violation', 'outcome.violation');
    verifyLasso(model, outcome.violation, outcome.lasso, log, file, world);
  } else if (outcome.violation !== undefined) {
    verifyViolation(model, outcome.violation, before, world, log, file);
  } else {
    const o = outcomeOf(world);
    if (o.status !== outcome.status || o.reason !== outcome.reason) {
      throw new LogError('REPLAY_DIVERGED', file, log.lines, `replay diverged: outcome ${o.status} (${o.reason}), the log says ${outcome.status} (${outcome.reason})`, 'outcome');
    }
  }
  // Absent in a hand-made end record, which then claims nothing about failures.
  if (outcome.failures !== undefined) {
    const got = world.failures;
    const want = outcome.failures;
    for (let i = 0; i < Math.max(got.length, want.length); i++) {
      if (stringifyCanonical(got[i] ?? null) !== stringifyCanonical(want[i] ?? null)) {
        throw new LogError('REPLAY_DIVERGED', file, log.lines, `replay diverged at outcome.failures[${i}]: the model reaches ${describeFailure(got[i])}, the log says ${describeFailure(want[i])}`, 'outcome.failures');
      }
    }
  }
}
