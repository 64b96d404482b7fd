/**
 * An imported trace as the inspector shows it beside the model's run (src/import/importTrace.ts does the
 * work; this only arranges it): each trace event with its alignment, placed on the row of the model step
 * it aligns with or between rows when it has no partner; each step's projected tracepoints with their
 * trace partners; the divergences with both ends; the livelock signatures. Indices are those of
 * `tdxsim import --json` (`trace[].id`, `divergences[]`), so the page and the JSON report name the same
 * things the same way.
 */
import { hex } from '../arch/hex.ts';
import type { ImportResult } from '../import/importTrace.ts';
import { describeLivelock } from '../import/livelock.ts';
import { isDivergence } from '../import/divergence.ts';
import { traceAnchor, type ReportFiles } from '../import/report.ts';
import { isVcpuThread, type TraceEvent, type TraceEventData } from '../import/traceEvent.ts';
import type { ModelTraceRow, TraceDivergence, TraceEventRow, TraceInfo, TraceLivelock, TracePlacement, TraceSummary } from './api.ts';
import { planRows, traceSearchable, type PlanRow } from './traceRows.ts';
import type { Searchable } from './query.ts';

/** Fields that say nothing the row does not already say (the thread is the vCPU; the layout is the parser's). */
const SKIP = new Set(['name', 'vcpu', 'layout', 'isa', 'reasonName', 'reason', 'flags', 'leafName', 'leaf', 'printed', 'statusName', 'operands', 'origin', 'text', 'event', 'payload']);

/** Numbers the tracepoints print in hex. */
const HEX_NUMBERS = new Set(['intrInfo', 'errorCode', 'port', 'val']);

function value(k: string, v: unknown): string {
  if (typeof v === 'bigint') return hex(v);
  if (typeof v === 'number' && HEX_NUMBERS.has(k)) return hex(v);
  if (Array.isArray(v)) return v.map((x) => value(k, x)).join(',');
  return String(v);
}

/** The tracepoints' own field names (`error_code`, `old_spte`), which is what a kernel developer greps for. */
const printedName = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The decoded fields a kernel developer scans for, `name=value`, the kind of exit or call first. */
export function traceFields(d: TraceEventData): string {
  const lead: string[] = [];
  if (d.name === 'kvm_exit') lead.push([d.reasonName, ...d.flags].join(' '));
  if (d.name === 'kvm_userspace_exit') lead.push(d.reasonName);
  if (d.name === 'tdx_seamcall_error') lead.push(`${d.leafName ?? d.printed} ${d.statusName}`);
  if (d.name === 'printk') return d.text;
  if (d.name === 'unknown') return d.payload;
  const rest = Object.entries(d)
    .filter(([k, v]) => !SKIP.has(k) && v !== null && v !== false)
    .map(([k, v]) => (v === true ? printedName(k) : `${printedName(k)}=${value(k, v)}`));
  if (d.name === 'tdx_seamcall_error') rest.push(...Object.entries(d.operands).map(([k, v]) => `${k}=${hex(v)}`));
  return [...lead, ...rest].join(' ');
}

export class TraceView {
  readonly summary: TraceSummary;
  readonly info: TraceInfo;
  readonly rows: TraceEventRow[];
  /** The sequence view's rows (traceRows.ts), for searching in display order. */
  readonly plan: PlanRow[];
  readonly searchable: Searchable[];
  readonly #rowOfTrace = new Map<number, number>();
  readonly #firstRowOfStep: number[] = [];
  readonly #modelAt = new Map<number, ModelTraceRow[]>();
  readonly #on = new Map<number, number[]>();
  readonly #after = new Map<number, number[]>();

