/**
 * A log of about a million events, made as `tdxsim run` makes one (file and checkpoint index): mmio-ve's
 * TD with a guest program of loads and stores on its MMIO page, 17 steps an operation, then HLT. Bounded
 * by steps, never by time; each test file that needs it makes it once.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringifyCanonical } from '../../src/log/canonical.ts';
import { LogWriter } from '../../src/log/writer.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import { initialWorld } from '../../src/runtime/step.ts';
import { loadScenarioFile, parseScenarioObject } from '../../src/scenario/load.ts';
import type { Scenario } from '../../src/scenario/schema.ts';
import { headerFor, modelFor, recordRun } from '../../src/session/session.ts';

/** Guest operations for about 1M events (17 steps each, plus the TD's build and teardown). */
export const BIG_OPS = 58_824;

export function mmioLoopScenario(ops: number): Scenario {
  const base = JSON.parse(stringifyCanonical(loadScenarioFile('examples/mmio-ve').scenario)) as Record<string, unknown>;
  const program: unknown[] = [];
  for (let i = 0; i < ops; i++) {
    program.push(i % 2 === 0 ? { op: 'load', gpa: '0x8000fe000004', size: 4, reg: 'rbx' } : { op: 'store', gpa: '0x8000fe000004', size: 4, value: '0x' + (i & 0xffff).toString(16) });
  }
  program.push({ op: 'hlt' });
  return parseScenarioObject({ ...base, name: `mmio-loop-${ops}`, vcpus: [{ program }] });
}

/** Writes the run of `ops` operations to a fresh directory, with its index; returns the file and its steps. */
export function writeBigLog(ops = BIG_OPS, maxSteps = 1_100_000): { file: string; steps: number; scenario: Scenario } {
  const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-biglog-'));
  const file = path.join(dir, `mmio-loop-${ops}.log.jsonl`);
  const scenario = mmioLoopScenario(ops);
  const model = modelFor(scenario);
  const scheduler = fifoScheduler();
  const w = LogWriter.open(file, headerFor(scenario, null, scheduler.descriptor), { index: { initial: initialWorld(model) } });
  const o = recordRun(model, w, { scheduler, maxSteps });
  w.close();
  return { file, steps: o.steps, scenario };
}
