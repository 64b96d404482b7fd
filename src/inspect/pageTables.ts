/**
 * Page-table pages in an actor's context, as tables for the state panel, one row per entry with its value
 * in hex and its bits decoded by the project's own decoders:
 *
 * - KVM's TDP MMU pages (`kvm.mmu`'s `pages`, beside `roots` and `topLevel`): SPTEs, decoded with
 *   src/arch/spte.ts `decodeSpte` and the CLI's `describeSpte`; levels are KVM pg_levels (4K = 1).
 * - The TDX module's Secure EPT (`tdx`'s `mem.sept`, beside `septRoot` and `topLevel`): entries decoded
 *   to their S-EPT state with src/arch/septEntry.ts and the CLI's `describeSeptEntry`; levels are TDX
 *   levels (4K = 0).
 *
 * A field qualifies when it maps page frames to pages that map indexes to 64-bit values (bigints), the
 * shape of machines/kvm/tdpIter.ts `SptPages`; anything else stays in the generic tree (contextTree.ts),
 * so a differently shaped table added to the model still shows up there. Levels come from walking down
 * from the roots through non-leaf entries, as the iterators do.
 */
import { hex, hex16 } from '../arch/hex.ts';
import { decodeSpte, isLargePte, isShadowPresentPte, spteToPfn, VMX_EPT_RWX_MASK, VMX_EPT_SUPPRESS_VE_BIT } from '../arch/spte.ts';
import { septHpa, septStateOf } from '../arch/septEntry.ts';
import { describeSeptEntry, describeSpte, type FormatOptions } from '../session/format.ts';
import type { PageTableView, PageView, SpteRow, TableChange } from './api.ts';

type Pages = Record<string, Record<string, bigint>>;

/** How one kind of table is read: where its roots are, how a link is found, how an entry is decoded. */
interface TableKind {
  kind: PageTableView['kind'];
  /** Root page frames by name, from the object holding the table. */
  roots(holder: Record<string, unknown>): Map<number, string>;
  /** The page an entry links to one level down, or null for a leaf or an empty entry. */
  child(entry: bigint): number | null;
  /** The lowest level (a page at it holds only leaves). */
  bottom: number;
  row(index: string, entry: bigint, level: number | null, fmt: FormatOptions): Omit<SpteRow, 'changed'>;
  /** What an absent entry holds. */
  absent: string;
}

const isPageMap = (v: unknown): v is Pages =>
  v !== null &&
  typeof v === 'object' &&
  !Array.isArray(v) &&
  Object.values(v).every((page) => page !== null && typeof page === 'object' && !Array.isArray(page) && Object.values(page as object).every((e) => typeof e === 'bigint'));

const withoutValue = (text: string) => text.replace(/^0x[0-9a-f]{16} /, '');

const KVM_SPTES: TableKind = {
  kind: 'spte',
  roots(holder) {
    const out = new Map<number, string>();
    const roots = holder['roots'];
    if (roots !== null && typeof roots === 'object') for (const [name, pfn] of Object.entries(roots)) if (typeof pfn === 'number') out.set(pfn, `${name} root`);
    return out;
  },
  child: (spte) => (isShadowPresentPte(spte) && !isLargePte(spte) ? Number(spteToPfn(spte)) : null),
  bottom: 1,
  row(index, spte, level, fmt) {
    const f = decodeSpte(spte, { mmioValue: fmt.mmioValue, ...(level !== null ? { pgLevel: level } : {}) });
    return {
      index: hex(Number(index)),
      spte: hex16(spte),
      kind: f.kind,
      rwx: `${f.r ? 'R' : '-'}${f.w ? 'W' : '-'}${f.x ? 'X' : '-'}`,
      suppressVe: f.suppressVe,
      mmuPresent: f.present,
      level,
      target: f.kind === 'mmio' ? `gpa ${f.mmioGpa}` : f.kind === 'leaf' || f.kind === 'nonleaf' ? `pfn ${f.pfn}` : '',
      // describeSpte starts with the value itself, which the table already shows in its own column.
      decoded: withoutValue(describeSpte(spte, fmt, level ?? undefined)),
    };
  },
  absent: 'SHADOW_NONPRESENT_VALUE',
};

