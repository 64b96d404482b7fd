/**
 * The import report, as text for a terminal and as JSON data a view can be built from: every trace event
 * with its file and line and the model step it aligns with, every event of the model's projected trace with
 * the trace event it aligns with, the divergences with both ends, and the livelock signatures.
 */
import { hex } from '../arch/hex.ts';
import type { Divergence } from './divergence.ts';
import { isDivergence } from './divergence.ts';
import type { ImportResult } from './importTrace.ts';
import { describeLivelock, faultLines, type Livelock } from './livelock.ts';
import { linesOf } from './scenarioYaml.ts';
import type { BuiltOp } from './scenarioBuilder.ts';
import type { SourceRef, TraceEvent } from './traceEvent.ts';

export const REPORT_FORMAT = 'tdxsim-import-report';
export const REPORT_VERSION = 1;

/** Where a divergence sits in the trace: its own event, else the nearest aligned one. */
export function traceAnchor(d: Divergence): SourceRef | null {
  return d.trace?.src ?? d.hunk.after?.real.src ?? d.hunk.before?.real.src ?? null;
}

function jsonValue(v: unknown): unknown {
  if (typeof v === 'bigint') return hex(v);
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)]));
  return v;
}

function fieldsOf(e: TraceEvent): Record<string, unknown> {
  const { name: _name, ...rest } = e.data;
  return jsonValue(rest) as Record<string, unknown>;
}

function opText(op: BuiltOp): string {
  switch (op.op) {
    case 'load':
      return `load ${hex(op.gpa)}/${op.size}`;
    case 'store':
      return `store ${hex(op.gpa)}/${op.size}=${hex(op.value)}`;
    case 'accept':
      return `accept ${hex(op.gpa)}+${hex(op.size)}`;
    case 'mapGpa':
      return `mapGpa ${hex(op.gpa)}+${hex(op.size)} to ${op.to}`;
    case 'out':
      return `out ${hex(op.port)}/${op.size}=${hex(op.value)}`;
    case 'hlt':
      return 'hlt';
  }
}

export interface ReportFiles {
  scenario: string | null;
  log: string | null;
}

