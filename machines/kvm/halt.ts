/**
 * A TD vCPU that asked to halt (TDG.VP.VMCALL<Instruction.HLT>, §4.3): kvm_emulate_halt_noskip →
 * kvm_vcpu_halt, whose loop checks for a wake-up event before blocking, and again after every wake-up
 * (kvm_vcpu_check_block: a pending signal ends KVM_RUN; kvm_arch_vcpu_runnable a pending interrupt).
 *
 * Halt-polling (kvm_vcpu_halt, policy haltPollNs = the halt_poll_ns module parameter): with a poll window
 * open, a check that finds nothing does not block; the thread polls — an event posted meanwhile is seen by
 * the next check without any wake-up — until the window ends (kvm_vcpu_can_poll false, a message on the
 * logical clock), checks once more and blocks. The window is per vCPU and adaptive: vcpu->halt_poll_ns is
 * 0 at first (the first HLT blocks at once), grows to halt_poll_ns_grow_start (10 µs) after a halt that
 * blocked and doubles after each later one, up to halt_poll_ns; a halt ended by polling leaves it as it
 * is. The model has no durations: every halt counts as shorter than halt_poll_ns, so none shrinks it. A TD
 * polls with the same check as the block decision — ON, then, for R12 = 0, TDH.VP.RD of VMXIP on every
 * pass; no upstream change turns polling off for a TD (kvm_arch_no_poll reads MSR_KVM_POLL_CONTROL, which
 * KVM emulates for a TD as for any guest).
 *
 * KVM cannot read a TD's vIRR, so for a TD the interrupt check is tdx_protected_apic_has_interrupt: the
 * posted-interrupt descriptor's ON bit first; then, only when the exit was HLT with the guest's R12 = 0
 * (interrupts not blocked), TDH.VP.RD of TD_VCPU_STATE_DETAILS_NON_ARCH, whose VMXIP bit says the CPU
 * already holds a deliverable virtual interrupt (one the guest could not take before the TDCALL because
 * its interrupts were off). Policy hltChecksVmxip off is the earlier check on the descriptor alone.
 *
 * A sender that posts while the check is running wakes the thread (noteWakeup), and the loop runs the
 * check again instead of blocking: a wake-up between the check and schedule() is never lost.
 */
import { and } from 'xstate';
import { out, payloadOf } from '../../src/protocol/messages.ts';
import { TDX_SUCCESS } from '../../src/arch/tdxStatus.ts';
import { HALT_POLL_NS_GROW, HALT_POLL_NS_GROW_START } from '../../src/arch/kvmApi.ts';
import { assign, emit, enqueueActions, type VcpuGuards } from './vcpuSetup.ts';

// The field and its bit are TDX-module ABI (KVM's tdx_arch.h names them the same).
import { TD_VCPU_STATE_DETAILS_NON_ARCH_FIELD, TDX_VCPU_STATE_DETAILS_INTR_PENDING } from '../tdxModule/vcpuStateDetails.ts';

/** vcpu->halt_poll_ns and the state of the current halt's poll window. */
export interface HaltPoll {
  /** vcpu->halt_poll_ns: the poll window of the next halt (0: block at once). */
  ns: number;
  /** This halt's window: not opened, open (polling), or over. */
  window: 'none' | 'open' | 'over';
  /** Windows opened so far; a kvm_vcpu_can_poll names the one it ends. */
  windows: number;
  /** This halt blocked (kvm_vcpu_block): the window grows when the halt ends. */
  blocked: boolean;
}

export const NO_HALT_POLL: HaltPoll = { ns: 0, window: 'none', windows: 0, blocked: false };

export const haltGuards = {
  hltChecksVmxip: ({ context }) => context.policies.hltChecksVmxip,
  /** The exit was HLT with R12 (interrupt-blocked flag) clear. */
  hltInterruptsEnabled: ({ context }) => (context.exit?.gprs?.R12 ?? 1n) === 0n,
  vmxip: ({ event }) => {
    const r = payloadOf(event, 'seamcall-return', 'TDH.VP.RD');
    return r.RAX === TDX_SUCCESS && ((r.R8 ?? 0n) & TDX_VCPU_STATE_DETAILS_INTR_PENDING) !== 0n;
  },
  wokenMeanwhile: ({ context }) => context.wakeup,
  /** do_halt_poll: a window to poll in, not yet opened for this halt. */
  pollWindowStarts: ({ context }) => context.haltPoll.window === 'none' && context.haltPoll.ns > 0,
  pollWindowOpen: ({ context }) => context.haltPoll.window === 'open',
  /** The end of this halt's window, not of an earlier one that an event cut short. */
  thisPollWindowEnds: ({ context, event }) => context.haltPoll.window === 'open' && payloadOf(event, 'kvm-call', 'kvm_vcpu_can_poll').window === context.haltPoll.windows,
} satisfies VcpuGuards;

