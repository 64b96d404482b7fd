/**
 * Loading a scenario: YAML (or JSON, which YAML reads too) → schema → semantic checks. Every error names
 * the file, line, column and field path, so a user can fix a scenario without reading code.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument, isAlias, isCollection, isNode, isPair, type Document, type Node, type YAMLError } from 'yaml';
import { NotRegularFileError, nonRegularKind, readRegularFile } from '../log/regularFile.ts';
import { decodeUtf8 } from '../log/utf8.ts';
import { sharedBit, PAGE_SIZE } from '../arch/gpa.ts';
import { tdvmcallMessageName, TDVMCALL_INSTRUCTION_CPUID, TDVMCALL_INSTRUCTION_RDMSR, TDVMCALL_INSTRUCTION_WRMSR } from '../arch/tdcall.ts';
import { hex } from '../arch/hex.ts';
import { scenarioSchema, type Scenario } from './schema.ts';

export type ScenarioPath = (string | number)[];

/**
 * A scenario that cannot be used: unreadable (`IO`), not YAML (`PARSE`), not the format (`SCHEMA`), or
 * inconsistent (`SEMANTIC`). The message reads `file:line:col: field.path: what is wrong`.
 */
export class ScenarioError extends Error {
  override name = 'ScenarioError';
  constructor(
    readonly code: 'IO' | 'PARSE' | 'SCHEMA' | 'SEMANTIC',
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly fieldPath: ScenarioPath,
    readonly detail: string,
  ) {
    const where = line > 0 ? `${file}:${line}:${column}` : file;
    const field = fieldPath.length > 0 ? ` ${formatPath(fieldPath)}:` : '';
    super(`${where}:${field} ${detail}`);
  }
}

export function formatPath(p: ScenarioPath): string {
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
}

const EXAMPLES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples');
/** Works from src/ (tests) and dist/src/ (the CLI). */
export function examplesDir(): string {
  return existsSync(EXAMPLES_DIR) ? EXAMPLES_DIR : path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples');
}

/** A file, a directory holding scenario.yaml, or the name of a bundled example. */
export function resolveScenarioPath(arg: string): string {
  const kind = nonRegularKind(arg);
  if (kind !== null && kind !== 'a directory') throw new ScenarioError('IO', arg, 0, 0, [], `${kind} is not a regular file: give a scenario file, a directory with scenario.yaml, or a bundled example`);
  const candidates = [arg, path.join(arg, 'scenario.yaml'), path.join(examplesDir(), arg, 'scenario.yaml')];
  for (const c of candidates) {
    if (existsSync(c) && statSync(c).isFile()) {
      // Named relative to the working directory when inside it, so the log header does not depend on
      // whether the user typed a path or a bundled example's name.
      const rel = path.relative(process.cwd(), path.resolve(c));
      return rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(c) : rel;
    }
  }
  throw new ScenarioError('IO', arg, 0, 0, [], `no such scenario file, directory with scenario.yaml, or bundled example (see \`tdxsim examples\`)`);
}

/**
 * Loads a scenario from a file, a directory holding `scenario.yaml`, or a bundled example's name, and returns
 * it with the file it came from (as a log header records it).
 * @throws ScenarioError
 */
export function loadScenarioFile(arg: string): { scenario: Scenario; file: string } {
  const file = resolveScenarioPath(arg);
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file);
  } catch (e) {
    throw new ScenarioError('IO', file, 0, 0, [], e instanceof NotRegularFileError ? `${e.what} is not a regular file` : (e as Error).message);
  }
  const decoded = decodeUtf8(bytes);
  if (!decoded.ok) {
    throw new ScenarioError('PARSE', file, decoded.line, decoded.column, [], `invalid UTF-8 (byte 0x${decoded.byte.toString(16).padStart(2, '0')}): a scenario is UTF-8 text`);
  }
  return { scenario: parseScenarioText(decoded.text, file), file };
}

/**
 * Deeper than any scenario needs (the deepest, image words, is 4 levels), shallow enough that every
 * recursive walk over the scenario (validation, the log header's serialisation) stays far from the stack limit.
 */
export const MAX_SCENARIO_DEPTH = 32;

/** The tags YAML 1.2's core schema resolves by itself; naming one changes nothing a plain value would not say. */
const CORE_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));
const NO_ALIASES = 'scenarios accept no anchors or aliases: write the value out in full';

