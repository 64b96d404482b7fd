/**
 * A KVM vCPU thread, one statechart composed from files named after their kernel counterparts:
 *
 * - vcpuRun.ts — the KVM_RUN loop for a TD (TDH.VP.ENTER, §5c.1) or a VMX guest (VMLAUNCH/VMRESUME), exit
 *   dispatch, halting, IPIs of kvm_make_all_cpus_request and signals, MMIO to and from userspace;
 * - mmuPageFault.ts — the TDP MMU fault path run by this thread against the kvm.mmu actor (EPT violation
 *   and misconfig, faultin, kvm_tdp_mmu_map with the mirror root's S-EPT hooks, local retry), over
 *   kvmPageFault.ts (struct kvm_page_fault);
 * - tdxCheckAcceptLevel.ts — the huge-page series' split of a huge mirror leaf before an ACCEPT's fault;
 * - tdvmcall.ts — handle_tdvmcall: MapGPA, #VE.RequestMMIO, Instruction.IO and HLT;
 * - tdxVcpuIoctl.ts — the TD build's vCPU ioctls, KVM_TDX_INIT_VCPU and KVM_TDX_INIT_MEM_REGION (§5b.3);
 * - tdxVcpuFree.ts — the vCPU's part of the teardown, tdx_flush_vp and tdx_vcpu_free (§5b.4);
 * - postedInterrupt.ts — the posted-interrupt descriptor and the sender's side of delivering to a TD;
 * - halt.ts — kvm_vcpu_halt for a TD: the wake-up check (tdx_protected_apic_has_interrupt) and blocking;
 * - nmi.ts — KVM_NMI and its injection through PEND_NMI;
 * - preFaultMemory.ts — KVM_PRE_FAULT_MEMORY, the fault path run for userspace without a guest exit.
 *
 * This file holds the thread's input and context, the state a vCPU is in outside KVM_RUN (where the
 * VMM's ioctls and kvm.vm's calls arrive), what every part shares (SEAMCALL results, KVM_BUG_ON), and the
 * machine. Each part's actions and guards are written against vcpuSetup.ts and joined here in one setup.
 */
import { and } from 'xstate';
import type { Gprs, WalkStep, DecodedInsn } from '../../src/protocol/messages.ts';
import { out } from '../../src/protocol/messages.ts';
import { VMX_EPT_MISCONFIG_WX_VALUE, TDX_SHADOW_MMIO_VALUE } from '../../src/arch/spte.ts';
import { gfnDirectBits } from '../../src/arch/gpa.ts';
import { TDX_SUCCESS, isOperandBusy, tdxStatusName } from '../../src/arch/tdxStatus.ts';
import type { Memslot } from './memslots.ts';
import type { FaultState } from './kvmPageFault.ts';
import type { Policies } from '../../src/policies.ts';
import { vcpuSetup, assign, emit, enqueueActions, type Emitted, type VcpuGuards } from './vcpuSetup.ts';
import { vcpuRunGuards, vcpuRunActions, vcpuRunStates } from './vcpuRun.ts';
import { mmuPageFaultGuards, mmuPageFaultActions, mmuPageFaultStates } from './mmuPageFault.ts';
import { tdxCheckAcceptLevelGuards, tdxCheckAcceptLevelActions } from './tdxCheckAcceptLevel.ts';
import { tdvmcallGuards, tdvmcallActions, tdvmcallStates } from './tdvmcall.ts';
import { vcpuMutex } from './kvmLocks.ts';
import { tdxVcpuIoctlGuards, tdxVcpuIoctlActions, tdxVcpuIoctlStates } from './tdxVcpuIoctl.ts';
import { tdxVcpuFreeGuards, tdxVcpuFreeActions, tdxVcpuFreeStates } from './tdxVcpuFree.ts';
import { postedInterruptGuards, postedInterruptActions, NO_POSTED_INTERRUPTS, type PiDesc } from './postedInterrupt.ts';
import { haltGuards, haltActions, haltStates, NO_HALT_POLL, type HaltPoll } from './halt.ts';
import { nmiGuards, nmiActions, nmiStates } from './nmi.ts';
import { preFaultMemoryGuards, preFaultMemoryActions, preFaultMemoryStates, type PreFaultState } from './preFaultMemory.ts';
import { srcuReaderActions } from './srcu.ts';

