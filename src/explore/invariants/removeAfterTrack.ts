/**
 * REMOVE and DEMOTE only after BLOCK and a completed TRACK (§7.4, §5a.4 step 7): when KVM asks the module
 * to remove a page or an S-EPT page, or to demote a huge leaf, of a running TD, the entry is already
 * blocked and no vCPU can still hold a translation from before the block — a TDH.MEM.TRACK advanced the
 * epoch and every vCPU that entered in the block's epoch has left it (the kick after TRACK). The module
 * refuses otherwise (TDX_GPA_RANGE_NOT_BLOCKED, TDX_TLB_TRACKING_NOT_DONE), which KVM treats as a bug;
 * the invariant names the cause at the SEAMCALL, in the module's own state: the entry and its epochs.
 */
import { hex } from '../../arch/hex.ts';
import { blockTracking } from '../../../machines/tdxModule/tdMemory.ts';
import type { Invariant } from './invariant.ts';
import { septCall } from './septCall.ts';

const CALLS = new Set(['TDH.MEM.PAGE.REMOVE', 'TDH.MEM.SEPT.REMOVE', 'TDH.MEM.PAGE.DEMOTE']);

export const removeAfterTrack: Invariant = {
  name: 'remove-after-track',
  description: 'KVM sends TDH.MEM.PAGE.REMOVE / SEPT.REMOVE / PAGE.DEMOTE for a running TD only for a blocked entry whose block a TRACK and the kick after it have retired',
  // The module's state before the call and the call: the delivery's own data.
  footprint: {},
  check(model, before, _after, m) {
    // KVM's protocol: a playground thread's raw SEAMCALLs (host.kthreadN) are the user's experiment, and
    // the module's answer to them is the point.
    if (!m.from.startsWith('kvm.')) return null;
    const c = septCall(model, before, m, CALLS);
    // A missing level is sept-parent-first's business (and the module's TDX_EPT_WALK_FAILED).
    if (c === null || !c.reached) return null;
    const slot = c.path.at(-1)!;
    const t = blockTracking(c.tdx.mem, slot);
    if (t.ok) return null;
    const what = `${m.from} sent ${m.name} for GPA ${hex(c.gpa)} at level ${c.level}`;
    if (t.why === 'not-blocked') return `${what}, but the entry is ${slot.state}, not blocked`;
    const e = c.tdx.mem.epoch;
    return `${what}, blocked in epoch ${t.bepoch}, but that block is not tracked yet (TD epoch ${e.tdEpoch}, vCPUs still in epoch ${t.bepoch}: ${e.refcount[t.bepoch & 1]})`;
  },
};
