/**
 * kvm->srcu, the sleepable RCU that protects the memslots, seen from its readers and from
 * synchronize_srcu. A vCPU thread holds the read side across all of KVM_RUN except the guest entry itself
 * (vcpu_enter_guest drops it around the TDH.VP.ENTER or VMLAUNCH, and tdx_vcpu_run's early return when
 * wait_for_sept_zap is set lies inside that window), blocking in HLT (kvm_vcpu_block), and the time the
 * thread is back in userspace. So a fault, with TDX's local retry loop in tdx_handle_ept_violation, runs
 * with the read side held from the exit to the next entry.
 *
 * synchronize_srcu waits until every read-side section that began before it has ended. The model runs
 * it as a grace period with quiescent-state reports: the updater (kvm.vm, holding slots_lock) sends
 * SYNCHRONIZE_SRCU to each vCPU thread and waits for a SRCU_QUIESCENT from each. A thread outside a
 * read-side section reports at once; one inside it reports when it drops the read side, however long
 * that takes. Sections that begin after the report do not delay the grace period, as in SRCU.
 */
import { out } from '../../src/protocol/messages.ts';
import { enqueueActions } from './vcpuSetup.ts';

/** The vCPU thread's side. */
export const srcuReaderActions = {
  /** The grace period began while this thread is inside a read-side section: report when it ends. */
  owesQuiescent: enqueueActions(({ context, enqueue }) => {
    if (!context.srcuQsOwed) enqueue.assign({ srcuQsOwed: true });
  }),
  /** Outside a read-side section: nothing to wait for. */
  reportQuiescent: enqueueActions(({ context, enqueue }) => {
    enqueue.emit(out('kvm.vm', 'srcu', 'SRCU_QUIESCENT', { vcpu: context.vcpu }));
  }),
  /** srcu_read_unlock on the way into the guest, into kvm_vcpu_block or back to userspace. */
  srcuReadUnlock: enqueueActions(({ context, enqueue }) => {
    if (!context.srcuQsOwed) return;
    enqueue.assign({ srcuQsOwed: false });
    enqueue.emit(out('kvm.vm', 'srcu', 'SRCU_QUIESCENT', { vcpu: context.vcpu }));
  }),
};

/** The vCPU threads a grace period waits for: all of them (kvm_for_each_vcpu has no notion of readers). */
export function gracePeriodReaders(vcpus: number): number[] {
  return [...Array(vcpus).keys()];
}