export type { Memslot, FaultState };
export { TDX_MAP_GPA_MAX_LEN } from './tdvmcall.ts';

export interface KvmVcpuInput {
  vcpu: number;
  vmType: 'tdx' | 'vmx';
  gpaw: 48 | 52;
  /** TDVPR page of this vCPU (RCX of TDH.VP.ENTER); 0 for VMX. */
  tdvpr: bigint;
  memslots: readonly Memslot[];
  /** Memslots generation; its low 19 bits go into MMIO SPTEs (§3.5). */
  memslotsGeneration: number;
  /** First host PFN of this vCPU's page-table page cache (mmu_shadow_page_cache). */
  cachePfnBase: number;
  /** First host PFN of this vCPU's external (S-EPT) page cache: the pages handed to TDH.MEM.SEPT.ADD. */
  externalCachePfnBase: number;
  topLevel: number;
  /** TD only: the TDR page (RDX of memory SEAMCALLs) and this vCPU's TDCX pages. */
  tdr: bigint;
  tdcx: readonly bigint[];
  /** TD only: host PA of this vCPU's posted-interrupt descriptor (vcpu_tdx's vt.pi_desc), for TDH.VP.WR. */
  piDescPa: bigint;
  /** The VMM enabled KVM_CAP_EXIT_HYPERCALL for KVM_HC_MAP_GPA_RANGE (QEMU does). */
  mapGpaExit: boolean;
  /** The guest's LAPIC timer vector, armed at the first KVM_RUN (scenario `lapicTimer`), or null. */
  lapicTimerVector: number | null;
  /**
   * The VMM host thread that runs this vCPU (`vmm.threadN`, whose program has `run` steps for it): KVM_RUN
   * returns each exit to that thread. Absent: the VMM's main thread runs it.
   */
  runOwner?: string;
  /** Scenarios with host threads: KVM_RUN takes vcpu->mutex (kvmLocks.ts) for the whole ioctl. */
  lockRun?: boolean;
  /**
   * Only when a host thread issues KVM_TDX_INIT_MEM_REGION: the VMM's mapped source pages (its staging
   * copies of the image), [base, end). A source outside them is no user page: get_user_pages fails (-EFAULT).
   */
  sourcePages?: { base: bigint; end: bigint };
  /**
   * The scenario's policy switches (src/policies.ts). This thread reads splitOnAcceptLevel (with
   * privateHugePages: tdx_check_accept_level exists only in the huge-page series), zapBusyKickRetry,
   * kickAfterTrack, splitChecksBlock, freezeMirrorSpte, localRetry, busyLeavesFastpath, staleFaultCheck,
   * snapshotBeforeAttributes, memoryFaultExit, unexpectedPendingCheck, sharedSuppressVe and globalGuestInhibit.
   */
  policies: Policies;
  /** Number of vCPUs: the ones a kvm_make_all_cpus_request from this thread must wait for. */
  vcpus: number;
}

/** The exit being handled, as KVM recorded it (§5c.1 step 4). */
export interface ExitInfo {
  reason: 'EPT_VIOLATION' | 'EPT_MISCONFIG' | 'TDCALL' | 'HLT' | 'EXTERNAL_INTERRUPT' | 'BUSY';
  exitQualification: bigint;
  gpa: bigint;
  /** TD only: extended exit qualification from RDX. */
  eeq: bigint;
  /** TD only: the VM-exit interruption information from R9 (vmx_get_intr_info). */
  intrInfo: number;
  /** VMX only: the instruction KVM fetched and decoded at RIP. */
  insn: DecodedInsn | null;
  /** TD TDCALL exits: RCX (the guest's exposure bitmap) and R10–R15 as the guest exposed them. */
  gprs: Gprs | null;
}

