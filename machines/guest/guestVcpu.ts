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
 * Every TDCALL is executed on the vCPU's CPU (hw.cpu), which may take a host interrupt at that boundary
 * instead; the entry after such an exit carries no TDCALL outputs, and the guest issues the TDCALL again.
 * An ended program spins on `jmp .` so that a host IPI can still force the vCPU out of guest mode.
 *
 * `veHandlerPrologue` lets a scenario give the #VE handler instructions it runs before TDG.VP.VEINFO.GET —
 * the window in which a second #VE becomes #DF (§5a.6): e.g. a handler whose stack is in unaccepted memory.
 */
import { setup, assign, emit, and } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing, type Gprs } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { TDG_MEM_PAGE_ACCEPT, TDG_VP_VEINFO_GET, TDG_VP_VMCALL, TDVMCALL_EXPOSE_REGS_MASK, TDVMCALL_VE_REQUEST_MMIO, TDVMCALL_INSTRUCTION_HLT, TDVMCALL_INSTRUCTION_IO, TDVMCALL_MAP_GPA, TDX_HYPERCALL_STANDARD, TDVMCALL_STATUS_SUCCESS, TDVMCALL_STATUS_RETRY } from '../../src/arch/tdcall.ts';
import { EXIT_REASON_EPT_VIOLATION, EXIT_REASON_IO_INSTRUCTION, DF_VECTOR, decodeIoExitQualification } from '../../src/arch/vmx.ts';
import { TDX_SUCCESS } from '../../src/arch/tdxStatus.ts';
import { sharedBit, PAGE_SIZE, TDX_PS_4K } from '../../src/arch/gpa.ts';
import { hex } from '../../src/arch/hex.ts';
import { movToReg, sizeMask, TDCALL_LENGTH, type GuestOp, type GuestReg, type PlacedInsn } from './program.ts';

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

function accessMessage(c: GuestVcpuContext, i: PlacedInsn): Outgoing {
  if (i.op === 'load') return out(`hw.cpu${c.vcpu}`, 'insn', 'LOAD', { vcpu: c.vcpu, rip: i.rip, gla: i.gla, gpa: i.gpa, size: i.size, length: i.length, reg: i.reg });
  if (i.op === 'store') return out(`hw.cpu${c.vcpu}`, 'insn', 'STORE', { vcpu: c.vcpu, rip: i.rip, gla: i.gla, gpa: i.gpa, size: i.size, length: i.length, value: i.value });
  if (i.op === 'hlt') return out(`hw.cpu${c.vcpu}`, 'insn', 'HLT', { vcpu: c.vcpu, rip: i.rip });
  if (i.op === 'out') return out(`hw.cpu${c.vcpu}`, 'insn', 'OUT', { vcpu: c.vcpu, rip: i.rip, port: i.port, size: i.size, value: i.value, length: i.length });
  throw new Error(`model bug: ${i.op} is not a memory instruction`);
}

function retireInto(regs: Record<GuestReg, bigint>, i: PlacedInsn, value: bigint | null): Record<GuestReg, bigint> {
  return i.op === 'load' && value !== null ? { ...regs, [i.reg]: movToReg(regs[i.reg], i.size, value) } : regs;
}
const hw = (c: GuestVcpuContext) => `hw.cpu${c.vcpu}`;

