/**
 * REMOVE and DEMOTE only after BLOCK and a completed TRACK (§7.4, §5a.4 step 7): when KVM asks the module
 * to remove a page or an S-EPT page, or to demote a huge leaf, of a running TD, the entry is already
 * blocked and no vCPU can still hold a translation from before the block — a TDH.MEM.TRACK advanced the
 * epoch and every vCPU that entered in the block's epoch has left it (the kick after TRACK). The module
 * refuses otherwise (TDX_GPA_RANGE_NOT_BLOCKED, TDX_TLB_TRACKING_NOT_DONE), which KVM treats as a bug;
 * the invariant names the cause at the SEAMCALL, in the module's own state: the entry and its epochs.
 */
import { hex } from '../../arch/hex.ts';
import { walkSept } from '../../../machines/tdxModule/septTree.ts';
import { blockTracking } from '../../../machines/tdxModule/tdMemory.ts';
import type { TdxModuleContext } from '../../../machines/tdxModule/tdxModule.ts';
import type { Gprs } from '../../protocol/messages.ts';
import { contextOf, type Invariant } from './invariant.ts';

const CALLS = new Set(['TDH.MEM.PAGE.REMOVE', 'TDH.MEM.SEPT.REMOVE', 'TDH.MEM.PAGE.DEMOTE']);

export const removeAfterTrack: Invariant = {
  name: 'remove-after-track',
  description: 'KVM sends TDH.MEM.PAGE.REMOVE / SEPT.REMOVE / PAGE.DEMOTE for a running TD only for a blocked entry whose block a TRACK and the kick after it have retired',
  check(model, before, _after, m) {
    if (m.to !== 'tdx' || !CALLS.has(m.name)) return null;
    const tdx = contextOf<TdxModuleContext>(model, before, 'tdx');
    if (tdx.mem.septRoot === null) return null;
    const rcx = (m.payload as Gprs).RCX!;
    const level = Number(rcx & 7n);
    const gpa = rcx & ~0xfffn;
    const { path, reached } = walkSept(tdx.mem.sept, tdx.mem.septRoot, tdx.mem.topLevel, gpa, level);
    // A missing level is sept-parent-first's business (and the module's TDX_EPT_WALK_FAILED).
    if (!reached) return null;
    const slot = path.at(-1)!;
    const t = blockTracking(tdx.mem, slot);
    if (t.ok) return null;
    const what = `${m.from} sent ${m.name} for GPA ${hex(gpa)} at level ${level}`;
    if (t.why === 'not-blocked') return `${what}, but the entry is ${slot.state}, not blocked`;
    const e = tdx.mem.epoch;
    return `${what}, blocked in epoch ${t.bepoch}, but that block is not tracked yet (TD epoch ${e.tdEpoch}, vCPUs still in epoch ${t.bepoch}: ${e.refcount[t.bepoch & 1]})`;
  },
};