export function reportJson(r: ImportResult, files: ReportFiles): Record<string, unknown> {
  const traceId = new Map(r.trace.events.map((e, i) => [e, i]));
  const modelId = new Map(r.model.map((e, i) => [e, i]));
  const pairOfReal = new Map(r.alignment.pairs.map((p) => [p.real, p.model]));
  const pairOfModel = new Map(r.alignment.pairs.map((p) => [p.model, p.real]));
  const divOf = new Map<TraceEvent, number>();
  r.divergences.forEach((d, i) => {
    for (const e of [...d.hunk.real, ...d.hunk.model]) if (!divOf.has(e)) divOf.set(e, i);
  });
  const byEvent: Record<string, number> = {};
  for (const e of r.trace.events) byEvent[e.data.name] = (byEvent[e.data.name] ?? 0) + 1;
  const livelock = (l: Livelock, side: 'trace' | 'model') => ({
    thread: l.thread,
    gpa: hex(l.gpa),
    faults: l.faults.map((f) => (side === 'trace' ? traceId.get(f) : modelId.get(f)) ?? null),
    lines: side === 'trace' ? faultLines(l) : [],
    seqs: side === 'model' ? l.faults.map((f) => f.seq ?? null) : [],
    spteEventsRecorded: l.spteEventsRecorded,
    countsForZeroStep: l.countsForZeroStep,
    text: describeLivelock(l),
  });
  return {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    inputs: r.trace.files,
    parse: { events: r.trace.events.length, byEvent, unknown: r.trace.unknown, diagnostics: r.trace.diagnostics },
    vcpus: r.trace.vcpus,
    scenario: {
      name: r.built.name,
      file: files.scenario,
      yaml: r.yaml,
      vm: r.built.vmType,
      gpaw: r.built.gpaw,
      attributes: r.built.septVeDisable ? ['SEPT_VE_DISABLE'] : [],
      privateHugePages: r.built.privateHugePages,
      notes: r.built.notes.map((n) => ({ file: n.src?.file ?? null, line: n.src?.line ?? null, message: n.message })),
      instructions: r.built.vcpus.flatMap((v) => v.ops.map((o, index) => ({ vcpu: v.vcpu, index, op: jsonValue(o.op), text: opText(o.op), what: o.origin.what, retries: o.origin.retries ?? 0, lines: o.origin.src }))),
    },
    model: { steps: r.outcome.steps, outcome: { status: r.outcome.status, reason: r.outcome.reason }, log: files.log },
    trace: r.trace.events.map((e, id) => {
      const m = pairOfReal.get(e);
      const aside = r.alignment.aside.get(e);
      return {
        id,
        file: e.src!.file,
        line: e.src!.line,
        endLine: e.src!.endLine,
        ...e.frame,
        thread: e.thread,
        event: e.event,
        name: e.data.name,
        payload: e.payload,
        fields: fieldsOf(e),
        align: m !== undefined ? { status: 'aligned', model: modelId.get(m), seq: m.seq } : aside !== undefined ? { status: aside === 'not compared' ? 'not-compared' : 'set-aside', reason: aside } : { status: 'trace-only', divergence: divOf.get(e) ?? null },
      };
    }),
    modelTrace: r.model.map((e, id) => {
      const t = pairOfModel.get(e);
      const aside = r.alignment.aside.get(e);
      return {
        id,
        seq: e.seq,
        thread: e.thread,
        event: e.event,
        name: e.data.name,
        payload: e.payload,
        fields: fieldsOf(e),
        align: t !== undefined ? { status: 'aligned', trace: traceId.get(t) } : aside !== undefined ? { status: aside === 'not compared' ? 'not-compared' : 'set-aside', reason: aside } : { status: 'model-only', divergence: divOf.get(e) ?? null },
      };
    }),
    divergences: r.divergences.map((d) => ({
      kind: d.kind,
      divergence: isDivergence(d),
      thread: d.thread,
      message: d.message,
      hint: d.hint,
      trace: (() => {
        const a = traceAnchor(d);
        return a === null ? null : { id: d.trace === null ? null : (traceId.get(d.trace) ?? null), file: a.file, line: a.line };
      })(),
      model: d.seq === null ? null : { id: d.modelEvent === null ? null : (modelId.get(d.modelEvent) ?? null), seq: d.seq },
      traceEvents: d.hunk.real.map((e) => traceId.get(e)),
      modelEvents: d.hunk.model.map((e) => modelId.get(e)),
    })),
    firstDivergence: r.first === null ? null : r.divergences.indexOf(r.first),
    livelocks: { trace: r.livelocks.trace.map((l) => livelock(l, 'trace')), model: r.livelocks.model.map((l) => livelock(l, 'model')) },
  };
}

function counts(rec: Record<string, number>): string {
  return Object.entries(rec)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
}

const divergenceLine = (d: Divergence) => {
  const a = traceAnchor(d);
  return `${a === null ? '(no trace line)' : `${a.file}:${a.line}`} (${d.thread}) ↔ model step ${d.seq ?? '-'}: ${d.kind}`;
};

