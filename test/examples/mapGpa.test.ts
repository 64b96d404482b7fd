/**
 * MapGPA both ways (§6.iv): TDG.VP.VMCALL<MapGPA> → KVM's checks → KVM_EXIT_HYPERCALL in 2 MiB chunks →
 * the VMM's KVM_SET_MEMORY_ATTRIBUTES, which zaps the side that loses the range under write mmu_lock:
 * private → shared is SPTE_WRITE → TDH.MEM.RANGE.BLOCK → TDH.MEM.TRACK → every vCPU out of guest mode →
 * TDH.MEM.PAGE.REMOVE → TDH.PHYMEM.PAGE.WBINVD → clear with KeyID 0 (§7.4, §5a.3); shared → private zaps
 * the direct root and flushes. Also KVM's refusals, Linux's RETRY rule, the implicit conversion on
 * KVM_EXIT_MEMORY_FAULT, and the kick of a second vCPU that is running guest code (IPI → EXTERNAL_INTERRUPT).
 */
import { describe, expect, it } from 'vitest';
import { arrows, payload, runExample, runScenario, type RecordedRun } from '../helpers.ts';
import { parseScenarioObject } from '../../src/scenario/load.ts';
import type { ScenarioInput } from '../../src/scenario/schema.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import { runModel, type Delivery } from '../../src/runtime/runner.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import type { Scheduler } from '../../src/runtime/scheduler/scheduler.ts';
import type { Message } from '../../src/protocol/messages.ts';
import { modelFor } from '../../src/session/session.ts';
import { TDX_SUCCESS } from '../../src/arch/tdxStatus.ts';
import { SHADOW_NONPRESENT_VALUE, isShadowPresentPte } from '../../src/arch/spte.ts';
import {
  TDVMCALL_MAP_GPA,
  TDVMCALL_STATUS_ALIGN_ERROR,
  TDVMCALL_STATUS_INVALID_OPERAND,
  TDVMCALL_STATUS_RETRY,
  TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED,
} from '../../src/arch/tdcall.ts';
import {
  KVM_EXIT_HYPERCALL,
  KVM_EXIT_HYPERCALL_LONG_MODE,
  KVM_EXIT_MEMORY_FAULT,
  KVM_HC_MAP_GPA_RANGE,
  KVM_MAP_GPA_RANGE_DECRYPTED,
  KVM_MAP_GPA_RANGE_ENCRYPTED,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
  HYPERCALL_RET_EAGAIN,
} from '../../src/arch/kvmApi.ts';
import { EXIT_REASON_EXTERNAL_INTERRUPT, EXIT_REASON_TDCALL } from '../../src/arch/vmx.ts';
import { septLeaves } from '../../machines/tdxModule/septTree.ts';
import { walkTdp, presentLeaves } from '../../machines/kvm/tdpIter.ts';
import { attributeIsPrivate } from '../../machines/kvm/memAttributes.ts';
import type { TdxModuleContext } from '../../machines/tdxModule/tdxModule.ts';
import type { TdpMmuContext } from '../../machines/kvm/tdpMmu.ts';
import type { MemoryContext } from '../../machines/hw/memory.ts';
import { TD_HKID, HOST_LAYOUT } from '../../machines/registry.ts';
import { runChecked } from '../properties/invariants.ts';

type Regs = Record<string, bigint>;
type Gprs = Record<string, bigint>;

/** An actor's context right after delivery `step` (1-based; default: the end of the run). */
const ctx = <T>(run: RecordedRun, actor: string, step = run.deliveries.length): T =>
  actorView(run.deliveries[step - 1]!.world, run.model.indexOf.get(actor)!).context as T;

/** The S-EPT state of the 4K page at `gpa` after `step` ('FREE' when no leaf maps it). */
function septState(run: RecordedRun, gpa: bigint, step?: number): string {
  const t = ctx<TdxModuleContext>(run, 'tdx', step);
  return septLeaves(t.mem.sept, t.mem.septRoot!, t.mem.topLevel).find((l) => l.gpa === gpa)?.state ?? 'FREE';
}

/** The mirror-root SPTE where the walk for `gpa` ends (the 4K leaf once the tables exist). */
function mirrorSpte(run: RecordedRun, gpa: bigint, step?: number): bigint {
  const m = ctx<TdpMmuContext>(run, 'kvm.mmu', step);
  return walkTdp(m.pages, m.roots.mirror!, m.topLevel, gpa).at(-1)!.spte;
}

/** The first step (1-based) at or after step `from` whose `from → to NAME` is `arrow`. */
const stepOf = (seq: readonly string[], arrow: string, from = 1) => {
  const i = seq.indexOf(arrow, from - 1);
  if (i < 0) throw new Error(`no "${arrow}" at or after step ${from}`);
  return i + 1;
};

const TD_VM = { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] } as const;
const GMEM = [{ gpa: '0x0', size: '0x80000000', guestMemfd: true }];
const SHARED = 1n << 47n;

function td(name: string, program: ScenarioInput['vcpus'][number]['program'], extra: Partial<ScenarioInput> = {}) {
  return parseScenarioObject({ name, vm: TD_VM, memslots: GMEM, vcpus: [{ program }], ...extra });
}

