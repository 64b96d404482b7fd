/**
 * Reading trace files into events: the frame of each line (src/import/frame.ts), the payload of each known
 * tracepoint (src/import/tracepoints/), wrapped lines joined back, the register dump of a SEAMCALL error
 * folded into it, and each event given its thread (src/import/threads.ts).
 *
 * A line that matches no frame right after an event is taken as the rest of that event when the joined
 * payload reads as one of its layouts (with a space between the parts, or without, for a line broken in
 * the middle of a number); free-text events (printk, unknown tracepoints) take it as it is. Anything else
 * is a diagnostic naming file and line; an unknown event is kept and counted, never an error.
 */
import { detectFormat, isHeaderLine, matchFrame } from './frame.ts';
import { parsePayload, PRINTK_EVENTS } from './tracepoints/registry.ts';
import { parseRegisterDump } from './tracepoints/tdxPrintk.ts';
import { assignThreads, type VcpuThread } from './threads.ts';
import type { Diagnostic, TraceEvent, TraceEventData, TraceFormat } from './traceEvent.ts';

export interface TraceInput {
  file: string;
  text: string;
}

export interface ParsedFile {
  file: string;
  format: TraceFormat;
  /** Physical lines in the file. */
  lines: number;
  events: number;
}

export interface ParsedTrace {
  files: ParsedFile[];
  events: TraceEvent[];
  diagnostics: Diagnostic[];
  /** Events no parser knows, by name: kept in `events`, counted here. */
  unknown: Record<string, number>;
  vcpus: VcpuThread[];
}

const clip = (s: string) => JSON.stringify(s.length > 120 ? `${s.slice(0, 117)}...` : s);
const FREE_TEXT = (d: TraceEventData | null) => d !== null && (d.name === 'unknown' || d.name === 'printk');

interface Open {
  event: TraceEvent | null;
  payload: string;
  data: TraceEventData | null;
  frameEvent: string;
  line: number;
  endLine: number;
  frame: TraceEvent['frame'];
}

/** One file's events; `format` forces the frame format, otherwise it is detected from the first lines. */
export function parseTraceText(input: TraceInput, format?: TraceFormat): { format: TraceFormat; events: TraceEvent[]; diagnostics: Diagnostic[]; lines: number } {
  const lines = input.text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  const diagnostics: Diagnostic[] = [];
  const fmt = format ?? detectFormat(lines);
  if (fmt === null) {
    diagnostics.push({ file: input.file, line: 1, message: 'no line reads as a trace-cmd report, ftrace, perf script or dmesg line (try --format)' });
    return { format: 'trace-cmd', events: [], diagnostics, lines: lines.length };
  }
  const events: TraceEvent[] = [];
  let open: Open | null = null;
  const close = () => {
    if (open === null) return;
    if (open.data === null) {
      diagnostics.push({ file: input.file, line: open.line, message: `${open.frameEvent}: the payload matches no layout of the tracepoint: ${clip(open.payload)}` });
    } else {
      events.push({
        src: { file: input.file, line: open.line, endLine: open.endLine },
        format: fmt,
        frame: open.frame,
        event: open.frameEvent,
        payload: open.payload,
        data: open.data,
        thread: 'vm',
      });
    }
    open = null;
  };
  lines.forEach((text, i) => {
    const lineNo = i + 1;
    if (isHeaderLine(text)) {
      close();
      return;
    }
    const fr = matchFrame(text, fmt);
    if (fr !== null) {
      close();
      open = { event: null, payload: fr.payload, data: parsePayload(fr.event, fr.payload), frameEvent: fr.event, line: lineNo, endLine: lineNo, frame: fr.frame };
      return;
    }
    const o = open as Open | null;
    if (o !== null) {
      const rest = text.trim();
      const candidates = FREE_TEXT(o.data) ? [`${o.payload} ${rest}`] : [`${o.payload} ${rest}`, `${o.payload}${rest}`];
      for (const c of candidates) {
        const d = parsePayload(o.frameEvent, c);
        if (d !== null) {
          o.payload = c;
          o.data = d;
          o.endLine = lineNo;
          return;
        }
      }
      diagnostics.push({ file: input.file, line: lineNo, message: `not a ${fmt} line, nor the rest of the ${o.frameEvent} line above: ${clip(text)}` });
      return;
    }
    diagnostics.push({ file: input.file, line: lineNo, message: `not a ${fmt} line: ${clip(text)}` });
  });
  close();
  diagnostics.sort((a, b) => a.line - b.line);
  return { format: fmt, events: foldRegisterDumps(events), diagnostics, lines: lines.length };
}

/** seamcall_err_ret's `RCX … RDX … R08 …` and `R09 … R10 … R11 …` lines belong to the error above them. */
function foldRegisterDumps(events: TraceEvent[]): TraceEvent[] {
  const out: TraceEvent[] = [];
  for (const e of events) {
    const prev = out.at(-1);
    if (PRINTK_EVENTS.has(e.event) && e.data.name === 'printk' && prev !== undefined && prev.data.name === 'tdx_seamcall_error' && prev.data.origin === 'virt/tdx') {
      const regs = parseRegisterDump(e.data.text);
      if (regs !== null) {
        prev.data = { ...prev.data, operands: { ...prev.data.operands, ...regs } };
        prev.src = { ...prev.src!, endLine: e.src!.endLine };
        continue;
      }
    }
    out.push(e);
  }
  return out;
}

const seconds = (e: TraceEvent) => (e.frame.ts === null ? null : Number(e.frame.ts));

/**
 * Several files (a trace and the dmesg of the same run) become one stream: ordered by timestamp when every
 * event has one (ftrace's default clock and printk's are both the local clock since boot), else file by file.
 */
export function parseTraceFiles(inputs: readonly TraceInput[], format?: TraceFormat): ParsedTrace {
  const files: ParsedFile[] = [];
  const diagnostics: Diagnostic[] = [];
  const perFile: TraceEvent[][] = [];
  for (const input of inputs) {
    const r = parseTraceText(input, format);
    files.push({ file: input.file, format: r.format, lines: r.lines, events: r.events.length });
    diagnostics.push(...r.diagnostics);
    perFile.push(r.events);
  }
  let events = perFile.flat();
  if (perFile.length > 1 && events.every((e) => seconds(e) !== null)) {
    events = events.map((e, i) => ({ e, i })).sort((a, b) => seconds(a.e)! - seconds(b.e)! || a.i - b.i).map((x) => x.e);
  }
  const unknown: Record<string, number> = {};
  for (const e of events) if (e.data.name === 'unknown') unknown[e.event] = (unknown[e.event] ?? 0) + 1;
  const vcpus = assignThreads(events);
  return { files, events, diagnostics, unknown, vcpus };
}
