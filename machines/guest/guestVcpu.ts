/**
 * Guest vCPU: runs a program of loads, stores and HLT, and (in a TD) owns the Linux #VE handler.
 *
 * The guest never sees a VM exit: after a fault-like exit it simply gets a VM entry and re-executes the
 * same instruction at the same RIP (§5c.2 step 7). In a TD, MMIO reaches the guest as a #VE (§6.i phase
 * B); the handler first calls TDG.VP.VEINFO.GET (interrupts stay blocked until then, §6.i step 7), panics
 * on an EPT-violation #VE for a private GPA (step 8), and otherwise asks the VMM to emulate the access
 * with TDG.VP.VMCALL<#VE.RequestMMIO> (steps 9–13). A VMX guest has no #VE: KVM emulates for it.
 *
 * Private memory is accepted the way Linux's tdx_accept_memory does it: for each position the largest of
 * 1G, 2M, 4K that is aligned and fits is tried with TDG.MEM.PAGE.ACCEPT, and any non-zero status makes it
 * try the next smaller size; failing at 4K panics (§6.ii A.1, §7.3 "Guest side"). An ACCEPT that ends in
 * an EPT-violation TD exit is fault-like: the next VM entry re-executes the same TDCALL (§5a.5).
 *
 * MapGPA is Linux's tdx_map_gpa (§6.iv steps 1 and 6): TDG.VP.VMCALL<MapGPA> with R12 = start (with the
 * shared bit when converting to shared) and R13 = size; on RETRY it resumes from the GPA in R11, and gives
 * up after 3 RETRYs without progress or when R11 lies outside the range. Converting to private in Linux is
 * MapGPA followed by accepting the range, which a program writes as a `mapGpa` op then an `accept` op.
 *
 * Port I/O (`out`) is a #VE in a TD (§5c.3): the handler reads VE_INFO (exit reason 30, the I/O exit
 * qualification, the instruction length in R10) and, as Linux's handle_io, asks the VMM with
 * TDG.VP.VMCALL<Instruction.IO> (R12 size, R13 = 1 for out, R14 port, R15 value), then steps RIP past
 * the instruction by the length VE_INFO gave.
 *
 * Port input (`in`) takes the same #VE path with R13 = 0; the VMM's answer comes back in R11 and lands
 * in the destination register the way IN writes AL/AX/EAX (8/16 bits merge, 32 bits zero-extend), as
 * handle_in does since the 2026 stable fixes; before them its mask was one bit too wide (GENMASK(8 ×
 * size, 0)), which cleared bit 8 × size of RAX and kept RAX's upper half on IN EAX.
 *
 * A program may also issue a TDG.VP.VMCALL directly with the registers it chooses (`tdvmcall`, as the
 * upstream selftests' tdg_vp_vmcall_* helpers do) and read R10–R15 back, call TDG.VP.INFO (`vpInfo`),
 * branch back (`loop`, counted or until a register holds a value) and assert a register's value
 * (`check`): a mismatch fails the run with the RIP and both values, as a selftest's guest assertion does.
 *
 * Every TDCALL is executed on the vCPU's CPU (hw.cpu), which may take a host interrupt at that boundary
 * instead; the entry after such an exit carries no TDCALL outputs, and the guest issues the TDCALL again.
 * An ended program spins on `jmp .` so that a host IPI can still force the vCPU out of guest mode.
 *
 * `veHandlerPrologue` lets a scenario give the #VE handler instructions it runs before TDG.VP.VEINFO.GET —
 * the window in which a second #VE becomes #DF (§5a.6): e.g. a handler whose stack is in unaccepted memory.
 */
import { hltInterruptBlockedFlag, interruptHandlerMessages, nmiHandlerIret } from './interrupts.ts';
import { setup, assign, emit, enqueueActions, and, not } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing, type Gprs, type NameOf } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { TDG_MEM_PAGE_ACCEPT, TDG_VP_INFO, TDG_VP_VEINFO_GET, TDG_VP_VMCALL, TDVMCALL_EXPOSE_REGS_MASK, TDVMCALL_SUBFUNCTION_NAMES, tdvmcallMessageName, TDVMCALL_VE_REQUEST_MMIO, TDVMCALL_INSTRUCTION_HLT, TDVMCALL_INSTRUCTION_IO, TDVMCALL_INSTRUCTION_WRMSR, TDVMCALL_MAP_GPA, TDX_HYPERCALL_STANDARD, TDVMCALL_STATUS_SUCCESS, TDVMCALL_STATUS_RETRY } from '../../src/arch/tdcall.ts';
import { MSR_X2APIC_ICR, x2apicIcr } from '../../src/arch/apic.ts';
import { EXIT_REASON_EPT_VIOLATION, EXIT_REASON_IO_INSTRUCTION, EXIT_REASON_MSR_WRITE, DF_VECTOR, decodeIoExitQualification } from '../../src/arch/vmx.ts';
import { TDX_SUCCESS } from '../../src/arch/tdxStatus.ts';
import { sharedBit, PAGE_SIZE, TDX_PS_4K } from '../../src/arch/gpa.ts';
import { hex } from '../../src/arch/hex.ts';
import { movToReg, sizeMask, TDCALL_LENGTH, type GuestOp, type GuestReg, type PlacedInsn, type UnsafeContext } from './program.ts';
import { guestPte, PTE_PFN_MASK } from './guestKernel.ts';

type Insn<O extends GuestOp['op']> = Extract<PlacedInsn, { op: O }>;

/** Sub-functions a program may issue with `tdvmcall`: every GHCI one whose KVM side the model has. */
export const PROGRAM_TDVMCALLS: readonly NameOf<'tdcall'>[] = [
  'TDG.VP.VMCALL<GetTdVmCallInfo>',
  'TDG.VP.VMCALL<MapGPA>',
  'TDG.VP.VMCALL<GetQuote>',
  'TDG.VP.VMCALL<ReportFatalError>',
  'TDG.VP.VMCALL<SetupEventNotifyInterrupt>',
  'TDG.VP.VMCALL<Instruction.HLT>',
  'TDG.VP.VMCALL<Instruction.IO>',
  'TDG.VP.VMCALL<Instruction.WRMSR>',
  'TDG.VP.VMCALL<#VE.RequestMMIO>',
];

/** The message name of a TDVMCALL with this R11: its GHCI name, or the bare leaf for a number GHCI does not define. */
export function tdvmcallTdcallName(subfn: number): NameOf<'tdcall'> {
  return TDVMCALL_SUBFUNCTION_NAMES[subfn] === undefined ? 'TDG.VP.VMCALL' : (tdvmcallMessageName(subfn) as NameOf<'tdcall'>);
}

export interface GuestVcpuInput {
  vcpu: number;
  vmType: 'tdx' | 'vmx';
  gpaw: 48 | 52;
  program: readonly PlacedInsn[];
  veHandlerPrologue: readonly PlacedInsn[];
  /** Where the #VE handler's own instructions start: the prologue, then its TDCALLs. */
  veHandlerText: bigint;
  /** What the #VE handler does with an EPT-violation #VE on private memory (scenario `privateVe`). */
  privateVe: 'panic' | 'accept';
  /**
   * Policy tdxEncStatusChangePrepare: set_memory_encrypted converts the page (MapGPA, accept) before its
   * PTE turns private; off, after (before 195edce08b63).
   */
  encPrepareFirst: boolean;
  /** Policy mmioRejectsPageCross: handle_mmio refuses an access that crosses a page (1e7769653b06). */
  mmioRejectsPageCross: boolean;
  /** Policy safeHaltStiAfterTdcall off: tdx_safe_halt is `sti; tdcall` (TDX_HCALL_ISSUE_STI, before v6.3). */
  stiBeforeHaltTdcall?: boolean;
}

/** tdx_accept_memory's progress: [start, end) and the TDX page level being tried at `start`. */
export interface AcceptProgress {
  start: bigint;
  end: bigint;
  level: number;
}

const ACCEPT_LEVELS = [2, 1, 0] as const;
const levelBytes = (l: number) => 0x1000n << BigInt(9 * l);

/** try_accept_one: the largest size ≤ `maxLevel` that is aligned at `start` and fits; -1 if none. */
export function acceptLevelFor(start: bigint, end: bigint, maxLevel = 2): number {
  for (const l of ACCEPT_LEVELS) {
    if (l > maxLevel) continue;
    if ((start & (levelBytes(l) - 1n)) === 0n && end - start >= levelBytes(l)) return l;
  }
  return -1;
}