describe('mapgpa-round-trip: private → shared → private (§6.iv)', () => {
  const run = runExample('mapgpa-round-trip');
  const seq = arrows(run);
  const toShared = stepOf(seq, 'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<MapGPA>');
  const toPrivate = stepOf(seq, 'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<MapGPA>', toShared + 1);
  const removed = stepOf(seq, 'tdx → kvm.vm TDH.MEM.PAGE.REMOVE');
  const cleared = stepOf(seq, 'hw.mem → kvm.vm MEM_DONE');
  const reAug = stepOf(seq, 'tdx → kvm.vcpu0 TDH.MEM.PAGE.AUG', toPrivate);
  const reAccepted = stepOf(seq, 'tdx → guest.vcpu0 TDG.MEM.PAGE.ACCEPT', toPrivate);

  it('private → shared: TDCALL → KVM_EXIT_HYPERCALL → attributes under write mmu_lock: SPTE_WRITE, BLOCK, TRACK, kick, REMOVE, WBINVD, clear', () => {
    const resumed = stepOf(seq, 'hw.cpu0 → guest.vcpu0 VMRESUME', toShared);
    expect(seq.slice(toShared - 1, resumed)).toEqual([
      'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<MapGPA>',
      'hw.cpu0 → tdx TDG.VP.VMCALL<MapGPA>',
      'tdx → kvm.vcpu0 TDCALL',
      'kvm.vcpu0 → vmm KVM_EXIT_HYPERCALL',
      'vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES',
      'kvm.vm → kvm.mmu MMU_LOCK_WRITE',
      'kvm.mmu → kvm.vm MMU_LOCK_ACQUIRED',
      'kvm.vm → kvm.mmu TDP_LEAF_SCAN',
      'kvm.mmu → kvm.vm TDP_LEAF_SCAN_RESULT',
      // tdp_mmu_set_spte: the mirror leaf goes non-present before the remove hook runs (§7.6).
      'kvm.vm → kvm.mmu SPTE_WRITE',
      'kvm.vm → tdx TDH.MEM.RANGE.BLOCK',
      'tdx → kvm.vm TDH.MEM.RANGE.BLOCK',
      'kvm.vm → tdx TDH.MEM.TRACK',
      'tdx → tdx TRACK_EPOCH',
      'tdx → kvm.vm TDH.MEM.TRACK',
      // tdx_track: KVM_REQ_OUTSIDE_GUEST_MODE between TRACK and REMOVE; vCPU 0 is in userspace and acks at once.
      'kvm.vm → kvm.vcpu0 KVM_REQ_OUTSIDE_GUEST_MODE',
      'kvm.vcpu0 → kvm.vm KVM_REQ_ACK',
      'kvm.vm → tdx TDH.MEM.PAGE.REMOVE',
      'tdx → kvm.vm TDH.MEM.PAGE.REMOVE',
      'kvm.vm → tdx TDH.PHYMEM.PAGE.WBINVD',
      'tdx → kvm.vm TDH.PHYMEM.PAGE.WBINVD',
      'kvm.vm → hw.mem MEM_ZERO',
      'hw.mem → kvm.vm MEM_DONE',
      // The zap reported a flush: kvm_flush_remote_tlbs before mmu_lock is dropped, as after a shared zap.
      'kvm.vm → kvm.vcpu0 KVM_REQ_TLB_FLUSH',
      'kvm.vcpu0 → kvm.vm KVM_REQ_ACK',
      // The pre-set section ends; the attributes are stored without mmu_lock; the post-set section ends the invalidation.
      'kvm.vm → kvm.mmu MMU_UNLOCK',
      'kvm.vm → kvm.mmu SET_ATTRIBUTES',
      'kvm.mmu → kvm.vm SET_ATTRIBUTES_DONE',
      'kvm.vm → kvm.mmu MMU_LOCK_WRITE',
      'kvm.mmu → kvm.vm MMU_LOCK_ACQUIRED',
      'kvm.vm → kvm.mmu MMU_INVALIDATE_END',
      'kvm.vm → kvm.mmu MMU_UNLOCK',
      'kvm.vm → vmm KVM_SET_MEMORY_ATTRIBUTES',
      'vmm → kvm.vcpu0 KVM_RUN',
      // KVM_REQ_TLB_FLUSH: tdx_flush_tlb_all, a global INVEPT on the vCPU's CPU before the entry (§1.2).
      'kvm.vcpu0 → hw.cpu0 INVEPT',
      'hw.cpu0 → kvm.vcpu0 INVEPT',
      'kvm.vcpu0 → tdx TDH.VP.ENTER',
      'tdx → tdx ENTER_EPOCH',
      // The vCPU entered last in epoch 1, the TD is in epoch 2 since the TRACK: the module flushes the TD's EPTP (§5c.2 step 3).
      'tdx → hw.cpu0 INVEPT',
      'hw.cpu0 → guest.vcpu0 VMRESUME',
    ]);
  });

  it('register-level payloads of the conversion to shared, in hex', () => {
    const s = toShared;
    expect(payload<Gprs>(run, s)).toMatchObject({ R10: 0n, R11: BigInt(TDVMCALL_MAP_GPA), R12: 0x800000200000n, R13: 0x1000n });
    expect(payload<Gprs>(run, s + 2)).toMatchObject({ RAX: BigInt(EXIT_REASON_TDCALL), R11: 0x10001n, R12: 0x800000200000n, R13: 0x1000n });
    // args[0] without the shared bit, one 4K page, DECRYPTED; flags = LONG_MODE.
    expect(payload(run, s + 3)).toEqual({
      vcpu: 0,
      exit_reason: KVM_EXIT_HYPERCALL,
      nr: KVM_HC_MAP_GPA_RANGE,
      args: [0x200000n, 1n, BigInt(KVM_MAP_GPA_RANGE_DECRYPTED)],
      flags: KVM_EXIT_HYPERCALL_LONG_MODE,
      ret: 0,
    });
    expect(payload(run, s + 4)).toEqual({ address: 0x200000n, size: 0x1000n, attributes: 0n });
    expect(payload(run, s + 7)).toMatchObject({ root: 'mirror', gfnStart: 0x200n, gfnEnd: 0x201n });
    expect(payload(run, s + 9)).toMatchObject({ root: 'mirror', gfn: 0x200n, pgLevel: 1, oldSpte: 0x8600000200200b37n, newSpte: SHADOW_NONPRESENT_VALUE });
    expect(payload<Gprs>(run, s + 10)).toEqual({ RCX: 0x200000n, RDX: HOST_LAYOUT.tdrPa }); // GPA | TDX level 0
    expect(payload<Gprs>(run, s + 11).RAX).toBe(TDX_SUCCESS);
    expect(payload<Gprs>(run, s + 12)).toEqual({ RCX: HOST_LAYOUT.tdrPa });
    expect(payload<Gprs>(run, s + 17)).toEqual({ RCX: 0x200000n, RDX: HOST_LAYOUT.tdrPa });
    // REMOVE returns the HPA it freed in RCX and level | FREE << 8 in RDX.
    expect(payload<Gprs>(run, removed)).toEqual({ RAX: TDX_SUCCESS, RCX: 0x200200000n, RDX: 0x0n });
    // WBINVD takes the HKID-tagged PA: pa | HKID << x86_phys_bits (set_hkid_to_hpa).
    expect(payload<Gprs>(run, removed + 1)).toEqual({ RCX: 0x200200000n | (BigInt(TD_HKID) << BigInt(HOST_LAYOUT.hkidShift)) });
    expect(payload(run, removed + 3)).toEqual({ pa: 0x200200000n, bytes: 0x1000n, keyid: 0, tag: 'kvm.vm' });
    expect(payload(run, stepOf(seq, 'kvm.vm → kvm.mmu SET_ATTRIBUTES', cleared))).toMatchObject({ gfnStart: 0x200n, gfnEnd: 0x201n, private: false });
    const rerun = stepOf(seq, 'vmm → kvm.vcpu0 KVM_RUN', cleared);
    expect(payload(run, rerun)).toEqual({ vcpu: 0, mmioData: null, hypercallRet: 0 });
    expect(payload(run, rerun + 1)).toEqual({ vcpu: 0, type: 2, eptp: null, then: null });
    // tdx_complete_vmcall_map_gpa: R10 = SUCCESS goes back through TDH.VP.ENTER.
    expect(payload<Gprs>(run, rerun + 3)).toMatchObject({ R10: 0n });
    expect(payload(run, rerun + 5)).toMatchObject({ vcpu: 0, type: 1, eptp: 0x10000401en, then: { name: 'VMRESUME', payload: { tdcallReturn: { RAX: 0n, R10: 0n } } } });
    // The TD epoch, 1 after TDH.MNG.INIT, moved once (TRACK), and every vCPU has left the old one.
    expect(ctx<TdxModuleContext>(run, 'tdx', removed).mem.epoch.tdEpoch).toBe(2);
  });

  it('S-EPT entry of 0x200000: MAPPED → BLOCKED → FREE after the zap → PENDING after the re-AUG → MAPPED after the accept', () => {
    // The module changes the entry when it handles the SEAMCALL, i.e. at the call's delivery.
    const blockCall = stepOf(seq, 'kvm.vm → tdx TDH.MEM.RANGE.BLOCK');
    const removeCall = stepOf(seq, 'kvm.vm → tdx TDH.MEM.PAGE.REMOVE');
    const augCall = stepOf(seq, 'kvm.vcpu0 → tdx TDH.MEM.PAGE.AUG', toPrivate);
    expect(septState(run, 0x200000n, toShared)).toBe('MAPPED');
    expect(septState(run, 0x200000n, blockCall - 1)).toBe('MAPPED');
    expect(septState(run, 0x200000n, blockCall)).toBe('BLOCKED');
    expect(septState(run, 0x200000n, removeCall - 1)).toBe('BLOCKED');
    expect(septState(run, 0x200000n, removeCall)).toBe('FREE');
    expect(septState(run, 0x200000n, toPrivate)).toBe('FREE');
    expect(septState(run, 0x200000n, augCall - 1)).toBe('FREE');
    expect(septState(run, 0x200000n, augCall)).toBe('PENDING');
    expect(reAug).toBe(augCall + 1);
    expect(septState(run, 0x200000n, reAccepted)).toBe('MAPPED');
    const t = ctx<TdxModuleContext>(run, 'tdx');
    expect(septLeaves(t.mem.sept, t.mem.septRoot!, t.mem.topLevel)).toEqual([{ gpa: 0x200000n, tdxLevel: 0, state: 'MAPPED', hpa: 0x200200000n }]);
    // The mirror's non-leaf S-EPT pages stay while the TD lives (§6.iv step 4): the re-AUG needs no SEPT.ADD.
    expect(seq.slice(toPrivate - 1).filter((a) => a.endsWith('TDH.MEM.SEPT.ADD'))).toEqual([]);
  });

  it('mirror leaf: 0x8600000200200b37 before the zap, SHADOW_NONPRESENT_VALUE after it, the same leaf again after the re-AUG', () => {
    expect(mirrorSpte(run, 0x200000n, toShared)).toBe(0x8600000200200b37n);
    const spteWrite = toShared + 9;
    expect(seq[spteWrite - 1]).toBe('kvm.vm → kvm.mmu SPTE_WRITE');
    expect(mirrorSpte(run, 0x200000n, spteWrite - 1)).toBe(0x8600000200200b37n);
    expect(mirrorSpte(run, 0x200000n, spteWrite)).toBe(SHADOW_NONPRESENT_VALUE);
    expect(isShadowPresentPte(mirrorSpte(run, 0x200000n, removed))).toBe(false);
    expect(mirrorSpte(run, 0x200000n, toPrivate)).toBe(SHADOW_NONPRESENT_VALUE);
    expect(mirrorSpte(run, 0x200000n)).toBe(0x8600000200200b37n);
  });

  it('gmem page 0x200200000: the secret under the TD’s HKID, zero under KeyID 0 after the clear; the host never reads it', () => {
    const pfn = 0x200200;
    const secretStored = stepOf(seq, 'hw.mem → hw.cpu0 MEM_DONE');
    expect(payload(run, secretStored - 1)).toMatchObject({ pa: 0x200200000n, keyid: TD_HKID, value: 0x5ec2e75ec2e7n });
    expect(ctx<MemoryContext>(run, 'hw.mem', secretStored).pages[pfn]).toEqual({ keyid: TD_HKID, words: { 0: 0x5ec2e75ec2e7n } });
    expect(ctx<MemoryContext>(run, 'hw.mem', removed).pages[pfn]).toEqual({ keyid: TD_HKID, words: { 0: 0x5ec2e75ec2e7n } });
    expect(ctx<MemoryContext>(run, 'hw.mem', cleared).pages[pfn]).toEqual({ keyid: 0, words: {} });
    // The re-accept clears it again with the TD key; the load through the S-EPT reads that zero.
    expect(ctx<MemoryContext>(run, 'hw.mem').pages[pfn]).toEqual({ keyid: TD_HKID, words: {} });
    const hostReads = run.deliveries.filter((d) => d.message.name === 'MEM_READ' && (d.message.payload as { keyid: number }).keyid === 0 && (d.message.payload as { pa: bigint }).pa >> 12n === BigInt(pfn));
    expect(hostReads).toEqual([]);
    const leaks = run.deliveries.filter(
      (d) => /^(kvm\.|vmm)/.test(d.message.to) && JSON.stringify(d.message.payload, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v)).includes('5ec2e75ec2e7'),
    );
    expect(leaks).toEqual([]);
  });

  it('the shared alias maps the userspace page 0x400200000 on the direct root; rax reads 0 there, not the secret', () => {
    const load = stepOf(seq, 'guest.vcpu0 → hw.cpu0 LOAD', toShared);
    expect(payload(run, load)).toMatchObject({ gpa: 0x800000200000n });
    const faultin = stepOf(seq, 'kvm.mmu → kvm.vcpu0 FAULTIN_RESULT', load);
    expect(payload(run, faultin)).toMatchObject({ gfn: 0x200n, attrPrivate: false, slot: 'gmem', pfn: 0x400200n });
    const read = stepOf(seq, 'hw.cpu0 → hw.mem MEM_READ', load);
    expect(payload(run, read)).toMatchObject({ pa: 0x400200000n, size: 8, keyid: 0 });
    expect(payload(run, read + 1)).toMatchObject({ value: 0n, integrity: true });
    const m = ctx<TdpMmuContext>(run, 'kvm.mmu', toPrivate);
    expect(walkTdp(m.pages, m.roots.direct, m.topLevel, 0x800000200000n).at(-1)).toMatchObject({ pgLevel: 1, spte: 0x8600000400200b37n });
    expect(ctx<MemoryContext>(run, 'hw.mem', toPrivate).pages[0x400200]).toEqual({ keyid: 0, words: { 0: 0x5a4edn } });
    expect(ctx<{ regs: Regs }>(run, 'guest.vcpu0', toPrivate).regs.rax).toBe(0n);
  });

  it('shared → private: ENCRYPTED chunk, the direct leaf zapped and KVM_REQ_TLB_FLUSH to every vCPU, nothing removed', () => {
    const resumed = stepOf(seq, 'tdx → guest.vcpu0 VMRESUME', toPrivate);
    // No TRACK since the last entry: the epoch is the vCPU's, so only KVM's flush runs.
    const slice = seq.slice(toPrivate - 1, resumed);
    expect(slice).toEqual([
      'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<MapGPA>',
      'hw.cpu0 → tdx TDG.VP.VMCALL<MapGPA>',
      'tdx → kvm.vcpu0 TDCALL',
      'kvm.vcpu0 → vmm KVM_EXIT_HYPERCALL',
      'vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES',
      'kvm.vm → kvm.mmu MMU_LOCK_WRITE',
      'kvm.mmu → kvm.vm MMU_LOCK_ACQUIRED',
      'kvm.vm → kvm.mmu TDP_LEAF_SCAN',
      'kvm.mmu → kvm.vm TDP_LEAF_SCAN_RESULT',
      'kvm.vm → kvm.mmu SPTE_WRITE',
      'kvm.vm → kvm.vcpu0 KVM_REQ_TLB_FLUSH',
      'kvm.vcpu0 → kvm.vm KVM_REQ_ACK',
      'kvm.vm → kvm.mmu MMU_UNLOCK',
      'kvm.vm → kvm.mmu SET_ATTRIBUTES',
      'kvm.mmu → kvm.vm SET_ATTRIBUTES_DONE',
      'kvm.vm → kvm.mmu MMU_LOCK_WRITE',
      'kvm.mmu → kvm.vm MMU_LOCK_ACQUIRED',
      'kvm.vm → kvm.mmu MMU_INVALIDATE_END',
      'kvm.vm → kvm.mmu MMU_UNLOCK',
      'kvm.vm → vmm KVM_SET_MEMORY_ATTRIBUTES',
      'vmm → kvm.vcpu0 KVM_RUN',
      'kvm.vcpu0 → hw.cpu0 INVEPT',
      'hw.cpu0 → kvm.vcpu0 INVEPT',
      'kvm.vcpu0 → tdx TDH.VP.ENTER',
      'tdx → tdx ENTER_EPOCH',
      'tdx → guest.vcpu0 VMRESUME',
    ]);
    // The shared translation the STORE used (it hit the TLB entry the LOAD left) is gone before the guest runs again.
    expect(ctx<{ tlb: unknown[] }>(run, 'hw.cpu0', toPrivate - 1).tlb).toHaveLength(1);
    expect(ctx<{ tlb: unknown[] }>(run, 'hw.cpu0', resumed).tlb).toEqual([]);
    expect(payload<Gprs>(run, toPrivate)).toMatchObject({ R12: 0x200000n, R13: 0x1000n });
    expect(payload<{ args: bigint[] }>(run, toPrivate + 3).args).toEqual([0x200000n, 1n, BigInt(KVM_MAP_GPA_RANGE_ENCRYPTED)]);
    expect(payload(run, toPrivate + 4)).toEqual({ address: 0x200000n, size: 0x1000n, attributes: BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE) });
    expect(payload(run, toPrivate + 7)).toMatchObject({ root: 'direct', gfnStart: 0x200n, gfnEnd: 0x201n });
    expect(payload(run, toPrivate + 9)).toMatchObject({ root: 'direct', gfn: 0x800000200n, oldSpte: 0x8600000400200b37n, newSpte: SHADOW_NONPRESENT_VALUE });
    const m = ctx<TdpMmuContext>(run, 'kvm.mmu', resumed);
    expect(walkTdp(m.pages, m.roots.direct, m.topLevel, 0x800000200000n).at(-1)!.spte).toBe(SHADOW_NONPRESENT_VALUE);
    expect(attributeIsPrivate(m.privateRanges, 0x200n)).toBe(true);
    // Linux converts to private first and accepts afterwards: the ACCEPT exits (EEQ ACCEPT) and KVM AUGs again.
    expect(seq.slice(resumed)).toContain('kvm.vcpu0 → tdx TDH.MEM.PAGE.AUG');
  });

  it('ends ok with rbx = 0: the private contents did not survive the round trip', () => {
    expect(run.outcome).toMatchObject({ status: 'ok', failures: [] });
    expect(ctx<{ regs: Regs }>(run, 'guest.vcpu0').regs).toMatchObject({ rax: 0n, rbx: 0n });
    const attrs = ctx<TdpMmuContext>(run, 'kvm.mmu').privateRanges;
    expect(attributeIsPrivate(attrs, 0x200n)).toBe(true);
  });
});

