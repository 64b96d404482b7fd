/**
 * KVM_SET_USER_MEMORY_REGION2 as kvm_set_memory_region decides it, before anything is published: the
 * checks of check_memory_region_flags and kvm_set_memory_region in their order, x86's
 * kvm_arch_prepare_memory_region for a slot that gets a new place, and which kind of change the call is
 * (enum kvm_mr_change). The protocol that follows for a DELETE or MOVE (the invalid copy published,
 * synchronize_srcu, the zap, the final swap) is kvm.vm's (kvmVm.ts, state settingMemoryRegion).
 *
 * Rules a TD meets here (virt/kvm/kvm_main.c, arch/x86/include/asm/kvm_host.h, arch/x86/kvm/x86.c):
 * - KVM_MEM_READONLY is a valid flag only where kvm_arch_has_readonly_mem, which is false for a VM with
 *   protected state (a TD), and never together with KVM_MEM_GUEST_MEMFD: EINVAL.
 * - KVM_MEM_LOG_DIRTY_PAGES together with KVM_MEM_GUEST_MEMFD: EINVAL (no dirty logging of private memory).
 * - An existing slot can only be moved or have its flags changed; a call with KVM_MEM_GUEST_MEMFD on an
 *   existing slot, or one that toggles KVM_MEM_READONLY or KVM_MEM_GUEST_MEMFD, or changes its size: EINVAL.
 *   A guest_memfd slot can therefore only be deleted (and created again).
 * - Deleting a slot that does not exist: EINVAL. A new place overlapping another slot: EEXIST.
 * - A new place whose last GFN carries the TD's shared bit (kvm_is_gfn_alias): EINVAL.
 *
 * The model has no userspace_addr (the VMM's mapping of a slot is fixed by the slot's GFNs, memslots.ts),
 * so kvm_set_memory_region's userspace_addr checks never fail here; nor does binding the guest_memfd
 * (kvm_gmem_bind), whose file the model takes as the one QEMU created for the slot.
 */
import { PAGE_SIZE } from '../../src/arch/gpa.ts';
import { EEXIST, EINVAL, KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_USER_MEM_SLOTS } from '../../src/arch/kvmApi.ts';
import { slotId, type Memslot } from './memslots.ts';

/** struct kvm_userspace_memory_region2 as the model takes it. */
export interface MemoryRegionRequest {
  slot: number;
  flags: number;
  guestPhysAddr: bigint;
  memorySize: bigint;
  guestMemfdOffset: bigint;
}

/** enum kvm_mr_change, plus the call that changes nothing (kvm_set_memory_region returns 0 at once). */
export type MemslotChange = 'KVM_MR_CREATE' | 'KVM_MR_DELETE' | 'KVM_MR_MOVE' | 'KVM_MR_FLAGS_ONLY' | 'none';

export type MemoryRegionDecision =
  | { ret: number; why: string }
  /** `old`: index of the slot in the list (DELETE, MOVE, FLAGS_ONLY); `slot`: the new one (CREATE, MOVE, FLAGS_ONLY). */
  | { ret: 0; change: MemslotChange; old: number | null; slot: Memslot | null };

/** KVM_MEM_MAX_NR_PAGES: a slot's page count fits in 31 bits. */
const KVM_MEM_MAX_NR_PAGES = (1n << 31n) - 1n;
/** The flags userspace may pass at all (include/uapi/linux/kvm.h); anything else fails check_memory_region_flags. */
const USER_FLAGS = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD;

export function slotFlags(s: Memslot): number {
  return s.flags ?? (s.guestMemfd ? KVM_MEM_GUEST_MEMFD : 0);
}

/** check_memory_region_flags for a TD: private memory yes, read-only memory no (has_protected_state). */
function flagsValid(flags: number, vm: { td: boolean }): boolean {
  let valid = KVM_MEM_LOG_DIRTY_PAGES;
  if (vm.td) valid |= KVM_MEM_GUEST_MEMFD;
  if (flags & KVM_MEM_GUEST_MEMFD) valid &= ~KVM_MEM_LOG_DIRTY_PAGES;
  if (!vm.td && !(flags & KVM_MEM_GUEST_MEMFD)) valid |= KVM_MEM_READONLY;
  return (flags & ~valid & USER_FLAGS) === 0 && (flags & ~USER_FLAGS) === 0;
}

/**
 * kvm_set_memory_region's decision. `gfnDirectBits` is the TD's shared bit as a GFN bit (0 for VMX).
 * Slots are looked up by id, as id_to_memslot does; an INVALID copy never exists here because the caller
 * (holding slots_lock) finishes one update before it decides the next.
 */
