/**
 * KVM's tdh_do_no_vcpus (§7.3) as statechart states, shared by the threads that zap or split private
 * mappings under write mmu_lock (kvm.vm for attribute changes, a vCPU thread for the accept-level split).
 *
 * `<state>` issues the SEAMCALL; TDX_OPERAND_BUSY the first time goes to `<state>Kick`, which forces every
 * vCPU out of guest mode (kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE)) and comes back for the one
 * retry; a second BUSY or any other error is a KVM_BUG_ON. With policy zapBusyKickRetry off (src/policies.ts)
 * the first BUSY is already one. The machine using it provides the guards `seamcallOk`, `seamcallBusy`,
 * `retried`, `kickRetryOnBusy`, `acksDone` and the actions `markRetried`, `clearRetried`, `kickAll`, `countAck`,
 * `kvmBugSeamcall`, and a `#<id>.vmDead` state.
 */
import { and, not } from 'xstate';
import { out, type HostSeamcall, type Outgoing } from '../../src/protocol/messages.ts';

/**
 * kvm_make_all_cpus_request's messages: the request to every vCPU thread but the caller's own (a thread
 * making the request is outside guest mode itself). Each answers with KVM_REQ_ACK once it is out of guest mode.
 */
export function allCpusRequest(name: 'KVM_REQ_OUTSIDE_GUEST_MODE' | 'KVM_REQ_TLB_FLUSH', vcpus: number, self: number | null = null): Outgoing[] {
  const msgs: Outgoing[] = [];
  for (let v = 0; v < vcpus; v++) if (v !== self) msgs.push(out(`kvm.vcpu${v}`, 'kvm-request', name, { vcpu: v }));
  return msgs;
}

export function noVcpus(machineId: string, state: string, call: HostSeamcall, issue: string, next: string) {
  return {
    [state]: {
      entry: issue,
      on: {
        [call]: [
          { guard: 'seamcallOk', target: next, actions: 'clearRetried' },
          { guard: and(['seamcallBusy', 'kickRetryOnBusy', not('retried')]), target: `${state}Kick`, actions: 'markRetried' },
          { target: `#${machineId}.vmDead`, actions: 'kvmBugSeamcall' },
        ],
      },
    } as const,
    [`${state}Kick`]: kicking(state),
  };
}

/** Wait for every KVM_REQ_ACK of the request `kickAll` sent (none if there was nobody to ask). */
export function kicking(next: string) {
  return {
    entry: 'kickAll',
    always: { guard: 'acksDone', target: next },
    on: { KVM_REQ_ACK: { actions: 'countAck' } },
  } as const;
}
