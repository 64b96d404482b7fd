/**
 * Logs the inspector's views need, made the way the CLI makes them: a counterexample from the explorer
 * (scheduler `explore`, preemptions along it), a lasso log (the explorer's format for a non-progress
 * cycle: an end record whose outcome carries `lasso: { loopStart, starving, retries }`), and a run with
 * three vCPUs (14 actors, for the lane labels).
 */
import { stringifyCanonical } from '../../src/log/canonical.ts';
import { parseLogText, type ParsedLog } from '../../src/log/reader.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { explore } from '../../src/explore/explore.ts';
import { noFailure } from '../../src/explore/invariants/index.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import { scriptedScheduler } from '../../src/runtime/scheduler/scripted.ts';
import { runModel } from '../../src/runtime/runner.ts';
import { worldHash } from '../../src/runtime/worldHash.ts';
import { loadScenarioFile, parseScenarioObject } from '../../src/scenario/load.ts';
import type { Scenario } from '../../src/scenario/schema.ts';
import { headerFor, modelFor, recordRun } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';

export interface Fixture {
  log: ParsedLog;
  file: string;
  text: string;
  scenario: Scenario;
}

const td = (name: string, vcpus: unknown[]) =>
  parseScenarioObject({ name, vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] }, memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }], vcpus });

/**
 * vCPU 1 loads the page vCPU 0 is accepting (README's accept-race): the explorer's schedule as found
 * (not minimised: more thread switches to mark), written as `tdxsim explore` writes a counterexample.
 */
export function counterexampleLog(): Fixture & { choices: number[] } {
  const s = td('accept-race', [{ program: [{ op: 'accept', gpa: 0x200000, size: 0x1000 }] }, { program: [{ op: 'load', gpa: 0x200000, size: 8 }] }]);
  const model = modelFor(s);
  const r = explore(model, [noFailure], { maxDepth: 10_000, maxStates: 1_000_000, maxMillis: Number.POSITIVE_INFINITY });
  const v = r.violation!;
  const file = 'accept-race.counterexample.log.jsonl';
  const writer = MemoryLogWriter.open(headerFor(s, 'race.yaml', { kind: 'explore' }), file);
  recordRun(model, writer, { scheduler: scriptedScheduler(v.choices), maxSteps: v.choices.length, violation: { invariant: v.invariant, detail: v.detail } });
  const text = writer.text();
  return { log: parseLogText(text, file), file, text, scenario: s, choices: v.choices };
}

/**
 * accept-level-split with the split switched off: the guest's ACCEPT exits, KVM re-enters it, forever
 * (13 messages a round). Cut after one turn of the loop, with a lasso end record as the explorer writes
 * one. Made by hand for the display: message ids still grow round by round, so the states before and
 * after the loop are not hash-equal, and `non-progress` may not be an invariant this model knows.
 */
export function lassoLog(): Fixture & { loopStart: number; period: number } {
  const s = withPolicies(loadScenarioFile('accept-level-split').scenario, { splitOnAcceptLevel: false });
  const model = modelFor(s);
  const sig: string[] = [];
  runModel(model, { scheduler: fifoScheduler(), maxSteps: 400, onDelivery: (d) => sig.push(`${d.message.from}>${d.message.to}:${d.message.name}`) });
  // The shortest period that the last three rounds repeat, and where it began.
  let period = 0;
  for (let p = 1; p < 100 && period === 0; p++) {
    const n = sig.length;
    if (sig.slice(n - 3 * p).every((x, i, a) => i < p || x === a[i - p])) period = p;
  }
  let start = sig.length - period;
  while (start > 0 && sig[start - 1] === sig[start - 1 + period]) start--;
  const loopStart = start + period; // one round of prefix past where the repetition starts, then the loop
  const steps = loopStart + period;
  const file = 'accept-level-split.lasso.log.jsonl';
  const writer = MemoryLogWriter.open(headerFor(s, null, { kind: 'explore' }), file);
  runModel(model, {
    scheduler: fifoScheduler(),
    maxSteps: steps,
    onDelivery: (d) => {
      const m = d.message;
      writer.append({ seq: d.seq, from: m.from, to: m.to, kind: m.kind, name: m.name, payload: m.payload as unknown as Record<string, unknown>, cause: m.cause, choice: d.choice, state: worldHash(model, d.world) });
    },
  });
  const detail = `guest.vcpu0 retries TDG.MEM.PAGE.ACCEPT 0x200000 forever (steps ${loopStart + 1}–${steps} repeat)`;
  writer.end({
    status: 'failure',
    reason: `violation of non-progress: ${detail}`,
    failures: [],
    violation: { invariant: 'non-progress', detail },
    lasso: { loopStart, starving: 'guest.vcpu0', retries: 'TDG.MEM.PAGE.ACCEPT 0x200000' },
  });
  const text = writer.text();
  return { log: parseLogText(text, file), file, text, scenario: s, loopStart, period };
}

/** parallel-faults with a third vCPU: 14 actors (guest, hw and kvm vCPUs ×3, hw.mem, tdx, kvm.vm, kvm.mmu, vmm). */
export function threeVcpuLog(): Fixture {
  const base = loadScenarioFile('parallel-faults').scenario;
  const plain = JSON.parse(stringifyCanonical(base)) as { vcpus: unknown[] };
  const s = parseScenarioObject({
    ...plain,
    name: 'parallel-faults-3',
    vcpus: [...plain.vcpus, { program: [{ op: 'accept', gpa: '0x202000', size: '0x1000' }, { op: 'hlt' }] }],
  });
  const file = 'parallel-faults-3.log.jsonl';
  const writer = MemoryLogWriter.open(headerFor(s, null, { kind: 'fifo' }), file);
  recordRun(modelFor(s), writer, { scheduler: fifoScheduler() });
  const text = writer.text();
  return { log: parseLogText(text, file), file, text, scenario: s };
}
