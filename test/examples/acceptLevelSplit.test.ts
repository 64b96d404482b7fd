/**
 * [S002] (§6.iii): with private huge pages a touch maps a 2M PENDING leaf; the guest's 4K ACCEPT inside
 * it exits with EEQ type ACCEPT and its level; KVM splits under write mmu_lock (BLOCK → TRACK + kick →
 * DEMOTE → mirror page of 512 leaves), sets the one-way guest inhibit, and the accept then succeeds. With
 * splitOnAcceptLevel off the same exit repeats. Also: the policy switches themselves.
 */
import { describe, expect, it } from 'vitest';
import { arrows, exampleFile, payload, runExample, runScenario, type RecordedRun } from '../helpers.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import { loadScenarioFile, parseScenarioObject } from '../../src/scenario/load.ts';
import { decodeEeq, decodeAcceptEeqInfo, TDX_SUCCESS } from '../../src/arch/tdxStatus.ts';
import { septLeaves } from '../../machines/tdxModule/septTree.ts';
import type { TdxModuleContext } from '../../machines/tdxModule/tdxModule.ts';
import type { TdpMmuContext } from '../../machines/kvm/tdpMmu.ts';
import { modelFor, headerFor, recordRun } from '../../src/session/session.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import { DEFAULT_POLICIES, POLICIES } from '../../src/policies.ts';
import { parsePolicyOption } from '../../src/cli/policies.ts';
import { withPolicies } from '../../src/session/policies.ts';
import type { Delivery } from '../../src/runtime/runner.ts';

const ctx = <T>(run: RecordedRun, actor: string, step = run.deliveries.length): T =>
  actorView(run.deliveries[step - 1]!.world, run.model.indexOf.get(actor)!).context as T;
const base = loadScenarioFile(exampleFile('accept-level-split')).scenario;

function runBounded(splitOnAcceptLevel: boolean, maxSteps: number): RecordedRun {
  const scenario = withPolicies(base, { splitOnAcceptLevel });
  const model = modelFor(scenario);
  const scheduler = fifoScheduler();
  const writer = MemoryLogWriter.open(headerFor(scenario, 'accept-level-split', scheduler.descriptor));
  const deliveries: Delivery[] = [];
  const outcome = recordRun(model, writer, { scheduler, maxSteps, onDelivery: (d) => deliveries.push(d) });
  return { scenario, model, deliveries, outcome, text: writer.text() };
}

const septAt = (run: RecordedRun, step: number, gpa: bigint) => {
  const tdx = ctx<TdxModuleContext>(run, 'tdx', step);
  return septLeaves(tdx.mem.sept, tdx.mem.septRoot!, tdx.mem.topLevel).filter((l) => l.gpa === gpa);
};

