/**
 * Memslots (KVM_SET_USER_MEMORY_REGION2) and the host pages behind them. GFNs never carry the shared
 * bit (§2). Backing pages are laid out at fixed host PFNs so logs are comparable: a guest_memfd page
 * for a private GFN, the VMM's anonymous memory for a shared one. Which page guest_memfd really hands
 * out is the allocator's business; the model keeps one page per GFN for the slot's life.
 */
export interface Memslot {
  baseGfn: bigint;
  npages: bigint;
  /** guest_memfd-backed slots can hold private memory (§1.4). */
  guestMemfd: boolean;
  /** The slot id userspace gave (kvm_userspace_memory_region2.slot); absent for the scenario's own, whose id is their index. */
  id?: number;
  /** Userspace flags (KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_MEM_GUEST_MEMFD); absent: GUEST_MEMFD as `guestMemfd` says. */
  flags?: number;
  /**
   * KVM_MEMSLOT_INVALID: the copy kvm_invalidate_memslot publishes while the slot is deleted or moved. A
   * fault that finds it retries (kvm_mmu_faultin_pfn → RET_PF_RETRY) until the update is done.
   */
  invalid?: boolean;
}

/** The id of the slot at `index` of a memslot list. */
export const slotId = (slots: readonly Memslot[], index: number): number => slots[index]!.id ?? index;

/** Host PFN bases of the two kinds of backing; 2 MiB-aligned so a 2M private mapping is possible. */
export const GMEM_PFN_BASE = 0x200000n;
export const USER_PFN_BASE = 0x400000n;

export function findMemslot(slots: readonly Memslot[], gfn: bigint): Memslot | undefined {
  return slots.find((s) => gfn >= s.baseGfn && gfn < s.baseGfn + s.npages);
}

export function backingPfn(slot: Memslot, gfn: bigint, isPrivate: boolean): bigint | null {
  if (isPrivate) return slot.guestMemfd ? GMEM_PFN_BASE + gfn : null;
  return USER_PFN_BASE + gfn;
}
