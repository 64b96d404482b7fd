/**
 * The race examples under each policy: clean and exhaustive with upstream's defaults, the violation with
 * its invariant and a minimal counterexample with the fix switched off — and the clean search really goes
 * through the contended schedule, so "clean" is the fix working, not the race never happening.
 */
import { describe, expect, it } from 'vitest';
import { loadScenarioFile, parseScenarioObject } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { explore } from '../../src/explore/explore.ts';
import { defaultInvariants, invariantNamed, invariantsOf, noFailure, type Invariant } from '../../src/explore/invariants/index.ts';
import { minimise } from '../../src/explore/minimise.ts';
import { contextOf, snapshotOf, stateName } from '../../src/explore/invariants/invariant.ts';
import type { TdxModuleContext } from '../../machines/tdxModule/tdxModule.ts';
import type { KvmVcpuContext } from '../../machines/kvm/kvmVcpu.ts';
import type { CpuContext } from '../../machines/hw/cpu.ts';
import { septLeaves } from '../../machines/tdxModule/septTree.ts';
import { isOperandBusy, tdxStatusName, tdxStatusWithOperand, TDX_OPERAND_BUSY, TDX_OPERAND_ID_TD_EPOCH } from '../../src/arch/tdxStatus.ts';
import { FROZEN_SPTE } from '../../src/arch/spte.ts';
import type { Gprs, Message } from '../../src/protocol/messages.ts';
import type { PolicyOverrides } from '../../src/policies.ts';
import { exampleFile } from '../helpers.ts';

const UNBOUNDED = { maxDepth: 10_000, maxStates: 2_000_000, maxMillis: Number.POSITIVE_INFINITY };
const STALE_DEFAULT_STATES = 28_794;
const STALE_OFF_STATES = 19_363;

const modelOf = (name: string, policy: PolicyOverrides = {}) => modelFor(withPolicies(loadScenarioFile(exampleFile(name)).scenario, policy));
/** What the example declares in its `invariants:`, as `tdxsim explore` checks it. */
const declared = (name: string) => invariantsOf(loadScenarioFile(exampleFile(name)).scenario.invariants);

/**
 * The example with the fix switched off, searched with `invariants` (default: what it declares): the
 * violated invariant, and the counterexample minimised for it — its length, preemptions and words.
 */
function counterexample(name: string, policy: PolicyOverrides, invariants: Invariant[] = declared(name)) {
  const model = modelOf(name, policy);
  const found = explore(model, invariants, UNBOUNDED).violation!;
  const inv = invariants.find((i) => i.name === found.invariant)!;
  const m = minimise(model, inv, { maxStates: 1_000_000, maxDepth: found.choices.length });
  if (m.status !== 'minimal') throw new Error(`not minimised: ${m.status}`);
  return { model, found, invariant: found.invariant, steps: m.counterexample.choices.length, preemptions: m.counterexample.preemptions, detail: m.counterexample.detail };
}

/** Never fails; counts the deliveries `seen` picks out, to show a clean search went through the race. */
function witness(name: string, seen: (d: Message) => boolean): Invariant & { seen: number } {
  return {
    name: `witness ${name}`,
    description: '',
    seen: 0,
    check(_m, _b, _a, d) {
      if (seen(d)) this.seen++;
      return null;
    },
  };
}

const EPOCH_BUSY = tdxStatusWithOperand(TDX_OPERAND_BUSY, TDX_OPERAND_ID_TD_EPOCH);

/** A SEAMCALL return that carries TDX_OPERAND_BUSY. */
const busyWitness = (leaf: string) => witness(`${leaf} BUSY`, (d) => d.from === 'tdx' && d.name === leaf && isOperandBusy((d.payload as Gprs).RAX!));

