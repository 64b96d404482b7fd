/**
 * A logical processor's TLB as the model keeps it: the translations guest accesses used, one entry per
 * (EPT, page), each the leaf its walk ended at and the KeyID the access went out with. Only what an
 * access actually translated is cached — no prefetch, no paging-structure caches — so the entries are
 * exactly the ones a stale use could matter for, and the state stays small.
 *
 * Tagging (§1.2): a TD's TLB entries carry the TD's address-space tag, its Secure-EPT root (HKID 0) with
 * the VPID and PCID, for the S-EPT's translations and the shared EPT's alike; a single-context INVEPT of
 * the TD's EPTP therefore takes both, and an all-context INVEPT takes everything. Each model CPU runs one
 * vCPU of one TD, so either INVEPT empties its TLB.
 */
import type { EptKind, WalkStep } from '../../src/protocol/messages.ts';
import { pageSizeOfPgLevel } from '../../src/arch/gpa.ts';
import { VMX_EPT_READABLE_MASK, VMX_EPT_WRITABLE_MASK } from '../../src/arch/spte.ts';

export interface TlbEntry {
  /** The EPT the translation came from: the S-EPT (`secure`) or the shared EPT of a TD, a VMX guest's `ept`. */
  ept: EptKind;
  /** GPA of the first byte the leaf maps (a shared translation's with the shared bit). */
  page: bigint;
  /** The leaf entry the walk ended at: its level and value are the translation. */
  leaf: WalkStep;
  keyid: number;
}

const covers = (e: TlbEntry, gpa: bigint) => gpa >= e.page && gpa < e.page + pageSizeOfPgLevel(e.leaf.pgLevel);

/** The cached translation of `gpa` through `ept` if it allows the access (a TLB entry carries the leaf's permissions). */
export function tlbLookup(tlb: readonly TlbEntry[], ept: EptKind, gpa: bigint, access: 'read' | 'write'): TlbEntry | null {
  const e = tlb.find((x) => x.ept === ept && covers(x, gpa));
  if (e === undefined) return null;
  const need = access === 'read' ? VMX_EPT_READABLE_MASK : VMX_EPT_WRITABLE_MASK;
  return (e.leaf.spte & need) !== 0n ? e : null;
}

/** Cache what a walk translated; an entry for the same page of the same EPT is replaced. Kept in (EPT, page) order. */
export function tlbFill(tlb: readonly TlbEntry[], ept: EptKind, gpa: bigint, leaf: WalkStep, keyid: number): TlbEntry[] {
  const page = gpa & ~(pageSizeOfPgLevel(leaf.pgLevel) - 1n);
  const entry: TlbEntry = { ept, page, leaf, keyid };
  const rest = tlb.filter((x) => !(x.ept === ept && (covers(x, page) || covers(entry, x.page))));
  return [...rest, entry].sort((a, b) => (a.ept < b.ept ? -1 : a.ept > b.ept ? 1 : a.page < b.page ? -1 : a.page > b.page ? 1 : 0));
}