export const haltActions = {
  readStateDetails: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.RD', { RCX: context.tdvpr, RDX: TD_VCPU_STATE_DETAILS_NON_ARCH_FIELD })),
  clearWakeup: assign({ wakeup: false }),
  /** The poll loop starts; its time check fails when the schedule delivers kvm_vcpu_can_poll. */
  openPollWindow: enqueueActions(({ context, enqueue }) => {
    const windows = context.haltPoll.windows + 1;
    enqueue.assign({ haltPoll: { ...context.haltPoll, window: 'open', windows } });
    enqueue.emit(out(`kvm.vcpu${context.vcpu}`, 'kvm-call', 'kvm_vcpu_can_poll', { vcpu: context.vcpu, window: windows }));
  }),
  closePollWindow: assign({ haltPoll: ({ context }) => ({ ...context.haltPoll, window: 'over' as const }) }),
  /**
   * A halt a signal ended (KVM_RUN returns -EINTR): the window is left as it was. KVM would grow it here
   * too; the model does not, so that a vCPU thread leaving for good (a VMM exit) does not split the states
   * of its teardown by a window no later halt uses — a re-entered vCPU that halts again polls one growth later.
   */
  endHaltForSignal: assign({ haltPoll: ({ context }) => ({ ...context.haltPoll, window: 'none' as const, blocked: false }) }),
  /** kvm_vcpu_block: the thread sleeps. */
  noteBlocked: assign({ haltPoll: ({ context }) => ({ ...context.haltPoll, blocked: true }) }),
  /**
   * The end of kvm_vcpu_halt: after a halt that blocked, grow_halt_poll_ns (to 10 µs, then × 2, while below
   * halt_poll_ns); halt_poll_ns 0 clears the window; a halt ended while polling leaves it.
   */
  endHalt: assign({
    haltPoll: ({ context }) => {
      const max = context.policies.haltPollNs;
      const p = context.haltPoll;
      const ns = max === 0 ? 0 : p.blocked && p.ns < max ? Math.max(p.ns * HALT_POLL_NS_GROW, HALT_POLL_NS_GROW_START) : p.ns;
      return { ns, window: 'none' as const, windows: p.windows, blocked: false };
    },
  }),
};

export const haltStates = {
  /**
   * kvm_vcpu_halt before the thread blocks: the wake-up check (TD flavour), its TDH.VP.RD, and the poll
   * loop. One compound state, entered at the check; leaving it for `halted` is the block.
   */
  halting: {
    initial: 'checking',
    states: {
      /** kvm_vcpu_check_block, TD flavour; a wake-up event makes the thread enter the TD again. */
      checking: {
        always: [
          { guard: 'signalPending', target: '#kvmVcpu.inUserspace', actions: ['clearWakeup', 'endHaltForSignal', 'exitIntr'] },
          { guard: 'piPending', target: '#kvmVcpu.entering', actions: ['clearWakeup', 'endHalt'] },
          { guard: 'nmiQueued', target: '#kvmVcpu.entering', actions: ['clearWakeup', 'endHalt'] },
          { guard: and(['hltChecksVmxip', 'hltInterruptsEnabled']), target: 'readingVcpuStateDetails', actions: 'clearWakeup' },
          { guard: 'pollWindowStarts', target: 'polling', actions: ['clearWakeup', 'openPollWindow'] },
          { guard: 'pollWindowOpen', target: 'polling', actions: 'clearWakeup' },
          { target: '#kvmVcpu.halted', actions: ['clearWakeup', 'noteBlocked'] },
        ],
      },
      /** tdx_protected_apic_has_interrupt's TDH.VP.RD; a post meanwhile wakes the loop for another check. */
      readingVcpuStateDetails: {
        entry: 'readStateDetails',
        on: {
          'TDH.VP.RD': [
            { guard: 'vmxip', target: '#kvmVcpu.entering', actions: 'endHalt' },
            { guard: 'wokenMeanwhile', target: 'checking' },
            { guard: 'pollWindowStarts', target: 'polling', actions: 'openPollWindow' },
            { guard: 'pollWindowOpen', target: 'polling' },
            { target: '#kvmVcpu.halted', actions: 'noteBlocked' },
          ],
          KVM_SIGNAL_MSI: { actions: ['postInterrupt', 'noteWakeup'] },
          apic_timer_fn: { actions: ['postInterrupt', 'noteWakeup'] },
          kvm_apic_send_ipi: { actions: ['postInterrupt', 'noteWakeup'] },
          KVM_NMI: { actions: ['queueNmi', 'noteWakeup'] },
        },
      },
      /**
       * The poll loop between checks: an event needs no wake-up, the next pass sees it; a signal too
       * (kvm_vcpu_check_block reads signal_pending); the window's end makes the last check before blocking.
       */
      polling: {
        on: {
          KVM_SIGNAL_MSI: { target: 'checking', actions: 'postInterrupt' },
          apic_timer_fn: { target: 'checking', actions: 'postInterrupt' },
          kvm_apic_send_ipi: { target: 'checking', actions: 'postInterrupt' },
          KVM_NMI: { target: 'checking', actions: 'queueNmi' },
          SIG_IPI: { target: 'checking', actions: 'noteSignal' },
          kvm_vcpu_can_poll: [{ guard: 'thisPollWindowEnds', target: 'checking', actions: 'closePollWindow' }, {}],
        },
      },
    },
  },
} as const;