/** tdx_map_gpa's progress: [start, end) with the shared bit when converting to shared. */
export interface MapGpaProgress {
  start: bigint;
  end: bigint;
  /** RETRYs in a row that made no progress; the third ends the conversion (max_retries_per_page). */
  retries: number;
}

/** tdx_map_gpa gives up after this many RETRYs without progress (§6.iv step 6). */
export const MAP_GPA_MAX_RETRIES_PER_PAGE = 3;

/** What TDG.VP.VEINFO.GET returned (§4.2): exit reason, qualification, GLA, GPA. */
export interface VeInfoSeen {
  exitReason: number;
  exitQualification: bigint;
  gla: bigint;
  gpa: bigint;
}

export interface GuestVcpuContext {
  vcpu: number;
  vmType: 'tdx' | 'vmx';
  /** Linux cc_mask: BIT(gpa_width - 1) (§2); 0 for a VMX guest. */
  sharedMask: bigint;
  program: readonly PlacedInsn[];
  /** Index of the instruction at RIP. */
  pc: number;
  regs: Record<GuestReg, bigint>;
  /** The #VE being handled, as returned by TDG.VP.VEINFO.GET. */
  ve: VeInfoSeen | null;
  accept: AcceptProgress | null;
  mapGpa: MapGpaProgress | null;
  veHandlerPrologue: readonly PlacedInsn[];
  /** Where the #VE handler's own instructions start (the prologue, then its TDCALLs). */
  veHandlerText: bigint;
  /** Index into `veHandlerPrologue` while the #VE handler runs it. */
  prologuePc: number;
  /** Why the guest died, when it did. */
  panic: string | null;
  privateVe: 'panic' | 'accept';
  encPrepareFirst: boolean;
  mmioRejectsPageCross: boolean;
  stiBeforeHaltTdcall: boolean;
  /** The current instruction's translation through the guest page tables: the PTE and the GPA it gives. */
  translated: { gla: bigint; pte: bigint; gpa: bigint } | null;
  /** load_unaligned_zeropad: the second page's translation (null: not present) and the first page's bytes once loaded. */
  zeropad: { next: { pte: bigint; gpa: bigint } | null; low: bigint | null } | null;
  /** set_memory_encrypted/decrypted in progress: the range's GPA (no shared bit), pages, and what is done. */
  setMemory: { gpa: bigint; pages: number; ptesWritten: number; mapped: boolean; accepted: boolean } | null;
  /** accept_memory's current run of unaccepted units, [physStart, physEnd), while arch_accept_memory runs. */
  unacceptedRun: { physStart: bigint; physEnd: bigint } | null;
  /** accept_memory holds interrupts off from its first spin_lock_irqsave to the last spin_unlock_irqrestore. */
  irqsDisabled: boolean;
  /** A context in which a #VE cannot be handled (the syscall gap, NMI entry), while the vCPU is in one. */
  unsafeContext: UnsafeContext | null;
  /** The last WARN the guest printed (a conversion the VMM refused: __set_memory_enc_pgtable's vmm_fail). */
  warning: string | null;
  /** Vectors the interrupt handler took, in order (interrupts.ts). */
  interrupts: readonly number[];
  /** NMIs the NMI handler took. */
  nmis: number;
  /** Passes a counted `loop` has sent back so far, by the loop's program index (absent: none yet). */
  loopCounts: Readonly<Record<number, number>>;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

const cur = (c: GuestVcpuContext): PlacedInsn | undefined => c.program[c.pc];
const curPrologue = (c: GuestVcpuContext): PlacedInsn => c.veHandlerPrologue[c.prologuePc]!;
/**
 * The #VE handler's TDCALLs, as the model lays the handler out after its prologue: TDG.VP.VEINFO.GET
 * first, then the one TDCALL that handles the #VE (RequestMMIO, Instruction.IO, or an ACCEPT of the
 * faulting page). An interrupt taken at one of them reports that address, not the interrupted program's.
 */
const veinfoGetRip = (c: GuestVcpuContext): bigint => c.veHandlerPrologue.reduce((rip, i) => rip + BigInt(i.length), c.veHandlerText);
const handlerTdcallRip = (c: GuestVcpuContext): bigint => veinfoGetRip(c) + BigInt(TDCALL_LENGTH);

/** The GPA a paged access reaches: the PTE's frame (with the shared bit the PTE carries) plus the offset. */
const pteGpa = (pte: bigint, gla: bigint): bigint => (pte & PTE_PFN_MASK) | (gla & (PAGE_SIZE - 1n));
const gpaOf = (c: GuestVcpuContext, i: Extract<PlacedInsn, { op: 'load' | 'store' | 'spinUntil' }>): bigint => (i.paged ? c.translated!.gpa : i.gpa);
/** load_unaligned_zeropad's two halves: 4 bytes at the end of the first page, 4 at the start of the next. */
const ZEROPAD_HALF = 4;

function accessMessage(c: GuestVcpuContext, i: PlacedInsn): Outgoing {
  if (i.op === 'load') return out(`hw.cpu${c.vcpu}`, 'insn', 'LOAD', { vcpu: c.vcpu, rip: i.rip, gla: i.gla, gpa: gpaOf(c, i), size: i.size, length: i.length, reg: i.reg });
  // The loop's load: its own encoding, the RIP of the whole loop (the mov is its first instruction).
  if (i.op === 'spinUntil') return out(`hw.cpu${c.vcpu}`, 'insn', 'LOAD', { vcpu: c.vcpu, rip: i.rip, gla: i.gla, gpa: gpaOf(c, i), size: i.size, length: i.size === 2 || i.size === 8 ? 3 : 2, reg: i.reg });
  if (i.op === 'store') return out(`hw.cpu${c.vcpu}`, 'insn', 'STORE', { vcpu: c.vcpu, rip: i.rip, gla: i.gla, gpa: gpaOf(c, i), size: i.size, length: i.length, value: i.value });
  if (i.op === 'loadUnalignedZeropad') {
    const z = c.zeropad!;
    const second = z.low !== null;
    const gla = second ? i.gla + BigInt(ZEROPAD_HALF) : i.gla;
    const gpa = second ? z.next!.gpa : c.translated!.gpa;
    return out(`hw.cpu${c.vcpu}`, 'insn', 'LOAD', { vcpu: c.vcpu, rip: i.rip, gla, gpa, size: ZEROPAD_HALF, length: i.length, reg: i.reg });
  }
  if (i.op === 'hlt') return out(`hw.cpu${c.vcpu}`, 'insn', 'HLT', { vcpu: c.vcpu, rip: i.rip });
  if (i.op === 'sti') return out(`hw.cpu${c.vcpu}`, 'insn', 'STI', { vcpu: c.vcpu, rip: i.rip });
  if (i.op === 'cli') return out(`hw.cpu${c.vcpu}`, 'insn', 'CLI', { vcpu: c.vcpu, rip: i.rip });
  if (i.op === 'out') return out(`hw.cpu${c.vcpu}`, 'insn', 'OUT', { vcpu: c.vcpu, rip: i.rip, port: i.port, size: i.size, value: outValue(c, i), length: i.length });
  if (i.op === 'in') return out(`hw.cpu${c.vcpu}`, 'insn', 'IN', { vcpu: c.vcpu, rip: i.rip, port: i.port, size: i.size, length: i.length });
  if (i.op === 'ipi') return out(`hw.cpu${c.vcpu}`, 'insn', 'WRMSR', { vcpu: c.vcpu, rip: i.rip, msr: MSR_X2APIC_ICR, value: x2apicIcr(i.to, i.vector), length: i.length });
  throw new Error(`model bug: ${i.op} is not a memory instruction`);
}

/** OUT's operand: the constant, or the low bytes of the register (AL/AX/EAX) when the program names one. */
function outValue(c: GuestVcpuContext, i: Insn<'out'>): bigint {
  return (i.reg !== undefined ? c.regs[i.reg] : i.value!) & sizeMask(i.size);
}

/** Copy named output registers of a TDCALL into program registers (64-bit moves). */
function copyResults(regs: Record<GuestReg, bigint>, results: Readonly<Partial<Record<string, GuestReg>>>, out: Gprs): Record<GuestReg, bigint> {
  const next = { ...regs };
  for (const [from, to] of Object.entries(results)) {
    if (to !== undefined) next[to] = out[from.toUpperCase() as keyof Gprs] ?? 0n;
  }
  return next;
}

/** A `loop` is taken while its count is short of `times` and its `until` value is not yet in the register. */
function loopTaken(c: GuestVcpuContext, i: Insn<'loop'>): boolean {
  if (i.until !== undefined && c.regs[i.until.reg] === i.until.equals) return false;
  return i.times === undefined || (c.loopCounts[c.pc] ?? 0) + 1 < i.times;
}

function retireInto(regs: Record<GuestReg, bigint>, i: PlacedInsn, value: bigint | null): Record<GuestReg, bigint> {
  return (i.op === 'load' || i.op === 'spinUntil') && value !== null ? { ...regs, [i.reg]: movToReg(regs[i.reg], i.size, value) } : regs;
}
const hw = (c: GuestVcpuContext) => `hw.cpu${c.vcpu}`;

/** The TDVMCALL register block Linux builds in __tdx_hypercall: R10 = standard, R11 = sub-function (§4.3). */
function tdvmcall(c: GuestVcpuContext, rip: bigint, subfn: number, args: Gprs): Gprs & { vcpu: number; rip: bigint } {
  return { vcpu: c.vcpu, rip, RAX: BigInt(TDG_VP_VMCALL), RCX: TDVMCALL_EXPOSE_REGS_MASK, R10: TDX_HYPERCALL_STANDARD, R11: BigInt(subfn), ...args };
}

/**
 * What __set_memory_enc_pgtable does next. Private → shared: the PTEs turn shared, then
 * enc_status_change_finish converts (MapGPA). Shared → private: enc_status_change_prepare converts (MapGPA,
 * then tdx_accept_memory) before the PTEs turn private (195edce08b63); before that commit the PTEs turned
 * private first and the conversion came in enc_status_change_finish.
 */
type SetMemoryPhase = 'ptes' | 'mapGpa' | 'accept' | 'done';
function setMemoryPhase(c: GuestVcpuContext): SetMemoryPhase {
  const m = c.setMemory!;
  const ptesDone = m.ptesWritten >= m.pages;
  const mapped = m.mapped;
  if (cur(c)!.op === 'setMemoryDecrypted') return !ptesDone ? 'ptes' : !mapped ? 'mapGpa' : 'done';
  const accepted = m.accepted;
  if (c.encPrepareFirst) return !mapped ? 'mapGpa' : !accepted ? 'accept' : !ptesDone ? 'ptes' : 'done';
  return !ptesDone ? 'ptes' : !mapped ? 'mapGpa' : !accepted ? 'accept' : 'done';
}

export const guestVcpuMachine = setup({
  types: {
    context: {} as GuestVcpuContext,
    events: {} as MachineEvent,
    input: {} as GuestVcpuInput,
    emitted: {} as Emitted,
  },
  guards: {
    programEnded: ({ context }) => cur(context) === undefined,
    /** A paged access (or load_unaligned_zeropad) whose translation this execution has not walked yet. */
    needsWalk: ({ context }) => {
      const i = cur(context);
      const paged = i !== undefined && (((i.op === 'load' || i.op === 'store' || i.op === 'spinUntil') && i.paged === true) || i.op === 'loadUnalignedZeropad');
      return paged && context.translated === null;
    },
    atZeropad: ({ context }) => cur(context)?.op === 'loadUnalignedZeropad',
    /** The spin loop's load read something other than the value it waits for: the loop goes round again. */
    stillSpinning: ({ context, event }) => {
      const i = cur(context);
      if (i?.op !== 'spinUntil') return false;
      return ((payloadOf(event, 'insn', 'RETIRE').value ?? 0n) & sizeMask(i.size)) !== (i.value & sizeMask(i.size));
    },
    atAcceptMemory: ({ context }) => cur(context)?.op === 'acceptMemory',
    atSetMemory: ({ context }) => cur(context)?.op === 'setMemoryEncrypted' || cur(context)?.op === 'setMemoryDecrypted',
    atEnterContext: ({ context }) => cur(context)?.op === 'enterContext',
    atLeaveContext: ({ context }) => cur(context)?.op === 'leaveContext',
    /** The walk found no present PTE: a #PF the kernel cannot fix up (outside load_unaligned_zeropad). */
    pteMissing: ({ event }) => {
      const pte = payloadOf(event, 'guest-mm', 'GUEST_PT_WALK_RESULT').pte;
      return pte === null || (pte & 1n) === 0n;
    },
    /** The instruction's translation was walked afresh after a fault-like exit: the CPU walks again. */
    pagedInsn: ({ context }) => context.translated !== null,
    zeropadFirstHalf: ({ context }) => context.zeropad !== null && context.zeropad.low === null,
    zeropadNextMissing: ({ context }) => context.zeropad !== null && context.zeropad.next === null,
    /** handle_mmio refuses an access that crosses a page, so the #VE goes to the exception fixup (ex_handler_zeropad). */
    zeropadFixup: ({ context }) => context.mmioRejectsPageCross && cur(context)?.op === 'loadUnalignedZeropad' && context.zeropad?.low !== null,
    noUnacceptedRun: ({ event }) => payloadOf(event, 'guest-mm', 'ACCEPT_MEMORY_RANGE').physStart === null,
    morePtes: ({ context }) => context.setMemory!.ptesWritten + 1 < context.setMemory!.pages,
    setMemoryDone: ({ context }) => setMemoryPhase(context) === 'done',
    setMemoryPtesNext: ({ context }) => setMemoryPhase(context) === 'ptes',
    setMemoryMapNext: ({ context }) => setMemoryPhase(context) === 'mapGpa',
    atHlt: ({ context }) => cur(context)?.op === 'hlt',
    atAccept: ({ context }) => cur(context)?.op === 'accept',
    atMapGpa: ({ context }) => cur(context)?.op === 'mapGpa',
    atTdvmcall: ({ context }) => cur(context)?.op === 'tdvmcall',
    atVpInfo: ({ context }) => cur(context)?.op === 'vpInfo',
    atLoop: ({ context }) => cur(context)?.op === 'loop',
    loopTaken: ({ context }) => loopTaken(context, cur(context) as Insn<'loop'>),
    atCheck: ({ context }) => cur(context)?.op === 'check',
    checkFails: ({ context }) => {
      const i = cur(context) as Insn<'check'>;
      return context.regs[i.reg] !== i.equals;
    },
    /** The entry follows a host interrupt taken before the TDCALL ran, not the TDCALL's own exit. */
    safeHalt: ({ context }) => hltInterruptBlockedFlag(cur(context)!) === 0n,
    stiBeforeHaltTdcall: ({ context }) => context.stiBeforeHaltTdcall,
    interruptedBeforeTdcall: ({ event }) => payloadOf(event, 'vm-entry', event.type as 'VMRESUME').tdcallReturn === null,
    mapGpaDone: ({ event }) => payloadOf(event, 'vm-entry', event.type as 'VMRESUME').tdcallReturn!.R10 === TDVMCALL_STATUS_SUCCESS,
    /** RETRY with R11 inside the range and retries left: go on from R11 (§6.iv step 6). */
    mapGpaRetry: ({ context, event }) => {
      const r = payloadOf(event, 'vm-entry', event.type as 'VMRESUME').tdcallReturn!;
      const m = context.mapGpa!;
      if (r.R10 !== TDVMCALL_STATUS_RETRY || r.R11 === undefined || r.R11 < m.start || r.R11 >= m.end) return false;
      return r.R11 !== m.start || m.retries + 1 < MAP_GPA_MAX_RETRIES_PER_PAGE;
    },
    acceptOk: ({ event }) => payloadOf(event, 'tdcall-return', 'TDG.MEM.PAGE.ACCEPT').RAX === TDX_SUCCESS,
    acceptRangeDone: ({ context }) => context.accept!.start + levelBytes(context.accept!.level) >= context.accept!.end,
    canTrySmaller: ({ context }) =>
      (cur(context) as Extract<PlacedInsn, { op: 'accept' }>).fallback !== false && acceptLevelFor(context.accept!.start, context.accept!.end, context.accept!.level - 1) >= 0,
    hasPrologue: ({ context }) => context.veHandlerPrologue.length > 0,
    prologueDone: ({ context }) => context.prologuePc + 1 >= context.veHandlerPrologue.length,
    isTd: ({ context }) => context.vmType === 'tdx',
    /** VMX: KVM emulated the instruction while the guest was out; the entry carries the result. */
    entryCompletesInsn: ({ event }) => payloadOf(event, 'vm-entry', event.type as 'VMRESUME').emulated !== null,
    veinfoFailed: ({ event }) => payloadOf(event, 'tdcall-return', 'TDG.VP.VEINFO.GET').RAX !== TDX_SUCCESS,
    veIsPrivateEptViolation: ({ context, event }) => {
      const r = payloadOf(event, 'tdcall-return', 'TDG.VP.VEINFO.GET');
      return Number(r.RCX) === EXIT_REASON_EPT_VIOLATION && (r.R9! & context.sharedMask) === 0n;
    },
    acceptsOnVe: ({ context }) => context.privateVe === 'accept',
    veIsIo: ({ event }) => Number(payloadOf(event, 'tdcall-return', 'TDG.VP.VEINFO.GET').RCX) === EXIT_REASON_IO_INSTRUCTION,
    veIsMsrWrite: ({ event }) => Number(payloadOf(event, 'tdcall-return', 'TDG.VP.VEINFO.GET').RCX) === EXIT_REASON_MSR_WRITE,
    veIsMmio: ({ event }) => Number(payloadOf(event, 'tdcall-return', 'TDG.VP.VEINFO.GET').RCX) === EXIT_REASON_EPT_VIOLATION,
    tdvmcallFailed: ({ event }) => {
      const ret = payloadOf(event, 'vm-entry', event.type as 'VMRESUME').tdcallReturn;
      return ret === null || ret.R10 !== TDVMCALL_STATUS_SUCCESS;
    },
  },
  actions: {
    /** The CPU performs the instruction at RIP; the hardware decides whether it completes, exits or #VEs. */
    executeInsn: emit(({ context }): Emitted => accessMessage(context, cur(context)!)),
    /** The access completed in memory: a load writes its register the way MOV does; RIP moves on. */
    retireInsn: assign(({ context, event }) => ({ regs: retireInto(context.regs, cur(context)!, payloadOf(event, 'insn', 'RETIRE').value), pc: context.pc + 1, translated: null })),
    beginAccept: assign({
      accept: ({ context }) => {
        const i = cur(context)! as Extract<PlacedInsn, { op: 'accept' }>;
        return { start: i.gpa, end: i.gpa + i.size, level: acceptLevelFor(i.gpa, i.gpa + i.size) };
      },
    }),
    /** TDCALL TDG.MEM.PAGE.ACCEPT: RCX = GPA | page-size code (§0.2); from the #VE handler, the handler's TDCALL. */
    acceptTdcall: emit(({ context }) =>
      out(hw(context), 'tdcall', 'TDG.MEM.PAGE.ACCEPT', {
        vcpu: context.vcpu,
        rip: context.ve !== null ? handlerTdcallRip(context) : cur(context)!.rip,
        RAX: BigInt(TDG_MEM_PAGE_ACCEPT),
        RCX: context.accept!.start | BigInt(context.accept!.level),
      }),
    ),
    acceptNext: assign({
      accept: ({ context }) => {
        const a = context.accept!;
        const start = a.start + levelBytes(a.level);
        return { ...a, start, level: acceptLevelFor(start, a.end) };
      },
    }),
    acceptSmaller: assign({ accept: ({ context }) => ({ ...context.accept!, level: acceptLevelFor(context.accept!.start, context.accept!.end, context.accept!.level - 1) }) }),
    /** The handler accepts the 4K page of the GPA VE_INFO gave, then returns to the faulting instruction. */
    beginVeAccept: assign({
      accept: ({ event }) => {
        const gpa = payloadOf(event, 'tdcall-return', 'TDG.VP.VEINFO.GET').R9! & ~(PAGE_SIZE - 1n);
        return { start: gpa, end: gpa + PAGE_SIZE, level: TDX_PS_4K };
      },
    }),
    veAcceptDone: assign({ accept: () => null, ve: () => null }),
    acceptFinished: assign({ accept: () => null, pc: ({ context }) => context.pc + 1 }),
    beginMapGpa: assign({
      mapGpa: ({ context }) => {
        const i = cur(context)! as Extract<PlacedInsn, { op: 'mapGpa' }>;
        const bit = i.to === 'shared' ? context.sharedMask : 0n;
        return { start: i.gpa | bit, end: (i.gpa + i.size) | bit, retries: 0 };
      },
    }),
    mapGpaTdcall: emit(({ context }) => {
      const m = context.mapGpa!;
      // u64 arithmetic, as in C: a range that crosses the shared bit wraps, and KVM refuses it.
      return out(hw(context), 'tdcall', 'TDG.VP.VMCALL<MapGPA>', tdvmcall(context, cur(context)!.rip, TDVMCALL_MAP_GPA, { R12: m.start, R13: BigInt.asUintN(64, m.end - m.start) }));
    }),
    mapGpaResume: assign({
      mapGpa: ({ context, event }) => {
        const next = payloadOf(event, 'vm-entry', event.type as 'VMRESUME').tdcallReturn!.R11!;
        const m = context.mapGpa!;
        return next === m.start ? { ...m, retries: m.retries + 1 } : { ...m, start: next, retries: 0 };
      },
    }),
    mapGpaFinished: assign({ mapGpa: () => null, pc: ({ context }) => context.pc + 1 }),
    panicMapGpa: assign({
      panic: ({ context, event }) => {
        const r = payloadOf(event, 'vm-entry', event.type as 'VMRESUME').tdcallReturn!;
        return `MapGPA of ${hex(context.mapGpa!.start)}..${hex(context.mapGpa!.end)} failed (R10=${hex(r.R10 ?? 0n)} R11=${hex(r.R11 ?? 0n)}): set_memory_${context.mapGpa!.start & context.sharedMask ? 'decrypted' : 'encrypted'}() fails`;
      },
    }),
    recordTranslation: assign({
      translated: ({ event }) => {
        const r = payloadOf(event, 'guest-mm', 'GUEST_PT_WALK_RESULT');
        return { gla: r.va, pte: r.pte!, gpa: pteGpa(r.pte!, r.va) };
      },
    }),
    walkPage: emit(({ context }) => out('guest.kernel', 'guest-mm', 'GUEST_PT_WALK', { vcpu: context.vcpu, va: (cur(context) as { gla: bigint }).gla })),
    walkNextPage: emit(({ context }) => out('guest.kernel', 'guest-mm', 'GUEST_PT_WALK', { vcpu: context.vcpu, va: (cur(context) as { gla: bigint }).gla + BigInt(ZEROPAD_HALF) })),
    recordNextPage: assign({
      zeropad: ({ event }) => {
        const r = payloadOf(event, 'guest-mm', 'GUEST_PT_WALK_RESULT');
        const present = r.pte !== null && (r.pte & 1n) !== 0n;
        return { next: present ? { pte: r.pte!, gpa: pteGpa(r.pte!, r.va) } : null, low: null };
      },
    }),
    /** cmp; jne: the loaded value goes to the register and the loop's load runs again (walked again if paged). */
    spinAgain: assign(({ context, event }) => ({ regs: retireInto(context.regs, cur(context)!, payloadOf(event, 'insn', 'RETIRE').value), translated: null })),
    /** A fault-like exit: the instruction runs again from its page walk. */
    forgetTranslation: assign({ translated: () => null, zeropad: () => null }),
    keepLowHalf: assign({ zeropad: ({ context, event }) => ({ ...context.zeropad!, low: payloadOf(event, 'insn', 'RETIRE').value ?? 0n }) }),
    retireZeropad: assign(({ context, event }) => {
      const i = cur(context)! as Extract<PlacedInsn, { op: 'loadUnalignedZeropad' }>;
      const high = payloadOf(event, 'insn', 'RETIRE').value ?? 0n;
      const value = (context.zeropad!.low! & sizeMask(ZEROPAD_HALF)) | ((high & sizeMask(ZEROPAD_HALF)) << BigInt(8 * ZEROPAD_HALF));
      return { regs: { ...context.regs, [i.reg]: value }, pc: context.pc + 1, translated: null, zeropad: null };
    }),
    /** ex_handler_zeropad: the bytes of the first page, the rest zero; RIP moves past the load. */
    zeropadFixupFromRetire: assign(({ context, event }) => {
      const i = cur(context)! as Extract<PlacedInsn, { op: 'loadUnalignedZeropad' }>;
      const low = payloadOf(event, 'insn', 'RETIRE').value ?? 0n;
      return { regs: { ...context.regs, [i.reg]: low & sizeMask(ZEROPAD_HALF) }, pc: context.pc + 1, translated: null, zeropad: null };
    }),
    zeropadFixupAfterVe: assign(({ context }) => {
      const i = cur(context)! as Extract<PlacedInsn, { op: 'loadUnalignedZeropad' }>;
      return { regs: { ...context.regs, [i.reg]: context.zeropad!.low! & sizeMask(ZEROPAD_HALF) }, pc: context.pc + 1, translated: null, zeropad: null, ve: null };
    }),
    panicPageFault: assign({ panic: ({ event }) => `BUG: unable to handle page fault for address: ${hex(payloadOf(event, 'guest-mm', 'GUEST_PT_WALK_RESULT').va)} (not present)` }),
    enterContext: assign({ unsafeContext: ({ context }) => (cur(context) as Extract<PlacedInsn, { op: 'enterContext' }>).context, pc: ({ context }) => context.pc + 1 }),
    leaveContext: assign({ unsafeContext: () => null, pc: ({ context }) => context.pc + 1 }),
    acceptMemoryBegin: enqueueActions(({ context, enqueue }) => {
      const i = cur(context)! as Extract<PlacedInsn, { op: 'acceptMemory' }>;
      enqueue.assign({ irqsDisabled: true });
      enqueue.emit(out('guest.kernel', 'guest-mm', 'ACCEPT_MEMORY_BEGIN', { vcpu: context.vcpu, start: i.gpa, end: i.gpa + i.size }));
    }),
    beginUnacceptedRun: assign(({ event }) => {
      const r = payloadOf(event, 'guest-mm', 'ACCEPT_MEMORY_RANGE');
      return { unacceptedRun: { physStart: r.physStart!, physEnd: r.physEnd! }, accept: { start: r.physStart!, end: r.physEnd!, level: acceptLevelFor(r.physStart!, r.physEnd!) } };
    }),
    acceptMemoryClear: emit(({ context }) => out('guest.kernel', 'guest-mm', 'ACCEPT_MEMORY_CLEAR', { vcpu: context.vcpu, ...context.unacceptedRun! })),
    unacceptedRunAccepted: assign({ accept: () => null }),
    acceptMemoryFinished: assign({ unacceptedRun: () => null, irqsDisabled: () => false, pc: ({ context }) => context.pc + 1 }),
    beginSetMemory: assign({
      setMemory: ({ context, event }) => {
        const r = payloadOf(event, 'guest-mm', 'GUEST_PT_WALK_RESULT');
        const i = cur(context)! as Extract<PlacedInsn, { op: 'setMemoryEncrypted' | 'setMemoryDecrypted' }>;
        return { gpa: r.pte! & PTE_PFN_MASK & ~context.sharedMask, pages: i.pages, ptesWritten: 0, mapped: false, accepted: false };
      },
    }),
    /** __change_page_attr: the next PTE of the range gets (or loses) the shared bit. */
    writePte: emit(({ context }) => {
      const m = context.setMemory!;
      const i = cur(context)! as Extract<PlacedInsn, { op: 'setMemoryEncrypted' | 'setMemoryDecrypted' }>;
      const off = BigInt(m.ptesWritten) * PAGE_SIZE;
      const pte = guestPte(m.gpa + off, i.op === 'setMemoryDecrypted', context.sharedMask).pte;
      return out('guest.kernel', 'guest-mm', 'GUEST_PTE_WRITE', { vcpu: context.vcpu, va: i.gla + off, pte });
    }),
    ptesWritten: assign({ setMemory: ({ context }) => ({ ...context.setMemory!, ptesWritten: context.setMemory!.ptesWritten + 1 }) }),
    beginSetMemoryMapGpa: assign({
      mapGpa: ({ context }) => {
        const m = context.setMemory!;
        const bit = cur(context)!.op === 'setMemoryDecrypted' ? context.sharedMask : 0n;
        return { start: m.gpa | bit, end: (m.gpa + BigInt(m.pages) * PAGE_SIZE) | bit, retries: 0 };
      },
    }),
    setMemoryMapped: assign({ mapGpa: () => null, setMemory: ({ context }) => ({ ...context.setMemory!, mapped: true }) }),
    beginSetMemoryAccept: assign({
      accept: ({ context }) => {
        const m = context.setMemory!;
        const end = m.gpa + BigInt(m.pages) * PAGE_SIZE;
        return { start: m.gpa, end, level: acceptLevelFor(m.gpa, end) };
      },
    }),
    setMemoryAccepted: assign({ accept: () => null, setMemory: ({ context }) => ({ ...context.setMemory!, accepted: true }) }),
    setMemoryFinished: assign({ setMemory: () => null, pc: ({ context }) => context.pc + 1 }),
    /** __set_memory_enc_pgtable's vmm_fail: WARN_ONCE and an error for the caller; the guest goes on. */
    setMemoryVmmFailed: assign(({ context }) => {
      const i = cur(context)! as Extract<PlacedInsn, { op: 'setMemoryEncrypted' | 'setMemoryDecrypted' }>;
      return {
        warning: `CPA VMM failure to convert memory (addr=${hex(i.gla)}, numpages=${i.pages}) to ${i.op === 'setMemoryDecrypted' ? 'shared' : 'private'}: -5`,
        setMemory: null,
        mapGpa: null,
        accept: null,
        pc: context.pc + 1,
      };
    }),
    /** `jmp .` right after the program's last instruction (a program has at least one). */
    spin: emit(({ context }) => {
      const last = context.program.at(-1)!;
      return out(hw(context), 'insn', 'SPIN', { vcpu: context.vcpu, rip: last.rip + BigInt(last.length) });
    }),
    panicAccept: assign({ panic: ({ context }) => `TDX: Failed to accept memory (at ${hex(context.accept!.start)})` }),
    executePrologue: emit(({ context }): Emitted => accessMessage(context, curPrologue(context))),
    retirePrologue: assign(({ context, event }) => ({ regs: retireInto(context.regs, curPrologue(context), payloadOf(event, 'insn', 'RETIRE').value), prologuePc: context.prologuePc + 1 })),
    resetPrologue: assign({ prologuePc: () => 0 }),
    /** Linux TD guests halt with TDG.VP.VMCALL<Instruction.HLT>, R12 = interrupts-blocked flag (§4.3, interrupts.ts). */
    tdvmcallHlt: emit(({ context }) =>
      out(hw(context), 'tdcall', 'TDG.VP.VMCALL<Instruction.HLT>', tdvmcall(context, cur(context)!.rip, TDVMCALL_INSTRUCTION_HLT, { R12: hltInterruptBlockedFlag(cur(context)!) })),
    ),
    /** tdx_safe_halt's raw_local_irq_enable after the TDCALL returned. */
    stiAfterHalt: emit(({ context }) => out(hw(context), 'insn', 'STI', { vcpu: context.vcpu, rip: cur(context)!.rip })),
    takeInterrupt: enqueueActions(({ context, event, enqueue }) => {
      enqueue.assign({ interrupts: [...context.interrupts, payloadOf(event, 'interrupt', 'VIRTUAL_INTERRUPT').vector] });
      for (const m of interruptHandlerMessages(context.vcpu)) enqueue.emit(m);
    }),
    /** exc_nmi: counted, then IRET (no EOI: an NMI is not in the ISR). */
    takeNmi: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ nmis: context.nmis + 1 });
      enqueue.emit(nmiHandlerIret(context.vcpu));
    }),
    veinfoGet: emit(({ context }) => out(hw(context), 'tdcall', 'TDG.VP.VEINFO.GET', { vcpu: context.vcpu, rip: veinfoGetRip(context), RAX: BigInt(TDG_VP_VEINFO_GET) })),
    recordVe: assign({
      ve: ({ event }) => {
        const r = payloadOf(event, 'tdcall-return', 'TDG.VP.VEINFO.GET');
        return { exitReason: Number(r.RCX), exitQualification: r.RDX!, gla: r.R8!, gpa: r.R9! };
      },
    }),
    /** handle_mmio: the instruction at RIP is decoded by the guest itself; R14 = GPA from VE info (§6.i 9). */
    requestMmio: emit(({ context }) => {
      const op = cur(context)!;
      // load_unaligned_zeropad reaches here only when handle_mmio lacks the page-cross check: it decodes an 8-byte mov.
      const i = (op.op === 'loadUnalignedZeropad' ? { op: 'load', size: 8 } : op) as Extract<GuestOp, { op: 'load' | 'store' }>;
      const write = i.op === 'store';
      return out(hw(context), 'tdcall', 'TDG.VP.VMCALL<#VE.RequestMMIO>', tdvmcall(context, handlerTdcallRip(context), TDVMCALL_VE_REQUEST_MMIO, {
        R12: BigInt(i.size),
        R13: write ? 1n : 0n,
        R14: context.ve!.gpa,
        R15: write ? i.value & sizeMask(i.size) : 0n,
      }));
    }),
    /** handle_io: size, direction and port come from the exit qualification VE_INFO holds; OUT's value from the register. */
    requestIo: emit(({ context }) => {
      const io = decodeIoExitQualification(context.ve!.exitQualification);
      const i = cur(context)! as Insn<'out' | 'in'>;
      return out(hw(context), 'tdcall', 'TDG.VP.VMCALL<Instruction.IO>', tdvmcall(context, handlerTdcallRip(context), TDVMCALL_INSTRUCTION_IO, {
        R12: BigInt(io.size),
        R13: io.isIn ? 0n : 1n,
        R14: BigInt(io.port),
        R15: i.op === 'out' ? outValue(context, i) & sizeMask(io.size) : 0n,
      }));
    }),
    /** handle_wrmsr: R12 = ECX, R13 = EDX:EAX, from the registers of the WRMSR the #VE interrupted. */
    requestWrmsr: emit(({ context }) => {
      const i = cur(context)! as Insn<'ipi'>;
      return out(hw(context), 'tdcall', 'TDG.VP.VMCALL<Instruction.WRMSR>', tdvmcall(context, handlerTdcallRip(context), TDVMCALL_INSTRUCTION_WRMSR, { R12: BigInt(MSR_X2APIC_ICR), R13: x2apicIcr(i.to, i.vector) }));
    }),
    /** The WRMSR is done: RIP += ve->instr_len. */
    completeWrmsr: assign(({ context }) => ({ pc: context.pc + 1, ve: null })),
    /** handle_in writes R11's low bytes into AL/AX/EAX; then RIP += ve->instr_len. */
    completeIo: assign(({ context, event }) => {
      const i = cur(context)!;
      const ret = payloadOf(event, 'vm-entry', event.type as 'VMRESUME').tdcallReturn!;
      const regs = i.op === 'in' ? { ...context.regs, [i.reg]: movToReg(context.regs[i.reg], i.size, ret.R11 ?? 0n) } : context.regs;
      return { regs, pc: context.pc + 1, ve: null };
    }),
    /** The TDVMCALL exactly as the program gives it: Linux's RCX mask, R10–R15 as written. */
    rawTdvmcall: emit(({ context }) => {
      const i = cur(context) as Insn<'tdvmcall'>;
      const regs = { ...tdvmcall(context, i.rip, i.subfunction, { R12: i.r12, R13: i.r13, R14: i.r14, R15: i.r15 }), R10: i.r10 };
      return out(hw(context), 'tdcall', tdvmcallTdcallName(i.subfunction), regs);
    }),
    /** The TDVMCALL returned: copy the outputs the program asked for, RIP moves on. */
    tdvmcallReturned: assign(({ context, event }) => {
      const i = cur(context) as Insn<'tdvmcall'>;
      const ret = payloadOf(event, 'vm-entry', event.type as 'VMRESUME').tdcallReturn!;
      return { regs: copyResults(context.regs, i.results, ret), pc: context.pc + 1 };
    }),
    vpInfoTdcall: emit(({ context }) => out(hw(context), 'tdcall', 'TDG.VP.INFO', { vcpu: context.vcpu, rip: cur(context)!.rip, RAX: BigInt(TDG_VP_INFO) })),
    vpInfoReturned: assign(({ context, event }) => {
      const i = cur(context) as Insn<'vpInfo'>;
      return { regs: copyResults(context.regs, i.results, payloadOf(event, 'tdcall-return', 'TDG.VP.INFO')), pc: context.pc + 1 };
    }),
    loopBack: assign(({ context }) => {
      const i = cur(context) as Insn<'loop'>;
      return { loopCounts: { ...context.loopCounts, [context.pc]: (context.loopCounts[context.pc] ?? 0) + 1 }, pc: i.to };
    }),
    /** The loop falls through; a later pass over it counts afresh, as an outer loop re-running it would. */
    loopDone: assign(({ context }) => {
      const counts = { ...context.loopCounts };
      delete counts[context.pc];
      return { loopCounts: counts, pc: context.pc + 1 };
    }),
    failCheck: assign({
      panic: ({ context }) => {
        const i = cur(context) as Insn<'check'>;
        return `check at RIP ${hex(i.rip)} failed: ${i.reg} = ${hex(context.regs[i.reg])}, expected ${hex(i.equals)}`;
      },
    }),
    reportAssertion: emit(({ context }): Emitted => ({ type: 'tdxsim.failure', reason: 'guest assertion', detail: `guest.vcpu${context.vcpu}: ${context.panic}` })),
    panicWrmsr: assign({ panic: () => 'WRMSR emulation failed: TDG.VP.VMCALL<Instruction.WRMSR> returned an error (the #VE handler fails, the kernel dies)' }),
    panicIo: assign({ panic: () => 'port I/O emulation failed: TDG.VP.VMCALL<Instruction.IO> returned an error (#VE handler fails, the kernel dies)' }),
    /** The VMM's answer is in R11 (§6.i 13): write the destination register, advance RIP. */
    completeMmio: assign(({ context, event }) => {
      const i = cur(context)!;
      const ret = payloadOf(event, 'vm-entry', event.type as 'VMRESUME').tdcallReturn!;
      const regs =
        i.op === 'load' ? { ...context.regs, [i.reg]: movToReg(context.regs[i.reg], i.size, ret.R11 ?? 0n) }
        : i.op === 'loadUnalignedZeropad' ? { ...context.regs, [i.reg]: ret.R11 ?? 0n }
        : context.regs;
      return { regs, pc: context.pc + 1, ve: null, translated: null, zeropad: null };
    }),
    /** VMX: KVM already wrote the register and advanced RIP while emulating. */
    applyEmulation: assign(({ context, event }) => {
      const em = payloadOf(event, 'vm-entry', event.type as 'VMRESUME').emulated!;
      const regs = em.reg !== null && em.value !== null ? { ...context.regs, [em.reg]: em.value } : context.regs;
      return { regs, pc: context.pc + 1 };
    }),
    advance: assign({ pc: ({ context }) => context.pc + 1 }),
    panicPrivateEptViolation: assign({ panic: () => 'Unexpected EPT-violation on private memory.' }),
    panicVeinfo: assign({ panic: ({ event }) => `TDG.VP.VEINFO.GET failed: ${hex(payloadOf(event, 'tdcall-return', 'TDG.VP.VEINFO.GET').RAX!)}` }),
    panicUnhandledVe: assign({ panic: ({ context }) => `Unexpected #VE: exit reason ${context.ve?.exitReason}` }),
    panicMmio: assign({ panic: () => 'MMIO emulation failed: TDG.VP.VMCALL<#VE.RequestMMIO> returned an error' }),
    panicDoubleFault: assign({ panic: () => `double fault (#DF, vector ${DF_VECTOR}): a #VE arrived while VE_INFO was still valid` }),
    reportPanic: emit(({ context }): Emitted => ({ type: 'tdxsim.failure', reason: 'guest panic', detail: `guest.vcpu${context.vcpu}: ${context.panic}` })),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'guestVcpu',
  context: ({ input }) => ({
    vcpu: input.vcpu,
    vmType: input.vmType,
    sharedMask: input.vmType === 'tdx' ? sharedBit(input.gpaw) : 0n,
    program: input.program,
    pc: 0,
    regs: { rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n },
    ve: null,
    accept: null,
    mapGpa: null,
    veHandlerPrologue: input.veHandlerPrologue,
    veHandlerText: input.veHandlerText,
    prologuePc: 0,
    panic: null,
    privateVe: input.privateVe,
    encPrepareFirst: input.encPrepareFirst,
    mmioRejectsPageCross: input.mmioRejectsPageCross,
    stiBeforeHaltTdcall: input.stiBeforeHaltTdcall ?? false,
    translated: null,
    zeropad: null,
    setMemory: null,
    unacceptedRun: null,
    irqsDisabled: false,
    unsafeContext: null,
    warning: null,
    interrupts: [],
    nmis: 0,
    loopCounts: {},
  }),
  initial: 'notEntered',
  on: {
    '#DF': { target: '.panicked', actions: 'panicDoubleFault' },
    VIRTUAL_INTERRUPT: { actions: 'takeInterrupt' },
    NMI: { actions: 'takeNmi' },
    '*': { actions: 'unexpected' },
  },
  states: {
    /** Before the first VM entry. */
    notEntered: {
      on: { VMLAUNCH: 'dispatching', VMRESUME: 'dispatching' },
    },
    dispatching: {
      always: [
        { guard: 'programEnded', target: 'programEnded' },
        { guard: 'atEnterContext', target: 'dispatching', reenter: true, actions: 'enterContext' },
        { guard: 'atLeaveContext', target: 'dispatching', reenter: true, actions: 'leaveContext' },
        { guard: 'needsWalk', target: 'walkingPageTables' },
        { guard: 'atAcceptMemory', target: 'acceptMemoryLocking' },
        { guard: 'atSetMemory', target: 'setMemoryWalking' },
        { guard: and(['atHlt', 'isTd', 'safeHalt', 'stiBeforeHaltTdcall']), target: 'enablingInterruptsBeforeHalt' },
        { guard: and(['atHlt', 'isTd']), target: 'haltingTd' },
        { guard: 'atAccept', target: 'accepting', actions: 'beginAccept' },
        { guard: 'atMapGpa', target: 'mappingGpa', actions: 'beginMapGpa' },
        { guard: 'atTdvmcall', target: 'callingTdvmcall' },
        { guard: 'atVpInfo', target: 'gettingVpInfo' },
        // A compare-and-branch runs inside the CPU without anything another actor can see.
        { guard: and(['atLoop', 'loopTaken']), target: 'dispatching', reenter: true, actions: 'loopBack' },
        { guard: 'atLoop', target: 'dispatching', reenter: true, actions: 'loopDone' },
        { guard: and(['atCheck', 'checkFails']), target: 'assertionFailed', actions: 'failCheck' },
        { guard: 'atCheck', target: 'dispatching', reenter: true, actions: 'advance' },
        { guard: 'atHlt', target: 'haltingVmx' },
        { target: 'executing' },
      ],
    },
    /** An instruction is in the CPU; a fault-like exit brings us back here at the same RIP. */
    executing: {
      entry: 'executeInsn',
      on: {
        '#VE': 'inVeHandler',
        RETIRE: [
          { guard: and(['zeropadFirstHalf', 'zeropadNextMissing']), target: 'dispatching', actions: 'zeropadFixupFromRetire' },
          { guard: 'zeropadFirstHalf', target: 'executing', reenter: true, actions: 'keepLowHalf' },
          { guard: 'atZeropad', target: 'dispatching', actions: 'retireZeropad' },
          { guard: 'stillSpinning', target: 'dispatching', actions: 'spinAgain' },
          { target: 'dispatching', actions: 'retireInsn' },
        ],
        VMRESUME: [
          { guard: 'entryCompletesInsn', target: 'dispatching', actions: 'applyEmulation' },
          { guard: 'pagedInsn', target: 'dispatching', actions: 'forgetTranslation' },
          { target: 'executing', reenter: true },
        ],
      },
    },
    /** The CPU walks the guest page tables for the instruction's linear address (a step: another vCPU may write the PTE around it). */
    walkingPageTables: {
      entry: 'walkPage',
      on: {
        GUEST_PT_WALK_RESULT: [
          { guard: 'pteMissing', target: 'panicked', actions: 'panicPageFault' },
          { guard: 'atZeropad', target: 'walkingNextPage', actions: 'recordTranslation' },
          { target: 'dispatching', actions: 'recordTranslation' },
        ],
      },
    },
    /** load_unaligned_zeropad: the bytes past the page end are translated through the next page's PTE. */
    walkingNextPage: {
      entry: 'walkNextPage',
      on: { GUEST_PT_WALK_RESULT: { target: 'executing', actions: 'recordNextPage' } },
    },
    /** accept_memory: the first critical section of unaccepted_memory_lock (interrupts off from here to the end). */
    acceptMemoryLocking: {
      entry: 'acceptMemoryBegin',
      on: {
        ACCEPT_MEMORY_RANGE: [
          { guard: 'noUnacceptedRun', target: 'dispatching', actions: 'acceptMemoryFinished' },
          { target: 'acceptingUnacceptedRun', actions: 'beginUnacceptedRun' },
        ],
      },
    },
    /** arch_accept_memory → tdx_accept_memory of one run, with the lock dropped and interrupts still off. */
    acceptingUnacceptedRun: {
      entry: 'acceptTdcall',
      on: {
        'TDG.MEM.PAGE.ACCEPT': [
          { guard: and(['acceptOk', 'acceptRangeDone']), target: 'acceptMemoryClearing', actions: 'unacceptedRunAccepted' },
          { guard: 'acceptOk', target: 'acceptingUnacceptedRun', reenter: true, actions: 'acceptNext' },
          { guard: 'canTrySmaller', target: 'acceptingUnacceptedRun', reenter: true, actions: 'acceptSmaller' },
          { target: 'panicked', actions: 'panicAccept' },
        ],
        VMRESUME: { target: 'acceptingUnacceptedRun', reenter: true },
      },
    },
    /** spin_lock, bitmap_clear of the run, the next run (or list_del and spin_unlock_irqrestore). */
    acceptMemoryClearing: {
      entry: 'acceptMemoryClear',
      on: {
        ACCEPT_MEMORY_RANGE: [
          { guard: 'noUnacceptedRun', target: 'dispatching', actions: 'acceptMemoryFinished' },
          { target: 'acceptingUnacceptedRun', actions: 'beginUnacceptedRun' },
        ],
      },
    },
    /** set_memory_*: the range's GPA comes from its PTE (slow_virt_to_phys). */
    setMemoryWalking: {
      entry: 'walkPage',
      on: {
        GUEST_PT_WALK_RESULT: [
          { guard: 'pteMissing', target: 'panicked', actions: 'panicPageFault' },
          { target: 'setMemoryNext', actions: 'beginSetMemory' },
        ],
      },
    },
    setMemoryNext: {
      always: [
        { guard: 'setMemoryDone', target: 'dispatching', actions: 'setMemoryFinished' },
        { guard: 'setMemoryPtesNext', target: 'setMemoryWritingPtes' },
        { guard: 'setMemoryMapNext', target: 'setMemoryMappingGpa', actions: 'beginSetMemoryMapGpa' },
        { target: 'setMemoryAccepting', actions: 'beginSetMemoryAccept' },
      ],
    },
    /** __change_page_attr_set_clr, one PTE per step; cpa_flush follows (the model's vCPUs walk on every access, so it drops nothing). */
    setMemoryWritingPtes: {
      entry: 'writePte',
      on: {
        GUEST_PTE_WRITTEN: [
          { guard: 'morePtes', target: 'setMemoryWritingPtes', reenter: true, actions: 'ptesWritten' },
          { target: 'setMemoryNext', actions: 'ptesWritten' },
        ],
      },
    },
    /** tdx_enc_status_changed → tdx_map_gpa: as the `mapGpa` op, but a failure is the caller's error, not a panic. */
    setMemoryMappingGpa: {
      entry: 'mapGpaTdcall',
      on: {
        VMRESUME: [
          { guard: 'interruptedBeforeTdcall', target: 'setMemoryMappingGpa', reenter: true },
          { guard: 'mapGpaDone', target: 'setMemoryNext', actions: 'setMemoryMapped' },
          { guard: 'mapGpaRetry', target: 'setMemoryMappingGpa', reenter: true, actions: 'mapGpaResume' },
          { target: 'dispatching', actions: 'setMemoryVmmFailed' },
        ],
      },
    },
    /** tdx_enc_status_changed → tdx_accept_memory after MapGPA to private. */
    setMemoryAccepting: {
      entry: 'acceptTdcall',
      on: {
        'TDG.MEM.PAGE.ACCEPT': [
          { guard: and(['acceptOk', 'acceptRangeDone']), target: 'setMemoryNext', actions: 'setMemoryAccepted' },
          { guard: 'acceptOk', target: 'setMemoryAccepting', reenter: true, actions: 'acceptNext' },
          { guard: 'canTrySmaller', target: 'setMemoryAccepting', reenter: true, actions: 'acceptSmaller' },
          { target: 'dispatching', actions: 'setMemoryVmmFailed' },
        ],
        VMRESUME: { target: 'setMemoryAccepting', reenter: true },
      },
    },
    /** tdx_accept_memory: one TDCALL per page size tried (§6.ii A.1). */
    accepting: {
      entry: 'acceptTdcall',
      on: {
        'TDG.MEM.PAGE.ACCEPT': [
          { guard: and(['acceptOk', 'acceptRangeDone']), target: 'dispatching', actions: 'acceptFinished' },
          { guard: 'acceptOk', target: 'accepting', reenter: true, actions: 'acceptNext' },
          { guard: 'canTrySmaller', target: 'accepting', reenter: true, actions: 'acceptSmaller' },
          { target: 'panicked', actions: 'panicAccept' },
        ],
        // Fault-like EPT-violation exit: RIP is still on the TDCALL, which runs again (§5a.5).
        VMRESUME: { target: 'accepting', reenter: true },
      },
    },
    /** tdx_map_gpa: one TDVMCALL per attempt; KVM walks the range in 2 MiB chunks meanwhile (§6.iv). */
    mappingGpa: {
      entry: 'mapGpaTdcall',
      on: {
        VMRESUME: [
          { guard: 'interruptedBeforeTdcall', target: 'mappingGpa', reenter: true },
          { guard: 'mapGpaDone', target: 'dispatching', actions: 'mapGpaFinished' },
          { guard: 'mapGpaRetry', target: 'mappingGpa', reenter: true, actions: 'mapGpaResume' },
          { target: 'panicked', actions: 'panicMapGpa' },
        ],
      },
    },
    /** Linux TD guests never execute HLT: they ask for it with a TDVMCALL, a TD exit (§4.3). */
    haltingTd: {
      entry: 'tdvmcallHlt',
      on: {
        VMRESUME: [
          { guard: 'interruptedBeforeTdcall', target: 'haltingTd', reenter: true },
          { guard: and(['safeHalt', not('stiBeforeHaltTdcall')]), target: 'enablingInterrupts' },
          { target: 'dispatching', actions: 'advance' },
        ],
      },
    },
    /** Linux before v6.3: `sti; tdcall` — the TDCALL runs in the STI shadow (policy safeHaltStiAfterTdcall off). */
    enablingInterruptsBeforeHalt: {
      entry: 'stiAfterHalt',
      on: { RETIRE: 'haltingTd' },
    },
    /** tdx_safe_halt returned: STI, and the interrupt that woke the vCPU comes at the next boundary. */
    enablingInterrupts: {
      entry: 'stiAfterHalt',
      on: { RETIRE: { target: 'dispatching', actions: 'advance' } },
    },
    /** A VMX guest's HLT is a VM exit to KVM, which blocks the vCPU until a wake-up. */
    haltingVmx: {
      entry: 'executeInsn',
      on: { VMRESUME: { target: 'dispatching', actions: 'advance' } },
    },
    /** exc_virtualization_exception: VEINFO.GET first, with interrupts blocked until it returns (§6.i 7). */
    inVeHandler: {
      always: [{ guard: 'hasPrologue', target: 'inVeHandlerPrologue', actions: 'resetPrologue' }, { target: 'gettingVeInfo' }],
    },
    /** A scenario's handler code before TDG.VP.VEINFO.GET: while VE_INFO is valid, another #VE is a #DF. */
    inVeHandlerPrologue: {
      entry: 'executePrologue',
      on: {
        RETIRE: [
          { guard: 'prologueDone', target: 'gettingVeInfo', actions: 'retirePrologue' },
          { target: 'inVeHandlerPrologue', reenter: true, actions: 'retirePrologue' },
        ],
        VMRESUME: { target: 'inVeHandlerPrologue', reenter: true },
      },
    },
    gettingVeInfo: {
      entry: 'veinfoGet',
      on: {
        VMRESUME: { target: 'gettingVeInfo', reenter: true },
        'TDG.VP.VEINFO.GET': [
          { guard: 'veinfoFailed', target: 'panicked', actions: 'panicVeinfo' },
          { guard: and(['veIsPrivateEptViolation', 'acceptsOnVe']), target: 'acceptingOnVe', actions: ['recordVe', 'beginVeAccept'] },
          { guard: 'veIsPrivateEptViolation', target: 'panicked', actions: ['recordVe', 'panicPrivateEptViolation'] },
          { guard: 'veIsIo', target: 'requestingIo', actions: 'recordVe' },
          { guard: 'veIsMsrWrite', target: 'requestingWrmsr', actions: 'recordVe' },
          { guard: and(['veIsMmio', 'zeropadFixup']), target: 'dispatching', actions: ['recordVe', 'zeropadFixupAfterVe'] },
          { guard: 'veIsMmio', target: 'requestingMmio', actions: 'recordVe' },
          { target: 'panicked', actions: ['recordVe', 'panicUnhandledVe'] },
        ],
      },
    },
    /**
     * A guest built to accept on demand (§6.ii B.3, the 2022 design's "step 3a"): TDG.MEM.PAGE.ACCEPT of
     * the faulting 4K page from the #VE handler; the instruction then runs again. Linux panics instead.
     */
    acceptingOnVe: {
      entry: 'acceptTdcall',
      on: {
        'TDG.MEM.PAGE.ACCEPT': [{ guard: 'acceptOk', target: 'dispatching', actions: 'veAcceptDone' }, { target: 'panicked', actions: 'panicAccept' }],
        VMRESUME: { target: 'acceptingOnVe', reenter: true },
      },
    },
    /** TDG.VP.VMCALL<#VE.RequestMMIO> is a TD exit; the next VM entry returns from the TDCALL. */
    requestingMmio: {
      entry: 'requestMmio',
      on: {
        VMRESUME: [
          { guard: 'interruptedBeforeTdcall', target: 'requestingMmio', reenter: true },
          { guard: 'tdvmcallFailed', target: 'panicked', actions: 'panicMmio' },
          { target: 'dispatching', actions: 'completeMmio' },
        ],
      },
    },
    /** TDG.VP.VMCALL<Instruction.IO>: a TD exit; the next entry returns from the TDCALL. */
    requestingIo: {
      entry: 'requestIo',
      on: {
        VMRESUME: [
          { guard: 'interruptedBeforeTdcall', target: 'requestingIo', reenter: true },
          { guard: 'tdvmcallFailed', target: 'panicked', actions: 'panicIo' },
          { target: 'dispatching', actions: 'completeIo' },
        ],
      },
    },
    /** TDG.VP.VMCALL<Instruction.WRMSR>: a TD exit; KVM's kvm_emulate_wrmsr sends the IPI; the next entry returns. */
    requestingWrmsr: {
      entry: 'requestWrmsr',
      on: {
        VMRESUME: [
          { guard: 'interruptedBeforeTdcall', target: 'requestingWrmsr', reenter: true },
          { guard: 'tdvmcallFailed', target: 'panicked', actions: 'panicWrmsr' },
          { target: 'dispatching', actions: 'completeWrmsr' },
        ],
      },
    },
    /** A TDVMCALL as the program wrote it: a TD exit; the next entry returns from it. */
    callingTdvmcall: {
      entry: 'rawTdvmcall',
      on: {
        VMRESUME: [
          { guard: 'interruptedBeforeTdcall', target: 'callingTdvmcall', reenter: true },
          { target: 'dispatching', actions: 'tdvmcallReturned' },
        ],
      },
    },
    /** TDG.VP.INFO completes inside the module, without a TD exit. */
    gettingVpInfo: {
      entry: 'vpInfoTdcall',
      on: {
        'TDG.VP.INFO': { target: 'dispatching', actions: 'vpInfoReturned' },
        VMRESUME: { target: 'gettingVpInfo', reenter: true },
      },
    },
    /** A program's `check` found another value: the run fails here. */
    assertionFailed: { entry: 'reportAssertion', type: 'final' },
    /** A TD's ended program spins (`jmp .`) in guest mode; an interrupt exit and the next entry resume the spin. */
    programEnded: {
      always: { guard: 'isTd', target: 'spinning' },
    },
    spinning: {
      entry: 'spin',
      on: { VMRESUME: { target: 'spinning', reenter: true } },
    },
    panicked: { entry: 'reportPanic', type: 'final' },
  },
});
