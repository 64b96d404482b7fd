/**
 * An actor's state at a step, for people: the active state path, then the context with 64-bit values in
 * hex; the TDP MMU's page-table pages are listed entry by entry with each SPTE decoded.
 */
import { hex } from '../arch/hex.ts';
import { isLargePte, isShadowPresentPte, spteToPfn } from '../arch/spte.ts';
import type { ActorView } from '../runtime/worldHash.ts';
import { describeSpte, describeSeptEntry, isHexNumberKey, type FormatOptions } from './format.ts';
import { PAMT_TYPE_NAMES } from '../../machines/tdxModule/pamt.ts';

export function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k}.${statePath(v)}`).join(' | ');
  }
  return String(value);
}

function compact(v: unknown, key = ''): string {
  if (typeof v === 'bigint') return hex(v);
  if (typeof v === 'number' && isHexNumberKey(key)) return hex(v);
  if (Array.isArray(v)) return '[' + v.map((x) => compact(x, key)).join(', ') + ']';
  if (v !== null && typeof v === 'object') return '{' + Object.entries(v).map(([k, x]) => `${k}: ${compact(x, k)}`).join(', ') + '}';
  return JSON.stringify(v) ?? 'undefined';
}

/** Level of every page, found by walking down from the roots through non-leaf SPTEs. */
function pageLevels(pages: Record<string, Record<string, bigint>>, roots: number[], topLevel: number): Map<number, number> {
  const levels = new Map<number, number>();
  const visit = (pfn: number, level: number) => {
    levels.set(pfn, level);
    if (level === 1) return;
    for (const spte of Object.values(pages[pfn] ?? {})) {
      if (isShadowPresentPte(spte) && !isLargePte(spte)) visit(Number(spteToPfn(spte)), level - 1);
    }
  };
  for (const r of roots) visit(r, topLevel);
  return levels;
}

function pagesLines(ctx: Record<string, unknown>, fmt: FormatOptions): string[] {
  const pages = ctx['pages'] as Record<string, Record<string, bigint>>;
  const roots = ctx['roots'] as Record<string, number | null>;
  const rootName = new Map(Object.entries(roots).filter(([, p]) => p !== null).map(([n, p]) => [p as number, `${n} root`]));
  const levels = pageLevels(pages, [...rootName.keys()], ctx['topLevel'] as number);
  const lines: string[] = [];
  for (const [pfn, page] of Object.entries(pages)) {
    const entries = Object.entries(page);
    const level = levels.get(Number(pfn));
    const what = [rootName.get(Number(pfn)), level === undefined ? 'unlinked' : `level ${level}`].filter(Boolean).join(', ');
    lines.push(`    page pfn ${hex(Number(pfn))} (${what}): ${entries.length === 0 ? 'every entry SHADOW_NONPRESENT_VALUE' : `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} set, the rest SHADOW_NONPRESENT_VALUE`}`);
    for (const [idx, spte] of entries) lines.push(`      [${hex(Number(idx))}] ${describeSpte(spte, fmt, level)}`);
  }
  return lines;
}

/** hw.mem: each physical page with the KeyID it was written with and its non-zero words. */
function physPagesLines(pages: Record<string, { keyid: number; words: Record<string, bigint> }>): string[] {
  return Object.entries(pages).map(([pfn, p]) => {
    const words = Object.entries(p.words).map(([w, v]) => `+${hex(Number(w) * 8)}=${hex(v)}`);
    return `    page pfn ${hex(Number(pfn))} keyid ${p.keyid}: ${words.length === 0 ? 'all zero' : words.join(' ')}`;
  });
}

/** The TDX module's `mem`: op_state, epoch, then every S-EPT page with its entries decoded, and the PAMT. */
function tdMemoryLines(mem: Record<string, unknown>): string[] {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(mem)) {
    if (k === 'sept') {
      lines.push('    sept:');
      for (const [pfn, page] of Object.entries(v as Record<string, Record<string, bigint>>)) {
        const entries = Object.entries(page);
        const root = Number(pfn) === mem['septRoot'] ? ' (root)' : '';
        lines.push(`      page pfn ${hex(Number(pfn))}${root}: ${entries.length === 0 ? 'every entry FREE' : `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} set, the rest FREE`}`);
        for (const [idx, e] of entries) lines.push(`        [${hex(Number(idx))}] ${describeSeptEntry(e)}`);
      }
    } else if (k === 'pamt') {
      lines.push('    pamt:');
      for (const [pfn, e] of Object.entries(v as Record<string, { type: number; owner: bigint; bepoch: number; tdxLevel: number }>)) {
        lines.push(`      pfn ${hex(Number(pfn))}: ${PAMT_TYPE_NAMES[e.type] ?? e.type} owner=${hex(e.owner)} bepoch=${e.bepoch} level=${e.tdxLevel}`);
      }
    } else {
      lines.push(`    ${k}: ${compact(v, k)}`);
    }
  }
  return lines;
}

export function formatActorState(id: string, view: ActorView, fmt: FormatOptions): string[] {
  const lines = [`${id}  [${statePath(view.value)}]${view.status === 'active' ? '' : ` (${view.status})`}`];
  const ctx = view.context as Record<string, unknown>;
  for (const [k, v] of Object.entries(ctx)) {
    if (k === 'program' && Array.isArray(v)) {
      lines.push(`  program: ${v.length} instruction(s)`);
    } else if (k === 'pages' && 'roots' in ctx) {
      lines.push('  pages:');
      lines.push(...pagesLines(ctx, fmt));
    } else if (k === 'pages') {
      lines.push('  pages:');
      lines.push(...physPagesLines(v as Record<string, { keyid: number; words: Record<string, bigint> }>));
    } else if (k === 'mem' && id === 'tdx') {
      lines.push('  mem:');
      lines.push(...tdMemoryLines(v as Record<string, unknown>));
    } else {
      lines.push(`  ${k}: ${compact(v, k)}`);
    }
  }
  return lines;
}
