/**
 * Page-table pages of the TDP MMU and the pre-order walk over them (the kernel's tdp_iter).
 *
 * A page is a sparse map index → SPTE. An absent index holds the value KVM pre-filled the page with:
 * SHADOW_NONPRESENT_VALUE (§3.4), so absent and "non-present with suppress-#VE" are the same thing — or,
 * for the shared EPT with policy sharedSuppressVe off, 0, the value before TDX (`fill`). Pages are keyed by
 * host PFN (a number; integer keys keep a canonical order for hashing).
 */
import type { WalkStep } from '../../src/protocol/messages.ts';
import { SHADOW_NONPRESENT_VALUE, isShadowPresentPte, isLargePte, spteToPfn } from '../../src/arch/spte.ts';
import { pgLevelIndex, pagesOfPgLevel } from '../../src/arch/gpa.ts';

/** A non-present SPTE before v14 ([S001]): 0, suppress-#VE clear (policy sharedSuppressVe off, §3.4). */
export const PRE_TDX_NONPRESENT_SPTE = 0n;

/** What a new shared-EPT (direct-root) page-table page is filled with and a zap of that root writes. */
export const sharedNonPresentSpte = (sharedSuppressVe: boolean): bigint => (sharedSuppressVe ? SHADOW_NONPRESENT_VALUE : PRE_TDX_NONPRESENT_SPTE);

export type SptPage = Readonly<Record<number, bigint>>;
export type SptPages = Readonly<Record<number, SptPage>>;

export function readSpte(pages: SptPages, tablePfn: number, index: number, fill = SHADOW_NONPRESENT_VALUE): bigint {
  const page = pages[tablePfn];
  if (page === undefined) throw new Error(`TDP MMU: page-table page 0x${tablePfn.toString(16)} does not exist (use after free?)`);
  return page[index] ?? fill;
}

export function writeSpte(pages: SptPages, tablePfn: number, index: number, spte: bigint, fill = SHADOW_NONPRESENT_VALUE): SptPages {
  const page = { ...pages[tablePfn] };
  if (spte === fill) delete page[index];
  else page[index] = spte;
  return { ...pages, [tablePfn]: page };
}

/**
 * Walk from the root towards `gpa`: one step per level, stopping at the 4K level, at a non-present SPTE
 * (KVM's notion: bit 11 clear, which includes MMIO and frozen SPTEs) or at a huge leaf.
 * `gpa` includes the shared bit for the direct root of a TD: that root's iterator works on the
 * GFN with gfn_direct_bits set (§2).
 */
export function walkTdp(pages: SptPages, rootPfn: number, topLevel: number, gpa: bigint, fill = SHADOW_NONPRESENT_VALUE): WalkStep[] {
  const path: WalkStep[] = [];
  let tablePfn = rootPfn;
  for (let level = topLevel; level >= 1; level--) {
    const index = pgLevelIndex(gpa, level);
    const spte = readSpte(pages, tablePfn, index, fill);
    path.push({ pgLevel: level, tablePfn, index, spte });
    if (level === 1 || !isShadowPresentPte(spte) || isLargePte(spte)) break;
    tablePfn = Number(spteToPfn(spte));
  }
  return path;
}

/** A present leaf SPTE found by a range scan, with the first GFN it maps (as the iterator sees it). */
export type LeafAt = WalkStep & { gfn: bigint };

/**
 * The present leaf SPTEs that map any GFN in [gfnStart, gfnEnd), in address order: what
 * tdp_mmu_zap_leafs visits (non-present SPTEs, MMIO SPTEs included, are skipped).
 */
export function presentLeaves(pages: SptPages, rootPfn: number, topLevel: number, gfnStart: bigint, gfnEnd: bigint): LeafAt[] {
  const found: LeafAt[] = [];
  const visit = (tablePfn: number, level: number, baseGfn: bigint) => {
    const span = pagesOfPgLevel(level);
    const page = pages[tablePfn] ?? {};
    for (const key of Object.keys(page).map(Number).sort((a, b) => a - b)) {
      const gfn = baseGfn + BigInt(key) * span;
      if (gfn + span <= gfnStart || gfn >= gfnEnd) continue;
      const spte = page[key]!;
      if (!isShadowPresentPte(spte)) continue;
      if (level === 1 || isLargePte(spte)) found.push({ pgLevel: level, tablePfn, index: key, spte, gfn });
      else visit(Number(spteToPfn(spte)), level - 1, gfn);
    }
  };
  visit(rootPfn, topLevel, 0n);
  return found;
}
