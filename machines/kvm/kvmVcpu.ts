/**
 * A KVM vCPU thread: the vCPU ioctls of the TD build (KVM_TDX_INIT_VCPU, KVM_TDX_INIT_MEM_REGION, §5b.3),
 * the KVM_RUN loop for a TD (TDH.VP.ENTER, §5c.1) or a VMX guest (VMLAUNCH/VMRESUME), exit dispatch, the
 * TDP MMU fault path run by this thread against the kvm.mmu actor, and MMIO emulation.
 *
 * Private faults (§6.ii A.3–A.6, §7.6) go to the mirror root: each missing level is frozen with a
 * cmpxchg to FROZEN_SPTE, linked in the S-EPT with TDH.MEM.SEPT.ADD, then written with its final value;
 * the leaf likewise with TDH.MEM.PAGE.AUG (or TDH.MEM.PAGE.ADD while INIT_MEM_REGION populates the image).
 * TDX_OPERAND_BUSY restores the old SPTE and ends the attempt with RET_PF_RETRY, which a private fault
 * retries locally instead of re-entering the guest (§7.3, §7.5); any other error is a KVM_BUG_ON.
 *
 * The fault path follows kvm_tdp_mmu_map (§6.i step 4, §7.6): take mmu_lock for read, walk, link every
 * missing page-table level with a cmpxchg of a fresh page from this vCPU's cache, install the leaf with a
 * cmpxchg; a lost cmpxchg or a frozen SPTE ends the attempt with RET_PF_RETRY. A GPA without a memslot
 * gets an MMIO SPTE (per-VM value | generation | GPA, §3.3–§3.5) and RET_PF_EMULATE; for a TD the
 * emulator answers X86EMUL_RETRY_INSTR and KVM re-enters so the guest takes the #VE (§6.i step 5), for VMX
 * KVM emulates the instruction itself. A TD's MMIO then arrives as TDG.VP.VMCALL<#VE.RequestMMIO>, which
 * KVM turns into KVM_EXIT_MMIO and completes into R11 (§6.i steps 11–12).
 *
 * With the privateHugePages policy a private fault maps at the level kvm.mmu allows (2M: AUG at TDX level
 * 1). With splitOnAcceptLevel too, an ACCEPT-type EPT violation whose level is below the mapping runs
 * tdx_check_accept_level first (§6.iii): unless the range is already guest-inhibited, take mmu_lock for
 * write, split a huge mirror leaf covering the GFN (BLOCK → TRACK + kick → DEMOTE, each through
 * tdh_do_no_vcpus, then the mirror page of 512 leaves), set the one-way guest-inhibit flag, and go on with
 * the normal fault path. A mirror huge leaf met by the fault path above its goal level is a KVM_BUG_ON, as
 * upstream, where mirror roots have no huge pages.
 *
 * TDG.VP.VMCALL<MapGPA> (§6.iv steps 2–5, tdx_map_gpa): checked, then handed to the VMM as one
 * KVM_EXIT_HYPERCALL (KVM_HC_MAP_GPA_RANGE) per 2 MiB chunk; the VMM's run->hypercall.ret completes it.
 * While this thread runs the guest (inside TDH.VP.ENTER, vcpu->mode = IN_GUEST_MODE), a
 * kvm_make_all_cpus_request from another thread becomes an IPI to this vCPU's CPU; after the TD exit the
 * thread enables interrupts, the IPI's handler runs (which ends the requester's wait), and only then is the
 * exit handled (§7.4). Outside guest mode the request is acknowledged at once. A BUSY from the entry
 * takes the same way out before the thread enters again (§5c.1 step 5); with policy busyLeavesFastpath off
 * it enters again from the fastpath with the IPI unhandled, and entriesWhileKicked counts those entries.
 *
 * TDG.VP.VMCALL<Instruction.IO> (tdx_emulate_io): no in-kernel device claims a port here, so an OUT goes to
 * the VMM as KVM_EXIT_IO and completes with R10 = SUCCESS on the next KVM_RUN. A signal (the VMM's
 * SIG_IPI) kicks a vCPU in guest mode with a reschedule IPI; KVM_RUN then returns -EINTR (KVM_EXIT_INTR)
 * before the next entry, and a halted vCPU wakes up to do the same. At VM destruction the vCPU does its
 * part of the teardown when asked (§5b.4): TDH.VP.FLUSH on its own CPU, then reclaiming its TDCX and
 * TDVPR pages with TDH.PHYMEM.PAGE.RECLAIM, each cleared (KeyID 0) before it goes back to the kernel.
 */
import { setup, assign, emit, enqueueActions, and, not } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing, type Gprs, type WalkStep, type DecodedInsn, type TdpRoot } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import {
  TDVMCALL_VE_REQUEST_MMIO,
  TDVMCALL_INSTRUCTION_HLT,
  TDVMCALL_MAP_GPA,
  TDVMCALL_STATUS_INVALID_OPERAND,
  TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED,
  TDVMCALL_STATUS_ALIGN_ERROR,
  TDVMCALL_STATUS_RETRY,
  TDVMCALL_STATUS_SUCCESS,
  TDVMCALL_INSTRUCTION_IO,
} from '../../src/arch/tdcall.ts';
import { EPT_VIOLATION_ACC_READ, EPT_VIOLATION_ACC_WRITE, EPT_VIOLATION_ACC_INSTR, EPT_VIOLATION_PROT_MASK, EPT_VIOLATION_GVA_TRANSLATED } from '../../src/arch/vmx.ts';
import {
  KVM_EXIT_MMIO,
  KVM_EXIT_MEMORY_FAULT,
  KVM_EXIT_HYPERCALL,
  KVM_EXIT_HYPERCALL_LONG_MODE,
  KVM_EXIT_IO,
  KVM_EXIT_IO_OUT,
  KVM_PIO_PAGE_OFFSET,
  KVM_EXIT_INTR,
  EINTR,
  KVM_HC_MAP_GPA_RANGE,
  KVM_MAP_GPA_RANGE_ENCRYPTED,
  KVM_MAP_GPA_RANGE_DECRYPTED,
  HYPERCALL_RET_EAGAIN,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
  KVM_TDX_MEASURE_MEMORY_REGION,
  EIO,
  RET_PF_FIXED,
  RET_PF_SPURIOUS,
  PFERR_USER_MASK,
  PFERR_WRITE_MASK,
  PFERR_FETCH_MASK,
  PFERR_PRESENT_MASK,
  PFERR_RSVD_MASK,
  PFERR_GUEST_FINAL_MASK,
  PFERR_GUEST_PAGE_MASK,
  PFERR_PRIVATE_ACCESS,
  RET_PF_RETRY,
  RET_PF_EMULATE,
  RET_PF_NAMES,
  PG_LEVEL_4K,
  PG_LEVEL_2M,
} from '../../src/arch/kvmApi.ts';
import {
  SHADOW_NONPRESENT_VALUE,
  FROZEN_SPTE,
  MMIO_SPTE_GEN_MASK,
  MTRR_TYPE_WRBACK,
  VMX_EPT_MT_EPTE_SHIFT,
  makeMmioSpte,
  makeNonLeafSpte,
  makeSpte,
  isFrozenSpte,
  isShadowPresentPte,
  isMmioSpte,
  isLargePte,
  spteToPfn,
  getMmioSpteGeneration,
  VMX_EPT_MISCONFIG_WX_VALUE,
  TDX_SHADOW_MMIO_VALUE,
} from '../../src/arch/spte.ts';
import { sharedBit, gfnDirectBits, gpaToGfn, gfnToGpa, pgLevelIndex, pgLevelToTdxLevel, makePageInfo, pageSizeOfPgLevel, pagesOfPgLevel, PAGE_SIZE } from '../../src/arch/gpa.ts';
import {
  TDX_SUCCESS,
  TDX_VCPU_NOT_ASSOCIATED,
  isOperandBusy,
  TDX_EXT_EXIT_QUAL_TYPE_MASK,
  TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION,
  TDX_EXT_EXIT_QUAL_TYPE_ACCEPT,
  TDX_EXTENDMR_CHUNKSIZE,
  decodeEeq,
  decodeAcceptEeqInfo,
  tdxStatusName,
} from '../../src/arch/tdxStatus.ts';
import { hex } from '../../src/arch/hex.ts';
import { sizeMask } from '../guest/program.ts';
import { findMemslot, type Memslot } from './memslots.ts';
import { noVcpus, kicking, allCpusRequest } from './noVcpus.ts';
import { lpageKey } from './tdpMmu.ts';
import type { Policies } from '../../src/policies.ts';

export type { Memslot };

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
  /** The VMM enabled KVM_CAP_EXIT_HYPERCALL for KVM_HC_MAP_GPA_RANGE (QEMU does). */
  mapGpaExit: boolean;
  /**
   * The scenario's policy switches (src/policies.ts). This thread reads splitOnAcceptLevel (with
   * privateHugePages: tdx_check_accept_level exists only in the huge-page series), zapBusyKickRetry,
   * kickAfterTrack, freezeMirrorSpte, localRetry, busyLeavesFastpath, staleFaultCheck and globalGuestInhibit.
   */
  policies: Policies;
  /** Number of vCPUs: the ones a kvm_make_all_cpus_request from this thread must wait for. */
  vcpus: number;
}

/** tdx_map_gpa splits a conversion into chunks of this size, checking for events between them. */
export const TDX_MAP_GPA_MAX_LEN = 0x200000n;

/** The exit being handled, as KVM recorded it (§5c.1 step 4). */
export interface ExitInfo {
  reason: 'EPT_VIOLATION' | 'EPT_MISCONFIG' | 'TDCALL' | 'HLT' | 'EXTERNAL_INTERRUPT' | 'BUSY';
  exitQualification: bigint;
  gpa: bigint;
  /** TD only: extended exit qualification from RDX. */
  eeq: bigint;
  /** VMX only: the instruction KVM fetched and decoded at RIP. */
  insn: DecodedInsn | null;
  /** TD TDCALL exits: R10–R15 as the guest exposed them. */
  gprs: Gprs | null;
}

