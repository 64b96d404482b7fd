/**
 * Bounded liveness for kicks: every kick completes, counted in the kicked vCPU's TD entries. A
 * kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE) exists to get every vCPU out of guest mode and
 * keep the requester waiting until each has been (§7.4): tdx_track relies on it to retire the epoch of a
 * block, tdh_do_no_vcpus to retry with nobody inside the TD (§7.3). The kicked vCPU acknowledges when its
 * thread enables interrupts after the TD exit; a vCPU that calls TDH.VP.ENTER again first is back in the
 * guest while the requester still counts it as on its way out. Upstream that count is zero: every TD exit,
 * BUSY from the entry included, leaves the fastpath with interrupts on (§5c.1 step 5); policy
 * busyLeavesFastpath off lets it climb.
 *
 * Why entries and not steps: the requester's wait is over when the IPI's handler runs, and between the
 * request and that handler the kicked vCPU does a fixed amount of work on the upstream path; a count of
 * everybody's steps grows with whatever else the scheduler runs meanwhile and would flag schedules, not
 * KVM. A kick that never completes at all leaves its requester blocked for good, which no-deadlock names.
 *
 * The count lives in the vCPU thread's context (entriesWhileKicked), so the monitor keeps no memory of
 * its own (invariant.ts).
 */
import type { KvmVcpuContext } from '../../../machines/kvm/kvmVcpu.ts';
import { contextOf, type Invariant, type InvariantSpec } from './invariant.ts';

export const KICK_COMPLETES_BOUND = 0;

const VCPU_THREAD = /^kvm\.vcpu\d+$/;

const describe = (n: string) =>
  `every kick completes: a vCPU that a kvm_make_all_cpus_request waits for acknowledges it within ${n} TD entries (0: before it calls TDH.VP.ENTER again)`;

export function kickCompletes(bound = KICK_COMPLETES_BOUND): Invariant {
  return {
    name: 'kick-completes',
    description: describe(String(bound)),
    bound,
    // The vCPU thread's own state after a delivery to it.
    footprint: {},
    check(model, _before, after, m) {
      // The count changes only when the vCPU thread itself steps.
      if (!VCPU_THREAD.test(m.to)) return null;
      const c = contextOf<KvmVcpuContext>(model, after, m.to);
      if (c.entriesWhileKicked <= bound) return null;
      const n = c.entriesWhileKicked;
      return `vCPU ${c.vcpu} called TDH.VP.ENTER ${n} time${n === 1 ? '' : 's'} while ${c.ipiRequesters.join(' and ')} waited for it to leave guest mode (its CPU's IPI not yet handled), more than the bound of ${bound}`;
    },
  };
}

export const kickCompletesSpec: InvariantSpec = {
  name: 'kick-completes',
  description: `${describe('N')} (bound N, default ${KICK_COMPLETES_BOUND})`,
  byDefault: true,
  defaultBound: KICK_COMPLETES_BOUND,
  create: (bound) => kickCompletes(bound),
};
