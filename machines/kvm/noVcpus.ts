/**
 * KVM's tdh_do_no_vcpus (§7.3) as statechart states, shared by the threads that zap or split private
 * mappings under write mmu_lock (kvm.vm for attribute changes, a vCPU thread for the accept-level split).
 *
 * `<state>` issues the SEAMCALL; TDX_OPERAND_BUSY the first time goes to `<state>Kick`, which forces every
 * vCPU out of guest mode (kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE)) and comes back for the one
 * retry; a second BUSY or any other error is a KVM_BUG_ON. With policy zapBusyKickRetry off (src/policies.ts)
 * the first BUSY is already one. The machine using it provides the guards `seamcallOk`, `seamcallBusy`,
 * `retried`, `kickRetryOnBusy`, `acksDone` and the actions `markRetried`, `clearRetried`, `kickAll` (params
 * `{ waitForSeptZap }`), `countAck`, `endSeptZapWait` (SEPT_ZAP_DONE to the other vCPU threads if this
 * call was retried), `kvmBugSeamcall`, and a `#<id>.vmDead` state. Before its kick, tdh_do_no_vcpus sets
 * wait_for_sept_zap so no vCPU re-enters the TD (and re-takes a lock) before the retry (§5c.1 step 3).
 */
import { and, not } from 'xstate';
import { out, type HostSeamcall, type Outgoing } from '../../src/protocol/messages.ts';

/**
 * kvm_make_all_cpus_request's messages: the request to every vCPU thread but the caller's own (a thread
 * making the request is outside guest mode itself). Each answers with KVM_REQ_ACK once it is out of guest
 * mode. SEPT_ZAP_DONE goes to the same threads and is not answered.
 */
export function allCpusRequest(name: 'KVM_REQ_OUTSIDE_GUEST_MODE' | 'KVM_REQ_TLB_FLUSH' | 'SEPT_ZAP_DONE', vcpus: number, self: number | null = null, waitForSeptZap = false): Outgoing[] {
  const msgs: Outgoing[] = [];
  for (let v = 0; v < vcpus; v++) if (v !== self) msgs.push(out(`kvm.vcpu${v}`, 'kvm-request', name, waitForSeptZap ? { vcpu: v, waitForSeptZap: true } : { vcpu: v }));
  return msgs;
}

export function noVcpus(machineId: string, state: string, call: HostSeamcall, issue: string, next: string) {
  return {
    [state]: {
      entry: issue,
      on: {
        [call]: [
          // After the retry, whatever it returned, wait_for_sept_zap is cleared (endSeptZapWait).
          { guard: 'seamcallOk', target: next, actions: ['endSeptZapWait', 'clearRetried'] },
          { guard: and(['seamcallBusy', 'kickRetryOnBusy', not('retried')]), target: `${state}Kick`, actions: 'markRetried' },
          { target: `#${machineId}.vmDead`, actions: ['endSeptZapWait', 'kvmBugSeamcall'] },
        ],
      },
    } as const,
    [`${state}Kick`]: kicking(state, true),
  };
}

/**
 * Wait for every KVM_REQ_ACK of the request `kickAll` sent (none if there was nobody to ask);
 * `waitForSeptZap`: tdh_do_no_vcpus's kick, which also keeps the vCPUs from entering until its retry.
 */
export function kicking(next: string, waitForSeptZap = false) {
  return {
    entry: { type: 'kickAll', params: { waitForSeptZap } },
    always: { guard: 'acksDone', target: next },
    on: { KVM_REQ_ACK: { actions: 'countAck' } },
  } as const;
}