/** One kvm_mmu_page_fault in progress. */
export interface FaultState {
  gpa: bigint;
  /** The GFN the iterator uses: with gfn_direct_bits for a TD's direct root (§2). */
  iterGfn: bigint;
  /** fault->gfn: never has the shared bit. */
  gfn: bigint;
  errorCode: bigint;
  isPrivate: boolean;
  root: TdpRoot;
  noSlot: boolean;
  /** The backing page kvm_mmu_faultin_pfn found (guest_memfd or userspace), null for MMIO. */
  pfn: bigint | null;
  /** KVM_TDX_INIT_MEM_REGION: the source page TDH.MEM.PAGE.ADD copies from, instead of AUG. */
  populateSource: bigint | null;
  /** fault->goal_level: the level the leaf is installed at (PG_LEVEL_4K unless kvm.mmu allows 2M). */
  goalLevel: number;
  /** fault->mmu_seq: the invalidation sequence kvm_mmu_faultin_pfn saw; null before it ran. */
  mmuSeq: number | null;
  path: readonly WalkStep[];
  /** Index into `path` of the SPTE being handled. */
  at: number;
  ret: number | null;
}

export interface PendingMmio {
  /** phys_addr as userspace sees it: no shared bit (§6.i step 11). */
  physAddr: bigint;
  len: number;
  isWrite: boolean;
  data: bigint;
}

