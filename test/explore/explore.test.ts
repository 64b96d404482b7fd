/**
 * The explorer (src/explore): it finds an order-dependent failure and returns a schedule that replays to
 * it; it visits the same number of distinct states as an independent breadth-first count; a clean
 * scenario is explored to the end; bounds are reported as such.
 */
import { describe, expect, it } from 'vitest';
import { parseScenarioObject } from '../../src/scenario/load.ts';
import type { ScenarioInput } from '../../src/scenario/schema.ts';
import { modelFor, headerFor, recordRun } from '../../src/session/session.ts';
import { explore } from '../../src/explore/explore.ts';
import { fingerprint } from '../../src/explore/fingerprint.ts';
import { hashKey } from '../../src/explore/structuralHash.ts';
import { noFailure } from '../../src/explore/invariants/index.ts';
import { enabledChoices, initialWorld, step } from '../../src/runtime/step.ts';
import { scriptedScheduler } from '../../src/runtime/scheduler/scripted.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import type { Model } from '../../src/runtime/world.ts';

const UNBOUNDED = { maxDepth: 10_000, maxStates: 1_000_000, maxMillis: Number.POSITIVE_INFINITY };

const td = (vcpus: ScenarioInput['vcpus']) =>
  parseScenarioObject({
    name: 'explore-test',
    vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    vcpus,
  });

/** An independent count: breadth-first over the same choices and the same state identity. */
function bfsCount(model: Model): number {
  const seen = new Set<string>();
  let frontier = [initialWorld(model)];
  seen.add(hashKey(fingerprint(model, frontier[0]!)));
  while (frontier.length > 0) {
    const next = [];
    for (const w of frontier) {
      const enabled = enabledChoices(model, w);
      for (let c = 0; c < enabled.length; c++) {
        const r = step(model, w, c, enabled);
        const fp = hashKey(fingerprint(model, r.world));
        if (!seen.has(fp)) {
          seen.add(fp);
          next.push(r.world);
        }
      }
    }
    frontier = next;
  }
  return seen.size;
}

describe('tdxsim explore', () => {
  it('finds the touch-before-accept race: vCPU 1 loads the page vCPU 0 is accepting, after AUG and before the ACCEPT', () => {
    const s = td([{ program: [{ op: 'accept', gpa: 0x200000, size: 0x1000 }] }, { program: [{ op: 'load', gpa: 0x200000, size: 8 }] }]);
    const model = modelFor(s);
    const r = explore(model, [noFailure], UNBOUNDED);
    expect(r.status).toBe('violation');
    expect(r.violation!.invariant).toBe('no-failure');
    expect(r.violation!.detail).toBe('VM dead: kvm.vcpu1: Guest access before accepting 0x200000 on vCPU 1: VM marked dead, KVM_RUN returns -EIO (§6.ii B.3)');

    // The schedule, written as a log, replays to the same failure with every state hash checked.
    const writer = MemoryLogWriter.open(headerFor(s, 'explore-test.yaml', { kind: 'explore' }));
    const outcome = recordRun(model, writer, { scheduler: scriptedScheduler(r.violation!.choices), maxSteps: r.violation!.choices.length });
    expect(outcome.status).toBe('failure');
    expect(outcome.reason).toContain('Guest access before accepting 0x200000');
    const replayed = replayLog(parseLogText(writer.text(), 'cx.jsonl'), 'cx.jsonl', { verify: true });
    expect(replayed.verified).toBe(true);
  });

  it('explores two vCPUs accepting different pages to the end without a violation, and counts the states a BFS counts', () => {
    const s = td([{ program: [{ op: 'accept', gpa: 0x200000, size: 0x1000 }] }, { program: [{ op: 'accept', gpa: 0x201000, size: 0x1000 }] }]);
    const model = modelFor(s);
    const r = explore(model, [noFailure], UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, bound: null, violation: null });
    expect(r.terminals).toBeGreaterThan(0);
    expect(r.states).toBe(bfsCount(model));
  });

  it('reports a bound instead of claiming an exhaustive search', () => {
    const s = td([{ program: [{ op: 'accept', gpa: 0x200000, size: 0x1000 }] }, { program: [{ op: 'accept', gpa: 0x201000, size: 0x1000 }] }]);
    const r = explore(modelFor(s), [noFailure], { ...UNBOUNDED, maxStates: 500 });
    expect(r).toMatchObject({ status: 'clean', exhaustive: false, bound: 'states', states: 500 });
    const d = explore(modelFor(s), [noFailure], { ...UNBOUNDED, maxDepth: 40 });
    expect(d).toMatchObject({ status: 'clean', exhaustive: false, bound: 'depth' });
    expect(d.maxDepth).toBeLessThanOrEqual(40);
  });
});
