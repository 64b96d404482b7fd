/**
 * KVM's VM-scope ioctls, run on the VMM's thread against the VM file descriptor: KVM_TDX_INIT_VM (up to
 * TDH.MNG.INIT, then TDH.MNG.RD of the TSC offset and multiplier) and KVM_TDX_FINALIZE_VM as their
 * SEAMCALL sequences (§5b.3 steps 2 and 5), KVM_SET_MEMORY_ATTRIBUTES (§1.4, §6.iv step 4), and the
 * checks of KVM_CREATE_VCPU. Each returns to the thread that issued it (a VMM host thread or the main one);
 * the mutexes around them (kvm->lock, vcpu->mutex, kvm->slots_lock) are kvmLocks.ts's.
 *
 * KVM_SET_MEMORY_ATTRIBUTES takes mmu_lock for write twice. The first section begins an MMU invalidation
 * of the range and zaps what is mapped on the side that loses it. Becoming shared zaps the mirror root's
 * private leaves: each SPTE goes non-present, then the remove hook runs TDH.MEM.RANGE.BLOCK →
 * TDH.MEM.TRACK → kick every vCPU out of guest mode → TDH.MEM.PAGE.REMOVE → TDH.PHYMEM.PAGE.WBINVD → the
 * page is cleared with KeyID 0. BLOCK, TRACK and REMOVE go through tdh_do_no_vcpus: on TDX_OPERAND_BUSY,
 * kick every vCPU and try once more; a second failure, or any other error, is a KVM_BUG_ON (§7.3).
 * Becoming private zaps the direct root's shared leaves. Either way, if anything was zapped, remote TLBs
 * are flushed (KVM_REQ_TLB_FLUSH to every vCPU, and a wait) before the lock is dropped. The attributes
 * are then stored without mmu_lock, and the second section ends the invalidation (kvm_vm_set_mem_attributes
 * → kvm_handle_gfn_range twice).
 *
 * KVM_SET_USER_MEMORY_REGION2 (settingMemoryRegion) decides as kvm_set_memory_region does
 * (setMemoryRegion.ts); a DELETE or MOVE then runs kvm_set_memslot's protocol: the old slot published
 * flagged KVM_MEMSLOT_INVALID, synchronize_srcu over the vCPU threads' kvm->srcu read sides (srcu.ts),
 * the slot's range zapped with the same remove hook as a conversion, the final set published and waited
 * for again. kvm->slots_lock is held across all of it in the kernel; the VMM's one host thread issues one
 * such ioctl at a time (vmm.ts), so the model needs no lock for it.
 *
 * Teardown (§5b.4) follows the file references: the VM fd, each vCPU fd and each guest_memfd hold one.
 * Closing a guest_memfd (kvm_gmem_release) zaps every private leaf of its range in the mirror root under
 * write mmu_lock, with the same remove hook and the same flush, while the HKID is still assigned, and ends
 * the invalidation under the lock again. The last reference runs
 * kvm_destroy_vm: tdx_mmu_release_hkid (TDH.VP.FLUSH of every vCPU on its own CPU, TDH.MNG.VPFLUSHDONE,
 * TDH.PHYMEM.CACHE.WB, TDH.MNG.KEY.FREEID), then each vCPU reclaims its TDCX and TDVPR pages, the MMU
 * frees both roots and reclaims each S-EPT page of the mirror (children first), and tdx_vm_destroy
 * reclaims the TDCS pages and the TDR, writes the TDR's cache lines back with the TDX global KeyID and
 * clears it. Each page the module gives back is cleared with KeyID 0 before the kernel frees it. The
 * global tdx_lock mutex KVM takes around VPFLUSHDONE..FREEID is not shown: nothing else in the model
 * competes for it.
 */
import { setup, assign, emit, enqueueActions, and } from 'xstate';
import { noVcpus, kicking, allCpusRequest, blindRetryable } from './noVcpus.ts';
import { sharedNonPresentSpte } from './tdpIter.ts';
import { out, payloadOf, type MachineEvent, type Outgoing, type Gprs, type TdParams, type HostSeamcall } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { TDX_SUCCESS, TDX_NO_HKID_READY_TO_WBCACHE, TDX_FLUSHVP_NOT_DONE, TDCS_EXEC_TSC_OFFSET, TDCS_EXEC_TSC_MULTIPLIER, tdxStatusName } from '../../src/arch/tdxStatus.ts';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, EIO, EINVAL, FALLOC_FL_PUNCH_HOLE } from '../../src/arch/kvmApi.ts';
import { gpaToGfn, gfnToGpa, pgLevelToTdxLevel, makePageInfo, pageSizeOfPgLevel, pagesOfPgLevel, PAGE_SIZE } from '../../src/arch/gpa.ts';
import { isOperandBusy } from '../../src/arch/tdxStatus.ts';
import { SHADOW_NONPRESENT_VALUE, spteToPfn } from '../../src/arch/spte.ts';
import { hex } from '../../src/arch/hex.ts';
import type { LeafAt } from './tdpIter.ts';
import { TDH_PHYMEM_CACHEWB_START_CMD } from '../tdxModule/teardown.ts';
import type { Policies } from '../../src/policies.ts';
import { fallocateError, punchedGfns, FTRUNCATE_RET } from './guestMemfd.ts';
import { gfnDirectBits } from '../../src/arch/gpa.ts';
import { TDX_CONFIG_FLAGS_MAX_GPAW } from '../../src/arch/tdxStatus.ts';
import type { Memslot } from './memslots.ts';
import { applyMemslotChange, decideMemoryRegion, invalidatedMemslots, type MemoryRegionDecision } from './setMemoryRegion.ts';
import { gracePeriodReaders } from './srcu.ts';

export interface KvmVmInput {
  tdr: bigint;
  hkid: number;
  tdcs: readonly bigint[];
  tdParamsPa: bigint;
  tdParams: TdParams;
  vcpus: number;
  /** set_hkid_to_hpa: the HKID sits above the CPU's physical-address bits (boot_cpu_data.x86_phys_bits). */
  hkidShift: number;
  /** The kernel's TDX global KeyID (the module's metadata, e.g. the TDR, is written with it). */
  globalKeyid: number;
  /** Each guest_memfd file, by the memslot bound to it, and the GFNs it backs. */
  gmem: readonly { slot: number; gfnStart: bigint; gfnEnd: bigint }[];
  /**
   * The scenario's policy switches (src/policies.ts); the zaps read zapBusyKickRetry, trackBeforeRemove,
   * kickAfterTrack and, for the shared root, sharedSuppressVe.
   */
  policies: Policies;
  /**
   * kvm->created_vcpus when a scenario's host threads create vCPUs with KVM_CREATE_VCPU (absent otherwise:
   * every vCPU exists before the build). Counted up by each successful KVM_CREATE_VCPU.
   */
  createdVcpus?: number;
  /** The memslots as the scenario set them up (kvm->memslots before any KVM_SET_USER_MEMORY_REGION2 of a host step). */
  memslots?: readonly Memslot[];
  /** Their generation (kvm_memslots::generation) after those updates. */
  memslotsGeneration?: number;
}

/** A KVM_SET_USER_MEMORY_REGION2 in progress: the request's decision, and the zap of the old slot's range. */
export interface MemoryRegionUpdate {
  decision: MemoryRegionDecision;
  /** kvm_arch_flush_shadow_memslot's zap: which root is being scanned and whether anything was zapped. */
  flush: { root: 'mirror' | 'direct'; gfnStart: bigint; gfnEnd: bigint; zapped: boolean } | null;
}

