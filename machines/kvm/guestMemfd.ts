/**
 * guest_memfd as a file (virt/kvm/guest_memfd.c): what fallocate(2) and ftruncate(2) on it answer, and
 * which host page backs a private GFN once a hole has been punched.
 *
 * The model binds one guest_memfd per guest_memfd memslot, at file offset 0 (QEMU's layout for a RAM
 * block), so file offset = (GFN − the slot's base GFN) << PAGE_SHIFT.
 *
 * fallocate on the file: KEEP_SIZE is required, no mode bit beyond KEEP_SIZE|PUNCH_HOLE is taken (both
 * -EOPNOTSUPP), offset and length must be page-aligned (-EINVAL), and a length of 0 is refused by the VFS
 * (-EINVAL) before guest_memfd sees it. Without PUNCH_HOLE it preallocates, which past the end of the
 * file is -EINVAL; the model allocates lazily, so a preallocation inside the file changes nothing it
 * shows. With PUNCH_HOLE (kvm_gmem_punch_hole), under the mapping's invalidate lock: every binding's
 * invalidation begins (mmu_lock for write, kvm_mmu_invalidate_begin, the private leaves of the range
 * zapped — for a TD the BLOCK/TRACK/kick/REMOVE sequence — and a remote TLB flush), the page cache
 * drops the pages (truncate_inode_pages_range), and the invalidation ends (mmu_lock for write,
 * kvm_mmu_invalidate_end). Those steps run on the VMM thread in kvm.vm (kvmVm.ts, `punchingHole`).
 * The invalidate lock is held by that one thread from the first step to the last; the vCPU fault path
 * does not take it (kvm_gmem_get_pfn only locks the folio), so it is not a lock any other actor of the
 * model waits for and is kept as the `punch` record of kvm.vm rather than as a lock object.
 *
 * ftruncate: guest_memfd's setattr refuses every size change with -EINVAL (its size is fixed at creation).
 *
 * After the truncation a private fault on the GFN gets a fresh folio from the allocator. Which page that
 * is, is the page allocator's business; the model names it deterministically: generation g of a GFN (the
 * number of holes punched over it so far) is host PFN GMEM_PFN_BASE + gfn + g × GMEM_GENERATION_STRIDE,
 * so generation 0 is the page memslots.ts always gave, and each later one is a page no TD has owned
 * (PT_NDA in the PAMT, as a freshly allocated page is).
 */
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, EINVAL, EOPNOTSUPP } from '../../src/arch/kvmApi.ts';
import { PAGE_SIZE } from '../../src/arch/gpa.ts';
import { GMEM_PFN_BASE } from './memslots.ts';

/** 64 GiB of host PFN space per generation: above every fixed page of the model's host layout. */
export const GMEM_GENERATION_STRIDE = 0x1000000n;

/** GFN ranges, half-open, whose pages truncate_inode_pages_range dropped, one entry per hole punched. */
export type GmemHoles = readonly { start: bigint; end: bigint }[];

/** How many holes have been punched over `gfn`: its page's generation. */
export function gmemGeneration(holes: GmemHoles | undefined, gfn: bigint): number {
  return (holes ?? []).filter((h) => gfn >= h.start && gfn < h.end).length;
}

/** The host PFN of the guest_memfd page backing a private `gfn` now. */
export function gmemPfn(holes: GmemHoles | undefined, gfn: bigint): bigint {
  return GMEM_PFN_BASE + gfn + BigInt(gmemGeneration(holes, gfn)) * GMEM_GENERATION_STRIDE;
}

/**
 * The error fallocate(2) on a guest_memfd of `fileSize` bytes returns before it touches anything, in the
 * order the VFS (vfs_fallocate) and kvm_gmem_fallocate check; null when the call goes ahead.
 */
export function fallocateError(mode: number, offset: bigint, len: bigint, fileSize: bigint): number | null {
  if (offset < 0n || len <= 0n) return EINVAL;
  if ((mode & FALLOC_FL_KEEP_SIZE) === 0) return EOPNOTSUPP;
  if ((mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) !== 0) return EOPNOTSUPP;
  if (offset % PAGE_SIZE !== 0n || len % PAGE_SIZE !== 0n) return EINVAL;
  if ((mode & FALLOC_FL_PUNCH_HOLE) === 0 && offset + len > fileSize) return EINVAL;
  return null;
}

/** ftruncate(2) on a guest_memfd: kvm_gmem_setattr refuses any size change. */
export const FTRUNCATE_RET = EINVAL;

/** The GFNs a punch of [offset, offset + len) drops in a file bound at `baseGfn` with `npages` pages (beyond the end there is nothing). */
export function punchedGfns(baseGfn: bigint, npages: bigint, offset: bigint, len: bigint): { start: bigint; end: bigint } {
  const start = baseGfn + offset / PAGE_SIZE;
  const end = baseGfn + (offset + len) / PAGE_SIZE;
  const last = baseGfn + npages;
  return { start: start < last ? start : last, end: end < last ? end : last };
}
