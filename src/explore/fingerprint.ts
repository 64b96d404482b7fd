/**
 * The explorer's state identity: what the world *is*, not how it got there. Unlike the log's state hash
 * (src/runtime/worldHash.ts), it leaves out message ids, causes and the step count, and keeps messages in
 * flight per channel (sender → receiver) in FIFO order, so two interleavings that reach the same actor
 * states with the same messages queued are one state. Each actor's part is hashed once per snapshot
 * object and cached: a step changes one actor, so the others cost a map lookup.
 */
import { createHash } from 'node:crypto';
import type { AnyMachineSnapshot } from 'xstate';
import { stringifyCanonical } from '../log/canonical.ts';
import type { Model, World } from '../runtime/world.ts';

const actorDigest = new WeakMap<AnyMachineSnapshot, string>();

function digestOf(s: AnyMachineSnapshot): string {
  let d = actorDigest.get(s);
  if (d === undefined) {
    d = createHash('sha256').update(stringifyCanonical({ value: s.value, status: s.status, context: s.context })).digest('base64');
    actorDigest.set(s, d);
  }
  return d;
}

/** 128 bits of SHA-256 over the actors' digests, the per-channel queues and the failures reached. */
export function fingerprint(model: Model, world: World): string {
  const h = createHash('sha256');
  for (const s of world.snapshots) h.update(digestOf(s));
  const channels = new Map<string, unknown[]>();
  for (const m of world.pending) {
    const ch = `${m.from}\u0000${m.to}`;
    let q = channels.get(ch);
    if (q === undefined) channels.set(ch, (q = []));
    q.push({ kind: m.kind, name: m.name, payload: m.payload });
  }
  const keys = [...channels.keys()].sort();
  h.update(stringifyCanonical(keys.map((k) => [k, channels.get(k)])));
  h.update(stringifyCanonical(world.failures.map((f) => [f.actor, f.reason, f.detail])));
  void model;
  return h.digest('base64').slice(0, 22);
}
