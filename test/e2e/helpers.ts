/**
 * Helpers for driving the built CLI the way a user does: `node bin/tdxsim.js …` in a scratch directory,
 * looking only at the exit code, stdout, stderr and the files it leaves behind.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseLogText } from '../../src/log/reader.ts';
import type { LogRecord } from '../../src/log/schema.ts';
import { encodeLog } from '../../src/log/writer.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(REPO_ROOT, 'bin', 'tdxsim.js');
export const example = (name: string): string => path.join(REPO_ROOT, 'examples', name);

/** Compiles src/ into dist/ so the CLI under test is the current source. */
export function buildCli(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO_ROOT, stdio: 'pipe' });
}

/** A fresh, empty working directory. */
export function scratchDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'tdxsim-e2e-'));
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout split into lines, without the empty string after the final '\n'. */
  lines: string[];
}

/** Runs `node bin/tdxsim.js ...args` in `cwd` and waits for it. */
export function tdxsim(cwd: string, ...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, lines: splitLines(r.stdout) };
}

export function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** The lines of a log file (each without its '\n'). */
export function logLines(file: string): string[] {
  return splitLines(readFileSync(file, 'utf8'));
}

/** One printed delivery: `   19  kvm.vcpu0   → kvm.mmu      SPTE_CMPXCHG  root=direct …`. */
export interface DeliveryLine {
  seq: number;
  from: string;
  to: string;
  /** Message name with its kind suffix, e.g. `EPT_VIOLATION (TD exit)`. */
  name: string;
  fields: string;
  text: string;
}

const DELIVERY = /^\s*(\d+)  (\S+)\s* → (\S+)\s+(.*)$/;

/** The delivery lines of `run` output (the `# …` comment lines are skipped). */
export function deliveries(lines: string[]): DeliveryLine[] {
  const out: DeliveryLine[] = [];
  for (const text of lines) {
    const m = DELIVERY.exec(text);
    if (!m) continue;
    // The name and the fields are separated by two spaces; names contain at most single spaces.
    const rest = m[4]!;
    const cut = rest.indexOf('  ');
    out.push({
      seq: Number(m[1]),
      from: m[2]!,
      to: m[3]!,
      name: cut === -1 ? rest : rest.slice(0, cut),
      fields: cut === -1 ? '' : rest.slice(cut + 2),
      text,
    });
  }
  return out;
}

export interface Expectation {
  /** What to call it in a failure message. */
  label: string;
  test: (d: DeliveryLine) => boolean;
}

/** A delivery named exactly `name`, optionally with `fields` containing `withFields`. */
export function message(name: string, withFields?: string | RegExp): Expectation {
  return {
    label: withFields === undefined ? name : `${name} with ${String(withFields)}`,
    test: (d) =>
      d.name === name &&
      (withFields === undefined || (typeof withFields === 'string' ? d.fields.includes(withFields) : withFields.test(d.fields))),
  };
}

/** Any delivery whose fields match. */
export function fields(re: RegExp): Expectation {
  return { label: `fields matching ${String(re)}`, test: (d) => re.test(d.fields) };
}

/**
 * Finds each expectation in turn, each strictly after the previous match. Returns the seq numbers found,
 * or describes the first expectation that has no match after its predecessor.
 */
export function findInOrder(ds: DeliveryLine[], expected: Expectation[]): { seqs: number[]; missing: string | null } {
  const seqs: number[] = [];
  let from = 0;
  for (const e of expected) {
    const i = ds.findIndex((d, k) => k >= from && e.test(d));
    if (i === -1) {
      const after = seqs.length === 0 ? 'anywhere' : `after step ${seqs.at(-1)} (${expected[seqs.length - 1]!.label})`;
      return { seqs, missing: `${e.label} ${after}` };
    }
    seqs.push(ds[i]!.seq);
    from = i + 1;
  }
  return { seqs, missing: null };
}

/**
 * Rewrites a log's records and recomputes the hash chain, as someone who knows the format would: the
 * result reads as an intact log, so only re-execution can tell what changed. `edit` gets each record as
 * the reader decodes it (seq, from, to, …, payload, cause, choice, state) and its 1-based line number,
 * and may change it in place.
 */
export function resealLog(text: string, edit: (record: Record<string, unknown>, line: number) => void): string {
  const log = parseLogText(text, 'resealed');
  const records = [log.header, ...log.events, ...(log.end ? [log.end] : [])].map((r) => structuredClone(r) as unknown as Record<string, unknown>);
  records.forEach((r, i) => edit(r, i + 1));
  return encodeLog(records as unknown as LogRecord[]);
}

export const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