describe('zap-during-accept (policy zapBusyKickRetry)', () => {
  it("default: every interleaving is clean, including those where BLOCK meets the ACCEPT's entry lock, TRACK meets an entry counting its vCPU into the epoch, and vCPU 0 waits for the retry before it enters again", () => {
    const model = modelOf('zap-during-accept');
    const busy = busyWitness('TDH.MEM.RANGE.BLOCK');
    const trackBusy = witness('TRACK BUSY TD_EPOCH', (d) => d.from === 'tdx' && d.name === 'TDH.MEM.TRACK' && (d.payload as Gprs).RAX === EPOCH_BUSY);
    // The other way round: an entry that meets TRACK's exclusive epoch_lock leaves KVM's fastpath and enters again.
    const enterBusy = witness('VP.ENTER BUSY TD_EPOCH', (d) => d.kind === 'td-exit' && d.name === 'BUSY' && (d.payload as Gprs).RAX === EPOCH_BUSY);
    const waited = witness('wait_for_sept_zap', (d) => d.name === 'SEPT_ZAP_DONE' && d.to === 'kvm.vcpu0');
    let waitingSeen = 0;
    const waiting: Invariant = {
      name: 'witness waiting',
      description: '',
      check(m, _b, after) {
        if (stateName(snapshotOf(m, after, 'kvm.vcpu0')!.value) === 'waitingForSeptZap') waitingSeen++;
        return null;
      },
    };
    const r = explore(model, [...declared('zap-during-accept'), busy, trackBusy, enterBusy, waited, waiting], UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 19_553 });
    expect(busy.seen).toBeGreaterThan(0);
    expect(trackBusy.seen).toBeGreaterThan(0);
    expect(enterBusy.seen).toBeGreaterThan(0);
    expect(waited.seen).toBeGreaterThan(0);
    expect(waitingSeen).toBeGreaterThan(0);
  });

  it("off (TDX MMU part 2's blind retries): TRACK's TD_EPOCH BUSY is retried until it passes, but BLOCK meeting the ACCEPT's entry lock is a KVM_BUG_ON at once (143 steps, one preemption)", () => {
    const c = counterexample('zap-during-accept', { zapBusyKickRetry: false });
    expect(c).toMatchObject({ invariant: 'no-failure', steps: 143, preemptions: 1 });
    expect(c.detail).toBe('KVM bug: kvm.vm: KVM_BUG_ON: TDH.MEM.RANGE.BLOCK for GPA 0x200000 returned TDX_OPERAND_BUSY|RCX (§7.3)');
    // The TRACK that meets an entry in its epoch step is issued again at once, with no kick in between.
    let reissued = 0;
    const blindTrack: Invariant = {
      name: 'witness TRACK reissued',
      description: '',
      check(_m, _b, after, d) {
        const busy = d.from === 'tdx' && d.to === 'kvm.vm' && d.name === 'TDH.MEM.TRACK' && (d.payload as Gprs).RAX === EPOCH_BUSY;
        if (busy && after.pending.some((p) => p.from === 'kvm.vm' && p.name === 'TDH.MEM.TRACK') && !after.pending.some((p) => p.name === 'KVM_REQ_OUTSIDE_GUEST_MODE')) reissued++;
        return null;
      },
    };
    expect(explore(c.model, [blindTrack], UNBOUNDED)).toMatchObject({ exhaustive: true });
    expect(reissued).toBeGreaterThan(0);
  });
});

describe('zap-during-accept (policy kickAfterTrack)', () => {
  it("off: TRACK without the kick leaves vCPU 0 running in the block's epoch; remove-after-track names the REMOVE the module would refuse", () => {
    const c = counterexample('zap-during-accept', { kickAfterTrack: false });
    expect(c).toMatchObject({ invariant: 'remove-after-track', steps: 144, preemptions: 1 });
    expect(c.detail).toBe('kvm.vm sent TDH.MEM.PAGE.REMOVE for GPA 0x200000 at level 0, blocked in epoch 1, but that block is not tracked yet (TD epoch 2, vCPUs still in epoch 1: 1)');
    // Without the invariant, the module's refusal is the KVM_BUG_ON.
    expect(explore(c.model, [noFailure], UNBOUNDED).violation?.detail).toBe('KVM bug: kvm.vm: KVM_BUG_ON: TDH.MEM.PAGE.REMOVE for GPA 0x200000 returned TDX_TLB_TRACKING_NOT_DONE|RCX (§7.3)');
  });
});

/**
 * The CPUs' TLBs (machines/hw/tlb.ts): vCPU 0 loads the image page twice — the second load can use the
 * translation the first cached — while vCPU 1 converts the page to shared, so KVM blocks, tracks and removes
 * it. Whether vCPU 0 touches the page after the conversion is the guest's own business (KVM kills the VM
 * for an access before accept, §6.ii B.3), so no-failure is left out of the defaults here.
 */
