/**
 * A long run for the log and inspector benches: mmio-ve's TD with a guest doing `ops` MMIO loads and
 * stores on one register page, then HLT (17 steps an operation).
 */
import { stringifyCanonical } from '../src/log/canonical.ts';
import { loadScenarioFile, parseScenarioObject } from '../src/scenario/load.ts';
import type { Scenario } from '../src/scenario/schema.ts';

export function mmioScenario(ops: number): Scenario {
  const base = JSON.parse(stringifyCanonical(loadScenarioFile('examples/mmio-ve').scenario)) as Record<string, unknown>;
  const program: unknown[] = [];
  for (let i = 0; i < ops; i++) {
    program.push(i % 2 === 0 ? { op: 'load', gpa: '0x8000fe000004', size: 4, reg: 'rbx' } : { op: 'store', gpa: '0x8000fe000004', size: 4, value: '0x' + (i & 0xffff).toString(16) });
  }
  program.push({ op: 'hlt' });
  return parseScenarioObject({ ...base, name: `mmio-${ops}`, vcpus: [{ program }] });
}
