/**
 * A log opened paged (through its checkpoint index, read by block) shows exactly what the same log opened
 * whole shows: every row of the sequence view (preemptions included, across block edges), the step views
 * around block edges and elsewhere, what each step sent, and the text of every bundled example's steps as
 * made from the record alone (bigints restored from the log's `0x…` strings).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectTarget } from '../../src/cli/inspect.ts';
import { MAX_BLOCKS, textOfRecord } from '../../src/inspect/pagedLog.ts';
import { writeBigLog } from './bigLog.ts';
import { InspectSession } from '../../src/inspect/session.ts';
import { eventRow, stepView } from '../../src/inspect/stepView.ts';
import { readLog } from '../../src/log/reader.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { randomScheduler } from '../../src/runtime/scheduler/random.ts';
import { loadScenarioFile, parseScenarioObject } from '../../src/scenario/load.ts';
import { stringifyCanonical } from '../../src/log/canonical.ts';
import { headerFor, modelFor, recordRun } from '../../src/session/session.ts';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { runInMemory } from '../../src/session/open.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-paged-session-'));
const opened: InspectSession[] = [];
const bigDirs: string[] = [];
afterAll(() => {
  opened.forEach((s) => s.close());
  for (const d of [dir, ...bigDirs]) rmSync(d, { recursive: true, force: true });
});

/** Two vCPUs loading and storing on the MMIO page, interleaved at random, logged as an explored schedule: preemptions in every block. */
function interleavedLog(ops: number): string {
  const base = JSON.parse(stringifyCanonical(loadScenarioFile('examples/mmio-ve').scenario)) as Record<string, unknown>;
  const prog = (v: number) => [...Array(ops).keys()].map((i) => (i % 2 === 0 ? { op: 'load', gpa: '0x8000fe000004', size: 4, reg: 'rbx' } : { op: 'store', gpa: '0x8000fe000004', size: 4, value: `0x${(v * 100 + i).toString(16)}` })).concat([{ op: 'hlt' } as never]);
  const s = parseScenarioObject({ ...base, name: 'mmio-interleaved', vcpus: [{ program: prog(0) }, { program: prog(1) }] });
  const file = path.join(dir, 'interleaved.log.jsonl');
  const writer = MemoryLogWriter.open(headerFor(s, null, { kind: 'explore' }), file);
  recordRun(modelFor(s), writer, { scheduler: randomScheduler(7) });
  writeFileSync(file, writer.text());
  return file;
}

function both(file: string): { whole: InspectSession; paged: InspectSession } {
  const whole = InspectSession.open(readLog(file), file);
  const t = inspectTarget(file, { pagedFrom: 0 }, () => {});
  if (!('session' in t)) throw new Error(t.error.message);
  opened.push(t.session);
  return { whole, paged: t.session };
}

describe('paged and whole agree', () => {
  const file = interleavedLog(160);
  const { whole, paged } = both(file);
  const block = paged.paged!.block;

  it('the log spans several blocks, and has preemptions in more than one', () => {
    expect(paged.paged).not.toBeNull();
    expect(whole.paged).toBeNull();
    expect(paged.steps).toBe(whole.steps);
    expect(paged.steps).toBeGreaterThan(3 * block);
    const blocks = new Set([...whole.preemptions.keys()].map((s) => Math.floor(s / block)));
    expect(blocks.size).toBeGreaterThan(2);
  });

  it('every row of the sequence view, preemptions included', () => {
    for (let s = 1; s <= whole.steps; s++) expect(eventRow(paged, s)).toEqual(eventRow(whole, s));
  });

  it('the step view at block edges, at the ends, and what each step sent', () => {
    const steps = new Set<number>([0, 1, 2, whole.steps - 1, whole.steps]);
    for (let k = 1; k * block <= whole.steps; k++) for (const d of [-2, -1, 0, 1, 2]) steps.add(Math.min(whole.steps, k * block + d));
    for (let s = 37; s < whole.steps; s += 211) steps.add(s);
    // Backwards too: the paged session's worlds come from seeks then, not from stepping forward.
    for (const n of [...steps].sort((a, b) => b - a)) {
      expect(JSON.stringify(stepView(paged, n))).toBe(JSON.stringify(stepView(whole, n)));
      if (n > 0) expect(paged.effectsOf(n)).toEqual(whole.effectsOf(n));
    }
  });

  it('the summary, except that a paged log does not count its preemptions', async () => {
    const { summaryOf } = await import('../../src/inspect/summary.ts');
    const p = summaryOf(paged);
    const w = summaryOf(whole);
    expect(p.paged).toEqual({ block, indexFile: `${file}.idx`, indexState: 'built' });
    expect(w.paged).toBeNull();
    expect({ ...p, paged: null, preemptions: w.preemptions }).toEqual(w);
    expect(p.preemptions).toBeNull();
  });
});

describe('the LRU of decoded blocks', () => {
  it(`holds at most ${MAX_BLOCKS} blocks however much of the log is read, and a block read again after eviction is the same`, () => {
    // About 70 blocks of 1024 events.
    const { file } = writeBigLog(4200);
    bigDirs.push(path.dirname(file));
    const { whole, paged } = both(file);
    const p = paged.paged!;
    expect(whole.steps).toBeGreaterThan((MAX_BLOCKS + 4) * p.block);
    for (let s = 1; s <= whole.steps; s++) expect(eventRow(paged, s)).toEqual(eventRow(whole, s));
    expect(p.blocksHeld).toBe(MAX_BLOCKS);
    const decoded = p.blocksDecoded;
    expect(decoded).toBe(Math.floor(whole.steps / p.block) + 1);
    // Block 0 was evicted long ago: read again, from the file, and the same.
    expect(eventRow(paged, 5)).toEqual(eventRow(whole, 5));
    expect(p.blocksDecoded).toBe(decoded + 1);
    expect(p.blocksHeld).toBe(MAX_BLOCKS);
  });
});

describe("a step's text from its record alone", () => {
  it('is the text of the message the model delivered, on every step of every bundled example', () => {
    let checked = 0;
    for (const name of readdirSync('examples').sort().filter((n) => existsSync(path.join('examples', n, 'scenario.yaml')))) {
      const { log, file } = runInMemory(name, {});
      // Opened whole, a session formats the message the model re-derived.
      const whole = InspectSession.open(log, file);
      for (const ev of log.events) {
        expect(textOfRecord(ev, whole.fmt)).toEqual(whole.textOf(ev.seq));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1000);
  });
});

