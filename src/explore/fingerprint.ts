/**
 * The explorer's state identity: what the world *is*, not how it got there. Unlike the log's state hash
 * (src/runtime/worldHash.ts), it leaves out message ids, causes, failure step numbers and the step count;
 * messages in flight count per channel (sender → receiver) in FIFO order, and channels and failures in any
 * order, so two interleavings that reach the same actor states with the same messages queued are one
 * state — in particular the two orders of deliveries to different actors, which the explorer's reduction
 * relies on.
 *
 * The fingerprint is a sum of terms, one per part: each actor's state (its index mixed in), each message
 * in flight (its position in its channel mixed in), each failure. Every term is a 64-bit structural hash
 * (structuralHash.ts) put through a mixer, and the sum is kept as two 32-bit lanes. A sum can be kept up
 * to date: a delivery changes one actor, one channel's head and appends a few messages, so the explorer's
 * engine (compiledModel.ts) subtracts the old terms and adds the new ones instead of hashing the world —
 * its terms are cached per interned actor state and message, and it computes exactly this function. For
 * two distinct states the difference of their sums is a sum of independent pseudo-random terms, so they
 * collide with probability about 2⁻⁶⁴, as one hash of the whole state would.
 */
import type { AnyMachineSnapshot } from 'xstate';
import type { Message } from '../protocol/messages.ts';
import type { Failure, Model, World } from '../runtime/world.ts';
import { fmix, HashBuilder, structuralHash, type Hash64 } from './structuralHash.ts';

const actorHashes = new WeakMap<AnyMachineSnapshot, Hash64>();
const messageHashes = new WeakMap<object, Hash64>();

/** One actor's state value, status and context. */
export function actorHash(s: AnyMachineSnapshot): Hash64 {
  let h = actorHashes.get(s);
  if (h === undefined) {
    h = new HashBuilder().addValue(s.value).addValue(s.status).addValue(s.context).digest();
    actorHashes.set(s, h);
  }
  return h;
}

/** The parts of a message its receiver sees. */
export type MessageContent = Pick<Message, 'from' | 'to' | 'kind' | 'name' | 'payload'>;

/** A message as its receiver sees it: sender, kind, name and payload (never its id or cause). */
export function messageHash(m: MessageContent): Hash64 {
  let h = messageHashes.get(m);
  if (h === undefined) {
    h = new HashBuilder().addValue(m.from).addValue(m.to).addValue(m.kind).addValue(m.name).addValue(m.payload).digest();
    messageHashes.set(m, h);
  }
  return h;
}

/** A failure without the step it happened at. */
export const failureHash = (f: Pick<Failure, 'actor' | 'reason' | 'detail'>): Hash64 => structuralHash([f.actor, f.reason, f.detail]);

/** A term: what one part adds to the two lanes of the sum. */
export interface Term {
  a: number;
  b: number;
}

/** Actor `i` in the state whose hash is `h`. */
export function actorTerm(i: number, h: Hash64): Term {
  return { a: fmix(Math.imul(h.hi ^ 0x3c6ef372, 0x9e3779b1) + i), b: fmix((h.lo + Math.imul(i + 1, 0x85ebca6b)) ^ 0x510e527f) };
}

/** The message whose hash is `h`, at position `pos` of its channel (0 is the head). */
export function messageTerm(h: Hash64, pos: number): Term {
  return { a: fmix(Math.imul(h.hi ^ 0x1b873593, 0xcc9e2d51) + Math.imul(pos, 0x27d4eb2f) + 0x165667b1), b: fmix((h.lo ^ Math.imul(pos + 1, 0x9e3779b1)) + 0x61c88647) };
}

/** A failure whose hash is `h`. */
export function failureTerm(h: Hash64): Term {
  return { a: fmix(h.hi + 0x7f4a7c15), b: fmix(h.lo ^ 0x2545f491) };
}

/**
 * The fingerprint of the state whose terms sum to (a, b), with `pending` messages in flight and `failures`
 * failures: a keyed, invertible mix of the two lanes, so no bit of the sum is lost.
 */
export function finish(a: number, b: number, pending: number, failures: number): Hash64 {
  const out = { hi: 0, lo: 0 };
  finishInto(out, a, b, pending, failures);
  return out;
}

export function fingerprint(_model: Model, world: World): Hash64 {
  let a = 0;
  let b = 0;
  const s = world.snapshots;
  for (let i = 0; i < s.length; i++) {
    const t = actorTerm(i, actorHash(s[i]!));
    a = (a + t.a) | 0;
    b = (b + t.b) | 0;
  }
  const p = world.pending;
  for (let i = 0; i < p.length; i++) {
    const m = p[i]!;
    let pos = 0;
    for (let j = 0; j < i; j++) if (p[j]!.to === m.to && p[j]!.from === m.from) pos++;
    const t = messageTerm(messageHash(m), pos);
    a = (a + t.a) | 0;
    b = (b + t.b) | 0;
  }
  for (const f of world.failures) {
    const t = failureTerm(failureHash(f));
    a = (a + t.a) | 0;
    b = (b + t.b) | 0;
  }
  return finish(a, b, p.length, world.failures.length);
}

/** `finish` into `out`, allocating nothing (the engine's hot path). */
export function finishInto(out: { hi: number; lo: number }, a: number, b: number, pending: number, failures: number): void {
  let x = (a + Math.imul(pending, 0x9e3779b1)) | 0;
  let y = (b + Math.imul(failures, 0x85ebca6b)) | 0;
  y ^= fmix(x + 0x6a09e667);
  x ^= fmix(y + 0xbb67ae85);
  y ^= fmix(x + 0x3c6ef372);
  out.hi = x | 0;
  out.lo = y | 0;
}