describe('stale translations between BLOCK and the kick (the TLB, policy kickAfterTrack)', () => {
  const scenario = parseScenarioObject({
    name: 'stale-window',
    vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: '0x0', size: '0x80000000', guestMemfd: true }],
    image: [{ gpa: '0x200000', words: { '0x0': '0x5ec2e7' } }],
    vcpus: [
      { program: [{ op: 'load', gpa: '0x200000', size: 8, reg: 'rax' }, { op: 'load', gpa: '0x200000', size: 8, reg: 'rbx' }, { op: 'hlt' }] },
      { program: [{ op: 'mapGpa', gpa: '0x200000', size: '0x1000', to: 'shared' }, { op: 'hlt' }] },
    ],
  });
  /**
   * Never fails; a world predicate (checked after deliveries to the CPU and the module, as the reduction
   * requires): vCPU 0's CPU loads through a cached translation while the page's S-EPT leaf is BLOCKED —
   * `tracked` counts those after the TRACK too, when only the kick and the flush at the next entry are left.
   */
  function staleWitness(): Invariant & { seen: number; tracked: number } {
    return {
      name: 'witness cached translation of a BLOCKED leaf',
      description: '',
      seen: 0,
      tracked: 0,
      check(m, _b, after, d) {
        if (d.to !== 'hw.cpu0' && d.to !== 'tdx') return null;
        const cpu = snapshotOf(m, after, 'hw.cpu0')!;
        const c = cpu.context as CpuContext;
        if (stateName(cpu.value) !== 'accessing' || c.lastWalk?.kind !== 'translated' || c.lastWalk.cached !== true) return null;
        const t = contextOf<TdxModuleContext>(m, after, 'tdx');
        if (septLeaves(t.mem.sept, t.mem.septRoot!, t.mem.topLevel).find((l) => l.gpa === 0x200000n)?.state !== 'BLOCKED') return null;
        this.seen++;
        // The block was in epoch 1 (TDH.MNG.INIT's); the TRACK moved the TD to 2.
        if (t.mem.epoch.tdEpoch >= 2) this.tracked++;
        return null;
      },
    };
  }
  const checked = () => defaultInvariants().filter((i) => i.name !== 'no-failure');

  it('default: vCPU 0 may load through its cached translation after BLOCK and after TRACK, until the kick; no access reaches a removed page', () => {
    const w = staleWitness();
    const r = explore(modelFor(scenario), [...checked(), w], UNBOUNDED);
    expect(checked().map((i) => i.name)).toContain('no-stale-translation');
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: STALE_DEFAULT_STATES });
    expect(w.seen).toBeGreaterThan(0);
    expect(w.tracked).toBeGreaterThan(0);
  });

  it("off: the window stays open after TRACK, but the module refuses REMOVE while vCPU 0 is in the block's epoch, so no access goes through a translation of a removed page", () => {
    const model = modelFor(withPolicies(scenario, { kickAfterTrack: false }));
    const w = staleWitness();
    const r = explore(model, [invariantNamed('no-stale-translation')!.create(), w], UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: STALE_OFF_STATES });
    expect(w.tracked).toBeGreaterThan(0);
    // What the search does find: the REMOVE the module refuses (TDX_TLB_TRACKING_NOT_DONE), a KVM_BUG_ON.
    expect(explore(model, checked(), UNBOUNDED).violation).toMatchObject({ invariant: 'remove-after-track' });
    expect(explore(model, [noFailure], UNBOUNDED).violation?.detail).toBe('KVM bug: kvm.vm: KVM_BUG_ON: TDH.MEM.PAGE.REMOVE for GPA 0x200000 returned TDX_TLB_TRACKING_NOT_DONE|RCX (§7.3)');
  });
});

