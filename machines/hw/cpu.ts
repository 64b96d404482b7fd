/**
 * CPU/EPT hardware of the logical processor running one vCPU.
 *
 * It performs the guest's memory accesses: picks the EPT by the GPA shared bit (§1.2: shared EPT if set,
 * S-EPT if clear; a VMX guest has one EPT), asks the table's owner for the walk (KVM's TDP MMU owns the
 * shared EPT, the TDX module owns the S-EPT), and then either raises an EPT misconfiguration, an EPT
 * violation VM exit, or — for a TD, where the TDX module always enables EPT-violation #VE (§6.vii) — a #VE
 * when the deciding entry has suppress-#VE clear and VE_INFO.valid is 0. Delivering a #VE writes the
 * VE information area and sets its valid word to 0xFFFFFFFF; while it stays set, further convertible
 * violations become VM exits (SDM §25.5.6.1). The VE information area lives in the TDVPS, but it is the
 * CPU that checks and writes it during delivery, so this actor owns it and the TDX module reaches it by
 * message (VE_INFO_GET) when the guest calls TDG.VP.VEINFO.GET, and asks it to inject a #VE in software
 * (VE_INJECT, §5a.6), which becomes #DF when the area still holds an unread #VE.
 *
 * A translated access goes to physical memory (hw.mem) with the KeyID the walk gave — the TD's HKID
 * through the S-EPT, 0 through the shared EPT — and retires when memory answers.
 *
 * The CPU keeps what it translated in its TLB (tlb.ts): the next access to the same page, through the same
 * EPT, uses the cached translation without walking. Entries go only when an INVEPT takes them: the TDX
 * module's at TDH.VP.ENTER when the vCPU's TD epoch is stale (§5c.2 step 3, §7.4) and KVM's global one for
 * KVM_REQ_TLB_FLUSH (§1.2). A TD's translations are tagged with its Secure-EPT root — the shared-EPT ones
 * too — so an INVEPT of the TD's EPTP takes both kinds.
 *
 * TDCALL is an instruction too: the CPU takes it from the guest and exits to the TDX module with it; so
 * does OUT, as an IO_INSTRUCTION exit with the SDM's I/O exit qualification (a TD never does port I/O).
 * Host interrupts: an IPI for a vCPU in guest mode (kvm_make_all_cpus_request, §7.4) stays pending until
 * the guest's next instruction boundary — a load, store, HLT, TDCALL or the `jmp .` of an ended program —
 * where the CPU takes an EXTERNAL_INTERRUPT VM exit instead of executing the instruction (which runs again
 * after the next entry). The IPI's handler runs when the vCPU thread enables interrupts after the exit
 * (LOCAL_IRQ_ENABLE), and only then does the requester stop waiting for this CPU (KVM_REQ_ACK).
 *
 * Virtual interrupts (virtualApic.ts): the posted-interrupt notification vector (POSTED_INTR_VECTOR 0xf2,
 * the TD VMCS's notification vector) does not exit: at the guest's next instruction boundary — or at once
 * when the guest spins — the CPU performs posted-interrupt processing, an exchange of the descriptor KVM
 * owns (PIR_XCHG to kvm.vcpuN: ON cleared, PIR taken) whose PIR lands in vIRR and RVI. KVM's self-IPI
 * before TDH.VP.ENTER when ON is set (tdx_vcpu_run) arrives the same way, before the guest's first
 * instruction. At a boundary where RFLAGS.IF is 1, VE_INFO is free (the guest keeps interrupts blocked
 * until TDG.VP.VEINFO.GET, §5a.6) and RVI's priority class is above the virtual PPR, the CPU delivers the
 * virtual interrupt instead of the instruction, which it keeps and runs after the handler's EOI and IRET.
 * A TDH.VP.RD of the vCPU's state details reaches the guest-interrupt status here (as VE_INFO does); one
 * asked while a PIR is on its way is answered when it lands, since the real exchange is atomic.
 */
import { setup, assign, emit, enqueueActions, and } from 'xstate';
import { out, payloadOf, type NameOf, type MachineEvent, type Outgoing, type MemAccess, type EptKind, type DecodedInsn } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { EXIT_REASON_EPT_VIOLATION, EXIT_REASON_EPT_MISCONFIG, EXIT_REASON_HLT, EXIT_REASON_EXTERNAL_INTERRUPT, EXIT_REASON_IO_INSTRUCTION, EXIT_REASON_MSR_WRITE, VE_VECTOR, DF_VECTOR, ioExitQualification, externalInterruptInfo } from '../../src/arch/vmx.ts';
import { VE_INFO_VALID } from '../../src/arch/tdxStatus.ts';
import { sharedBit, pageSizeOfPgLevel } from '../../src/arch/gpa.ts';
import { spteToPfn } from '../../src/arch/spte.ts';
import { decideWalk, type WalkOutcome } from './eptWalk.ts';
import { POSTED_INTR_VECTOR } from '../../src/arch/vmx.ts';