const rwxOf = (e: bigint) => ['R', 'W', 'X'].map((c, i) => ((e & VMX_EPT_RWX_MASK & (1n << BigInt(i))) !== 0n ? c : '-')).join('');

const SECURE_EPT: TableKind = {
  kind: 'sept',
  roots(holder) {
    const root = holder['septRoot'];
    return new Map(typeof root === 'number' ? [[root, 'S-EPT root']] : []);
  },
  child(entry) {
    const state = septStateOf(entry);
    return state.startsWith('NL_') && septHpa(entry) !== 0n ? Number(septHpa(entry) >> 12n) : null;
  },
  bottom: 0,
  row(index, entry, level) {
    const hpa = septHpa(entry);
    return {
      index: hex(Number(index)),
      spte: hex16(entry),
      kind: septStateOf(entry),
      rwx: rwxOf(entry),
      suppressVe: (entry & VMX_EPT_SUPPRESS_VE_BIT) !== 0n,
      mmuPresent: null,
      level,
      target: hpa !== 0n ? `hpa ${hex(hpa)}` : '',
      decoded: withoutValue(describeSeptEntry(entry)),
    };
  },
  absent: 'FREE',
};

/** The table kind of field `key` in `holder`, if it holds page-table pages. */
function tableKind(key: string, holder: Record<string, unknown>): TableKind | null {
  if (!isPageMap(holder[key])) return null;
  if (key === 'sept') return SECURE_EPT;
  if (key === 'pages') return KVM_SPTES;
  return null;
}

/** For the generic tree: is this field drawn as a page table instead? */
export function isPageTableField(key: string, holder: unknown): boolean {
  return holder !== null && typeof holder === 'object' && !Array.isArray(holder) && tableKind(key, holder as Record<string, unknown>) !== null;
}

function pageLevels(t: TableKind, pages: Pages, roots: Iterable<number>, topLevel: number): Map<number, number> {
  const levels = new Map<number, number>();
  const visit = (pfn: number, level: number) => {
    if (levels.has(pfn)) return;
    levels.set(pfn, level);
    if (level === t.bottom) return;
    for (const e of Object.values(pages[pfn] ?? {})) {
      const c = t.child(e);
      if (c !== null) visit(c, level - 1);
    }
  };
  for (const r of roots) visit(r, topLevel);
  return levels;
}

function tableOf(t: TableKind, field: string, key: string, holder: Record<string, unknown>, prevHolder: Record<string, unknown> | null, fmt: FormatOptions): PageTableView {
  const pages = holder[key] as Pages;
  const prevPages = prevHolder !== null && isPageMap(prevHolder[key]) ? (prevHolder[key] as Pages) : null;
  const rootName = t.roots(holder);
  const topLevel = typeof holder['topLevel'] === 'number' ? holder['topLevel'] : null;
  const levels = topLevel === null ? new Map<number, number>() : pageLevels(t, pages, rootName.keys(), topLevel);

  const views: PageView[] = Object.entries(pages).map(([pfn, page]) => {
    const level = levels.get(Number(pfn)) ?? null;
    const before = prevPages?.[pfn];
    const rows: SpteRow[] = Object.entries(page).map(([idx, e]) => ({ ...t.row(idx, e, level, fmt), changed: prevPages !== null && before?.[idx] !== e }));
    // An entry that disappeared went back to the page's default value.
    if (before && before !== page) {
      for (const [idx, was] of Object.entries(before)) {
        if (!(idx in page)) rows.push({ ...t.row(idx, was, level, fmt), spte: 'absent', kind: t.absent, decoded: `${t.absent} now; was ${t.row(idx, was, level, fmt).spte}`, changed: true });
      }
    }
    rows.sort((a, b) => Number(a.index) - Number(b.index));
    const title = [rootName.get(Number(pfn)), level === null ? (topLevel === null ? null : 'unlinked') : `level ${level}`].filter(Boolean).join(', ');
    return { pfn: hex(Number(pfn)), title, level, rows, changed: prevPages !== null && before !== page };
  });
  return { field, kind: t.kind, absent: t.absent, pages: views };
}