export function decideMemoryRegion(slots: readonly Memslot[], req: MemoryRegionRequest, vm: { td: boolean; gfnDirectBits: bigint }): MemoryRegionDecision {
  const bad = (why: string): MemoryRegionDecision => ({ ret: EINVAL, why });
  if (!flagsValid(req.flags, vm)) return bad(`flags ${req.flags.toString(16)} are not valid for this VM (check_memory_region_flags)`);
  // as_id is slot >> 16; a TD has one address space (no SMM).
  if (req.slot >>> 16 >= 1 || (req.slot & 0xffff) >= KVM_USER_MEM_SLOTS) return bad(`slot ${req.slot} is out of range`);
  if (req.memorySize & (PAGE_SIZE - 1n) || req.guestPhysAddr & (PAGE_SIZE - 1n)) return bad('memory_size and guest_phys_addr must be page aligned');
  if (req.flags & KVM_MEM_GUEST_MEMFD && (req.guestMemfdOffset & (PAGE_SIZE - 1n) || req.guestMemfdOffset + req.memorySize >= 1n << 64n)) return bad('guest_memfd_offset must be page aligned and not wrap');
  if (req.guestPhysAddr + req.memorySize >= 1n << 64n) return bad('guest_phys_addr + memory_size wraps');
  if (req.memorySize / PAGE_SIZE > KVM_MEM_MAX_NR_PAGES) return bad('more than KVM_MEM_MAX_NR_PAGES pages');
  const oldIndex = slots.findIndex((_, i) => slotId(slots, i) === (req.slot & 0xffff));
  const old = oldIndex < 0 ? undefined : slots[oldIndex]!;
  if (req.memorySize === 0n) {
    if (old === undefined) return bad(`slot ${req.slot} does not exist`);
    return { ret: 0, change: 'KVM_MR_DELETE', old: oldIndex, slot: null };
  }
  const baseGfn = req.guestPhysAddr / PAGE_SIZE;
  const npages = req.memorySize / PAGE_SIZE;
  let change: MemslotChange;
  if (old === undefined) change = 'KVM_MR_CREATE';
  else {
    if (req.flags & KVM_MEM_GUEST_MEMFD) return bad('a guest_memfd slot cannot be modified, only deleted');
    if (npages !== old.npages || (req.flags ^ slotFlags(old)) & (KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD)) return bad('an existing slot keeps its size, KVM_MEM_READONLY and KVM_MEM_GUEST_MEMFD');
    if (baseGfn !== old.baseGfn) change = 'KVM_MR_MOVE';
    else if (req.flags !== slotFlags(old)) change = 'KVM_MR_FLAGS_ONLY';
    else return { ret: 0, change: 'none', old: oldIndex, slot: null };
  }
  if (change === 'KVM_MR_CREATE' || change === 'KVM_MR_MOVE') {
    const end = baseGfn + npages;
    const overlap = slots.some((s, i) => i !== oldIndex && baseGfn < s.baseGfn + s.npages && s.baseGfn < end);
    if (overlap) return { ret: EEXIST, why: `[${req.guestPhysAddr.toString(16)}, +${req.memorySize.toString(16)}) overlaps another slot` };
    // kvm_arch_prepare_memory_region: the slot must not reach the TD's shared alias.
    if (vm.gfnDirectBits !== 0n && ((end - 1n) & vm.gfnDirectBits) !== 0n) return bad('the slot reaches the shared bit (kvm_is_gfn_alias)');
  }
  const slot: Memslot = { baseGfn, npages, guestMemfd: (req.flags & KVM_MEM_GUEST_MEMFD) !== 0, id: req.slot & 0xffff, flags: req.flags };
  return { ret: 0, change, old: old === undefined ? null : oldIndex, slot };
}

/** The slot list once the change is done (the final kvm_swap_active_memslots). */
export function applyMemslotChange(slots: readonly Memslot[], d: Extract<MemoryRegionDecision, { change: MemslotChange }>): Memslot[] {
  const named = withIds(slots);
  if (d.change === 'KVM_MR_CREATE') return [...named, d.slot!];
  if (d.change === 'KVM_MR_DELETE') return named.filter((_, i) => i !== d.old);
  if (d.change === 'none') return named;
  return named.map((s, i) => (i === d.old ? d.slot! : s));
}

/** Ids made explicit, so that removing a slot does not renumber the ones after it. */
function withIds(slots: readonly Memslot[]): Memslot[] {
  return slots.map((s, i) => (s.id === undefined ? { ...s, id: i } : s));
}

/** The list kvm_invalidate_memslot publishes: the old slot's copy flagged KVM_MEMSLOT_INVALID. */
export function invalidatedMemslots(slots: readonly Memslot[], index: number): Memslot[] {
  return withIds(slots).map((s, i) => (i === index ? { ...s, invalid: true } : s));
}
