/**
 * A KVM vCPU thread: the KVM_RUN loop for a TD (TDH.VP.ENTER, §5c.1) or a VMX guest (VMLAUNCH/VMRESUME),
 * exit dispatch, the TDP MMU fault path run by this thread against the kvm.mmu actor, and MMIO emulation.
 *
 * The fault path follows kvm_tdp_mmu_map (§6.i step 4, §7.6): take mmu_lock for read, walk, link every
 * missing page-table level with a cmpxchg of a fresh page from this vCPU's cache, install the leaf with a
 * cmpxchg; a lost cmpxchg or a frozen SPTE ends the attempt with RET_PF_RETRY. A GPA without a memslot
 * gets an MMIO SPTE (per-VM value | generation | GPA, §3.3–§3.5) and RET_PF_EMULATE; for a TD the
 * emulator answers X86EMUL_RETRY_INSTR and KVM re-enters so the guest takes the #VE (§6.i step 5), for VMX
 * KVM emulates the instruction itself. A TD's MMIO then arrives as TDG.VP.VMCALL<#VE.RequestMMIO>, which
 * KVM turns into KVM_EXIT_MMIO and completes into R11 (§6.i steps 11–12).
 */
import { setup, assign, emit, and } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing, type Gprs, type WalkStep, type DecodedInsn, type TdpRoot } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { TDVMCALL_VE_REQUEST_MMIO, TDVMCALL_INSTRUCTION_HLT, TDVMCALL_STATUS_INVALID_OPERAND, TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED } from '../../src/arch/tdcall.ts';
import { EPT_VIOLATION_ACC_READ, EPT_VIOLATION_ACC_WRITE, EPT_VIOLATION_ACC_INSTR, EPT_VIOLATION_PROT_MASK, EPT_VIOLATION_GVA_TRANSLATED } from '../../src/arch/vmx.ts';
import {
  KVM_EXIT_MMIO,
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
  X86EMUL_RETRY_INSTR,
  PG_LEVEL_4K,
} from '../../src/arch/kvmApi.ts';
import { SHADOW_NONPRESENT_VALUE, MMIO_SPTE_GEN_MASK, makeMmioSpte, makeNonLeafSpte, isFrozenSpte, isShadowPresentPte, isMmioSpte, getMmioSpteGeneration, VMX_EPT_MISCONFIG_WX_VALUE, TDX_SHADOW_MMIO_VALUE } from '../../src/arch/spte.ts';
import { sharedBit, gfnDirectBits, gpaToGfn, gfnToGpa, pgLevelIndex } from '../../src/arch/gpa.ts';
import { sizeMask } from '../guest/program.ts';

export interface Memslot {
  /** First GFN and number of 4K pages; GFNs never carry the shared bit (§2). */
  baseGfn: bigint;
  npages: bigint;
  /** guest_memfd-backed slots can hold private memory (§1.4). */
  guestMemfd: boolean;
}

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
  topLevel: number;
}

