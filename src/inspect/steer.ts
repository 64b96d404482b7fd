/**
 * Steering: a debugger for interleavings. At step n the user sees the messages the scheduler could have
 * delivered next (the enabled choices at the world after step n) and picks one; the run is re-executed
 * from the start with the log's own choices up to step n, the picked one at step n+1, and the default
 * scheduler (FIFO) from there to the end, under the same step bound as `tdxsim run`. The result is a new
 * log — its header says scheduler `explore`, since its choices are the whole schedule — and a new
 * session to show. The log it came from is never touched.
 *
 * Every step is executed and hashed again (nothing is copied from the parent), so the new log's state
 * hashes are the model's own; the work yields to the event loop between slices, so the server keeps
 * answering while a long continuation runs.
 */
import { LogError } from '../log/errors.ts';
import type { EndRecord, EventRecord } from '../log/schema.ts';
import { MemoryLogWriter } from '../log/writer.ts';
import type { Message } from '../protocol/messages.ts';
import { DEFAULT_MAX_STEPS, outcomeOf } from '../runtime/runner.ts';
import { fifoScheduler } from '../runtime/scheduler/fifo.ts';
import { enabledChoices, step } from '../runtime/step.ts';
import { worldHash } from '../runtime/worldHash.ts';
import { formatFields, messageLabel } from '../session/format.ts';
import { headerFor } from '../session/session.ts';
import type { ChoicesResult, SteerInfo } from './api.ts';
import { InspectSession, preemptionNote } from './session.ts';

/** Steps between two yields to the event loop. */
const SLICE = 128;

export function choicesAt(session: InspectSession, n: number): ChoicesResult {
  const enabled = enabledChoices(session.model, session.worldAt(n));
  const taken = n < session.steps ? session.events[n]!.choice : -1;
  return {
    step: n + 1,
    choices: enabled.map((m, index) => ({ index, from: m.from, to: m.to, label: messageLabel(m), fields: formatFields(m.payload, session.fmt), taken: index === taken })),
  };
}

export class SteerError extends RangeError {}

export interface Steered {
  session: InspectSession;
  /** The new log, exactly as a file would hold it. */
  text: string;
  info: Omit<SteerInfo, 'parent'>;
}

/** Re-executes `parent`'s schedule to step `n`, delivers enabled message `choice` next, then FIFO to the end. */
export async function steer(parent: InspectSession, n: number, choice: number, maxSteps = DEFAULT_MAX_STEPS): Promise<Steered> {
  if (parent.live) throw new SteerError('the run is still in progress: steer it once it has ended');
  if (!Number.isInteger(n) || n < 0 || n > parent.steps) throw new SteerError(`step ${n}: the log has steps 0..${parent.steps}`);
  const enabledThere = enabledChoices(parent.model, parent.worldAt(n));
  if (enabledThere.length === 0) throw new SteerError(`nothing can be delivered after step ${n}: every message has been handled`);
  if (!Number.isInteger(choice) || choice < 0 || choice >= enabledThere.length) throw new SteerError(`choice ${choice}: ${enabledThere.length} message(s) can be delivered after step ${n} (0..${enabledThere.length - 1})`);
  if (n >= maxSteps) throw new SteerError(`step ${n + 1} is past the step bound ${maxSteps}`);

  const scenario = parent.scenario;
  const fileName = `${scenario.name}.steered-at-${n + 1}-choice-${choice}.log.jsonl`;
  const writer = MemoryLogWriter.open(headerFor(scenario, parent.header.scenarioFile, { kind: 'explore' }), fileName);
  const header = writer.header;
  const session = InspectSession.live(header, scenario, fileName);
  const model = session.model;
  const fifo = fifoScheduler();
  let world = session.worldAt(0);
  let sent: readonly Message[] = [];
  let chose = '';
  while (world.pending.length > 0 && world.seq < maxSteps) {
    const enabled = enabledChoices(model, world);
    const c = world.seq < n ? parent.events[world.seq]!.choice : world.seq === n ? choice : fifo.choose(enabled);
    if (c >= enabled.length) {
      // The parent's choices were re-derived when it was opened; this means the model is not deterministic.
      throw new LogError('REPLAY_DIVERGED', parent.file, world.seq + 2, `steering: choice ${c} but only ${enabled.length} message(s) are deliverable here`, 'choice');
    }
    const r = step(model, world, c, enabled);
    world = r.world;
    const m = r.delivered;
    if (world.seq === n + 1) chose = `${m.from} → ${m.to} ${messageLabel(m)}`;
    writer.append({ seq: world.seq, from: m.from, to: m.to, kind: m.kind, name: m.name, payload: m.payload as unknown as Record<string, unknown>, cause: m.cause, choice: c, state: worldHash(model, world) }, world);
    session.append(writer.lastRecord as EventRecord, m, world, preemptionNote(enabled, sent, m, world.seq));
    sent = r.sent;
    if (world.seq % SLICE === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const outcome = outcomeOf(world);
  writer.end({ status: outcome.status, reason: outcome.reason, failures: outcome.failures });
  session.finish(writer.lastRecord as EndRecord);
  const was = parent.events[n];
  const insteadOf = was ? `${was.from} → ${was.to} ${parent.textOf(n + 1).label}` : null;
  return { session, text: writer.text(), info: { step: n + 1, chose, insteadOf, fileName } };
}
