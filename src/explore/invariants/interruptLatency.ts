/**
 * Bounded liveness for posted interrupts: once an interrupt is posted to a TD vCPU (ON set in its
 * descriptor), the vCPU runs its guest again within N pieces of other work, so the interrupt is taken at
 * the guest's next boundary where interrupts are enabled. The work counted is what KVM does on the guest's
 * behalf without re-entering it: MapGPA chunks handed to userspace (KVM_EXIT_HYPERCALL). Upstream checks
 * for pending events between chunks and returns RETRY (tdx_complete_vmcall_map_gpa), so the count stays
 * 0; policy mapGpaEventCheck off lets a large conversion hold the interrupt for every remaining chunk.
 *
 * Counted in chunks, not steps, for the reason kick-completes counts entries: the wait is for the vCPU's
 * own work, and steps would count whatever else the scheduler runs meanwhile. The count lives in the
 * vCPU thread's context (exitsWhilePosted) and goes back to 0 when the CPU takes the PIR.
 */
import type { KvmVcpuContext } from '../../../machines/kvm/kvmVcpu.ts';
import { contextOf, type Invariant, type InvariantSpec } from './invariant.ts';

export const INTERRUPT_LATENCY_BOUND = 0;

const VCPU_THREAD = /^kvm\.vcpu\d+$/;

const describe = (n: string) =>
  `a posted interrupt is not held off by KVM: a TD vCPU with ON set in its posted-interrupt descriptor hands at most ${n} more MapGPA chunks to userspace before it re-enters the guest`;

export function interruptLatency(bound = INTERRUPT_LATENCY_BOUND): Invariant {
  return {
    name: 'interrupt-latency',
    description: describe(String(bound)),
    bound,
    // The vCPU thread's own state after a delivery to it.
    footprint: {},
    check(model, _before, after, m) {
      if (!VCPU_THREAD.test(m.to)) return null;
      const c = contextOf<KvmVcpuContext>(model, after, m.to);
      if (c.exitsWhilePosted <= bound) return null;
      const n = c.exitsWhilePosted;
      return `vCPU ${c.vcpu} handed ${n} MapGPA chunk${n === 1 ? '' : 's'} to userspace (KVM_EXIT_HYPERCALL) while an interrupt was posted to it (ON set, PIR 0x${c.piDesc.pir.toString(16)}), more than the bound of ${bound}`;
    },
  };
}

export const interruptLatencySpec: InvariantSpec = {
  name: 'interrupt-latency',
  description: `${describe('N')} (bound N, default ${INTERRUPT_LATENCY_BOUND})`,
  byDefault: true,
  defaultBound: INTERRUPT_LATENCY_BOUND,
  create: (bound) => interruptLatency(bound),
};
