/**
 * No S-EPT SEAMCALL for a child level while the parent is absent (§5a.4 step 4, §7.6): when KVM asks the
 * module to add an S-EPT page (TDH.MEM.SEPT.ADD) or a page (TDH.MEM.PAGE.AUG / PAGE.ADD) at some level,
 * the S-EPT entries above that level are already there. The module would refuse with TDX_EPT_WALK_FAILED,
 * which KVM treats as a bug; the invariant names the cause — KVM's own tables let a thread walk below a
 * level the module does not have yet, e.g. a mirror page table published before its SEPT.ADD.
 */
import { hex } from '../../arch/hex.ts';
import { walkSept } from '../../../machines/tdxModule/septTree.ts';
import type { TdxModuleContext } from '../../../machines/tdxModule/tdxModule.ts';
import type { Gprs } from '../../protocol/messages.ts';
import { contextOf, type Invariant } from './invariant.ts';

const CALLS = new Set(['TDH.MEM.SEPT.ADD', 'TDH.MEM.PAGE.AUG', 'TDH.MEM.PAGE.ADD']);

export const septParentFirst: Invariant = {
  name: 'sept-parent-first',
  description: 'KVM never issues TDH.MEM.SEPT.ADD / PAGE.AUG / PAGE.ADD for a level whose parent S-EPT entry is absent',
  check(model, before, _after, m) {
    if (m.to !== 'tdx' || !CALLS.has(m.name)) return null;
    const tdx = contextOf<TdxModuleContext>(model, before, 'tdx');
    if (tdx.mem.septRoot === null) return null;
    const rcx = (m.payload as Gprs).RCX!;
    // PAGE.ADD's RCX is a 4K GPA; SEPT.ADD and AUG carry GPA | TDX level (§0.2).
    const level = m.name === 'TDH.MEM.PAGE.ADD' ? 0 : Number(rcx & 7n);
    const gpa = rcx & ~0xfffn;
    const { path, reached } = walkSept(tdx.mem.sept, tdx.mem.septRoot, tdx.mem.topLevel, gpa, level);
    if (reached) return null;
    const miss = path.at(-1)!;
    return `${m.from} sent ${m.name} for GPA ${hex(gpa)} at level ${level}, but the S-EPT has no level-${miss.tdxLevel} entry above it (${miss.state})`;
  },
};