  constructor(r: ImportResult, files: ReportFiles) {
    const traceId = new Map(r.trace.events.map((e, i) => [e, i]));
    const pairOfReal = new Map(r.alignment.pairs.map((p) => [p.real, p.model]));
    const pairOfModel = new Map(r.alignment.pairs.map((p) => [p.model, p.real]));
    // As the JSON report does: an event in two hunks' lists belongs to the first.
    const divOf = new Map<TraceEvent, number>();
    r.divergences.forEach((d, i) => {
      for (const e of [...d.hunk.real, ...d.hunk.model]) if (!divOf.has(e)) divOf.set(e, i);
    });
    const divergences: TraceDivergence[] = r.divergences.map((d, index) => {
      const a = traceAnchor(d);
      return {
        index,
        kind: d.kind,
        divergence: isDivergence(d),
        thread: d.thread,
        message: d.message,
        hint: d.hint,
        trace: a === null ? null : { id: d.trace === null ? null : (traceId.get(d.trace) ?? null), file: a.file, line: a.line },
        seq: d.seq,
        traceEvents: d.hunk.real.map((e) => traceId.get(e)!),
        modelSteps: [...new Set(d.hunk.model.map((e) => e.seq!))],
      };
    });

    const livelocks: TraceLivelock[] = [];
    const livelockOf = new Map<number, TraceEventRow['livelock']>();
    for (const l of r.livelocks.trace) {
      const index = livelocks.length;
      const faults = l.faults.map((f) => traceId.get(f)!);
      faults.forEach((id, k) => livelockOf.set(id, { index, fault: k + 1, of: faults.length }));
      livelocks.push({ side: 'trace', thread: l.thread, gpa: hex(l.gpa), faults, modelToo: r.livelocks.model.some((m) => m.thread === l.thread && m.gpa === l.gpa), text: describeLivelock(l) });
    }
    for (const l of r.livelocks.model) {
      if (r.livelocks.trace.some((t) => t.thread === l.thread && t.gpa === l.gpa)) continue;
      livelocks.push({ side: 'model', thread: l.thread, gpa: hex(l.gpa), faults: l.faults.map((f) => f.seq!), modelToo: true, text: describeLivelock(l) });
    }

    // Where each event goes: on its partner's step; else, on a vCPU thread (compared on its own, in
    // order), after the step of the last event placed before it on that thread; else after its
    // divergence's model step, or the step of the event before it in the trace.
    const placement: TracePlacement[] = [];
    const lastOnThread = new Map<string, number>();
    let lastAny: number | null = null;
    this.rows = r.trace.events.map((e, id) => {
      const m = pairOfReal.get(e);
      const aside = r.alignment.aside.get(e);
      const divergence = divOf.get(e) ?? null;
      let seq: number;
      if (m !== undefined) {
        seq = m.seq!;
        placement.push([id, seq, 0]);
      } else {
        const dSeq = divergence === null ? null : r.divergences[divergence]!.seq;
        seq = (isVcpuThread(e.thread) ? lastOnThread.get(e.thread) : undefined) ?? dSeq ?? lastAny ?? 0;
        placement.push([id, seq, 1]);
      }
      lastOnThread.set(e.thread, seq);
      lastAny = seq;
      return {
        id,
        file: e.src!.file,
        line: e.src!.line,
        endLine: e.src!.endLine,
        ts: e.frame.ts,
        cpu: e.frame.cpu,
        comm: e.frame.comm,
        pid: e.frame.pid,
        thread: e.thread,
        event: e.event,
        payload: e.payload,
        fields: traceFields(e.data),
        status: m !== undefined ? 'aligned' : aside === undefined ? 'trace-only' : aside === 'not compared' ? 'not-compared' : 'set-aside',
        reason: m === undefined && aside !== undefined && aside !== 'not compared' ? aside : null,
        seq: m === undefined ? null : m.seq!,
        divergence,
        livelock: livelockOf.get(id) ?? null,
      };
    });
    for (const [id, seq, between] of placement) {
      const map = between ? this.#after : this.#on;
      const list = map.get(seq);
      if (list === undefined) map.set(seq, [id]);
      else list.push(id);
    }

    for (const e of r.model) {
      const t = pairOfModel.get(e);
      const aside = r.alignment.aside.get(e);
      const row: ModelTraceRow = {
        text: `${e.event}: ${e.payload}`,
        thread: e.thread,
        trace: t === undefined ? null : traceId.get(t)!,
        status: t !== undefined ? 'aligned' : aside === undefined ? 'model-only' : aside === 'not compared' ? 'not-compared' : 'set-aside',
        divergence: divOf.get(e) ?? null,
      };
      const list = this.#modelAt.get(e.seq!);
      if (list === undefined) this.#modelAt.set(e.seq!, [row]);
      else list.push(row);
    }

    const first = r.first === null ? null : r.divergences.indexOf(r.first);
    this.summary = { inputs: r.trace.files.map((f) => ({ ...f })), events: r.trace.events.length, divergenceCount: r.divergences.filter(isDivergence).length, first };
    this.info = {
      ...this.summary,
      scenario: {
        name: r.built.name,
        file: files.scenario,
        yaml: r.yaml,
        notes: r.built.notes.map((n) => ({ file: n.src?.file ?? null, line: n.src?.line ?? null, message: n.message })),
      },
      compared: [...r.alignment.compared].sort(),
      divergences,
      livelocks,
      placement,
    };
    this.plan = planRows(r.outcome.steps, placement);
    this.plan.forEach((row, i) => {
      if (row.trace !== null) this.#rowOfTrace.set(row.trace, i);
      if (row.kind === 'step') this.#firstRowOfStep[row.seq] = i;
    });
    this.searchable = this.rows.map((e) => traceSearchable(e, e.divergence === null ? null : divergences[e.divergence]!.kind));
  }

  /** The tracepoints the model hits at step n, and the trace events shown on its row(s) and after it. */
  stepInfo(n: number): { model: ModelTraceRow[]; on: number[]; after: number[] } {
    return { model: this.#modelAt.get(n) ?? [], on: this.#on.get(n) ?? [], after: this.#after.get(n) ?? [] };
  }

  rowOfTrace(id: number): number | null {
    return this.#rowOfTrace.get(id) ?? null;
  }

  firstRowOfStep(seq: number): number {
    return this.#firstRowOfStep[Math.max(0, Math.min(seq, this.#firstRowOfStep.length - 1))] ?? 0;
  }
}
