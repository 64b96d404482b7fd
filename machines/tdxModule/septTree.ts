/**
 * The Secure EPT as the TDX module holds it: S-EPT pages keyed by host PFN, each a sparse map
 * index → entry where an absent index is FREE | SVE, the value every entry of a fresh S-EPT page has
 * (§3.6). Levels here are TDX SEPT levels (0 = 4K … 3 = PML4, 4 = PML5, §0.2).
 */
import { SEPT_FREE_ENTRY, septStateOf, septHpa } from '../../src/arch/septEntry.ts';
import { septIsLeaf, type SeptState } from '../../src/arch/sept.ts';
import { pgLevelIndex, tdxLevelToPgLevel, PAGE_SHIFT } from '../../src/arch/gpa.ts';
import type { WalkStep } from '../../src/protocol/messages.ts';

export type SeptPage = Readonly<Record<number, bigint>>;
export type SeptPages = Readonly<Record<number, SeptPage>>;

export interface SeptSlot {
  tdxLevel: number;
  pagePfn: number;
  index: number;
  entry: bigint;
  state: SeptState;
}

export function readEntry(pages: SeptPages, pagePfn: number, index: number): bigint {
  const page = pages[pagePfn];
  if (page === undefined) throw new Error(`S-EPT page 0x${pagePfn.toString(16)} does not exist`);
  return page[index] ?? SEPT_FREE_ENTRY;
}

export function writeEntry(pages: SeptPages, pagePfn: number, index: number, entry: bigint): SeptPages {
  const page = { ...pages[pagePfn] };
  if (entry === SEPT_FREE_ENTRY) delete page[index];
  else page[index] = entry;
  return { ...pages, [pagePfn]: page };
}

export function indexAt(gpa: bigint, tdxLevel: number): number {
  return pgLevelIndex(gpa, tdxLevelToPgLevel(tdxLevel));
}

/**
 * Walk from the root towards `targetLevel`, descending only through NL_MAPPED entries. `reached` is true
 * when the returned last slot is at `targetLevel`; otherwise the walk stopped above it at a FREE,
 * blocked or leaf entry (§5a.4 step 4, §5a.5 step 1).
 */
export function walkSept(pages: SeptPages, rootPfn: number, topLevel: number, gpa: bigint, targetLevel: number): { path: SeptSlot[]; reached: boolean } {
  const path: SeptSlot[] = [];
  let pagePfn = rootPfn;
  for (let level = topLevel; level >= targetLevel; level--) {
    const index = indexAt(gpa, level);
    const entry = readEntry(pages, pagePfn, index);
    const state = septStateOf(entry);
    path.push({ tdxLevel: level, pagePfn, index, entry, state });
    if (level === targetLevel) return { path, reached: true };
    if (state !== 'NL_MAPPED') return { path, reached: false };
    pagePfn = Number(septHpa(entry) >> BigInt(PAGE_SHIFT));
  }
  return { path, reached: true };
}

/** The hardware's view of a walk: as far as present non-leaf entries go, down to a leaf or a stop (§1.2). */
export function hardwareWalk(pages: SeptPages, rootPfn: number, topLevel: number, gpa: bigint): WalkStep[] {
  const { path } = walkSept(pages, rootPfn, topLevel, gpa, 0);
  return path.map((s) => ({ pgLevel: tdxLevelToPgLevel(s.tdxLevel), tablePfn: s.pagePfn, index: s.index, spte: s.entry }));
}

/** Every leaf mapping in the tree, for state views and invariants: GPA, level, state, HPA. */
export function septLeaves(pages: SeptPages, rootPfn: number, topLevel: number): { gpa: bigint; tdxLevel: number; state: SeptState; hpa: bigint }[] {
  const out: { gpa: bigint; tdxLevel: number; state: SeptState; hpa: bigint }[] = [];
  const visit = (pfn: number, level: number, base: bigint) => {
    const page = pages[pfn] ?? {};
    for (const k of Object.keys(page).map(Number).sort((a, b) => a - b)) {
      const entry = page[k]!;
      const state = septStateOf(entry);
      const gpa = base | (BigInt(k) << BigInt(PAGE_SHIFT + 9 * level));
      if (state === 'NL_MAPPED' || state === 'NL_BLOCKED') visit(Number(septHpa(entry) >> BigInt(PAGE_SHIFT)), level - 1, gpa);
      else if (septIsLeaf(state)) out.push({ gpa, tdxLevel: level, state, hpa: septHpa(entry) });
    }
  };
  visit(rootPfn, topLevel, 0n);
  return out;
}
