/** Shared by tests: run a bundled example in memory and keep every delivery and the log text. */
import path from 'node:path';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MemoryLogWriter } from '../src/log/writer.ts';
import { headerFor, modelFor, recordRun } from '../src/session/session.ts';
import { fifoScheduler } from '../src/runtime/scheduler/fifo.ts';
import { randomScheduler } from '../src/runtime/scheduler/random.ts';
import type { Delivery, Outcome } from '../src/runtime/runner.ts';
import { loadScenarioFile } from '../src/scenario/load.ts';
import type { Scenario } from '../src/scenario/schema.ts';
import type { Model } from '../src/runtime/world.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const exampleFile = (name: string) => path.join(REPO_ROOT, 'examples', name, 'scenario.yaml');
/** Every bundled example, so whole-suite properties (determinism, replay, the XState differential) cover new ones. */
export const ALL_EXAMPLES: readonly string[] = readdirSync(path.join(REPO_ROOT, 'examples'))
  .filter((n) => existsSync(path.join(REPO_ROOT, 'examples', n, 'scenario.yaml')))
  .sort();

/**
 * The examples that exist to show a failure, with what the explorer's default invariants report for each
 * (no-failure unless FAILING_INVARIANT names another); every other example holds every default invariant
 * and explores clean and exhaustive.
 */
export const FAILING_EXAMPLES: Readonly<Record<string, string>> = {
  'accept-race': 'VM dead: kvm.vcpu1: Guest access before accepting 0x200000 on vCPU 1',
  'private-touch-sept-ve-disable': 'VM dead: kvm.vcpu0: Guest access before accepting 0x300000',
  'private-touch-ve': 'guest panic: guest.vcpu0: Unexpected EPT-violation on private memory.',
  've-double-fault': 'guest panic: guest.vcpu0: double fault (#DF, vector 8)',
  // Upstream kills the VM on a touch of an unaccepted page (tdx_is_sept_violation_unexpected_pending).
  'touch-before-accept-loop': 'VM dead: kvm.vcpu0: Guest access before accepting 0x300000',
  // The guest races its own accepts (not Linux): in some schedules the loser panics.
  'split-block-busy': 'guest panic: guest.vcpu0: TDX: Failed to accept memory (at 0x200000)',
  // Linux + QEMU's implicit conversion, no upstream fix: the page vCPU 0 took back is shared again.
  'zeropad-during-conversion': "maps GPA 0x301000 private, but KVM's attribute for GFN 0x301 is shared",
};

/** The invariant a FAILING_EXAMPLES entry violates first, where it is not no-failure. */
export const FAILING_INVARIANT: Readonly<Record<string, string>> = {
  'zeropad-during-conversion': 'guest-pte-matches-attribute',
};

export interface RecordedRun {
  scenario: Scenario;
  model: Model;
  deliveries: Delivery[];
  outcome: Outcome;
  text: string;
}

export function runExample(name: string, seed?: number): RecordedRun {
  const { scenario } = loadScenarioFile(exampleFile(name));
  return runScenario(scenario, seed);
}

export function runScenario(scenario: Scenario, seed?: number): RecordedRun {
  const model = modelFor(scenario);
  const scheduler = seed === undefined ? fifoScheduler() : randomScheduler(seed);
  const writer = MemoryLogWriter.open(headerFor(scenario, `examples/${scenario.name}/scenario.yaml`, scheduler.descriptor));
  const deliveries: Delivery[] = [];
  const outcome = recordRun(model, writer, { scheduler, onDelivery: (d) => deliveries.push(d) });
  return { scenario, model, deliveries, outcome, text: writer.text() };
}

/** `from → to NAME` per delivery: the shape of a sequence diagram. */
export const arrows = (r: RecordedRun) => r.deliveries.map((d) => `${d.message.from} → ${d.message.to} ${d.message.name}`);

export function payload<T = Record<string, unknown>>(r: RecordedRun, seq: number): T {
  return r.deliveries[seq - 1]!.message.payload as T;
}