describe("KVM's MapGPA checks (§6.iv step 2): the TDVMCALL fails with R11 = GPA and the guest gives up", () => {
  const refused = (run: RecordedRun) => {
    const seq = arrows(run);
    const call = stepOf(seq, 'tdx → kvm.vcpu0 TDCALL');
    expect(seq[call]).toBe('kvm.vcpu0 → tdx TDH.VP.ENTER'); // straight back in: no KVM_EXIT_HYPERCALL
    expect(seq).not.toContain('kvm.vcpu0 → vmm KVM_EXIT_HYPERCALL');
    return { call: payload<Gprs>(run, call), enter: payload<Gprs>(run, call + 1) };
  };

  it('misaligned GPA → ALIGN_ERROR 0x8000000000000002', () => {
    const run = runScenario(td('mapgpa-misaligned', [{ op: 'mapGpa', gpa: '0x200800', size: '0x1000', to: 'shared' }, { op: 'hlt' }]));
    const { call, enter } = refused(run);
    expect(call).toMatchObject({ R12: 0x800000200800n, R13: 0x1000n });
    expect(enter).toMatchObject({ R10: TDVMCALL_STATUS_ALIGN_ERROR, R11: 0x800000200800n });
    expect(run.outcome.failures).toEqual([expect.objectContaining({ actor: 'guest.vcpu0', reason: 'guest panic' })]);
    expect(run.outcome.failures[0]!.detail).toContain('MapGPA of 0x800000200800');
    expect(run.outcome.failures[0]!.detail).toContain('R10=0x8000000000000002');
  });

  it('misaligned size → ALIGN_ERROR', () => {
    const run = runScenario(td('mapgpa-misaligned-size', [{ op: 'mapGpa', gpa: '0x200000', size: '0x800', to: 'private' }, { op: 'hlt' }]));
    expect(refused(run).enter).toMatchObject({ R10: TDVMCALL_STATUS_ALIGN_ERROR, R11: 0x200000n });
  });

  it('a range whose ends lie on different sides of the shared bit → INVALID_OPERAND 0x8000000000000000', () => {
    // to: private, so R12 has no shared bit, but the last byte 0x800000000fff has it.
    const run = runScenario(td('mapgpa-crosses-shared-bit', [{ op: 'mapGpa', gpa: '0x7ffffffff000', size: '0x2000', to: 'private' }, { op: 'hlt' }]));
    const { call, enter } = refused(run);
    expect(call).toMatchObject({ R12: 0x7ffffffff000n, R13: 0x2000n });
    expect(enter).toMatchObject({ R10: TDVMCALL_STATUS_INVALID_OPERAND, R11: 0x7ffffffff000n });
    expect(run.outcome.failures[0]!.detail).toContain('R10=0x8000000000000000');
  });

  it('a range ending beyond GPAW (both ends shared) → INVALID_OPERAND', () => {
    // to: shared from 0x7ffffffff000: R12 = 0xfffffffff000 | shared, last byte 0x17fffffffffff ≥ 1 << 48.
    const run = runScenario(td('mapgpa-beyond-gpaw', [{ op: 'mapGpa', gpa: '0x7ffffffff000', size: '0x800000001000', to: 'shared' }, { op: 'hlt' }]));
    const { call, enter } = refused(run);
    expect(call.R12).toBe(0xfffffffff000n);
    expect(call.R12! & SHARED).toBe(SHARED);
    expect(call.R12! + call.R13! - 1n).toBeGreaterThanOrEqual(1n << 48n);
    expect(enter).toMatchObject({ R10: TDVMCALL_STATUS_INVALID_OPERAND, R11: 0xfffffffff000n });
  });

  // tdx_map_gpa ORs the shared bit into start and end and passes R13 = end - start as u64. For 0x7ffffffff000 +
  // 0x2000 to shared, end | bit = 0x800000001000 is below start | bit = 0xfffffffff000, so R13 wraps to
  // 0xffff800000002000 and KVM refuses it (gpa + size wraps: INVALID_OPERAND, §6.iv step 2). (Found by this test
  // when the model still sent a negative bigint.)
  it('to: shared across bit 47: R13 is the u64 end − start (0xffff800000002000), refused with INVALID_OPERAND', () => {
    const run = runScenario(td('mapgpa-r13-wraps', [{ op: 'mapGpa', gpa: '0x7ffffffff000', size: '0x2000', to: 'shared' }, { op: 'hlt' }]));
    const { call, enter } = refused(run);
    expect(call).toMatchObject({ R12: 0xfffffffff000n, R13: 0xffff800000002000n });
    expect(enter).toMatchObject({ R10: TDVMCALL_STATUS_INVALID_OPERAND, R11: 0xfffffffff000n });
  });

  it('vmm.mapGpaExit false (no KVM_CAP_EXIT_HYPERCALL) → SUBFUNC_UNSUPPORTED 0x8000000000000003, checked first', () => {
    // Misaligned as well: SUBFUNC_UNSUPPORTED wins, the capability check comes first.
    const run = runScenario(td('mapgpa-no-exit', [{ op: 'mapGpa', gpa: '0x200800', size: '0x1000', to: 'shared' }, { op: 'hlt' }], { vmm: { mapGpaExit: false } }));
    expect(refused(run).enter).toMatchObject({ R10: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED, R11: 0x800000200800n });
    expect(run.outcome.status).toBe('failure');
    expect(run.outcome.failures[0]).toMatchObject({ actor: 'guest.vcpu0', reason: 'guest panic' });
    expect(run.outcome.failures[0]!.detail).toContain('MapGPA of');
    expect(run.outcome.failures[0]!.detail).toContain('R10=0x8000000000000003');
  });
});

