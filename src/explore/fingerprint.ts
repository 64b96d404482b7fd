/**
 * The explorer's state identity: what the world *is*, not how it got there. Unlike the log's state hash
 * (src/runtime/worldHash.ts), it leaves out message ids, causes and the step count; messages in flight
 * count per channel (sender → receiver) in FIFO order, and channels and failures in any order, so two
 * interleavings that reach the same actor states with the same messages queued are one state — in
 * particular the two orders of deliveries to different actors, which the explorer's reduction relies on.
 *
 * Every part is a structural hash (structuralHash.ts) cached on the immutable object it describes: a
 * step changes one actor and one or two queues, so the rest costs a WeakMap lookup.
 */
import type { AnyMachineSnapshot } from 'xstate';
import type { Message } from '../protocol/messages.ts';
import type { Model, World } from '../runtime/world.ts';
import { HashBuilder, structuralHash, type Hash64 } from './structuralHash.ts';

const actorHashes = new WeakMap<AnyMachineSnapshot, Hash64>();
const messageHashes = new WeakMap<Message, Hash64>();

/** One actor's state value, status and context. */
export function actorHash(s: AnyMachineSnapshot): Hash64 {
  let h = actorHashes.get(s);
  if (h === undefined) {
    h = new HashBuilder().addValue(s.value).addValue(s.status).addValue(s.context).digest();
    actorHashes.set(s, h);
  }
  return h;
}

/** A message as its receiver sees it: sender, kind, name and payload (never its id or cause). */
export function messageHash(m: Message): Hash64 {
  let h = messageHashes.get(m);
  if (h === undefined) {
    h = new HashBuilder().addValue(m.from).addValue(m.to).addValue(m.kind).addValue(m.name).addValue(m.payload).digest();
    messageHashes.set(m, h);
  }
  return h;
}

export function fingerprint(_model: Model, world: World): Hash64 {
  const b = new HashBuilder();
  for (const s of world.snapshots) b.add(actorHash(s));
  // Each message with its position in its channel; summed, so the interleaving of channels is forgotten.
  let sa = 0;
  let sb = 0;
  const p = world.pending;
  for (let i = 0; i < p.length; i++) {
    const m = p[i]!;
    let pos = 0;
    for (let j = 0; j < i; j++) if (p[j]!.to === m.to && p[j]!.from === m.from) pos++;
    const h = new HashBuilder().add(messageHash(m)).addWord(pos).digest();
    sa = (sa + h.hi) | 0;
    sb = (sb + h.lo) | 0;
  }
  b.addWord(sa).addWord(sb).addWord(p.length);
  sa = sb = 0;
  for (const f of world.failures) {
    const h = structuralHash([f.actor, f.reason, f.detail]);
    sa = (sa + h.hi) | 0;
    sb = (sb + h.lo) | 0;
  }
  return b.addWord(sa).addWord(sb).addWord(world.failures.length).digest();
}
