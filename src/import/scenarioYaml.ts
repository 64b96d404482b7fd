/**
 * A built scenario as YAML in the style of examples/*\/scenario.yaml: one flow mapping per instruction,
 * with the trace lines it was read from as a comment, so the file can be read against the trace, edited
 * and run with `tdxsim run`.
 */
import { PAGE_SIZE } from '../arch/gpa.ts';
import { hex } from '../arch/hex.ts';
import type { BuiltOp, BuiltScenario, Origin } from './scenarioBuilder.ts';
import type { SourceRef } from './traceEvent.ts';

/** `trace.txt:12,15-16` — the lines of one file, ranges merged; other files by name. */
export function linesOf(src: readonly SourceRef[], max = 6): string {
  const byFile = new Map<string, number[]>();
  for (const s of src) for (let l = s.line; l <= s.endLine; l++) byFile.set(s.file, [...(byFile.get(s.file) ?? []), l]);
  const parts: string[] = [];
  for (const [file, raw] of byFile) {
    const lines = [...new Set(raw)].sort((a, b) => a - b);
    const runs: string[] = [];
    for (let i = 0; i < lines.length; ) {
      let j = i;
      while (j + 1 < lines.length && lines[j + 1] === lines[j]! + 1) j++;
      runs.push(i === j ? String(lines[i]) : `${lines[i]}-${lines[j]}`);
      i = j + 1;
    }
    const shown = runs.length > max ? [...runs.slice(0, max - 1), '…', runs.at(-1)!] : runs;
    parts.push(`${file}:${shown.join(',')}`);
  }
  return parts.join(' ');
}

function opYaml(op: BuiltOp): string {
  switch (op.op) {
    case 'load':
      return `{ op: load, gpa: ${hex(op.gpa)}, size: ${op.size} }`;
    case 'store':
      return `{ op: store, gpa: ${hex(op.gpa)}, size: ${op.size}, value: ${hex(op.value)} }`;
    case 'accept':
      return `{ op: accept, gpa: ${hex(op.gpa)}, size: ${hex(op.size)} }`;
    case 'mapGpa':
      return `{ op: mapGpa, gpa: ${hex(op.gpa)}, size: ${hex(op.size)}, to: ${op.to} }`;
    case 'out':
      return `{ op: out, port: ${hex(op.port)}, size: ${op.size}, value: ${hex(op.value)} }`;
    case 'hlt':
      return `{ op: hlt }`;
  }
}

function comment(origin: Origin): string {
  const where = origin.src.length === 0 ? '' : `${linesOf(origin.src)}: `;
  const retried = origin.retries === undefined ? '' : ` (faulted again ${origin.retries}×)`;
  return `# ${where}${origin.what}${retried}`;
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

export function scenarioYaml(b: BuiltScenario): string {
  const out: string[] = [];
  out.push(`# Built by tdxsim import: what the guest must have executed for KVM to trace what it traced.`);
  out.push(`# Edit it and run it with \`tdxsim run <this file>\`; each instruction names the trace lines it came from.`);
  for (const n of b.notes.slice(0, 20)) out.push(`# note: ${n.src === null ? '' : `${n.src.file}:${n.src.line}: `}${n.message}`);
  if (b.notes.length > 20) out.push(`# note: … and ${b.notes.length - 20} more (see the import report)`);
  out.push(`name: ${b.name}`);
  out.push(`description: ${quote(b.description)}`);
  const attrs = b.septVeDisable ? '[SEPT_VE_DISABLE]' : '[]';
  out.push(`vm: { type: ${b.vmType}, gpaw: ${b.gpaw}${b.vmType === 'tdx' ? `, attributes: ${attrs}` : ''} }`);
  if (b.privateHugePages) out.push(`policies: { privateHugePages: true }   # a private 2M leaf is in the trace (the huge-page series)`);
  if (b.mapGpaEagain > 0) out.push(`vmm: { mapGpaExit: true, mapGpaEagain: ${b.mapGpaEagain} }   # MapGPA exits the VMM answered without converting`);
  out.push(`memslots:`);
  for (const m of b.memslots) out.push(`  - { gpa: ${hex(m.gpa)}, size: ${hex(m.size)}${m.guestMemfd ? ', guestMemfd: true' : ''} }   # ${m.why}`);
  if (b.devices.length > 0) {
    out.push(`devices:`);
    for (const d of b.devices) {
      const regs = [...d.registers].sort((a, c) => (a[0] < c[0] ? -1 : 1)).map(([off, v]) => `${hex(off)}: ${hex(v)}`);
      const where = d.src === null ? '' : `   # MMIO seen at ${d.src.file}:${d.src.line}`;
      out.push(`  - { name: mmio-${d.gpa.toString(16)}, kind: mmio-regs, gpa: ${hex(d.gpa)}, size: ${hex(PAGE_SIZE)}, registers: { ${regs.join(', ')} } }${where}`);
    }
  }
  if (b.image.length > 0) {
    out.push(`image:   # pages the build added before any vCPU ran (KVM_TDX_INIT_MEM_REGION); their contents are not in a trace`);
    for (const p of b.image) out.push(`  - { gpa: ${hex(p.gpa)} }${p.src === null ? '' : `   # ${p.src.file}:${p.src.line}`}`);
  }
  out.push(`vcpus:`);
  for (const v of b.vcpus) {
    out.push(`  - # vCPU ${v.vcpu}`);
    if (v.privateVe === 'accept') out.push(`    privateVe: accept   # it went on after touching a page KVM AUGed: its #VE handler accepted it`);
    out.push(`    program:`);
    for (const o of v.ops) out.push(`      - ${opYaml(o.op)}   ${comment(o.origin)}`);
  }
  return out.join('\n') + '\n';
}
