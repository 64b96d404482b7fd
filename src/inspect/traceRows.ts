/**
 * The rows of the sequence view when a trace is imported beside the model's run, shared by the server
 * (which searches them) and the page (which draws them): every step keeps its row, the trace events that
 * align with a step go on its row (a second one on a row of its own below it, lanes empty), and the trace
 * events with no model partner get rows of their own between steps, after the step they follow.
 *
 * Also what the filter reads of a trace event (query.ts's `Searchable`): its thread as `from`, its task as
 * `to`, its event name, `kind:trace`, and its payload, decoded fields, `file:line` and alignment status as
 * words — so `0x201000` finds the trace lines with that GPA as it finds the model's messages.
 */
import type { TraceEventRow, TracePlacement } from './api.ts';
import type { Searchable } from './query.ts';

/** `step`: a step's own row; `more`: a further trace event aligned with the same step; `between`: a trace event with no model partner. */
export type PlanRowKind = 'step' | 'more' | 'between';

export interface PlanRow {
  seq: number;
  kind: PlanRowKind;
  trace: number | null;
}

/** Rows for steps 0…steps with the trace events placed (placement in trace order). */
export function planRows(steps: number, placement: readonly TracePlacement[]): PlanRow[] {
  const on = new Map<number, number[]>();
  const after = new Map<number, number[]>();
  for (const [id, seq, between] of placement) {
    const s = Math.max(0, Math.min(steps, seq));
    const m = between ? after : on;
    const list = m.get(s);
    if (list === undefined) m.set(s, [id]);
    else list.push(id);
  }
  const rows: PlanRow[] = [];
  for (let seq = 0; seq <= steps; seq++) {
    const here = on.get(seq) ?? [];
    rows.push({ seq, kind: 'step', trace: here[0] ?? null });
    for (let i = 1; i < here.length; i++) rows.push({ seq, kind: 'more', trace: here[i]! });
    for (const id of after.get(seq) ?? []) rows.push({ seq, kind: 'between', trace: id });
  }
  return rows;
}

/** `ept-retry-loop.perf.txt` from a path as given on the command line (either separator). */
export function baseName(file: string): string {
  return file.slice(Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\')) + 1);
}

export const STATUS_TEXT: Readonly<Record<TraceEventRow['status'], string>> = {
  aligned: 'aligned',
  'trace-only': 'trace only',
  'set-aside': 'set aside',
  'not-compared': 'not compared',
};

/** A trace event as the filter reads it; `divergenceKind` adds the kind of the divergence it is part of. */
export function traceSearchable(e: TraceEventRow, divergenceKind: string | null = null): Searchable {
  const words = [e.payload, e.fields, `${baseName(e.file)}:${e.line}`, e.status, e.reason, divergenceKind, e.ts].filter((w) => w !== null && w !== '');
  return { seq: e.seq ?? 0, from: e.thread, to: e.comm ?? e.thread, kind: 'trace', name: e.event, label: e.event, fields: words.join(' ') };
}
