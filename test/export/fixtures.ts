/** Logs for the exporter and inspector tests: bundled examples run in memory, as `tdxsim run` would write them. */
import { actorsFor } from '../../machines/registry.ts';
import { stringifyCanonical } from '../../src/log/canonical.ts';
import { parseLogText, type ParsedLog } from '../../src/log/reader.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { headerFor, modelFor, recordRun } from '../../src/session/session.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import { loadScenarioFile, parseScenarioObject } from '../../src/scenario/load.ts';
import { scenarioFromLog } from '../../src/replay/replay.ts';
import { runInMemory } from '../../src/session/open.ts';

export interface ExampleLog {
  log: ParsedLog;
  file: string;
  actors: string[];
}

export function exampleLog(name: string, settings: { maxSteps?: number } = {}): ExampleLog {
  const { log, file } = runInMemory(name, settings);
  return { log, file, actors: actorsFor(scenarioFromLog(log, file)).map((a) => a.id) };
}

/** mmio-ve with its guest reading the device register `loads` times: a log longer than one checkpoint interval. */
export function longMmioLog(loads: number): ExampleLog {
  const { scenario } = loadScenarioFile('mmio-ve');
  const program = [...Array(loads).keys()].map((i) => ({ op: 'load', gpa: 0x8000fe000000n + BigInt((i % 2) * 4), size: 4, reg: 'rax' }));
  const s = parseScenarioObject({ ...JSON.parse(stringifyCanonical(scenario)), name: 'mmio-many', vcpus: [{ program: [...program, { op: 'hlt' }] }] });
  const scheduler = fifoScheduler();
  const writer = MemoryLogWriter.open(headerFor(s, null, scheduler.descriptor), 'mmio-many');
  recordRun(modelFor(s), writer, { scheduler });
  const log = parseLogText(writer.text(), 'mmio-many');
  return { log, file: 'mmio-many', actors: actorsFor(s).map((a) => a.id) };
}
