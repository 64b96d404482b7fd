/**
 * A TD vCPU's posted-interrupt descriptor and KVM's side of delivering to it (posted_intr.c, tdx.c):
 * interrupts reach a TD only this way, since KVM cannot write its virtual APIC (§5c.1 step 8).
 *
 * The descriptor (vcpu_tdx's pi_desc) is KVM memory whose address the TD VMCS holds (TDH.VP.WR 0x2016);
 * the model keeps it in this thread's context. A sender — here the VMM thread's KVM_SIGNAL_MSI, run by
 * this actor on its behalf — sets the vector's PIR bit and then the ON bit; if ON was already set a
 * notification is on its way and nothing more happens (__vmx_deliver_posted_interrupt). Otherwise it
 * reads vcpu->mode: in guest mode (inside TDH.VP.ENTER) it sends the notification vector to the vCPU's
 * CPU (kvm_vcpu_trigger_posted_interrupt); outside it wakes the vCPU (kvm_vcpu_wake_up), which matters
 * only to a halted one (halt.ts). The guest's LAPIC timer, which KVM emulates for a TD, delivers the same
 * way when its hrtimer fires (apic_timer_fn); the model arms it at the first KVM_RUN (scenario
 * `lapicTimer`), and the expiry is a message the schedule delivers at any point — no real time. The CPU's posted-interrupt processing takes PIR and clears ON with one
 * exchange (PIR_XCHG). Before each TDH.VP.ENTER, tdx_vcpu_run sends itself the notification vector if ON
 * is set, so the CPU processes PIR right after the entry.
 *
 * pi_has_pending_interrupt is all KVM can see of a TD's pending interrupts without a SEAMCALL: ON (the
 * suppress-notification bit is never set for a running TD, so PIR alone does not count).
 *
 * A guest's IPI to another vCPU takes the same path from the sender's thread: its x2APIC ICR write
 * (tdvmcall.ts) → kvm_apic_send_ipi → kvm_irq_delivery_to_apic → __apic_accept_irq → tdx_deliver_interrupt →
 * __vmx_deliver_posted_interrupt on the destination's descriptor. The model has the destination's actor run
 * it on the sender's behalf (kvm_apic_send_ipi, a kvm-call) and answer when done, so the sender's WRMSR
 * completes only after PIR, ON and the notification or wake-up, as the real call returns only then.
 */
import { out, payloadOf, type Message, type Outgoing } from '../../src/protocol/messages.ts';
import { POSTED_INTR_VECTOR } from '../../src/arch/vmx.ts';
import { decodeX2apicIcr } from '../../src/arch/apic.ts';
import { assign, enqueueActions, type VcpuGuards } from './vcpuSetup.ts';
import type { KvmVcpuContext } from './kvmVcpu.ts';

/** struct pi_desc as far as the model uses it: PIR (bit N = vector N) and ON. */
export interface PiDesc {
  pir: bigint;
  on: boolean;
}

export const NO_POSTED_INTERRUPTS: PiDesc = { pir: 0n, on: false };

/** The fixed-delivery vector of an MSI (kvm_msi.data bits 7:0). */
export const msiVector = (data: number) => data & 0xff;

function posted(c: KvmVcpuContext, vector: number): PiDesc {
  return { pir: c.piDesc.pir | (1n << BigInt(vector)), on: true };
}

/**
 * The vector a sender delivers: an MSI's data, or the LAPIC timer's LVT vector when its hrtimer fires.
 * KVM_SIGNAL_MSI returns 1 (delivered to one vCPU) to the VMM; the timer callback returns nothing.
 */