/** `!!binary` for the long form of a standard tag, as the user wrote it. */
function tagAsWritten(tag: string): string {
  return tag.startsWith('tag:yaml.org,2002:') ? `!!${tag.slice('tag:yaml.org,2002:'.length)}` : tag;
}

/**
 * What the YAML library accepts but a scenario must not hold, found before the document becomes data:
 * an alias (expanding them is how "billion laughs" files exhaust memory, and a scenario is copied into every
 * log header), an anchor (only there to be aliased), a tag outside the core schema (`!!binary` would become
 * bytes, `!foo` silently a string), and nesting deeper than MAX_SCENARIO_DEPTH. Iterative, so a deep file
 * cannot overflow the stack here.
 */
function refusedNode(doc: Document, text: string): { at: number; message: string } | null {
  // A node's range starts at its content; its anchor or tag comes before it, maybe on an earlier line.
  const before = (node: Node, written: string) => {
    const start = node.range?.[0] ?? 0;
    const i = text.lastIndexOf(written, start);
    return i === -1 ? start : i;
  };
  const stack: { node: unknown; depth: number }[] = [{ node: doc.contents, depth: 1 }];
  while (stack.length > 0) {
    const { node, depth } = stack.pop()!;
    if (isPair(node)) {
      stack.push({ node: node.value, depth }, { node: node.key, depth });
      continue;
    }
    if (!isNode(node)) continue;
    if (isAlias(node)) return { at: node.range?.[0] ?? 0, message: `YAML alias *${node.source}: ${NO_ALIASES}` };
    if (node.anchor !== undefined) return { at: before(node, `&${node.anchor}`), message: `YAML anchor &${node.anchor}: ${NO_ALIASES}` };
    if (node.tag !== undefined && !CORE_TAGS.has(node.tag)) {
      const tag = tagAsWritten(node.tag);
      return { at: before(node, tag), message: `YAML tag ${tag}: scenarios hold plain values (of the explicit tags only !!str, !!int, !!float, !!bool, !!null, !!map and !!seq are accepted)` };
    }
    if (isCollection(node)) {
      if (depth > MAX_SCENARIO_DEPTH) return { at: node.range?.[0] ?? 0, message: `nested more than ${MAX_SCENARIO_DEPTH} levels deep` };
      // Reversed, so the first item in the file is reported first.
      for (let i = node.items.length - 1; i >= 0; i--) stack.push({ node: node.items[i], depth: depth + 1 });
    }
  }
  return null;
}

/**
 * Where flow collections (`[`, `{`) first nest deeper than MAX_SCENARIO_DEPTH: the YAML library gives up on
 * such a file where its stack ran out, which depends on the machine, so the position is found again here.
 */
function tooDeepFlowAt(text: string): number | null {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== null) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      const nl = text.indexOf('\n', i);
      if (nl === -1) return null;
      i = nl;
    } else if (c === '[' || c === '{') {
      if (++depth > MAX_SCENARIO_DEPTH) return i;
    } else if (c === ']' || c === '}') {
      depth = Math.max(0, depth - 1);
    }
  }
  return null;
}

/** The YAML library's error in a scenario's words; its message's first line otherwise. */
function parseErrorDetail(err: YAMLError, text: string): { at: number; detail: string } {
  switch (err.code) {
    case 'RESOURCE_EXHAUSTION':
      return { at: tooDeepFlowAt(text) ?? err.pos[0], detail: `nested more than ${MAX_SCENARIO_DEPTH} levels deep` };
    case 'DUPLICATE_KEY': {
      const key = /^(?:"[^"\n]*"|'[^'\n]*'|[^\s:,{}\[\]]+)/.exec(text.slice(err.pos[0]))?.[0];
      return { at: err.pos[0], detail: `duplicate key${key === undefined ? '' : ` ${key}`}: a mapping holds each key once` };
    }
    default:
      return { at: err.pos[0], detail: err.message.split('\n')[0]! };
  }
}

/**
 * Validates scenario text (YAML or JSON); errors name `file`, line, column and field.
 * @throws ScenarioError
 */
