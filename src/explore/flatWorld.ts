/**
 * A world as the explorer's engine keeps it: a run of int32 in one arena (the search's stack), built from
 * the ids of a compiled model (compiledModel.ts):
 *
 *   [ state id of actor 0 … actor n−1 | k | message ids in send order (k) | f | (failure id, seq) × f ]
 *
 * Send order is kept because the scheduler's choices are indices into the deliverable messages ordered by
 * receiver and then by send order (src/runtime/step.ts `enabledChoices`): the engine explores in that
 * order and reports a counterexample as those choices. Neither the order across channels nor a failure's
 * step is part of the state's identity (fingerprint.ts). A World is built from the vector only where
 * something needs one: an invariant without a footprint, the non-progress graph's new nodes, a report.
 */
import type { Message } from '../protocol/messages.ts';
import type { Failure, World } from '../runtime/world.ts';
import type { CompiledModel } from './compiledModel.ts';

/** The vector of `world`, interning what it holds. */
export function flatten(cm: CompiledModel, world: World): Int32Array {
  const n = cm.n;
  const k = world.pending.length;
  const f = world.failures.length;
  const v = new Int32Array(n + 2 + k + 2 * f);
  world.snapshots.forEach((s, i) => (v[i] = cm.stateId(i, s)));
  v[n] = k;
  world.pending.forEach((m, j) => (v[n + 1 + j] = cm.messageId(m)));
  v[n + 1 + k] = f;
  world.failures.forEach((x, j) => {
    v[n + 2 + k + 2 * j] = cm.failureId(x);
    v[n + 3 + k + 2 * j] = x.seq;
  });
  return v;
}

/** Length of the vector at `o`. */
export function flatLength(n: number, mem: Int32Array, o: number): number {
  const k = mem[o + n]!;
  return n + 2 + k + 2 * mem[o + n + 1 + k]!;
}

/**
 * The World of the vector at `o` after `seq` deliveries. Messages get ids 1 … k in send order and no
 * cause, except that `keep` (a world's materialised messages, by position) are reused for the first
 * `keep.length` positions after removing `removed` from them, and the last `sentBy` messages carry
 * cause `seq`: that is how the world after a delivery is built from the world before it, so both agree
 * on the identity of the messages they share.
 */
export function materialize(cm: CompiledModel, mem: Int32Array, o: number, seq: number, before?: { world: World; removed: number; sent: number }): World {
  const n = cm.n;
  const snapshots = new Array(n);
  for (let i = 0; i < n; i++) snapshots[i] = cm.snapshots[mem[o + i]!]!;
  const k = mem[o + n]!;
  const pending: Message[] = [];
  let nextId = 1;
  if (before === undefined) {
    for (let j = 0; j < k; j++) pending.push({ ...cm.messages[mem[o + n + 1 + j]!]!, id: nextId++ });
  } else {
    for (const m of before.world.pending) if (m !== before.world.pending[before.removed]) pending.push(m);
    nextId = before.world.nextId;
    for (let j = k - before.sent; j < k; j++) pending.push({ ...cm.messages[mem[o + n + 1 + j]!]!, id: nextId++, cause: seq });
  }
  const f = mem[o + n + 1 + k]!;
  const failures: Failure[] = [];
  for (let j = 0; j < f; j++) {
    const x = cm.failures[mem[o + n + 2 + k + 2 * j]!]!;
    failures.push({ actor: x.actor, seq: mem[o + n + 3 + k + 2 * j]!, reason: x.reason, detail: x.detail });
  }
  return { snapshots, pending, nextId, seq, failures };
}
