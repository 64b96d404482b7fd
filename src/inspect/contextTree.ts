/**
 * Any actor context (or message payload) as a tree for the state panel, with what changed since the
 * previous step marked. Generic on purpose: the model grows (new actors, new context fields) and the panel
 * must show whatever is there. Numbers follow the CLI's rule (src/session/format.ts `isHexNumberKey`), bigints
 * are hex, and `pages` fields that hold page-table pages are flagged so the panel draws them as tables
 * (pageTables.ts) instead.
 *
 * Changes are found by reference first: contexts are immutable and updated with structural sharing, so an
 * unchanged subtree is the very same object in both steps and costs nothing to compare.
 */
import { hex } from '../arch/hex.ts';
import { isHexNumberKey } from '../session/format.ts';
import type { TreeNode } from './api.ts';
import { isPageTableField } from './pageTables.ts';
import { isGuestPageTableField } from './stateTables.ts';

/** Children shown per container; a 512-entry array stays readable and a huge one cannot freeze the page. */
const MAX_CHILDREN = 512;
const NOT_THERE = Symbol('absent');

export function formatLeaf(key: string, v: unknown): string {
  if (typeof v === 'bigint') return v < 0n ? `-${hex(-v)}` : hex(v);
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && isHexNumberKey(key)) return hex(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'undefined';
  return String(v);
}

function isContainer(v: unknown): v is Record<string, unknown> | unknown[] {
  return v !== null && typeof v === 'object';
}

function summary(v: Record<string, unknown> | unknown[]): string {
  return Array.isArray(v) ? `[${v.length}]` : `{${Object.keys(v).length}}`;
}

/** Records keyed by page frame number: their keys read best in hex, as the CLI prints page frames. */
const PFN_KEYED = new Set(['pages', 'sept', 'pamt']);

/** How a child key is shown: `[3]` in an array, a page frame in hex, otherwise the key itself. */
export function childLabel(parentKey: string, k: string, inArray: boolean): string {
  return inArray ? `[${k}]` : PFN_KEYED.has(parentKey) && /^\d+$/.test(k) ? hex(Number(k)) : k;
}

function node(key: string, hexKey: string, v: unknown, prev: unknown, holder: unknown): TreeNode {
  const changed = prev === NOT_THERE || (v !== prev && !(isContainer(v) && isContainer(prev)));
  if (!isContainer(v)) return { key, text: formatLeaf(hexKey, v), changed };
  if (isPageTableField(hexKey, holder)) return { key, text: `${Object.keys(v).length} page-table pages (table below)`, changed: v !== prev, table: true };
  if (isGuestPageTableField(hexKey, holder)) return { key, text: `${Object.keys(v).length} PTEs (table above)`, changed: v !== prev, table: true };
  const children = childrenOf(v, hexKey, prev);
  return { key, text: summary(v), changed: changed || children.some((c) => c.changed), children };
}

/** `hexKey` is the key that decides hex formatting: array elements inherit their array's key, as in the CLI. */
function childrenOf(v: Record<string, unknown> | unknown[], hexKey: string, prev: unknown): TreeNode[] {
  const p = isContainer(prev) && Array.isArray(prev) === Array.isArray(v) ? (prev as Record<string, unknown>) : null;
  const entries = Object.entries(v);
  const out: TreeNode[] = [];
  const label = (k: string) => childLabel(hexKey, k, Array.isArray(v));
  for (const [k, x] of entries.slice(0, MAX_CHILDREN)) {
    const before = p === null ? NOT_THERE : Object.prototype.hasOwnProperty.call(p, k) ? p[k] : NOT_THERE;
    out.push(node(label(k), Array.isArray(v) ? hexKey : k, x, v === prev ? x : before, v));
  }
  if (entries.length > MAX_CHILDREN) out.push({ key: '…', text: `${entries.length - MAX_CHILDREN} more not shown`, changed: false });
  if (p !== null && p !== v) {
    for (const k of Object.keys(p)) {
      if (!Object.prototype.hasOwnProperty.call(v, k)) out.push({ key: label(k), text: '(removed)', changed: true, removed: true });
    }
  }
  return out;
}

/** The top level of `value` (a context or payload object) as tree nodes; `prev` is the same at the previous step. */
export function contextTree(value: unknown, prev: unknown = value): TreeNode[] {
  if (!isContainer(value)) return [node('value', 'value', value, prev, null)];
  return childrenOf(value, '', prev);
}