export interface PendingMmio {
  /** phys_addr as userspace sees it: no shared bit (§6.i step 11). */
  physAddr: bigint;
  len: number;
  isWrite: boolean;
  data: bigint;
}

/** The input's fields as given (but the two cache bases, which become cursors, and the timer vector, which becomes lapicTimer), plus the thread's state. */
export interface KvmVcpuContext extends Omit<KvmVcpuInput, 'cachePfnBase' | 'externalCachePfnBase' | 'lapicTimerVector'> {
  /** kvm->arch.gfn_direct_bits (§1.4); 0 for VMX. */
  gfnDirectBits: bigint;
  /** kvm->arch.shadow_mmio_value: 0 for a TD, 0x6 (W|X → misconfig) for VMX (§3.3). */
  mmioValue: bigint;
  /** Next free page in this vCPU's page-table page cache. */
  nextCachePfn: number;
  /** Next free page in the external page cache (S-EPT pages for TDH.MEM.SEPT.ADD). */
  nextExternalPfn: number;
  /** tdx_check_accept_level in progress: the huge mirror leaf being split and the tdh_do_no_vcpus retry flag. */
  split: { reqPgLevel: number; huge: WalkStep | null; retried: boolean; blindRetries: number } | null;
  /** Policy globalGuestInhibit off: the ranges this vCPU inhibited (level and range index), seen by no other vCPU. */
  ownInhibit: readonly string[];
  /** kvm_tdx->wait_for_sept_zap as this thread last saw it: set by another thread's tdh_do_no_vcpus kick. */
  waitForSeptZap: boolean;
  /** vCPUs that have not yet acknowledged this thread's kvm_make_all_cpus_request. */
  kickWaiting: number;
  /** tdx->map_gpa_next / map_gpa_end while a MapGPA is with the VMM (GPAs as the guest gave them). */
  mapGpa: { next: bigint; end: bigint } | null;
  /** Requesters whose IPI was sent to this vCPU's CPU while it ran the guest and whose handler has not run. */
  ipiRequesters: readonly string[];
  /** A reschedule IPI (a signal's kick_process, or kvm_vcpu_kick for an NMI) went to this vCPU's CPU while it ran the guest (its handler has not run yet). */
  signalKicked: boolean;
  /**
   * TDH.VP.ENTERs issued while a requester waited for this vCPU's IPI; zero upstream, where the thread
   * enables interrupts after every TD exit before it enters again (policy busyLeavesFastpath).
   */
  entriesWhileKicked: number;
  /** signal_pending(current): KVM_RUN returns -EINTR before the next entry. */
  signalPending: boolean;
  /** A synchronize_srcu began while this thread was inside its kvm->srcu read-side section: it reports when it leaves it (srcu.ts). */
  srcuQsOwed: boolean;
  /** KVM_REQ_TLB_FLUSH is pending: vcpu_enter_guest flushes this CPU's TLB before the next entry (tdx_flush_tlb_all, §1.2). */
  tlbFlushPending: boolean;
  /** vcpu->cpu != -1: the vCPU was loaded on its CPU (first by KVM_TDX_INIT_VCPU), so teardown flushes it there. */
  loaded: boolean;
  /** A port OUT handed to the VMM as KVM_EXIT_IO, completed by the next KVM_RUN (tdx_complete_pio_out). */
  pioOut: boolean;
  /** The size of a port IN handed to the VMM as KVM_EXIT_IO; the next KVM_RUN brings its data (tdx_complete_pio_in). */
  pioIn: number | null;
  /** The TDVMCALL a KVM_EXIT_TDX handed to userspace; the next KVM_RUN completes it from run->tdx. */
  tdxExit: { nr: number } | null;
  /** tdx_vcpu_free: the control pages still to reclaim (TDCX pages, then the TDVPR) and the first error. */
  freeing: { pages: readonly bigint[]; at: number; err: bigint } | null;
  /** Progress of a KVM_TDX_INIT_VCPU (TDCX pages added) or KVM_TDX_INIT_MEM_REGION (page, 256-byte chunk). */
  build: {
    tdcxAdded: number;
    region: { source: bigint; gpa: bigint; nrPages: number; flags: number; page: number; chunk: number } | null;
    caller?: string;
    sourcePages?: { base: bigint; end: bigint };
  };
  /** The SPTE value an in-flight SEAMCALL will make final (or restore on failure). */
  frozen: { step: WalkStep; finalSpte: bigint; childPfn: number | null } | null;
  exit: ExitInfo | null;
  fault: FaultState | null;
  mmio: PendingMmio | null;
  /** TD: GPRs handed back to the guest by the next TDH.VP.ENTER (TDVMCALL outputs). */
  enterGprs: Gprs | null;
  /** VMX: the emulation result the next VM entry applies. */
  emulated: { reg: string | null; value: bigint | null; ripAdvance: number } | null;
  /** VMX: VMLAUNCH once, VMRESUME after (loaded_vmcs->launched). */
  launched: boolean;
  /** The last page fault's outcome and what the emulator answered, for readers of a replay. */
  lastFault: { gpa: bigint; errorCode: bigint; ret: string; emulation: string | null } | null;
  /**
   * The fault's mmu_invalidate_seq snapshot behind the KVM_EXIT_MEMORY_FAULT this thread made, until the
   * next KVM_RUN; read by no-spurious-memory-fault.
   */
  memoryFaultSeq: number | null;
  /** The posted-interrupt descriptor (vcpu_tdx's pi_desc) at piDescPa: PIR and ON (postedInterrupt.ts). */
  piDesc: PiDesc;
  /** kvm_vcpu_wake_up reached the thread while it was deciding whether to block (halt.ts). */
  wakeup: boolean;
  /** Halt-polling (halt.ts): vcpu->halt_poll_ns, this halt's poll window and whether this halt blocked. */
  haltPoll: HaltPoll;
  /** MapGPA chunks handed to userspace while ON was set; back to 0 when the CPU takes the PIR (interrupt-latency). */
  exitsWhilePosted: number;
  /** The emulated LAPIC timer: its vector and whether its hrtimer was armed (postedInterrupt.ts). */
  lapicTimer: { vector: number; armed: boolean } | null;
  /** KVM_REQ_NMI: an NMI queued by KVM_NMI, written to PEND_NMI before the next entry (nmi.ts). */
  nmiQueued: boolean;
  /** KVM_PRE_FAULT_MEMORY in progress (preFaultMemory.ts); absent otherwise. */
  preFault?: PreFaultState;
  deathReason: string | null;
  /**
   * Only with host threads: vcpu->mutex as KVM_RUN holds it — free, waited for (with the KVM_RUN's
   * arguments in runArgs), or held until KVM_RUN returns to userspace.
   */
  runMutex?: 'free' | 'waiting' | 'held';
  runArgs?: Record<string, unknown>;
}

