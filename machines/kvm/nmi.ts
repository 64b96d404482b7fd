/**
 * NMIs for a TD vCPU (§5c.1 step 8): KVM cannot inject into a TD's VMCS, so an NMI queued by KVM_NMI
 * (kvm_inject_nmi: KVM_REQ_NMI and a kick) is handed to the TDX module before the next TDH.VP.ENTER by
 * writing PEND_NMI, TDVPS management field 11, with TDH.VP.WR (tdx_inject_nmi). The module delivers it
 * when VE_INFO is free (§5a.6): a guest still in its #VE handler before TDG.VP.VEINFO.GET gets it after.
 * A queued NMI is a wake-up event for a halted vCPU (kvm_vcpu_has_events).
 */
import { out } from '../../src/protocol/messages.ts';
import { RESCHEDULE_VECTOR } from '../../src/arch/vmx.ts';
import { assign, emit, enqueueActions, type VcpuGuards } from './vcpuSetup.ts';

import { TDVPS_PEND_NMI_FIELD } from '../tdxModule/vcpuStateDetails.ts';

export const nmiGuards = {
  nmiQueued: ({ context }) => context.nmiQueued,
  /** What the local retry loop and the MapGPA walk check: a posted interrupt (ON) or a queued NMI. */
  eventPending: ({ context }) => context.piDesc.on || context.nmiQueued,
} satisfies VcpuGuards;

export const nmiActions = {
  /** kvm_inject_nmi: nmi_queued and KVM_REQ_NMI; KVM_NMI returns 0. */
  queueNmi: enqueueActions(({ context, event, enqueue }) => {
    enqueue.assign({ nmiQueued: true });
    enqueue.emit(out(event.msg.from, 'ioctl-return', 'KVM_NMI', { vcpu: context.vcpu, ret: 0 }));
  }),
  /** kvm_vcpu_kick of a vCPU in guest mode: a reschedule IPI, so the request is seen before the next entry. */
  kickForNmi: enqueueActions(({ context, enqueue }) => {
    enqueue.assign({ signalKicked: true });
    enqueue.emit(out(`hw.cpu${context.vcpu}`, 'interrupt', 'IPI', { vcpu: context.vcpu, requester: null, vector: RESCHEDULE_VECTOR }));
  }),
  /** tdx_inject_nmi: td_management_write8(PEND_NMI, 1). */
  writePendNmi: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.WR', { RCX: context.tdvpr, RDX: TDVPS_PEND_NMI_FIELD, R8: 1n, R9: 0xffn })),
  nmiInjected: assign({ nmiQueued: false }),
};

export const nmiStates = {
  injectingNmi: {
    entry: 'writePendNmi',
    on: { 'TDH.VP.WR': { target: 'entering', actions: 'nmiInjected' } },
  },
} as const;
