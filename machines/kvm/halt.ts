/**
 * A TD vCPU that asked to halt (TDG.VP.VMCALL<Instruction.HLT>, §4.3): kvm_emulate_halt_noskip →
 * kvm_vcpu_halt, whose loop checks for a wake-up event before blocking, and again after every wake-up
 * (kvm_vcpu_check_block: a pending signal ends KVM_RUN; kvm_arch_vcpu_runnable a pending interrupt).
 * Halt-polling runs the same check repeatedly before the thread blocks, so the model checks once, then
 * blocks until a signal or kvm_vcpu_wake_up.
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
import { assign, emit, type VcpuGuards } from './vcpuSetup.ts';

// The field and its bit are TDX-module ABI (KVM's tdx_arch.h names them the same).
import { TD_VCPU_STATE_DETAILS_NON_ARCH_FIELD, TDX_VCPU_STATE_DETAILS_INTR_PENDING } from '../tdxModule/vcpuStateDetails.ts';

export const haltGuards = {
  hltChecksVmxip: ({ context }) => context.policies.hltChecksVmxip,
  /** The exit was HLT with R12 (interrupt-blocked flag) clear. */
  hltInterruptsEnabled: ({ context }) => (context.exit?.gprs?.R12 ?? 1n) === 0n,
  vmxip: ({ event }) => {
    const r = payloadOf(event, 'seamcall-return', 'TDH.VP.RD');
    return r.RAX === TDX_SUCCESS && ((r.R8 ?? 0n) & TDX_VCPU_STATE_DETAILS_INTR_PENDING) !== 0n;
  },
  wokenMeanwhile: ({ context }) => context.wakeup,
} satisfies VcpuGuards;

export const haltActions = {
  readStateDetails: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.RD', { RCX: context.tdvpr, RDX: TD_VCPU_STATE_DETAILS_NON_ARCH_FIELD })),
  clearWakeup: assign({ wakeup: false }),
};

export const haltStates = {
  /** kvm_vcpu_check_block, TD flavour; a wake-up event makes the thread enter the TD again. */
  halting: {
    always: [
      { guard: 'signalPending', target: 'inUserspace', actions: ['clearWakeup', 'exitIntr'] },
      { guard: 'piPending', target: 'entering', actions: 'clearWakeup' },
      { guard: 'nmiQueued', target: 'entering', actions: 'clearWakeup' },
      { guard: and(['hltChecksVmxip', 'hltInterruptsEnabled']), target: 'readingVcpuStateDetails', actions: 'clearWakeup' },
      { target: 'halted', actions: 'clearWakeup' },
    ],
  },
  /** tdx_protected_apic_has_interrupt's TDH.VP.RD; a post meanwhile wakes the loop for another check. */
  readingVcpuStateDetails: {
    entry: 'readStateDetails',
    on: {
      'TDH.VP.RD': [{ guard: 'vmxip', target: 'entering' }, { guard: 'wokenMeanwhile', target: 'halting' }, { target: 'halted' }],
      KVM_SIGNAL_MSI: { actions: ['postInterrupt', 'noteWakeup'] },
      apic_timer_fn: { actions: ['postInterrupt', 'noteWakeup'] },
      kvm_apic_send_ipi: { actions: ['postInterrupt', 'noteWakeup'] },
      KVM_NMI: { actions: ['queueNmi', 'noteWakeup'] },
    },
  },
} as const;