export function parseScenarioText(text: string, file: string): Scenario {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, intAsBigInt: true, uniqueKeys: true, prettyErrors: false });
  const err = doc.errors[0];
  if (err) {
    const { at, detail } = parseErrorDetail(err, text);
    const pos = lineCounter.linePos(at);
    throw new ScenarioError('PARSE', file, pos.line, pos.col, [], detail);
  }
  const refused = refusedNode(doc, text);
  if (refused) {
    const pos = lineCounter.linePos(refused.at);
    throw new ScenarioError('PARSE', file, pos.line, pos.col, [], refused.message);
  }
  // Anything else the library only warns about (it would carry on with a guess) is refused too.
  const warning = doc.warnings[0];
  if (warning) {
    const pos = lineCounter.linePos(warning.pos[0]);
    throw new ScenarioError('PARSE', file, pos.line, pos.col, [], warning.message.split('\n')[0]!);
  }
  const locate = (p: ScenarioPath) => locateInDoc(doc, lineCounter, p);
  // No alias is left to expand, so no alias budget is needed.
  return validate(doc.toJS({ maxAliasCount: 0 }), file, locate);
}

/** Validate an object built in code (the TypeScript API) or stored in a log header. */
export function parseScenarioObject(obj: unknown, file = '<scenario object>'): Scenario {
  return validate(obj, file, () => ({ line: 0, column: 0 }));
}

type Locate = (p: ScenarioPath) => { line: number; column: number };

function validate(obj: unknown, file: string, locate: Locate): Scenario {
  const r = scenarioSchema.safeParse(obj);
  if (!r.success) {
    const first = r.error.issues[0]!;
    // A misspelt key also leaves its correct spelling missing: the unknown key is the one to report.
    const parent = JSON.stringify(first.path.slice(0, -1));
    const issue = r.error.issues.find((i) => i.code === 'unrecognized_keys' && JSON.stringify(i.path) === parent) ?? first;
    const p = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
    // zod reports an unknown key at its parent; name the key itself, since that is what to fix.
    if (issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined) p.push(issue.keys[0]);
    const { line, column } = locate(p);
    throw new ScenarioError('SCHEMA', file, line, column, p, issue.message);
  }
  const problem = semanticProblem(r.data);
  if (problem) {
    const { line, column } = locate(problem.path);
    throw new ScenarioError('SEMANTIC', file, line, column, problem.path, problem.message);
  }
  return r.data;
}

