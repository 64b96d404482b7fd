/**
 * KVM_RUN's loop (vcpu_run / vcpu_enter_guest) for a TD (tdx_vcpu_run: TDH.VP.ENTER, §5c.1) or a VMX
 * guest (vmx_vcpu_run: VMLAUNCH/VMRESUME), the TD exit's fastpath and dispatch (tdx_handle_exit), halting,
 * and the thread's side of kvm_make_all_cpus_request and of signals. The exits it dispatches are handled in
 * mmuPageFault.ts (EPT violation, VMX misconfig) and tdvmcall.ts (TDG.VP.VMCALL); an MMIO access either
 * way goes to the VMM as KVM_EXIT_MMIO here, and completes on the next KVM_RUN (complete_userspace_io).
 *
 * While this thread runs the guest (inside TDH.VP.ENTER, vcpu->mode = IN_GUEST_MODE), a
 * kvm_make_all_cpus_request from another thread becomes an IPI to this vCPU's CPU; after the TD exit the
 * thread enables interrupts, the IPI's handler runs (which ends the requester's wait), and only then is the
 * exit handled (§7.4). Outside guest mode the request is acknowledged at once. A BUSY from the entry
 * takes the same way out before the thread enters again (§5c.1 step 5); with policy busyLeavesFastpath off
 * it enters again from the fastpath with the IPI unhandled, and entriesWhileKicked counts those entries.
 *
 * A signal (the VMM's SIG_IPI) kicks a vCPU in guest mode with a reschedule IPI; KVM_RUN then returns
 * -EINTR (KVM_EXIT_INTR) before the next entry, and a halted vCPU wakes up to do the same.
 *
 * KVM_REQ_TLB_FLUSH (kvm_flush_remote_tlbs after a zap) is remembered whether it came with an IPI or not,
 * and vcpu_enter_guest serves it before the next TDH.VP.ENTER: tdx_flush_tlb_all, a global INVEPT on this
 * vCPU's CPU (flushingTlb, §1.2), which takes the shared EPT's translations that only KVM flushes.
 */
import { and, not } from 'xstate';
import { out, payloadOf, type Gprs, type DecodedInsn } from '../../src/protocol/messages.ts';
import { KVM_EXIT_MMIO, KVM_EXIT_INTR, EINTR } from '../../src/arch/kvmApi.ts';
import { sizeMask } from '../guest/program.ts';
import { CALL_FUNCTION_SINGLE_VECTOR, RESCHEDULE_VECTOR, VMX_EPT_EXTENT_GLOBAL, isExternalIntr } from '../../src/arch/vmx.ts';
import { hex } from '../../src/arch/hex.ts';
import { assign, emit, enqueueActions, type VcpuGuards } from './vcpuSetup.ts';
import type { ExitInfo, KvmVcpuContext } from './kvmVcpu.ts';

const guest = (c: KvmVcpuContext) => `guest.vcpu${c.vcpu}`;

export const vcpuRunGuards = {
  mmioPending: ({ context }) => context.mmio !== null,
  tlbFlushPending: ({ context }) => context.tlbFlushPending,
  signalPending: ({ context }) => context.signalPending,
  waitingForSeptZap: ({ context }) => context.waitForSeptZap,
  exitIs: ({ context }, reason: ExitInfo['reason']) => context.exit!.reason === reason,
  ipiSent: ({ context }) => context.ipiRequesters.length > 0 || context.signalKicked,
  busyLeavesFastpath: ({ context }) => context.policies.busyLeavesFastpath,
  /** vmx_handle_external_interrupt_irqoff: the exit's interruption information must be a valid external interrupt. */
  bogusInterruptInfo: ({ context }) => context.exit!.reason === 'EXTERNAL_INTERRUPT' && !isExternalIntr(context.exit!.intrInfo),
} satisfies VcpuGuards;

