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
    const issue = r.error.issues[0]!;
    const p = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
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
 * What the schema cannot say. The model carries MMIO flows so far: every guest access must reach a device
 * (through the shared alias in a TD, §2), stay inside one page (Linux's handle_mmio rejects page-crossing
 * accesses, §6.i step 8), and devices must not overlap memslots.
 */
function semanticProblem(s: Scenario): { path: ScenarioPath; message: string } | null {
  const td = s.vm.type === 'tdx';
  const shared = td ? sharedBit(s.vm.gpaw as 48 | 52) : 0n;
  if (!td && s.vm.attributes.length > 0) return { path: ['vm', 'attributes'], message: 'TD attributes apply to vm.type "tdx" only' };
  for (const [i, d] of s.devices.entries()) {
    if (d.gpa & shared) return { path: ['devices', i, 'gpa'], message: `give the device base without the shared bit (${hex(shared)}); the VMM registers it that way` };
    for (const [j, m] of s.memslots.entries()) {
      if (d.gpa < m.gpa + m.size && m.gpa < d.gpa + d.size) return { path: ['devices', i, 'gpa'], message: `device ${d.name} overlaps memslots[${j}]` };
    }
  }
  for (const [v, cpu] of s.vcpus.entries()) {
    for (const [k, op] of cpu.program.entries()) {
      if (op.op === 'hlt') continue;
      const at: ScenarioPath = ['vcpus', v, 'program', k, 'gpa'];
      if (td && (op.gpa & shared) === 0n) {
        return { path: at, message: `${hex(op.gpa)} is a private GPA; MMIO in a TD goes through the shared alias (set bit ${s.vm.gpaw - 1}: ${hex(op.gpa | shared)}). Private memory is not modelled yet.` };
      }
      const addr = op.gpa & ~shared;
      if (!s.devices.some((d) => addr >= d.gpa && addr + BigInt(op.size) <= d.gpa + d.size)) {
        return { path: at, message: `${hex(op.gpa)} is not inside a device; only MMIO accesses are modelled so far` };
      }
      if (addr / PAGE_SIZE !== (addr + BigInt(op.size) - 1n) / PAGE_SIZE) return { path: at, message: 'the access crosses a page boundary, which MMIO emulation rejects' };
    }
  }
  return null;
}
