/**
 * The historical variants (src/policies.ts, `history`): each example is clean and exhaustive with
 * upstream's policies — and its clean search goes through the window or path the fix is about — and with
 * the switch off the search finds the bug, minimised (steps, preemptions, words), as a counterexample log
 * that `replay --verify` re-derives.
 */
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor, headerFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { runModelEvents } from '../../src/session/run.ts';
import { explore } from '../../src/explore/explore.ts';
import { invariantsOf, noFailure, nonProgress, type Invariant } from '../../src/explore/invariants/index.ts';
import { minimise } from '../../src/explore/minimise.ts';
import { contextOf } from '../../src/explore/invariants/invariant.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { initialWorld, enabledChoices, step } from '../../src/runtime/step.ts';
import { isOperandBusy, tdxStatusName } from '../../src/arch/tdxStatus.ts';
import { SHADOW_NONPRESENT_VALUE } from '../../src/arch/spte.ts';
import { KVM_MEMORY_EXIT_FLAG_PRIVATE } from '../../src/arch/kvmApi.ts';
import type { KvmVcpuContext } from '../../machines/kvm/kvmVcpu.ts';
import type { TdpMmuContext } from '../../machines/kvm/tdpMmu.ts';
import type { Gprs, Message, WalkStep } from '../../src/protocol/messages.ts';
import type { PolicyOverrides } from '../../src/policies.ts';
import { exampleFile, runScenario } from '../helpers.ts';

const UNBOUNDED = { maxDepth: 10_000, maxStates: 2_000_000, maxMillis: Number.POSITIVE_INFINITY };

const scenarioOf = (name: string, policy: PolicyOverrides = {}) => withPolicies(loadScenarioFile(exampleFile(name)).scenario, policy);
const declared = (name: string) => invariantsOf(loadScenarioFile(exampleFile(name)).scenario.invariants);

/** The example's search with upstream's policies and its own invariants, plus `witnesses`. */
function cleanSearch(name: string, witnesses: Invariant[] = []) {
  return explore(modelFor(scenarioOf(name)), [...declared(name), ...witnesses], UNBOUNDED);
}

/**
 * The example with `policy`, searched with its invariants: the violation minimised, and the counterexample
 * written as an `explore` log and replayed with --verify (which re-checks that the invariant breaks at the
 * last step, in the same words).
 */
function counterexample(name: string, policy: PolicyOverrides) {
  const scenario = scenarioOf(name, policy);
  const model = modelFor(scenario);
  const invariants = declared(name);
  const found = explore(model, invariants, UNBOUNDED).violation!;
  const inv = invariants.find((i) => i.name === found.invariant)!;
  const m = minimise(model, inv, { maxStates: 1_000_000, maxDepth: found.choices.length });
  if (m.status !== 'minimal') throw new Error(`not minimised: ${m.status}`);
  const { choices, preemptions, detail } = m.counterexample;
  const file = `${name}.counterexample.log.jsonl`;
  const writer = MemoryLogWriter.open(headerFor(scenario, `examples/${name}/scenario.yaml`, { kind: 'explore' }), file);
  const violation = { invariant: inv.name, ...(inv.bound !== undefined ? { bound: inv.bound } : {}), detail };
  runModelEvents(model, scenario, { choices, maxSteps: choices.length, log: writer, violation }).subscribe(() => {});
  writer.close();
  const replay = replayLog(parseLogText(writer.text(), file), file, { verify: true });
  return { model, choices, invariant: found.invariant, steps: choices.length, preemptions, detail, replay };
}

/** Never fails; counts the deliveries `seen` picks out, to show a clean search went where the fix matters. */
function witness(name: string, seen: (d: Message, m: Parameters<Invariant['check']>[0], before: Parameters<Invariant['check']>[1]) => boolean): Invariant & { seen: number } {
  return {
    name: `witness ${name}`,
    description: '',
    seen: 0,
    check(m, b, _a, d) {
      if (seen(d, m, b)) this.seen++;
      return null;
    },
  };
}