export const vcpuRunActions = {
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
  exitMmio: emit(({ context }) => {
    const m = context.mmio!;
    return out(context.runOwner ?? 'vmm', 'kvm-exit', 'KVM_EXIT_MMIO', { vcpu: context.vcpu, exit_reason: KVM_EXIT_MMIO, phys_addr: m.physAddr, len: m.len, is_write: m.isWrite ? 1 : 0, data: m.data });
  }),
  tdhVpEnter: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.ENTER', { vcpu: context.vcpu, RCX: context.tdvpr, ...context.enterGprs })),
  /**
   * vp_enter_args is in and out: a TD exit overwrites the TDVMCALL outputs KVM placed there, so only an
   * entry that happened consumes them. A TDH.VP.ENTER refused with BUSY returns with the registers as
   * they went in, and the next attempt passes the same R10/R11 (§5c.1 step 5).
   */
  clearEnterGprs: assign({ enterGprs: () => null }),
  vmxEnter: emit(({ context }) =>
    out(guest(context), 'vm-entry', context.launched ? 'VMRESUME' : 'VMLAUNCH', { vcpu: context.vcpu, tdcallReturn: null, emulated: context.emulated }),
  ),
  markLaunched: assign({ launched: () => true, emulated: () => null }),
  recordTdExit: assign({
    exit: ({ event }) => {
      const p = event.msg.payload as Gprs;
      const reason = event.type as ExitInfo['reason'];
      const gprs = reason === 'TDCALL' ? { RCX: p.RCX, R10: p.R10, R11: p.R11, R12: p.R12, R13: p.R13, R14: p.R14, R15: p.R15 } : null;
      // tdx_vcpu_enter_exit: RCX exit qualification, RDX EEQ, R8 GPA, R9 interruption information (§5c.1 step 4).
      return { reason, exitQualification: p.RCX ?? 0n, gpa: p.R8 ?? 0n, eeq: p.RDX ?? 0n, intrInfo: Number(p.R9 ?? 0n), insn: null, gprs };
    },
  }),
  recordVmExit: assign({
    exit: ({ event }) => {
      const p = event.msg.payload as { exitQualification?: bigint; gpa?: bigint; insn?: DecodedInsn | null };
      return { reason: event.type as ExitInfo['reason'], exitQualification: p.exitQualification ?? 0n, gpa: p.gpa ?? 0n, eeq: 0n, intrInfo: 0, insn: p.insn ?? null, gprs: null };
    },
  }),
  kvmBugEptMisconfig: assign({ deathReason: () => 'KVM_BUG_ON: the TDX module returned raw exit reason EPT_MISCONFIG (49) (§5c.1 step 4)' }),
  kvmBugInterruptInfo: assign({ deathReason: ({ context }) => `KVM_BUG: unexpected VM-Exit interrupt info: ${hex(context.exit!.intrInfo)} (vmx_handle_external_interrupt_irqoff, §5c.1 step 4)` }),
  /** Another thread's tdh_do_no_vcpus set wait_for_sept_zap before kicking this vCPU, or cleared it. */
  noteSeptZapWait: assign({ waitForSeptZap: ({ context, event }) => context.waitForSeptZap || (event.msg.payload as { waitForSeptZap?: true }).waitForSeptZap === true }),
  endWaitForSeptZap: assign({ waitForSeptZap: false }),
  // ---- kvm_make_all_cpus_request (§7.4) ----
  ackRequest: emit(({ context, event }) => out(event.msg.from, 'kvm-request', 'KVM_REQ_ACK', { vcpu: context.vcpu })),
  sendIpi: enqueueActions(({ context, event, enqueue }) => {
    enqueue.assign({ ipiRequesters: [...context.ipiRequesters, event.msg.from] });
    // smp_call_function_many with this CPU as the one target (the model kicks each CPU on its own).
    enqueue.emit(out(`hw.cpu${context.vcpu}`, 'interrupt', 'IPI', { vcpu: context.vcpu, requester: event.msg.from, vector: CALL_FUNCTION_SINGLE_VECTOR }));
  }),
  localIrqEnable: emit(({ context }) => out(`hw.cpu${context.vcpu}`, 'interrupt', 'LOCAL_IRQ_ENABLE', { vcpu: context.vcpu })),
  clearIpi: assign({ ipiRequesters: () => [], signalKicked: () => false, entriesWhileKicked: () => 0 }),
  // Upstream never counts, so an entry leaves the context object as it was (the explorer hashes it once).
  countEntryWhileKicked: enqueueActions(({ context, enqueue }) => {
    if (context.ipiRequesters.length > 0) enqueue.assign({ entriesWhileKicked: context.entriesWhileKicked + 1 });
  }),
  // ---- KVM_REQ_TLB_FLUSH (§1.2) ----
  noteTlbFlush: assign({ tlbFlushPending: true }),
  /**
   * kvm_vcpu_flush_tlb_all → tdx_flush_tlb_all: ept_sync_global, an all-context INVEPT on this CPU. It
   * takes the shared EPT's translations, which only KVM flushes, and the private ones with them.
   */
  inveptGlobal: emit(({ context }) => out(`hw.cpu${context.vcpu}`, 'tlb', 'INVEPT', { vcpu: context.vcpu, type: VMX_EPT_EXTENT_GLOBAL, eptp: null, then: null })),
  tlbFlushed: assign({ tlbFlushPending: false }),
  // ---- Signals ----
  noteSignal: assign({ signalPending: () => true }),
  /** kick_process: a reschedule IPI to the CPU running the guest; nobody waits for its handler. */
  kickForSignal: enqueueActions(({ context, enqueue }) => {
    enqueue.assign({ signalPending: true, signalKicked: true });
    enqueue.emit(out(`hw.cpu${context.vcpu}`, 'interrupt', 'IPI', { vcpu: context.vcpu, requester: null, vector: RESCHEDULE_VECTOR }));
  }),
  /** xfer_to_guest_mode_handle_work: a pending signal ends KVM_RUN with -EINTR. */
  exitIntr: enqueueActions(({ context, enqueue }) => {
    enqueue.assign({ signalPending: false });
    enqueue.emit(out(context.runOwner ?? 'vmm', 'kvm-exit', 'KVM_EXIT_INTR', { vcpu: context.vcpu, exit_reason: KVM_EXIT_INTR, ret: EINTR }));
  }),
};

