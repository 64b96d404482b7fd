/**
 * The PAMT as the model keeps it (§1.3): per physical page, its type, its owning TD and BEPOCH. A page
 * the module has never been given is PT_NDA, so only owned pages are stored. A 2M or 1G page has one
 * entry at its first PFN with its level (`tdxLevel`), as the module tracks large pages in one PAMT entry
 * of the matching size.
 */
import { PT_NDA, PT_REG, PT_TDR, PT_TDCX, PT_TDVPR, PT_EPT } from '../../src/arch/tdxStatus.ts';

export type PamtType = typeof PT_NDA | typeof PT_REG | typeof PT_TDR | typeof PT_TDCX | typeof PT_TDVPR | typeof PT_EPT;

export const PAMT_TYPE_NAMES: Readonly<Record<number, string>> = {
  [PT_NDA]: 'PT_NDA',
  [PT_REG]: 'PT_REG',
  [PT_TDR]: 'PT_TDR',
  [PT_TDCX]: 'PT_TDCX',
  [PT_TDVPR]: 'PT_TDVPR',
  [PT_EPT]: 'PT_EPT',
};

export interface PamtEntry {
  type: PamtType;
  /** PA of the owning TD's TDR. */
  owner: bigint;
  /** TD epoch when the mapping of this page (or of this S-EPT page) was last blocked (§7.4). */
  bepoch: number;
  tdxLevel: number;
}

/** Keyed by host PFN. */
export type Pamt = Readonly<Record<number, PamtEntry>>;

/** The PAMT type of `pfn`: a large page's entry covers every 4K PFN inside it. */
export function pamtEntryOf(pamt: Pamt, pfn: number): PamtEntry | undefined {
  for (let level = 0; level <= 2; level++) {
    const base = pfn - (pfn % 512 ** level);
    const e = pamt[base];
    if (e !== undefined && e.tdxLevel === level) return e;
  }
  return undefined;
}

/** Every 4K PFN of [pfn, pfn + 512^level) is PT_NDA, so the module may take the range (§5a.4 step 8). */
export function pamtRangeFree(pamt: Pamt, pfn: number, tdxLevel: number): boolean {
  const n = 512 ** tdxLevel;
  if (n === 1) return pamtEntryOf(pamt, pfn) === undefined;
  return Object.keys(pamt).every((k) => {
    const p = Number(k);
    const e = pamt[p]!;
    return p + 512 ** e.tdxLevel <= pfn || p >= pfn + n;
  });
}

export function pamtSet(pamt: Pamt, pfn: number, e: PamtEntry | null): Pamt {
  const next = { ...pamt };
  if (e === null) delete next[pfn];
  else next[pfn] = e;
  return next;
}