/** The TDVMCALL register block Linux builds in __tdx_hypercall: R10 = standard, R11 = sub-function (§4.3). */
function tdvmcall(c: GuestVcpuContext, rip: bigint, subfn: number, args: Gprs): Gprs & { vcpu: number; rip: bigint } {
  return { vcpu: c.vcpu, rip, RAX: BigInt(TDG_VP_VMCALL), RCX: TDVMCALL_EXPOSE_REGS_MASK, R10: TDX_HYPERCALL_STANDARD, R11: BigInt(subfn), ...args };
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
    atHlt: ({ context }) => cur(context)?.op === 'hlt',
    atAccept: ({ context }) => cur(context)?.op === 'accept',
    atMapGpa: ({ context }) => cur(context)?.op === 'mapGpa',
    /** The entry follows a host interrupt taken before the TDCALL ran, not the TDCALL's own exit. */
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
    retireInsn: assign(({ context, event }) => ({ regs: retireInto(context.regs, cur(context)!, payloadOf(event, 'insn', 'RETIRE').value), pc: context.pc + 1 })),
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
    /** `jmp .` right after the program's last instruction (a program has at least one). */
    spin: emit(({ context }) => {
      const last = context.program.at(-1)!;
      return out(hw(context), 'insn', 'SPIN', { vcpu: context.vcpu, rip: last.rip + BigInt(last.length) });
    }),
    panicAccept: assign({ panic: ({ context }) => `TDX: Failed to accept memory (at ${hex(context.accept!.start)})` }),
    executePrologue: emit(({ context }): Emitted => accessMessage(context, curPrologue(context))),
    retirePrologue: assign(({ context, event }) => ({ regs: retireInto(context.regs, curPrologue(context), payloadOf(event, 'insn', 'RETIRE').value), prologuePc: context.prologuePc + 1 })),
    resetPrologue: assign({ prologuePc: () => 0 }),
    /** Linux TD guests halt with TDG.VP.VMCALL<Instruction.HLT>, R12 = interrupts-blocked flag (§4.3). */
    tdvmcallHlt: emit(({ context }) =>
      out(hw(context), 'tdcall', 'TDG.VP.VMCALL<Instruction.HLT>', tdvmcall(context, cur(context)!.rip, TDVMCALL_INSTRUCTION_HLT, { R12: 0n })),
    ),
    veinfoGet: emit(({ context }) => out(hw(context), 'tdcall', 'TDG.VP.VEINFO.GET', { vcpu: context.vcpu, rip: veinfoGetRip(context), RAX: BigInt(TDG_VP_VEINFO_GET) })),
    recordVe: assign({
      ve: ({ event }) => {
        const r = payloadOf(event, 'tdcall-return', 'TDG.VP.VEINFO.GET');
        return { exitReason: Number(r.RCX), exitQualification: r.RDX!, gla: r.R8!, gpa: r.R9! };
      },
    }),
    /** handle_mmio: the instruction at RIP is decoded by the guest itself; R14 = GPA from VE info (§6.i 9). */
    requestMmio: emit(({ context }) => {
      const i = cur(context)! as Extract<GuestOp, { op: 'load' | 'store' }>;
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
      const i = cur(context)! as Extract<GuestOp, { op: 'out' }>;
      return out(hw(context), 'tdcall', 'TDG.VP.VMCALL<Instruction.IO>', tdvmcall(context, handlerTdcallRip(context), TDVMCALL_INSTRUCTION_IO, {
        R12: BigInt(io.size),
        R13: io.isIn ? 0n : 1n,
        R14: BigInt(io.port),
        R15: i.value & sizeMask(io.size),
      }));
    }),
    /** RIP += ve->instr_len. */
    completeIo: assign({ pc: ({ context }) => context.pc + 1, ve: () => null }),
    panicIo: assign({ panic: () => 'port I/O emulation failed: TDG.VP.VMCALL<Instruction.IO> returned an error (#VE handler fails, the kernel dies)' }),
    /** The VMM's answer is in R11 (§6.i 13): write the destination register, advance RIP. */
    completeMmio: assign(({ context, event }) => {
      const i = cur(context)!;
      const ret = payloadOf(event, 'vm-entry', event.type as 'VMRESUME').tdcallReturn!;
      const regs = i.op === 'load' ? { ...context.regs, [i.reg]: movToReg(context.regs[i.reg], i.size, ret.R11 ?? 0n) } : context.regs;
      return { regs, pc: context.pc + 1, ve: null };
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
  }),
  initial: 'notEntered',
  on: {
    '#DF': { target: '.panicked', actions: 'panicDoubleFault' },
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
        { guard: and(['atHlt', 'isTd']), target: 'haltingTd' },
        { guard: 'atAccept', target: 'accepting', actions: 'beginAccept' },
        { guard: 'atMapGpa', target: 'mappingGpa', actions: 'beginMapGpa' },
        { guard: 'atHlt', target: 'haltingVmx' },
        { target: 'executing' },
      ],
    },
    /** An instruction is in the CPU; a fault-like exit brings us back here at the same RIP. */
    executing: {
      entry: 'executeInsn',
      on: {
        '#VE': 'inVeHandler',
        RETIRE: { target: 'dispatching', actions: 'retireInsn' },
        VMRESUME: [{ guard: 'entryCompletesInsn', target: 'dispatching', actions: 'applyEmulation' }, { target: 'executing', reenter: true }],
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
          { target: 'dispatching', actions: 'advance' },
        ],
      },
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