/** The leaf being zapped and how far its remove hook has gone. */
export interface ZapState {
  root: 'mirror' | 'direct';
  /** The GFN range being invalidated; a huge leaf reaching outside it would need a split first. */
  gfnStart: bigint;
  gfnEnd: bigint;
  leaves: readonly LeafAt[];
  at: number;
  /** tdh_do_no_vcpus already kicked the vCPUs and retried the current SEAMCALL once. */
  retried: boolean;
  /** Policy zapBusyKickRetry off: how often the current BLOCK was repeated blindly after BUSY|SEPT_TREE. */
  blindRetries: number;
  /** 4K page of the current leaf whose cache lines TDH.PHYMEM.PAGE.WBINVD writes back next. */
  wbinvdAt: number;
}

/** kvm_destroy_vm's progress: the vCPU being flushed or freed, and the pages still to reclaim. */
export interface DestroyState {
  vcpu: number;
  /** External (S-EPT) pages of the mirror root, then the TDCS pages, then the TDR. */
  reclaim: readonly bigint[];
  at: number;
}

export interface KvmVmContext extends KvmVmInput {
  /** struct kvm_tdx's TD state (§1.4, §5b.2). */
  tdState: 'TD_STATE_UNINITIALIZED' | 'TD_STATE_INITIALIZED' | 'TD_STATE_RUNNABLE';
  /** A host thread's KVM_TDX_FINALIZE_VM in progress returns to it (absent for the VMM's main thread). */
  finalizeCaller?: string;
  tdcsAdded: number;
  /** kvm_tdx->tsc_offset and tsc_multiplier, read with TDH.MNG.RD after TDH.MNG.INIT (§1.4, §5b.3 step 2). */
  tscOffset: bigint | null;
  tscMultiplier: bigint | null;
  /** The KVM_SET_MEMORY_ATTRIBUTES in progress. */
  attrs: { address: bigint; size: bigint; attributes: bigint; caller?: string } | null;
  zap: ZapState | null;
  /** vCPUs that have not yet acknowledged the kvm_make_all_cpus_request in progress. */
  kickWaiting: number;
  /** users_count: the VM fd, every vCPU fd and every guest_memfd; the last put destroys the VM. */
  refs: number;
  /** The guest_memfd being released. */
  gmemClosing: number | null;
  /**
   * fallocate(PUNCH_HOLE) in progress on a guest_memfd (guestMemfd.ts): the slot its file is bound to and
   * the GFNs it drops. Its thread holds the file's invalidate lock throughout. Absent when none is.
   */
  punch?: { slot: number; gfnStart: bigint; gfnEnd: bigint };
  /** The file whose close(2) is in progress: it returns when its release (and a destruction it causes) is done. */
  closing: 'kvm-vm' | 'kvm-vcpu' | 'kvm-gmem' | null;
  destroy: DestroyState | null;
  error: string | null;
  /** kvm->memslots as the updater (holding slots_lock) knows it; kvm.mmu holds the published copy faults read. */
  memslots: readonly Memslot[];
  memslotsGeneration: number;
  region: MemoryRegionUpdate | null;
  /** synchronize_srcu(&kvm->srcu) in progress: the vCPU threads that have not reported a quiescent state (srcu.ts). */
  srcuWaiting: readonly number[];
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;
const TDX = 'tdx';
const MMU = 'kvm.mmu';
const leaf = (c: KvmVmContext) => c.zap!.leaves[c.zap!.at]!;
/** The zapped leaf's private GPA | TDX level, as the remove hook passes it (RCX, §0.2). */
const leafPageInfo = (c: KvmVmContext) => makePageInfo(gfnToGpa(leaf(c).gfn), pgLevelToTdxLevel(leaf(c).pgLevel));
const leafPa = (c: KvmVmContext) => spteToPfn(leaf(c).spte) << 12n;
const reclaimPa = (c: KvmVmContext) => c.destroy!.reclaim[c.destroy!.at]!;
const seamcallStatus = (ev: MachineEvent) => (ev.msg.payload as Gprs).RAX!;
/** td_tdcs_exec_read64: R8 on success; an error is only logged and the field reads as 0. */
const mngRdValue = (ev: MachineEvent) => (seamcallStatus(ev) === TDX_SUCCESS ? ((ev.msg.payload as Gprs).R8 ?? 0n) : 0n);

/** Which root a scan covers and the GFNs: an attribute change's side, or a guest_memfd's whole range. */
function scanRange(c: KvmVmContext): { root: 'mirror' | 'direct'; gfnStart: bigint; gfnEnd: bigint } {
  if (c.punch !== undefined) return { root: 'mirror', gfnStart: c.punch.gfnStart, gfnEnd: c.punch.gfnEnd };
  if (c.region?.flush) return c.region.flush;
  if (c.gmemClosing !== null) {
    const g = c.gmem.find((f) => f.slot === c.gmemClosing)!;
    return { root: 'mirror', gfnStart: g.gfnStart, gfnEnd: g.gfnEnd };
  }
  const a = c.attrs!;
  const toPrivate = (a.attributes & BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE)) !== 0n;
  return { root: toPrivate ? 'direct' : 'mirror', gfnStart: gpaToGfn(a.address), gfnEnd: gpaToGfn(a.address + a.size) };
}

/** Take mmu_lock for write, then list the leaves to zap (TDP_LEAF_SCAN); the zap loop starts at `nextLeaf`. */
const LOCKED_LEAF_SCAN = {
  locking: { entry: 'lockWrite', on: { MMU_LOCK_ACQUIRED: 'scanning' } },
  scanning: { entry: 'leafScan', on: { TDP_LEAF_SCAN_RESULT: { target: 'nextLeaf', actions: 'recordLeaves' } } },
} as const;

/**
 * The remove hook for one private leaf (tdx_sept_remove_private_spte, §6.iv step 4, §7.4), under write
 * mmu_lock: the SPTE goes non-present, BLOCK → TRACK → every vCPU out of guest mode → REMOVE, then each
 * 4K page's cache lines are written back and the page cleared; `next` is where the zap loop continues.
 */
function privateLeafZap(next: string) {
  return {
    initial: 'writingSpte',
    states: {
      writingSpte: { entry: 'zapSpte', always: 'blocking' },
      ...noVcpus('kvmVm', 'blocking', 'TDH.MEM.RANGE.BLOCK', 'block', 'blocked'),
      /** Policy trackBeforeRemove off: REMOVE right after BLOCK, as v9 of the TDX series did. */
      blocked: { always: [{ guard: 'trackBeforeRemove', target: 'tracking' }, { target: 'removing' }] },
      ...noVcpus('kvmVm', 'tracking', 'TDH.MEM.TRACK', 'track', 'tracked'),
      /** tdx_track: after TRACK, wait until every vCPU has left the epoch it entered in (policy kickAfterTrack). */
      tracked: { always: [{ guard: 'kickAfterTrack', target: 'kicking' }, { target: 'removing' }] },
      kicking: kicking('removing'),
      ...noVcpus('kvmVm', 'removing', 'TDH.MEM.PAGE.REMOVE', 'remove', 'writingBack'),
      writingBack: {
        entry: 'wbinvd',
        on: {
          'TDH.PHYMEM.PAGE.WBINVD': [
            { guard: and(['seamcallOk', 'moreWbinvd']), target: 'writingBack', reenter: true, actions: 'nextWbinvd' },
            { guard: 'seamcallOk', target: 'clearing' },
            { target: '#kvmVm.vmDead', actions: 'kvmBugSeamcall' },
          ],
        },
      },
      clearing: {
        entry: 'clearPage',
        on: { MEM_DONE: { target: next, actions: 'nextLeaf' } },
      },
    },
  } as const;
}

