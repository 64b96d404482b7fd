/**
 * Bounded liveness for exits KVM finds nothing to fix for. A fault that ends RET_PF_SPURIOUS means the
 * mapping the guest needs is there already, and KVM re-enters on the assumption that the access will now
 * go through — true when the exit came from a race another vCPU has since won. If the same exit (same GPA,
 * exit qualification and extended exit qualification) comes straight back and is again found spurious on
 * the same leaf SPTE, re-entering changed nothing and never will: the guest is stuck on that instruction with the host
 * spinning, which is what a PENDING_EPT_VIOLATION exit on a page the guest never accepted does to a KVM
 * that does not recognise it (policy unexpectedPendingCheck off, §6.ii B.3). The TDX module's zero-step
 * count (ept-violation-progress) does not see this loop when the exit is not one it logs.
 *
 * The vCPU thread keeps the run (spuriousRun: extended by a spurious fault on the same exit and leaf, ended
 * by any other fault outcome or a TDVMCALL), so the monitor has no memory of its own (invariant.ts).
 */
import { hex } from '../../arch/hex.ts';
import { decodeEeq } from '../../arch/tdxStatus.ts';
import type { KvmVcpuContext } from '../../../machines/kvm/kvmVcpu.ts';
import { SPURIOUS_RUN_CAP } from '../../../machines/kvm/kvmPageFault.ts';
import { contextOf, type Invariant, type InvariantSpec } from './invariant.ts';

export const SPURIOUS_FAULT_PROGRESS_BOUND = 1;

const VCPU_THREAD = /^kvm\.vcpu\d+$/;

const describe = (n: string) =>
  `a spurious fault is resolved by re-entering: no vCPU takes the same EPT-violation exit and finds nothing to fix (RET_PF_SPURIOUS) more than ${n} time(s) in a row`;

export function spuriousFaultProgress(bound = SPURIOUS_FAULT_PROGRESS_BOUND): Invariant {
  return {
    name: 'spurious-fault-progress',
    description: describe(String(bound)),
    bound,
    check(model, _before, after, m) {
      // The run changes only when the vCPU thread itself steps.
      if (!VCPU_THREAD.test(m.to)) return null;
      const c = contextOf<KvmVcpuContext>(model, after, m.to);
      const r = c.spuriousRun;
      if (r === null || r.count <= bound) return null;
      return `vCPU ${c.vcpu} took the same EPT-violation exit ${r.count} times in a row (GPA ${hex(r.gpa)}, exit qualification ${hex(r.exitQualification)}, EEQ type ${decodeEeq(r.eeq).typeName}) and each time KVM found the leaf ${hex(r.leaf)} already there, nothing to fix, and re-entered, more than the bound of ${bound}`;
    },
  };
}

export const spuriousFaultProgressSpec: InvariantSpec = {
  name: 'spurious-fault-progress',
  description: `${describe('N')} (bound N, default ${SPURIOUS_FAULT_PROGRESS_BOUND})`,
  // Not a default: while the TDX module's zero-step filter refuses a vCPU's entries for a PENDING page
  // (§7.5), each fabricated exit is the same spurious fault, and it ends only when another vCPU accepts the
  // page; the monitor cannot tell that wait from a loop. Scenarios declare it where nobody else can help.
  byDefault: false,
  defaultBound: SPURIOUS_FAULT_PROGRESS_BOUND,
  maxBound: SPURIOUS_RUN_CAP - 1,
  create: (bound) => spuriousFaultProgress(bound),
};