/** The exit being handled, as KVM recorded it (§5c.1 step 4). */
export interface ExitInfo {
  reason: 'EPT_VIOLATION' | 'EPT_MISCONFIG' | 'TDCALL' | 'HLT';
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

export interface KvmVcpuContext {
  vcpu: number;
  vmType: 'tdx' | 'vmx';
  gpaw: 48 | 52;
  tdvpr: bigint;
  /** kvm->arch.gfn_direct_bits (§1.4); 0 for VMX. */
  gfnDirectBits: bigint;
  memslots: readonly Memslot[];
  memslotsGeneration: number;
  /** kvm->arch.shadow_mmio_value: 0 for a TD, 0x6 (W|X → misconfig) for VMX (§3.3). */
  mmioValue: bigint;
  topLevel: number;
  /** Next free page in this vCPU's page-table page cache. */
  nextCachePfn: number;
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
  return c.memslots.find((s) => gfn >= s.baseGfn && gfn < s.baseGfn + s.npages);
}

function beginFault(c: KvmVcpuContext, gpa: bigint, q: bigint, extraEc: bigint): FaultState {
  const shared = c.vmType === 'vmx' || (gpa & sharedBit(c.gpaw)) !== 0n;
  const isPrivate = !shared;
  const iterGfn = gpaToGfn(gpa);
  const gfn = iterGfn & ~c.gfnDirectBits;
  return {
    gpa,
    iterGfn,
    gfn,
    errorCode: eptViolationErrorCode(q, isPrivate) | extraEc,
    isPrivate,
    root: isPrivate ? 'mirror' : 'direct',
    noSlot: findSlot(c, gfn) === undefined,
    path: [],
    at: 0,
    ret: null,
  };
}

function mmioSpte(c: KvmVcpuContext): bigint {
  return makeMmioSpte({ gfn: fault(c).iterGfn, generation: c.memslotsGeneration, mmioValue: c.mmioValue });
}

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
    faultHasSlot: ({ context }) => !fault(context).noSlot,
    stepFrozen: ({ context }) => isFrozenSpte(stepAt(context).spte),
    atTargetLevel: ({ context }) => stepAt(context).pgLevel === PG_LEVEL_4K,
    stepPresent: ({ context }) => isShadowPresentPte(stepAt(context).spte),
    leafAlreadyMmio: ({ context }) => stepAt(context).spte === mmioSpte(context),
    cmpxchgOk: ({ event }) => payloadOf(event, 'mmu', 'SPTE_CMPXCHG_RESULT').ret === 0,
    retEmulate: ({ context }) => fault(context).ret === RET_PF_EMULATE,
    /** handle_mmio_page_fault: an MMIO SPTE whose generation matches the memslots (§6.i contrast). */
    mmioSpteCurrent: ({ context, event }) => {
      const leaf = payloadOf(event, 'mmu', 'TDP_WALK_RESULT').path.at(-1)!.spte;
      return isMmioSpte(leaf, context.mmioValue) && BigInt(getMmioSpteGeneration(leaf)) === (BigInt(context.memslotsGeneration) & MMIO_SPTE_GEN_MASK);
    },
    tdvmcallIsKvmHypercall: ({ context }) => (context.exit!.gprs!.R10 ?? 0n) !== 0n,
    tdvmcallIsMmio: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_VE_REQUEST_MMIO,
    tdvmcallIsHlt: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_INSTRUCTION_HLT,
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
    /** handle_ept_misconfig's slow path: kvm_mmu_page_fault(gpa, PFERR_RSVD_MASK). */
    beginMisconfigFault: assign({ fault: ({ context }) => beginFault(context, context.exit!.gpa, 0n, PFERR_RSVD_MASK) }),
    lockRead: emit(({ context }) => out(MMU, 'mmu', 'MMU_LOCK_READ', { vcpu: context.vcpu })),
    unlockRead: emit(({ context }) => out(MMU, 'mmu', 'MMU_UNLOCK', { vcpu: context.vcpu, mode: 'read' })),
    tdpWalk: emit(({ context }) => out(MMU, 'mmu', 'TDP_WALK', { vcpu: context.vcpu, root: fault(context).root, gfn: fault(context).iterGfn })),
    /** walk_shadow_page_lockless: no mmu_lock, RCU only. */
    locklessWalk: emit(({ context }) => out(MMU, 'mmu', 'TDP_WALK', { vcpu: context.vcpu, root: 'direct', gfn: gpaToGfn(context.exit!.gpa) })),
    recordPath: assign({ fault: ({ context, event }) => ({ ...fault(context), path: payloadOf(event, 'mmu', 'TDP_WALK_RESULT').path, at: 0 }) }),
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
    installMmioSpte: emit(({ context }) => {
      const s = stepAt(context);
      return out(MMU, 'mmu', 'SPTE_CMPXCHG', {
        vcpu: context.vcpu,
        root: fault(context).root,
        gfn: fault(context).iterGfn,
        pgLevel: s.pgLevel,
        tablePfn: s.tablePfn,
        index: s.index,
        oldSpte: s.spte,
        newSpte: mmioSpte(context),
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
    unsupportedSubfunction: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED }) }),
    kvmBugEptMisconfig: assign({ deathReason: () => 'KVM_BUG_ON: the TDX module returned raw exit reason EPT_MISCONFIG (49) (§5c.1 step 4)' }),
    unmodelledFault: assign({
      deathReason: ({ context }) =>
        `model limit: ${fault(context).isPrivate ? 'private' : 'shared RAM'} fault at GPA 0x${fault(context).gpa.toString(16)}; guest RAM is not modelled yet`,
    }),
    unsupportedHypercall: assign({ deathReason: () => 'model limit: KVM hypercalls (TDVMCALL with R10 != 0) are not modelled' }),
    reportDeath: emit(({ context }): Emitted => ({ type: 'tdxsim.failure', reason: context.deathReason!.startsWith('model limit') ? 'model limit' : 'KVM bug', detail: `kvm.vcpu${context.vcpu}: ${context.deathReason}` })),
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
  on: { '*': { actions: 'unexpected' } },
  states: {
    /** Outside KVM_RUN: the VMM owns the thread. */
    inUserspace: {
      on: {
        KVM_RUN: [{ guard: 'mmioPending', target: 'entering', actions: 'completeMmio' }, { target: 'entering' }],
      },
    },
    entering: {
      always: [{ guard: 'isTd', target: 'inTdhVpEnter' }, { target: 'inGuestMode' }],
    },
    /** tdx_vcpu_run: the SEAMCALL returns only with a TD exit (§5c.1 steps 3–4). */
    inTdhVpEnter: {
      entry: ['tdhVpEnter', 'clearEnterGprs'],
      on: {
        EPT_VIOLATION: { target: 'handlingEptViolation', actions: 'recordTdExit' },
        TDCALL: { target: 'handlingTdvmcall', actions: 'recordTdExit' },
        EPT_MISCONFIG: { target: 'vmDead', actions: 'kvmBugEptMisconfig' },
      },
    },
    /** vmx_vcpu_run: the guest runs until the CPU delivers a VM exit. */
    inGuestMode: {
      entry: ['vmxEnter', 'markLaunched'],
      on: {
        EPT_VIOLATION: { target: 'handlingEptViolation', actions: 'recordVmExit' },
        EPT_MISCONFIG: { target: 'handlingEptMisconfig', actions: 'recordVmExit' },
        HLT: 'halted',
      },
    },
    /** tdx_handle_ept_violation / handle_ept_violation → kvm_mmu_page_fault → kvm_tdp_page_fault. */
    handlingEptViolation: {
      entry: 'beginEptViolation',
      initial: 'faultin',
      states: {
        /** kvm_mmu_faultin_pfn: no memslot → kvm_handle_noslot_fault, which continues to map an MMIO SPTE. */
        faultin: {
          always: [{ guard: 'faultIsPrivate', target: '#kvmVcpu.vmDead', actions: 'unmodelledFault' }, { guard: 'faultHasSlot', target: '#kvmVcpu.vmDead', actions: 'unmodelledFault' }, { target: 'acquiringMmuLock' }],
        },
        acquiringMmuLock: { entry: 'lockRead', on: { MMU_LOCK_ACQUIRED: 'walking' } },
        walking: { entry: 'tdpWalk', on: { TDP_WALK_RESULT: { target: 'mapping', actions: 'recordPath' } } },
        /** kvm_tdp_mmu_map's loop over the iterator, one level per pass. */
        mapping: {
          always: [
            { guard: 'stepFrozen', target: 'unlocking', actions: 'retRetry' },
            { guard: 'atTargetLevel', target: 'checkingLeaf' },
            { guard: 'stepPresent', target: 'mapping', reenter: true, actions: 'descend' },
            { target: 'linking' },
          ],
        },
        linking: {
          entry: 'linkSp',
          on: {
            SPTE_CMPXCHG_RESULT: [{ guard: 'cmpxchgOk', target: 'mapping', actions: 'linkedSp' }, { target: 'unlocking', actions: 'retRetry' }],
          },
        },
        /** tdp_mmu_map_handle_target_level: an identical SPTE is spurious, but an MMIO SPTE still emulates. */
        checkingLeaf: {
          always: [{ guard: 'leafAlreadyMmio', target: 'unlocking', actions: 'retEmulate' }, { target: 'installingLeaf' }],
        },
        installingLeaf: {
          entry: 'installMmioSpte',
          on: {
            SPTE_CMPXCHG_RESULT: [{ guard: 'cmpxchgOk', target: 'unlocking', actions: 'retEmulate' }, { target: 'unlocking', actions: 'retRetry' }],
          },
        },
        unlocking: {
          entry: 'unlockRead',
          always: [
            { guard: and(['retEmulate', 'isTd']), target: '#kvmVcpu.entering', actions: 'noteRetryInstr' },
            { guard: 'retEmulate', target: '#kvmVcpu.emulating', actions: 'noteEmulate' },
            // RET_PF_RETRY on a shared GPA: re-enter and let the guest fault again (no local retry, §7.5).
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
      always: { target: 'handlingEptViolation.acquiringMmuLock' },
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
        { target: 'entering', actions: 'unsupportedSubfunction' },
      ],
    },
    emulatingTdMmio: {
      always: [{ guard: 'mmioArgsInvalid', target: 'entering', actions: 'invalidMmioArgs' }, { target: 'inUserspace', actions: ['tdMmioExit', 'exitMmio'] }],
    },
    /** kvm_emulate_halt_noskip → kvm_vcpu_halt: blocked until a wake-up; the model has no interrupt sources yet. */
    halted: {},
    /** KVM_BUG_ON / kvm_vm_dead: the VM is unusable. */
    vmDead: { entry: 'reportDeath', type: 'final' },
  },
});

