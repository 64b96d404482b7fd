/**
 * Loading a scenario: YAML (or JSON, which YAML reads too) → schema → semantic checks. Every error names
 * the file, line, column and field path, so a user can fix a scenario without reading code.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { sharedBit, PAGE_SIZE } from '../arch/gpa.ts';
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
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ScenarioError('IO', file, 0, 0, [], (e as Error).message);
  }
  return { scenario: parseScenarioText(text, file), file };
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
    const pos = lineCounter.linePos(err.pos[0]);
    throw new ScenarioError('PARSE', file, pos.line, pos.col, [], err.message.split('\n')[0]!);
  }
  const locate = (p: ScenarioPath) => locateInDoc(doc, lineCounter, p);
  return validate(doc.toJS({ maxAliasCount: 100 }), file, locate);
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
function semanticProblem(s: Scenario): { path: ScenarioPath; message: string } | null {
  const td = s.vm.type === 'tdx';
  const shared = td ? sharedBit(s.vm.gpaw as 48 | 52) : 0n;
  if (!td && s.vm.attributes.length > 0) return { path: ['vm', 'attributes'], message: 'TD attributes apply to vm.type "tdx" only' };
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
  for (const [v, cpu] of s.vcpus.entries()) {
    for (const [k, op] of cpu.program.entries()) {
      if (op.op === 'hlt') continue;
      if (op.op === 'out') {
        const port: ScenarioPath = ['vcpus', v, 'program', k, 'port'];
        if (!td) return { path: port, message: 'port I/O is modelled for a TD guest only (vm.type "tdx"), where it becomes a #VE and TDG.VP.VMCALL<Instruction.IO>' };
        if (op.value >> BigInt(op.size * 8) !== 0n) return { path: ['vcpus', v, 'program', k, 'value'], message: `${hex(op.value)} does not fit in ${op.size} byte(s)` };
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
      const problem = checkAccess(op, at);
      if (problem) return { path: at, message: problem };
    }
    for (const [k, op] of cpu.veHandlerPrologue.entries()) {
      const at: ScenarioPath = ['vcpus', v, 'veHandlerPrologue', k, 'gpa'];
      const problem = checkAccess(op, at);
      if (problem) return { path: at, message: problem };
    }
  }
  return null;
}
