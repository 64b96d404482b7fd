/**
 * What changed between two steps A and B of a log: every actor whose snapshot differs, with its state,
 * each changed context leaf as `path: old → new` (formatted as the state panel formats it), and each
 * changed page-table entry decoded on both sides with the state panel's own decoders (pageTables.ts).
 * A and B may be in either order and far apart; the worlds come from the session's checkpoints.
 */
import { statePath } from '../session/stateView.ts';
import type { ActorDiff, DiffResult } from './api.ts';
import { childLabel, formatLeaf } from './contextTree.ts';
import { isPageTableField, pageTableChanges } from './pageTables.ts';
import type { InspectSession } from './session.ts';

/** Entries per actor: enough for any real step range, and a bound on the answer for a pathological one. */
export const MAX_DIFF_ENTRIES = 2000;
const ABSENT = Symbol('absent');

type Container = Record<string, unknown> | unknown[];
const isContainer = (v: unknown): v is Container => v !== null && typeof v === 'object';

function text(v: unknown, key: string): string {
  if (v === ABSENT) return '(absent)';
  if (isContainer(v)) return Array.isArray(v) ? `[${v.length}]` : `{${Object.keys(v).length}}`;
  return formatLeaf(key, v);
}

/** Changed leaves of two contexts; page-table fields are left to pageTableChanges. */
export function contextChanges(a: unknown, b: unknown): { path: string; old: string; new: string }[] {
  const out: { path: string; old: string; new: string }[] = [];
  const walk = (x: unknown, y: unknown, path: string, key: string, holderX: unknown, holderY: unknown) => {
    if (x === y) return;
    if (isContainer(x) && isContainer(y) && Array.isArray(x) === Array.isArray(y)) {
      if (isPageTableField(key, holderX) || isPageTableField(key, holderY)) return;
      const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])];
      for (const k of keys) {
        const own = (o: Container) => (Object.prototype.hasOwnProperty.call(o, k) ? (o as Record<string, unknown>)[k] : ABSENT);
        const seg = childLabel(key, k, Array.isArray(y));
        walk(own(x), own(y), path === '' ? seg : seg.startsWith('[') ? path + seg : `${path}.${seg}`, Array.isArray(y) ? key : k, x, y);
      }
      return;
    }
    out.push({ path: path === '' ? '(context)' : path, old: text(x, key), new: text(y, key) });
  };
  walk(a, b, '', '', null, null);
  return out;
}

export function diffSteps(session: InspectSession, a: number, b: number): DiffResult {
  const wa = session.worldAt(a);
  const wb = session.worldAt(b);
  const actors: ActorDiff[] = [];
  session.model.actors.forEach((spec, i) => {
    const sa = wa.snapshots[i]!;
    const sb = wb.snapshots[i]!;
    if (sa === sb) return;
    const paths = contextChanges(sa.context, sb.context);
    const tables = pageTableChanges(sa.context, sb.context, session.fmt);
    const stateA = statePath(sa.value);
    const stateB = statePath(sb.value);
    if (paths.length === 0 && tables.length === 0 && stateA === stateB && sa.status === sb.status) return;
    const keptPaths = paths.slice(0, MAX_DIFF_ENTRIES);
    const keptTables = tables.slice(0, Math.max(0, MAX_DIFF_ENTRIES - keptPaths.length));
    actors.push({
      id: spec.id,
      machine: spec.machine.id,
      stateA,
      stateB,
      statusA: sa.status,
      statusB: sb.status,
      paths: keptPaths,
      tables: keptTables,
      truncated: paths.length + tables.length - keptPaths.length - keptTables.length,
    });
  });
  return { a, b, actors };
}