describe('RETRY (§6.iv steps 5–6): the VMM answers EAGAIN, KVM returns RETRY with R11 = next GPA, Linux retries 3 times', () => {
  const prog = [
    { op: 'accept', gpa: '0x200000', size: '0x1000' },
    { op: 'store', gpa: '0x200000', size: 8, value: '0x5ec2e7' },
    { op: 'mapGpa', gpa: '0x200000', size: '0x1000', to: 'shared' },
    { op: 'hlt' },
  ] as const;
  const retries = (run: RecordedRun) =>
    run.deliveries.filter((d) => d.message.name === 'TDH.VP.ENTER' && (d.message.payload as Gprs).R10 === TDVMCALL_STATUS_RETRY).map((d) => (d.message.payload as Gprs).R11);

  it('mapGpaEagain 2: two RETRYs without progress, the third attempt converts the page', () => {
    const run = runScenario(td('mapgpa-eagain-2', [...prog], { vmm: { mapGpaEagain: 2 } }));
    const seq = arrows(run);
    expect(seq.filter((a) => a === 'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<MapGPA>')).toHaveLength(3);
    const runs = run.deliveries.filter((d) => d.message.name === 'KVM_RUN' && (d.message.payload as { hypercallRet?: number }).hypercallRet !== undefined);
    expect(runs.map((d) => (d.message.payload as { hypercallRet: number }).hypercallRet)).toEqual([HYPERCALL_RET_EAGAIN, HYPERCALL_RET_EAGAIN, 0]);
    expect(retries(run)).toEqual([0x800000200000n, 0x800000200000n]);
    // Each retry restarts from R11 with the same R12/R13; only the third one reaches the attribute change.
    const calls = run.deliveries.filter((d) => d.message.name === 'TDG.VP.VMCALL<MapGPA>' && d.message.to === 'hw.cpu0').map((d) => (d.message.payload as Gprs).R12);
    expect(calls).toEqual([0x800000200000n, 0x800000200000n, 0x800000200000n]);
    expect(seq.filter((a) => a === 'vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES')).toHaveLength(2); // build + this one
    expect(run.outcome.status).toBe('ok');
    expect(septState(run, 0x200000n)).toBe('FREE');
  });

  it('mapGpaEagain 3: the third RETRY without progress ends tdx_map_gpa; the page stays private and MAPPED', () => {
    const run = runScenario(td('mapgpa-eagain-3', [...prog], { vmm: { mapGpaEagain: 3 } }));
    expect(retries(run)).toEqual([0x800000200000n, 0x800000200000n, 0x800000200000n]);
    expect(arrows(run).filter((a) => a === 'vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES')).toHaveLength(1); // the build only
    expect(run.outcome.failures).toEqual([expect.objectContaining({ actor: 'guest.vcpu0', reason: 'guest panic' })]);
    expect(run.outcome.failures[0]!.detail).toContain('MapGPA of 0x800000200000..0x800000201000');
    expect(run.outcome.failures[0]!.detail).toContain('R10=0x1');
    expect(septState(run, 0x200000n)).toBe('MAPPED');
    expect(arrows(run)).not.toContain('kvm.vm → tdx TDH.MEM.PAGE.REMOVE');
  });
});

