/**
 * struct kvm_page_fault as the vCPU thread keeps it (FaultState): built from an EPT violation or
 * misconfig (mmuPageFault.ts) or from a page of KVM_TDX_INIT_MEM_REGION (tdxVcpuIoctl.ts), and the
 * leaf SPTE it installs. Shared by the fault path and tdx_check_accept_level (tdxCheckAcceptLevel.ts).
 */
import type { TdpRoot, WalkStep } from '../../src/protocol/messages.ts';
import { EPT_VIOLATION_ACC_READ, EPT_VIOLATION_ACC_WRITE, EPT_VIOLATION_ACC_INSTR, EPT_VIOLATION_PROT_MASK, EPT_VIOLATION_GVA_TRANSLATED } from '../../src/arch/vmx.ts';
import {
  PFERR_USER_MASK,
  PFERR_WRITE_MASK,
  PFERR_FETCH_MASK,
  PFERR_PRESENT_MASK,
  PFERR_GUEST_FINAL_MASK,
  PFERR_GUEST_PAGE_MASK,
  PFERR_PRIVATE_ACCESS,
  PG_LEVEL_4K,
} from '../../src/arch/kvmApi.ts';
import { MTRR_TYPE_WRBACK, VMX_EPT_MT_EPTE_SHIFT, makeMmioSpte, makeSpte } from '../../src/arch/spte.ts';
import { sharedBit, gpaToGfn, pagesOfPgLevel } from '../../src/arch/gpa.ts';
import { findMemslot, type Memslot } from './memslots.ts';
import type { KvmVcpuContext } from './kvmVcpu.ts';

/** One kvm_mmu_page_fault in progress. */
export interface FaultState {
  gpa: bigint;
  /** The GFN the iterator uses: with gfn_direct_bits for a TD's direct root (§2). */
  iterGfn: bigint;
  /** fault->gfn: never has the shared bit. */
  gfn: bigint;
  errorCode: bigint;
  isPrivate: boolean;
  root: TdpRoot;
  noSlot: boolean;
  /** The backing page kvm_mmu_faultin_pfn found (guest_memfd or userspace), null for MMIO. */
  pfn: bigint | null;
  /** KVM_TDX_INIT_MEM_REGION: the source page TDH.MEM.PAGE.ADD copies from, instead of AUG. */
  populateSource: bigint | null;
  /** fault->goal_level: the level the leaf is installed at (PG_LEVEL_4K unless kvm.mmu allows 2M). */
  goalLevel: number;
  /** fault->mmu_seq: the invalidation sequence kvm_mmu_faultin_pfn snapshotted; null before the snapshot. */
  mmuSeq: number | null;
  /** What kvm_mmu_faultin_pfn read of the GFN: its PRIVATE attribute and the memslot's kind; null before. */
  attrPrivate: boolean | null;
  slot: 'none' | 'normal' | 'gmem' | 'invalid' | null;
  path: readonly WalkStep[];
  /** Index into `path` of the SPTE being handled. */
  at: number;
  ret: number | null;
  /** KVM_PRE_FAULT_MEMORY's kvm_tdp_map_page, not a guest's exit (preFaultMemory.ts); absent otherwise. */
  preFault?: true;
}

export const MMU = 'kvm.mmu';
export const fault = (c: KvmVcpuContext) => c.fault!;
export const stepAt = (c: KvmVcpuContext) => fault(c).path[fault(c).at]!;

/** __vmx_handle_ept_violation: exit qualification → page-fault error code (§4.10). */
function eptViolationErrorCode(q: bigint, isPrivate: boolean): bigint {
  let ec = 0n;
  if (q & BigInt(EPT_VIOLATION_ACC_READ)) ec |= PFERR_USER_MASK;
  if (q & BigInt(EPT_VIOLATION_ACC_WRITE)) ec |= PFERR_WRITE_MASK;
  if (q & BigInt(EPT_VIOLATION_ACC_INSTR)) ec |= PFERR_FETCH_MASK;
  if (q & BigInt(EPT_VIOLATION_PROT_MASK)) ec |= PFERR_PRESENT_MASK;
  ec |= q & BigInt(EPT_VIOLATION_GVA_TRANSLATED) ? PFERR_GUEST_FINAL_MASK : PFERR_GUEST_PAGE_MASK;
  if (isPrivate) ec |= PFERR_PRIVATE_ACCESS;
  return ec;
}

function findSlot(c: KvmVcpuContext, gfn: bigint): Memslot | undefined {
  return findMemslot(c.memslots, gfn);
}

export function beginFault(c: KvmVcpuContext, gpa: bigint, q: bigint, extraEc: bigint, populateSource: bigint | null = null): FaultState {
  const shared = c.vmType === 'vmx' || (gpa & sharedBit(c.gpaw)) !== 0n;
  const isPrivate = !shared;
  const iterGfn = gpaToGfn(gpa);
  const gfn = iterGfn & ~c.gfnDirectBits;
  // tdx_handle_ept_violation: private faults are always handled as writes — private pages are mapped
  // RWX, and a read fault could otherwise map a COW alias that AUG cannot use (§6.ii A.3).
  const qual = isPrivate && c.vmType === 'tdx' ? BigInt(EPT_VIOLATION_ACC_WRITE) | (q & BigInt(EPT_VIOLATION_GVA_TRANSLATED)) : q;
  return {
    gpa,
    iterGfn,
    gfn,
    errorCode: eptViolationErrorCode(qual, isPrivate) | extraEc,
    isPrivate,
    root: isPrivate ? 'mirror' : 'direct',
    noSlot: findSlot(c, gfn) === undefined,
    pfn: null,
    populateSource,
    goalLevel: PG_LEVEL_4K,
    mmuSeq: null,
    attrPrivate: null,
    slot: null,
    path: [],
    at: 0,
    ret: null,
  };
}

/**
 * The leaf a fault installs: a normal SPTE (bit 63 set, §3.7) for RAM, the MMIO SPTE without a memslot.
 * RAM leaves are writable whatever the access: TDP faults map with ACC_ALL, and the model's memslots are
 * writable host memory (fault->map_writable), so a read fault does not leave a write to fault again.
 */
export function leafSpte(c: KvmVcpuContext): bigint {
  const f = fault(c);
  if (f.pfn === null) return mmioSpte(c);
  return ramLeaf(f.pfn & ~(pagesOfPgLevel(f.goalLevel) - 1n), f.goalLevel);
}

export function ramLeaf(pfn: bigint, pgLevel: number): bigint {
  return makeSpte({ pfn, pgLevel, writable: true, memtypeBits: MTRR_TYPE_WRBACK << VMX_EPT_MT_EPTE_SHIFT, accessed: true, adEnabled: true });
}

export function mmioSpte(c: KvmVcpuContext): bigint {
  return makeMmioSpte({ gfn: fault(c).iterGfn, generation: c.memslotsGeneration, mmioValue: c.mmioValue });
}
