/**
 * KVM's tdh_do_no_vcpus (§7.3) as statechart states, shared by the threads that zap or split private
 * mappings under write mmu_lock (kvm.vm for attribute changes, a vCPU thread for the accept-level split).
 *
 * `<state>` issues the SEAMCALL; TDX_OPERAND_BUSY the first time goes to `<state>Kick`, which forces every
 * vCPU out of guest mode (kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE)) and comes back for the one
 * retry; a second BUSY or any other error is a KVM_BUG_ON. Before its kick, tdh_do_no_vcpus sets
 * wait_for_sept_zap so no vCPU re-enters the TD (and re-takes a lock) before the retry (§5c.1 step 3).
 *
 * With policy zapBusyKickRetry off (src/policies.ts) the call is instead repeated blindly, as TDX MMU part 2
 * did before the kick existed (blindRetryable): TRACK on any BUSY, REMOVE and DEMOTE on BUSY|SEPT_TREE, BLOCK
 * on BUSY|SEPT_TREE up to BLIND_BLOCK_RETRIES times; any other BUSY is a KVM_BUG_ON at once.
 *
 * The machine using it provides the guards `seamcallOk`, `seamcallBusy`, `retried`, `kickRetryOnBusy`,
 * `blindRetry` (params `{ call }`: blindRetryable for its own count), `acksDone` and the actions
 * `markRetried`, `clearRetried` (also ends a blind-retry count), `countBlindRetry`, `kickAll` (params
 * `{ waitForSeptZap }`), `countAck`, `endSeptZapWait` (SEPT_ZAP_DONE to the other vCPU threads if this call
 * was retried after a kick), `kvmBugSeamcall`, and a `#<id>.vmDead` state.
 */
import { and, not } from 'xstate';
import { out, type HostSeamcall, type Outgoing } from '../../src/protocol/messages.ts';
import { TDX_OPERAND_BUSY, TDX_OPERAND_ID_SEPT_TREE, isOperandBusy, tdxStatusWithOperand } from '../../src/arch/tdxStatus.ts';

/**
 * How often the wrappers of TDX MMU part 2 repeated a SEAMCALL that returned BUSY|SEPT (SEAMCALL_RETRY_MAX)
 * before handing the error back; for BLOCK, KVM then turned it into -EAGAIN, a KVM_BUG_ON in the TDP MMU.
 */
export const BLIND_BLOCK_RETRIES = 16;

/**
 * Policy zapBusyKickRetry off: whether `call`'s status `rax` is repeated without a kick, `retries` being how
 * often the call was already repeated. KVM looped on TRACK's BUSY whatever its operand and on REMOVE's
 * BUSY|SEPT; BLOCK went through the 16 wrapper retries only; DEMOTE (the split, which came later) is taken
 * as REMOVE. Any other BUSY — a guest's TDCALL holding the entry lock, BUSY|RCX — was not retried.
 */
export function blindRetryable(call: HostSeamcall, rax: bigint, retries: number): boolean {
  if (!isOperandBusy(rax)) return false;
  if (call === 'TDH.MEM.TRACK') return true;
  if (rax !== tdxStatusWithOperand(TDX_OPERAND_BUSY, TDX_OPERAND_ID_SEPT_TREE)) return false;
  return call === 'TDH.MEM.RANGE.BLOCK' ? retries < BLIND_BLOCK_RETRIES : true;
}

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

/**
 * `unchecked`: a guard naming when the caller does not look at the result at all (policy splitChecksBlock
 * off for the split's BLOCK): the call is made once and `next` follows whatever it returned.
 */
export function noVcpus(machineId: string, state: string, call: HostSeamcall, issue: string, next: string, unchecked?: string) {
  return {
    [state]: {
      entry: issue,
      on: {
        [call]: [
          ...(unchecked === undefined ? [] : [{ guard: unchecked, target: next, actions: 'clearRetried' }]),
          // After the retry, whatever it returned, wait_for_sept_zap is cleared (endSeptZapWait).
          { guard: 'seamcallOk', target: next, actions: ['endSeptZapWait', 'clearRetried'] },
          { guard: and(['seamcallBusy', 'kickRetryOnBusy', not('retried')]), target: `${state}Kick`, actions: 'markRetried' },
          { guard: and([not('kickRetryOnBusy'), { type: 'blindRetry', params: { call } }]), target: state, reenter: true, actions: 'countBlindRetry' },
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
