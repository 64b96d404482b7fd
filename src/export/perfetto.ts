/**
 * A log as Chrome trace-event JSON, which the Perfetto UI (and chrome://tracing) opens (ecosystem-notes §3.3):
 *
 * - one process, one thread per actor (`M` thread_name / thread_sort_index metadata, in model order);
 * - one complete slice (`X`) per delivered message, on the receiver's thread: the actor handling it;
 * - one flow per message, from the slice in which the sender sent it (the handling of its `cause`) to the
 *   slice that handles it: `s` inside the source slice, `f` with binding point `e` (enclosing slice)
 *   inside the target slice. Flow ids are the message's step number, so they are unique.
 *
 * Time is logical: step N starts at N × 10 µs and its slice lasts 8 µs, so slices never overlap and
 * the order on screen is the delivery order. Messages the scenario starts with (cause null) leave a
 * `scenario start` slice at t = 0 on their sender's thread, so their flows have a slice to start from.
 */
import type { EndRecord, EventRecord } from '../log/schema.ts';
import { messageLabel } from './messageLabel.ts';

/** Logical microseconds per step, and the length of a step's slice within it. */
export const STEP_US = 10;
export const SLICE_US = 8;
const PID = 1;

export interface TraceEvent {
  ph: 'M' | 'X' | 's' | 'f' | 'i';
  name: string;
  pid: number;
  tid: number;
  ts: number;
  cat?: string;
  dur?: number;
  id?: number;
  bp?: 'e';
  s?: 'g' | 'p' | 't';
  args?: Record<string, unknown>;
}

export interface PerfettoInput {
  events: readonly EventRecord[];
  end: EndRecord | null;
  actors: readonly string[];
  /** Keep only the messages this actor sends or receives. */
  actor?: string;
  /** Process name shown by Perfetto, e.g. `tdxsim mmio-ve`. */
  title: string;
}

export function perfettoTrace(input: PerfettoInput): { traceEvents: TraceEvent[]; displayTimeUnit: 'ns' } {
  const events = input.actor === undefined ? input.events : input.events.filter((e) => e.from === input.actor || e.to === input.actor);
  const kept = new Set(events.map((e) => e.seq));
  const used = new Set(events.flatMap((e) => [e.from, e.to]));
  const actors = [...input.actors, ...[...used].filter((a) => !input.actors.includes(a)).sort()].filter((a) => used.has(a));
  const tid = new Map(actors.map((a, i) => [a, i + 1]));
  const receiverOf = new Map(input.events.map((e) => [e.seq, e.to]));

  const out: TraceEvent[] = [{ ph: 'M', name: 'process_name', pid: PID, tid: 0, ts: 0, args: { name: input.title } }];
  actors.forEach((a, i) => {
    out.push({ ph: 'M', name: 'thread_name', pid: PID, tid: i + 1, ts: 0, args: { name: a } });
    out.push({ ph: 'M', name: 'thread_sort_index', pid: PID, tid: i + 1, ts: 0, args: { sort_index: i } });
  });
  // The sender was handling `cause` when it sent a message; without a kept cause, it was the scenario start.
  const fromCause = (e: EventRecord) => e.cause !== null && kept.has(e.cause) && receiverOf.get(e.cause) === e.from;
  const startSenders = [...new Set(events.filter((e) => !fromCause(e)).map((e) => e.from))];
  for (const a of startSenders) out.push({ ph: 'X', name: 'scenario start', cat: 'tdxsim', pid: PID, tid: tid.get(a)!, ts: 0, dur: SLICE_US });

  for (const e of events) {
    const ts = e.seq * STEP_US;
    out.push({
      ph: 'X',
      name: messageLabel(e),
      cat: e.kind,
      pid: PID,
      tid: tid.get(e.to)!,
      ts,
      dur: SLICE_US,
      args: { step: e.seq, from: e.from, cause: e.cause, choice: e.choice, ...e.payload },
    });
    const sTs = (fromCause(e) ? e.cause! * STEP_US : 0) + SLICE_US / 2;
    out.push({ ph: 's', name: e.name, cat: 'message', id: e.seq, pid: PID, tid: tid.get(e.from)!, ts: sTs });
    out.push({ ph: 'f', name: e.name, cat: 'message', id: e.seq, bp: 'e', pid: PID, tid: tid.get(e.to)!, ts });
  }
  const outcome = input.end?.outcome;
  if (outcome && outcome.status === 'failure') {
    const last = events.at(-1);
    out.push({ ph: 'i', name: `failure: ${outcome.reason ?? 'unknown'}`, cat: 'tdxsim', s: 'g', pid: PID, tid: last ? tid.get(last.to)! : 0, ts: ((last?.seq ?? 0) + 1) * STEP_US, args: { ...outcome } });
  }
  return { traceEvents: out, displayTimeUnit: 'ns' };
}