/** The input's fields as given (but the two cache bases, which become cursors), plus the thread's state. */
export interface KvmVcpuContext extends Omit<KvmVcpuInput, 'cachePfnBase' | 'externalCachePfnBase'> {
  /** kvm->arch.gfn_direct_bits (§1.4); 0 for VMX. */
  gfnDirectBits: bigint;
  /** kvm->arch.shadow_mmio_value: 0 for a TD, 0x6 (W|X → misconfig) for VMX (§3.3). */
  mmioValue: bigint;
  /** Next free page in this vCPU's page-table page cache. */
  nextCachePfn: number;
  /** Next free page in the external page cache (S-EPT pages for TDH.MEM.SEPT.ADD). */
  nextExternalPfn: number;
  /** tdx_check_accept_level in progress: the huge mirror leaf being split and the tdh_do_no_vcpus retry flag. */
  split: { reqPgLevel: number; huge: WalkStep | null; retried: boolean } | null;
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
  /** A signal's reschedule IPI went to this vCPU's CPU while it ran the guest (its handler has not run yet). */
  signalKicked: boolean;
  /**
   * TDH.VP.ENTERs issued while a requester waited for this vCPU's IPI; zero upstream, where the thread
   * enables interrupts after every TD exit before it enters again (policy busyLeavesFastpath).
   */
  entriesWhileKicked: number;
  /** signal_pending(current): KVM_RUN returns -EINTR before the next entry. */
  signalPending: boolean;
  /** vcpu->cpu != -1: the vCPU was loaded on its CPU (first by KVM_TDX_INIT_VCPU), so teardown flushes it there. */
  loaded: boolean;
  /** A port OUT handed to the VMM as KVM_EXIT_IO, completed by the next KVM_RUN (tdx_complete_pio_out). */
  pioOut: boolean;
  /** tdx_vcpu_free: the control pages still to reclaim (TDCX pages, then the TDVPR) and the first error. */
  freeing: { pages: readonly bigint[]; at: number; err: bigint } | null;
  /** Progress of a KVM_TDX_INIT_VCPU (TDCX pages added) or KVM_TDX_INIT_MEM_REGION (page, 256-byte chunk). */
  build: { tdcxAdded: number; region: { source: bigint; gpa: bigint; nrPages: number; flags: number; page: number; chunk: number } | null };
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
  deathReason: string | null;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

const MMU = 'kvm.mmu';
const guest = (c: KvmVcpuContext) => `guest.vcpu${c.vcpu}`;
const fault = (c: KvmVcpuContext) => c.fault!;
const stepAt = (c: KvmVcpuContext) => fault(c).path[fault(c).at]!;

/** __vmx_handle_ept_violation: exit qualification → page-fault error code (§4.10). */
function eptViolationErrorCode(q: bigint, isPrivate: boolean): bigint {
  let ec = 0n;
  if (q & BigInt(EPT_VIOLATION_ACC_READ)) ec |= PFERR_USER_MASK;
  if (q & BigInt(EPT_VIOLATION_ACC_WRITE)) ec |= PFERR_WRITE_MASK;
  if (q & BigInt(EPT_VIOLATION_ACC_INSTR)) ec |= PFERR_FETCH_MASK;
  if (q & BigInt(EPT_VIOLATION_PROT_MASK)) ec |= PFERR_PRESENT_MASK;
  ec |= q & BigInt(EPT_VIOLATION_GVA_TRANSLATED) ? PFERR_GUEST_FINAL_MASK : PFERR_GUEST_PAGE_MASK;
  if (isPrivate) ec |= PFERR_PRIVATE_ACCESS;
  return ec;
}

function findSlot(c: KvmVcpuContext, gfn: bigint): Memslot | undefined {
  return findMemslot(c.memslots, gfn);
}

function beginFault(c: KvmVcpuContext, gpa: bigint, q: bigint, extraEc: bigint, populateSource: bigint | null = null): FaultState {
  const shared = c.vmType === 'vmx' || (gpa & sharedBit(c.gpaw)) !== 0n;
  const isPrivate = !shared;
  const iterGfn = gpaToGfn(gpa);
  const gfn = iterGfn & ~c.gfnDirectBits;
  // tdx_handle_ept_violation: private faults are always handled as writes — private pages are mapped
  // RWX, and a read fault could otherwise map a COW alias that AUG cannot use (§6.ii A.3).
  const qual = isPrivate && c.vmType === 'tdx' ? BigInt(EPT_VIOLATION_ACC_WRITE) | (q & BigInt(EPT_VIOLATION_GVA_TRANSLATED)) : q;
  return {
    gpa,
    iterGfn,
    gfn,
    errorCode: eptViolationErrorCode(qual, isPrivate) | extraEc,
    isPrivate,
    root: isPrivate ? 'mirror' : 'direct',
    noSlot: findSlot(c, gfn) === undefined,
    pfn: null,
    populateSource,
    goalLevel: PG_LEVEL_4K,
    mmuSeq: null,
    path: [],
    at: 0,
    ret: null,
  };
}

/**
 * The leaf a fault installs: a normal SPTE (bit 63 set, §3.7) for RAM, the MMIO SPTE without a memslot.
 * RAM leaves are writable whatever the access: TDP faults map with ACC_ALL, and the model's memslots are
 * writable host memory (fault->map_writable), so a read fault does not leave a write to fault again.
 */
function leafSpte(c: KvmVcpuContext): bigint {
  const f = fault(c);
  if (f.pfn === null) return mmioSpte(c);
  return ramLeaf(f.pfn & ~(pagesOfPgLevel(f.goalLevel) - 1n), f.goalLevel);
}

function ramLeaf(pfn: bigint, pgLevel: number): bigint {
  return makeSpte({ pfn, pgLevel, writable: true, memtypeBits: MTRR_TYPE_WRBACK << VMX_EPT_MT_EPTE_SHIFT, accessed: true, adEnabled: true });
}

/** The EEQ of an ACCEPT-type exit: the level the guest asked for, as a KVM page level (info & 7) + 1 (§6.iii step 3). */
function acceptPgLevel(eeq: bigint): number | null {
  const d = decodeEeq(eeq);
  return d.type === TDX_EXT_EXIT_QUAL_TYPE_ACCEPT ? decodeAcceptEeqInfo(d.info).reqLevel + 1 : null;
}


/** The huge leaf being split, as BLOCK and DEMOTE name it: its aligned private GPA | TDX level (§0.2). */
function hugePageInfo(c: KvmVcpuContext): bigint {
  const h = c.split!.huge!;
  const gpa = gfnToGpa(fault(c).gfn) & ~(pagesOfPgLevel(h.pgLevel) * PAGE_SIZE - 1n);
  return makePageInfo(gpa, pgLevelToTdxLevel(h.pgLevel));
}

function mmioSpte(c: KvmVcpuContext): bigint {
  return makeMmioSpte({ gfn: fault(c).iterGfn, generation: c.memslotsGeneration, mmioValue: c.mmioValue });
}

/** The leaf hook's SEAMCALL (AUG or PAGE.ADD) returns: final SPTE, or restore and retry on BUSY, else KVM_BUG_ON (§7.3). */
const LEAF_HOOK_RESULT = [
  { guard: 'seamcallOk', target: 'unlocking', actions: ['writeFinal', 'clearFrozen', 'retFixed'] },
  { guard: 'seamcallBusy', target: 'unlocking', actions: ['restoreFrozen', 'clearFrozen', 'retRetry'] },
  { target: '#kvmVcpu.vmDead', actions: 'kvmBugSeamcall' },
] as const;

export const kvmVcpuMachine = setup({
  types: {
    context: {} as KvmVcpuContext,
    events: {} as MachineEvent,
    input: {} as KvmVcpuInput,
    emitted: {} as Emitted,
  },
  guards: {
    isTd: ({ context }) => context.vmType === 'tdx',
    mmioPending: ({ context }) => context.mmio !== null,
    faultIsPrivate: ({ context }) => fault(context).isPrivate,
    isMirror: ({ context }) => fault(context).root === 'mirror',
    isPopulate: ({ context }) => fault(context).populateSource !== null,
    /**
     * tdx_is_sept_violation_unexpected_pending: EEQ type PENDING_EPT_VIOLATION and no PROT bits — the
     * guest touched a page it never accepted while SEPT_VE_DISABLE is set (§6.ii B.3, [KX]).
     */
    unexpectedPending: ({ context }) => {
      const x = context.exit!;
      return (
        context.vmType === 'tdx' &&
        (x.gpa & sharedBit(context.gpaw)) === 0n &&
        (x.eeq & TDX_EXT_EXIT_QUAL_TYPE_MASK) === BigInt(TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION) &&
        (x.exitQualification & BigInt(EPT_VIOLATION_PROT_MASK)) === 0n
      );
    },
    /**
     * kvm_mmu_faultin_pfn: a private fault on a shared GFN or the other way round, or a private fault
     * without guest_memfd, goes to userspace as KVM_EXIT_MEMORY_FAULT (§6.ii A.4).
     */
    faultinMismatch: ({ context, event }) => {
      const r = payloadOf(event, 'mmu', 'FAULTIN_RESULT');
      const f = fault(context);
      if (context.vmType !== 'tdx' || r.slot === 'none') return false;
      return f.isPrivate !== r.attrPrivate || (f.isPrivate && r.slot !== 'gmem');
    },
    seamcallOk: ({ event }) => (event.msg.payload as Gprs).RAX === TDX_SUCCESS,
    seamcallBusy: ({ event }) => isOperandBusy((event.msg.payload as Gprs).RAX!),
    retFixed: ({ context }) => fault(context).ret === RET_PF_FIXED,
    retRetry: ({ context }) => fault(context).ret === RET_PF_RETRY,
    moreTdcx: ({ context }) => context.build.tdcxAdded < context.tdcx.length,
    measuring: ({ context }) => (context.build.region!.flags & KVM_TDX_MEASURE_MEMORY_REGION) !== 0,
    moreChunks: ({ context }) => context.build.region!.chunk < Number(PAGE_SIZE) / TDX_EXTENDMR_CHUNKSIZE,
    morePages: ({ context }) => context.build.region!.page + 1 < context.build.region!.nrPages,
    stepFrozen: ({ context }) => isFrozenSpte(stepAt(context).spte),
    atTargetLevel: ({ context }) => stepAt(context).pgLevel === fault(context).goalLevel,
    /** A huge leaf above the goal level: kvm_tdp_mmu_map would split it, which mirror roots do not support. */
    stepHugeLeaf: ({ context }) => isShadowPresentPte(stepAt(context).spte) && isLargePte(stepAt(context).spte),
    /** The huge-page series' tdx_check_accept_level runs for ACCEPT-type exits on private GPAs (§6.iii step 3). */
    acceptLevelExit: ({ context }) =>
      context.policies.privateHugePages && context.policies.splitOnAcceptLevel && context.vmType === 'tdx' && fault(context).isPrivate && acceptPgLevel(context.exit!.eeq) !== null,
    guestInhibited: ({ event }) => payloadOf(event, 'mmu', 'LPAGE_INFO').guestInhibit,
    /** kvm_split_cross_boundary_leafs: a huge mirror leaf covers the GFN above the level the guest accepts. */
    hugeLeafCrossing: ({ context, event }) => {
      const leaf = payloadOf(event, 'mmu', 'TDP_WALK_RESULT').path.at(-1)!;
      return isShadowPresentPte(leaf.spte) && isLargePte(leaf.spte) && leaf.pgLevel > context.split!.reqPgLevel;
    },
    retried: ({ context }) => context.split!.retried,
    kickRetryOnBusy: ({ context }) => context.policies.zapBusyKickRetry,
    kickAfterTrack: ({ context }) => context.policies.kickAfterTrack,
    faultStale: ({ event }) => payloadOf(event, 'mmu', 'TDP_WALK_RESULT').stale === true,
    acksDone: ({ context }) => context.kickWaiting === 0,
    stepPresent: ({ context }) => isShadowPresentPte(stepAt(context).spte),
    leafAlreadyMmio: ({ context }) => fault(context).pfn === null && stepAt(context).spte === mmioSpte(context),
    leafUnchanged: ({ context }) => stepAt(context).spte === leafSpte(context),
    cmpxchgOk: ({ event }) => payloadOf(event, 'mmu', 'SPTE_CMPXCHG_RESULT').ret === 0,
    retEmulate: ({ context }) => fault(context).ret === RET_PF_EMULATE,
    faultIsMmio: ({ context }) => fault(context).pfn === null,
    /** handle_mmio_page_fault: an MMIO SPTE whose generation matches the memslots (§6.i contrast). */
    mmioSpteCurrent: ({ context, event }) => {
      const leaf = payloadOf(event, 'mmu', 'TDP_WALK_RESULT').path.at(-1)!.spte;
      return isMmioSpte(leaf, context.mmioValue) && BigInt(getMmioSpteGeneration(leaf)) === (BigInt(context.memslotsGeneration) & MMIO_SPTE_GEN_MASK);
    },
    tdvmcallIsKvmHypercall: ({ context }) => (context.exit!.gprs!.R10 ?? 0n) !== 0n,
    tdvmcallIsMmio: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_VE_REQUEST_MMIO,
    tdvmcallIsHlt: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_INSTRUCTION_HLT,
    tdvmcallIsMapGpa: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_MAP_GPA,
    tdvmcallIsIo: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_INSTRUCTION_IO,
    mapGpaExitDisabled: ({ context }) => !context.mapGpaExit,
    /** tdx_map_gpa: no wrap, both ends legal GPAs and on the same side of the shared bit (§6.iv step 2). */
    mapGpaInvalid: ({ context }) => {
      const g = context.exit!.gprs!;
      const gpa = g.R12 ?? 0n;
      const size = g.R13 ?? 0n;
      const last = gpa + size - 1n;
      const limit = 1n << BigInt(context.gpaw);
      const sb = sharedBit(context.gpaw);
      return gpa + size <= gpa || gpa >= limit || last >= limit || (gpa & sb) !== (last & sb);
    },
    mapGpaMisaligned: ({ context }) => ((context.exit!.gprs!.R12 ?? 0n) | (context.exit!.gprs!.R13 ?? 0n)) % PAGE_SIZE !== 0n,
    mapGpaPending: ({ context }) => context.mapGpa !== null,
    /** tdx_complete_vmcall_map_gpa: run->hypercall.ret 0 and the range not yet done → the next chunk. */
    mapGpaMoreChunks: ({ context, event }) =>
      (payloadOf(event, 'ioctl', 'KVM_RUN').hypercallRet ?? 0) === 0 && context.mapGpa!.next + TDX_MAP_GPA_MAX_LEN < context.mapGpa!.end,
    exitIs: ({ context }, reason: ExitInfo['reason']) => context.exit!.reason === reason,
    ipiSent: ({ context }) => context.ipiRequesters.length > 0 || context.signalKicked,
    signalPending: ({ context }) => context.signalPending,
    localRetry: ({ context }) => context.policies.localRetry,
    busyLeavesFastpath: ({ context }) => context.policies.busyLeavesFastpath,
    waitingForSeptZap: ({ context }) => context.waitForSeptZap,
    staleFaultCheck: ({ context }) => context.policies.staleFaultCheck,
    globalGuestInhibit: ({ context }) => context.policies.globalGuestInhibit,
    ownInhibited: ({ context }) => context.ownInhibit.includes(lpageKey(fault(context).gfn, acceptPgLevel(context.exit!.eeq)! + 1)),
    pioPending: ({ context }) => context.pioOut,
    loaded: ({ context }) => context.loaded,
    morePagesToFree: ({ context }) => context.freeing!.at < context.freeing!.pages.length,
    /** tdx_emulate_io: 1, 2 or 4 bytes; the model's guest only writes (OUT). */
    ioArgsInvalid: ({ context }) => {
      const g = context.exit!.gprs!;
      const size = Number(g.R12 ?? 0n);
      return (size !== 1 && size !== 2 && size !== 4) || g.R13 !== 1n;
    },
    /** tdx_emulate_mmio's checks: size 1/2/4/8, direction 0/1, the GPA range shared (§6.i step 11). */
    mmioArgsInvalid: ({ context }) => {
      const g = context.exit!.gprs!;
      const size = Number(g.R12 ?? 0n);
      const end = (g.R14 ?? 0n) + BigInt(size) - 1n;
      const sb = sharedBit(context.gpaw);
      return ![1, 2, 4, 8].includes(size) || (g.R13 !== 0n && g.R13 !== 1n) || ((g.R14 ?? 0n) & sb) === 0n || (end & sb) === 0n;
    },
  },
  actions: {
    /** complete_userspace_io: TD → R11 for reads (tdx_complete_mmio_read); VMX → finish the emulated MOV. */
    completeMmio: assign(({ context, event }) => {
      const m = context.mmio!;
      const data = payloadOf(event, 'ioctl', 'KVM_RUN').mmioData ?? 0n;
      if (context.vmType === 'tdx') {
        // R10 keeps the guest's own value (0) on success; only R11 carries the result.
        const enterGprs: Gprs = m.isWrite ? { R10: context.exit!.gprs!.R10! } : { R10: context.exit!.gprs!.R10!, R11: data & sizeMask(m.len) };
        return { mmio: null, enterGprs };
      }
      const insn = context.exit!.insn!;
      return {
        mmio: null,
        emulated: m.isWrite ? { reg: null, value: null, ripAdvance: insn.length } : { reg: insn.reg, value: data & sizeMask(m.len), ripAdvance: insn.length },
      };
    }),
    tdhVpEnter: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.ENTER', { vcpu: context.vcpu, RCX: context.tdvpr, ...context.enterGprs })),
    clearEnterGprs: assign({ enterGprs: () => null }),
    vmxEnter: emit(({ context }) =>
      out(guest(context), 'vm-entry', context.launched ? 'VMRESUME' : 'VMLAUNCH', { vcpu: context.vcpu, tdcallReturn: null, emulated: context.emulated }),
    ),
    markLaunched: assign({ launched: () => true, emulated: () => null }),
    recordTdExit: assign({
      exit: ({ event }) => {
        const p = event.msg.payload as Gprs;
        const reason = event.type as ExitInfo['reason'];
        const gprs = reason === 'TDCALL' ? { R10: p.R10, R11: p.R11, R12: p.R12, R13: p.R13, R14: p.R14, R15: p.R15 } : null;
        return { reason, exitQualification: p.RCX ?? 0n, gpa: p.R8 ?? 0n, eeq: p.RDX ?? 0n, insn: null, gprs };
      },
    }),
    recordVmExit: assign({
      exit: ({ event }) => {
        const p = event.msg.payload as { exitQualification?: bigint; gpa?: bigint; insn?: DecodedInsn | null };
        return { reason: event.type as ExitInfo['reason'], exitQualification: p.exitQualification ?? 0n, gpa: p.gpa ?? 0n, eeq: 0n, insn: p.insn ?? null, gprs: null };
      },
    }),
    beginEptViolation: assign({ fault: ({ context }) => beginFault(context, context.exit!.gpa, context.exit!.exitQualification, 0n) }),
    /** KVM_TDX_INIT_MEM_REGION maps each page through the same fault path, with PAGE.ADD as the leaf hook. */
    beginPopulateFault: assign({
      fault: ({ context }) => {
        const r = context.build.region!;
        const off = BigInt(r.page) * PAGE_SIZE;
        return beginFault(context, r.gpa + off, BigInt(EPT_VIOLATION_ACC_WRITE), 0n, r.source + off);
      },
    }),
    /** Local retry (§7.3): the same fault again from kvm_mmu_faultin_pfn, without re-entering the guest. */
    resetFault: assign({ fault: ({ context }) => ({ ...fault(context), path: [], at: 0, ret: null, mmuSeq: null }) }),
    faultinRequest: emit(({ context }) => out(MMU, 'mmu', 'FAULTIN', { vcpu: context.vcpu, gfn: fault(context).gfn, isPrivate: fault(context).isPrivate })),
    recordFaultin: assign({
      fault: ({ context, event }) => {
        const r = payloadOf(event, 'mmu', 'FAULTIN_RESULT');
        return { ...fault(context), pfn: r.pfn, goalLevel: r.maxLevel, mmuSeq: r.mmuSeq };
      },
    }),
    kvmBugHugeMirror: assign({
      deathReason: ({ context }) => `KVM_BUG_ON: the fault at ${hex(fault(context).gpa)} (goal ${fault(context).goalLevel}) met a huge mirror leaf at level ${stepAt(context).pgLevel}; mirror roots cannot split it in the fault path`,
    }),
    // ---- tdx_check_accept_level (§6.iii steps 3–4) ----
    beginSplit: assign({ split: ({ context }) => ({ reqPgLevel: acceptPgLevel(context.exit!.eeq)!, huge: null, retried: false }) }),
    readGuestInhibit: emit(({ context }) => out(MMU, 'mmu', 'LPAGE_INFO_READ', { vcpu: context.vcpu, gfn: fault(context).gfn, pgLevel: context.split!.reqPgLevel + 1 })),
    lockWrite: emit(({ context }) => out(MMU, 'mmu', 'MMU_LOCK_WRITE', { vcpu: context.vcpu })),
    unlockWrite: emit(({ context }) => out(MMU, 'mmu', 'MMU_UNLOCK', { vcpu: context.vcpu, mode: 'write' })),
    splitWalk: emit(({ context }) => out(MMU, 'mmu', 'TDP_WALK', { vcpu: context.vcpu, root: 'mirror', gfn: fault(context).gfn })),
    recordHuge: assign({ split: ({ context, event }) => ({ ...context.split!, huge: payloadOf(event, 'mmu', 'TDP_WALK_RESULT').path.at(-1)! }) }),
    splitBlock: emit(({ context }) => out('tdx', 'seamcall', 'TDH.MEM.RANGE.BLOCK', { RCX: hugePageInfo(context), RDX: context.tdr })),
    splitTrack: emit(({ context }) => out('tdx', 'seamcall', 'TDH.MEM.TRACK', { RCX: context.tdr })),
    /** TDH.MEM.PAGE.DEMOTE with a fresh S-EPT page from this vCPU's external cache. */
    splitDemote: emit(({ context }) => out('tdx', 'seamcall', 'TDH.MEM.PAGE.DEMOTE', { RCX: hugePageInfo(context), RDX: context.tdr, R8: BigInt(context.nextExternalPfn) << 12n })),
    /** The mirror follows: a page of 512 leaves from this vCPU's cache replaces the huge leaf. */
    splitMirror: enqueueActions(({ context, enqueue }) => {
      const h = context.split!.huge!;
      const gfn = fault(context).gfn & ~(pagesOfPgLevel(h.pgLevel) - 1n);
      enqueue.emit(
        out(MMU, 'mmu', 'SPLIT_HUGE_PAGE', {
          vcpu: context.vcpu,
          root: 'mirror',
          gfn,
          pgLevel: h.pgLevel,
          tablePfn: h.tablePfn,
          index: h.index,
          oldSpte: h.spte,
          newSpte: makeNonLeafSpte({ childPfn: BigInt(context.nextCachePfn), adEnabled: true }),
          childPfn: context.nextCachePfn,
          childSpte: ramLeaf(spteToPfn(h.spte), h.pgLevel - 1),
          externalPfn: context.nextExternalPfn,
        }),
      );
      enqueue.assign({ nextCachePfn: context.nextCachePfn + 1, nextExternalPfn: context.nextExternalPfn + 1 });
    }),
    /** hugepage_set_guest_inhibit at level + 1, and level + 2 when the guest accepted 4K. */
    setGuestInhibit: enqueueActions(({ context, enqueue }) => {
      const req = context.split!.reqPgLevel;
      if (!context.policies.globalGuestInhibit) {
        const levels = req === PG_LEVEL_4K ? [req + 1, req + 2] : [req + 1];
        enqueue.assign({ ownInhibit: [...context.ownInhibit, ...levels.map((l) => lpageKey(fault(context).gfn, l)).filter((k) => !context.ownInhibit.includes(k))] });
        return;
      }
      enqueue.emit(out(MMU, 'mmu', 'LPAGE_GUEST_INHIBIT', { vcpu: context.vcpu, gfn: fault(context).gfn, pgLevel: req + 1 }));
      if (req === PG_LEVEL_4K) enqueue.emit(out(MMU, 'mmu', 'LPAGE_GUEST_INHIBIT', { vcpu: context.vcpu, gfn: fault(context).gfn, pgLevel: req + 2 }));
    }),
    endSplit: assign({ split: () => null }),
    markRetried: assign({ split: ({ context }) => ({ ...context.split!, retried: true }) }),
    clearRetried: assign({ split: ({ context }) => ({ ...context.split!, retried: false }) }),
    /** kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE): this thread is outside guest mode itself. */
    kickAll: enqueueActions(({ context, enqueue }, params: { waitForSeptZap: boolean }) => {
      const msgs = allCpusRequest('KVM_REQ_OUTSIDE_GUEST_MODE', context.vcpus, context.vcpu, params.waitForSeptZap);
      enqueue.assign({ kickWaiting: msgs.length });
      for (const m of msgs) enqueue.emit(m);
    }),
    countAck: assign({ kickWaiting: ({ context }) => context.kickWaiting - 1 }),
    endSeptZapWait: enqueueActions(({ context, enqueue }) => {
      if (context.split!.retried) for (const m of allCpusRequest('SEPT_ZAP_DONE', context.vcpus, context.vcpu)) enqueue.emit(m);
    }),
    /** Another thread's tdh_do_no_vcpus set wait_for_sept_zap before kicking this vCPU, or cleared it. */
    noteSeptZapWait: assign({ waitForSeptZap: ({ context, event }) => context.waitForSeptZap || (event.msg.payload as { waitForSeptZap?: true }).waitForSeptZap === true }),
    endWaitForSeptZap: assign({ waitForSeptZap: false }),
    exitMemoryFault: emit(({ context }) =>
      out('vmm', 'kvm-exit', 'KVM_EXIT_MEMORY_FAULT', {
        vcpu: context.vcpu,
        exit_reason: KVM_EXIT_MEMORY_FAULT,
        gpa: gfnToGpa(fault(context).gfn),
        size: PAGE_SIZE,
        flags: fault(context).isPrivate ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0,
      }),
    ),
    /** Mirror SPTEs become present only as freeze → SEAMCALL → final value (§7.6). */
    prepareFreezeNonLeaf: assign({
      frozen: ({ context }) => ({ step: stepAt(context), finalSpte: makeNonLeafSpte({ childPfn: BigInt(context.nextCachePfn), adEnabled: true }), childPfn: context.nextCachePfn }),
    }),
    prepareFreezeLeaf: assign({ frozen: ({ context }) => ({ step: stepAt(context), finalSpte: leafSpte(context), childPfn: null }) }),
    freezeSpte: emit(({ context }) => {
      const fr = context.frozen!;
      const s = fr.step;
      const base = { vcpu: context.vcpu, root: fault(context).root, gfn: fault(context).iterGfn, pgLevel: s.pgLevel, tablePfn: s.tablePfn, index: s.index, oldSpte: s.spte };
      if (context.policies.freezeMirrorSpte) return out(MMU, 'mmu', 'SPTE_CMPXCHG', { ...base, newSpte: FROZEN_SPTE, childPfn: null });
      // Policy freezeMirrorSpte off: the final value is published before the SEAMCALL that backs it.
      return out(MMU, 'mmu', 'SPTE_CMPXCHG', { ...base, newSpte: fr.finalSpte, childPfn: fr.childPfn, ...(fr.childPfn !== null ? { externalPfn: context.nextExternalPfn } : {}) });
    }),
    /** tdx_sept_link_private_spt: TDH.MEM.SEPT.ADD(GPA | level, TDR, external page) for the frozen parent. */
    seamcallSeptAdd: emit(({ context }) => {
      const s = context.frozen!.step;
      const gpa = gfnToGpa(fault(context).gfn) & ~(pageSizeOfPgLevel(s.pgLevel) - 1n);
      return out('tdx', 'seamcall', 'TDH.MEM.SEPT.ADD', { RCX: makePageInfo(gpa, pgLevelToTdxLevel(s.pgLevel)), RDX: context.tdr, R8: BigInt(context.nextExternalPfn) << 12n });
    }),
    /** The leaf hook: TDH.MEM.PAGE.AUG in a running TD, TDH.MEM.PAGE.ADD while the image is populated ([KX] §5b.3 4). */
    seamcallSetLeaf: emit(({ context }) => {
      const f = fault(context);
      const gpa = gfnToGpa(f.gfn);
      if (f.populateSource !== null) return out('tdx', 'seamcall', 'TDH.MEM.PAGE.ADD', { RCX: gpa, RDX: context.tdr, R8: f.pfn! << 12n, R9: f.populateSource });
      const pages = pagesOfPgLevel(f.goalLevel);
      return out('tdx', 'seamcall', 'TDH.MEM.PAGE.AUG', { RCX: makePageInfo(gpa & ~(pages * PAGE_SIZE - 1n), pgLevelToTdxLevel(f.goalLevel)), RDX: context.tdr, R8: (f.pfn! & ~(pages - 1n)) << 12n });
    }),
    /** Unfrozen (policy freezeMirrorSpte off) the final value is already there: nothing to write. */
    writeFinal: enqueueActions(({ context, enqueue }) => {
      const fr = context.frozen!;
      if (!context.policies.freezeMirrorSpte) return;
      enqueue.emit(out(MMU, 'mmu', 'SPTE_WRITE', { vcpu: context.vcpu, root: fault(context).root, gfn: fault(context).iterGfn, pgLevel: fr.step.pgLevel, tablePfn: fr.step.tablePfn, index: fr.step.index, oldSpte: FROZEN_SPTE, newSpte: fr.finalSpte, childPfn: fr.childPfn, ...(fr.childPfn !== null && fault(context).root === 'mirror' ? { externalPfn: context.nextExternalPfn } : {}) }));
    }),
    /**
     * Back to the old value after BUSY. Unfrozen, the published page table is unlinked but its page stays
     * with kvm.mmu (another vCPU may be inside it), so this vCPU's caches move past it.
     */
    restoreFrozen: enqueueActions(({ context, enqueue }) => {
      const fr = context.frozen!;
      const published = !context.policies.freezeMirrorSpte;
      enqueue.emit(out(MMU, 'mmu', 'SPTE_WRITE', { vcpu: context.vcpu, root: fault(context).root, gfn: fault(context).iterGfn, pgLevel: fr.step.pgLevel, tablePfn: fr.step.tablePfn, index: fr.step.index, oldSpte: published ? fr.finalSpte : FROZEN_SPTE, newSpte: fr.step.spte, childPfn: null }));
      if (published && fr.childPfn !== null) enqueue.assign({ nextCachePfn: context.nextCachePfn + 1, nextExternalPfn: context.nextExternalPfn + 1 });
    }),
    clearFrozen: assign({ frozen: () => null }),
    /** The linked mirror page and its external page are used; the walk continues in the new, empty page. */
    linkedExternal: assign(({ context }) => {
      const f = fault(context);
      const s = stepAt(context);
      const childLevel = s.pgLevel - 1;
      const child: WalkStep = { pgLevel: childLevel, tablePfn: context.nextCachePfn, index: pgLevelIndex(gfnToGpa(f.iterGfn), childLevel), spte: SHADOW_NONPRESENT_VALUE };
      return { nextCachePfn: context.nextCachePfn + 1, nextExternalPfn: context.nextExternalPfn + 1, frozen: null, fault: { ...f, path: [...f.path.slice(0, f.at + 1), child], at: f.at + 1 } };
    }),
    retFixed: assign({ fault: ({ context }) => ({ ...fault(context), ret: RET_PF_FIXED }) }),
    retSpurious: assign({ fault: ({ context }) => ({ ...fault(context), ret: RET_PF_SPURIOUS }) }),
    kvmBugSeamcall: assign({ deathReason: ({ event }) => `KVM_BUG_ON: ${event.type} returned ${tdxStatusName((event.msg.payload as Gprs).RAX!)}` }),
    deathUnexpectedPending: assign({
      deathReason: ({ context }) => `Guest access before accepting ${hex(context.exit!.gpa)} on vCPU ${context.vcpu}: VM marked dead, KVM_RUN returns -EIO (§6.ii B.3)`,
    }),
    // ---- KVM_TDX_INIT_VCPU (§5b.3 step 3) ----
    vpCreate: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.CREATE', { RCX: context.tdvpr, RDX: context.tdr })),
    vpAddcx: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.ADDCX', { RCX: context.tdcx[context.build.tdcxAdded]!, RDX: context.tdvpr })),
    countTdcx: assign({ build: ({ context }) => ({ ...context.build, tdcxAdded: context.build.tdcxAdded + 1 }) }),
    /** TDH.VP.INIT(TDVPR, initial RCX, x2APIC id): the model uses the vCPU number as the APIC id. */
    vpInit: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.INIT', { RCX: context.tdvpr, RDX: 0n, R8: BigInt(context.vcpu) })),
    initVcpuDone: emit(({ context }) => out('vmm', 'ioctl-return', 'KVM_TDX_INIT_VCPU', { vcpu: context.vcpu, ret: 0 })),
    initVcpuFailed: emit(({ context }) => out('vmm', 'ioctl-return', 'KVM_TDX_INIT_VCPU', { vcpu: context.vcpu, ret: EIO })),
    // ---- KVM_TDX_INIT_MEM_REGION (§5b.3 step 4) ----
    beginRegion: assign({
      build: ({ context, event }) => {
        const r = payloadOf(event, 'ioctl', 'KVM_TDX_INIT_MEM_REGION');
        return { ...context.build, region: { source: r.source_addr, gpa: r.gpa, nrPages: r.nr_pages, flags: r.flags, page: 0, chunk: 0 } };
      },
    }),
    /** TDH.MR.EXTEND for each 256-byte chunk of the page just added. */
    mrExtend: emit(({ context }) => {
      const r = context.build.region!;
      return out('tdx', 'seamcall', 'TDH.MR.EXTEND', { RCX: r.gpa + BigInt(r.page) * PAGE_SIZE + BigInt(r.chunk * TDX_EXTENDMR_CHUNKSIZE), RDX: context.tdr });
    }),
    nextChunk: assign({ build: ({ context }) => ({ ...context.build, region: { ...context.build.region!, chunk: context.build.region!.chunk + 1 } }) }),
    nextPage: assign({ build: ({ context }) => ({ ...context.build, region: { ...context.build.region!, page: context.build.region!.page + 1, chunk: 0 } }) }),
    regionDone: emit(({ context }) => out('vmm', 'ioctl-return', 'KVM_TDX_INIT_MEM_REGION', { vcpu: context.vcpu, ret: 0 })),
    regionFailed: emit(({ context }) => out('vmm', 'ioctl-return', 'KVM_TDX_INIT_MEM_REGION', { vcpu: context.vcpu, ret: EIO })),
    endRegion: assign({ build: ({ context }) => ({ ...context.build, region: null }), fault: () => null, frozen: () => null }),
    /** handle_ept_misconfig's slow path: kvm_mmu_page_fault(gpa, PFERR_RSVD_MASK). */
    beginMisconfigFault: assign({ fault: ({ context }) => beginFault(context, context.exit!.gpa, 0n, PFERR_RSVD_MASK) }),
    lockRead: emit(({ context }) => out(MMU, 'mmu', 'MMU_LOCK_READ', { vcpu: context.vcpu })),
    unlockRead: emit(({ context }) => out(MMU, 'mmu', 'MMU_UNLOCK', { vcpu: context.vcpu, mode: 'read' })),
    tdpWalk: emit(({ context }) => out(MMU, 'mmu', 'TDP_WALK', { vcpu: context.vcpu, root: fault(context).root, gfn: fault(context).iterGfn, mmuSeq: fault(context).mmuSeq! })),
    /** walk_shadow_page_lockless: no mmu_lock, RCU only. */
    locklessWalk: emit(({ context }) => out(MMU, 'mmu', 'TDP_WALK', { vcpu: context.vcpu, root: 'direct', gfn: gpaToGfn(context.exit!.gpa) })),
    /** kvm_tdp_mmu_map starts with kvm_mmu_hugepage_adjust under mmu_lock: a guest inhibit set since faultin counts. */
    recordPath: assign({
      fault: ({ context, event }) => {
        const w = payloadOf(event, 'mmu', 'TDP_WALK_RESULT');
        const f = fault(context);
        const own = context.ownInhibit.includes(lpageKey(f.gfn, PG_LEVEL_2M)) ? PG_LEVEL_4K : f.goalLevel;
        return { ...f, path: w.path, at: 0, goalLevel: Math.min(f.goalLevel, w.maxLevel ?? f.goalLevel, own) };
      },
    }),
    descend: assign({ fault: ({ context }) => ({ ...fault(context), at: fault(context).at + 1 }) }),
    /** tdp_mmu_link_sp: cmpxchg a non-present SPTE to point at a fresh page from the cache. */
    linkSp: emit(({ context }) => {
      const s = stepAt(context);
      return out(MMU, 'mmu', 'SPTE_CMPXCHG', {
        vcpu: context.vcpu,
        root: fault(context).root,
        gfn: fault(context).iterGfn,
        pgLevel: s.pgLevel,
        tablePfn: s.tablePfn,
        index: s.index,
        oldSpte: s.spte,
        newSpte: makeNonLeafSpte({ childPfn: BigInt(context.nextCachePfn), adEnabled: true }),
        childPfn: context.nextCachePfn,
      });
    }),
    /** The linked page now sits one level down; the walk continues in it, where every entry is non-present. */
    linkedSp: assign(({ context }) => {
      const f = fault(context);
      const s = stepAt(context);
      const childLevel = s.pgLevel - 1;
      const child: WalkStep = { pgLevel: childLevel, tablePfn: context.nextCachePfn, index: pgLevelIndex(gfnToGpa(f.iterGfn), childLevel), spte: SHADOW_NONPRESENT_VALUE };
      return { nextCachePfn: context.nextCachePfn + 1, fault: { ...f, path: [...f.path.slice(0, f.at + 1), child], at: f.at + 1 } };
    }),
    installLeafSpte: emit(({ context }) => {
      const s = stepAt(context);
      return out(MMU, 'mmu', 'SPTE_CMPXCHG', {
        vcpu: context.vcpu,
        root: fault(context).root,
        gfn: fault(context).iterGfn,
        pgLevel: s.pgLevel,
        tablePfn: s.tablePfn,
        index: s.index,
        oldSpte: s.spte,
        newSpte: leafSpte(context),
        childPfn: null,
      });
    }),
    retEmulate: assign({ fault: ({ context }) => ({ ...fault(context), ret: RET_PF_EMULATE }) }),
    retRetry: assign({ fault: ({ context }) => ({ ...fault(context), ret: RET_PF_RETRY }) }),
    /** vt_check_emulate_instruction: a TD cannot be emulated; let the guest retry and take the #VE (§6.i 5). */
    noteRetryInstr: assign({
      lastFault: ({ context }) => ({ gpa: fault(context).gpa, errorCode: fault(context).errorCode, ret: RET_PF_NAMES[fault(context).ret!]!, emulation: 'X86EMUL_RETRY_INSTR' }),
      fault: () => null,
    }),
    noteFaultDone: assign({
      lastFault: ({ context }) => ({ gpa: fault(context).gpa, errorCode: fault(context).errorCode, ret: RET_PF_NAMES[fault(context).ret!]!, emulation: null }),
      fault: () => null,
    }),
    noteEmulate: assign({
      lastFault: ({ context }) => ({ gpa: context.exit!.gpa, errorCode: context.fault?.errorCode ?? PFERR_RSVD_MASK, ret: 'RET_PF_EMULATE', emulation: 'x86_emulate_instruction' }),
      fault: () => null,
    }),
    /** VMX: the emulated MOV reaches vcpu_mmio_read/write; no in-kernel device claims it → userspace. */
    vmxMmioExit: assign({
      mmio: ({ context }) => {
        const i = context.exit!.insn!;
        return { physAddr: context.exit!.gpa, len: i.size, isWrite: i.op === 'store', data: i.op === 'store' ? (i.value ?? 0n) & sizeMask(i.size) : 0n };
      },
    }),
    /** TD: tdx_emulate_mmio with no KVM_MMIO_BUS device → KVM_EXIT_MMIO, shared bit stripped. */
    tdMmioExit: assign({
      mmio: ({ context }) => {
        const g = context.exit!.gprs!;
        const size = Number(g.R12);
        return { physAddr: g.R14! & ~sharedBit(context.gpaw), len: size, isWrite: g.R13 === 1n, data: g.R13 === 1n ? g.R15! & sizeMask(size) : 0n };
      },
    }),
    exitMmio: emit(({ context }) => {
      const m = context.mmio!;
      return out('vmm', 'kvm-exit', 'KVM_EXIT_MMIO', { vcpu: context.vcpu, exit_reason: KVM_EXIT_MMIO, phys_addr: m.physAddr, len: m.len, is_write: m.isWrite ? 1 : 0, data: m.data });
    }),
    invalidMmioArgs: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_INVALID_OPERAND }) }),
    // ---- TDG.VP.VMCALL<MapGPA> (§6.iv) ----
    mapGpaUnsupported: assign({ enterGprs: ({ context }) => ({ R10: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED, R11: context.exit!.gprs!.R12 ?? 0n }) }),
    mapGpaInvalidOperand: assign({ enterGprs: ({ context }) => ({ R10: TDVMCALL_STATUS_INVALID_OPERAND, R11: context.exit!.gprs!.R12 ?? 0n }) }),
    mapGpaAlignError: assign({ enterGprs: ({ context }) => ({ R10: TDVMCALL_STATUS_ALIGN_ERROR, R11: context.exit!.gprs!.R12 ?? 0n }) }),
    beginMapGpa: assign({ mapGpa: ({ context }) => ({ next: context.exit!.gprs!.R12!, end: context.exit!.gprs!.R12! + context.exit!.gprs!.R13! }) }),
    nextMapGpaChunk: assign({ mapGpa: ({ context }) => ({ ...context.mapGpa!, next: context.mapGpa!.next + TDX_MAP_GPA_MAX_LEN }) }),
    /** __tdx_map_gpa: one chunk of at most 2 MiB; args[0] without the shared bit, args[2] the direction. */
    exitHypercall: emit(({ context }) => {
      const m = context.mapGpa!;
      const remaining = m.end - m.next;
      const size = remaining > TDX_MAP_GPA_MAX_LEN ? TDX_MAP_GPA_MAX_LEN : remaining;
      const sb = sharedBit(context.gpaw);
      return out('vmm', 'kvm-exit', 'KVM_EXIT_HYPERCALL', {
        vcpu: context.vcpu,
        exit_reason: KVM_EXIT_HYPERCALL,
        nr: KVM_HC_MAP_GPA_RANGE,
        args: [m.next & ~sb, size / PAGE_SIZE, BigInt((m.next & sb) !== 0n ? KVM_MAP_GPA_RANGE_DECRYPTED : KVM_MAP_GPA_RANGE_ENCRYPTED)],
        flags: KVM_EXIT_HYPERCALL_LONG_MODE,
        ret: 0,
      });
    }),
    /**
     * tdx_complete_vmcall_map_gpa, final chunk or error: R10 stays the guest's 0 (SUCCESS) when done; EAGAIN
     * → RETRY and EINVAL → INVALID_OPERAND with R11 = the next GPA ([KX]; v6.16 made every error INVALID_OPERAND).
     */
    completeMapGpa: assign(({ context, event }) => {
      const ret = payloadOf(event, 'ioctl', 'KVM_RUN').hypercallRet ?? 0;
      const m = context.mapGpa!;
      if (ret === 0) return { mapGpa: null, enterGprs: { R10: context.exit!.gprs!.R10! } };
      // The VMM model answers only 0, EAGAIN or EINVAL ([KX] fails KVM_RUN for anything else).
      const status = ret === HYPERCALL_RET_EAGAIN ? TDVMCALL_STATUS_RETRY : TDVMCALL_STATUS_INVALID_OPERAND;
      return { mapGpa: null, enterGprs: { R10: status, R11: m.next } };
    }),
    // ---- kvm_make_all_cpus_request (§7.4) ----
    ackRequest: emit(({ context, event }) => out(event.msg.from, 'kvm-request', 'KVM_REQ_ACK', { vcpu: context.vcpu })),
    sendIpi: enqueueActions(({ context, event, enqueue }) => {
      enqueue.assign({ ipiRequesters: [...context.ipiRequesters, event.msg.from] });
      enqueue.emit(out(`hw.cpu${context.vcpu}`, 'interrupt', 'IPI', { vcpu: context.vcpu, requester: event.msg.from }));
    }),
    localIrqEnable: emit(({ context }) => out(`hw.cpu${context.vcpu}`, 'interrupt', 'LOCAL_IRQ_ENABLE', { vcpu: context.vcpu })),
    clearIpi: assign({ ipiRequesters: () => [], signalKicked: () => false, entriesWhileKicked: () => 0 }),
    // Upstream never counts, so an entry leaves the context object as it was (the explorer hashes it once).
    countEntryWhileKicked: enqueueActions(({ context, enqueue }) => {
      if (context.ipiRequesters.length > 0) enqueue.assign({ entriesWhileKicked: context.entriesWhileKicked + 1 });
    }),
    noteSignal: assign({ signalPending: () => true }),
    /** kick_process: a reschedule IPI to the CPU running the guest; nobody waits for its handler. */
    kickForSignal: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ signalPending: true, signalKicked: true });
      enqueue.emit(out(`hw.cpu${context.vcpu}`, 'interrupt', 'IPI', { vcpu: context.vcpu, requester: null }));
    }),
    /** xfer_to_guest_mode_handle_work: a pending signal ends KVM_RUN with -EINTR. */
    exitIntr: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ signalPending: false });
      enqueue.emit(out('vmm', 'kvm-exit', 'KVM_EXIT_INTR', { vcpu: context.vcpu, exit_reason: KVM_EXIT_INTR, ret: EINTR }));
    }),
    markLoaded: assign({ loaded: () => true }),
    /** The OUT's bytes go to run->io at data_offset; no in-kernel device owns any port in the model. */
    exitIo: enqueueActions(({ context, enqueue }) => {
      const g = context.exit!.gprs!;
      const size = Number(g.R12!);
      enqueue.assign({ pioOut: true });
      enqueue.emit(
        out('vmm', 'kvm-exit', 'KVM_EXIT_IO', {
          vcpu: context.vcpu,
          exit_reason: KVM_EXIT_IO,
          direction: KVM_EXIT_IO_OUT,
          size,
          port: Number(g.R14! & 0xffffn),
          count: 1,
          data_offset: KVM_PIO_PAGE_OFFSET * Number(PAGE_SIZE),
          data: g.R15! & sizeMask(size),
        }),
      );
    }),
    completePioOut: assign({ pioOut: () => false, enterGprs: () => ({ R10: TDVMCALL_STATUS_SUCCESS }) }),
    invalidIoArgs: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_INVALID_OPERAND }) }),
    // ---- Teardown (§5b.4) ----
    vpFlush: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.FLUSH', { RCX: context.tdvpr })),
    /** tdx_flush_vp: TDX_VCPU_NOT_ASSOCIATED is fine (the vCPU never entered on this CPU); a vCPU never loaded needs no SEAMCALL. */
    flushDone: enqueueActions(({ context, event, enqueue }) => {
      const rax = event.msg.kind === 'seamcall-return' ? (event.msg.payload as Gprs).RAX! : TDX_SUCCESS;
      const err = rax === TDX_VCPU_NOT_ASSOCIATED ? TDX_SUCCESS : rax;
      // tdx_disassociate_vp: the vCPU is on no CPU's list any more.
      enqueue.assign({ loaded: false });
      enqueue.emit(out('kvm.vm', 'kvm-call-return', 'tdx_flush_vp', { vcpu: context.vcpu, err }));
    }),
    beginFree: assign({ freeing: ({ context }) => ({ pages: [...context.tdcx, context.tdvpr], at: 0, err: TDX_SUCCESS }) }),
    reclaimControlPage: emit(({ context }) => out('tdx', 'seamcall', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: context.freeing!.pages[context.freeing!.at]! })),
    /** tdx_reclaim_page: a reclaimed page is cleared (MOVDIR64B, KeyID 0) before the kernel frees it. */
    clearControlPage: emit(({ context }) => out('hw.mem', 'mem', 'MEM_ZERO', { pa: context.freeing!.pages[context.freeing!.at]!, bytes: PAGE_SIZE, keyid: 0, tag: `kvm.vcpu${context.vcpu}` })),
    /** A page the module would not give back is leaked (tdx_reclaim_control_page), and freeing goes on. */
    leakControlPage: assign({
      freeing: ({ context, event }) => {
        const f = context.freeing!;
        return { ...f, at: f.at + 1, err: f.err === TDX_SUCCESS ? (event.msg.payload as Gprs).RAX! : f.err };
      },
    }),
    nextControlPage: assign({ freeing: ({ context }) => ({ ...context.freeing!, at: context.freeing!.at + 1 }) }),
    freeDone: enqueueActions(({ context, enqueue }) => {
      enqueue.emit(out('kvm.vm', 'kvm-call-return', 'tdx_vcpu_free', { vcpu: context.vcpu, err: context.freeing!.err }));
      enqueue.assign({ freeing: null });
    }),
    unsupportedSubfunction: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED }) }),
    kvmBugEptMisconfig: assign({ deathReason: () => 'KVM_BUG_ON: the TDX module returned raw exit reason EPT_MISCONFIG (49) (§5c.1 step 4)' }),
    unsupportedHypercall: assign({ deathReason: () => 'model limit: KVM hypercalls (TDVMCALL with R10 != 0) are not modelled' }),
    reportDeath: emit(({ context }): Emitted => ({
      type: 'tdxsim.failure',
      reason: context.deathReason!.startsWith('model limit') ? 'model limit' : context.deathReason!.startsWith('KVM_BUG_ON') ? 'KVM bug' : 'VM dead',
      detail: `kvm.vcpu${context.vcpu}: ${context.deathReason}`,
    })),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'kvmVcpu',
  context: ({ input }) => ({
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
    loaded: false,
    pioOut: false,
    freeing: null,
    build: { tdcxAdded: 0, region: null },
    frozen: null,
    exit: null,
    fault: null,
    mmio: null,
    enterGprs: null,
    emulated: null,
    launched: false,
    lastFault: null,
    deathReason: null,
  }),
  initial: 'inUserspace',
  on: {
    // Outside guest mode a request needs no IPI: the requester sees vcpu->mode and does not wait (§7.4).
    KVM_REQ_OUTSIDE_GUEST_MODE: { actions: ['noteSeptZapWait', 'ackRequest'] },
    KVM_REQ_TLB_FLUSH: { actions: 'ackRequest' },
    SEPT_ZAP_DONE: { actions: 'endWaitForSeptZap' },
    SIG_IPI: { actions: 'noteSignal' },
    '*': { actions: 'unexpected' },
  },
  states: {
    /** Outside KVM_RUN: the VMM owns the thread. */
    inUserspace: {
      on: {
        KVM_RUN: [
          { guard: 'mmioPending', target: 'entering', actions: 'completeMmio' },
          { guard: 'pioPending', target: 'entering', actions: 'completePioOut' },
          { guard: and(['mapGpaPending', 'mapGpaMoreChunks']), target: 'inUserspace', actions: ['nextMapGpaChunk', 'exitHypercall'] },
          { guard: 'mapGpaPending', target: 'entering', actions: 'completeMapGpa' },
          { target: 'entering' },
        ],
        KVM_TDX_INIT_VCPU: { target: 'initVcpu', actions: 'markLoaded' },
        tdx_flush_vp: [{ guard: 'loaded', target: 'flushingVp' }, { actions: 'flushDone' }],
        tdx_vcpu_free: { target: 'freeing', actions: 'beginFree' },
        KVM_TDX_INIT_MEM_REGION: { target: 'initMemRegion', actions: 'beginRegion' },
      },
    },
    /** tdx_td_vcpu_init: TDH.VP.CREATE, TDH.VP.ADDCX for each TDCX page, TDH.VP.INIT (§5b.3 step 3). */
    initVcpu: {
      initial: 'creating',
      states: {
        creating: {
          entry: 'vpCreate',
          on: { 'TDH.VP.CREATE': [{ guard: 'seamcallOk', target: 'addingCx' }, { target: '#kvmVcpu.inUserspace', actions: 'initVcpuFailed' }] },
        },
        addingCx: {
          entry: 'vpAddcx',
          on: {
            'TDH.VP.ADDCX': [
              { guard: 'seamcallOk', target: 'nextCx', actions: 'countTdcx' },
              { target: '#kvmVcpu.inUserspace', actions: 'initVcpuFailed' },
            ],
          },
        },
        nextCx: { always: [{ guard: 'moreTdcx', target: 'addingCx' }, { target: 'initializing' }] },
        initializing: {
          entry: 'vpInit',
          on: { 'TDH.VP.INIT': [{ guard: 'seamcallOk', target: '#kvmVcpu.inUserspace', actions: 'initVcpuDone' }, { target: '#kvmVcpu.inUserspace', actions: 'initVcpuFailed' }] },
        },
      },
    },
    /**
     * tdx_gmem_post_populate per page: map the GPA in the mirror root (SEPT.ADD for missing levels, PAGE.ADD
     * for the leaf), then TDH.MR.EXTEND the 16 chunks of 256 bytes if the VMM asked for a measurement.
     */
    initMemRegion: {
      initial: 'mappingPage',
      states: {
        mappingPage: { always: { target: '#kvmVcpu.handlingEptViolation.faultin', actions: 'beginPopulateFault' } },
        extending: { always: [{ guard: 'measuring', target: 'extendingChunk' }, { target: 'pageDone' }] },
        extendingChunk: {
          entry: 'mrExtend',
          on: { 'TDH.MR.EXTEND': [{ guard: 'seamcallOk', target: 'chunkDone', actions: 'nextChunk' }, { target: 'failed' }] },
        },
        chunkDone: { always: [{ guard: 'moreChunks', target: 'extendingChunk' }, { target: 'pageDone' }] },
        pageDone: { always: [{ guard: 'morePages', target: 'mappingPage', actions: 'nextPage' }, { target: '#kvmVcpu.inUserspace', actions: ['regionDone', 'endRegion'] }] },
        failed: { always: { target: '#kvmVcpu.inUserspace', actions: ['regionFailed', 'endRegion'] } },
      },
    },
    entering: {
      always: [
        { guard: 'signalPending', target: 'inUserspace', actions: 'exitIntr' },
        { guard: and(['isTd', 'waitingForSeptZap']), target: 'waitingForSeptZap' },
        { guard: 'isTd', target: 'inTdhVpEnter' },
        { target: 'inGuestMode' },
      ],
    },
    /**
     * tdx_vcpu_run with wait_for_sept_zap set returns at once without TDH.VP.ENTER, and KVM_RUN's loop
     * comes back to it, until the zapping thread's retry is done; a signal still ends KVM_RUN.
     */
    waitingForSeptZap: {
      always: { guard: 'signalPending', target: 'inUserspace', actions: 'exitIntr' },
      on: { SEPT_ZAP_DONE: { target: 'entering', actions: 'endWaitForSeptZap' } },
    },
    /** tdx_flush_vp, run on the CPU the vCPU is associated with (§5b.4 step 2, §7.7). */
    flushingVp: {
      entry: 'vpFlush',
      on: { 'TDH.VP.FLUSH': { target: 'inUserspace', actions: 'flushDone' } },
    },
    /** tdx_vcpu_free: TDH.PHYMEM.PAGE.RECLAIM of each TDCX page, then of the TDVPR (§5b.4 step 3). */
    freeing: {
      initial: 'next',
      states: {
        next: { always: [{ guard: 'morePagesToFree', target: 'reclaiming' }, { target: '#kvmVcpu.freed', actions: 'freeDone' }] },
        reclaiming: {
          entry: 'reclaimControlPage',
          on: { 'TDH.PHYMEM.PAGE.RECLAIM': [{ guard: 'seamcallOk', target: 'clearing' }, { target: 'next', actions: 'leakControlPage' }] },
        },
        clearing: { entry: 'clearControlPage', on: { MEM_DONE: { target: 'next', actions: 'nextControlPage' } } },
      },
    },
    /** The vCPU object is gone with its VM. */
    freed: { type: 'final' },
    /** tdx_vcpu_run: the SEAMCALL returns only with a TD exit (§5c.1 steps 3–4). */
    inTdhVpEnter: {
      entry: ['countEntryWhileKicked', 'tdhVpEnter', 'clearEnterGprs'],
      on: {
        EPT_VIOLATION: { target: 'tdExited', actions: 'recordTdExit' },
        TDCALL: { target: 'tdExited', actions: 'recordTdExit' },
        EPT_MISCONFIG: { target: 'tdExited', actions: 'recordTdExit' },
        EXTERNAL_INTERRUPT: { target: 'tdExited', actions: 'recordTdExit' },
        // tdx_exit_handlers_fastpath: BUSY from the entry is "handled", leave with interrupts on, enter again
        // (§5c.1 step 5). Policy busyLeavesFastpath off: enter again at once with interrupts still off, unless
        // wait_for_sept_zap makes tdx_vcpu_run return without entering, which does leave the fastpath.
        BUSY: [
          { guard: and([not('busyLeavesFastpath'), not('waitingForSeptZap')]), target: 'inTdhVpEnter', reenter: true, actions: 'recordTdExit' },
          { target: 'tdExited', actions: 'recordTdExit' },
        ],
        KVM_REQ_OUTSIDE_GUEST_MODE: { actions: ['noteSeptZapWait', 'sendIpi'] },
        KVM_REQ_TLB_FLUSH: { actions: 'sendIpi' },
        SIG_IPI: { actions: 'kickForSignal' },
      },
    },
    /** Back from TDH.VP.ENTER with interrupts off: a pending IPI's handler runs once they are enabled. */
    tdExited: {
      always: [{ guard: 'ipiSent', target: 'takingIpi' }, { target: 'dispatchingExit' }],
    },
    takingIpi: {
      entry: 'localIrqEnable',
      on: { IRQ_HANDLED: { target: 'dispatchingExit', actions: 'clearIpi' } },
    },
    /** tdx_handle_exit (§5c.1 step 6); an external interrupt was the host's and needs nothing more. */
    dispatchingExit: {
      always: [
        { guard: { type: 'exitIs', params: 'EPT_VIOLATION' }, target: 'handlingEptViolation', actions: 'beginEptViolation' },
        { guard: { type: 'exitIs', params: 'TDCALL' }, target: 'handlingTdvmcall' },
        { guard: { type: 'exitIs', params: 'EPT_MISCONFIG' }, target: 'vmDead', actions: 'kvmBugEptMisconfig' },
        { target: 'entering' },
      ],
    },
    /** vmx_vcpu_run: the guest runs until the CPU delivers a VM exit. */
    inGuestMode: {
      entry: ['vmxEnter', 'markLaunched'],
      on: {
        EPT_VIOLATION: { target: 'handlingEptViolation', actions: ['recordVmExit', 'beginEptViolation'] },
        EPT_MISCONFIG: { target: 'handlingEptMisconfig', actions: 'recordVmExit' },
        HLT: 'halted',
      },
    },
    /** tdx_handle_ept_violation / handle_ept_violation → kvm_mmu_page_fault → kvm_tdp_page_fault. */
    handlingEptViolation: {
      initial: 'checking',
      states: {
        checking: {
          always: [
            { guard: 'unexpectedPending', target: '#kvmVcpu.vmDead', actions: 'deathUnexpectedPending' },
            // Policy globalGuestInhibit off: this vCPU's own record decides, no lpage_info read.
            { guard: and(['acceptLevelExit', not('globalGuestInhibit'), 'ownInhibited']), target: 'faultin' },
            { guard: and(['acceptLevelExit', not('globalGuestInhibit')]), target: 'splitting', actions: 'beginSplit' },
            { guard: 'acceptLevelExit', target: 'checkingAcceptLevel', actions: 'beginSplit' },
            { target: 'faultin' },
          ],
        },
        /** tdx_check_accept_level: the unlocked pre-check is safe because the flag is only ever set (§6.iii step 3). */
        checkingAcceptLevel: {
          entry: 'readGuestInhibit',
          on: { LPAGE_INFO: [{ guard: 'guestInhibited', target: 'faultin', actions: 'endSplit' }, { target: 'splitting' }] },
        },
        splitting: {
          initial: 'locking',
          states: {
            locking: { entry: 'lockWrite', on: { MMU_LOCK_ACQUIRED: 'walking' } },
            walking: {
              entry: 'splitWalk',
              on: { TDP_WALK_RESULT: [{ guard: 'hugeLeafCrossing', target: 'blocking', actions: 'recordHuge' }, { target: 'inhibiting' }] },
            },
            // tdx_sept_split_private_spte (§6.iii step 4): the children come back unblocked, no UNBLOCK.
            ...noVcpus('kvmVcpu', 'blocking', 'TDH.MEM.RANGE.BLOCK', 'splitBlock', 'tracking'),
            ...noVcpus('kvmVcpu', 'tracking', 'TDH.MEM.TRACK', 'splitTrack', 'tracked'),
            tracked: { always: [{ guard: 'kickAfterTrack', target: 'kicking' }, { target: 'demoting' }] },
            kicking: kicking('demoting'),
            ...noVcpus('kvmVcpu', 'demoting', 'TDH.MEM.PAGE.DEMOTE', 'splitDemote', 'linking'),
            linking: { entry: 'splitMirror', always: 'inhibiting' },
            inhibiting: {
              entry: ['setGuestInhibit', 'unlockWrite'],
              always: { target: '#kvmVcpu.handlingEptViolation.faultin', actions: 'endSplit' },
            },
          },
        },
        /** kvm_mmu_faultin_pfn: attribute and backing; no memslot → kvm_handle_noslot_fault maps an MMIO SPTE. */
        faultin: {
          entry: 'faultinRequest',
          on: {
            FAULTIN_RESULT: [
              { guard: and(['faultinMismatch', 'isPopulate']), target: '#kvmVcpu.initMemRegion.failed' },
              { guard: 'faultinMismatch', target: '#kvmVcpu.inUserspace', actions: ['exitMemoryFault', 'noteFaultDone'] },
              { target: 'acquiringMmuLock', actions: 'recordFaultin' },
            ],
          },
        },
        acquiringMmuLock: { entry: 'lockRead', on: { MMU_LOCK_ACQUIRED: 'walking' } },
        // is_page_fault_stale: an attribute change (or other invalidation) since kvm_mmu_faultin_pfn → retry.
        walking: {
          entry: 'tdpWalk',
          on: { TDP_WALK_RESULT: [{ guard: and(['staleFaultCheck', 'faultStale']), target: 'unlocking', actions: 'retRetry' }, { target: 'mapping', actions: 'recordPath' }] },
        },
        /** kvm_tdp_mmu_map's loop over the iterator, one level per pass. */
        mapping: {
          always: [
            { guard: 'stepFrozen', target: 'unlocking', actions: 'retRetry' },
            { guard: 'atTargetLevel', target: 'checkingLeaf' },
            { guard: 'stepHugeLeaf', target: '#kvmVcpu.vmDead', actions: 'kvmBugHugeMirror' },
            { guard: 'stepPresent', target: 'mapping', reenter: true, actions: 'descend' },
            { guard: 'isMirror', target: 'freezingNonLeaf' },
            { target: 'linking' },
          ],
        },
        linking: {
          entry: 'linkSp',
          on: {
            SPTE_CMPXCHG_RESULT: [{ guard: 'cmpxchgOk', target: 'mapping', actions: 'linkedSp' }, { target: 'unlocking', actions: 'retRetry' }],
          },
        },
        /** set_external_spte_present for a page table: freeze the parent SPTE first (§7.6). */
        freezingNonLeaf: {
          entry: ['prepareFreezeNonLeaf', 'freezeSpte'],
          on: {
            SPTE_CMPXCHG_RESULT: [{ guard: 'cmpxchgOk', target: 'linkingExternal' }, { target: 'unlocking', actions: ['clearFrozen', 'retRetry'] }],
          },
        },
        linkingExternal: {
          entry: 'seamcallSeptAdd',
          on: {
            'TDH.MEM.SEPT.ADD': [
              { guard: 'seamcallOk', target: 'mapping', actions: ['writeFinal', 'linkedExternal'] },
              { guard: 'seamcallBusy', target: 'unlocking', actions: ['restoreFrozen', 'clearFrozen', 'retRetry'] },
              { target: '#kvmVcpu.vmDead', actions: 'kvmBugSeamcall' },
            ],
          },
        },
        /** tdp_mmu_map_handle_target_level: an MMIO SPTE still emulates; a present leaf is spurious. */
        checkingLeaf: {
          always: [
            { guard: 'leafAlreadyMmio', target: 'unlocking', actions: 'retEmulate' },
            // tdp_mmu_map_handle_target_level: spurious only if the SPTE it would build is already there.
            { guard: 'leafUnchanged', target: 'unlocking', actions: 'retSpurious' },
            { guard: 'isMirror', target: 'freezingLeaf' },
            { target: 'installingLeaf' },
          ],
        },
        freezingLeaf: {
          entry: ['prepareFreezeLeaf', 'freezeSpte'],
          on: {
            SPTE_CMPXCHG_RESULT: [{ guard: 'cmpxchgOk', target: 'settingExternal' }, { target: 'unlocking', actions: ['clearFrozen', 'retRetry'] }],
          },
        },
        settingExternal: {
          entry: 'seamcallSetLeaf',
          on: {
            'TDH.MEM.PAGE.AUG': LEAF_HOOK_RESULT,
            'TDH.MEM.PAGE.ADD': LEAF_HOOK_RESULT,
          },
        },
        installingLeaf: {
          entry: 'installLeafSpte',
          on: {
            SPTE_CMPXCHG_RESULT: [
              { guard: and(['cmpxchgOk', 'faultIsMmio']), target: 'unlocking', actions: 'retEmulate' },
              { guard: 'cmpxchgOk', target: 'unlocking', actions: 'retFixed' },
              { target: 'unlocking', actions: 'retRetry' },
            ],
          },
        },
        unlocking: {
          entry: 'unlockRead',
          always: [
            { guard: and(['isPopulate', 'retFixed']), target: '#kvmVcpu.initMemRegion.extending' },
            { guard: and(['isPopulate', 'retRetry']), target: 'faultin', actions: 'resetFault' },
            { guard: 'isPopulate', target: '#kvmVcpu.initMemRegion.failed' },
            { guard: and(['retEmulate', 'isTd']), target: '#kvmVcpu.entering', actions: 'noteRetryInstr' },
            { guard: 'retEmulate', target: '#kvmVcpu.emulating', actions: 'noteEmulate' },
            // RET_PF_RETRY on a private GPA is retried here, without TDH.VP.ENTER: every fruitless entry
            // would count towards the module's zero-step threshold (§7.3, §7.5). Shared faults re-enter.
            // A pending signal ends the loop: KVM_RUN must return to userspace (kvm_vcpu_has_events etc.).
            { guard: and(['retRetry', 'faultIsPrivate', 'isTd', 'localRetry', not('signalPending')]), target: 'faultin', actions: 'resetFault' },
            { target: '#kvmVcpu.entering', actions: 'noteFaultDone' },
          ],
        },
      },
    },
    /** VMX handle_ept_misconfig → handle_mmio_page_fault: a lockless walk to the MMIO SPTE. */
    handlingEptMisconfig: {
      entry: 'locklessWalk',
      on: {
        TDP_WALK_RESULT: [{ guard: 'mmioSpteCurrent', target: 'emulating', actions: 'noteEmulate' }, { target: 'handlingMisconfigSlowPath', actions: 'beginMisconfigFault' }],
      },
    },
    /** A stale MMIO generation: the regular fault path rebuilds the SPTE. */
    handlingMisconfigSlowPath: {
      always: { target: 'handlingEptViolation.faultin' },
    },
    /** x86_emulate_instruction (VMX only): the MMIO access goes to userspace. */
    emulating: {
      entry: 'vmxMmioExit',
      always: { target: 'inUserspace', actions: 'exitMmio' },
    },
    /** handle_tdvmcall dispatch on R10/R11 (§5c.1 step 6, §4.3). */
    handlingTdvmcall: {
      always: [
        { guard: 'tdvmcallIsKvmHypercall', target: 'vmDead', actions: 'unsupportedHypercall' },
        { guard: 'tdvmcallIsMmio', target: 'emulatingTdMmio' },
        { guard: 'tdvmcallIsHlt', target: 'halted' },
        { guard: 'tdvmcallIsMapGpa', target: 'mappingGpa' },
        { guard: 'tdvmcallIsIo', target: 'emulatingTdIo' },
        { target: 'entering', actions: 'unsupportedSubfunction' },
      ],
    },
    /** tdx_map_gpa's checks in order, then the first chunk to userspace (§6.iv steps 2–3). */
    mappingGpa: {
      always: [
        { guard: 'mapGpaExitDisabled', target: 'entering', actions: 'mapGpaUnsupported' },
        { guard: 'mapGpaInvalid', target: 'entering', actions: 'mapGpaInvalidOperand' },
        { guard: 'mapGpaMisaligned', target: 'entering', actions: 'mapGpaAlignError' },
        { target: 'inUserspace', actions: ['beginMapGpa', 'exitHypercall'] },
      ],
    },

    emulatingTdMmio: {
      always: [{ guard: 'mmioArgsInvalid', target: 'entering', actions: 'invalidMmioArgs' }, { target: 'inUserspace', actions: ['tdMmioExit', 'exitMmio'] }],
    },
    /** tdx_emulate_io (§4.3 Instruction.IO): bad arguments are INVALID_OPERAND; an OUT goes to userspace. */
    emulatingTdIo: {
      always: [{ guard: 'ioArgsInvalid', target: 'entering', actions: 'invalidIoArgs' }, { target: 'inUserspace', actions: 'exitIo' }],
    },
    /** kvm_emulate_halt_noskip → kvm_vcpu_halt: blocked until a wake-up; only a signal wakes it in the model. */
    halted: {
      // kvm_vcpu_check_block: a signal already pending (its kick may have met the HLT exit) ends the block at once.
      always: { guard: 'signalPending', target: 'inUserspace', actions: 'exitIntr' },
      on: { SIG_IPI: { target: 'inUserspace', actions: 'exitIntr' } },
    },
    /** KVM_BUG_ON / kvm_vm_dead: the VM is unusable. */
    vmDead: { entry: 'reportDeath', type: 'final' },
  },
});
