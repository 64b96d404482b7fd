/**
 * When a loop is back where it started. The log's state hash (runtime/worldHash.ts) covers the messages'
 * ids and causes, which grow with every send, so no two states of a run ever hash alike; a loop returns
 * to the same *state* in the explorer's sense (fingerprint.ts): every actor's state value, status and
 * context, and per channel the same messages in flight in the same order — ids, causes and step numbers
 * aside. This compares two worlds that way, exactly (no hash), and says where they differ.
 */
import type { Message } from '../../protocol/messages.ts';
import type { Model, World } from '../../runtime/world.ts';

function keyCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Plain data (objects by their own keys in any order, arrays by position): the first path where `a` and `b` differ, or null. */
export function dataDifference(a: unknown, b: unknown, path: string): string | null {
  if (a === b) return null;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return path || '(root)';
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return `${path}.length`;
    for (let i = 0; i < a.length; i++) {
      const d = dataDifference(a[i], bb[i], `${path}[${i}]`);
      if (d !== null) return d;
    }
    return null;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)].filter((k) => ao[k] !== undefined || bo[k] !== undefined));
  for (const k of [...keys].sort(keyCompare)) {
    const d = dataDifference(ao[k], bo[k], `${path}.${k}`);
    if (d !== null) return d;
  }
  return null;
}

const inFlight = (m: Message) => ({ kind: m.kind, name: m.name, payload: m.payload });

function channels(world: World): Map<string, unknown[]> {
  const out = new Map<string, unknown[]>();
  for (const m of world.pending) {
    const ch = `${m.from} → ${m.to}`;
    let q = out.get(ch);
    if (q === undefined) out.set(ch, (q = []));
    q.push(inFlight(m));
  }
  return out;
}

/** Null when `a` and `b` are the same state; otherwise where they differ, in words. */
export function loopStateDifference(model: Model, a: World, b: World): string | null {
  for (let i = 0; i < model.actors.length; i++) {
    const sa = a.snapshots[i]!;
    const sb = b.snapshots[i]!;
    const d = dataDifference({ value: sa.value, status: sa.status, context: sa.context }, { value: sb.value, status: sb.status, context: sb.context }, '');
    if (d !== null) return `${model.actors[i]!.id} differs at ${d.slice(1)}`;
  }
  const ca = channels(a);
  const cb = channels(b);
  for (const ch of [...new Set([...ca.keys(), ...cb.keys()])].sort(keyCompare)) {
    const d = dataDifference(ca.get(ch) ?? [], cb.get(ch) ?? [], '');
    if (d !== null) return `the messages in flight ${ch} differ (at ${d === '.length' ? 'their number' : d})`;
  }
  const fa = a.failures.map((f) => `${f.actor}\u0000${f.reason}\u0000${f.detail}`).sort(keyCompare);
  const fb = b.failures.map((f) => `${f.actor}\u0000${f.reason}\u0000${f.detail}`).sort(keyCompare);
  if (dataDifference(fa, fb, '') !== null) return 'the failures reached differ';
  return null;
}
