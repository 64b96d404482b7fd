/**
 * A log as `trace-cmd report` would print a trace of the same run recorded with `-e kvm -e kvmmmu -e
 * printk:console`: the tracepoints KVM would hit, in its own layouts (src/import/modelTrace.ts says which
 * message hits which), one line per event, so a model run and a real trace can be compared with grep and
 * diff, and `tdxsim import` reads it back. Time is logical — step N at N µs — and the threads are named as
 * QEMU names them (`CPU N/KVM` for a vCPU's KVM_RUN thread), so the output is the same for the same log.
 */
import type { ParsedLog } from '../log/reader.ts';
import { renderTraceCmdLine } from '../import/frame.ts';
import { modelTrace } from '../import/modelTrace.ts';

export function traceCmdReport(log: ParsedLog, file = '<log>'): string {
  const events = modelTrace(log, file);
  const cpus = new Set(events.map((e) => e.frame.cpu ?? 0));
  const lines = [`cpus=${cpus.size === 0 ? 1 : Math.max(...cpus) + 1}`];
  for (const e of events) lines.push(renderTraceCmdLine(e.frame, e.event, e.payload));
  return lines.join('\n') + '\n';
}