describe('accept-level-split with the split (§6.iii steps 1–5)', () => {
  const run = runScenario(base);
  const seq = arrows(run);
  const first = (a: string, from = 0) => seq.indexOf(a, from) + 1;

  it('the first touch maps one 2M leaf: TDH.MEM.PAGE.AUG at TDX level 1, mirror leaf with the large bit', () => {
    const aug = first('kvm.vcpu0 → tdx TDH.MEM.PAGE.AUG');
    expect(payload<{ RCX: bigint; R8: bigint }>(run, aug)).toMatchObject({ RCX: 0x200001n, R8: 0x200200000n });
    expect(payload<{ newSpte: bigint }>(run, aug + 2).newSpte).toBe(0x8600000200200bb7n); // RWX, WB, large, accessed, SVE
    expect(septAt(run, aug + 1, 0x200000n)).toEqual([{ gpa: 0x200000n, tdxLevel: 1, state: 'PENDING', hpa: 0x200200000n }]);
  });

  it('the touch of the PENDING 2M page is a #VE; the handler 4K ACCEPT exits with EEQ ACCEPT req 4K, err 2M, PENDING, leaf', () => {
    expect(seq).toContain('hw.cpu0 → guest.vcpu0 #VE');
    const exit = first('tdx → kvm.vcpu0 EPT_VIOLATION', first('hw.cpu0 → tdx TDG.MEM.PAGE.ACCEPT'));
    const p = payload<{ RDX: bigint; R8: bigint }>(run, exit);
    expect(p.R8).toBe(0x200000n);
    const eeq = decodeEeq(p.RDX);
    expect(eeq.typeName).toBe('ACCEPT');
    expect(decodeAcceptEeqInfo(eeq.info)).toEqual({ reqLevel: 0, errLevel: 1, state: 2, leaf: true });
  });

  it('KVM splits under write mmu_lock: BLOCK(2M) → TRACK → DEMOTE → mirror split → guest inhibit 2M and 1G → unlock', () => {
    const from = first('kvm.vcpu0 → kvm.mmu LPAGE_INFO_READ');
    expect(seq.slice(from - 1, from + 16)).toEqual([
      'kvm.vcpu0 → kvm.mmu LPAGE_INFO_READ',
      'kvm.mmu → kvm.vcpu0 LPAGE_INFO',
      'kvm.vcpu0 → kvm.mmu MMU_LOCK_WRITE',
      'kvm.mmu → kvm.vcpu0 MMU_LOCK_ACQUIRED',
      'kvm.vcpu0 → kvm.mmu TDP_WALK',
      'kvm.mmu → kvm.vcpu0 TDP_WALK_RESULT',
      'kvm.vcpu0 → tdx TDH.MEM.RANGE.BLOCK',
      'tdx → kvm.vcpu0 TDH.MEM.RANGE.BLOCK',
      'kvm.vcpu0 → tdx TDH.MEM.TRACK',
      'tdx → tdx TRACK_EPOCH',
      'tdx → kvm.vcpu0 TDH.MEM.TRACK',
      'kvm.vcpu0 → tdx TDH.MEM.PAGE.DEMOTE',
      'tdx → kvm.vcpu0 TDH.MEM.PAGE.DEMOTE',
      'kvm.vcpu0 → kvm.mmu SPLIT_HUGE_PAGE',
      'kvm.vcpu0 → kvm.mmu LPAGE_GUEST_INHIBIT',
      'kvm.vcpu0 → kvm.mmu LPAGE_GUEST_INHIBIT',
      'kvm.vcpu0 → kvm.mmu MMU_UNLOCK',
    ]);
    expect(payload<{ guestInhibit: boolean }>(run, from + 1).guestInhibit).toBe(false);
    expect(payload<{ RCX: bigint }>(run, from + 6).RCX).toBe(0x200001n);
    expect(payload<{ RAX: bigint }>(run, from + 12).RAX).toBe(TDX_SUCCESS);
    expect(payload<{ pgLevel: number }>(run, from + 14).pgLevel).toBe(2);
    expect(payload<{ pgLevel: number }>(run, from + 15).pgLevel).toBe(3);
    // DEMOTE gave 512 PENDING 4K children, unblocked, with consecutive HPAs; the mirror matches them.
    const leaves = septAt(run, from + 13, 0x200000n).concat(septAt(run, from + 13, 0x3ff000n));
    expect(leaves).toEqual([
      { gpa: 0x200000n, tdxLevel: 0, state: 'PENDING', hpa: 0x200200000n },
      { gpa: 0x3ff000n, tdxLevel: 0, state: 'PENDING', hpa: 0x2003ff000n },
    ]);
    const mmu = ctx<TdpMmuContext>(run, 'kvm.mmu', from + 15);
    const child = mmu.pages[0x181002]!;
    expect(Object.keys(child)).toHaveLength(512);
    expect(child[0]).toBe(0x8600000200200b37n);
    expect(child[511]).toBe(0x86000002003ffb37n);
    expect(mmu.guestInhibit).toEqual({ '2:1': true, '3:0': true });
  });

  it('the fault path then finds the 4K leaf (spurious), and the re-executed ACCEPT clears only that 4K page', () => {
    const split = first('kvm.vcpu0 → kvm.mmu SPLIT_HUGE_PAGE');
    const faultin = first('kvm.mmu → kvm.vcpu0 FAULTIN_RESULT', split);
    expect(payload<{ maxLevel: number }>(run, faultin).maxLevel).toBe(1);
    const kvm = ctx<{ lastFault: { ret: string } }>(run, 'kvm.vcpu0', first('kvm.vcpu0 → tdx TDH.VP.ENTER', split));
    expect(kvm.lastFault.ret).toBe('RET_PF_SPURIOUS');
    const zero = first('tdx → hw.mem MEM_ZERO', split);
    expect(payload(run, zero)).toMatchObject({ pa: 0x200200000n, bytes: 0x1000n, keyid: 17 });
    expect(payload<{ RAX: bigint }>(run, zero + 2).RAX).toBe(TDX_SUCCESS);
    expect(septAt(run, run.deliveries.length, 0x200000n)[0]!.state).toBe('MAPPED');
    expect(septAt(run, run.deliveries.length, 0x201000n)[0]!.state).toBe('PENDING');
  });

  it('the store then lands in the accepted page, and the run ends ok', () => {
    expect(ctx<{ regs: { rax: bigint } }>(run, 'guest.vcpu0').regs.rax).toBe(0x2002n);
    expect(run.outcome.status).toBe('ok');
    expect(seq.filter((a) => a === 'tdx → kvm.vcpu0 EPT_VIOLATION')).toHaveLength(2);
  });
});