export function reportText(r: ImportResult, files: ReportFiles): string[] {
  const out: string[] = [];
  const t = r.trace;
  const byEvent: Record<string, number> = {};
  for (const e of t.events) if (e.data.name !== 'unknown') byEvent[e.data.name] = (byEvent[e.data.name] ?? 0) + 1;
  const unknown = Object.values(t.unknown).reduce((a, b) => a + b, 0);
  for (const f of t.files) out.push(`# ${f.file}: ${f.format}, ${f.lines} lines, ${f.events} events`);
  out.push(`# events: ${counts(byEvent) || 'none'}${unknown > 0 ? `; ${unknown} of unknown events kept (${counts(t.unknown)})` : ''}${t.diagnostics.length > 0 ? `; ${t.diagnostics.length} malformed line(s)` : ''}`);
  if (t.vcpus.length > 0) out.push(`# vCPU threads: ${t.vcpus.map((v) => `vcpu${v.vcpu} = ${v.comm ?? '?'}-${v.pid}`).join(', ')}`);
  const b = r.built;
  const facts = [b.vmType === 'tdx' ? 'TD' : 'VMX guest', `GPAW ${b.gpaw}`, ...(b.vmType === 'tdx' ? [b.septVeDisable ? 'SEPT_VE_DISABLE' : 'SEPT_VE_DISABLE off'] : []), ...(b.privateHugePages ? ['privateHugePages'] : []), `${b.vcpus.length} vCPU(s)`, `${b.devices.length} MMIO device(s)`, `${b.image.length} image page(s)`];
  out.push(`# scenario ${b.name}: ${facts.join(', ')}${files.scenario === null ? '' : ` → ${files.scenario}`}`);
  for (const v of b.vcpus) {
    const ops = v.ops.map((o) => `${opText(o.op)}${o.origin.retries ? ` (faulted again ${o.origin.retries}×)` : ''}${o.origin.src.length ? ` [${linesOf(o.origin.src, 3)}]` : ''}`);
    const shown = ops.length > 8 ? [...ops.slice(0, 7), `… ${ops.length - 8} more …`, ops.at(-1)!] : ops;
    out.push(`#   vcpu${v.vcpu}${v.privateVe === 'accept' ? ' (its #VE handler accepts)' : ''}: ${shown.join('; ')}`);
  }
  for (const n of b.notes.slice(0, 10)) out.push(`#   note: ${n.src === null ? '' : `${n.src.file}:${n.src.line}: `}${n.message}`);
  if (b.notes.length > 10) out.push(`#   note: … and ${b.notes.length - 10} more (--json lists them all)`);
  out.push(`# model: ${r.outcome.steps} steps, outcome ${r.outcome.status}${r.outcome.reason ? ` (${r.outcome.reason})` : ''}${files.log === null ? '' : `; log ${files.log}`}`);
  const comparedReal = [...r.alignment.streams.real.values()].reduce((n, s) => n + s.length, 0);
  const asideCounts: Record<string, number> = {};
  for (const [e, why] of r.alignment.aside) if (e.src !== null && why !== 'not compared') asideCounts[why] = (asideCounts[why] ?? 0) + 1;
  out.push(`# compared ${[...r.alignment.compared].sort().join(', ') || 'nothing'}: ${r.alignment.pairs.length} of ${comparedReal} trace events aligned${Object.keys(asideCounts).length ? `; set aside: ${counts(asideCounts)}` : ''}`);
  const divs = r.divergences.filter(isDivergence);
  if (r.first === null) out.push('no divergence: every compared trace event has its counterpart in the model\'s run, in order');
  else {
    out.push(`first divergence: ${divergenceLine(r.first)}`);
    out.push(`  ${r.first.message}`);
    if (r.first.hint !== null) out.push(`  hint: ${r.first.hint}`);
    const rest = divs.filter((d) => d !== r.first);
    for (const d of rest.slice(0, 9)) out.push(`also: ${divergenceLine(d)}: ${d.message}`);
    if (rest.length > 9) out.push(`also: … ${rest.length - 9} more (--json lists them all)`);
  }
  for (const d of r.divergences.filter((x) => !isDivergence(x))) out.push(`# ${d.message}`);
  for (const l of r.livelocks.trace) {
    const modelToo = r.livelocks.model.some((m) => m.thread === l.thread && m.gpa === l.gpa);
    out.push(`livelock signature: ${describeLivelock(l)}; the model ${modelToo ? 'loops there too' : 'does not loop there'}`);
  }
  for (const l of r.livelocks.model) if (!r.livelocks.trace.some((x) => x.thread === l.thread && x.gpa === l.gpa)) out.push(`livelock signature in the model only: ${describeLivelock(l)}`);
  return out;
}
