/**
 * `replay --verify` for a log of any length: the checks of `replayLog(…, { verify: true })` (every event
 * re-executed against its record and state hash, the header's model and scheduler, the end record) made
 * while the log is read as a stream, so memory holds one world and one block, not the log. A lasso
 * outcome (a counterexample, short by nature) is verified by `replayLog` itself, whose hook checks the loop
 * (src/replay/lasso.ts).
 */
import { actorsFor } from '../../machines/registry.ts';
import { LogError } from '../log/errors.ts';
import { readLog, scanLog, type ParsedLog, type ReadOptions } from '../log/reader.ts';
import type { EventRecord, HeaderRecord } from '../log/schema.ts';
import type { Message } from '../protocol/messages.ts';
import { enabledChoices, initialWorld, step } from '../runtime/step.ts';
import { createModel, type Model, type World } from '../runtime/world.ts';
import type { Scenario } from '../scenario/schema.ts';
import { MODEL_VERSION } from '../version.ts';
import { describeScheduler, replayLog, scenarioFromLog, schedulerOf, verifyEnd } from './replay.ts';
import { checkDelivery } from './seek.ts';

/** What a streamed verification found: the log's outline, and the state at step `to`. */
export interface StreamVerified {
  log: Omit<ParsedLog, 'events'> & { steps: number };
  scenario: Scenario;
  model: Model;
  /** The world after step `to`, and step `to`'s message (null for 0). */
  world: World;
  delivered: Message | null;
}

/** One step as verification re-derived it (the log's record agreed with the model up to here). */
export interface VerifiedStep {
  seq: number;
  /** The log line it was read from. */
  line: number;
  choice: number;
  message: Message;
  world: World;
  model: Model;
}

/**
 * Verifies the whole log at `file` as a stream (the checks of `replay --verify`), keeping the world at step
 * `to` (default: the last).
 * @throws LogError at the first line the log or the model disagrees with
 */
export function verifyLogFile(file: string, opts: ReadOptions & { to?: number; onStep?: (s: VerifiedStep) => void } = {}): StreamVerified {
  const { scan } = scanLog(file, opts);
  let header: HeaderRecord | null = null;
  let model: Model | null = null;
  let scenario: Scenario | null = null;
  let world: World | null = null;
  let before: { world: World; delivered: Message } | null = null;
  let scheduler: ReturnType<typeof schedulerOf> = null;
  let atTo: { world: World; delivered: Message | null } | null = null;
  let lasso = false;
  for (const item of scan) {
    if (item.type === 'header') {
      header = item.record;
      const outline: ParsedLog = { header, events: [], end: null, lines: 1, torn: null, signed: null };
      scenario = scenarioFromLog(outline, file);
      model = createModel(actorsFor(scenario));
      if (header.model !== MODEL_VERSION) {
        throw new LogError('REPLAY_DIVERGED', file, 1, `header.model: the log was written by ${header.model}, this is ${MODEL_VERSION}: only the model that wrote a log can vouch for it`, 'model');
      }
      scheduler = schedulerOf(header.scheduler);
      world = initialWorld(model);
      if (opts.to === 0) atTo = { world, delivered: null };
    } else if (item.type === 'event') {
      const ev: EventRecord = item.record;
      const enabled = enabledChoices(model!, world!);
      if (ev.choice >= enabled.length) {
        throw new LogError('REPLAY_DIVERGED', file, item.line, `replay diverged: choice ${ev.choice} but only ${enabled.length} message(s) are deliverable here`, 'choice');
      }
      const picks = scheduler?.choose(enabled);
      if (picks !== undefined && picks !== ev.choice) {
        throw new LogError('REPLAY_DIVERGED', file, item.line, `replay diverged at choice: the header's scheduler (${describeScheduler(header!.scheduler)}) picks ${picks} here, the log says ${ev.choice}`, 'choice');
      }
      const r = step(model!, world!, ev.choice, enabled);
      before = { world: world!, delivered: r.delivered };
      world = r.world;
      checkDelivery(file, item.line, r.delivered, ev, world, model!);
      opts.onStep?.({ seq: ev.seq, line: item.line, choice: ev.choice, message: r.delivered, world, model: model! });
      if (ev.seq === opts.to) atTo = { world, delivered: r.delivered };
    } else {
      lasso = item.record.outcome.lasso !== undefined;
    }
  }
  const outline = { header: header!, events: [], end: scan.end, lines: scan.lines, torn: scan.torn, signed: scan.signed };
  // A torn log, or a signed one read without its key: the caller refuses it before judging the end.
  if (scan.torn !== null || (scan.signed !== null && !scan.signed.checked)) {
    return { log: { ...outline, steps: scan.lastSeq }, scenario: scenario!, model: model!, world: world!, delivered: before?.delivered ?? null };
  }
  if (lasso) {
    // A counterexample's loop: its check lives with replayLog (src/replay/lasso.ts), on the log in memory.
    const r = replayLog(readLog(file, opts), file, { verify: true, ...(opts.to !== undefined ? { to: opts.to } : {}) });
    return { log: { ...outline, steps: scan.lastSeq }, scenario: r.scenario, model: r.model, world: r.world, delivered: r.delivered };
  }
  verifyEnd(model!, outline, file, before, world!);
  if (opts.to !== undefined && (opts.to < 0 || opts.to > scan.lastSeq)) throw new RangeError(`--to ${opts.to}: the log has steps 0..${scan.lastSeq}`);
  const at = atTo ?? { world: world!, delivered: before?.delivered ?? null };
  return { log: { ...outline, steps: scan.lastSeq }, scenario: scenario!, model: model!, world: at.world, delivered: at.delivered };
}