interface FoundTable {
  /** Dotted context path (`pages`, `mem.sept`). */
  field: string;
  key: string;
  holder: Record<string, unknown>;
  kind: TableKind;
}

/** The page tables in `ctx`, searched a few levels deep. */
function findTables(ctx: unknown): FoundTable[] {
  const out: FoundTable[] = [];
  const visit = (v: unknown, path: string, depth: number) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || depth > 3) return;
    const holder = v as Record<string, unknown>;
    for (const [k, x] of Object.entries(holder)) {
      const at = path ? `${path}.${k}` : k;
      const t = tableKind(k, holder);
      if (t) out.push({ field: at, key: k, holder, kind: t });
      else visit(x, at, depth + 1);
    }
  };
  visit(ctx, '', 0);
  return out;
}

/** The object at dotted `path` of `ctx` (a table's holder one step earlier), if it is one. */
function holderAt(ctx: unknown, field: string): Record<string, unknown> | null {
  let v: unknown = ctx;
  for (const k of field.split('.').slice(0, -1)) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** Every page table in `ctx` (searched a few levels deep), with `prev` the same context one step earlier. */
export function pageTables(ctx: unknown, prev: unknown, fmt: FormatOptions): PageTableView[] {
  return findTables(ctx).map((f) => tableOf(f.kind, f.field, f.key, f.holder, holderAt(prev, f.field), fmt));
}

function levelsOf(t: TableKind, holder: Record<string, unknown> | null, key: string): Map<number, number> {
  if (holder === null || !isPageMap(holder[key])) return new Map();
  const topLevel = typeof holder['topLevel'] === 'number' ? holder['topLevel'] : null;
  return topLevel === null ? new Map() : pageLevels(t, holder[key] as Pages, t.roots(holder).keys(), topLevel);
}

/**
 * Every page-table entry that differs between two contexts of one actor (`a` earlier, `b` later), each side
 * decoded as the state panel decodes it (the CLI's describeSpte / describeSeptEntry, at the level the
 * entry's page has on that side).
 */
export function pageTableChanges(a: unknown, b: unknown, fmt: FormatOptions): TableChange[] {
  const found = new Map<string, { a: FoundTable | null; b: FoundTable | null }>();
  for (const f of findTables(a)) found.set(f.field, { a: f, b: null });
  for (const f of findTables(b)) found.set(f.field, { a: found.get(f.field)?.a ?? null, b: f });
  const out: TableChange[] = [];
  for (const [field, { a: fa, b: fb }] of found) {
    const t = (fb ?? fa)!.kind;
    const key = (fb ?? fa)!.key;
    const pagesA = fa ? (fa.holder[key] as Pages) : {};
    const pagesB = fb ? (fb.holder[key] as Pages) : {};
    if (pagesA === pagesB) continue;
    const levelsA = levelsOf(t, fa?.holder ?? null, key);
    const levelsB = levelsOf(t, fb?.holder ?? null, key);
    const side = (idx: string, e: bigint | undefined, level: number | null) => {
      if (e === undefined) return null;
      const r = t.row(idx, e, level, fmt);
      return { entry: r.spte, kind: r.kind, decoded: r.decoded };
    };
    const pfns = [...new Set([...Object.keys(pagesA), ...Object.keys(pagesB)])].sort((x, y) => Number(x) - Number(y));
    for (const pfn of pfns) {
      const pa = pagesA[pfn];
      const pb = pagesB[pfn];
      if (pa === pb) continue;
      const idxs = [...new Set([...Object.keys(pa ?? {}), ...Object.keys(pb ?? {})])].sort((x, y) => Number(x) - Number(y));
      for (const idx of idxs) {
        const ea = pa?.[idx];
        const eb = pb?.[idx];
        if (ea === eb) continue;
        const la = levelsA.get(Number(pfn)) ?? null;
        const lb = levelsB.get(Number(pfn)) ?? null;
        out.push({ field, kind: t.kind, pfn: hex(Number(pfn)), index: hex(Number(idx)), level: lb ?? la, old: side(idx, ea, la), new: side(idx, eb, lb), absent: t.absent });
      }
    }
  }
  return out;
}