/** What every part of the thread uses: the VM type, a SEAMCALL's result. */
const sharedGuards = {
  isTd: ({ context }) => context.vmType === 'tdx',
  /** With host threads, KVM_RUN first takes vcpu->mutex (kvm_vcpu_ioctl), which a TD-state ioctl may hold. */
  mustLockForRun: ({ context }) => context.runMutex === 'free',
  seamcallOk: ({ event }) => (event.msg.payload as Gprs).RAX === TDX_SUCCESS,
  seamcallBusy: ({ event }) => isOperandBusy((event.msg.payload as Gprs).RAX!),
} satisfies VcpuGuards;

/** A failed SEAMCALL, a dead VM, a message no state expects. */
const sharedActions = {
  kvmBugSeamcall: assign({ deathReason: ({ event }) => `KVM_BUG_ON: ${event.type} returned ${tdxStatusName((event.msg.payload as Gprs).RAX!)}` }),
  reportDeath: emit(({ context }): Emitted => ({
    type: 'tdxsim.failure',
    reason: context.deathReason!.startsWith('model limit') ? 'model limit' : context.deathReason!.startsWith('KVM_BUG') ? 'KVM bug' : 'VM dead',
    detail: `kvm.vcpu${context.vcpu}: ${context.deathReason}`,
  })),
  unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  /** kvm_vcpu_ioctl: mutex_lock_killable(&vcpu->mutex) before KVM_RUN's body; the ioctl's arguments wait with it. */
  lockForRun: enqueueActions(({ context, event, enqueue }) => {
    enqueue.assign({ runMutex: 'waiting', runArgs: event.msg.payload as Record<string, unknown> });
    enqueue.emit(out('kvm.locks', 'mutex', 'MUTEX_LOCK', { lock: vcpuMutex(context.vcpu) }));
  }),
  /** The mutex is this thread's: KVM_RUN's body runs (the model hands the held ioctl to itself). */
  runLocked: enqueueActions(({ context, enqueue }) => {
    enqueue.emit(out(`kvm.vcpu${context.vcpu}`, 'ioctl', 'KVM_RUN', context.runArgs as never));
    enqueue.assign({ runMutex: 'held', runArgs: undefined });
  }),
  /** KVM_RUN returns to userspace: vcpu->mutex is dropped (a no-op without host threads or outside KVM_RUN). */
  releaseRunMutex: enqueueActions(({ context, enqueue }) => {
    if (context.runMutex !== 'held') return;
    enqueue.emit(out('kvm.locks', 'mutex', 'MUTEX_UNLOCK', { lock: vcpuMutex(context.vcpu) }));
    enqueue.assign({ runMutex: 'free' });
  }),
  /** Back from userspace: the exit's snapshot is of no further interest. */
  forgetMemoryFault: enqueueActions(({ context, enqueue }) => {
    if (context.memoryFaultSeq !== null) enqueue.assign({ memoryFaultSeq: null });
  }),
};

