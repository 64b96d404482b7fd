/**
 * No spurious exit to userspace: KVM_EXIT_MEMORY_FAULT asks the VMM to convert a GFN because the guest's
 * access does not match its attribute (§6.ii A.4). Decided on an attribute read older than the fault's
 * mmu_invalidate_seq snapshot, it can ask for a conversion that already happened — an exit for an access
 * that matches the attribute, which the VMM then "converts" for nothing (policy snapshotBeforeAttributes
 * off). mmu_invalidate_seq is the attributes' version: every change of an attribute ends with the sequence
 * moved on, so while an exit is in flight, the sequence is still the snapshot it was decided after, and no
 * KVM_SET_MEMORY_ATTRIBUTES covering the GFN is under way, the attribute is the one read after the snapshot
 * — which did not match, or there would be no exit.
 *
 * A state predicate: each vCPU thread records the snapshot behind the exit it is making
 * (memoryFaultSeq), and the check looks at every KVM_EXIT_MEMORY_FAULT in flight whenever a thread,
 * kvm.mmu or kvm.vm — whose state it reads — has stepped (invariant.ts). Whether an exit decided while the
 * sequence has since moved on was spurious cannot be told from the sequence, and is not flagged.
 */
import { gpaToGfn } from '../../arch/gpa.ts';
import { hex } from '../../arch/hex.ts';
import { KVM_MEMORY_EXIT_FLAG_PRIVATE } from '../../arch/kvmApi.ts';
import { attributeIsPrivate } from '../../../machines/kvm/memAttributes.ts';
import { findMemslot } from '../../../machines/kvm/memslots.ts';
import type { TdpMmuContext } from '../../../machines/kvm/tdpMmu.ts';
import type { KvmVmContext } from '../../../machines/kvm/kvmVm.ts';
import type { KvmVcpuContext } from '../../../machines/kvm/kvmVcpu.ts';
import type { Model } from '../../runtime/world.ts';
import { contextOf, type DeliveryView, type Invariant } from './invariant.ts';

const VCPU_THREAD = /^kvm\.vcpu\d+$/;

type MemoryFault = { vcpu: number; gpa: bigint; size: bigint; flags: number };

const inScope = (a: string) => VCPU_THREAD.test(a) || a === 'kvm.mmu' || a === 'kvm.vm';

/** Per model: the vCPU threads' actor indices. */
const threadsOf = new WeakMap<Model, number[]>();

/**
 * The engine's fast path: an exit is judged only while its thread keeps the snapshot behind it
 * (memoryFaultSeq), so where no thread keeps one the verdict is null without building the world.
 */
function fast(v: DeliveryView): string | null {
  let threads = threadsOf.get(v.model);
  if (threads === undefined) threadsOf.set(v.model, (threads = v.model.actors.flatMap((a, i) => (VCPU_THREAD.test(a.id) ? [i] : []))));
  if (threads.every((i) => (v.snapshot(i).context as KvmVcpuContext).memoryFaultSeq === null)) return null;
  return noSpuriousMemoryFault.check(v.model, v.before(), v.after(), v.delivered);
}

export const noSpuriousMemoryFault: Invariant = {
  name: 'no-spurious-memory-fault',
  description:
    "KVM_EXIT_MEMORY_FAULT only for an access that does not match the attribute: none in flight while mmu_invalidate_seq is still the fault's snapshot, no attribute change is under way, and the GFN is already on the side it asks for",
  check(model, _before, after, m) {
    if (!inScope(m.to)) return null;
    if (!model.indexOf.has('kvm.mmu')) return null;
    for (const exit of after.pending) {
      if (exit.name !== 'KVM_EXIT_MEMORY_FAULT' || !VCPU_THREAD.test(exit.from)) continue;
      const snapshot = contextOf<KvmVcpuContext>(model, after, exit.from).memoryFaultSeq;
      const mmu = contextOf<TdpMmuContext>(model, after, 'kvm.mmu');
      if (snapshot === null || mmu.mmuInvalidateSeq !== snapshot) continue;
      const e = exit.payload as MemoryFault;
      const gfn = gpaToGfn(e.gpa);
      // An attribute change under way: between kvm_mmu_invalidate_begin and _end (its mmu_lock sections and
      // the attribute store between them), or queued in kvm.vm.
      const inv = mmu.invalidation;
      if (inv.inProgress > 0 && gfn >= inv.gfnStart && gfn < inv.gfnEnd) continue;
      const vm = contextOf<KvmVmContext>(model, after, 'kvm.vm');
      if (vm.attrs !== null && gfn >= gpaToGfn(vm.attrs.address) && gfn < gpaToGfn(vm.attrs.address + vm.attrs.size)) continue;
      const wantsPrivate = (e.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) !== 0;
      const isPrivate = attributeIsPrivate(mmu.privateRanges, gfn);
      const gmem = findMemslot(mmu.memslots, gfn)?.guestMemfd === true;
      if (wantsPrivate !== isPrivate || (wantsPrivate && !gmem)) continue;
      return `${exit.from}'s KVM_EXIT_MEMORY_FAULT asks for GPA ${hex(e.gpa)} to be ${wantsPrivate ? 'private' : 'shared'}, which it already is: mmu_invalidate_seq is still ${snapshot}, the fault's snapshot, and no attribute change is under way`;
    }
    return null;
  },
  // The exits in flight go to the VMM; the verdict reads their threads, kvm.mmu and kvm.vm.
  footprint: { on: inScope, reads: inScope, pendingTo: (a) => a === 'vmm', fast },
};
