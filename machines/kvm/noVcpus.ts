/**
 * KVM's tdh_do_no_vcpus (§7.3) as statechart states, shared by the threads that zap or split private
 * mappings under write mmu_lock (kvm.vm for attribute changes, a vCPU thread for the accept-level split).
 *
 * `<state>` issues the SEAMCALL; TDX_OPERAND_BUSY the first time goes to `<state>Kick`, which forces every
 * vCPU out of guest mode (kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE)) and comes back for the one
 * retry; a second BUSY or any other error is a KVM_BUG_ON. The machine using it provides the guards `ok`,
 * `busy`, `retried`, `acksDone` and the actions `markRetried`, `clearRetried`, `kickAll`, `countAck`,
 * `kvmBugSeamcall`, and a `#<id>.vmDead` state.
 */
import { and, not } from 'xstate';
import type { HostSeamcall } from '../../src/protocol/messages.ts';

export function noVcpus(machineId: string, state: string, call: HostSeamcall, issue: string, next: string) {
  return {
    [state]: {
      entry: issue,
      on: {
        [call]: [
          { guard: 'ok', target: next, actions: 'clearRetried' },
          { guard: and(['busy', not('retried')]), target: `${state}Kick`, actions: 'markRetried' },
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