describe('remove-without-track (policy trackBeforeRemove): v9 of the TDX series', () => {
  it('default: clean and exhaustive; the remove hook issues TDH.MEM.TRACK between BLOCK and REMOVE', () => {
    const track = witness('TRACK from kvm.vm', (d) => d.from === 'kvm.vm' && d.name === 'TDH.MEM.TRACK');
    expect(cleanSearch('remove-without-track', [track])).toMatchObject({ status: 'clean', exhaustive: true, states: 380 });
    expect(track.seen).toBeGreaterThan(0);
  });

  it('off: REMOVE right after BLOCK is refused in every schedule, even with no vCPU in the TD (126 steps, no preemption)', () => {
    const c = counterexample('remove-without-track', { trackBeforeRemove: false });
    expect(c).toMatchObject({ invariant: 'remove-after-track', steps: 126, preemptions: 0 });
    expect(c.detail).toBe('kvm.vm sent TDH.MEM.PAGE.REMOVE for GPA 0x200000 at level 0, blocked in epoch 1, but that block is not tracked yet (TD epoch 1, vCPUs still in epoch 1: 0)');
    expect(c.replay.verified).toBe(true);
    // What the module answers, which KVM takes as a bug.
    expect(explore(c.model, [noFailure], UNBOUNDED).violation?.detail).toBe('KVM bug: kvm.vm: KVM_BUG_ON: TDH.MEM.PAGE.REMOVE for GPA 0x200000 returned TDX_TLB_TRACKING_NOT_DONE|RCX (§7.3)');
  });
});

describe('stale-private-alias (policy memoryFaultExit): RFC v5\'s RET_PF_RETRY', () => {
  it('default: clean and exhaustive; the private access to the shared GFN goes to userspace with KVM_MEMORY_EXIT_FLAG_PRIVATE', () => {
    const exit = witness('KVM_EXIT_MEMORY_FAULT private', (d) => d.name === 'KVM_EXIT_MEMORY_FAULT' && ((d.payload as { flags: number }).flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) !== 0);
    expect(cleanSearch('stale-private-alias', [exit])).toMatchObject({ status: 'clean', exhaustive: true, states: 462 });
    expect(exit.seen).toBeGreaterThan(0);
  });

  it('off: KVM re-enters into the same fault and the TDX module\'s zero-step count climbs; ept-violation-progress after 4 re-entries (139 steps)', () => {
    const c = counterexample('stale-private-alias', { memoryFaultExit: false });
    expect(c).toMatchObject({ invariant: 'ept-violation-progress', steps: 139, preemptions: 0 });
    expect(c.detail).toBe('vCPU 0 was entered 4 times at RIP 0xffffffff81000004 and each time exited with an EPT violation again (last GPA 0x200000), more than the bound of 3');
    expect(c.replay.verified).toBe(true);
  });
});

describe('touch-before-accept-loop (policy unexpectedPendingCheck): before "Detect unexpected SEPT violations due to pending SPTEs"', () => {
  it('default: clean and exhaustive; every schedule ends with the VM dead, as upstream wants', () => {
    const dead = witness('VM dead', (d, m, b) => d.name === 'EPT_VIOLATION' && d.to === 'kvm.vcpu0' && contextOf<KvmVcpuContext>(m, b, 'kvm.vcpu0').deathReason === null);
    const r = cleanSearch('touch-before-accept-loop', [dead]);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 276 });
    expect(dead.seen).toBeGreaterThan(0);
    expect(runScenario(scenarioOf('touch-before-accept-loop')).outcome).toMatchObject({
      status: 'failure',
      reason: 'VM dead: kvm.vcpu0: Guest access before accepting 0x300000 on vCPU 0: VM marked dead, KVM_RUN returns -EIO (§6.ii B.3)',
    });
  });

  it('off: the PENDING_EPT_VIOLATION exit is a spurious fault on the leaf KVM already has; re-entered, it counts for zero-step (159 steps)', () => {
    const c = counterexample('touch-before-accept-loop', { unexpectedPendingCheck: false });
    expect(c).toMatchObject({ invariant: 'ept-violation-progress', steps: 159, preemptions: 0 });
    expect(c.detail).toBe('vCPU 0 was entered 4 times at RIP 0xffffffff81000000 and each time exited with an EPT violation again (last GPA 0x300000), more than the bound of 3');
    expect(c.replay.verified).toBe(true);
    // Each of those exits is the module's PENDING_EPT_VIOLATION (EEQ type 6), which upstream KVM would not re-enter.
    let w = initialWorld(c.model);
    const exits: bigint[] = [];
    for (const ch of c.choices) {
      const r = step(c.model, w, ch);
      if (r.delivered.name === 'EPT_VIOLATION' && r.delivered.to === 'kvm.vcpu0') exits.push((r.delivered.payload as Gprs).RDX!);
      w = r.world;
    }
    expect(exits).toEqual([0n, 6n, 6n, 6n]);
  });

  it('off, for ever: past the zero-step threshold the filter refuses every entry while the page is PENDING; non-progress, as a lasso that replays', () => {
    const name = 'touch-before-accept-loop';
    const scenario = scenarioOf(name, { unexpectedPendingCheck: false });
    const model = modelFor(scenario);
    const v = explore(model, [nonProgress], UNBOUNDED).violation!;
    expect(v.invariant).toBe('non-progress');
    expect(v.lasso).toEqual({ loopStart: 207, starving: 'guest.vcpu0', retries: 'kvm.vcpu0 re-enters TDH.VP.ENTER into EPT_VIOLATION (TD exit) at GPA 0x300000' });
    expect(v.choices).toHaveLength(220);
    expect(v.detail).toBe(
      'kvm.vcpu0 re-enters TDH.VP.ENTER into EPT_VIOLATION (TD exit) at GPA 0x300000 forever (13 steps a turn); guest.vcpu0 never retires the 8-byte load from 0x300000 (RIP 0xffffffff81000000)',
    );
    const file = `${name}.counterexample.log.jsonl`;
    const writer = MemoryLogWriter.open(headerFor(scenario, `examples/${name}/scenario.yaml`, { kind: 'explore' }), file);
    runModelEvents(model, scenario, { choices: v.choices, maxSteps: v.choices.length, log: writer, violation: { invariant: v.invariant, detail: v.detail }, lasso: v.lasso! }).subscribe(() => {});
    writer.close();
    expect(replayLog(parseLogText(writer.text(), file), file, { verify: true }).verified).toBe(true);
  });
});

