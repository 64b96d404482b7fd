/**
 * The TDX module (SEAM): SEAMCALLs from KVM, TDCALLs from the guest, and the VM exits the CPU delivers
 * while a TD runs. The statechart is the TD's life (§5b.1): no TD → HKID assigned (TDH.MNG.CREATE) →
 * keys configured (TDH.MNG.KEY.CONFIG) → op_state INITIALIZED (TDH.MNG.INIT) → RUNNABLE
 * (TDH.MR.FINALIZE); and at the end (§5b.4) → BLOCKED (TDH.MNG.VPFLUSHDONE, once no vCPU is associated
 * with an LP) → TEARDOWN (TDH.MNG.KEY.FREEID, once the caches were written back) → no TD again when the
 * TDR itself is reclaimed (teardown.ts). The TD's private memory — S-EPT, PAMT, epochs, measurement — is `mem`, changed only
 * by the pure handlers of tdMemory.ts and accept.ts, which check and report exactly as §5a.4–§5a.6 say.
 *
 * A SEAMCALL or TDCALL that must touch page contents (PAGE.ADD's copy, MR.EXTEND's read, ACCEPT's
 * clearing) sends the request to hw.mem and answers its caller only when memory has done it; until then
 * the call is `inflight` for that caller, and ACCEPT keeps its entry lock, so a host SEAMCALL on that
 * entry meanwhile sees TDX_OPERAND_BUSY (§7.2). Likewise the module's other try-locks that are held
 * while other LPs run are held across a step the module sends to itself (`seam-step`), so a SEAMCALL
 * from another LP can be delivered in between and meet the lock:
 * - TDH.VP.ENTER takes epoch_lock shared to count the vCPU into the TD epoch (ENTER_EPOCH, §5c.2 step 3);
 * - a TDH.VP.ENTER whose vCPU is suspected of zero-stepping (§7.5, zeroStep.ts) then takes the S-EPT tree
 *   lock exclusively for its filter (STEPPING_FILTER, step 4);
 * - TDH.MEM.TRACK takes epoch_lock exclusively to advance the epoch (TRACK_EPOCH, §7.4).
 * The other memory SEAMCALLs run in one step, so their locks are met only while they wait for memory
 * (PAGE.ADD's copy and MR.EXTEND's hash with the TDR exclusive, RELOCATE's copy with the TDR, the tree,
 * the entry and both pages) or while a vCPU holds the TDR shared from TDH.VP.ENTER to its TD exit;
 * heldLocks lists them for the next caller (moduleLocks.ts). A memory SEAMCALL first has its TDR operand
 * checked against the TD's lifecycle, which the statechart's state gives (tdrOperand.ts).
 *
 * TLB tracking (§5c.2 step 3, §7.4): an entry that finds the vCPU's epoch older than the TD's (every first
 * entry too: the vCPU epoch starts at 0, the TD's at 1 after TDH.MNG.INIT) owes its LP a flush of the TD's
 * translations; the module sends that INVEPT of the TD's EPTP to the CPU together with the VM entry the
 * CPU performs after it (enterTd), so the guest never runs on a stale TLB.
 */
import { setup, assign, emit, enqueueActions, and, not } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing, type Gprs, type HostSeamcall } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { TDG_SYS_RD_AVAILABLE, TDG_VP_INFO_GPAW_NARROW, TDG_VP_INFO_GPAW_WIDE } from '../../src/arch/tdcall.ts';
import { EXIT_REASON_EPT_VIOLATION, EXIT_REASON_EPT_MISCONFIG, EXIT_REASON_TDCALL, EXIT_REASON_EXTERNAL_INTERRUPT, EXIT_REASON_IO_INSTRUCTION, EXIT_REASON_MSR_WRITE, EPT_VIOLATION_ACC_WRITE, TDX_EXIT_QUAL_CLEARED_BITS, VMX_EPT_EXTENT_CONTEXT } from '../../src/arch/vmx.ts';
import {
  TDX_SUCCESS,
  TDX_NO_VALID_VE_INFO,
  TDX_OPERAND_INVALID,
  TDX_PAGE_METADATA_INCORRECT,
  TDX_OP_STATE_INCORRECT,
  TDX_LIFECYCLE_STATE_INCORRECT,
  TDX_TD_KEYS_NOT_CONFIGURED,
  TDX_EXT_EXIT_QUAL_TYPE_NONE,
  TDX_OPERAND_ID_RCX,
  PT_TDR,
  PT_TDCX,
  PT_TDVPR,
  makeEeq,
  tdxStatusWithOperand,
  TD_ATTR_SEPT_VE_DISABLE,
  TD_CTLS_PENDING_VE_DISABLE,
  TDX_OPERAND_BUSY,
  TDX_OPERAND_ID_SEPT_TREE,
  TDX_OPERAND_ID_TD_EPOCH,
  TDCS_EXEC_TSC_OFFSET,
  TDCS_EXEC_TSC_MULTIPLIER,
} from '../../src/arch/tdxStatus.ts';
import { sharedBit, eptLevels, PAGE_SIZE, PAGE_SHIFT } from '../../src/arch/gpa.ts';
import { MEM_SEAMCALLS, extendMrtd, MRTD_INITIAL, memTrack, trackRefused, relocateComplete, type TdMemory, type MemRequest } from './tdMemory.ts';
import { tdrRefusal, type TdrLifecycle } from './tdrOperand.ts';
import { hold, UNHELD, type ModuleLocks } from './moduleLocks.ts';
import { acceptDecision, acceptComplete, eptViolationDecision } from './accept.ts';
import { hardwareWalk } from './septTree.ts';
import { pamtRangeFree, pamtSet } from './pamt.ts';
import { enterEpoch, exitEpoch, INITIAL_EPOCH, EPOCH_AFTER_MNG_INIT } from './tlbTracking.ts';
import { TD_VCPU_STATE_DETAILS_NON_ARCH_FIELD, TDVPS_PEND_NMI_FIELD, vcpuStateDetails } from './vcpuStateDetails.ts';
import { callerLp, vpFlush, vpFlushDone, cacheWb, keyFreeid, reclaim, type KeyOwner } from './teardown.ts';
import { NO_STEPPING, firstUnmappedGpa, logPrivateEptViolation, noteExitRip, resumeAt, steppingSuspected, type EpfStepping } from './zeroStep.ts';

/** TDCS pages a TDX 1.5 TD has without L2 VMs; page index 3 is the S-EPT root (tdx-module 1.5 `MIN_NUM_TDCS_PAGES`, §1.3). */
export const TDCS_PAGES = 6;
export const TDCS_SEPT_ROOT_INDEX = 3;
/** TDVPS pages without L2 VMs: the TDVPR plus 5 TDCX (tdx-module 1.5 `MIN_TDVPS_PAGES`). */
export const TDVPS_PAGES = 6;

export interface TdxModuleInput {
  gpaw: 48 | 52;
  /** TDVPR page of each vCPU, indexed by vCPU number; KVM hands them over with TDH.VP.CREATE. */
  tdvpr: readonly bigint[];
  /** Where KeyID bits start in a physical address (the platform's MK-TME split); RECLAIM refuses them. */
  hkidShift: number;
  /** Fruitless private EPT faults at one RIP before GPAs are recorded (STEPPING_EPF_THRESHOLD, §7.5; a policy). */
  zeroStepThreshold: number;
}

