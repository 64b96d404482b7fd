/**
 * `replay --verify` of a lasso log (src/replay/lasso.ts): the ACCEPT loop of accept-level-split without
 * the split verifies; a lasso whose loop does not return, is not fair, names a thread that wants nothing
 * or other words than the model's, or points outside the log, is refused with the log's file and line.
 */
import { describe, expect, it } from 'vitest';
import { explore } from '../../src/explore/explore.ts';
import { nonProgress } from '../../src/explore/invariants/index.ts';
import { describeLoop } from '../../src/explore/liveness/lasso.ts';
import { loopStateDifference } from '../../src/explore/liveness/loopState.ts';
import { progressThreadsOf } from '../../src/explore/progress.ts';
import { GENESIS, sealRecord, unsealLine } from '../../src/log/hashChain.ts';
import { LogError } from '../../src/log/errors.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import type { Message } from '../../src/protocol/messages.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { scriptedScheduler } from '../../src/runtime/scheduler/scripted.ts';
import { enabledChoices, initialWorld, step } from '../../src/runtime/step.ts';
import type { World } from '../../src/runtime/world.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import type { Scenario } from '../../src/scenario/schema.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { headerFor, modelFor, recordRun, type LoggedLasso } from '../../src/session/session.ts';
import { exampleFile } from '../helpers.ts';

const FILE = 'loop.log.jsonl';
const SPLIT_OFF = withPolicies(loadScenarioFile(exampleFile('accept-level-split')).scenario, { splitOnAcceptLevel: false });

function lassoLog(scenario: Scenario, choices: readonly number[], detail: string, lasso: LoggedLasso): string {
  const writer = MemoryLogWriter.open(headerFor(scenario, null, { kind: 'explore' }));
  recordRun(modelFor(scenario), writer, { scheduler: scriptedScheduler(choices), maxSteps: choices.length, violation: { invariant: 'non-progress', detail }, lasso });
  return writer.text();
}

/** Rewrite the end record and re-seal it: the hash chain holds, only re-execution can tell. */
function withEnd(text: string, edit: (outcome: Record<string, unknown>) => void): string {
  const lines = text.trimEnd().split('\n');
  let prev = GENESIS;
  return (
    lines
      .map((line, i) => {
        const rec = JSON.parse(unsealLine(line)!.body) as { outcome?: Record<string, unknown> };
        if (i === lines.length - 1) edit(rec.outcome!);
        const sealed = sealRecord(prev, rec as Record<string, unknown>);
        prev = sealed.hash;
        return sealed.line;
      })
      .join('\n') + '\n'
  );
}

function refusal(text: string): string {
  try {
    replayLog(parseLogText(text, FILE), FILE, { verify: true });
  } catch (e) {
    if (e instanceof LogError) return e.message;
    throw e;
  }
  return 'verified';
}

