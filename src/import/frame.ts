/**
 * The line frame of each trace format, i.e. everything before the tracepoint's own payload:
 *
 *   ftrace      `       CPU 0/KVM-4242    [003] d..1.   812.100000: kvm_exit: vcpu 0 reason …`
 *               (the raw /sys/kernel/tracing/trace: task-pid, optional `(tgid)`, CPU, the latency flags
 *               — four columns before v5.17, five with migrate-disable after —, timestamp, event)
 *   trace-cmd   `       CPU 0/KVM-4242  [003]   812.100000: kvm_exit:             vcpu 0 reason …`
 *               (`trace-cmd report`: no flags column unless -l, event name padded)
 *   perf        `       CPU 0/KVM  4242 [003]   812.100000: kvm:kvm_exit: vcpu 0 reason …`
 *               (`perf script`: comm, tid (or pid/tid), CPU, time, system:event)
 *   dmesg       `[  812.100042] kvm_intel: SEAMCALL …`, also `<3>[…]` (dmesg -r), `[…][ T4242]`
 *               (CONFIG_PRINTK_CALLER), `[Mon Jan  5 …]` (dmesg -T) and `Jan  5 10:00:00 host kernel: …`
 *               (syslog, journalctl)
 *
 * A line that matches no frame is either a header/comment (skipped) or, right after an event, the rest of
 * a wrapped line (src/import/parseTrace.ts decides).
 */
import type { Frame, TraceFormat } from './traceEvent.ts';

export interface FramedLine {
  frame: Frame;
  /** The event name without a perf `system:` prefix; `dmesg` for a kernel log line. */
  event: string;
  payload: string;
}

// comm is lazy up to the last `-pid` before the CPU column, so `CPU 0/KVM-4242` keeps its slash and space.
const FTRACE = /^\s*(.+?)-(\d+)\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[(\d+)\]\s+(?:([^\s:[\]]{4,5})\s+)?(\d+\.\d+):\s+([A-Za-z_]\w*):\s?(.*)$/;
const PERF = /^\s*(.+?)\s+(\d+)(?:\/(\d+))?\s+(?:\[(\d+)\]\s+)?(\d+\.\d+):\s+(?:\d+\s+)?(\w+):(\w+):\s?(.*)$/;
const DMESG = /^(?:<\d+>)?\[\s*(\d+\.\d+)\](?:\[\s*([TC])(\d+)\])?\s?(.*)$/;
const DMESG_T = /^\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\]\s?(.*)$/;
const SYSLOG = /^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+)\s+\S+\s+kernel:\s(?:\[\s*(\d+\.\d+)\]\s)?(.*)$/;

/** Header and comment lines each tool prints around its events. */
const HEADER = [/^\s*$/, /^#/, /^version = \d+/, /^cpus=\d+/, /^CPU:?\s*\d+ is empty/, /^trace-cmd:/, /^\s*-{4,}/];

export function isHeaderLine(text: string): boolean {
  return HEADER.some((re) => re.test(text));
}

function frameOf(ts: string | null, cpu: string | undefined, comm: string | undefined, pid: string | undefined): Frame {
  return { ts, cpu: cpu === undefined ? null : Number(cpu), comm: comm === undefined ? null : comm.trim(), pid: pid === undefined ? null : Number(pid) };
}

/** The frame of `text` in `format`, or null when the line has none. */
export function matchFrame(text: string, format: TraceFormat): FramedLine | null {
  switch (format) {
    case 'ftrace':
    case 'trace-cmd': {
      const m = FTRACE.exec(text);
      return m ? { frame: frameOf(m[5]!, m[3], m[1], m[2]), event: m[6]!, payload: m[7]!.trim() } : null;
    }
    case 'perf': {
      const m = PERF.exec(text);
      return m ? { frame: frameOf(m[5]!, m[4], m[1], m[3] ?? m[2]), event: m[7]!, payload: m[8]!.trim() } : null;
    }
    case 'dmesg': {
      const d = DMESG.exec(text);
      // The caller id is a task (T) or a CPU (C) outside task context.
      if (d) return { frame: { ts: d[1]!, cpu: d[2] === 'C' ? Number(d[3]) : null, comm: null, pid: d[2] === 'T' ? Number(d[3]) : null }, event: 'dmesg', payload: d[4]!.trimEnd() };
      const t = DMESG_T.exec(text);
      if (t) return { frame: frameOf(null, undefined, undefined, undefined), event: 'dmesg', payload: t[1]!.trimEnd() };
      const s = SYSLOG.exec(text);
      if (s) return { frame: frameOf(s[1] ?? null, undefined, undefined, undefined), event: 'dmesg', payload: s[2]!.trimEnd() };
      return null;
    }
  }
}

/**
 * Guess the format from the first lines: the one whose frame matches most of them; a `# tracer:` header or
 * a flags column says ftrace rather than trace-cmd. Null when no line matches any.
 */
export function detectFormat(lines: readonly string[]): TraceFormat | null {
  const sample = lines.filter((l) => !isHeaderLine(l)).slice(0, 200);
  const score = (f: TraceFormat) => sample.filter((l) => matchFrame(l, f) !== null).length;
  const counts: [TraceFormat, number][] = [
    ['trace-cmd', score('trace-cmd')],
    ['perf', score('perf')],
    ['dmesg', score('dmesg')],
  ];
  counts.sort((a, b) => b[1] - a[1]);
  const [best, n] = counts[0]!;
  if (n === 0) return null;
  if (best !== 'trace-cmd') return best;
  const flagged = sample.some((l) => {
    const m = FTRACE.exec(l);
    return m !== null && m[4] !== undefined;
  });
  return flagged || lines.some((l) => l.startsWith('# tracer:')) ? 'ftrace' : 'trace-cmd';
}

/** `trace-cmd report`'s line: task-pid right-aligned, CPU, timestamp, the event name padded to 20. */
export function renderTraceCmdLine(frame: Frame, event: string, payload: string): string {
  const task = `${frame.comm ?? '<...>'}-${frame.pid ?? 0}`.padStart(16);
  const cpu = String(frame.cpu ?? 0).padStart(3, '0');
  const ts = (frame.ts ?? '0.000000').padStart(12);
  return `${task} [${cpu}] ${ts}: ${`${event}:`.padEnd(20)} ${payload}`;
}