describe('accept-level-split with splitOnAcceptLevel off (§6.iii step 6)', () => {
  const run = runBounded(false, 400);
  const seq = arrows(run);

  it('the same ACCEPT exit repeats: no split, no inhibit, every fault spurious at 2M', () => {
    const exits = run.deliveries.filter((d) => d.message.to === 'kvm.vcpu0' && d.message.name === 'EPT_VIOLATION');
    expect(exits.length).toBeGreaterThan(20);
    const eeqs = exits.slice(1).map((d) => (d.message.payload as { RDX: bigint; R8: bigint })).map((a) => `0x${a.RDX.toString(16)} 0x${a.R8.toString(16)}`);
    // Every one is the ACCEPT's own exit (EEQ type ACCEPT): the module's zero-step bookkeeping does not see a
    // TDCALL's exit (§5a.5, §7.5), so however often it repeats at one RIP, no entry is filtered.
    expect(new Set(eeqs)).toEqual(new Set(['0x408800000001 0x200000']));
    expect(seq).not.toContain('tdx → tdx STEPPING_FILTER');
    expect(seq).not.toContain('kvm.vcpu0 → tdx TDH.MEM.PAGE.DEMOTE');
    expect(seq).not.toContain('kvm.vcpu0 → kvm.mmu LPAGE_GUEST_INHIBIT');
    expect(ctx<TdpMmuContext>(run, 'kvm.mmu').guestInhibit).toEqual({});
    expect(run.outcome.status).toBe('failure');
    expect(run.outcome.reason).toMatch(/step bound 400/);
  });
});

describe('2M accept with private huge pages, then a partial conversion', () => {
  const run = runScenario(
    parseScenarioObject({
      name: 'huge-accept',
      vm: { type: 'tdx', gpaw: 48 },
      policies: { privateHugePages: true },
      memslots: [{ gpa: '0x0', size: '0x80000000', guestMemfd: true }],
      vcpus: [{ program: [{ op: 'accept', gpa: '0x400000', size: '0x200000' }, { op: 'mapGpa', gpa: '0x400000', size: '0x1000', to: 'shared' }, { op: 'hlt' }] }],
    }),
  );
  const seq = arrows(run);

  it('ACCEPT(2M) on a FREE range: exit with req level 1, only 1G inhibited, AUG at 2M, the re-executed ACCEPT clears 2 MiB', () => {
    const inhibit = run.deliveries.filter((d) => d.message.name === 'LPAGE_GUEST_INHIBIT').map((d) => (d.message.payload as { pgLevel: number }).pgLevel);
    expect(inhibit).toEqual([3]);
    const aug = seq.indexOf('kvm.vcpu0 → tdx TDH.MEM.PAGE.AUG') + 1;
    expect(payload<{ RCX: bigint; R8: bigint }>(run, aug)).toMatchObject({ RCX: 0x400001n, R8: 0x200400000n });
    const zero = seq.indexOf('tdx → hw.mem MEM_ZERO') + 1;
    expect(payload(run, zero)).toMatchObject({ pa: 0x200400000n, bytes: 0x200000n });
    expect(septAt(run, zero + 2, 0x400000n)).toEqual([{ gpa: 0x400000n, tdxLevel: 1, state: 'MAPPED', hpa: 0x200400000n }]);
  });

  it('converting 4K of it stops at a stated model limit instead of zapping the whole 2M leaf', () => {
    expect(run.outcome.status).toBe('failure');
    expect(run.outcome.failures[0]).toMatchObject({ actor: 'kvm.vm', reason: 'model limit' });
    expect(run.outcome.failures[0]!.detail).toContain('2M private mapping at 0x400000');
    expect(seq).not.toContain('kvm.vm → tdx TDH.MEM.RANGE.BLOCK');
  });
});