describe('chunks: tdx_map_gpa hands the VMM at most 2 MiB per KVM_EXIT_HYPERCALL (§6.iv step 3)', () => {
  it('4 MiB + 4K to shared: three exits with args[1] = 512, 512, 1 and one TDVMCALL', () => {
    const run = runScenario(td('mapgpa-chunks', [{ op: 'mapGpa', gpa: '0x200000', size: '0x401000', to: 'shared' }, { op: 'hlt' }]));
    const exits = run.deliveries.filter((d) => d.message.name === 'KVM_EXIT_HYPERCALL').map((d) => (d.message.payload as { args: bigint[] }).args);
    expect(exits).toEqual([
      [0x200000n, 512n, 0n],
      [0x400000n, 512n, 0n],
      [0x600000n, 1n, 0n],
    ]);
    const attrs = run.deliveries.filter((d) => d.message.name === 'KVM_SET_MEMORY_ATTRIBUTES' && d.message.to === 'kvm.vm').map((d) => d.message.payload);
    expect(attrs.slice(1)).toEqual([
      { address: 0x200000n, size: 0x200000n, attributes: 0n },
      { address: 0x400000n, size: 0x200000n, attributes: 0n },
      { address: 0x600000n, size: 0x1000n, attributes: 0n },
    ]);
    const seq = arrows(run);
    expect(seq.filter((a) => a === 'hw.cpu0 → tdx TDG.VP.VMCALL<MapGPA>')).toHaveLength(1);
    // Between chunks KVM goes straight back to userspace; only the last completion re-enters with SUCCESS.
    const enters = run.deliveries.filter((d) => d.message.name === 'TDH.VP.ENTER').map((d) => d.message.payload as Gprs);
    expect(enters.at(-1)).toMatchObject({ R10: 0n });
    expect(enters.filter((e) => e.R10 !== undefined)).toHaveLength(1);
    expect(run.outcome.status).toBe('ok');
    const m = ctx<TdpMmuContext>(run, 'kvm.mmu');
    expect([0x1ffn, 0x200n, 0x600n, 0x601n].map((g) => attributeIsPrivate(m.privateRanges, g))).toEqual([true, false, false, true]);
  });
});