export const vcpuRunStates = {
  /**
   * KVM_RUN's loop before each entry: a pending signal ends it (xfer_to_guest_mode_handle_work); then
   * vcpu_enter_guest's requests — KVM_REQ_TLB_FLUSH first flushes this CPU's TLB — then TD or VMX.
   */
  entering: {
    always: [
      { guard: 'signalPending', target: 'inUserspace', actions: 'exitIntr' },
      { guard: and(['isTd', 'tlbFlushPending']), target: 'flushingTlb' },
      { guard: and(['isTd', 'nmiQueued']), target: 'injectingNmi' },
      { guard: and(['isTd', 'waitingForSeptZap']), target: 'waitingForSeptZap' },
      { guard: 'isTd', target: 'inTdhVpEnter' },
      { target: 'inGuestMode' },
    ],
  },
  /** The INVEPT runs on this vCPU's CPU before anything enters the guest there again. */
  flushingTlb: {
    entry: 'inveptGlobal',
    on: { INVEPT: { target: 'entering', actions: 'tlbFlushed' } },
  },
  /**
   * tdx_vcpu_run with wait_for_sept_zap set returns at once without TDH.VP.ENTER, and KVM_RUN's loop
   * comes back to it, until the zapping thread's retry is done; a signal still ends KVM_RUN.
   */
  waitingForSeptZap: {
    entry: 'srcuReadUnlock',
    always: { guard: 'signalPending', target: 'inUserspace', actions: 'exitIntr' },
    on: { SEPT_ZAP_DONE: { target: 'entering', actions: 'endWaitForSeptZap' }, SYNCHRONIZE_SRCU: { actions: 'reportQuiescent' } },
  },
  /** tdx_vcpu_run: the SEAMCALL returns only with a TD exit (§5c.1 steps 3–4). */
  inTdhVpEnter: {
    entry: ['srcuReadUnlock', 'countEntryWhileKicked', 'selfIpiIfOn', 'tdhVpEnter'],
    on: {
      // vcpu_enter_guest dropped kvm->srcu before the entry.
      SYNCHRONIZE_SRCU: { actions: 'reportQuiescent' },
      EPT_VIOLATION: { target: 'tdExited', actions: ['clearEnterGprs', 'recordTdExit'] },
      TDCALL: { target: 'tdExited', actions: ['clearEnterGprs', 'recordTdExit'] },
      EPT_MISCONFIG: { target: 'tdExited', actions: ['clearEnterGprs', 'recordTdExit'] },
      EXTERNAL_INTERRUPT: { target: 'tdExited', actions: ['clearEnterGprs', 'recordTdExit'] },
      // tdx_exit_handlers_fastpath: BUSY from the entry is "handled", leave with interrupts on, enter again
      // (§5c.1 step 5). Policy busyLeavesFastpath off: enter again at once with interrupts still off, unless
      // wait_for_sept_zap makes tdx_vcpu_run return without entering, which does leave the fastpath.
      BUSY: [
        { guard: and([not('busyLeavesFastpath'), not('waitingForSeptZap')]), target: 'inTdhVpEnter', reenter: true, actions: 'recordTdExit' },
        { target: 'tdExited', actions: 'recordTdExit' },
      ],
      KVM_REQ_OUTSIDE_GUEST_MODE: { actions: ['noteSeptZapWait', 'sendIpi'] },
      KVM_REQ_TLB_FLUSH: { actions: ['noteTlbFlush', 'sendIpi'] },
      SIG_IPI: { actions: 'kickForSignal' },
      // vcpu->mode is IN_GUEST_MODE: the sender notifies the CPU (postedInterrupt.ts).
      KVM_SIGNAL_MSI: { actions: 'postInterruptInGuest' },
      apic_timer_fn: { actions: 'postInterruptInGuest' },
      kvm_apic_send_ipi: { actions: 'postInterruptInGuest' },
      KVM_NMI: { actions: ['queueNmi', 'kickForNmi'] },
    },
  },
  /**
   * Back from TDH.VP.ENTER with interrupts off: handle_exit_irqoff runs first (an external interrupt's
   * information must be valid), then a pending IPI's handler runs once interrupts are enabled.
   */
  tdExited: {
    always: [{ guard: 'bogusInterruptInfo', target: 'vmDead', actions: 'kvmBugInterruptInfo' }, { guard: 'ipiSent', target: 'takingIpi' }, { target: 'dispatchingExit' }],
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
    entry: ['srcuReadUnlock', 'vmxEnter', 'markLaunched'],
    on: {
      SYNCHRONIZE_SRCU: { actions: 'reportQuiescent' },
      EPT_VIOLATION: { target: 'handlingEptViolation', actions: ['recordVmExit', 'beginEptViolation'] },
      EPT_MISCONFIG: { target: 'handlingEptMisconfig', actions: 'recordVmExit' },
      HLT: 'halted',
    },
  },
  /**
   * kvm_vcpu_halt, blocked: a signal ends KVM_RUN; a posted interrupt's kvm_vcpu_wake_up makes a TD's
   * loop check again (halt.ts). A VMX guest gets here straight from its HLT exit.
   */
  halted: {
    // kvm_vcpu_block runs without kvm->srcu.
    entry: 'srcuReadUnlock',
    // kvm_vcpu_check_block: a signal already pending (its kick may have met the HLT exit) ends the block at once.
    always: { guard: 'signalPending', target: 'inUserspace', actions: ['endHaltForSignal', 'exitIntr'] },
    on: {
      SYNCHRONIZE_SRCU: { actions: 'reportQuiescent' },
      SIG_IPI: { target: 'inUserspace', actions: ['endHaltForSignal', 'exitIntr'] },
      KVM_SIGNAL_MSI: { target: 'halting', actions: 'postInterrupt' },
      apic_timer_fn: { target: 'halting', actions: 'postInterrupt' },
      kvm_apic_send_ipi: { target: 'halting', actions: 'postInterrupt' },
      KVM_NMI: { target: 'halting', actions: 'queueNmi' },
    },
  },
} as const;