type Joined<T extends readonly object[]> = T extends readonly [infer H, ...infer R extends readonly object[]] ? H & Joined<R> : unknown;

/** The parts' records as one; a name two parts define would let one replace the other unseen, so it throws. */
function joinParts<const T extends readonly object[]>(kind: 'action' | 'guard', ...parts: T): Joined<T> {
  const all: Record<string, unknown> = {};
  for (const part of parts) {
    for (const [name, impl] of Object.entries(part)) {
      if (name in all) throw new Error(`kvmVcpu: the ${kind} '${name}' is defined by two parts of the vCPU thread`);
      all[name] = impl;
    }
  }
  return all as Joined<T>;
}

const kvmVcpuSetup = vcpuSetup.extend({
  guards: joinParts('guard', sharedGuards, vcpuRunGuards, mmuPageFaultGuards, tdxCheckAcceptLevelGuards, tdvmcallGuards, tdxVcpuIoctlGuards, tdxVcpuFreeGuards, postedInterruptGuards, haltGuards, nmiGuards, preFaultMemoryGuards),
  actions: joinParts('action', sharedActions, vcpuRunActions, mmuPageFaultActions, tdxCheckAcceptLevelActions, tdvmcallActions, tdxVcpuIoctlActions, tdxVcpuFreeActions, postedInterruptActions, haltActions, nmiActions, preFaultMemoryActions, srcuReaderActions),
});