/** TDVPS state the model needs between messages (§1.3, §5b.1). */
export interface TdVcpu {
  tdvpr: bigint;
  /** TDVPS vCPU state: UNINITIALIZED after VP.CREATE, READY between TD exits, ACTIVE in TD non-root. */
  state: 'NONE' | 'UNINITIALIZED' | 'READY' | 'ACTIVE';
  tdcx: number;
  /** VMLAUNCH the first time, VMRESUME after. */
  launched: boolean;
  /** TDVPS last TD exit type (§5b.1): decides whether TDH.VP.ENTER copies TDVMCALL outputs back. */
  lastExit: 'ASYNC_FAULT' | 'ASYNC_TRAP' | 'TDVMCALL' | null;
  /** RCX of the pending TDVMCALL: which GPRs the guest exposed (§4.3). */
  exposeMask: bigint;
  /** The TD epoch this vCPU entered in (§7.4). */
  vcpuEpoch: number;
  /** The LP this vCPU is associated with (TDH.VP.INIT, TDH.VP.ENTER) until TDH.VP.FLUSH there (§7.7). */
  assocLp: number | null;
  /** The zero-step mitigation's record of fruitless entries (§7.5, zeroStep.ts). */
  stepping: EpfStepping;
  /** A TDH.VP.ENTER between its steps (ENTER_EPOCH, STEPPING_FILTER); null otherwise. */
  entering: Entering | null;
  /** TD VMCS fields the host wrote with TDH.VP.WR, by field id in hex (masked values, §5b.3 step 3). */
  vmcsWrites: Readonly<Record<string, bigint>>;
  /**
   * adjust_tlb_tracking_state found this vCPU's epoch stale on the LP it was already associated with: the
   * TD's translations on that LP are flushed (INVEPT of the TD's EPTP) before the guest runs there again
   * (§5c.2 step 3, §7.4). The flush is issued with the entry that follows; an entry refused meanwhile
   * leaves it owed, which no one can tell apart because the guest does not run in between.
   */
  flushTlb: boolean;
  /** TDVPS VCPU_INDEX: TDH.VP.INIT numbers the vCPUs in the order they are initialised (TDCS NUM_VCPUS before it). */
  vcpuIndex: number | null;
}

/**
 * A TDH.VP.ENTER part way through: the GPRs it was called with, needed when it does enter, and the lock
 * it holds until its next step — epoch_lock shared while it counts the vCPU into the epoch, the S-EPT
 * tree exclusively during the zero-step filter (§5c.2 steps 3–4, §7.2).
 */
export interface Entering {
  regs: Gprs;
  holds: 'EPOCH' | 'SEPT_TREE';
}

/** A call waiting for hw.mem, keyed by the caller's actor id. */
export interface Inflight {
  name: HostSeamcall | 'TDG.MEM.PAGE.ACCEPT';
  regs: Gprs;
  /** What to return if the memory operation completes (PAGE.ADD); ACCEPT and MR.EXTEND finish on completion. */
  result: Gprs;
}