describe('implicit conversion: KVM_EXIT_MEMORY_FAULT, the VMM converts and re-runs (§6.iv "Implicit conversion", §6.ii A.4)', () => {
  it('shared access to guest_memfd memory never converted: flags 0, attribute cleared, the access completes on 0x400300000', () => {
    const run = runScenario(
      td('implicit-to-shared', [{ op: 'store', gpa: '0x800000300000', size: 8, value: '0x1234' }, { op: 'load', gpa: '0x800000300000', size: 8, reg: 'rcx' }, { op: 'hlt' }]),
    );
    const seq = arrows(run);
    const mf = stepOf(seq, 'kvm.vcpu0 → vmm KVM_EXIT_MEMORY_FAULT');
    expect(payload(run, mf - 1)).toMatchObject({ gfn: 0x300n, attrPrivate: true, slot: 'gmem' });
    expect(payload(run, mf)).toEqual({ vcpu: 0, exit_reason: KVM_EXIT_MEMORY_FAULT, gpa: 0x300000n, size: 0x1000n, flags: 0 });
    expect(seq.slice(mf, mf + 2)).toEqual(['vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES', 'kvm.vm → kvm.mmu MMU_LOCK_WRITE']);
    expect(payload(run, mf + 1)).toEqual({ address: 0x300000n, size: 0x1000n, attributes: 0n });
    // Nothing private was mapped there: the mirror scan is empty and nothing is removed.
    expect(payload(run, mf + 4)).toMatchObject({ root: 'mirror', gfnStart: 0x300n, gfnEnd: 0x301n });
    expect(payload(run, mf + 5)).toMatchObject({ root: 'mirror', leaves: [] });
    expect(seq).not.toContain('kvm.vm → tdx TDH.MEM.RANGE.BLOCK');
    const rerun = stepOf(seq, 'vmm → kvm.vcpu0 KVM_RUN', mf);
    expect(payload(run, rerun)).toEqual({ vcpu: 0, mmioData: null }); // an implicit conversion has no hypercall.ret
    // The re-entered guest executes the STORE again; it faults once more, is mapped, and completes.
    const stores = run.deliveries.filter((d) => d.message.name === 'MEM_WRITE' && d.message.from === 'hw.cpu0').map((d) => d.message.payload);
    expect(stores).toEqual([{ pa: 0x400300000n, size: 8, keyid: 0, value: 0x1234n, tag: 'hw.cpu0' }]);
    expect(ctx<{ regs: Regs }>(run, 'guest.vcpu0').regs.rcx).toBe(0x1234n);
    expect(run.outcome.status).toBe('ok');
  });

  it('ACCEPT of a page the guest made shared: flags 8 (PRIVATE), converted back, AUG, accepted', () => {
    const run = runScenario(
      td('implicit-to-private', [
        { op: 'mapGpa', gpa: '0x200000', size: '0x1000', to: 'shared' },
        { op: 'accept', gpa: '0x200000', size: '0x1000' },
        { op: 'load', gpa: '0x200000', size: 8, reg: 'rbx' },
        { op: 'hlt' },
      ]),
    );
    const seq = arrows(run);
    const mf = stepOf(seq, 'kvm.vcpu0 → vmm KVM_EXIT_MEMORY_FAULT');
    expect(payload(run, mf)).toEqual({ vcpu: 0, exit_reason: KVM_EXIT_MEMORY_FAULT, gpa: 0x200000n, size: 0x1000n, flags: KVM_MEMORY_EXIT_FLAG_PRIVATE });
    expect(payload(run, mf + 1)).toEqual({ address: 0x200000n, size: 0x1000n, attributes: BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE) });
    expect(seq.slice(mf)).toContain('kvm.vcpu0 → tdx TDH.MEM.PAGE.AUG');
    expect(run.outcome.status).toBe('ok');
    expect(septState(run, 0x200000n)).toBe('MAPPED');
  });
});

// ---- Two vCPUs: the kick of tdx_track reaches a vCPU that is running guest code (§7.4) ----

const kickScenario = parseScenarioObject({
  name: 'mapgpa-kick-two-vcpus',
  vm: TD_VM,
  memslots: GMEM,
  vcpus: [
    {
      program: [
        { op: 'accept', gpa: '0x200000', size: '0x1000' },
        { op: 'store', gpa: '0x200000', size: 8, value: '0x5ec2e7' },
        { op: 'mapGpa', gpa: '0x200000', size: '0x1000', to: 'shared' },
        { op: 'load', gpa: '0x800000200000', size: 8, reg: 'rax' },
        { op: 'hlt' },
      ],
    },
    {
      // Loads of its own page, then the program ends without hlt: the vCPU spins (`jmp .`) in guest mode.
      program: [
        { op: 'accept', gpa: '0x300000', size: '0x1000' },
        { op: 'store', gpa: '0x300000', size: 8, value: '0x77' },
        { op: 'load', gpa: '0x300000', size: 8, reg: 'rbx' },
        { op: 'load', gpa: '0x300000', size: 8, reg: 'rcx' },
        { op: 'load', gpa: '0x300000', size: 8, reg: 'rdx' },
      ],
    },
  ],
});

const regsOf = (run: RecordedRun, v: number) => ctx<{ regs: Regs }>(run, `guest.vcpu${v}`).regs;