/** One kvm-call to each vCPU in turn (kvm_for_each_vcpu), waiting for each; a failure is a KVM_BUG_ON. */
function eachVcpu(state: string, issue: 'flushVp' | 'vcpuFree', call: 'tdx_flush_vp' | 'tdx_vcpu_free', next: string) {
  return {
    entry: issue,
    on: {
      [call]: [
        { guard: 'callFailed', target: '#kvmVm.vmDead', actions: 'vcpuCallFailed' },
        { guard: 'moreVcpus', target: state, reenter: true, actions: 'nextVcpu' },
        { target: next },
      ],
    },
  } as const;
}

export const kvmVmMachine = setup({
  types: {
    context: {} as KvmVmContext,
    events: {} as MachineEvent,
    input: {} as KvmVmInput,
    emitted: {} as Emitted,
  },
  guards: {
    notInitialized: ({ context }) => context.tdState !== 'TD_STATE_INITIALIZED',
    seamcallOk: ({ event }) => (event.msg.payload as Gprs).RAX === TDX_SUCCESS,
    moreTdcs: ({ context }) => context.tdcsAdded < context.tdcs.length,
    seamcallBusy: ({ event }) => isOperandBusy((event.msg.payload as Gprs).RAX!),
    retried: ({ context }) => context.zap!.retried,
    kickRetryOnBusy: ({ context }) => context.policies.zapBusyKickRetry,
    blindRetry: ({ context, event }, params: { call: HostSeamcall }) => blindRetryable(params.call, seamcallStatus(event), context.zap!.blindRetries),
    kickAfterTrack: ({ context }) => context.policies.kickAfterTrack,
    trackBeforeRemove: ({ context }) => context.policies.trackBeforeRemove,
    acksDone: ({ context }) => context.kickWaiting === 0,
    moreLeaves: ({ context }) => context.zap!.at < context.zap!.leaves.length,
    zappingMirror: ({ context }) => context.zap!.root === 'mirror',
    /** tdp_mmu_zap_leafs reported a flush: it zapped a leaf, private or shared. */
    zappedAny: ({ context }) => context.zap!.leaves.length > 0,
    /** A huge leaf that reaches outside the range being invalidated (a whole one is zapped like a 4K one). */
    partialHugeLeaf: ({ context }) => {
      const l = leaf(context);
      return l.pgLevel > 1 && (l.gfn < context.zap!.gfnStart || l.gfn + pagesOfPgLevel(l.pgLevel) > context.zap!.gfnEnd);
    },
    moreWbinvd: ({ context }) => BigInt(context.zap!.wbinvdAt + 1) < pagesOfPgLevel(leaf(context).pgLevel),
    lastRef: ({ context }) => context.refs === 1,
    fallocateRefused: ({ context, event }) => {
      const f = payloadOf(event, 'syscall', 'fallocate');
      const g = context.gmem.find((x) => x.slot === f.slot)!;
      return fallocateError(f.mode, f.offset, f.len, (g.gfnEnd - g.gfnStart) * PAGE_SIZE) !== null;
    },
    punchHoleRequested: ({ event }) => (payloadOf(event, 'syscall', 'fallocate').mode & FALLOC_FL_PUNCH_HOLE) !== 0,
    moreVcpus: ({ context }) => context.destroy!.vcpu + 1 < context.vcpus,
    callFailed: ({ event }) => (event.msg.payload as { err: bigint }).err !== TDX_SUCCESS,
    /** TDX_FLUSHVP_NOT_DONE: tdx_mmu_release_hkid gives up quietly and the HKID stays assigned (leaked). */
    flushVpNotDone: ({ event }) => seamcallStatus(event) === TDX_FLUSHVP_NOT_DONE,
    cacheWbOk: ({ event }) => seamcallStatus(event) === TDX_SUCCESS || seamcallStatus(event) === TDX_NO_HKID_READY_TO_WBCACHE,
    mirrorLeavesLeft: ({ event }) => payloadOf(event, 'mmu', 'TDP_FREE_ROOTS_RESULT').mirrorLeaves > 0,
    moreToReclaim: ({ context }) => context.destroy!.at < context.destroy!.reclaim.length,
    reclaimingTdr: ({ context }) => reclaimPa(context) === context.tdr,
    regionRefused: ({ context }) => context.region!.decision.ret !== 0,
    regionNoChange: ({ context }) => 'change' in context.region!.decision && context.region!.decision.change === 'none',
    regionDeleteOrMove: ({ context }) => 'change' in context.region!.decision && (context.region!.decision.change === 'KVM_MR_DELETE' || context.region!.decision.change === 'KVM_MR_MOVE'),
    gracePeriodDone: ({ context }) => context.srcuWaiting.length === 0,
    memslotZappedAny: ({ context }) => context.region!.flush!.zapped || context.zap!.leaves.length > 0,
  },
  actions: {
    mngCreate: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.CREATE', { RCX: context.tdr, RDX: BigInt(context.hkid) })),
    /** One online CPU per package; the model has one package (§5b.3 step 2). */
    keyConfig: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.KEY.CONFIG', { RCX: context.tdr })),
    mngAddcx: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.ADDCX', { RCX: context.tdcs[context.tdcsAdded]!, RDX: context.tdr })),
    countTdcs: assign({ tdcsAdded: ({ context }) => context.tdcsAdded + 1 }),
    mngInit: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.INIT', { RCX: context.tdr, RDX: context.tdParamsPa, tdParams: context.tdParams })),
    readTscOffset: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.RD', { RCX: context.tdr, RDX: TDCS_EXEC_TSC_OFFSET })),
    readTscMultiplier: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.RD', { RCX: context.tdr, RDX: TDCS_EXEC_TSC_MULTIPLIER })),
    recordTscOffset: assign({ tscOffset: ({ event }) => mngRdValue(event) }),
    recordTscMultiplier: assign({ tscMultiplier: ({ event }) => mngRdValue(event) }),
    initialized: assign({ tdState: () => 'TD_STATE_INITIALIZED' as const }),
    initVmDone: emit(() => out('vmm', 'ioctl-return', 'KVM_TDX_INIT_VM', { ret: 0 })),
    mrFinalize: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MR.FINALIZE', { RCX: context.tdr })),
    runnable: assign({ tdState: () => 'TD_STATE_RUNNABLE' as const }),
    finalizeDone: emit(({ context }) => out(context.finalizeCaller ?? 'vmm', 'ioctl-return', 'KVM_TDX_FINALIZE_VM', { ret: 0 })),
    noteFinalizeCaller: enqueueActions(({ event, enqueue }) => {
      if (event.msg.from !== 'vmm') enqueue.assign({ finalizeCaller: event.msg.from });
    }),
    recordError: assign({ error: ({ event }) => `${event.type} returned ${tdxStatusName((event.msg.payload as Gprs).RAX!)}` }),
    initVmFailed: emit(() => out('vmm', 'ioctl-return', 'KVM_TDX_INIT_VM', { ret: EIO })),
    finalizeFailed: emit(({ context }) => out(context.finalizeCaller ?? 'vmm', 'ioctl-return', 'KVM_TDX_FINALIZE_VM', { ret: EIO })),
    finalizeInvalid: emit(({ event }) => out(event.msg.from, 'ioctl-return', 'KVM_TDX_FINALIZE_VM', { ret: EINVAL })),
    // The ioctl returns to the thread that issued it; `caller` is kept only for a host thread other than the VMM's main one.
    beginAttrs: assign({ attrs: ({ event }) => ({ ...payloadOf(event, 'ioctl', 'KVM_SET_MEMORY_ATTRIBUTES'), ...(event.msg.from === 'vmm' ? {} : { caller: event.msg.from }) }) }),
    /**
     * kvm_vm_ioctl_create_vcpu, its checks under kvm->lock (the caller holds it, kvmLocks.ts): -EINVAL once
     * created_vcpus reached max_vcpus, then the vendor pre-create check, for a TD -EIO unless the TD is
     * INITIALIZED (after KVM_TDX_INIT_VM, before KVM_TDX_FINALIZE_VM: tdx.c). The vCPU's own setup
     * (KVM_TDX_INIT_VCPU) is a separate ioctl. The model's vCPU threads exist from the start; this is the
     * count and the errors.
     */
    createVcpu: enqueueActions(({ context, event, enqueue }) => {
      const { vcpu } = payloadOf(event, 'ioctl', 'KVM_CREATE_VCPU');
      const created = context.createdVcpus ?? context.vcpus;
      const max = context.tdParams.maxVcpus ?? context.vcpus;
      const ret = created >= max ? EINVAL : context.tdState !== 'TD_STATE_INITIALIZED' ? EIO : 0;
      if (ret === 0) enqueue.assign({ createdVcpus: created + 1 });
      enqueue.emit(out(event.msg.from, 'ioctl-return', 'KVM_CREATE_VCPU', { vcpu, ret }));
    }),
    /** kvm_unmap_gfn_range with the filter of the side that loses the range: the mirror root if it becomes shared. */
    leafScan: emit(({ context }) => {
      const r = scanRange(context);
      if (context.region?.flush) return out(MMU, 'mmu', 'TDP_LEAF_SCAN', { vcpu: -1, root: r.root, gfnStart: r.gfnStart, gfnEnd: r.gfnEnd, invalidate: false });
      return out(MMU, 'mmu', 'TDP_LEAF_SCAN', { vcpu: -1, root: r.root, gfnStart: r.gfnStart, gfnEnd: r.gfnEnd });
    }),
    recordLeaves: assign({
      zap: ({ context, event }) => {
        const r = payloadOf(event, 'mmu', 'TDP_LEAF_SCAN_RESULT');
        const range = scanRange(context);
        return { root: r.root, gfnStart: range.gfnStart, gfnEnd: range.gfnEnd, leaves: r.leaves, at: 0, retried: false, blindRetries: 0, wbinvdAt: 0 };
      },
    }),
    /**
     * tdp_mmu_set_spte under write mmu_lock: the leaf becomes SHADOW_NONPRESENT_VALUE before any hook runs
     * (a shared leaf 0 with policy sharedSuppressVe off, the value before TDX).
     */
    zapSpte: emit(({ context }) => {
      const l = leaf(context);
      const nonPresent = context.zap!.root === 'direct' ? sharedNonPresentSpte(context.policies.sharedSuppressVe) : SHADOW_NONPRESENT_VALUE;
      return out(MMU, 'mmu', 'SPTE_WRITE', { vcpu: -1, root: context.zap!.root, gfn: l.gfn, pgLevel: l.pgLevel, tablePfn: l.tablePfn, index: l.index, oldSpte: l.spte, newSpte: nonPresent, childPfn: null });
    }),
    nextLeaf: assign({ zap: ({ context }) => ({ ...context.zap!, at: context.zap!.at + 1, retried: false, blindRetries: 0, wbinvdAt: 0 }) }),
    nextWbinvd: assign({ zap: ({ context }) => ({ ...context.zap!, wbinvdAt: context.zap!.wbinvdAt + 1 }) }),
    block: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MEM.RANGE.BLOCK', { RCX: leafPageInfo(context), RDX: context.tdr })),
    track: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MEM.TRACK', { RCX: context.tdr })),
    remove: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MEM.PAGE.REMOVE', { RCX: leafPageInfo(context), RDX: context.tdr })),
    /** One SEAMCALL per 4K page, a huge leaf's too (the huge-page series loops over the folio). */
    wbinvd: emit(({ context }) => {
      const pa = leafPa(context) + BigInt(context.zap!.wbinvdAt) * PAGE_SIZE;
      return out(TDX, 'seamcall', 'TDH.PHYMEM.PAGE.WBINVD', { RCX: pa | (BigInt(context.hkid) << BigInt(context.hkidShift)) });
    }),
    /** The page goes back to the host: cleared with KeyID 0 (MOVDIR64B), so no TD-key line survives. */
    clearPage: emit(({ context }) => out('hw.mem', 'mem', 'MEM_ZERO', { pa: leafPa(context), bytes: pageSizeOfPgLevel(leaf(context).pgLevel), keyid: 0, tag: 'kvm.vm' })),
    markRetried: assign({ zap: ({ context }) => ({ ...context.zap!, retried: true }) }),
    clearRetried: assign({ zap: ({ context }) => ({ ...context.zap!, retried: false, blindRetries: 0 }) }),
    /** Only BLOCK's blind retries are bounded (and so counted); TRACK and REMOVE were repeated for as long as it took. */
    countBlindRetry: assign({ zap: ({ context, event }) => (event.type === 'TDH.MEM.RANGE.BLOCK' ? { ...context.zap!, blindRetries: context.zap!.blindRetries + 1 } : context.zap!) }),
    /** kvm_make_all_cpus_request: every vCPU, each acknowledging when it is (or has been forced) out of guest mode. */
    kickAll: enqueueActions(({ context, enqueue }, params: { waitForSeptZap: boolean }) => {
      const msgs = allCpusRequest('KVM_REQ_OUTSIDE_GUEST_MODE', context.vcpus, null, params.waitForSeptZap);
      enqueue.assign({ kickWaiting: msgs.length });
      for (const m of msgs) enqueue.emit(m);
    }),
    /**
     * kvm_flush_remote_tlbs after leaves were zapped, shared or private (KVM_REQ_TLB_FLUSH to every vCPU,
     * waiting for those in guest mode); each vCPU flushes its CPU's TLB before its next entry.
     */
    flushRemoteTlbs: enqueueActions(({ context, enqueue }) => {
      const msgs = allCpusRequest('KVM_REQ_TLB_FLUSH', context.vcpus);
      enqueue.assign({ kickWaiting: msgs.length });
      for (const m of msgs) enqueue.emit(m);
    }),
    countAck: assign({ kickWaiting: ({ context }) => context.kickWaiting - 1 }),
    endSeptZapWait: enqueueActions(({ context, enqueue }) => {
      if (context.zap!.retried) for (const m of allCpusRequest('SEPT_ZAP_DONE', context.vcpus)) enqueue.emit(m);
    }),
    kvmBugSeamcall: assign({
      error: ({ context, event }) =>
        `KVM_BUG_ON: ${event.type} for GPA ${hex(gfnToGpa(leaf(context).gfn))} returned ${tdxStatusName((event.msg.payload as Gprs).RAX!)}${context.zap!.retried ? ' after all vCPUs were kicked' : ''}${context.zap!.blindRetries > 0 ? ` after ${context.zap!.blindRetries} retries` : ''} (§7.3)`,
    }),
    // ---- Teardown (§5b.4) ----
    noteClose: assign({ closing: ({ event }) => event.type as 'kvm-vm' | 'kvm-vcpu' | 'kvm-gmem' }),
    closeReturn: enqueueActions(({ context, enqueue }) => {
      enqueue.emit(out('vmm', 'close-return', context.closing!, { ret: 0 }));
      enqueue.assign({ closing: null });
    }),
    putRef: assign({ refs: ({ context }) => context.refs - 1 }),
    beginGmemRelease: assign({ gmemClosing: ({ event }) => payloadOf(event, 'close', 'kvm-gmem').slot }),
    endGmemRelease: assign({ gmemClosing: () => null, zap: () => null }),
    beginDestroy: assign({ destroy: () => ({ vcpu: 0, reclaim: [], at: 0 }) }),
    nextVcpu: assign({ destroy: ({ context }) => ({ ...context.destroy!, vcpu: context.destroy!.vcpu + 1 }) }),
    firstVcpu: assign({ destroy: ({ context }) => ({ ...context.destroy!, vcpu: 0 }) }),
    /** smp_call_function_single(vcpu->cpu, tdx_flush_vp): the vCPU's own thread/CPU does it. */
    flushVp: emit(({ context }) => out(`kvm.vcpu${context.destroy!.vcpu}`, 'kvm-call', 'tdx_flush_vp', { vcpu: context.destroy!.vcpu })),
    vpFlushDone: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.VPFLUSHDONE', { RCX: context.tdr })),
    /** One CPU per package, and the model has one package; RCX 0 = start (§4.1). */
    cacheWb: emit(() => out(TDX, 'seamcall', 'TDH.PHYMEM.CACHE.WB', { RCX: TDH_PHYMEM_CACHEWB_START_CMD })),
    keyFreeid: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.KEY.FREEID', { RCX: context.tdr })),
    /** tdx_hkid_free: the HKID goes back to the kernel's pool; KVM forgets it. */
    hkidFreed: assign({ hkid: () => -1 }),
    vcpuFree: emit(({ context }) => out(`kvm.vcpu${context.destroy!.vcpu}`, 'kvm-call', 'tdx_vcpu_free', { vcpu: context.destroy!.vcpu })),
    freeRoots: emit(() => out(MMU, 'mmu', 'TDP_FREE_ROOTS', { vcpu: -1 })),
    /** tdx_sept_free_private_spt for each S-EPT page, then tdx_reclaim_td_control_pages: TDCS pages, the TDR. */
    planReclaim: assign({
      destroy: ({ context, event }) => {
        const ext = payloadOf(event, 'mmu', 'TDP_FREE_ROOTS_RESULT').externalPages.map((p) => BigInt(p.externalPfn) << 12n);
        return { ...context.destroy!, reclaim: [...ext, ...context.tdcs, context.tdr], at: 0 };
      },
    }),
    reclaimPage: emit(({ context }) => out(TDX, 'seamcall', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: reclaimPa(context) })),
    /** tdx_clear_page: MOVDIR64B with KeyID 0 before the page goes back to the kernel. */
    clearReclaimed: emit(({ context }) => out('hw.mem', 'mem', 'MEM_ZERO', { pa: reclaimPa(context), bytes: PAGE_SIZE, keyid: 0, tag: 'kvm.vm' })),
    nextReclaim: assign({ destroy: ({ context }) => ({ ...context.destroy!, at: context.destroy!.at + 1 }) }),
    /** tdh_phymem_page_wbinvd_tdr: the TDR's lines were written with the global KeyID. */
    wbinvdTdr: emit(({ context }) => out(TDX, 'seamcall', 'TDH.PHYMEM.PAGE.WBINVD', { RCX: context.tdr | (BigInt(context.globalKeyid) << BigInt(context.hkidShift)) })),
    destroyed: assign({ tdState: () => 'TD_STATE_UNINITIALIZED' as const, destroy: () => null }),
    teardownBug: assign({ error: ({ event }) => `KVM_BUG_ON: ${event.type} returned ${tdxStatusName(seamcallStatus(event))} during VM teardown (§5b.4)` }),
    hkidLeaked: assign({ error: ({ context, event }) => `${event.type} returned ${tdxStatusName(seamcallStatus(event))}: HKID ${context.hkid} is leaked, and with it every page of the TD (§5b.4 step 2)` }),
    vcpuCallFailed: assign({
      error: ({ event }) => {
        const r = event.msg.payload as { vcpu: number; err: bigint };
        return `KVM_BUG_ON: ${event.type} for vCPU ${r.vcpu} failed with ${tdxStatusName(r.err)} (§5b.4)`;
      },
    }),
    mirrorLeafAfterHkid: assign({
      error: ({ event }) =>
        `KVM_BUG_ON: ${payloadOf(event, 'mmu', 'TDP_FREE_ROOTS_RESULT').mirrorLeaves} private leaf SPTE(s) still mapped when the mirror root is freed after the HKID was released; guest_memfd release should have zapped them (§5b.4)`,
    }),
    reclaimLeaked: assign({ error: ({ context, event }) => `TDH.PHYMEM.PAGE.RECLAIM of ${hex(reclaimPa(context))} returned ${tdxStatusName(seamcallStatus(event))}: the page is leaked (§5b.4)` }),
    reportDeath: emit(({ context }): Emitted => ({ type: 'tdxsim.failure', reason: 'KVM bug', detail: `kvm.vm: ${context.error}` })),
    endZap: assign({ zap: () => null }),
    /** kvm->arch.pre_fault_allowed: tdx_td_finalize sets it right after the TD becomes RUNNABLE. */
    answerPreFaultAllowed: emit(({ context, event }) => {
      const q = payloadOf(event, 'kvm-call', 'pre_fault_allowed');
      return out(event.msg.from, 'kvm-call-return', 'pre_fault_allowed', { vcpu: q.vcpu, allowed: context.tdState === 'TD_STATE_RUNNABLE' });
    }),
    // ---- guest_memfd fallocate / ftruncate (guestMemfd.ts) ----
    fallocateFailed: emit(({ context, event }) => {
      const f = payloadOf(event, 'syscall', 'fallocate');
      const g = context.gmem.find((x) => x.slot === f.slot)!;
      return out('vmm', 'syscall-return', 'fallocate', { ret: fallocateError(f.mode, f.offset, f.len, (g.gfnEnd - g.gfnStart) * PAGE_SIZE)! });
    }),
    fallocateDone: emit(() => out('vmm', 'syscall-return', 'fallocate', { ret: 0 })),
    ftruncateRefused: emit(() => out('vmm', 'syscall-return', 'ftruncate', { ret: FTRUNCATE_RET })),
    /** filemap_invalidate_lock, then the range the file's binding covers. */
    beginPunch: assign({
      punch: ({ context, event }) => {
        const f = payloadOf(event, 'syscall', 'fallocate');
        const g = context.gmem.find((x) => x.slot === f.slot)!;
        const r = punchedGfns(g.gfnStart, g.gfnEnd - g.gfnStart, f.offset, f.len);
        return { slot: f.slot, gfnStart: r.start, gfnEnd: r.end };
      },
    }),
    truncateRange: emit(({ context }) => out(MMU, 'mmu', 'GMEM_TRUNCATE_RANGE', { vcpu: -1, gfnStart: context.punch!.gfnStart, gfnEnd: context.punch!.gfnEnd })),
    /** filemap_invalidate_unlock; fallocate returns 0. */
    endPunch: enqueueActions(({ enqueue }) => {
      enqueue.assign({ punch: () => undefined, zap: () => null });
      enqueue.emit(out('vmm', 'syscall-return', 'fallocate', { ret: 0 }));
    }),
    reportModelLimit: emit(({ context }): Emitted => ({
      type: 'tdxsim.failure',
      reason: 'model limit',
      detail: `kvm.vm: converting part of the 2M private mapping at ${hex(gfnToGpa(leaf(context).gfn))} needs the huge-page series' split before the zap, which is not modelled yet`,
    })),
    lockWrite: emit(() => out(MMU, 'mmu', 'MMU_LOCK_WRITE', { vcpu: -1 })),
    setAttributes: emit(({ context }) => {
      const a = context.attrs!;
      return out(MMU, 'mmu', 'SET_ATTRIBUTES', { vcpu: -1, gfnStart: gpaToGfn(a.address), gfnEnd: gpaToGfn(a.address + a.size), private: (a.attributes & BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE)) !== 0n });
    }),
    unlockWrite: emit(() => out(MMU, 'mmu', 'MMU_UNLOCK', { vcpu: -1, mode: 'write' })),
    invalidateEnd: emit(() => out(MMU, 'mmu', 'MMU_INVALIDATE_END', { vcpu: -1 })),
    attrsDone: emit(({ context }) => out(context.attrs?.caller ?? 'vmm', 'ioctl-return', 'KVM_SET_MEMORY_ATTRIBUTES', { ret: 0 })),
    endAttrs: assign({ attrs: () => null }),
    // ---- KVM_SET_USER_MEMORY_REGION2 (setMemoryRegion.ts; slots_lock held throughout: one host thread issues it) ----
    beginMemoryRegion: assign({
      region: ({ context, event }) => {
        const r = payloadOf(event, 'ioctl', 'KVM_SET_USER_MEMORY_REGION2');
        const gpaw = (context.tdParams.configFlags & TDX_CONFIG_FLAGS_MAX_GPAW) !== 0n ? 52 : 48;
        const req = { slot: r.slot, flags: r.flags, guestPhysAddr: r.guest_phys_addr, memorySize: r.memory_size, guestMemfdOffset: r.guest_memfd_offset };
        return { decision: decideMemoryRegion(context.memslots, req, { td: true, gfnDirectBits: gfnDirectBits(gpaw) }), flush: null };
      },
    }),
    /** kvm_invalidate_memslot: the old slot's copy, flagged KVM_MEMSLOT_INVALID, is swapped in for every reader. */
    publishInvalidSlot: enqueueActions(({ context, enqueue }) => {
      const d = context.region!.decision as Extract<MemoryRegionDecision, { change: unknown }>;
      const generation = context.memslotsGeneration + 1;
      enqueue.assign({ memslotsGeneration: generation });
      enqueue.emit(out(MMU, 'mmu', 'MEMSLOTS_SWAP', { vcpu: -1, memslots: invalidatedMemslots(context.memslots, d.old!), generation }));
    }),
    /** kvm_activate_memslot: the final set (the slot gone, moved, added or with its new flags). */
    publishFinalSlots: enqueueActions(({ context, enqueue }) => {
      const d = context.region!.decision as Extract<MemoryRegionDecision, { change: unknown }>;
      const memslots = applyMemslotChange(context.memslots, d);
      const generation = context.memslotsGeneration + 1;
      enqueue.assign({ memslots, memslotsGeneration: generation });
      enqueue.emit(out(MMU, 'mmu', 'MEMSLOTS_SWAP', { vcpu: -1, memslots, generation }));
    }),
    /** synchronize_srcu(&kvm->srcu) inside kvm_swap_active_memslots: every vCPU thread must report. */
    synchronizeSrcu: enqueueActions(({ context, enqueue }) => {
      const readers = gracePeriodReaders(context.vcpus);
      enqueue.assign({ srcuWaiting: readers });
      for (const v of readers) enqueue.emit(out(`kvm.vcpu${v}`, 'srcu', 'SYNCHRONIZE_SRCU', { vcpu: v }));
    }),
    noteQuiescent: assign({ srcuWaiting: ({ context, event }) => context.srcuWaiting.filter((v) => v !== payloadOf(event, 'srcu', 'SRCU_QUIESCENT').vcpu) }),
    /** kvm_arch_flush_shadow_memslot → kvm_mmu_zap_memslot: the old slot's GFNs, mirror root first, then the direct root. */
    beginMemslotFlush: assign({
      region: ({ context }) => {
        const d = context.region!.decision as Extract<MemoryRegionDecision, { change: unknown }>;
        const old = context.memslots[d.old!]!;
        return { ...context.region!, flush: { root: 'mirror' as const, gfnStart: old.baseGfn, gfnEnd: old.baseGfn + old.npages, zapped: false } };
      },
    }),
    memslotFlushDirect: assign({
      region: ({ context }) => ({ ...context.region!, flush: { ...context.region!.flush!, root: 'direct' as const, zapped: context.region!.flush!.zapped || context.zap!.leaves.length > 0 } }),
    }),
    endMemslotFlush: assign({ region: ({ context }) => ({ ...context.region!, flush: null }), zap: () => null }),
    memoryRegionDone: emit(({ context }) => out('vmm', 'ioctl-return', 'KVM_SET_USER_MEMORY_REGION2', { ret: context.region!.decision.ret })),
    endMemoryRegion: assign({ region: () => null }),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'kvmVm',
  context: ({ input }) => ({
    ...input,
    tdState: 'TD_STATE_UNINITIALIZED',
    tdcsAdded: 0,
    tscOffset: null,
    tscMultiplier: null,
    attrs: null,
    zap: null,
    kickWaiting: 0,
    refs: 1 + input.vcpus + input.gmem.length,
    gmemClosing: null,
    closing: null,
    destroy: null,
    error: null,
    memslots: input.memslots ?? [],
    memslotsGeneration: input.memslotsGeneration ?? 0,
    region: null,
    srcuWaiting: [],
  }),
  initial: 'idle',
  // KVM_CREATE_VCPU runs on its own thread, next to whatever other VM ioctl is in progress.
  on: { KVM_CREATE_VCPU: { actions: 'createVcpu' }, pre_fault_allowed: { actions: 'answerPreFaultAllowed' }, '*': { actions: 'unexpected' } },
  states: {
    idle: {
      on: {
        KVM_TDX_INIT_VM: 'initVm',
        // tdx_td_finalize: -EINVAL unless the TD is INITIALIZED (no HKID yet, or RUNNABLE already).
        KVM_TDX_FINALIZE_VM: [{ guard: 'notInitialized', actions: 'finalizeInvalid' }, { target: 'finalizing', actions: 'noteFinalizeCaller' }],
        KVM_SET_MEMORY_ATTRIBUTES: { target: 'settingAttributes', actions: 'beginAttrs' },
        KVM_SET_USER_MEMORY_REGION2: { target: 'settingMemoryRegion', actions: 'beginMemoryRegion' },
        'kvm-vm': [{ guard: 'lastRef', target: 'destroying', actions: 'noteClose' }, { actions: ['noteClose', 'putRef', 'closeReturn'] }],
        'kvm-vcpu': [{ guard: 'lastRef', target: 'destroying', actions: 'noteClose' }, { actions: ['noteClose', 'putRef', 'closeReturn'] }],
        'kvm-gmem': { target: 'releasingGmem', actions: ['noteClose', 'beginGmemRelease'] },
        fallocate: [
          { guard: 'fallocateRefused', actions: 'fallocateFailed' },
          { guard: 'punchHoleRequested', target: 'punchingHole', actions: 'beginPunch' },
          // Preallocation inside the file: the model hands out guest_memfd pages lazily, so nothing changes.
          { actions: 'fallocateDone' },
        ],
        ftruncate: { actions: 'ftruncateRefused' },
      },
    },
    /** __tdx_td_init: MNG.CREATE, KEY.CONFIG, MNG.ADDCX per TDCS page, MNG.INIT; then tdx_td_init's two MNG.RDs (§5b.3 step 2). */
    initVm: {
      initial: 'creating',
      states: {
        creating: { entry: 'mngCreate', on: { 'TDH.MNG.CREATE': [{ guard: 'seamcallOk', target: 'configuringKey' }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] } },
        configuringKey: { entry: 'keyConfig', on: { 'TDH.MNG.KEY.CONFIG': [{ guard: 'seamcallOk', target: 'nextTdcs' }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] } },
        nextTdcs: { always: [{ guard: 'moreTdcs', target: 'addingTdcs' }, { target: 'initializing' }] },
        addingTdcs: { entry: 'mngAddcx', on: { 'TDH.MNG.ADDCX': [{ guard: 'seamcallOk', target: 'nextTdcs', actions: 'countTdcs' }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] } },
        initializing: {
          entry: 'mngInit',
          on: { 'TDH.MNG.INIT': [{ guard: 'seamcallOk', target: 'readingTscOffset' }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] },
        },
        /** tdx_td_init: td_tdcs_exec_read64 of the TSC offset, then the multiplier; a failed read is logged and reads as 0. */
        readingTscOffset: { entry: 'readTscOffset', on: { 'TDH.MNG.RD': { target: 'readingTscMultiplier', actions: 'recordTscOffset' } } },
        readingTscMultiplier: { entry: 'readTscMultiplier', on: { 'TDH.MNG.RD': { target: '#kvmVm.idle', actions: ['recordTscMultiplier', 'initialized', 'initVmDone'] } } },
      },
    },
    initVmFailed: { always: { target: 'idle', actions: 'initVmFailed' } },
    /** tdx_td_finalize: TDH.MR.FINALIZE → TD_STATE_RUNNABLE (§5b.3 step 5). */
    finalizing: {
      entry: 'mrFinalize',
      on: { 'TDH.MR.FINALIZE': [{ guard: 'seamcallOk', target: 'idle', actions: ['runnable', 'finalizeDone'] }, { target: 'idle', actions: ['recordError', 'finalizeFailed'] }] },
    },
    /**
     * kvm_vm_set_mem_attributes (§6.iv step 4): the pre-set section under write mmu_lock (invalidation
     * begun, the losing side's leaves zapped, remote TLBs flushed), the attribute store without the lock,
     * then the post-set section under the lock again (kvm_mmu_invalidate_end). Each is kvm_handle_gfn_range
     * taking and dropping the lock, so faults on other vCPUs run in between.
     */
    settingAttributes: {
      initial: 'locking',
      states: {
        ...LOCKED_LEAF_SCAN,
        nextLeaf: {
          always: [
            // The huge-page series splits a huge leaf crossing the range before zapping (§6.v); not modelled yet.
            { guard: and(['moreLeaves', 'zappingMirror', 'partialHugeLeaf']), target: '#kvmVm.modelLimit' },
            { guard: and(['moreLeaves', 'zappingMirror']), target: 'zappingPrivate' },
            { guard: 'moreLeaves', target: 'zappingShared' },
            { guard: 'zappedAny', target: 'flushing' },
            { target: 'storing', actions: 'unlockWrite' },
          ],
        },
        /** kvm_handle_gfn_range's flush_on_ret: kvm_flush_remote_tlbs, still under write mmu_lock. */
        flushing: {
          entry: 'flushRemoteTlbs',
          always: { guard: 'acksDone', target: 'storing', actions: 'unlockWrite' },
          on: { KVM_REQ_ACK: { actions: 'countAck' } },
        },
        /** A shared leaf: stored non-present before the flush below, so no CPU walks to the page after it. */
        zappingShared: { entry: 'zapSpte', on: { SPTE_WRITTEN: { target: 'nextLeaf', actions: 'nextLeaf' } } },
        zappingPrivate: privateLeafZap('#kvmVm.settingAttributes.nextLeaf'),
        /** The xarray store, between the two locked sections: a fault can take mmu_lock meanwhile. */
        storing: { entry: 'setAttributes', on: { SET_ATTRIBUTES_DONE: 'lockingPost' } },
        /** The post-set section: kvm_arch_post_set_memory_attributes and kvm_mmu_invalidate_end under write mmu_lock. */
        lockingPost: { entry: 'lockWrite', on: { MMU_LOCK_ACQUIRED: { target: '#kvmVm.idle', actions: ['invalidateEnd', 'unlockWrite', 'attrsDone', 'endAttrs', 'endZap'] } } },
      },
    },
    /**
     * kvm_set_memslot (virt/kvm/kvm_main.c). DELETE and MOVE first publish the old slot's copy flagged
     * KVM_MEMSLOT_INVALID and wait in synchronize_srcu, so every fault that may have found the valid slot
     * is over and every later one retries; then kvm_arch_flush_shadow_memslot zaps the slot's range in
     * both roots under write mmu_lock (private leaves through the same remove hook as a conversion:
     * BLOCK → TRACK → kick → REMOVE), flushes remote TLBs, and the final set is published, with a second
     * synchronize_srcu before the ioctl returns. CREATE and FLAGS_ONLY only publish and wait.
     */
    settingMemoryRegion: {
      initial: 'deciding',
      states: {
        deciding: {
          always: [
            { guard: 'regionRefused', target: '#kvmVm.idle', actions: ['memoryRegionDone', 'endMemoryRegion'] },
            { guard: 'regionNoChange', target: '#kvmVm.idle', actions: ['memoryRegionDone', 'endMemoryRegion'] },
            { guard: 'regionDeleteOrMove', target: 'invalidating' },
            { target: 'swapping' },
          ],
        },
        invalidating: { entry: 'publishInvalidSlot', on: { MEMSLOTS_SWAPPED: 'waitingForReaders' } },
        waitingForReaders: {
          entry: 'synchronizeSrcu',
          always: { guard: 'gracePeriodDone', target: 'zappingSlot', actions: 'beginMemslotFlush' },
          on: { SRCU_QUIESCENT: { actions: 'noteQuiescent' } },
        },
        zappingSlot: {
          initial: 'locking',
          states: {
            ...LOCKED_LEAF_SCAN,
            nextLeaf: {
              always: [
                { guard: and(['moreLeaves', 'zappingMirror', 'partialHugeLeaf']), target: '#kvmVm.modelLimit' },
                { guard: and(['moreLeaves', 'zappingMirror']), target: 'zappingPrivate' },
                { guard: 'moreLeaves', target: 'zappingShared' },
                // Still under the same write mmu_lock: the direct root's leaves of the slot next.
                { guard: 'zappingMirror', target: 'scanning', actions: 'memslotFlushDirect' },
                { guard: 'memslotZappedAny', target: 'flushing' },
                { target: '#kvmVm.settingMemoryRegion.swapping', actions: ['unlockWrite', 'endMemslotFlush'] },
              ],
            },
            flushing: {
              entry: 'flushRemoteTlbs',
              always: { guard: 'acksDone', target: '#kvmVm.settingMemoryRegion.swapping', actions: ['unlockWrite', 'endMemslotFlush'] },
              on: { KVM_REQ_ACK: { actions: 'countAck' } },
            },
            zappingShared: { entry: 'zapSpte', on: { SPTE_WRITTEN: { target: 'nextLeaf', actions: 'nextLeaf' } } },
            zappingPrivate: privateLeafZap('#kvmVm.settingMemoryRegion.zappingSlot.nextLeaf'),
          },
        },
        swapping: { entry: 'publishFinalSlots', on: { MEMSLOTS_SWAPPED: 'waitingForReadersAgain' } },
        waitingForReadersAgain: {
          entry: 'synchronizeSrcu',
          always: { guard: 'gracePeriodDone', target: '#kvmVm.idle', actions: ['memoryRegionDone', 'endMemoryRegion'] },
          on: { SRCU_QUIESCENT: { actions: 'noteQuiescent' } },
        },
      },
    },
    /**
     * kvm_gmem_release: the whole file is invalidated, so every private leaf of its range goes, under write
     * mmu_lock and with the HKID still assigned (§5b.4 step 1). Then the file's reference on the VM is put.
     */
    releasingGmem: {
      initial: 'locking',
      states: {
        ...LOCKED_LEAF_SCAN,
        nextLeaf: {
          always: [
            { guard: 'moreLeaves', target: 'zappingPrivate' },
            { guard: 'zappedAny', target: 'flushing' },
            { target: 'ending', actions: 'unlockWrite' },
          ],
        },
        /** kvm_gmem_invalidate_begin flushes remote TLBs if it zapped anything, before it drops mmu_lock. */
        flushing: {
          entry: 'flushRemoteTlbs',
          always: { guard: 'acksDone', target: 'ending', actions: 'unlockWrite' },
          on: { KVM_REQ_ACK: { actions: 'countAck' } },
        },
        zappingPrivate: privateLeafZap('#kvmVm.releasingGmem.nextLeaf'),
        /** kvm_gmem_invalidate_end: mmu_lock for write again, kvm_mmu_invalidate_end. */
        ending: {
          entry: 'lockWrite',
          on: {
            MMU_LOCK_ACQUIRED: [
              { guard: 'lastRef', target: '#kvmVm.destroying', actions: ['invalidateEnd', 'unlockWrite', 'endGmemRelease'] },
              { target: '#kvmVm.idle', actions: ['invalidateEnd', 'unlockWrite', 'endGmemRelease', 'putRef', 'closeReturn'] },
            ],
          },
        },
      },
    },
    /**
     * kvm_gmem_punch_hole under the file's invalidate lock: kvm_gmem_invalidate_begin (write mmu_lock,
     * invalidation begun, the private leaves of the range zapped with the remove hook, remote TLBs flushed,
     * unlock), truncate_inode_pages_range without mmu_lock, then kvm_gmem_invalidate_end under write
     * mmu_lock. Faults on the range in between find the invalidation in progress and retry.
     */
    punchingHole: {
      initial: 'locking',
      states: {
        ...LOCKED_LEAF_SCAN,
        nextLeaf: {
          always: [
            { guard: and(['moreLeaves', 'partialHugeLeaf']), target: '#kvmVm.modelLimit' },
            { guard: 'moreLeaves', target: 'zappingPrivate' },
            { guard: 'zappedAny', target: 'flushing' },
            { target: 'truncating', actions: 'unlockWrite' },
          ],
        },
        flushing: {
          entry: 'flushRemoteTlbs',
          always: { guard: 'acksDone', target: 'truncating', actions: 'unlockWrite' },
          on: { KVM_REQ_ACK: { actions: 'countAck' } },
        },
        zappingPrivate: privateLeafZap('#kvmVm.punchingHole.nextLeaf'),
        truncating: { entry: 'truncateRange', on: { GMEM_TRUNCATE_DONE: 'ending' } },
        ending: { entry: 'lockWrite', on: { MMU_LOCK_ACQUIRED: { target: '#kvmVm.idle', actions: ['invalidateEnd', 'unlockWrite', 'endPunch'] } } },
      },
    },
    /** kvm_destroy_vm on the last reference (§5b.4 steps 2–5). */
    destroying: {
      entry: 'beginDestroy',
      initial: 'flushingVcpu',
      states: {
        /** tdx_mmu_release_hkid: every vCPU flushed on the CPU it is associated with. */
        flushingVcpu: eachVcpu('flushingVcpu', 'flushVp', 'tdx_flush_vp', 'flushDone'),
        flushDone: {
          entry: 'vpFlushDone',
          on: {
            'TDH.MNG.VPFLUSHDONE': [
              { guard: 'seamcallOk', target: 'writingBackCaches' },
              { guard: 'flushVpNotDone', target: '#kvmVm.vmDead', actions: 'hkidLeaked' },
              { target: '#kvmVm.vmDead', actions: 'teardownBug' },
            ],
          },
        },
        writingBackCaches: {
          entry: 'cacheWb',
          on: { 'TDH.PHYMEM.CACHE.WB': [{ guard: 'cacheWbOk', target: 'freeingKeyid' }, { target: '#kvmVm.vmDead', actions: 'hkidLeaked' }] },
        },
        freeingKeyid: {
          entry: 'keyFreeid',
          on: { 'TDH.MNG.KEY.FREEID': [{ guard: 'seamcallOk', target: 'freeingVcpu', actions: ['hkidFreed', 'firstVcpu'] }, { target: '#kvmVm.vmDead', actions: 'hkidLeaked' }] },
        },
        /** kvm_destroy_vcpus → tdx_vcpu_free, one vCPU after another. */
        freeingVcpu: eachVcpu('freeingVcpu', 'vcpuFree', 'tdx_vcpu_free', 'freeingRoots'),
        freeingRoots: {
          entry: 'freeRoots',
          on: { TDP_FREE_ROOTS_RESULT: [{ guard: 'mirrorLeavesLeft', target: '#kvmVm.vmDead', actions: 'mirrorLeafAfterHkid' }, { target: 'nextReclaim', actions: 'planReclaim' }] },
        },
        nextReclaim: {
          always: [{ guard: 'moreToReclaim', target: 'reclaiming' }, { target: '#kvmVm.destroyed', actions: 'destroyed' }],
        },
        /** tdx_reclaim_td_control_pages ends with the TDR: reclaimed, written back with the global KeyID, then cleared. */
        reclaiming: {
          entry: 'reclaimPage',
          on: {
            'TDH.PHYMEM.PAGE.RECLAIM': [
              { guard: and(['seamcallOk', 'reclaimingTdr']), target: 'writingBackTdr' },
              { guard: 'seamcallOk', target: 'clearing' },
              { target: '#kvmVm.vmDead', actions: 'reclaimLeaked' },
            ],
          },
        },
        clearing: { entry: 'clearReclaimed', on: { MEM_DONE: { target: 'nextReclaim', actions: 'nextReclaim' } } },
        writingBackTdr: {
          entry: 'wbinvdTdr',
          on: { 'TDH.PHYMEM.PAGE.WBINVD': [{ guard: 'seamcallOk', target: 'clearing' }, { target: '#kvmVm.vmDead', actions: 'teardownBug' }] },
        },
      },
    },
    /** The VM and its TD are gone; every page went back to the kernel cleared. */
    destroyed: { type: 'final', entry: 'closeReturn' },
    /** KVM_BUG_ON: the VM is unusable. */
    vmDead: { entry: 'reportDeath', type: 'final' },
    modelLimit: { entry: 'reportModelLimit', type: 'final' },
  },
});