export interface TdxModuleContext {
  gpaw: 48 | 52;
  hkidShift: number;
  /** The KOT entry of the TD's HKID (teardown.ts). */
  kot: KeyOwner;
  sharedMask: bigint;
  /** TD ATTRIBUTES from TD_PARAMS (TDH.MNG.INIT). */
  attributes: bigint;
  /** TD_CTLS; TDH.MNG.INIT sets PENDING_VE_DISABLE from ATTRIBUTES.SEPT_VE_DISABLE (§4.11). */
  tdCtls: bigint;
  /** The TD's secure EPTP: TD_PARAMS' EPTP controls with the S-EPT root's PA (TDH.MNG.INIT); the TLB tag of its translations. */
  eptp: bigint;
  tdcsPages: readonly bigint[];
  mem: TdMemory;
  vcpus: TdVcpu[];
  inflight: Readonly<Record<string, Inflight>>;
  /** The caller whose TDH.MEM.TRACK holds epoch_lock exclusively until its TRACK_EPOCH step (§7.4). */
  tracking: string | null;
  zeroStepThreshold: number;
  /** TD_PARAMS.max_vcpus from TDH.MNG.INIT. */
  maxVcpus: number;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

const kvm = (v: number) => `kvm.vcpu${v}`;
const guest = (v: number) => `guest.vcpu${v}`;
const vcpuOf = (ev: MachineEvent): number => (ev.msg.payload as { vcpu: number }).vcpu;
const PAGE_MASK = ~(PAGE_SIZE - 1n);
const pfnOf = (pa: bigint) => Number(pa >> BigInt(PAGE_SHIFT));
const GPR_BITS = { R10: 10n, R11: 11n, R12: 12n, R13: 13n, R14: 14n, R15: 15n } as const;
const regsOf = (ev: MachineEvent) => ev.msg.payload as Gprs;

/** Keep only the GPRs whose bit is set in a TDVMCALL's RCX bitmap (§4.3, §5c.2 step 6). */
function exposed(mask: bigint, regs: Gprs): Gprs {
  const r: Gprs = {};
  for (const [name, bit] of Object.entries(GPR_BITS) as [keyof typeof GPR_BITS, bigint][]) {
    if ((mask >> bit) & 1n && regs[name] !== undefined) r[name] = regs[name];
  }
  return r;
}

function withVcpu(c: TdxModuleContext, v: number, patch: Partial<TdVcpu>): TdVcpu[] {
  const vcpus = c.vcpus.slice();
  vcpus[v] = { ...vcpus[v]!, ...patch };
  return vcpus;
}

function vcpuByTdvpr(c: TdxModuleContext, tdvpr: bigint): number {
  return c.vcpus.findIndex((v) => v.tdvpr === tdvpr);
}

function memMessage(req: MemRequest, tag: string): Outgoing {
  switch (req.op) {
    case 'COPY':
      return out('hw.mem', 'mem', 'MEM_COPY', { src: req.src, srcKeyid: req.srcKeyid, dst: req.dst, dstKeyid: req.dstKeyid, bytes: req.bytes, tag });
    case 'ZERO':
      return out('hw.mem', 'mem', 'MEM_ZERO', { pa: req.pa, bytes: req.bytes, keyid: req.keyid, tag });
    case 'HASH':
      return out('hw.mem', 'mem', 'MEM_HASH', { pa: req.pa, bytes: req.bytes, keyid: req.keyid, tag });
  }
}

const seamcallReturn = (to: string, name: HostSeamcall, regs: Gprs): Outgoing => out(to, 'seamcall-return', name, regs);

/** A TD exit: the vCPU leaves TD non-root and is counted out of its epoch (§5c.2 step 7). */
function tdExited(c: TdxModuleContext, v: number, lastExit: TdVcpu['lastExit'], stepping: EpfStepping, exposeMask = 0n): Partial<TdxModuleContext> {
  return { vcpus: withVcpu(c, v, { state: 'READY', lastExit, exposeMask, stepping }), mem: { ...c.mem, epoch: exitEpoch(c.mem.epoch, c.vcpus[v]!.vcpuEpoch) } };
}

/**
 * §5c.2 step 6: enter (the vCPU is already counted into its epoch); after a TDVMCALL exit the VMM's outputs
 * go back into the guest's GPRs. A flush owed from step 3 goes to the LP first, which then performs the entry.
 */
function enterTd(c: TdxModuleContext, v: number, regs: Gprs): { next: Partial<TdxModuleContext>; entry: Outgoing } {
  const vc = c.vcpus[v]!;
  const tdcallReturn = vc.lastExit === 'TDVMCALL' ? { RAX: TDX_SUCCESS, ...exposed(vc.exposeMask, regs) } : null;
  const name = vc.launched ? 'VMRESUME' : 'VMLAUNCH';
  const payload = { vcpu: v, tdcallReturn, emulated: null };
  return {
    next: { vcpus: withVcpu(c, v, { state: 'ACTIVE', launched: true, entering: null, flushTlb: false }) },
    entry: vc.flushTlb
      ? out(`hw.cpu${v}`, 'tlb', 'INVEPT', { vcpu: v, type: VMX_EPT_EXTENT_CONTEXT, eptp: c.eptp, then: { name, payload } })
      : out(guest(v), 'vm-entry', name, payload),
  };
}

/** An entry refused after ENTER_EPOCH counted the vCPU in: the count is reverted (§5c.2 step 4). */
function entryRefused(c: TdxModuleContext, v: number, patch: Partial<TdVcpu> = {}): Partial<TdxModuleContext> {
  return { vcpus: withVcpu(c, v, { entering: null, ...patch }), mem: { ...c.mem, epoch: exitEpoch(c.mem.epoch, c.vcpus[v]!.vcpuEpoch) } };
}

const TREE_BUSY = tdxStatusWithOperand(TDX_OPERAND_BUSY, TDX_OPERAND_ID_SEPT_TREE);
const EPOCH_BUSY = tdxStatusWithOperand(TDX_OPERAND_BUSY, TDX_OPERAND_ID_TD_EPOCH);

/** A vCPU's TDH.VP.ENTER holds the S-EPT tree lock exclusively across its stepping filter (§7.5). */
const septTreeHeld = (c: TdxModuleContext): boolean => c.vcpus.some((v) => v.entering?.holds === 'SEPT_TREE');
/** epoch_lock is taken, by a TRACK (exclusive) or by an entry counting its vCPU in (shared). */
const epochHeldExclusive = (c: TdxModuleContext): boolean => c.tracking !== null;
const epochHeld = (c: TdxModuleContext): boolean => epochHeldExclusive(c) || c.vcpus.some((v) => v.entering?.holds === 'EPOCH');

/**
 * The module locks other callers hold across the module's steps, as `caller` would meet them (§7.2,
 * moduleLocks.ts): the TDR shared by every vCPU from TDH.VP.ENTER until its TD exit (the entry keeps it
 * while the guest runs [TM:src/td_transitions/tdh_vp_enter.c]) and by a TRACK between its steps; the
 * tree exclusively by a stepping filter; and whatever a call waiting for memory took.
 */
function heldLocks(c: TdxModuleContext, caller: string): ModuleLocks {
  let tdr = UNHELD;
  let septTree = UNHELD;
  const pages = new Set<number>();
  for (const v of c.vcpus) {
    if (v.state === 'ACTIVE' || v.entering !== null) tdr = hold(tdr, 'S');
    if (v.entering?.holds === 'SEPT_TREE') septTree = hold(septTree, 'X');
  }
  if (c.tracking !== null && c.tracking !== caller) tdr = hold(tdr, 'S');
  for (const [who, f] of Object.entries(c.inflight)) {
    if (who === caller) continue;
    if (f.name === 'TDH.MEM.PAGE.ADD' || f.name === 'TDH.MR.EXTEND') tdr = hold(tdr, 'X');
    if (f.name === 'TDH.MEM.PAGE.RELOCATE') {
      tdr = hold(tdr, 'S');
      septTree = hold(septTree, 'S');
      pages.add(pfnOf(f.result.RCX!));
      pages.add(pfnOf(f.regs.R8!));
    }
  }
  return { tdr, septTree, pages };
}

/** The TDR operand of a memory SEAMCALL (tdrOperand.ts), with the lifecycle the statechart is in. */
function tdrCheck(c: TdxModuleContext, leaf: string, regs: Gprs, caller: string, lifecycle: TdrLifecycle): bigint | null {
  const value = (leaf === 'TDH.MEM.TRACK' ? regs.RCX : regs.RDX) ?? 0n;
  return tdrRefusal(leaf, value, { pamt: c.mem.pamt, lifecycle, tdcsPages: c.tdcsPages.length, hkidShift: c.hkidShift, tdr: c.mem.tdr, locks: heldLocks(c, caller) });
}

function associatedVcpus(c: TdxModuleContext): number {
  return c.vcpus.filter((v) => v.assocLp !== null).length;
}

function initialContext(input: TdxModuleInput): TdxModuleContext {
  return {
    gpaw: input.gpaw,
    hkidShift: input.hkidShift,
    kot: { state: 'FREE', wbinvdPending: false },
    sharedMask: sharedBit(input.gpaw),
    attributes: 0n,
    tdCtls: 0n,
    eptp: 0n,
    tdcsPages: [],
    mem: {
      tdr: 0n,
      hkid: 0,
      sharedMask: sharedBit(input.gpaw),
      topLevel: eptLevels(input.gpaw) - 1,
      septRoot: null,
      sept: {},
      pamt: {},
      epoch: INITIAL_EPOCH,
      opState: 'UNINITIALIZED',
      childCount: 0,
      mrtd: MRTD_INITIAL,
    },
    vcpus: input.tdvpr.map((tdvpr) => ({ tdvpr, state: 'NONE' as const, tdcx: 0, launched: false, lastExit: null, exposeMask: 0n, vcpuEpoch: 0, assocLp: null, stepping: NO_STEPPING, entering: null, vmcsWrites: {}, flushTlb: false, vcpuIndex: null })),
    inflight: {},
    tracking: null,
    zeroStepThreshold: input.zeroStepThreshold,
    maxVcpus: 0,
  };
}

/** TD-scope fields TDH.MNG.RD answers, as the model's TDH.MNG.INIT leaves them (see mngRd). */
const TDCS_FIELDS: ReadonlyMap<bigint, bigint> = new Map([
  [TDCS_EXEC_TSC_OFFSET, 0n],
  [TDCS_EXEC_TSC_MULTIPLIER, 1n << 48n],
]);

/** The memory SEAMCALLs: each checks its TDR operand against the lifecycle of the state it arrives in (tdrOperand.ts). */
const MEM_SEAMCALL_NAMES = [
  'TDH.MEM.SEPT.ADD',
  'TDH.MEM.PAGE.ADD',
  'TDH.MR.EXTEND',
  'TDH.MEM.PAGE.AUG',
  'TDH.MEM.RANGE.BLOCK',
  'TDH.MEM.RANGE.UNBLOCK',
  'TDH.MEM.PAGE.REMOVE',
  'TDH.MEM.SEPT.REMOVE',
  'TDH.MEM.PAGE.DEMOTE',
  'TDH.MEM.PAGE.PROMOTE',
  'TDH.MEM.SEPT.RD',
  'TDH.MEM.PAGE.RELOCATE',
] as const;
const memLeaves = (lifecycle: TdrLifecycle) => ({
  ...Object.fromEntries(MEM_SEAMCALL_NAMES.map((n) => [n, { actions: { type: 'memSeamcall' as const, params: { lifecycle } } }])),
  'TDH.MEM.TRACK': { actions: { type: 'trackTakeEpoch' as const, params: { lifecycle } } },
});
/** Once the keys are gone the TD is no longer KEYS_CONFIGURED: no vCPU enters or flushes (check_td_in_correct_build_state). */
const keysGone = { 'TDH.VP.ENTER': { actions: 'keysNotConfigured' as const }, 'TDH.VP.FLUSH': { actions: 'keysNotConfigured' as const } };
/** TDH.MNG.VPFLUSHDONE from any state with an HKID (HKID_ASSIGNED or KEYS_CONFIGURED). */
const flushDone = { 'TDH.MNG.VPFLUSHDONE': [{ guard: 'flushVpNotDone' as const, actions: 'vpFlushDone' as const }, { target: 'blocked', actions: 'vpFlushDone' as const }] };

export const tdxModuleMachine = setup({
  types: {
    context: {} as TdxModuleContext,
    events: {} as MachineEvent,
    input: {} as TdxModuleInput,
    emitted: {} as Emitted,
  },
  guards: {
    vcpuReady: ({ context, event }) => context.vcpus[vcpuOf(event)]?.state === 'READY',
    steppingSuspected: ({ context, event }) => steppingSuspected(context.vcpus[vcpuOf(event)]!.stepping),
    septTreeHeld: ({ context }) => septTreeHeld(context),
    epochHeldExclusive: ({ context }) => epochHeldExclusive(context),
    sharedGpa: ({ context, event }) => ((event.msg.payload as { gpa: bigint }).gpa & context.sharedMask) !== 0n,
    tdrPageFree: ({ context, event }) => pamtRangeFree(context.mem.pamt, pfnOf(regsOf(event).RCX!), 0),
    allTdcsAdded: ({ context }) => context.tdcsPages.length === TDCS_PAGES,
    /** §5a.6: a private GPA whose S-EPT leaf is PENDING and #VE is wanted. */
    /** VPFLUSHDONE would refuse: some vCPU is still associated with an LP. */
    flushVpNotDone: ({ context }) => vpFlushDone(associatedVcpus(context), context.tdcsPages.length === TDCS_PAGES, context.mem.opState).next === null,
    wbinvdPending: ({ context }) => context.kot.wbinvdPending,
    /** RECLAIM of the TDR that will succeed: the last page of the TD. */
    reclaimsTdr: ({ context, event }) => {
      const pa = regsOf(event).RCX!;
      return pa === context.mem.tdr && reclaim(context.mem, pa, context.hkidShift, true).next !== null;
    },
    privateViolationIsVe: ({ context, event }) => {
      const x = payloadOf(event, 'vm-exit', 'EPT_VIOLATION');
      return eptViolationDecision(context.mem, x.gpa, (context.tdCtls & TD_CTLS_PENDING_VE_DISABLE) !== 0n).kind === 'inject-ve';
    },
  },
  actions: {
    // ---- TD build (§5b.3) ----
    mngCreate: enqueueActions(({ context, event, enqueue }) => {
      const r = regsOf(event);
      enqueue.assign({
        kot: { state: 'ASSIGNED', wbinvdPending: false },
        mem: { ...context.mem, tdr: r.RCX!, hkid: Number(r.RDX!), pamt: pamtSet(context.mem.pamt, pfnOf(r.RCX!), { type: PT_TDR, owner: r.RCX!, bepoch: 0, tdxLevel: 0 }) },
      });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.MNG.CREATE', { RAX: TDX_SUCCESS }));
    }),
    pageNotFree: emit(({ event }) => seamcallReturn(event.msg.from, event.type as HostSeamcall, { RAX: tdxStatusWithOperand(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_RCX) })),
    opStateIncorrect: emit(({ event }) => seamcallReturn(event.msg.from, event.type as HostSeamcall, { RAX: TDX_OP_STATE_INCORRECT })),
    succeed: emit(({ event }) => seamcallReturn(event.msg.from, event.type as HostSeamcall, { RAX: TDX_SUCCESS })),
    /** TDH.MNG.ADDCX: TDCS page n; page 3 becomes the S-EPT root, all of its entries FREE (§1.3). */
    mngAddcx: enqueueActions(({ context, event, enqueue }) => {
      const pa = regsOf(event).RCX!;
      const index = context.tdcsPages.length;
      const pfn = pfnOf(pa);
      let mem: TdMemory = { ...context.mem, pamt: pamtSet(context.mem.pamt, pfn, { type: PT_TDCX, owner: context.mem.tdr, bepoch: 0, tdxLevel: 0 }), childCount: context.mem.childCount + 1 };
      if (index === TDCS_SEPT_ROOT_INDEX) mem = { ...mem, septRoot: pfn, sept: { ...mem.sept, [pfn]: {} } };
      enqueue.assign({ tdcsPages: [...context.tdcsPages, pa], mem });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.MNG.ADDCX', { RAX: TDX_SUCCESS }));
    }),
    /** TDH.MNG.INIT: TD_PARAMS read; PENDING_VE_DISABLE := ATTRIBUTES.SEPT_VE_DISABLE (§4.11); TD epoch 1; op_state INITIALIZED. */
    mngInit: enqueueActions(({ context, event, enqueue }) => {
      const tdParams = payloadOf(event, 'seamcall', 'TDH.MNG.INIT').tdParams;
      const attributes = tdParams?.attributes ?? 0n;
      enqueue.assign({
        attributes,
        maxVcpus: tdParams?.maxVcpus ?? 0,
        eptp: (tdParams?.eptpControls ?? 0n) | (BigInt(context.mem.septRoot ?? 0) << BigInt(PAGE_SHIFT)),
        tdCtls: (attributes & TD_ATTR_SEPT_VE_DISABLE) !== 0n ? TD_CTLS_PENDING_VE_DISABLE : 0n,
        mem: { ...context.mem, opState: 'INITIALIZED', epoch: EPOCH_AFTER_MNG_INIT },
      });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.MNG.INIT', { RAX: TDX_SUCCESS }));
    }),
    vpCreate: enqueueActions(({ context, event, enqueue }) => {
      const tdvpr = regsOf(event).RCX!;
      const v = vcpuByTdvpr(context, tdvpr);
      if (v < 0 || !pamtRangeFree(context.mem.pamt, pfnOf(tdvpr), 0)) {
        enqueue.emit(seamcallReturn(event.msg.from, 'TDH.VP.CREATE', { RAX: tdxStatusWithOperand(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX) }));
        return;
      }
      enqueue.assign({
        vcpus: withVcpu(context, v, { state: 'UNINITIALIZED' }),
        mem: { ...context.mem, pamt: pamtSet(context.mem.pamt, pfnOf(tdvpr), { type: PT_TDVPR, owner: context.mem.tdr, bepoch: 0, tdxLevel: 0 }), childCount: context.mem.childCount + 1 },
      });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.VP.CREATE', { RAX: TDX_SUCCESS }));
    }),
    vpAddcx: enqueueActions(({ context, event, enqueue }) => {
      const r = regsOf(event);
      const v = vcpuByTdvpr(context, r.RDX!);
      enqueue.assign({
        vcpus: withVcpu(context, v, { tdcx: context.vcpus[v]!.tdcx + 1 }),
        mem: { ...context.mem, pamt: pamtSet(context.mem.pamt, pfnOf(r.RCX!), { type: PT_TDCX, owner: context.mem.tdr, bepoch: 0, tdxLevel: 0 }), childCount: context.mem.childCount + 1 },
      });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.VP.ADDCX', { RAX: TDX_SUCCESS }));
    }),
    vpInit: enqueueActions(({ context, event, enqueue }) => {
      const v = vcpuByTdvpr(context, regsOf(event).RCX!);
      const ready = v >= 0 && context.vcpus[v]!.state === 'UNINITIALIZED' && context.vcpus[v]!.tdcx === TDVPS_PAGES - 1;
      // VP.INIT associates the vCPU with the LP it runs on (associate_vcpu_initial).
      const vcpuIndex = context.vcpus.filter((x) => x.vcpuIndex !== null).length;
      if (ready) enqueue.assign({ vcpus: withVcpu(context, v, { state: 'READY', assocLp: callerLp(event.msg.from), vcpuIndex }) });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.VP.INIT', { RAX: ready ? TDX_SUCCESS : tdxStatusWithOperand(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX) }));
    }),
    /**
     * TDH.MNG.RD(RCX TDR, RDX field id) → R8: the TSC offset and multiplier TDH.MNG.INIT computed, which KVM
     * reads right after it (§5b.3 step 2). The model's virtual TSC runs at the native frequency and reads 0
     * at TDH.MNG.INIT, so the multiplier is 1.0 in the module's 16.48 fixed point and the offset 0.
     */
    mngRd: enqueueActions(({ event, enqueue }) => {
      const value = TDCS_FIELDS.get(regsOf(event).RDX!);
      if (value === undefined) {
        enqueue.emit({ type: 'tdxsim.unexpected' });
        return;
      }
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.MNG.RD', { RAX: TDX_SUCCESS, R8: value }));
    }),
    /**
     * TDH.VP.WR(RCX TDVPR, RDX field id, R8 value, R9 write mask): KVM's three writes after TDH.VP.INIT (the
     * posted-interrupt vector and descriptor, the pin-based posted-interrupt control, §5b.3 step 3) land
     * in the TD VMCS. The module also returns the field's previous contents in R8; the TD VMCS's initial
     * values come from the platform's VMX capability MSRs, which the model does not have, so R8 is left out.
     */
    vpWr: enqueueActions(({ context, event, enqueue }) => {
      const r = regsOf(event);
      const v = vcpuByTdvpr(context, r.RCX!);
      if (v < 0 || context.vcpus[v]!.state === 'NONE' || context.vcpus[v]!.state === 'UNINITIALIZED') {
        enqueue.emit(seamcallReturn(event.msg.from, 'TDH.VP.WR', { RAX: tdxStatusWithOperand(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX) }));
        return;
      }
      const field = `0x${r.RDX!.toString(16)}`;
      const old = context.vcpus[v]!.vmcsWrites[field] ?? 0n;
      const written = (old & ~r.R9!) | (r.R8! & r.R9!);
      enqueue.assign({ vcpus: withVcpu(context, v, { vmcsWrites: { ...context.vcpus[v]!.vmcsWrites, [field]: written } }) });
      // PEND_NMI (management field 11): the virtual NMI waits at the CPU, which owns VE_INFO, for VE_INFO to be free (§5a.6).
      if (r.RDX === TDVPS_PEND_NMI_FIELD && (written & 1n) !== 0n) enqueue.emit(out(`hw.cpu${v}`, 'interrupt', 'PEND_NMI', { vcpu: v }));
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.VP.WR', { RAX: TDX_SUCCESS }));
    }),
    /** TDH.VP.RD(RCX TDVPR, RDX field id): the model's KVM reads only the vCPU state details (vcpuStateDetails.ts). */
    vpRd: enqueueActions(({ context, event, enqueue }) => {
      const r = regsOf(event);
      const v = vcpuByTdvpr(context, r.RCX!);
      if (v < 0) {
        enqueue.emit(seamcallReturn(event.msg.from, 'TDH.VP.RD', { RAX: tdxStatusWithOperand(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX) }));
        return;
      }
      if (r.RDX !== TD_VCPU_STATE_DETAILS_NON_ARCH_FIELD) {
        enqueue.emit({ type: 'tdxsim.failure', reason: 'model limit', detail: `TDH.VP.RD of field 0x${r.RDX!.toString(16)}: only TD_VCPU_STATE_DETAILS_NON_ARCH is modelled` });
        return;
      }
      enqueue.emit(out(`hw.cpu${v}`, 'guest-interrupt-status', 'GUEST_INTERRUPT_STATUS_GET', { vcpu: v }));
    }),
    /** The CPU's guest-interrupt status: VMXIP in R8 back to the vCPU's thread (the only caller). */
    returnStateDetails: emit(({ event }) => {
      const s = payloadOf(event, 'guest-interrupt-status', 'GUEST_INTERRUPT_STATUS');
      return seamcallReturn(kvm(s.vcpu), 'TDH.VP.RD', { RAX: TDX_SUCCESS, R8: vcpuStateDetails(s.rvi, s.svi) });
    }),
    mrFinalize: enqueueActions(({ context, event, enqueue }) => {
      enqueue.assign({ mem: { ...context.mem, opState: 'RUNNABLE', mrtd: extendMrtd(context.mem.mrtd, 'MR.FINALIZE') } });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.MR.FINALIZE', { RAX: TDX_SUCCESS }));
    }),

    // ---- Memory SEAMCALLs (tdMemory.ts) ----
    memSeamcall: enqueueActions(({ context, event, enqueue }, params: { lifecycle: TdrLifecycle }) => {
      const name = event.type as HostSeamcall;
      const regs = regsOf(event);
      const refused = tdrCheck(context, name, regs, event.msg.from, params.lifecycle);
      if (refused !== null) {
        enqueue.emit(seamcallReturn(event.msg.from, name, { RAX: refused }));
        return;
      }
      const r = MEM_SEAMCALLS[name]!(context.mem, regs, heldLocks(context, event.msg.from));
      enqueue.assign({ mem: r.td });
      if (r.mem !== null) {
        enqueue.assign({ inflight: { ...context.inflight, [event.msg.from]: { name, regs, result: r.regs } } });
        enqueue.emit(memMessage(r.mem, event.msg.from));
      } else {
        enqueue.emit(seamcallReturn(event.msg.from, name, r.regs));
      }
    }),
    /**
     * TDH.MEM.TRACK takes epoch_lock exclusively (a try-lock: TD_EPOCH BUSY while an entry counts its vCPU
     * in, or another TRACK runs) and advances the epoch in a step of its own, so entries on other LPs can
     * meet the lock meanwhile (§7.2, §7.4).
     */
    trackTakeEpoch: enqueueActions(({ context, event, enqueue }, params: { lifecycle: TdrLifecycle }) => {
      const tdr = tdrCheck(context, 'TDH.MEM.TRACK', regsOf(event), event.msg.from, params.lifecycle);
      if (tdr !== null) {
        enqueue.emit(seamcallReturn(event.msg.from, 'TDH.MEM.TRACK', { RAX: tdr }));
        return;
      }
      const refused = trackRefused(context.mem);
      if (refused !== null) {
        enqueue.emit(seamcallReturn(event.msg.from, 'TDH.MEM.TRACK', refused.regs));
        return;
      }
      if (epochHeld(context)) {
        enqueue.emit(seamcallReturn(event.msg.from, 'TDH.MEM.TRACK', { RAX: EPOCH_BUSY }));
        return;
      }
      enqueue.assign({ tracking: event.msg.from });
      enqueue.emit(out('tdx', 'seam-step', 'TRACK_EPOCH', { caller: event.msg.from }));
    }),
    /** The previous epoch empty → td_epoch + 1, else PREVIOUS_TLB_EPOCH_BUSY; epoch_lock is released. */
    trackEpoch: enqueueActions(({ context, enqueue }) => {
      const r = memTrack(context.mem);
      enqueue.assign({ mem: r.td, tracking: null });
      enqueue.emit(seamcallReturn(context.tracking!, 'TDH.MEM.TRACK', r.regs));
    }),
    /** TDH.PHYMEM.PAGE.WBINVD: write back and invalidate the page's cache lines tagged with the HKID. */
    wbinvd: emit(({ event }) => seamcallReturn(event.msg.from, 'TDH.PHYMEM.PAGE.WBINVD', { RAX: TDX_SUCCESS })),
    /** hw.mem finished the copy, hash or clearing a call was waiting for. */
    memCompleted: enqueueActions(({ context, event, enqueue }) => {
      const tag = (event.msg.payload as { tag: string }).tag;
      const f = context.inflight[tag];
      if (f === undefined) throw new Error(`model bug: hw.mem answered ${event.type} for ${tag}, which has no call in flight`);
      const inflight = { ...context.inflight };
      delete inflight[tag];
      enqueue.assign({ inflight });
      if (f.name === 'TDG.MEM.PAGE.ACCEPT') {
        const done = acceptComplete(context.mem, f.regs.RCX!);
        enqueue.assign({ mem: done.td });
        const v = (f.regs as { vcpu: number }).vcpu;
        enqueue.emit(out(guest(v), 'tdcall-return', 'TDG.MEM.PAGE.ACCEPT', { vcpu: v, RAX: done.status }));
        return;
      }
      if (f.name === 'TDH.MEM.PAGE.RELOCATE') {
        const done = relocateComplete(context.mem, f.regs);
        enqueue.assign({ mem: done.td });
        enqueue.emit(seamcallReturn(tag, f.name, done.regs));
        return;
      }
      if (f.name === 'TDH.MR.EXTEND') {
        const digest = payloadOf(event, 'mem', 'MEM_DIGEST').digest;
        enqueue.assign({ mem: { ...context.mem, mrtd: extendMrtd(context.mem.mrtd, `MR.EXTEND ${f.regs.RCX!.toString(16)} ${digest}`) } });
      }
      enqueue.emit(seamcallReturn(tag, f.name, f.result));
    }),

    // ---- Running the TD ----
    /** §5c.2 step 3: a TRACK holds epoch_lock exclusively → TDX_OPERAND_BUSY | TD_EPOCH, not entered. */
    enterBusyEpoch: emit(({ event }) => out(kvm(vcpuOf(event)), 'td-exit', 'BUSY', { vcpu: vcpuOf(event), RAX: EPOCH_BUSY })),
    /** §5c.2 step 3 under epoch_lock shared: sample td_epoch and count the vCPU into it; ENTER_EPOCH goes on. */
    takeEpochForEntry: enqueueActions(({ context, event, enqueue }) => {
      const p = payloadOf(event, 'seamcall', 'TDH.VP.ENTER');
      const e = enterEpoch(context.mem.epoch);
      const vc = context.vcpus[p.vcpu]!;
      // vCPU N always runs on hw.cpuN, so its association never moves (§7.7); a stale epoch on that LP owes a flush.
      const flushTlb = vc.flushTlb || (vc.vcpuEpoch !== e.vcpuEpoch && vc.assocLp === p.vcpu);
      enqueue.assign({ mem: { ...context.mem, epoch: e.epoch }, vcpus: withVcpu(context, p.vcpu, { vcpuEpoch: e.vcpuEpoch, assocLp: p.vcpu, entering: { regs: p, holds: 'EPOCH' }, flushTlb }) });
      enqueue.emit(out('tdx', 'seam-step', 'ENTER_EPOCH', { vcpu: p.vcpu }));
    }),
    /** epoch_lock released; no zero-step suspicion → enter. */
    vmEntry: enqueueActions(({ context, event, enqueue }) => {
      const v = vcpuOf(event);
      const e = enterTd(context, v, context.vcpus[v]!.entering!.regs);
      enqueue.assign(e.next);
      enqueue.emit(e.entry);
    }),
    /**
     * §7.5: GPAs were recorded since the vCPU last made progress, so the entry takes the tree lock
     * exclusively and walks them before the guest may run; another vCPU's filter holding it → BUSY, and
     * the vCPU is counted out of the epoch again.
     */
    enterBusyTree: enqueueActions(({ context, event, enqueue }) => {
      const v = vcpuOf(event);
      enqueue.assign(entryRefused(context, v));
      enqueue.emit(out(kvm(v), 'td-exit', 'BUSY', { vcpu: v, RAX: TREE_BUSY }));
    }),
    takeTreeForFilter: enqueueActions(({ context, event, enqueue }) => {
      const v = vcpuOf(event);
      enqueue.assign({ vcpus: withVcpu(context, v, { entering: { regs: context.vcpus[v]!.entering!.regs, holds: 'SEPT_TREE' } }) });
      enqueue.emit(out('tdx', 'seam-step', 'STEPPING_FILTER', { vcpu: v }));
    }),
    /**
     * td_entry_stepping_filter: a recorded GPA still unmapped → no entry; the module synthesises an
     * EPT-violation TD exit for it (exit reason 48) without the guest having run: the vCPU is counted out of
     * the epoch again and the zero-step count is untouched. Otherwise the lock goes and the guest enters.
     */
    steppingFilter: enqueueActions(({ context, event, enqueue }) => {
      const v = vcpuOf(event);
      const vc = context.vcpus[v]!;
      const gpa = firstUnmappedGpa(context.mem, vc.stepping);
      if (gpa !== null) {
        enqueue.assign(entryRefused(context, v, { lastExit: 'ASYNC_FAULT' }));
        enqueue.emit(
          out(kvm(v), 'td-exit', 'EPT_VIOLATION', {
            vcpu: v,
            RAX: TDX_SUCCESS | BigInt(EXIT_REASON_EPT_VIOLATION),
            // emulate_ept_violation_td_exit: the qualification is made up as a write access, nothing else.
            RCX: BigInt(EPT_VIOLATION_ACC_WRITE),
            RDX: makeEeq(TDX_EXT_EXIT_QUAL_TYPE_NONE),
            R8: gpa & PAGE_MASK,
            R9: 0n,
          }),
        );
        return;
      }
      const e = enterTd(context, v, vc.entering!.regs);
      enqueue.assign(e.next);
      enqueue.emit(e.entry);
    }),
    /** §6.i 3 / §5a.6: TD exit EPT_VIOLATION, RCX = qualification & ~bits 12:7, R8 = GPA & ~0xFFF, RDX = EEQ. */
    tdExitEptViolation: enqueueActions(({ context, event, enqueue }) => {
      const x = payloadOf(event, 'vm-exit', 'EPT_VIOLATION');
      const shared = (x.gpa & context.sharedMask) !== 0n;
      const d = shared ? null : eptViolationDecision(context.mem, x.gpa, (context.tdCtls & TD_CTLS_PENDING_VE_DISABLE) !== 0n);
      const eeq = d === null || d.kind === 'inject-ve' ? makeEeq(TDX_EXT_EXIT_QUAL_TYPE_NONE) : d.eeq;
      const s = context.vcpus[x.vcpu]!.stepping;
      // Every TD exit this handler makes for a private GPA is logged for zero-step, the PENDING page's
      // exit with PENDING_VE_DISABLE included: the logging comes after the PENDING check and only the
      // #VE injection returns before it (§5a.6, §7.5). Shared faults are the VMM's business.
      const stepping = d === null ? noteExitRip(s, x.rip) : logPrivateEptViolation(s, x.rip, x.gpa & PAGE_MASK, context.zeroStepThreshold);
      enqueue.assign(tdExited(context, x.vcpu, 'ASYNC_FAULT', stepping));
      enqueue.emit(
        out(kvm(x.vcpu), 'td-exit', 'EPT_VIOLATION', {
          vcpu: x.vcpu,
          RAX: TDX_SUCCESS | BigInt(EXIT_REASON_EPT_VIOLATION),
          RCX: x.exitQualification & ~BigInt(TDX_EXIT_QUAL_CLEARED_BITS),
          RDX: eeq,
          R8: x.gpa & PAGE_MASK,
          R9: 0n,
        }),
      );
    }),
    // ---- Teardown (§5b.4, teardown.ts) ----
    vpFlush: enqueueActions(({ context, event, enqueue }) => {
      const v = vcpuByTdvpr(context, regsOf(event).RCX!);
      if (v < 0) {
        enqueue.emit(seamcallReturn(event.msg.from, 'TDH.VP.FLUSH', { RAX: tdxStatusWithOperand(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_RCX) }));
        return;
      }
      const r = vpFlush(context.vcpus[v]!.assocLp, callerLp(event.msg.from));
      if (r.next !== null) enqueue.assign({ vcpus: withVcpu(context, v, r.next) });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.VP.FLUSH', r.regs));
    }),
    vpFlushDone: enqueueActions(({ context, event, enqueue }) => {
      const r = vpFlushDone(associatedVcpus(context), context.tdcsPages.length === TDCS_PAGES, context.mem.opState);
      if (r.next !== null) enqueue.assign({ kot: r.next });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.MNG.VPFLUSHDONE', r.regs));
    }),
    cacheWb: enqueueActions(({ context, event, enqueue }) => {
      const r = cacheWb(context.kot, regsOf(event).RCX ?? 0n);
      if (r.next !== null) enqueue.assign({ kot: r.next });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.PHYMEM.CACHE.WB', r.regs));
    }),
    keyFreeid: enqueueActions(({ context, event, enqueue }) => {
      const r = keyFreeid(context.kot);
      if (r.next !== null) enqueue.assign({ kot: r.next });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.MNG.KEY.FREEID', r.regs));
    }),
    reclaim: enqueueActions(({ context, event, enqueue }) => {
      const r = reclaim(context.mem, regsOf(event).RCX!, context.hkidShift, true);
      if (r.next !== null) enqueue.assign({ mem: r.next });
      enqueue.emit(seamcallReturn(event.msg.from, 'TDH.PHYMEM.PAGE.RECLAIM', r.regs));
    }),
    /** The TDR went back to the host: the TD is gone and the module holds nothing of it. */
    forgetTd: assign(({ context }) => initialContext({ gpaw: context.gpaw, tdvpr: context.vcpus.map((v) => v.tdvpr), hkidShift: context.hkidShift, zeroStepThreshold: context.zeroStepThreshold })),
    reclaimOutsideTeardown: emit(({ context, event }) => seamcallReturn(event.msg.from, 'TDH.PHYMEM.PAGE.RECLAIM', reclaim(context.mem, regsOf(event).RCX!, context.hkidShift, false).regs)),
    keysNotConfigured: emit(({ event }) => seamcallReturn(event.msg.from, event.type as HostSeamcall, { RAX: TDX_TD_KEYS_NOT_CONFIGURED })),
    lifecycleIncorrect: emit(({ event }) => seamcallReturn(event.msg.from, event.type as HostSeamcall, { RAX: TDX_LIFECYCLE_STATE_INCORRECT })),
    /** §5a.6: a PENDING private page and #VE wanted: the module injects it; the CPU owns VE_INFO. */
    injectVe: emit(({ event }) => {
      const x = payloadOf(event, 'vm-exit', 'EPT_VIOLATION');
      return out(`hw.cpu${x.vcpu}`, 've-info', 'VE_INJECT', { vcpu: x.vcpu, exitReason: EXIT_REASON_EPT_VIOLATION, exitQualification: x.exitQualification, gla: x.gla, gpa: x.gpa, instrLength: 0 });
    }),
    /** §5c.3: port I/O in a TD is converted to a #VE; VE_INFO keeps the qualification and the instruction length. */
    injectIoVe: emit(({ event }) => {
      const x = payloadOf(event, 'vm-exit', 'IO_INSTRUCTION');
      return out(`hw.cpu${x.vcpu}`, 've-info', 'VE_INJECT', { vcpu: x.vcpu, exitReason: EXIT_REASON_IO_INSTRUCTION, exitQualification: x.exitQualification, gla: 0n, gpa: 0n, instrLength: x.insnLength });
    }),
    /** §5c.3: a WRMSR the MSR bitmap intercepts (the x2APIC ICR) becomes a #VE too; the guest asks for it with TDG.VP.VMCALL<Instruction.WRMSR>. */
    injectMsrVe: emit(({ event }) => {
      const x = payloadOf(event, 'vm-exit', 'MSR_WRITE');
      return out(`hw.cpu${x.vcpu}`, 've-info', 'VE_INJECT', { vcpu: x.vcpu, exitReason: EXIT_REASON_MSR_WRITE, exitQualification: 0n, gla: 0n, gpa: 0n, instrLength: x.insnLength });
    }),
    /** §2: EPT misconfiguration on a shared GPA is a TD exit (reason 49, GPA bits 11:0 cleared). */
    tdExitEptMisconfig: enqueueActions(({ context, event, enqueue }) => {
      const x = payloadOf(event, 'vm-exit', 'EPT_MISCONFIG');
      enqueue.assign(tdExited(context, x.vcpu, 'ASYNC_FAULT', noteExitRip(context.vcpus[x.vcpu]!.stepping, x.rip)));
      enqueue.emit(out(kvm(x.vcpu), 'td-exit', 'EPT_MISCONFIG', { vcpu: x.vcpu, RAX: TDX_SUCCESS | BigInt(EXIT_REASON_EPT_MISCONFIG), RCX: 0n, RDX: 0n, R8: x.gpa & PAGE_MASK, R9: 0n }));
    }),
    /** A host interrupt while the TD ran: an asynchronous TD exit to KVM with exit reason 1 (§5c.3). */
    tdExitExternalInterrupt: enqueueActions(({ context, event, enqueue }) => {
      const x = payloadOf(event, 'vm-exit', 'EXTERNAL_INTERRUPT');
      enqueue.assign(tdExited(context, x.vcpu, 'ASYNC_TRAP', noteExitRip(context.vcpus[x.vcpu]!.stepping, x.rip)));
      // An asynchronous exit reports the VM-exit interruption information in R9 (§4.1, §5c.2 step 7).
      enqueue.emit(
        out(kvm(x.vcpu), 'td-exit', 'EXTERNAL_INTERRUPT', { vcpu: x.vcpu, RAX: TDX_SUCCESS | BigInt(EXIT_REASON_EXTERNAL_INTERRUPT), RCX: 0n, RDX: 0n, R8: 0n, R9: BigInt(x.interruptionInfo) }),
      );
    }),
    /** §2: on a private GPA an EPT misconfiguration is a fatal TDX-module error. */
    fatalPrivateMisconfig: emit(({ event }): Emitted => ({
      type: 'tdxsim.failure',
      reason: 'TDX module fatal error',
      detail: `EPT misconfiguration on private GPA 0x${payloadOf(event, 'vm-exit', 'EPT_MISCONFIG').gpa.toString(16)}`,
    })),
    /** The VE information area is read through the CPU that owns it (see machines/hw/cpu.ts). */
    readVeInfo: emit(({ event }) => out(`hw.cpu${vcpuOf(event)}`, 've-info', 'VE_INFO_GET', { vcpu: vcpuOf(event) })),
    /** §4.2: RCX exit reason, RDX qualification, R8 GLA, R9 GPA, R10 instruction length/info (not saved for EPT violations). */
    returnVeInfo: emit(({ event }) => {
      const v = payloadOf(event, 've-info', 'VE_INFO');
      const regs: Gprs =
        v.valid === 0 ? { RAX: TDX_NO_VALID_VE_INFO } : { RAX: TDX_SUCCESS, RCX: BigInt(v.exitReason), RDX: v.exitQualification, R8: v.gla, R9: v.gpa, R10: BigInt(v.instrLength) };
      return out(guest(v.vcpu), 'tdcall-return', 'TDG.VP.VEINFO.GET', { vcpu: v.vcpu, ...regs });
    }),
    /** §6.i step 10: copy exposed GPRs, trap-like TD exit 77. */
    tdExitTdvmcall: enqueueActions(({ context, event, enqueue }) => {
      const p = event.msg.payload as Gprs & { vcpu: number };
      // Trap-like: RIP moves past the TDCALL, which is forward progress for the zero-step count (§7.5).
      enqueue.assign(tdExited(context, p.vcpu, 'TDVMCALL', NO_STEPPING, p.RCX!));
      enqueue.emit(out(kvm(p.vcpu), 'td-exit', 'TDCALL', { vcpu: p.vcpu, RAX: TDX_SUCCESS | BigInt(EXIT_REASON_TDCALL), RCX: p.RCX!, ...exposed(p.RCX!, p) }));
    }),
    /**
     * TDG.VP.INFO (1.5.01 tdg_vp_info): RCX the GPA width (52 with MAX_GPAW, else 48), RDX ATTRIBUTES, R8
     * NUM_VCPUS in bits 31:0 and MAX_VCPUS in 63:32, R9 VCPU_INDEX, R10 bit 0 "TDG.SYS.RD available", R11 0.
     */
    vpInfo: emit(({ context, event }) => {
      const v = vcpuOf(event);
      const numVcpus = context.vcpus.filter((x) => x.vcpuIndex !== null).length;
      return out(guest(v), 'tdcall-return', 'TDG.VP.INFO', {
        vcpu: v,
        RAX: TDX_SUCCESS,
        RCX: BigInt(context.gpaw === 52 ? TDG_VP_INFO_GPAW_WIDE : TDG_VP_INFO_GPAW_NARROW),
        RDX: context.attributes,
        R8: BigInt(numVcpus) | (BigInt(context.maxVcpus) << 32n),
        R9: BigInt(context.vcpus[v]!.vcpuIndex ?? 0),
        R10: TDG_SYS_RD_AVAILABLE,
        R11: 0n,
      });
    }),
    /** TDG.MEM.PAGE.ACCEPT (§5a.5): a status back to the guest, a fault-like TD exit, or clearing the page. */
    accept: enqueueActions(({ context, event, enqueue }) => {
      const p = payloadOf(event, 'tdcall', 'TDG.MEM.PAGE.ACCEPT');
      const d = acceptDecision(context.mem, p.RCX!);
      if (d.kind === 'status') {
        enqueue.assign({ mem: d.td });
        enqueue.emit(out(guest(p.vcpu), 'tdcall-return', 'TDG.MEM.PAGE.ACCEPT', { vcpu: p.vcpu, RAX: d.status }));
      } else if (d.kind === 'exit') {
        // Fault-like, but the VM exit was the TDCALL: the zero-step bookkeeping does not see it (§5a.5, §7.5).
        enqueue.assign(tdExited(context, p.vcpu, 'ASYNC_FAULT', resumeAt(context.vcpus[p.vcpu]!.stepping, p.rip)));
        enqueue.emit(
          out(kvm(p.vcpu), 'td-exit', 'EPT_VIOLATION', { vcpu: p.vcpu, RAX: TDX_SUCCESS | BigInt(EXIT_REASON_EPT_VIOLATION), RCX: d.exitQualification, RDX: d.eeq, R8: d.gpa, R9: 0n }),
        );
      } else {
        enqueue.assign({ mem: d.td, inflight: { ...context.inflight, [event.msg.from]: { name: 'TDG.MEM.PAGE.ACCEPT', regs: p, result: {} } } });
        enqueue.emit(memMessage({ op: 'ZERO', pa: d.pa, keyid: context.mem.hkid, bytes: d.bytes }, event.msg.from));
      }
    }),
    /** Hardware walks of the S-EPT: as far as present non-leaf entries go; accesses use the TD's HKID. */
    answerSeptWalk: emit(({ context, event }) => {
      const w = payloadOf(event, 'ept-walk', 'EPT_WALK');
      return out(`hw.cpu${w.vcpu}`, 'ept-walk', 'EPT_WALK_RESULT', {
        vcpu: w.vcpu,
        ept: w.ept,
        gpa: w.gpa,
        path: hardwareWalk(context.mem.sept, context.mem.septRoot!, context.mem.topLevel, w.gpa),
        keyid: context.mem.hkid,
      });
    }),
    notReady: emit(({ event }): Emitted => ({
      type: 'tdxsim.failure',
      reason: 'KVM bug',
      detail: `TDH.VP.ENTER for vCPU ${vcpuOf(event)} which is not READY`,
    })),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'tdxModule',
  context: ({ input }) => initialContext(input),
  initial: 'noTd',
  on: {
    // The memory SEAMCALLs check their TDR, the TD's lifecycle and op_state themselves (§5a.4 step 1), so
    // they are taken in every state; the states without KEYS_CONFIGURED say which lifecycle they are. With
    // no TD (noTd) no page is a PT_TDR, which the TDR check reports first.
    ...memLeaves('KEYS_CONFIGURED'),
    TRACK_EPOCH: { actions: 'trackEpoch' },
    'TDH.PHYMEM.PAGE.WBINVD': { actions: 'wbinvd' },
    'TDH.PHYMEM.CACHE.WB': { actions: 'cacheWb' },
    'TDH.PHYMEM.PAGE.RECLAIM': { actions: 'reclaimOutsideTeardown' },
    'TDH.MNG.KEY.FREEID': { actions: 'lifecycleIncorrect' },
    'TDH.MNG.VPFLUSHDONE': { actions: 'lifecycleIncorrect' },
    'TDH.VP.FLUSH': { actions: 'keysNotConfigured' },
    MEM_DONE: { actions: 'memCompleted' },
    MEM_DIGEST: { actions: 'memCompleted' },
    '*': { actions: 'unexpected' },
  },
  states: {
    /** No TDR yet. */
    noTd: {
      on: { 'TDH.MNG.CREATE': [{ guard: 'tdrPageFree', target: 'hkidAssigned', actions: 'mngCreate' }, { actions: 'pageNotFree' }] },
    },
    /** TDR lifecycle HKID_ASSIGNED: the key must be programmed on every package. */
    hkidAssigned: {
      on: { 'TDH.MNG.KEY.CONFIG': { target: 'keysConfigured', actions: 'succeed' }, ...flushDone, ...memLeaves('HKID_ASSIGNED') },
    },
    /** KEYS_CONFIGURED, op_state UNINITIALIZED: TDCS pages, then TDH.MNG.INIT. */
    keysConfigured: {
      on: {
        'TDH.MNG.ADDCX': [{ guard: 'tdrPageFree', actions: 'mngAddcx' }, { actions: 'pageNotFree' }],
        'TDH.MNG.INIT': [{ guard: 'allTdcsAdded', target: 'initialized', actions: 'mngInit' }, { actions: 'opStateIncorrect' }],
        'TDH.VP.FLUSH': { actions: 'vpFlush' },
        ...flushDone,
      },
    },
    /** op_state INITIALIZED: vCPUs and the initial image; TDH.MR.FINALIZE makes the TD runnable. */
    initialized: {
      on: {
        'TDH.MNG.RD': { actions: 'mngRd' },
        'TDH.VP.CREATE': { actions: 'vpCreate' },
        'TDH.VP.ADDCX': { actions: 'vpAddcx' },
        'TDH.VP.INIT': { actions: 'vpInit' },
        'TDH.VP.WR': { actions: 'vpWr' },
        'TDH.MR.FINALIZE': { target: 'runnable', actions: 'mrFinalize' },
        'TDH.VP.ENTER': { actions: 'opStateIncorrect' },
        'TDH.VP.FLUSH': { actions: 'vpFlush' },
        ...flushDone,
      },
    },
    /** op_state RUNNABLE: TDH.VP.ENTER is allowed (§5b.1). */
    runnable: {
      on: {
        'TDH.MNG.RD': { actions: 'mngRd' },
        'TDH.VP.WR': { actions: 'vpWr' },
        'TDH.VP.RD': { actions: 'vpRd' },
        GUEST_INTERRUPT_STATUS: { actions: 'returnStateDetails' },
        'TDH.VP.ENTER': [
          { guard: not('vcpuReady'), actions: 'notReady' },
          { guard: 'epochHeldExclusive', actions: 'enterBusyEpoch' },
          { actions: 'takeEpochForEntry' },
        ],
        ENTER_EPOCH: [
          { guard: and(['steppingSuspected', 'septTreeHeld']), actions: 'enterBusyTree' },
          { guard: 'steppingSuspected', actions: 'takeTreeForFilter' },
          { actions: 'vmEntry' },
        ],
        STEPPING_FILTER: { actions: 'steppingFilter' },
        EPT_VIOLATION: [
          { guard: 'sharedGpa', actions: 'tdExitEptViolation' },
          { guard: 'privateViolationIsVe', actions: 'injectVe' },
          { actions: 'tdExitEptViolation' },
        ],
        EPT_MISCONFIG: [{ guard: 'sharedGpa', actions: 'tdExitEptMisconfig' }, { actions: 'fatalPrivateMisconfig' }],
        'TDG.VP.VEINFO.GET': { actions: 'readVeInfo' },
        VE_INFO: { actions: 'returnVeInfo' },
        'TDG.MEM.PAGE.ACCEPT': { actions: 'accept' },
        'TDG.VP.VMCALL<#VE.RequestMMIO>': { actions: 'tdExitTdvmcall' },
        'TDG.VP.VMCALL<Instruction.HLT>': { actions: 'tdExitTdvmcall' },
        'TDG.VP.VMCALL<MapGPA>': { actions: 'tdExitTdvmcall' },
        EXTERNAL_INTERRUPT: { actions: 'tdExitExternalInterrupt' },
        EPT_WALK: { actions: 'answerSeptWalk' },
        IO_INSTRUCTION: { actions: 'injectIoVe' },
        MSR_WRITE: { actions: 'injectMsrVe' },
        'TDG.VP.VMCALL<Instruction.WRMSR>': { actions: 'tdExitTdvmcall' },
        'TDG.VP.VMCALL<Instruction.IO>': { actions: 'tdExitTdvmcall' },
        'TDG.VP.VMCALL<ReportFatalError>': { actions: 'tdExitTdvmcall' },
        'TDG.VP.VMCALL<GetTdVmCallInfo>': { actions: 'tdExitTdvmcall' },
        'TDG.VP.VMCALL<GetQuote>': { actions: 'tdExitTdvmcall' },
        'TDG.VP.VMCALL<SetupEventNotifyInterrupt>': { actions: 'tdExitTdvmcall' },
        'TDG.VP.VMCALL': { actions: 'tdExitTdvmcall' },
        'TDG.VP.INFO': { actions: 'vpInfo' },
        'TDH.VP.FLUSH': { actions: 'vpFlush' },
        ...flushDone,
      },
    },
    /** Lifecycle BLOCKED: no vCPU can run or use the HKID; the caches must be written back before KEY.FREEID. */
    blocked: {
      on: {
        ...keysGone,
        ...memLeaves('BLOCKED'),
        'TDH.MNG.KEY.FREEID': [{ guard: 'wbinvdPending', actions: 'keyFreeid' }, { target: 'teardown', actions: 'keyFreeid' }],
      },
    },
    /** Lifecycle TEARDOWN: the HKID is free; the host reclaims the TD's pages, the TDR last. */
    teardown: {
      on: {
        ...keysGone,
        ...memLeaves('TEARDOWN'),
        'TDH.PHYMEM.PAGE.RECLAIM': [{ guard: 'reclaimsTdr', target: 'noTd', actions: ['reclaim', 'forgetTd'] }, { actions: 'reclaim' }],
      },
    },
  },
});