describe('policy switches', () => {
  it('default to upstream: no private huge pages, split on (only in force with huge pages), kick and retry on a zap BUSY, local retry, the module\'s zero-step threshold', () => {
    expect(DEFAULT_POLICIES).toEqual({
      privateHugePages: false,
      splitOnAcceptLevel: true,
      freezeMirrorSpte: true,
      zapBusyKickRetry: true,
      kickAfterTrack: true,
      localRetry: true,
      busyLeavesFastpath: true,
      staleFaultCheck: true,
      globalGuestInhibit: true,
      splitChecksBlock: true,
      memoryFaultExit: true,
      unexpectedPendingCheck: true,
      sharedSuppressVe: true,
      snapshotBeforeAttributes: true,
      trackBeforeRemove: true,
      acceptingListUnitGranular: true,
      acceptMemoryPastEnd: true,
      tdxEncStatusChangePrepare: true,
      mmioRejectsPageCross: true,
      safeHaltStiAfterTdcall: true,
      haltPollNs: 200000,
      hltChecksVmxip: true,
      mapGpaEventCheck: true,
      invalidMemslotEndsLocalRetry: true,
      zeroStepThreshold: 6,
    });
    for (const p of Object.values(POLICIES)) expect(p.section).toMatch(/^§/);
  });

  it('upstream maps the same touch at 4K: AUG at level 0, then the touch of a PENDING page is a #VE and the accept succeeds without an exit', () => {
    const run = runScenario(withPolicies(base, { privateHugePages: false }));
    const aug = arrows(run).indexOf('kvm.vcpu0 → tdx TDH.MEM.PAGE.AUG') + 1;
    expect(payload<{ RCX: bigint }>(run, aug).RCX).toBe(0x200000n);
    expect(arrows(run)).not.toContain('kvm.vcpu0 → kvm.mmu LPAGE_INFO_READ');
    expect(run.outcome.status).toBe('ok');
  });

  it('without private huge pages there is no tdx_check_accept_level: an ACCEPT exit goes straight to the fault path', () => {
    const run = runExample('mapgpa-round-trip');
    const seq = arrows(run);
    const exit = seq.indexOf('tdx → kvm.vcpu0 EPT_VIOLATION');
    expect(seq.slice(exit + 1, exit + 4)).toEqual(['kvm.vcpu0 → kvm.mmu MMU_INVALIDATE_SEQ_READ', 'kvm.mmu → kvm.vcpu0 MMU_INVALIDATE_SEQ', 'kvm.vcpu0 → kvm.mmu FAULTIN']);
    expect(seq).not.toContain('kvm.vcpu0 → kvm.mmu LPAGE_INFO_READ');
  });

  it('--policy parses name=on|off and names the known switches when it cannot', () => {
    expect(parsePolicyOption('splitOnAcceptLevel=off')).toEqual({ splitOnAcceptLevel: false });
    expect(parsePolicyOption('privateHugePages=on', { splitOnAcceptLevel: false })).toEqual({ splitOnAcceptLevel: false, privateHugePages: true });
    expect(() => parsePolicyOption('hugePages=on')).toThrow('unknown policy "hugePages"; known: privateHugePages, splitOnAcceptLevel');
    expect(() => parsePolicyOption('privateHugePages=maybe')).toThrow('"maybe" is not on or off');
    expect(parsePolicyOption('zeroStepThreshold=2')).toEqual({ zeroStepThreshold: 2 });
    expect(() => parsePolicyOption('zeroStepThreshold=0')).toThrow('--policy zeroStepThreshold: "0" is not a whole number from 1 to 32');
    expect(() => parsePolicyOption('zeroStepThreshold=on')).toThrow('is not a whole number from 1 to 32');
  });
});
