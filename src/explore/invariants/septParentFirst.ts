/**
 * No S-EPT SEAMCALL for a child level while the parent is absent (§5a.4 step 4, §7.6): when KVM asks the
 * module to add an S-EPT page (TDH.MEM.SEPT.ADD) or a page (TDH.MEM.PAGE.AUG / PAGE.ADD) at some level,
 * the S-EPT entries above that level are already there. The module would refuse with TDX_EPT_WALK_FAILED,
 * which KVM treats as a bug; the invariant names the cause — KVM's own tables let a thread walk below a
 * level the module does not have yet, e.g. a mirror page table published before its SEPT.ADD.
 */
import { hex } from '../../arch/hex.ts';
import type { Invariant } from './invariant.ts';
import { septCall } from './septCall.ts';

const CALLS = new Set(['TDH.MEM.SEPT.ADD', 'TDH.MEM.PAGE.AUG', 'TDH.MEM.PAGE.ADD']);

export const septParentFirst: Invariant = {
  name: 'sept-parent-first',
  description: 'KVM never issues TDH.MEM.SEPT.ADD / PAGE.AUG / PAGE.ADD for a level whose parent S-EPT entry is absent',
  // The module's state before the call and the call: the delivery's own data.
  footprint: {},
  check(model, before, _after, m) {
    const c = septCall(model, before, m, CALLS);
    if (c === null || c.reached) return null;
    const miss = c.path.at(-1)!;
    return `${m.from} sent ${m.name} for GPA ${hex(c.gpa)} at level ${c.level}, but the S-EPT has no level-${miss.tdxLevel} entry above it (${miss.state})`;
  },
};