describe('shared-ept-no-sve (policy sharedSuppressVe): before v14\'s SHADOW_NONPRESENT_VALUE', () => {
  it('default: clean and exhaustive; the first shared access walks to SHADOW_NONPRESENT_VALUE and exits to KVM', () => {
    const walk = witness('walk to SVE=1', (d) => d.name === 'EPT_WALK_RESULT' && (d.payload as { ept: string; path: WalkStep[] }).ept === 'shared' && (d.payload as { path: WalkStep[] }).path.at(-1)!.spte === SHADOW_NONPRESENT_VALUE);
    const exit = witness('shared EPT violation', (d) => d.name === 'EPT_VIOLATION' && d.to === 'kvm.vcpu0' && ((d.payload as { R8: bigint }).R8 & (1n << 47n)) !== 0n);
    expect(cleanSearch('shared-ept-no-sve', [walk, exit])).toMatchObject({ status: 'clean', exhaustive: true, states: 341 });
    expect(walk.seen).toBeGreaterThan(0);
    expect(exit.seen).toBeGreaterThan(0);
  });

  it('off: the CPU\'s walk stops at a 0 entry, suppress-#VE clear; shared-spte-suppress-ve names it (90 steps)', () => {
    const c = counterexample('shared-ept-no-sve', { sharedSuppressVe: false });
    expect(c).toMatchObject({ invariant: 'shared-spte-suppress-ve', steps: 90, preemptions: 0 });
    expect(c.detail).toBe(
      "hw.cpu0's walk of the shared EPT for GPA 0x800000200000 stopped at 0x180001[256] = 0x0 (non-present, level 4) has suppress-#VE clear but is not an MMIO SPTE: the access is a #VE in the guest, which KVM never sees",
    );
    expect(c.replay.verified).toBe(true);
  });

  it('off, run to the end: the guest takes RAM for MMIO, the VMM gets both accesses as KVM_EXIT_MMIO, the load reads 0, and KVM maps nothing', () => {
    const run = runScenario(scenarioOf('shared-ept-no-sve', { sharedSuppressVe: false }));
    expect(run.outcome.status).toBe('ok');
    const names = run.deliveries.map((d) => d.message.name);
    expect(names.filter((n) => n === '#VE')).toHaveLength(2);
    expect(names.filter((n) => n === 'KVM_EXIT_MMIO')).toHaveLength(2);
    expect(names).not.toContain('EPT_VIOLATION');
    const last = run.deliveries.at(-1)!.world;
    expect(contextOf<{ regs: { rax: bigint } }>(run.model, last, 'guest.vcpu0').regs.rax).toBe(0n);
    expect(contextOf<{ unassignedAccesses: number }>(run.model, last, 'vmm').unassignedAccesses).toBe(2);
    const mmu = contextOf<TdpMmuContext>(run.model, last, 'kvm.mmu');
    expect(mmu.directFill).toBe(0n);
    expect(Object.keys(mmu.pages[mmu.roots.direct]!)).toHaveLength(0);
  });
});