describe('two vCPUs: vCPU 0 converts its page while vCPU 1 runs guest code (§6.iv step 4, §7.4)', () => {
  it('FIFO: KVM_REQ_OUTSIDE_GUEST_MODE → IPI → EXTERNAL_INTERRUPT exit → LOCAL_IRQ_ENABLE → IRQ_HANDLED and KVM_REQ_ACK, all before REMOVE', () => {
    const run = runScenario(kickScenario);
    const seq = arrows(run);
    const tracked = stepOf(seq, 'tdx → kvm.vm TDH.MEM.TRACK');
    const remove = stepOf(seq, 'kvm.vm → tdx TDH.MEM.PAGE.REMOVE');
    const between = seq.slice(tracked, remove - 1);
    const kick = between.filter((a) => /KVM_REQ|IPI|IRQ|EXTERNAL_INTERRUPT/.test(a));
    expect(kick).toEqual([
      'kvm.vm → kvm.vcpu0 KVM_REQ_OUTSIDE_GUEST_MODE',
      'kvm.vm → kvm.vcpu1 KVM_REQ_OUTSIDE_GUEST_MODE',
      'kvm.vcpu0 → kvm.vm KVM_REQ_ACK', // vCPU 0 is in userspace (it made the MapGPA exit)
      'kvm.vcpu1 → hw.cpu1 IPI', // vCPU 1 is inside TDH.VP.ENTER
      'hw.cpu1 → tdx EXTERNAL_INTERRUPT',
      'tdx → kvm.vcpu1 EXTERNAL_INTERRUPT',
      'kvm.vcpu1 → hw.cpu1 LOCAL_IRQ_ENABLE',
      'hw.cpu1 → kvm.vm KVM_REQ_ACK',
      'hw.cpu1 → kvm.vcpu1 IRQ_HANDLED',
    ]);
    // vCPU 1's loads after the first hit the TLB (no walks), so it already spins (`jmp .`) when the IPI lands:
    // the CPU exits at once, and the exit names the spin loop's RIP.
    const vmExit = stepOf(seq, 'hw.cpu1 → tdx EXTERNAL_INTERRUPT', tracked);
    // Between the IPI and the exit the CPU only finishes the load it was executing (an interrupt is taken at
    // an instruction boundary: the TLB-hit read and its retirement) and runs the guest's spin loop.
    const ipi = stepOf(seq, 'kvm.vcpu1 → hw.cpu1 IPI', tracked);
    expect(ipi).toBeLessThan(vmExit);
    const finishing = ['hw.cpu1 → hw.mem MEM_READ', 'hw.mem → hw.cpu1 MEM_DATA', 'hw.cpu1 → guest.vcpu1 RETIRE', 'guest.vcpu1 → hw.cpu1 SPIN'];
    expect(seq.slice(ipi, vmExit - 1).filter((a) => a.includes('hw.cpu1') && !finishing.includes(a))).toEqual([]);
    const spin = run.deliveries.filter((d, i) => i < vmExit && d.message.name === 'SPIN' && d.message.to === 'hw.cpu1').at(-1)!.message;
    expect(seq.filter((a, i) => i < vmExit && a === 'hw.cpu1 → tdx EPT_WALK')).toHaveLength(1);
    // The kick is smp_call_function_many with one target CPU: CALL_FUNCTION_SINGLE_VECTOR 0xfb, valid bit 31 in R9.
    expect(payload(run, vmExit)).toEqual({ vcpu: 1, exitReason: EXIT_REASON_EXTERNAL_INTERRUPT, rip: (spin.payload as { rip: bigint }).rip, interruptionInfo: 0x800000fb });
    expect(payload(run, vmExit + 1)).toEqual({ vcpu: 1, RAX: 0x1n, RCX: 0n, RDX: 0n, R8: 0n, R9: 0x800000fbn });
    expect(payload(run, stepOf(seq, 'kvm.vcpu1 → hw.cpu1 IPI', tracked))).toEqual({ vcpu: 1, requester: 'kvm.vm', vector: 0xfb });
    // At REMOVE every vCPU has left the epoch BLOCK ran in, so REMOVE succeeds.
    const t = ctx<TdxModuleContext>(run, 'tdx', remove - 1);
    expect(t.mem.epoch.tdEpoch).toBe(2);
    expect(t.mem.epoch.refcount[1]).toBe(0);
    expect(payload<Gprs>(run, stepOf(seq, 'tdx → kvm.vm TDH.MEM.PAGE.REMOVE', remove)).RAX).toBe(TDX_SUCCESS);
    // vCPU 1 re-enters (epoch 2) and spins again.
    expect(regsOf(run, 1)).toMatchObject({ rbx: 0x77n, rcx: 0x77n, rdx: 0x77n });
    expect(seq.filter((a) => a === 'guest.vcpu1 → hw.cpu1 SPIN').length).toBeGreaterThan(0);
    expect(ctx<{ spinRip: bigint | null }>(run, 'hw.cpu1').spinRip).not.toBeNull();
    expect(regsOf(run, 0).rax).toBe(0n);
    expect(septState(run, 0x200000n)).toBe('FREE');
    expect(septState(run, 0x300000n)).toBe('MAPPED');
    expect(run.outcome.status).toBe('ok');
  });

  it('random scheduler, 24 seeds: every run ends ok, REMOVE always succeeds (never TDX_TLB_TRACKING_NOT_DONE), the old epoch is empty at REMOVE', () => {
    let viaIpi = 0;
    for (let seed = 1; seed <= 24; seed++) {
      const run = runScenario(kickScenario, seed);
      expect(run.outcome, `seed ${seed}`).toMatchObject({ status: 'ok' });
      const seq = arrows(run);
      const removes = run.deliveries.filter((d) => d.message.name === 'TDH.MEM.PAGE.REMOVE' && d.message.from === 'tdx').map((d) => (d.message.payload as Gprs).RAX);
      expect(removes, `seed ${seed}`).toEqual([TDX_SUCCESS]);
      const remove = stepOf(seq, 'kvm.vm → tdx TDH.MEM.PAGE.REMOVE');
      const tracked = stepOf(seq, 'tdx → kvm.vm TDH.MEM.TRACK');
      const e = ctx<TdxModuleContext>(run, 'tdx', remove - 1).mem.epoch;
      expect(e.refcount[(e.tdEpoch - 1) & 1], `seed ${seed}: vCPUs still in the epoch BLOCK ran in`).toBe(0);
      const ack1 = seq.findIndex((a, i) => i >= tracked && /→ kvm\.vm KVM_REQ_ACK$/.test(a) && (run.deliveries[i]!.message.payload as { vcpu: number }).vcpu === 1);
      expect(ack1 + 1, `seed ${seed}: vCPU 1 acknowledged before REMOVE`).toBeLessThan(remove);
      if (seq.includes('tdx → kvm.vcpu1 EXTERNAL_INTERRUPT')) viaIpi++;
      expect(regsOf(run, 1), `seed ${seed}`).toMatchObject({ rbx: 0x77n, rcx: 0x77n, rdx: 0x77n });
      expect(regsOf(run, 0).rax, `seed ${seed}`).toBe(0n);
      expect(septState(run, 0x200000n)).toBe('FREE');
      expect(septState(run, 0x300000n)).toBe('MAPPED');
      // The same schedule again, with the mirror/S-EPT, attribute and no-leak invariants after every delivery.
      expect(runChecked(kickScenario, seed).outcome.status).toBe('ok');
    }
    expect(viaIpi).toBeGreaterThan(0);
  });
});

// ---- The stale-fault check: a fault racing an attribute change (§6.ii A.4–A.5) ----

/**
 * FIFO, except for two holds that set up one interleaving the real kernel allows: vCPU 0's MapGPA TDCALL
 * waits until vCPU 1 is about to run kvm_mmu_faultin_pfn (its FAULTIN to kvm.mmu is in flight), and that
 * FAULTIN waits until kvm.vm has taken mmu_lock for write for the conversion. So the vCPU thread reads the
 * attribute locklessly while the VMM thread is inside kvm_vm_set_mem_attributes.
 */
