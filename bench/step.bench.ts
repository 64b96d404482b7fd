/**
 * `npm run bench`: throughput of the step function on the bundled examples, alone and with what a
 * logged run adds (world hashing, sealing log lines). Reported as steps/s and as ratios measured in the
 * same run, since absolute numbers on shared machines are noisy.
 */
import { performance } from 'node:perf_hooks';
import { actorsFor } from '../machines/registry.ts';
import { headerFor, recordRun } from '../src/session/session.ts';
import { MemoryLogWriter } from '../src/log/writer.ts';
import { runModel } from '../src/runtime/runner.ts';
import { fifoScheduler } from '../src/runtime/scheduler/fifo.ts';
import { randomScheduler } from '../src/runtime/scheduler/random.ts';
import { worldHash } from '../src/runtime/worldHash.ts';
import { createModel } from '../src/runtime/world.ts';
import { loadScenarioFile, parseScenarioObject } from '../src/scenario/load.ts';
import type { Scenario } from '../src/scenario/schema.ts';

const twoVcpu: Scenario = parseScenarioObject({
  name: 'bench-two-vcpu-mmio',
  vm: { type: 'tdx', gpaw: 48 },
  devices: [{ name: 'regs', kind: 'mmio-regs', gpa: '0xfe000000', size: '0x1000' }],
  vcpus: [0, 1].map((v) => ({
    program: [
      { op: 'load', gpa: '0x8000fe000000', size: 4 },
      { op: 'store', gpa: '0x' + (0x8000fe000008n + 4n * BigInt(v)).toString(16), size: 4, value: '0x1' },
      { op: 'hlt' },
    ],
  })),
});

function measure(label: string, scenario: Scenario, mode: 'step' | 'hash' | 'log', minMs = 1500): number {
  const model = createModel(actorsFor(scenario));
  let steps = 0;
  let runs = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    const scheduler = scenario.vcpus.length > 1 ? randomScheduler(runs) : fifoScheduler();
    if (mode === 'log') {
      const w = MemoryLogWriter.open(headerFor(scenario, null, scheduler.descriptor));
      steps += recordRun(model, w, { scheduler }).steps;
    } else {
      const r = runModel(model, { scheduler, ...(mode === 'hash' ? { onDelivery: (d) => void worldHash(model, d.world) } : {}) });
      steps += r.outcome.steps;
    }
    runs++;
  }
  const rate = steps / ((performance.now() - t0) / 1000);
  console.log(`${label.padEnd(34)} ${mode.padEnd(5)} ${Math.round(rate).toString().padStart(8)} steps/s  (${runs} runs)`);
  return rate;
}

const scenarios: [string, Scenario][] = [
  ['mmio-ve', loadScenarioFile('examples/mmio-ve').scenario],
  ['vmx-mmio', loadScenarioFile('examples/vmx-mmio').scenario],
  ['two-vcpu mmio (random schedules)', twoVcpu],
];
for (const [name, s] of scenarios) {
  const step = measure(name, s, 'step');
  const hash = measure(name, s, 'hash');
  const log = measure(name, s, 'log');
  console.log(`${''.padEnd(34)} ratios: step/hash ${(step / hash).toFixed(1)}x, step/log ${(step / log).toFixed(1)}x`);
}