export const kvmVcpuMachine = kvmVcpuSetup.createMachine({
  id: 'kvmVcpu',
  context: ({ input }) => ({
    ...(input.runOwner !== undefined ? { runOwner: input.runOwner } : {}),
    ...(input.lockRun === true ? { runMutex: 'free' as const } : {}),
    vcpu: input.vcpu,
    vmType: input.vmType,
    gpaw: input.gpaw,
    tdvpr: input.tdvpr,
    gfnDirectBits: input.vmType === 'tdx' ? gfnDirectBits(input.gpaw) : 0n,
    memslots: input.memslots,
    memslotsGeneration: input.memslotsGeneration,
    mmioValue: input.vmType === 'tdx' ? TDX_SHADOW_MMIO_VALUE : VMX_EPT_MISCONFIG_WX_VALUE,
    topLevel: input.topLevel,
    nextCachePfn: input.cachePfnBase,
    nextExternalPfn: input.externalCachePfnBase,
    tdr: input.tdr,
    tdcx: input.tdcx,
    piDescPa: input.piDescPa,
    mapGpaExit: input.mapGpaExit,
    policies: input.policies,
    ownInhibit: [],
    waitForSeptZap: false,
    vcpus: input.vcpus,
    split: null,
    kickWaiting: 0,
    mapGpa: null,
    ipiRequesters: [],
    signalKicked: false,
    entriesWhileKicked: 0,
    signalPending: false,
    srcuQsOwed: false,
    tlbFlushPending: false,
    loaded: false,
    pioOut: false,
    pioIn: null,
    tdxExit: null,
    freeing: null,
    build: input.sourcePages === undefined ? { tdcxAdded: 0, region: null } : { tdcxAdded: 0, region: null, sourcePages: input.sourcePages },
    frozen: null,
    exit: null,
    fault: null,
    mmio: null,
    enterGprs: null,
    emulated: null,
    launched: false,
    lastFault: null,
    memoryFaultSeq: null,
    piDesc: NO_POSTED_INTERRUPTS,
    wakeup: false,
    haltPoll: NO_HALT_POLL,
    exitsWhilePosted: 0,
    nmiQueued: false,
    lapicTimer: input.lapicTimerVector === null ? null : { vector: input.lapicTimerVector, armed: false },
    deathReason: null,
  }),
  initial: 'inUserspace',
  on: {
    // Outside guest mode a request needs no IPI: the requester sees vcpu->mode and does not wait (§7.4).
    KVM_REQ_OUTSIDE_GUEST_MODE: { actions: ['noteSeptZapWait', 'ackRequest'] },
    KVM_REQ_TLB_FLUSH: { actions: ['noteTlbFlush', 'ackRequest'] },
    SEPT_ZAP_DONE: { actions: 'endWaitForSeptZap' },
    SIG_IPI: { actions: 'noteSignal' },
    // Outside guest mode the sender's kvm_vcpu_wake_up finds nobody blocked; halt.ts's states override it.
    KVM_SIGNAL_MSI: { actions: 'postInterrupt' },
    apic_timer_fn: { actions: 'postInterrupt' },
    kvm_apic_send_ipi: { actions: 'postInterrupt' },
    // A poll window that ended early (an event came first) ends on the clock later: nothing to do then.
    kvm_vcpu_can_poll: {},
    PIR_XCHG: { actions: 'exchangePir' },
    KVM_NMI: { actions: 'queueNmi' },
    MUTEX_ACQUIRED: { actions: 'runLocked' },
    // A KVM_RUN while another thread's TD-state ioctl runs on this vCPU (it holds vcpu->mutex): it sleeps on the mutex.
    KVM_RUN: [{ guard: 'mustLockForRun', actions: 'lockForRun' }, { actions: 'unexpected' }],
    MUTEX_UNLOCKED: {},
    // Inside KVM_RUN or a vCPU ioctl the thread holds kvm->srcu; the states that drop it answer at once (srcu.ts).
    SYNCHRONIZE_SRCU: { actions: 'owesQuiescent' },
    '*': { actions: 'unexpected' },
  },
  states: {
    /** Outside KVM_RUN: the VMM owns the thread. */
    inUserspace: {
      entry: ['srcuReadUnlock', 'releaseRunMutex'],
      exit: 'forgetMemoryFault',
      on: {
        SYNCHRONIZE_SRCU: { actions: 'reportQuiescent' },
        KVM_RUN: [
          { guard: 'mustLockForRun', actions: 'lockForRun' },
          { guard: 'mmioPending', target: 'entering', actions: 'completeMmio' },
          { guard: 'pioPending', target: 'entering', actions: 'completePioOut' },
          { guard: 'pioInPending', target: 'entering', actions: 'completePioIn' },
          { guard: 'tdxExitPending', target: 'entering', actions: 'completeTdxExit' },
          { guard: and(['mapGpaPending', 'mapGpaMoreChunks', 'mapGpaEventCheck', 'eventPending']), target: 'entering', actions: 'mapGpaRetryForEvent' },
          { guard: and(['mapGpaPending', 'mapGpaMoreChunks']), target: 'inUserspace', actions: ['nextMapGpaChunk', 'countChunkWhilePosted', 'exitHypercall', 'releaseRunMutex'] },
          { guard: 'mapGpaPending', target: 'entering', actions: 'completeMapGpa' },
          { target: 'entering', actions: 'armLapicTimer' },
        ],
        // tdx_vcpu_init: -EINVAL once the vCPU went through INIT_VCPU (its state is no longer UNINITIALIZED;
        // a TD past FINALIZE is refused the same way). The model's vCPU is loaded first by INIT_VCPU.
        KVM_TDX_INIT_VCPU: [{ guard: 'loaded', actions: 'initVcpuInvalid' }, { target: 'initVcpu', actions: ['markLoaded', 'noteCaller'] }],
        tdx_flush_vp: [{ guard: 'loaded', target: 'flushingVp' }, { actions: 'flushDone' }],
        tdx_vcpu_free: { target: 'freeing', actions: 'beginFree' },
        // tdx_vcpu_init_mem_region: -EINVAL before this vCPU's INIT_VCPU, for bad flags or a misaligned,
        // empty or shared range; a host thread's call then learns whether the TD is RUNNABLE (tdxVcpuIoctl.ts).
        KVM_TDX_INIT_MEM_REGION: [
          { guard: 'regionRefused', actions: 'regionInvalid' },
          { target: 'initMemRegion', actions: ['beginRegion', 'noteCaller'] },
        ],
        KVM_PRE_FAULT_MEMORY: [{ guard: 'preFaultArgsBad', actions: 'preFaultRefuse' }, { target: 'preFaulting', actions: 'beginPreFault' }],
      },
    },
    // The order of the states is the statechart's as drawn (inspector, export); each comes from its part.
    initVcpu: tdxVcpuIoctlStates.initVcpu,
    initMemRegion: tdxVcpuIoctlStates.initMemRegion,
    entering: vcpuRunStates.entering,
    flushingTlb: vcpuRunStates.flushingTlb,
    waitingForSeptZap: vcpuRunStates.waitingForSeptZap,
    flushingVp: tdxVcpuFreeStates.flushingVp,
    freeing: tdxVcpuFreeStates.freeing,
    freed: tdxVcpuFreeStates.freed,
    inTdhVpEnter: vcpuRunStates.inTdhVpEnter,
    tdExited: vcpuRunStates.tdExited,
    takingIpi: vcpuRunStates.takingIpi,
    dispatchingExit: vcpuRunStates.dispatchingExit,
    inGuestMode: vcpuRunStates.inGuestMode,
    handlingEptViolation: mmuPageFaultStates.handlingEptViolation,
    handlingEptMisconfig: mmuPageFaultStates.handlingEptMisconfig,
    handlingMisconfigSlowPath: mmuPageFaultStates.handlingMisconfigSlowPath,
    emulating: mmuPageFaultStates.emulating,
    handlingTdvmcall: tdvmcallStates.handlingTdvmcall,
    mappingGpa: tdvmcallStates.mappingGpa,
    emulatingTdMmio: tdvmcallStates.emulatingTdMmio,
    emulatingTdIo: tdvmcallStates.emulatingTdIo,
    emulatingWrmsr: tdvmcallStates.emulatingWrmsr,
    halting: haltStates.halting,
    injectingNmi: nmiStates.injectingNmi,
    gettingTdVmCallInfo: tdvmcallStates.gettingTdVmCallInfo,
    gettingQuote: tdvmcallStates.gettingQuote,
    halted: vcpuRunStates.halted,
    preFaulting: preFaultMemoryStates.preFaulting,
    /** KVM_BUG_ON / kvm_vm_dead: the VM is unusable. */
    vmDead: { entry: 'reportDeath', type: 'final' },
  },
});
