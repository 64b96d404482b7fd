/**
 * Bounded liveness for the fault path: an EPT violation on a private GPA is resolved within N re-entries.
 * "Not resolved" is what the TDX module's zero-step count measures (§7.5, machines/tdxModule/zeroStep.ts):
 * the vCPU took an EPT-violation TD exit at the very RIP it was entered at, again. KVM keeps that count at
 * zero by retrying a private fault locally until it is mapped (§7.3); a KVM that re-enters instead lets it
 * climb, and at the module's threshold the vCPU's entries start taking the S-EPT tree lock exclusively.
 *
 * The monitor reads the module's count, which is part of the world, so it needs no memory of its own and
 * the explorer's visited set and reduction stay sound (invariant.ts). The count is kept up to the
 * threshold plus the GPA list size, so a bound up to EPF_GPA_LIST_SIZE can always be exceeded.
 */
import { hex } from '../../arch/hex.ts';
import { EPF_GPA_LIST_SIZE } from '../../arch/tdxStatus.ts';
import type { TdxModuleContext } from '../../../machines/tdxModule/tdxModule.ts';
import { contextOf, type Invariant, type InvariantSpec } from './invariant.ts';

export const EPT_VIOLATION_PROGRESS_BOUND = 3;

const describe = (n: string) =>
  `an EPT violation on a private GPA is resolved within ${n} re-entries: no vCPU exits at the RIP it was entered at more than ${n} times in a row (the TDX module's zero-step count)`;

export function eptViolationProgress(bound = EPT_VIOLATION_PROGRESS_BOUND): Invariant {
  return {
    name: 'ept-violation-progress',
    description: describe(String(bound)),
    bound,
    // The module's state after a delivery to it.
    footprint: {},
    check(model, _before, after, m) {
      // The count changes only when the module handles an exit.
      if (m.to !== 'tdx') return null;
      const tdx = contextOf<TdxModuleContext>(model, after, 'tdx');
      for (let v = 0; v < tdx.vcpus.length; v++) {
        const s = tdx.vcpus[v]!.stepping;
        if (s.count > bound) {
          return `vCPU ${v} was entered ${s.count} times at RIP ${hex(s.rip!)} and each time exited with an EPT violation again (last GPA ${hex(s.lastGpa!)}), more than the bound of ${bound}`;
        }
      }
      return null;
    },
  };
}

export const eptViolationProgressSpec: InvariantSpec = {
  name: 'ept-violation-progress',
  description: `${describe('N')} (bound N, default ${EPT_VIOLATION_PROGRESS_BOUND})`,
  byDefault: true,
  defaultBound: EPT_VIOLATION_PROGRESS_BOUND,
  maxBound: EPF_GPA_LIST_SIZE,
  create: (bound) => eptViolationProgress(bound),
};