describe('zap-during-accept (policy busyLeavesFastpath)', () => {
  it("default: every interleaving is clean, including those where the kick after TRACK reaches vCPU 0 while its entry is about to return TDX_OPERAND_BUSY|TD_EPOCH", () => {
    // The BUSY reaches a thread whose CPU has the requester's IPI pending: upstream handles it before entering again.
    let kickedBusy = 0;
    const busyWhileKicked: Invariant = {
      name: 'witness BUSY while kicked',
      description: '',
      check(m, before, _a, d) {
        if (d.kind === 'td-exit' && d.name === 'BUSY' && contextOf<KvmVcpuContext>(m, before, d.to).ipiRequesters.length > 0) kickedBusy++;
        return null;
      },
    };
    const r = explore(modelOf('zap-during-accept'), [...declared('zap-during-accept'), busyWhileKicked], UNBOUNDED);
    expect(declared('zap-during-accept').map((i) => i.name)).toContain('kick-completes');
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 19_553 });
    expect(kickedBusy).toBeGreaterThan(0);
  });

  it('off: vCPU 0 re-enters from the fastpath with the IPI of the kick after TRACK unhandled; kick-completes names it (144 steps, 3 preemptions)', () => {
    const c = counterexample('zap-during-accept', { busyLeavesFastpath: false });
    expect(c).toMatchObject({ invariant: 'kick-completes', steps: 144, preemptions: 3 });
    expect(c.detail).toBe("vCPU 0 called TDH.VP.ENTER 1 time while kvm.vm waited for it to leave guest mode (its CPU's IPI not yet handled), more than the bound of 0");
  });

  it('off, bound 1: clean: the entry made with the IPI pending exits on it at the guest\'s first instruction boundary, so the kick is one entry late, never two', () => {
    const r = explore(modelOf('zap-during-accept', { busyLeavesFastpath: false }), [invariantNamed('kick-completes')!.create(1), noFailure], UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 18_373 });
  });
});

describe('parallel-faults (policy freezeMirrorSpte)', () => {
  it("default: every interleaving is clean, including those where one vCPU's walk meets the other's frozen SPTE", () => {
    const frozen = witness('frozen walk', (d) => d.name === 'TDP_WALK_RESULT' && (d.payload as { path: { spte: bigint }[] }).path.some((x) => x.spte === FROZEN_SPTE));
    const model = modelOf('parallel-faults');
    const r = explore(model, [...defaultInvariants(), ...declared('parallel-faults'), frozen], UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 59_643 });
    expect(frozen.seen).toBeGreaterThan(0);
  });

  it('off: vCPU 1 walks into a page table published before its SEPT.ADD; sept-parent-first names it, no-failure sees the KVM_BUG_ON', () => {
    const c = counterexample('parallel-faults', { freezeMirrorSpte: false });
    expect(c.found.detail).toMatch(/^kvm\.vcpu\d sent TDH\.MEM\.(SEPT\.ADD|PAGE\.AUG) for GPA 0x[0-9a-f]+ at level \d, but the S-EPT has no level-\d entry above it \(FREE\)$/);
    expect(c).toMatchObject({ invariant: 'sept-parent-first', steps: 121, preemptions: 1 });
    expect(c.detail).toBe('kvm.vcpu1 sent TDH.MEM.SEPT.ADD for GPA 0x0 at level 2, but the S-EPT has no level-3 entry above it (FREE)');
    // Without that invariant the same race ends in the KVM_BUG_ON on TDX_EPT_WALK_FAILED.
    const bug = explore(c.model, [noFailure], UNBOUNDED);
    expect(bug.violation?.detail).toMatch(/^KVM bug: kvm\.vcpu\d: KVM_BUG_ON: TDH\.MEM\.(SEPT\.ADD|PAGE\.AUG) returned TDX_EPT_WALK_FAILED\|RCX$/);
  });
});