describe('replay --verify of a lasso', () => {
  const found = explore(modelFor(SPLIT_OFF), [nonProgress], { maxDepth: 1_000, maxStates: 10_000, maxMillis: Number.POSITIVE_INFINITY }).violation!;
  const text = lassoLog(SPLIT_OFF, found.choices, found.detail, found.lasso!);
  const steps = found.choices.length;

  it('the explorer\'s ACCEPT loop verifies: steps 123–137 return to the state after step 122', () => {
    expect(found.lasso!.loopStart).toBe(122);
    expect(steps).toBe(137);
    expect(replayLog(parseLogText(text, FILE), FILE, { verify: true }).verified).toBe(true);
  });

  it('a loop that does not return to where it starts is refused, naming the first difference', () => {
    const shifted = withEnd(text, (o) => ((o.lasso as LoggedLasso).loopStart = 121));
    expect(refusal(shifted)).toBe(`${FILE}:139: replay diverged: the loop does not return to the state after step 121: kvm.vcpu0 differs at context.fault`);
    const cut = lassoLog(SPLIT_OFF, found.choices.slice(0, -1), found.detail, found.lasso!);
    expect(refusal(cut)).toMatch(new RegExp(`^${FILE}:138: replay diverged: the loop does not return to the state after step 122: `));
  });

  it('a thread that wants nothing cannot starve: the VMM waits in its main loop', () => {
    const vmm = withEnd(text, (o) => ((o.lasso as LoggedLasso).starving = 'vmm'));
    expect(refusal(vmm)).toBe(`${FILE}:139: replay diverged: vmm has nothing left to do after step 122`);
  });

  it('the words must be the model\'s: retries and the reason are re-derived', () => {
    const retries = withEnd(text, (o) => ((o.lasso as LoggedLasso).retries = 'kvm.vcpu0 re-enters forever'));
    expect(refusal(retries)).toBe(`${FILE}:139: replay diverged: the loop's retries is "kvm.vcpu0 re-enters TDH.VP.ENTER into EPT_VIOLATION (TD exit) at GPA 0x200000", the log says "kvm.vcpu0 re-enters forever"`);
    const other = lassoLog(SPLIT_OFF, found.choices, 'guest.vcpu0 is slow', found.lasso!);
    expect(refusal(other)).toMatch(/^loop\.log\.jsonl:139: replay diverged: the loop reads "kvm\.vcpu0 re-enters TDH\.VP\.ENTER into EPT_VIOLATION \(TD exit\) at GPA 0x200000 forever \(15 steps a turn\); guest\.vcpu0 never retires/);
  });

  it('a loop start outside the log, or a lasso on a safety invariant, is a bad record', () => {
    const out = withEnd(text, (o) => ((o.lasso as LoggedLasso).loopStart = steps));
    expect(refusal(out)).toBe(`${FILE}:139: end.outcome.lasso.loopStart: expected an integer from 0 to 136 (the log has 137 steps)`);
    const safety = withEnd(text, (o) => {
      o.reason = `violation of no-failure: ${found.detail}`;
      (o.violation as { invariant: string }).invariant = 'no-failure';
    });
    expect(refusal(safety)).toBe(`${FILE}:139: end.outcome.lasso: a lasso belongs to a liveness invariant (non-progress), not to "no-failure"`);
  });

  it('an unfair loop is refused: vCPU 0 loops while vCPU 1\'s KVM_RUN stays in flight', () => {
    // A second vCPU whose KVM_RUN a scheduler never delivers: vCPU 0's ACCEPT loop goes on meanwhile.
    const two = { ...SPLIT_OFF, vcpus: [...SPLIT_OFF.vcpus, { program: [{ op: 'hlt' as const }], veHandlerPrologue: [], privateVe: 'panic' as const }] };
    const model = modelFor(two);
    let w: World = initialWorld(model);
    const worlds: World[] = [w];
    const choices: number[] = [];
    const delivered: Message[] = [];
    for (let i = 0; i < 300; i++) {
      const enabled = enabledChoices(model, w);
      const c = enabled.findIndex((m) => !(m.to === 'kvm.vcpu1' && m.name === 'KVM_RUN'));
      const r = step(model, w, c, enabled);
      choices.push(c);
      delivered.push(r.delivered);
      worlds.push((w = r.world));
    }
    // The first state the run comes back to: the loop.
    let start = -1;
    let end = -1;
    for (let j = 1; j <= 300 && start < 0; j++) for (let i = j - 1; i >= 0 && start < 0; i--) if (loopStateDifference(model, worlds[i]!, worlds[j]!) === null) [start, end] = [i, j];
    expect(worlds[start]!.pending.some((m) => m.to === 'kvm.vcpu1' && m.name === 'KVM_RUN')).toBe(true);
    const vcpu0 = progressThreadsOf(model).find((t) => t.id === 'guest.vcpu0')!;
    const words = describeLoop(model, vcpu0, start, delivered.slice(start, end), worlds[start]!);
    const unfair = lassoLog(two, choices.slice(0, end), words.detail, words.lasso);
    expect(refusal(unfair)).toBe(`${FILE}:${end + 2}: replay diverged: the loop is not fair: vmm → kvm.vcpu1 has a message in flight all along it and none is delivered`);
  });
});