/** The NMI's IDT vector. */
export const NMI_VECTOR = 2;
import { NO_VIRTUAL_INTERRUPTS, acceptVirtualInterrupt, takePir, virtualEoi, virtualInterruptPending, type VirtualApic } from './virtualApic.ts';
import type { Message } from '../../src/protocol/messages.ts';
import { tlbFill, tlbLookup, type TlbEntry } from './tlb.ts';

export interface CpuInput {
  vcpu: number;
  vmType: 'tdx' | 'vmx';
  gpaw: 48 | 52;
}

/** The #VE information area (§1.2, §1.3 TDVPS VE_INFO). */
export interface VeInfoArea {
  exitReason: number;
  /** Offset 4: 0 = free, 0xFFFFFFFF = holds an undelivered-to-software #VE. */
  valid: number;
  exitQualification: bigint;
  gla: bigint;
  gpa: bigint;
  eptpIndex: number;
  /** Instruction length, saved for instruction-caused #VEs (port I/O); 0 for EPT violations. */
  instrLength: number;
}

export interface CpuContext {
  vcpu: number;
  vmType: 'tdx' | 'vmx';
  sharedMask: bigint;
  /** The access being performed while its walk is outstanding. */
  access: (MemAccess & { op: 'LOAD' | 'STORE'; ept: EptKind }) | null;
  /** The last walk's conclusion (or the cached translation an access used), kept so a replay shows why the CPU did what it did. */
  lastWalk: WalkOutcome | null;
  /** KeyID of the last walk's translation. */
  keyid: number;
  /** The translations this CPU cached, by EPT and page (tlb.ts). */
  tlb: readonly TlbEntry[];
  veInfo: VeInfoArea;
  /**
   * IPIs that arrived while the vCPU was in guest mode and whose handler has not run; each requester
   * waits. `vector`: the highest pending one, which the local APIC delivers first and the exit reports.
   */
  ipi: { requesters: readonly string[]; exitTaken: boolean; vector: number } | null;
  /** The guest's program has ended and it spins at this RIP (an interrupt is the only way out). */
  spinRip: bigint | null;
  /** The guest's RFLAGS.IF: 0 when a program starts; STI, CLI, interrupt delivery (0) and IRET (1) change it. */
  rflagsIf: boolean;
  /**
   * Blocking by STI (SDM 25.4.2 interruptibility state, bit 0): an STI that set IF holds interrupts off
   * until the instruction after it has completed — the shadow that makes `sti; hlt` atomic, and made the
   * pre-v6.3 tdx_safe_halt's `sti; tdcall` reach the TDX module before the interrupt it waits for.
   */
  stiBlocking: boolean;
  /** vIRR, ISR, RVI and SVI (virtualApic.ts). */
  vapic: VirtualApic;
  /** A posted-interrupt notification arrived and its processing has not started (it starts at the next boundary). */
  piNotification: boolean;
  /** PIR_XCHG was sent to the descriptor's owner and its PIR has not come back. */
  pirInFlight: boolean;
  /** The TDX module asked for the guest-interrupt status while a PIR was in flight: answered when it lands. */
  statusWanted: boolean;
  /**
   * What a virtual interrupt or NMI displaced: the instruction (performed after IRET; kept without its
   * send order, which says nothing about the CPU's state) or the spin it stopped.
   */
  interrupted: { msg: Pick<Message, 'from' | 'kind' | 'name' | 'payload'> } | { spinRip: bigint } | null;
  /** PEND_NMI as the module set it: a virtual NMI waits for a boundary with VE_INFO free (§5a.6). */
  pendNmi: boolean;
  /** The guest's NMI handler runs (NMIs blocked until its IRET). */
  inNmi: boolean;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

const guest = (c: CpuContext) => `guest.vcpu${c.vcpu}`;
/** Every TDCALL leaf and TDVMCALL the guest can issue (the `tdcall` kind of the catalogue). */
const TDCALLS = [
  'TDG.VP.VEINFO.GET',
  'TDG.MEM.PAGE.ACCEPT',
  'TDG.VP.INFO',
  'TDG.VP.VMCALL',
  'TDG.VP.VMCALL<#VE.RequestMMIO>',
  'TDG.VP.VMCALL<Instruction.HLT>',
  'TDG.VP.VMCALL<MapGPA>',
  'TDG.VP.VMCALL<Instruction.IO>',
  'TDG.VP.VMCALL<Instruction.WRMSR>',
  'TDG.VP.VMCALL<ReportFatalError>',
  'TDG.VP.VMCALL<GetTdVmCallInfo>',
  'TDG.VP.VMCALL<GetQuote>',
  'TDG.VP.VMCALL<SetupEventNotifyInterrupt>',
] as const satisfies readonly NameOf<'tdcall'>[];
/** Compile-time check that the list names every TDCALL of the catalogue. */
const TDCALLS_COMPLETE: [Exclude<NameOf<'tdcall'>, (typeof TDCALLS)[number]>] extends [never] ? true : never = true;
void TDCALLS_COMPLETE;
/** A VM exit lands in the TDX module (SEAM) for a TD, in KVM for a VMX guest. */
const exitTarget = (c: CpuContext) => (c.vmType === 'tdx' ? 'tdx' : `kvm.vcpu${c.vcpu}`);
const walkOwner = (ept: EptKind) => (ept === 'secure' ? 'tdx' : 'kvm.mmu');
const outcome = (c: CpuContext): WalkOutcome => c.lastWalk!;
const virtualInterruptReady = (c: CpuContext) => c.rflagsIf && !c.stiBlocking && c.veInfo.valid === 0 && virtualInterruptPending(c.vapic);
const kvmVcpu = (c: CpuContext) => `kvm.vcpu${c.vcpu}`;

/**
 * The transitions of an event that is an instruction boundary: a host IPI takes the exit first, then a
 * deliverable virtual interrupt is delivered, else the instruction goes on; a pending notification's
 * posted-interrupt processing starts at every boundary.
 */
function atBoundary(rest: readonly { guard?: string; target?: string; actions: string | readonly string[] }[]) {
  return [
    { guard: 'interruptPending', actions: ['processPostedInterrupts', 'exitInterrupt'] },
    { guard: 'nmiDeliverable', actions: ['processPostedInterrupts', 'deliverNmi'] },
    { guard: 'virtualInterruptDeliverable', actions: ['processPostedInterrupts', 'deliverVirtualInterrupt'] },
    // The instruction at this boundary runs: the STI shadow, if any, ends with it.
    ...rest.map((t) => ({ ...t, actions: ['processPostedInterrupts', 'endStiBlocking', ...(typeof t.actions === 'string' ? [t.actions] : t.actions)] })),
  ] as never;
}
/** §1.2: the shared EPT for a GPA with the shared bit, the S-EPT without; a VMX guest has one EPT. */
const eptKindOf = (c: CpuContext, gpa: bigint): EptKind => (c.vmType === 'vmx' ? 'ept' : (gpa & c.sharedMask) !== 0n ? 'shared' : 'secure');

function decodedInsn(c: CpuContext): DecodedInsn | null {
  const a = c.access!;
  if (c.vmType === 'tdx') return null;
  return a.op === 'LOAD' ? { op: 'load', size: a.size, length: a.length, reg: a.reg ?? 'rax' } : { op: 'store', size: a.size, length: a.length, reg: 'rax', value: a.value };
}

const displaced = (m: Message) => ({ from: m.from, kind: m.kind, name: m.name, payload: m.payload }) as Pick<Message, 'from' | 'kind' | 'name' | 'payload'>;

function guestInterruptStatus(c: CpuContext): Outgoing {
  return out('tdx', 'guest-interrupt-status', 'GUEST_INTERRUPT_STATUS', { vcpu: c.vcpu, rvi: c.vapic.rvi, svi: c.vapic.svi, virr: c.vapic.virr });
}

/**
 * A spinning guest is at an instruction boundary all the time: a pending notification's posted-interrupt
 * processing starts there at once (elsewhere it waits for the guest's next instruction).
 */
function startPirExchangeAtSpin(c: CpuContext, enqueue: { assign: (c: Partial<CpuContext>) => void; emit: (e: Emitted) => void }): void {
  if (c.spinRip === null || !c.piNotification || c.pirInFlight) return;
  enqueue.assign({ piNotification: false, pirInFlight: true });
  enqueue.emit(out(kvmVcpu(c), 'posted-interrupt', 'PIR_XCHG', { vcpu: c.vcpu }));
}

/** A spinning guest (`jmp .`) is at a boundary all the time: the interrupt is delivered at the spin's RIP. */
function deliverFromSpin(c: CpuContext, enqueue: { assign: (c: Partial<CpuContext>) => void; emit: (e: Emitted) => void }): void {
  const a = acceptVirtualInterrupt(c.vapic);
  enqueue.assign({ vapic: a.apic, rflagsIf: false, interrupted: { spinRip: c.spinRip! }, spinRip: null });
  enqueue.emit(out(guest(c), 'interrupt', 'VIRTUAL_INTERRUPT', { vcpu: c.vcpu, vector: a.vector, rip: c.spinRip! }));
}

export const cpuMachine = setup({
  types: {
    context: {} as CpuContext,
    events: {} as MachineEvent,
    input: {} as CpuInput,
    emitted: {} as Emitted,
  },
  guards: {
    misconfig: ({ context }) => outcome(context).kind === 'misconfig',
    /** EPT-violation #VE is on for TDs only; the CPU converts iff SVE = 0 and VE_INFO is free (§1.2). */
    becomesVe: ({ context }) => {
      const o = outcome(context);
      return context.vmType === 'tdx' && o.kind === 'violation' && o.convertible && context.veInfo.valid === 0;
    },
    violation: ({ context }) => outcome(context).kind === 'violation',
    /** An IPI is pending and no exit has been taken for it yet: the instruction at this boundary does not run. */
    interruptPending: ({ context }) => context.ipi !== null && !context.ipi.exitTaken,
    /** The TLB holds a translation of the page that allows this access: no walk. */
    tlbHit: ({ context, event }) => {
      const a = payloadOf(event, 'insn', event.type as 'LOAD' | 'STORE');
      return tlbLookup(context.tlb, eptKindOf(context, a.gpa), a.gpa, event.type === 'LOAD' ? 'read' : 'write') !== null;
    },
    spinning: ({ context }) => context.spinRip !== null,
    /** The IPI is a posted-interrupt notification, which the CPU processes instead of exiting (SDM 30.6). */
    isNotification: ({ event }) => payloadOf(event, 'interrupt', 'IPI').vector === POSTED_INTR_VECTOR,
    /** RFLAGS.IF = 1, VE_INFO free, and RVI[7:4] > VPPR[7:4] (SDM 30.2.1). */
    virtualInterruptDeliverable: ({ context }) => virtualInterruptReady(context),
    /** PEND_NMI, VE_INFO free (the module holds NMIs back while it is valid, §5a.6), no NMI in service. */
    nmiDeliverable: ({ context }) => context.pendNmi && !context.inNmi && context.interrupted === null && context.veInfo.valid === 0,
  },
  actions: {
    beginAccess: assign({
      access: ({ context, event }) => {
        const op = event.type as 'LOAD' | 'STORE';
        const a = payloadOf(event, 'insn', op);
        return { ...a, op, ept: eptKindOf(context, a.gpa) };
      },
    }),
    /** The cached translation stands in for the walk: the access goes straight to memory. */
    useCachedTranslation: assign(({ context }) => {
      const a = context.access!;
      const e = tlbLookup(context.tlb, a.ept, a.gpa, a.op === 'LOAD' ? 'read' : 'write')!;
      return { lastWalk: { kind: 'translated' as const, leaf: e.leaf, cached: true }, keyid: e.keyid };
    }),
    /** A walk that translated fills the TLB with the leaf it ended at. */
    fillTlb: assign({ tlb: ({ context }) => tlbFill(context.tlb, context.access!.ept, context.access!.gpa, (outcome(context) as Extract<WalkOutcome, { kind: 'translated' }>).leaf, context.keyid) }),
    /**
     * INVEPT on this LP: type 1 for the TD's EPTP (the TDX module at TDH.VP.ENTER) or 2, all contexts
     * (KVM's ept_sync_global). The model's CPU runs one vCPU of one TD, so both empty the TLB. After the
     * module's flush the LP goes on to the VM entry; KVM's returns to the vCPU thread.
     */
    invept: enqueueActions(({ context, event, enqueue }) => {
      const i = payloadOf(event, 'tlb', 'INVEPT');
      enqueue.assign({ tlb: [] });
      if (i.then !== null) enqueue.emit(out(guest(context), 'vm-entry', i.then.name, i.then.payload));
      else enqueue.emit(out(event.msg.from, 'tlb-return', 'INVEPT', { vcpu: context.vcpu }));
    }),
    requestWalk: emit(({ context }) => {
      const a = context.access!;
      return out(walkOwner(a.ept), 'ept-walk', 'EPT_WALK', { vcpu: context.vcpu, ept: a.ept, gpa: a.gpa });
    }),
    decide: assign({
      lastWalk: ({ context, event }) => {
        const r = payloadOf(event, 'ept-walk', 'EPT_WALK_RESULT');
        return decideWalk(r.path, context.access!.op === 'LOAD' ? 'read' : 'write');
      },
      keyid: ({ event }) => payloadOf(event, 'ept-walk', 'EPT_WALK_RESULT').keyid,
    }),
    /** The physical address: the leaf's frame plus the offset inside the page (or huge page) it maps. */
    accessMemory: emit(({ context }) => {
      const o = outcome(context) as Extract<WalkOutcome, { kind: 'translated' }>;
      const a = context.access!;
      const pageBytes = pageSizeOfPgLevel(o.leaf.pgLevel);
      const pa = (spteToPfn(o.leaf.spte) << 12n) + (a.gpa & (pageBytes - 1n));
      const tag = `hw.cpu${context.vcpu}`;
      return a.op === 'LOAD'
        ? out('hw.mem', 'mem', 'MEM_READ', { pa, size: a.size, keyid: context.keyid, tag })
        : out('hw.mem', 'mem', 'MEM_WRITE', { pa, size: a.size, keyid: context.keyid, value: a.value ?? 0n, tag });
    }),
    retire: emit(({ context, event }) =>
      out(guest(context), 'insn', 'RETIRE', { vcpu: context.vcpu, rip: context.access!.rip, value: event.type === 'MEM_DATA' ? payloadOf(event, 'mem', 'MEM_DATA').value : null }),
    ),
    /** §5a.6 tdx_inject_ve: a free VE_INFO gets the #VE written and delivered; a valid one means #DF. */
    softwareVe: enqueueActions(({ context, event, enqueue }) => {
      const v = payloadOf(event, 've-info', 'VE_INJECT');
      if (context.veInfo.valid !== 0) {
        enqueue.emit(out(guest(context), 'exception', '#DF', { vcpu: context.vcpu, vector: DF_VECTOR }));
        return;
      }
      enqueue.assign({ veInfo: { exitReason: v.exitReason, valid: VE_INFO_VALID, exitQualification: v.exitQualification, gla: v.gla, gpa: v.gpa, eptpIndex: 0, instrLength: v.instrLength } });
      enqueue.emit(out(guest(context), 'exception', '#VE', { vcpu: context.vcpu, vector: VE_VECTOR }));
    }),
    deliverVe: assign({
      veInfo: ({ context }) => {
        const o = outcome(context) as Extract<WalkOutcome, { kind: 'violation' }>;
        const a = context.access!;
        return { exitReason: EXIT_REASON_EPT_VIOLATION, valid: VE_INFO_VALID, exitQualification: o.exitQualification, gla: a.gla, gpa: a.gpa, eptpIndex: 0, instrLength: 0 };
      },
    }),
    injectVe: emit(({ context }) => out(guest(context), 'exception', '#VE', { vcpu: context.vcpu, vector: VE_VECTOR })),
    exitEptViolation: emit(({ context }) => {
      const o = outcome(context) as Extract<WalkOutcome, { kind: 'violation' }>;
      const a = context.access!;
      return out(exitTarget(context), 'vm-exit', 'EPT_VIOLATION', {
        vcpu: context.vcpu,
        exitReason: EXIT_REASON_EPT_VIOLATION,
        exitQualification: o.exitQualification,
        gpa: a.gpa,
        gla: a.gla,
        rip: a.rip,
        insn: decodedInsn(context),
      });
    }),
    exitEptMisconfig: emit(({ context }) => {
      const a = context.access!;
      return out(exitTarget(context), 'vm-exit', 'EPT_MISCONFIG', { vcpu: context.vcpu, exitReason: EXIT_REASON_EPT_MISCONFIG, gpa: a.gpa, rip: a.rip, insn: decodedInsn(context) });
    }),
    /** HLT is an unconditional VM exit for a VMX guest. */
    exitHlt: emit(({ context, event }) =>
      out(exitTarget(context), 'vm-exit', 'HLT', { vcpu: context.vcpu, exitReason: EXIT_REASON_HLT, rip: payloadOf(event, 'insn', 'HLT').rip, insnLength: 1 }),
    ),
    /** Port I/O exits unconditionally in a TD (the module turns it into a #VE, §5c.3). */
    exitIo: emit(({ context, event }) => {
      const i = payloadOf(event, 'insn', event.type as 'OUT' | 'IN');
      return out(exitTarget(context), 'vm-exit', 'IO_INSTRUCTION', {
        vcpu: context.vcpu,
        exitReason: EXIT_REASON_IO_INSTRUCTION,
        exitQualification: ioExitQualification(i.port, i.size, event.type === 'IN'),
        rip: i.rip,
        insnLength: i.length,
      });
    }),
    /**
     * WRMSR of an MSR the TD's MSR bitmap intercepts — the x2APIC ICR, which the CPU does not virtualize —
     * exits to the TDX module like port I/O (which turns it into a #VE, §5c.3); RIP stays on the WRMSR.
     */
    exitMsrWrite: emit(({ context, event }) => {
      const i = payloadOf(event, 'insn', 'WRMSR');
      return out(exitTarget(context), 'vm-exit', 'MSR_WRITE', { vcpu: context.vcpu, exitReason: EXIT_REASON_MSR_WRITE, rip: i.rip, insnLength: i.length });
    }),
    endAccess: assign({ access: () => null }),
    /** The TDCALL leaves the guest for the TDX module as it was issued (§4.2). */
    forwardTdcall: emit(({ event }) => ({ type: 'tdxsim.send', to: 'tdx', kind: event.msg.kind, name: event.msg.name, payload: event.msg.payload }) as Outgoing),
    noteIpi: assign({
      ipi: ({ context, event }) => {
        const { requester, vector } = payloadOf(event, 'interrupt', 'IPI');
        const requesters = context.ipi?.requesters ?? [];
        return {
          requesters: requester === null ? requesters : [...requesters, requester],
          exitTaken: context.ipi?.exitTaken ?? false,
          vector: Math.max(vector, context.ipi?.vector ?? 0),
        };
      },
    }),
    /**
     * The interrupt is recognised at the boundary before the instruction at `rip` (§5c.3 EXTERNAL_INTERRUPT):
     * the instruction the guest was about to execute — a TDCALL's own address, or the `jmp .` it spins on —
     * and the exit's interruption information names the vector.
     */
    exitInterrupt: enqueueActions(({ context, event, enqueue }) => {
      const rip = event.type === 'IPI' ? context.spinRip! : (event.msg.payload as { rip: bigint }).rip;
      const ipi = context.ipi!;
      enqueue.assign({ ipi: { ...ipi, exitTaken: true }, spinRip: null });
      enqueue.emit(
        out(exitTarget(context), 'vm-exit', 'EXTERNAL_INTERRUPT', { vcpu: context.vcpu, exitReason: EXIT_REASON_EXTERNAL_INTERRUPT, rip, interruptionInfo: externalInterruptInfo(ipi.vector) }),
      );
    }),
    /**
     * The program ended: `jmp .` from here on, each jump a boundary. The first may have run in an STI
     * shadow; at the next, a pending notification is processed and a deliverable interrupt delivered.
     */
    startSpin: enqueueActions(({ context, event, enqueue }) => {
      const next = { ...context, spinRip: payloadOf(event, 'insn', 'SPIN').rip, stiBlocking: false };
      enqueue.assign({ spinRip: next.spinRip });
      startPirExchangeAtSpin(next, enqueue);
      if (virtualInterruptReady(next)) deliverFromSpin(next, enqueue);
    }),
    endStiBlocking: enqueueActions(({ context, enqueue }) => {
      if (context.stiBlocking) enqueue.assign({ stiBlocking: false });
    }),
    /** The vCPU thread enabled interrupts: the IPI's handler runs here and the requester's wait for this CPU ends. */
    handleIrq: enqueueActions(({ context, enqueue }) => {
      for (const r of context.ipi?.requesters ?? []) enqueue.emit(out(r, 'kvm-request', 'KVM_REQ_ACK', { vcpu: context.vcpu }));
      enqueue.assign({ ipi: null });
      enqueue.emit(out(`kvm.vcpu${context.vcpu}`, 'interrupt', 'IRQ_HANDLED', { vcpu: context.vcpu }));
    }),
    // ---- Virtual interrupts (virtualApic.ts) ----
    notePiNotification: assign({ piNotification: true }),
    /** Posted-interrupt processing: one exchange of the descriptor at a time; a notification meanwhile waits. */
    processPostedInterrupts: enqueueActions(({ context, enqueue }) => {
      if (!context.piNotification || context.pirInFlight) return;
      enqueue.assign({ piNotification: false, pirInFlight: true });
      enqueue.emit(out(kvmVcpu(context), 'posted-interrupt', 'PIR_XCHG', { vcpu: context.vcpu }));
    }),
    /** The exchanged PIR goes into vIRR; a deferred status read is answered; a spinning guest takes the interrupt now. */
    landPir: enqueueActions(({ context, event, enqueue }) => {
      const vapic = takePir(context.vapic, payloadOf(event, 'posted-interrupt', 'PIR').pir);
      const next = { ...context, vapic, pirInFlight: false, statusWanted: false };
      enqueue.assign({ vapic, pirInFlight: false, statusWanted: false });
      if (context.statusWanted) enqueue.emit(guestInterruptStatus(next));
      // A notification that came while this PIR was on its way: a spinning guest is at a boundary now.
      startPirExchangeAtSpin(next, enqueue);
      if (next.spinRip !== null && virtualInterruptReady(next)) deliverFromSpin(next, enqueue);
    }),
    answerGuestInterruptStatus: enqueueActions(({ context, enqueue }) => {
      if (context.pirInFlight) enqueue.assign({ statusWanted: true });
      else enqueue.emit(guestInterruptStatus(context));
    }),
    /** The instruction at this boundary does not run; the guest's handler gets the vector with IF = 0. */
    deliverVirtualInterrupt: enqueueActions(({ context, event, enqueue }) => {
      const a = acceptVirtualInterrupt(context.vapic);
      const rip = (event.msg.payload as { rip: bigint }).rip;
      enqueue.assign({ vapic: a.apic, rflagsIf: false, interrupted: { msg: displaced(event.msg) } });
      enqueue.emit(out(guest(context), 'interrupt', 'VIRTUAL_INTERRUPT', { vcpu: context.vcpu, vector: a.vector, rip }));
    }),
    setIf: enqueueActions(({ context, event, enqueue }) => {
      // Only an STI that finds IF = 0 opens a shadow (SDM: STI when IF is already 1 does not block).
      enqueue.assign({ rflagsIf: event.type === 'STI', stiBlocking: event.type === 'STI' && !context.rflagsIf });
      enqueue.emit(out(guest(context), 'insn', 'RETIRE', { vcpu: context.vcpu, rip: (event.msg.payload as { rip: bigint }).rip, value: null }));
    }),
    eoi: assign({ vapic: ({ context }) => virtualEoi(context.vapic) }),
    /** A spinning guest takes the NMI at once; otherwise it waits for the next boundary. */
    notePendNmi: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ pendNmi: true });
      if (context.spinRip === null || context.inNmi || context.interrupted !== null || context.veInfo.valid !== 0) return;
      enqueue.assign({ pendNmi: false, inNmi: true, interrupted: { spinRip: context.spinRip }, spinRip: null });
      enqueue.emit(out(guest(context), 'interrupt', 'NMI', { vcpu: context.vcpu, vector: NMI_VECTOR, rip: context.spinRip }));
    }),
    /** NMI delivery: PEND_NMI consumed, NMIs blocked until IRET; RFLAGS.IF is left as it was. */
    deliverNmi: enqueueActions(({ context, event, enqueue }) => {
      const rip = (event.msg.payload as { rip: bigint }).rip;
      enqueue.assign({ pendNmi: false, inNmi: true, interrupted: { msg: displaced(event.msg) } });
      enqueue.emit(out(guest(context), 'interrupt', 'NMI', { vcpu: context.vcpu, vector: NMI_VECTOR, rip }));
    }),
    /** IRET: IF = 1 and the displaced instruction is performed now, at a boundary again (or the spin resumes). */
    iret: enqueueActions(({ context, enqueue }) => {
      const i = context.interrupted;
      // After an NMI, IRET restores the IF the NMI found; after an interrupt, IF was 1.
      if (context.inNmi) enqueue.assign({ inNmi: false, interrupted: null });
      else enqueue.assign({ rflagsIf: true, interrupted: null });
      if (i === null) return;
      if ('msg' in i) {
        enqueue.raise({ type: i.msg.name, msg: { ...i.msg, id: -1, to: `hw.cpu${context.vcpu}`, cause: null } } as MachineEvent);
        return;
      }
      const next = { ...context, rflagsIf: context.inNmi ? context.rflagsIf : true, inNmi: false, interrupted: null, spinRip: i.spinRip };
      enqueue.assign({ spinRip: i.spinRip });
      // Back at the spin, a boundary: a notification that came during the handler is processed now.
      startPirExchangeAtSpin(next, enqueue);
      if (virtualInterruptReady(next)) deliverFromSpin(next, enqueue);
    }),
    /** TDG.VP.VEINFO.GET reads the area and clears the valid word (§4.2). */
    answerVeInfo: emit(({ context }) => out('tdx', 've-info', 'VE_INFO', { vcpu: context.vcpu, ...context.veInfo })),
    clearVeInfoValid: assign({ veInfo: ({ context }) => ({ ...context.veInfo, valid: 0 }) }),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'cpu',
  context: ({ input }) => ({
    vcpu: input.vcpu,
    vmType: input.vmType,
    sharedMask: input.vmType === 'tdx' ? sharedBit(input.gpaw) : 0n,
    access: null,
    lastWalk: null,
    keyid: 0,
    tlb: [],
    veInfo: { exitReason: 0, valid: 0, exitQualification: 0n, gla: 0n, gpa: 0n, eptpIndex: 0, instrLength: 0 },
    ipi: null,
    spinRip: null,
    rflagsIf: false,
    stiBlocking: false,
    vapic: NO_VIRTUAL_INTERRUPTS,
    piNotification: false,
    pirInFlight: false,
    statusWanted: false,
    interrupted: null,
    pendNmi: false,
    inNmi: false,
  }),
  initial: 'idle',
  on: {
    VE_INFO_GET: { actions: ['answerVeInfo', 'clearVeInfoValid'] },
    VE_INJECT: { actions: 'softwareVe' },
    // A walk or memory access in progress finishes first; the interrupt waits for the next boundary.
    IPI: [{ guard: 'isNotification', actions: 'notePiNotification' }, { actions: 'noteIpi' }],
    PIR: { actions: 'landPir' },
    PEND_NMI: { actions: 'notePendNmi' },
    GUEST_INTERRUPT_STATUS_GET: { actions: 'answerGuestInterruptStatus' },
    LOCAL_IRQ_ENABLE: { actions: 'handleIrq' },
    INVEPT: { actions: 'invept' },
    '*': { actions: 'unexpected' },
  },
  states: {
    idle: {
      on: {
        IPI: [
          { guard: and(['isNotification', 'spinning']), actions: ['notePiNotification', 'processPostedInterrupts'] },
          { guard: 'isNotification', actions: 'notePiNotification' },
          { guard: 'spinning', actions: ['noteIpi', 'exitInterrupt'] },
          { actions: 'noteIpi' },
        ],
        LOAD: atBoundary([
          { guard: 'tlbHit', target: 'accessing', actions: ['beginAccess', 'useCachedTranslation'] },
          { target: 'walking', actions: 'beginAccess' },
        ]),
        STORE: atBoundary([
          { guard: 'tlbHit', target: 'accessing', actions: ['beginAccess', 'useCachedTranslation'] },
          { target: 'walking', actions: 'beginAccess' },
        ]),
        HLT: atBoundary([{ actions: 'exitHlt' }]),
        SPIN: atBoundary([{ actions: 'startSpin' }]),
        OUT: atBoundary([{ actions: 'exitIo' }]),
        IN: atBoundary([{ actions: 'exitIo' }]),
        WRMSR: atBoundary([{ actions: 'exitMsrWrite' }]),
        STI: atBoundary([{ actions: 'setIf' }]),
        CLI: atBoundary([{ actions: 'setIf' }]),
        // The handler runs with IF = 0: its EOI and IRET are never interrupted.
        EOI: { actions: 'eoi' },
        IRET: { actions: 'iret' },
        ...Object.fromEntries(TDCALLS.map((name) => [name, atBoundary([{ actions: 'forwardTdcall' }])])),
      },
    },
    walking: {
      entry: 'requestWalk',
      on: {
        EPT_WALK_RESULT: { target: 'deciding', actions: 'decide' },
      },
    },
    deciding: {
      always: [
        { guard: 'misconfig', target: 'idle', actions: ['exitEptMisconfig', 'endAccess'] },
        { guard: 'becomesVe', target: 'idle', actions: ['deliverVe', 'injectVe', 'endAccess'] },
        { guard: 'violation', target: 'idle', actions: ['exitEptViolation', 'endAccess'] },
        { target: 'accessing', actions: 'fillTlb' },
      ],
    },
    /** Translated: the load or store is performed by the memory controller. */
    accessing: {
      entry: 'accessMemory',
      on: {
        MEM_DATA: { target: 'idle', actions: ['retire', 'endAccess'] },
        MEM_DONE: { target: 'idle', actions: ['retire', 'endAccess'] },
      },
    },
  },
});