function faultinDuringAttributeChange(): Scheduler {
  const fifo = fifoScheduler();
  let converting = false;
  let writeLocked = false;
  const isFaultin = (m: Message) => m.from === 'kvm.vcpu1' && m.name === 'FAULTIN';
  return {
    descriptor: { kind: 'fifo' },
    choose(enabled: readonly Message[]): number {
      const faultinPending = enabled.some(isFaultin);
      const held = (m: Message) =>
        (!faultinPending && m.from === 'guest.vcpu0' && m.name === 'TDG.VP.VMCALL<MapGPA>') || (!writeLocked && isFaultin(m));
      const open = enabled.filter((m) => !held(m));
      const pick = open.length > 0 ? enabled.indexOf(open[fifo.choose(open)]!) : fifo.choose(enabled);
      const m = enabled[pick]!;
      if (m.name === 'KVM_EXIT_HYPERCALL') converting = true;
      if (converting && m.to === 'kvm.vm' && m.name === 'MMU_LOCK_ACQUIRED') writeLocked = true;
      return pick;
    },
  };
}

describe('a fault that read the attribute during KVM_SET_MEMORY_ATTRIBUTES is stale and retried (mmu_invalidate_seq, §6.ii A.4–A.5)', () => {
  // vCPU 1 accepts 0x200000 (never mapped); vCPU 0 converts the same page to shared meanwhile.
  const race = parseScenarioObject({
    name: 'faultin-vs-set-attributes',
    vm: TD_VM,
    memslots: GMEM,
    vcpus: [
      { program: [{ op: 'mapGpa', gpa: '0x200000', size: '0x1000', to: 'shared' }, { op: 'hlt' }] },
      { program: [{ op: 'accept', gpa: '0x200000', size: '0x1000' }, { op: 'hlt' }] },
    ],
  });
  const model = modelFor(race);
  const deliveries: Delivery[] = [];
  const { outcome } = runModel(model, { scheduler: faultinDuringAttributeChange(), onDelivery: (d) => deliveries.push(d) });
  const at = (actor: string, i = deliveries.length - 1) => actorView(deliveries[i]!.world, model.indexOf.get(actor)!).context;
  const seq = deliveries.map((d) => `${d.message.from} → ${d.message.to} ${d.message.name}`);

  it('the race is set up: vCPU 1 reads attrPrivate = true while kvm.vm holds mmu_lock for write, then waits for the read lock', () => {
    const exit = seq.indexOf('kvm.vcpu0 → vmm KVM_EXIT_HYPERCALL');
    const locked = seq.indexOf('kvm.mmu → kvm.vm MMU_LOCK_ACQUIRED', exit);
    const faultin = seq.indexOf('kvm.mmu → kvm.vcpu1 FAULTIN_RESULT');
    const setAttrs = seq.indexOf('kvm.vm → kvm.mmu SET_ATTRIBUTES', exit);
    expect(exit).toBeGreaterThan(0);
    expect(locked).toBeGreaterThan(exit);
    expect(faultin).toBeGreaterThan(locked);
    expect(faultin).toBeLessThan(setAttrs);
    expect(deliveries[faultin]!.message.payload).toMatchObject({ gfn: 0x200n, attrPrivate: true });
    expect(outcome.status).toBe('ok');
  });

  // §6.ii A.4–A.5 (kvm_mmu_faultin_pfn / is_page_fault_stale): the fault snapshotted mmu_invalidate_seq
  // before the attribute change ended, so its walk under the read lock reports it stale → RET_PF_RETRY; the
  // local retry reads the attribute again (now shared) and exits with KVM_EXIT_MEMORY_FAULT flags PRIVATE.
  // Found by the property tests before the model had the sequence check.
  it('KVM retries the stale fault: no mirror leaf is left on a GFN whose attribute is shared, and vCPU 1 exits with KVM_EXIT_MEMORY_FAULT flags 8', () => {
    const m = at('kvm.mmu') as TdpMmuContext;
    const mirror = presentLeaves(m.pages, m.roots.mirror!, m.topLevel, 0n, 1n << 36n);
    expect(mirror.filter((l) => !attributeIsPrivate(m.privateRanges, l.gfn))).toEqual([]);
    const unlock = seq.indexOf('kvm.vm → kvm.mmu MMU_UNLOCK', seq.indexOf('kvm.vcpu0 → vmm KVM_EXIT_HYPERCALL'));
    const augAfterUnlock = seq.findIndex((a, i) => i > unlock && a === 'kvm.vcpu1 → tdx TDH.MEM.PAGE.AUG');
    const memoryFault = seq.findIndex((a, i) => i > unlock && a === 'kvm.vcpu1 → vmm KVM_EXIT_MEMORY_FAULT');
    expect(memoryFault).toBeGreaterThan(0);
    const stale = deliveries.find((d) => d.message.to === 'kvm.vcpu1' && d.message.name === 'TDP_WALK_RESULT');
    expect(stale!.message.payload).toMatchObject({ stale: true });
    expect(deliveries[memoryFault]!.message.payload).toMatchObject({ gpa: 0x200000n, flags: KVM_MEMORY_EXIT_FLAG_PRIVATE });
    if (augAfterUnlock >= 0) expect(augAfterUnlock).toBeGreaterThan(memoryFault);
  });

  // The same race found without steering: the random scheduler with the invariants of test/properties
  // (a present mirror leaf must be on a PRIVATE GFN) reports it within the first few seeds.
  it('random scheduler, seeds 1–20: no mirror leaf on a shared GFN at any step', () => {
    for (let seed = 1; seed <= 20; seed++) runChecked(race, seed);
  });

  // The other direction, same cause: vCPU 1's shared fault reads attrPrivate = false while kvm.vm converts the
  // GFN back to private under write mmu_lock, then installs the direct-root leaf 0x8600000400200b37 for a GFN
  // whose attribute is now PRIVATE — unless the stale check sends it back: RET_PF_RETRY, re-enter, the
  // retried access exits with KVM_EXIT_MEMORY_FAULT flags 0.
  it('random scheduler, seeds 0–19: no direct-root leaf on a PRIVATE GFN while vCPU 1 reads the shared alias during a round trip', () => {
    const roundTrip = parseScenarioObject({
      name: 'shared-faultin-vs-set-attributes',
      vm: TD_VM,
      memslots: GMEM,
      vcpus: [
        { program: [{ op: 'mapGpa', gpa: '0x200000', size: '0x1000', to: 'shared' }, { op: 'mapGpa', gpa: '0x200000', size: '0x1000', to: 'private' }, { op: 'hlt' }] },
        { program: [{ op: 'load', gpa: '0x800000200000', size: 8, reg: 'rax' }, { op: 'load', gpa: '0x800000200000', size: 8, reg: 'rbx' }, { op: 'hlt' }] },
      ],
    });
    for (let seed = 0; seed < 20; seed++) runChecked(roundTrip, seed);
  });
});