/** The node at `p`, or its nearest ancestor that exists (a missing key is reported at its parent). */
function locateInDoc(doc: Document, lc: LineCounter, p: ScenarioPath): { line: number; column: number } {
  for (let n = p.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(p.slice(0, n), true);
    if (isNode(node) && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return { line: 1, column: 1 };
}

/**
 * What the schema cannot say: devices and memslots do not overlap and are given without the shared bit;
 * a TD's private GPAs and the image lie in guest_memfd memslots; every access reaches a device or a
 * memslot (the shared alias of guest_memfd memory starts unmapped: the guest converts it with MapGPA, or
 * the VMM converts it when the access faults), stays inside one page (Linux's handle_mmio rejects page-crossing MMIO,
 * §6.i step 8) and inside one naturally aligned 8-byte word (the model's memory granule); accepts are
 * 4K-aligned ranges.
 */
/** TDVMCALLs KVM answers with machinery the model lacks (kvm_cpuid, MSR emulation). */
const UNMODELLED_TDVMCALLS: readonly number[] = [TDVMCALL_INSTRUCTION_CPUID, TDVMCALL_INSTRUCTION_RDMSR, TDVMCALL_INSTRUCTION_WRMSR];

function semanticProblem(s: Scenario): { path: ScenarioPath; message: string } | null {
  const td = s.vm.type === 'tdx';
  const shared = td ? sharedBit(s.vm.gpaw as 48 | 52) : 0n;
  if (!td && s.vm.attributes.length > 0) return { path: ['vm', 'attributes'], message: 'TD attributes apply to vm.type "tdx" only' };
  if (!td && s.kthreads.length > 0) return { path: ['kthreads'], message: 'a playground kthread issues SEAMCALLs against a TD (vm.type "tdx")' };
  if (!td && s.image.length > 0) return { path: ['image'], message: 'an initial image is added with TDH.MEM.PAGE.ADD, which only a TD has (vm.type "tdx")' };
  for (const [j, m] of s.memslots.entries()) {
    if (m.gpa & shared) return { path: ['memslots', j, 'gpa'], message: `give memslots without the shared bit (${hex(shared)}): memslots never see it (§2)` };
    if (m.gpa % PAGE_SIZE !== 0n || m.size % PAGE_SIZE !== 0n || m.size === 0n) return { path: ['memslots', j, 'size'], message: 'memslots are whole 4K pages' };
    if (m.guestMemfd && !td) return { path: ['memslots', j, 'guestMemfd'], message: 'guest_memfd private memory is for a TD (vm.type "tdx")' };
  }
  for (const [i, d] of s.devices.entries()) {
    if (d.gpa & shared) return { path: ['devices', i, 'gpa'], message: `give the device base without the shared bit (${hex(shared)}); the VMM registers it that way` };
    for (const [j, m] of s.memslots.entries()) {
      if (d.gpa < m.gpa + m.size && m.gpa < d.gpa + d.size) return { path: ['devices', i, 'gpa'], message: `device ${d.name} overlaps memslots[${j}]` };
    }
  }
  const gmemSlot = (gpa: bigint) => s.memslots.find((m) => m.guestMemfd && gpa >= m.gpa && gpa < m.gpa + m.size);
  for (const [k, img] of s.image.entries()) {
    if (img.gpa % PAGE_SIZE !== 0n || !gmemSlot(img.gpa)) return { path: ['image', k, 'gpa'], message: `${hex(img.gpa)} must be a 4K-aligned private GPA inside a guestMemfd memslot` };
    for (const off of Object.keys(img.words)) {
      const o = BigInt(off);
      if (o % 8n !== 0n || o >= PAGE_SIZE) return { path: ['image', k, 'words', off], message: 'word offsets are multiples of 8 inside the page' };
    }
  }
  const checkAccess = (op: { gpa: bigint; size: number }, at: ScenarioPath): string | null => {
    const addr = op.gpa & ~shared;
    const isShared = !td || (op.gpa & shared) !== 0n;
    const device = s.devices.some((d) => addr >= d.gpa && addr + BigInt(op.size) <= d.gpa + d.size);
    const slot = s.memslots.find((m) => addr >= m.gpa && addr + BigInt(op.size) <= m.gpa + m.size);
    if (td && !isShared && device) return `${hex(op.gpa)} is a private GPA; MMIO in a TD goes through the shared alias (set bit ${s.vm.gpaw - 1}: ${hex(op.gpa | shared)})`;
    if (!device && slot === undefined) return `${hex(op.gpa)} is neither inside a device nor inside a memslot`;
    if (td && !isShared && !slot?.guestMemfd) return `${hex(op.gpa)} is private but its memslot has no guest_memfd`;
    if (addr / PAGE_SIZE !== (addr + BigInt(op.size) - 1n) / PAGE_SIZE) return 'the access crosses a page boundary, which MMIO emulation rejects';
    if (!device && addr % BigInt(op.size) !== 0n) return 'memory accesses must be naturally aligned (the model keeps memory as 8-byte words)';
    void at;
    return null;
  };
  for (const [k, m] of s.vmm.msi.entries()) {
    if (!td) return { path: ['vmm', 'msi', k], message: 'interrupts are modelled for a TD guest only (vm.type "tdx"): KVM posts them to the TD vCPU\'s posted-interrupt descriptor' };
    if (m.vcpu >= s.vcpus.length) return { path: ['vmm', 'msi', k, 'vcpu'], message: `vCPU ${m.vcpu} does not exist (the scenario has ${s.vcpus.length})` };
  }
  for (const [k, v] of s.vmm.nmi.entries()) {
    if (!td) return { path: ['vmm', 'nmi', k], message: 'NMIs are modelled for a TD guest only (vm.type "tdx"): KVM injects them through PEND_NMI' };
    if (v >= s.vcpus.length) return { path: ['vmm', 'nmi', k], message: `vCPU ${v} does not exist (the scenario has ${s.vcpus.length})` };
  }
  for (const [v, cpu] of s.vcpus.entries()) {
    if (cpu.lapicTimer !== undefined && !td) return { path: ['vcpus', v, 'lapicTimer'], message: 'interrupts are modelled for a TD guest only (vm.type "tdx")' };
    for (const [k, op] of cpu.program.entries()) {
      if (op.op === 'hlt' || op.op === 'sti' || op.op === 'cli') continue;
      const here: ScenarioPath = ['vcpus', v, 'program', k];
      if (op.op === 'ipi') {
        if (!td) return { path: [...here, 'op'], message: 'IPIs are modelled for a TD guest only (vm.type "tdx"): the ICR write becomes a #VE and TDG.VP.VMCALL<Instruction.WRMSR>' };
        if (op.to >= s.vcpus.length) return { path: [...here, 'to'], message: `vCPU ${op.to} does not exist (the scenario has ${s.vcpus.length})` };
        continue;
      }
      if (op.op === 'out' || op.op === 'in') {
        if (!td) return { path: [...here, 'port'], message: 'port I/O is modelled for a TD guest only (vm.type "tdx"), where it becomes a #VE and TDG.VP.VMCALL<Instruction.IO>' };
        if (op.op === 'in') continue;
        if ((op.value === undefined) === (op.reg === undefined)) return { path: [...here, 'value'], message: 'give an OUT either value or reg' };
        if (op.value !== undefined && op.value >> BigInt(op.size * 8) !== 0n) return { path: [...here, 'value'], message: `${hex(op.value)} does not fit in ${op.size} byte(s)` };
        continue;
      }
      if (op.op === 'tdvmcall' || op.op === 'vpInfo') {
        if (!td) return { path: [...here, 'op'], message: `${op.op === 'tdvmcall' ? 'TDG.VP.VMCALL' : 'TDG.VP.INFO'} is a TD guest operation (vm.type "tdx")` };
        if (op.op === 'tdvmcall' && UNMODELLED_TDVMCALLS.includes(op.subfunction)) {
          return { path: [...here, 'subfunction'], message: `${tdvmcallMessageName(op.subfunction)} is answered by KVM's CPUID/MSR emulation, which the model does not have` };
        }
        continue;
      }
      if (op.op === 'check') continue;
      if (op.op === 'loop') {
        if (op.to >= k) return { path: [...here, 'to'], message: `a loop branches back: "to" must be below its own index ${k}` };
        if (op.times === undefined && op.until === undefined) return { path: [...here, 'times'], message: 'a loop needs times, until or both' };
        if (cpu.program.slice(op.to, k).every((b) => b.op === 'loop' || b.op === 'check')) return { path: [...here, 'to'], message: 'the loop body needs an instruction that leaves the CPU (a load, store, TDCALL, IN, OUT or HLT)' };
        continue;
      }
      if (op.op === 'enterContext' || op.op === 'leaveContext') continue;
      const paged = 'va' in op && op.va !== undefined;
      if (paged || op.op === 'acceptMemory') {
        const where: ScenarioPath = ['vcpus', v, 'program', k, paged ? 'va' : 'gpa'];
        if (!td || s.guestKernel === undefined) return { path: where, message: `${op.op}${paged ? ' through a va' : ''} needs the guest kernel's memory data: a TD (vm.type "tdx") with a guestKernel section` };
        if (op.op === 'acceptMemory' && s.guestKernel.unaccepted === undefined) return { path: where, message: 'accept_memory consults the unaccepted-memory table: add guestKernel.unaccepted' };
        continue;
      }
      const at: ScenarioPath = ['vcpus', v, 'program', k, 'gpa'];
      if (op.op === 'accept') {
        if (!td) return { path: at, message: 'TDG.MEM.PAGE.ACCEPT is a TD guest operation (vm.type "tdx")' };
        if (op.gpa % PAGE_SIZE !== 0n || op.size % PAGE_SIZE !== 0n || op.size === 0n) return { path: at, message: 'accept ranges are 4K-aligned and a multiple of 4K' };
        if (!gmemSlot(op.gpa) || !gmemSlot(op.gpa + op.size - 1n)) return { path: at, message: `${hex(op.gpa)}+${hex(op.size)} is not private memory inside a guestMemfd memslot` };
        continue;
      }
      if (op.op === 'mapGpa') {
        // Alignment and range are KVM's to check (TDVMCALL ALIGN_ERROR / INVALID_OPERAND), so they stay reachable.
        if (!td) return { path: at, message: 'TDG.VP.VMCALL<MapGPA> is a TD guest operation (vm.type "tdx")' };
        if (op.gpa & shared) return { path: at, message: `give the GPA without the shared bit (${hex(shared)}); "to" says which alias the range becomes` };
        continue;
      }
      if (op.op === 'spinUntil' && s.devices.some((d) => (op.gpa! & ~shared) >= d.gpa && (op.gpa! & ~shared) < d.gpa + d.size)) {
        return { path: at, message: 'spinUntil waits on a guest memory word, not on a device register' };
      }
      const problem = checkAccess(op as { gpa: bigint; size: number }, at);
      if (problem) return { path: at, message: problem };
    }
    for (const [k, op] of cpu.veHandlerPrologue.entries()) {
      const at: ScenarioPath = ['vcpus', v, 'veHandlerPrologue', k, 'gpa'];
      const problem = checkAccess(op, at);
      if (problem) return { path: at, message: problem };
    }
  }
  // Which vCPUs a waitExit has taken and no run has re-entered yet, in program order.
  const held = new Set<number>();
  for (const [k, h] of (s.host ?? []).entries()) {
    if ((h.op === 'waitExit' || h.op === 'run') && h.vcpu >= s.vcpus.length) return { path: ['host', k, 'vcpu'], message: `vCPU ${h.vcpu} does not exist (${s.vcpus.length} vCPU(s))` };
    if (h.op === 'waitExit' && held.has(h.vcpu)) return { path: ['host', k], message: `vCPU ${h.vcpu} is still in userspace after the exit an earlier waitExit took: run it first` };
    if (h.op === 'waitExit') held.add(h.vcpu);
    if (h.op === 'run' && !held.delete(h.vcpu)) return { path: ['host', k], message: `run re-enters a vCPU whose exit a waitExit took; no waitExit before it holds vCPU ${h.vcpu}` };
    if (h.op === 'read' || h.op === 'write' || h.op === 'waitMemory') {
      const g = h.gpa & ~shared;
      // A memslot the build made or one an earlier step creates or moves; whether it still covers the GPA
      // when the step runs is the run's to find (hostSteps.ts).
      const made = (s.host ?? []).slice(0, k).flatMap((x) => (x.op === 'setMemoryRegion' && x.size > 0n ? [{ gpa: x.gpa, size: x.size }] : []));
      if (![...s.memslots, ...made].some((m) => g >= m.gpa && g + BigInt(h.size) <= m.gpa + m.size)) return { path: ['host', k, 'gpa'], message: `${hex(h.gpa)} is not inside a memslot: the VMM has no mapping of it` };
      if (g % BigInt(h.size) !== 0n) return { path: ['host', k, 'gpa'], message: `a ${h.size}-byte access at ${hex(h.gpa)} is not naturally aligned` };
    }
    if (h.op === 'punchHole' || h.op === 'truncate') {
      if (!td) return { path: ['host', k, 'op'], message: `${h.op} works on a guest_memfd, which only a TD has (vm.type "tdx")` };
      const g = h.gpa & ~shared;
      const slot = s.memslots.find((m) => m.guestMemfd && g >= m.gpa && g < m.gpa + m.size);
      if (slot === undefined) return { path: ['host', k, 'gpa'], message: `${hex(h.gpa)} is not inside a memslot with a guest_memfd` };
      if (h.op === 'punchHole' && g + h.size > slot.gpa + slot.size) return { path: ['host', k, 'size'], message: `the hole ${hex(g)}+${hex(h.size)} runs past the end of its memslot (${hex(slot.gpa + slot.size)})` };
    }
    if (h.op === 'preFaultMemory') {
      if (!td) return { path: ['host', k, 'op'], message: 'the model runs KVM_PRE_FAULT_MEMORY for a TD only (vm.type "tdx")' };
      if (h.vcpu >= s.vcpus.length) return { path: ['host', k, 'vcpu'], message: `vCPU ${h.vcpu} does not exist (${s.vcpus.length} vCPU(s))` };
      if (h.beforeFinalize !== true && !held.has(h.vcpu)) return { path: ['host', k, 'vcpu'], message: `KVM_PRE_FAULT_MEMORY takes vcpu->mutex, which KVM_RUN holds: put a waitExit of vCPU ${h.vcpu} before it (or set beforeFinalize)` };
    }
    if (h.op === 'setMemoryRegion' && !td) return { path: ['host', k, 'op'], message: 'KVM_SET_USER_MEMORY_REGION2 as a host step is modelled for a TD (vm.type "tdx")' };
    if (h.op === 'setAttributes') {
      if (!td) return { path: ['host', k, 'op'], message: 'KVM_SET_MEMORY_ATTRIBUTES with PRIVATE needs a VM with private memory (vm.type "tdx")' };
      if (h.gpa & shared) return { path: ['host', k, 'gpa'], message: `give the GPA without the shared bit (${hex(shared)}); "to" says which it becomes` };
    }
  }
  return checkHostThreads(s, td, shared);
}

/** Host threads: a TD's, each vCPU created once and initialised by the thread that created it, accesses inside a memslot. */
function checkHostThreads(s: Scenario, td: boolean, shared: bigint): { path: ScenarioPath; message: string } | null {
  if (s.hostThreads.length > 0 && !td) return { path: ['hostThreads'], message: 'host threads build and run a TD (vm.type "tdx")' };
  const creator = new Map<number, number>();
  const threadMade = new Set(s.hostThreads.flatMap((th) => th.program.flatMap((h) => (h.op === 'createVcpu' ? [h.vcpu] : []))));
  // Image pages and build-created vCPUs a thread started with the build takes over from it.
  const added = new Map<number, number>();
  const inits = new Map<number, number>();
  for (const [t, th] of s.hostThreads.entries()) {
    for (const [k, h] of th.program.entries()) {
      const here: ScenarioPath = ['hostThreads', t, 'program', k];
      if ((h.op === 'createVcpu' || h.op === 'initVcpu') && h.vcpu >= s.vcpus.length) return { path: [...here, 'vcpu'], message: `vCPU ${h.vcpu} does not exist (${s.vcpus.length} vCPU(s)); every vCPU a thread creates has its entry in vcpus` };
      if (h.op === 'createVcpu') {
        if (h.vcpu === 0) return { path: [...here, 'vcpu'], message: 'vCPU 0 is the boot vCPU the build creates and initialises; a host thread creates vCPU 1 and up' };
        if (creator.has(h.vcpu)) return { path: [...here, 'vcpu'], message: `vCPU ${h.vcpu} is created twice (also by hostThreads[${creator.get(h.vcpu)}])` };
        // A TD-state ioctl while another thread's KVM_CREATE_VCPU is between its two kvm->lock sections fails
        // with -EBUSY, which the model does not have: one thread creates the vCPUs, as QEMU's waits for them.
        // (A thread started once the TD runs is refused in the first section: no creation is left in flight.)
        const other = [...creator.values()].find((c) => c !== t && s.hostThreads[c]!.start === 'initialized');
        if (other !== undefined && th.start === 'initialized') return { path: [...here, 'op'], message: `vCPUs are created by one host thread (hostThreads[${other}] creates them too): a TD-state ioctl racing another thread's KVM_CREATE_VCPU fails with -EBUSY, which the model does not have` };
        creator.set(h.vcpu, t);
      }
      // Another thread's vCPU: which INIT_VCPU comes first would be the race's. What is left: a vCPU the
      // thread created, or one the build created (a running one: the ioctl sleeps on the vcpu->mutex its
      // KVM_RUN holds, then answers -EINVAL).
      if (h.op === 'initVcpu' && creator.get(h.vcpu) !== t && threadMade.has(h.vcpu))
        return { path: [...here, 'vcpu'], message: `a host thread initialises a vCPU it created earlier in its program, or one the build created; vCPU ${h.vcpu} is not` };
      if (h.op === 'initMemRegion') {
        if (h.page >= s.image.length) return { path: [...here, 'page'], message: `image page ${h.page} does not exist (${s.image.length} page(s) in image)` };
        if (h.vcpu >= s.vcpus.length) return { path: [...here, 'vcpu'], message: `vCPU ${h.vcpu} does not exist (${s.vcpus.length} vCPU(s))` };
        const adder = added.get(h.page);
        if (adder !== undefined && adder !== t && th.start === 'initialized') return { path: [...here, 'page'], message: `image page ${h.page} is added by hostThreads[${adder}] already: the build adds each page once` };
        if (th.start === 'initialized') added.set(h.page, t);
      }
      if (h.op === 'initVcpu' && th.start === 'initialized' && h.vcpu !== 0 && !threadMade.has(h.vcpu)) {
        const other = inits.get(h.vcpu);
        if (other !== undefined) return { path: [...here, 'vcpu'], message: `vCPU ${h.vcpu} is initialised by hostThreads[${other}] already` };
        inits.set(h.vcpu, t);
      }
      if (h.op === 'read' || h.op === 'write' || h.op === 'waitMemory') {
        const g = h.gpa & ~shared;
        if (!s.memslots.some((m) => g >= m.gpa && g + BigInt(h.size) <= m.gpa + m.size)) return { path: [...here, 'gpa'], message: `${hex(h.gpa)} is not inside a memslot: the VMM has no mapping of it` };
        if (g % BigInt(h.size) !== 0n) return { path: [...here, 'gpa'], message: `a ${h.size}-byte access at ${hex(h.gpa)} is not naturally aligned` };
      }
      if (h.op === 'setAttributes' && h.gpa & shared) return { path: [...here, 'gpa'], message: `give the GPA without the shared bit (${hex(shared)}); "to" says which it becomes` };
    }
  }
  // A thread started with the build that finalizes the TD takes FINALIZE from the build, which would add
  // what is left of the image (and its beforeFinalize pre-faults) only after the join: too late.
  const fin = s.hostThreads.findIndex((th) => th.start === 'initialized' && th.program.some((h) => h.op === 'finalize'));
  if (fin >= 0) {
    const k = s.hostThreads[fin]!.program.findIndex((h) => h.op === 'finalize');
    const left = s.image.findIndex((_, page) => !added.has(page));
    if (left >= 0) return { path: ['hostThreads', fin, 'program', k, 'op'], message: `hostThreads[${fin}] finalizes the TD during the build, so the threads add the whole image; image page ${left} is added by none (give a thread an initMemRegion of it)` };
    if ((s.host ?? []).some((h) => h.op === 'preFaultMemory' && h.beforeFinalize === true)) return { path: ['hostThreads', fin, 'program', k, 'op'], message: `hostThreads[${fin}] finalizes the TD during the build: a beforeFinalize pre-fault of the main thread would come after it` };
  }
  return checkThreadRuns(s);
}

/**
 * A vCPU a host thread runs (`run`, `waitExit`): one thread per vCPU, started with the vCPUs, never the main
 * thread's too; the thread's first step on it is `run`, and each `waitExit` comes after a `run`.
 */
function checkThreadRuns(s: Scenario): { path: ScenarioPath; message: string } | null {
  const owner = new Map<number, number>();
  for (const [t, th] of s.hostThreads.entries()) {
    const running = new Set<number>();
    for (const [k, h] of th.program.entries()) {
      if (h.op !== 'run' && h.op !== 'waitExit') continue;
      const here: ScenarioPath = ['hostThreads', t, 'program', k];
      if (th.start !== 'runnable') return { path: [...here, 'op'], message: `a host thread that runs vCPUs starts with them: give hostThreads[${t}] start: runnable` };
      if (h.vcpu >= s.vcpus.length) return { path: [...here, 'vcpu'], message: `vCPU ${h.vcpu} does not exist (${s.vcpus.length} vCPU(s))` };
      const o = owner.get(h.vcpu);
      if (o !== undefined && o !== t) return { path: [...here, 'vcpu'], message: `vCPU ${h.vcpu} is run by hostThreads[${o}] already; one thread runs a vCPU` };
      owner.set(h.vcpu, t);
      if ((s.host ?? []).some((m) => (m.op === 'waitExit' || m.op === 'run') && m.vcpu === h.vcpu)) return { path: [...here, 'vcpu'], message: `vCPU ${h.vcpu} is run by this thread; the main thread's host: steps cannot wait for its exits too` };
      if (s.hostThreads.some((x) => x.start === 'runnable' && x.program.some((y) => y.op === 'createVcpu' && y.vcpu === h.vcpu))) return { path: [...here, 'vcpu'], message: `vCPU ${h.vcpu} is created once the TD runs, which a TD refuses: it never runs` };
      if (h.op === 'waitExit' && !running.has(h.vcpu)) return { path: here, message: `waitExit on vCPU ${h.vcpu}, which this thread has not run (or whose exit an earlier waitExit took): run it first` };
      if (h.op === 'waitExit') running.delete(h.vcpu);
      else if (running.has(h.vcpu)) return { path: here, message: `vCPU ${h.vcpu} is inside KVM_RUN already: waitExit for its exit first` };
      else running.add(h.vcpu);
    }
  }
  return null;
}