describe('convert-vs-shared-touch (policy snapshotBeforeAttributes): guest_memfd\'s first fault path', () => {
  it('default: clean and exhaustive, including schedules where the conversion lands between the snapshot and the attribute read', () => {
    let inWindow = 0;
    const window: Invariant = {
      name: 'witness conversion between snapshot and read',
      description: '',
      check(m, before, _a, d) {
        if (d.name !== 'FAULTIN_RESULT' || d.to !== 'kvm.vcpu1') return null;
        const snap = contextOf<KvmVcpuContext>(m, before, 'kvm.vcpu1').fault!.mmuSeq;
        if (snap !== null && snap !== contextOf<TdpMmuContext>(m, before, 'kvm.mmu').mmuInvalidateSeq) inWindow++;
        return null;
      },
    };
    const r = cleanSearch('convert-vs-shared-touch', [window]);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 7_329 });
    expect(inWindow).toBeGreaterThan(0);
  });

  it('off: the attribute read before the snapshot misses the conversion; vCPU 1 asks the VMM to make shared a page that is (119 steps, 1 preemption)', () => {
    const c = counterexample('convert-vs-shared-touch', { snapshotBeforeAttributes: false });
    expect(c).toMatchObject({ invariant: 'no-spurious-memory-fault', steps: 119, preemptions: 1 });
    expect(c.detail).toBe("kvm.vcpu1's KVM_EXIT_MEMORY_FAULT asks for GPA 0x200000 to be shared, which it already is: mmu_invalidate_seq is still 2, the fault's snapshot, and no attribute change is under way");
    expect(c.replay.verified).toBe(true);
  });

  it('off, the other way round (mapgpa-vs-touch): a private fault that read PRIVATE before the conversion maps a page into the now-shared GFN', () => {
    const model = modelFor(scenarioOf('mapgpa-vs-touch', { snapshotBeforeAttributes: false }));
    const invariants = declared('mapgpa-vs-touch');
    const v = explore(model, invariants, UNBOUNDED).violation!;
    expect(v.invariant).toBe('mirror-sept-agree');
    const m = minimise(model, invariants.find((i) => i.name === v.invariant)!, { maxStates: 1_000_000, maxDepth: v.choices.length });
    expect(m.status === 'minimal' && { steps: m.counterexample.choices.length, preemptions: m.counterexample.preemptions, detail: m.counterexample.detail }).toEqual({
      steps: 248,
      preemptions: 1,
      detail: 'mirror leaf 0x8600000200200b37 for GFN 0x200 whose attribute is shared',
    });
  });
});

describe('split-block-busy (policy splitChecksBlock): the 2022 large-page split that did not look at BLOCK', () => {
  const busy = (d: Message) => isOperandBusy((d.payload as Gprs).RAX!);

  it('default: clean and exhaustive; the split\'s BLOCK meets the 2M ACCEPT\'s entry lock, kicks, retries, and only then demotes', () => {
    const blockBusy = witness('split BLOCK busy', (d) => d.from === 'tdx' && d.to === 'kvm.vcpu1' && d.name === 'TDH.MEM.RANGE.BLOCK' && busy(d));
    const retried = witness('BLOCK retried after the kick', (d, m, b) => d.from === 'tdx' && d.to === 'kvm.vcpu1' && d.name === 'TDH.MEM.RANGE.BLOCK' && !busy(d) && contextOf<KvmVcpuContext>(m, b, 'kvm.vcpu1').split?.retried === true);
    expect(cleanSearch('split-block-busy', [blockBusy, retried])).toMatchObject({ status: 'clean', exhaustive: true, states: 133_904 });
    expect(blockBusy.seen).toBeGreaterThan(0);
    expect(retried.seen).toBeGreaterThan(0);
  });

  it('off: DEMOTE of the 2M entry the guest has just accepted, which BLOCK never blocked (163 steps, 2 preemptions); the module refuses it', () => {
    const c = counterexample('split-block-busy', { splitChecksBlock: false });
    expect(c).toMatchObject({ invariant: 'remove-after-track', steps: 163, preemptions: 2 });
    expect(c.detail).toBe('kvm.vcpu1 sent TDH.MEM.PAGE.DEMOTE for GPA 0x200000 at level 1, but the entry is MAPPED, not blocked');
    expect(c.replay.verified).toBe(true);
    // The module has refused the DEMOTE; its answer, delivered, is a KVM_BUG_ON.
    let w = initialWorld(c.model);
    for (const ch of c.choices) w = step(c.model, w, ch).world;
    const deliver = (from: string, name: string) => {
      const i = enabledChoices(c.model, w).findIndex((m) => m.from === from && m.name === name);
      expect(i).toBeGreaterThanOrEqual(0);
      return (w = step(c.model, w, i).world);
    };
    const answer = w.pending.find((m) => m.from === 'tdx' && m.name === 'TDH.MEM.PAGE.DEMOTE')!;
    expect(tdxStatusName((answer.payload as Gprs).RAX!)).toBe('TDX_GPA_RANGE_NOT_BLOCKED|RCX');
    deliver('tdx', 'TDH.MEM.PAGE.DEMOTE');
    expect(contextOf<KvmVcpuContext>(c.model, w, 'kvm.vcpu1').deathReason).toContain('TDH.MEM.PAGE.DEMOTE');
  });
});