function delivery(c: KvmVcpuContext, event: { type: string; msg: Message }): { vector: number; reply: Outgoing | null } {
  if (event.type === 'apic_timer_fn') return { vector: c.lapicTimer!.vector, reply: null };
  if (event.type === 'kvm_apic_send_ipi') {
    const m = payloadOf(event, 'kvm-call', 'kvm_apic_send_ipi');
    return { vector: m.vector, reply: out(event.msg.from, 'kvm-call-return', 'kvm_apic_send_ipi', { vcpu: c.vcpu, source: m.source }) };
  }
  const m = payloadOf(event, 'ioctl', 'KVM_SIGNAL_MSI');
  return { vector: msiVector(m.data), reply: out(event.msg.from, 'ioctl-return', 'KVM_SIGNAL_MSI', { vcpu: c.vcpu, ret: 1 }) };
}

export const postedInterruptGuards = {
  /** pi_has_pending_interrupt. */
  piPending: ({ context }) => context.piDesc.on,
} satisfies VcpuGuards;

export const postedInterruptActions = {
  /**
   * The sender outside guest mode: PIR, ON, and kvm_vcpu_wake_up (a no-op unless the vCPU is halting,
   * whose states add noteWakeup). KVM_SIGNAL_MSI returns 1: delivered to one vCPU.
   */
  postInterrupt: enqueueActions(({ context, event, enqueue }) => {
    const d = delivery(context, event);
    enqueue.assign({ piDesc: posted(context, d.vector) });
    if (d.reply !== null) enqueue.emit(d.reply);
  }),
  /** The sender finds the vCPU in guest mode: the notification IPI, unless ON says one was already sent. */
  postInterruptInGuest: enqueueActions(({ context, event, enqueue }) => {
    const d = delivery(context, event);
    enqueue.assign({ piDesc: posted(context, d.vector) });
    if (!context.piDesc.on) enqueue.emit(out(`hw.cpu${context.vcpu}`, 'interrupt', 'IPI', { vcpu: context.vcpu, requester: null, vector: POSTED_INTR_VECTOR }));
    if (d.reply !== null) enqueue.emit(d.reply);
  }),
  /**
   * The vCPU's own ICR names itself (tdvmcall.ts): the thread posts to its own descriptor outside guest
   * mode, so no notification; the self-IPI before the next entry (selfIpiIfOn) hands it to the CPU.
   */
  postSelfIpi: assign({ piDesc: ({ context }) => posted(context, decodeX2apicIcr(context.exit!.gprs!.R13 ?? 0n).vector) }),
  /** The first KVM_RUN arms the guest's LAPIC timer (scenario `lapicTimer`): its expiry is a message to this thread. */
  armLapicTimer: enqueueActions(({ context, enqueue }) => {
    if (context.lapicTimer === null || context.lapicTimer.armed) return;
    enqueue.assign({ lapicTimer: { ...context.lapicTimer, armed: true } });
    enqueue.emit(out(`kvm.vcpu${context.vcpu}`, 'kvm-call', 'apic_timer_fn', { vcpu: context.vcpu }));
  }),
  /** kvm_vcpu_wake_up while the vCPU is deciding whether to block: its loop checks again. */
  noteWakeup: assign({ wakeup: true }),
  /** The CPU's posted-interrupt processing: ON cleared, PIR handed over and cleared. */
  exchangePir: enqueueActions(({ context, enqueue }) => {
    enqueue.assign({ piDesc: { pir: 0n, on: false } });
    if (context.exitsWhilePosted !== 0) enqueue.assign({ exitsWhilePosted: 0 });
    enqueue.emit(out(`hw.cpu${context.vcpu}`, 'posted-interrupt', 'PIR', { vcpu: context.vcpu, pir: context.piDesc.pir }));
  }),
  /** tdx_vcpu_run: ON set → self-IPI with the notification vector, taken right after the entry. */
  selfIpiIfOn: enqueueActions(({ context, enqueue }) => {
    if (context.piDesc.on) enqueue.emit(out(`hw.cpu${context.vcpu}`, 'interrupt', 'IPI', { vcpu: context.vcpu, requester: null, vector: POSTED_INTR_VECTOR }));
  }),
};