describe('parallel-touches (policy localRetry, the zero-step mitigation)', () => {
  /** Never fails; counts what shows the module's stepping filter at work. */
  function steppingWitness(): Invariant & { seen: Record<string, number> } {
    return {
      name: 'witness stepping filter',
      description: '',
      seen: {},
      check(_m, _b, _a, d) {
        const busy = d.from === 'tdx' && (d.kind === 'seamcall-return' || d.name === 'BUSY') && isOperandBusy((d.payload as Gprs).RAX!);
        const key = d.name === 'STEPPING_FILTER' ? 'filter' : busy ? `${d.name} ${tdxStatusName((d.payload as Gprs).RAX!)}` : null;
        if (key !== null) this.seen[key] = (this.seen[key] ?? 0) + 1;
        return null;
      },
    };
  }

  it('default: with the local retry no vCPU is re-entered into the same fault even once', () => {
    const r = explore(modelOf('parallel-touches'), [invariantNamed('ept-violation-progress')!.create(1), ...declared('parallel-touches')], UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 146_259 });
  });

  it('off: KVM re-enters vCPU 1 into the load that faults again while vCPU 0 holds the SPTE frozen; ept-violation-progress fires after 4 re-entries', () => {
    const c = counterexample('parallel-touches', { localRetry: false });
    expect(c).toMatchObject({ invariant: 'ept-violation-progress', steps: 180, preemptions: 1 });
    expect(c.detail).toBe('vCPU 1 was entered 4 times at RIP 0xffffffff81000000 and each time exited with an EPT violation again (last GPA 0x201000), more than the bound of 3');
  });

  it('off, threshold 2: the module records the GPA and filters entries under the exclusive tree lock; other vCPUs absorb the BUSYs, nothing fails', () => {
    const witness = steppingWitness();
    // The epoch's refcounts count exactly the vCPUs in the TD or part way into TDH.VP.ENTER: an entry the
    // filter refuses, or that meets the tree lock, is counted out again (§5c.2 step 4).
    const epochCounts: Invariant = {
      name: 'epoch counts the entered vCPUs',
      description: '',
      check(m, _b, after, d) {
        if (d.to !== 'tdx') return null;
        const tdx = contextOf<TdxModuleContext>(m, after, 'tdx');
        const inside = tdx.vcpus.filter((v) => v.state === 'ACTIVE' || v.entering !== null).length;
        const counted = tdx.mem.epoch.refcount[0] + tdx.mem.epoch.refcount[1];
        return counted === inside ? null : `refcounts ${tdx.mem.epoch.refcount.join('/')} but ${inside} vCPUs entered or entering`;
      },
    };
    const model = modelOf('parallel-touches', { localRetry: false, zeroStepThreshold: 2 });
    const r = explore(model, [noFailure, invariantNamed('no-deadlock')!.create(), invariantNamed('sept-parent-first')!.create(), epochCounts, witness], { ...UNBOUNDED, maxStates: 4_000_000 });
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 3_904_957 });
    expect(Object.keys(witness.seen).sort()).toEqual(['BUSY TDX_OPERAND_BUSY|SEPT_TREE', 'TDH.MEM.PAGE.AUG TDX_OPERAND_BUSY|SEPT_TREE', 'TDH.MEM.SEPT.ADD TDX_OPERAND_BUSY|SEPT_TREE', 'filter']);
  });
});

describe('parallel-faults (policy localRetry): an ACCEPT is not a hardware EPT violation', () => {
  it('off: the re-entered ACCEPT exits again and again, but the module does not count TDCALL exits (§5a.5), so nothing trips', () => {
    const r = explore(modelOf('parallel-faults', { localRetry: false }), declared('parallel-faults'), UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 163_463 });
  });
});

describe('mapgpa-vs-touch (policy staleFaultCheck)', () => {
  it("default: every interleaving is clean, including those where vCPU 1's fault is stale when it gets mmu_lock", () => {
    const stale = witness('stale fault', (d) => d.name === 'TDP_WALK_RESULT' && (d.payload as { stale?: boolean }).stale === true);
    const r = explore(modelOf('mapgpa-vs-touch'), [...declared('mapgpa-vs-touch'), stale], UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 22_757 });
    expect(stale.seen).toBeGreaterThan(0);
  });

  it('off: the stale fault AUGs a private page into the GFN the conversion just made shared; mirror-sept-agree, 243 steps, no preemption', () => {
    const c = counterexample('mapgpa-vs-touch', { staleFaultCheck: false });
    expect(c).toMatchObject({ invariant: 'mirror-sept-agree', steps: 243, preemptions: 0 });
    expect(c.detail).toBe('mirror leaf 0x8600000200200b37 for GFN 0x200 whose attribute is shared');
  });
});

describe('accept-level-two-vcpus (policy globalGuestInhibit): [S002] with two vCPUs', () => {
  it('default: every interleaving is clean, including those where a fault begun before the split maps 4K into the new table', () => {
    const split = witness('split while the other vCPU waits', (d) => d.name === 'SPLIT_HUGE_PAGE');
    const r = explore(modelOf('accept-level-two-vcpus'), [...defaultInvariants(), split], UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 654_967 });
    expect(split.seen).toBeGreaterThan(0);
  });

  it("off: vCPU 1's fault does not see vCPU 0's inhibit and AUGs 2M over the split table: KVM_BUG_ON at step 173, one preemption", () => {
    const c = counterexample('accept-level-two-vcpus', { globalGuestInhibit: false }, defaultInvariants());
    expect(c).toMatchObject({ invariant: 'no-failure', steps: 173, preemptions: 1 });
    expect(c.detail).toBe('KVM bug: kvm.vcpu1: KVM_BUG_ON: TDH.MEM.PAGE.AUG returned TDX_EPT_ENTRY_STATE_INCORRECT|RCX');
  });
});
