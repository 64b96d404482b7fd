/**
 * Memoised actor transitions for the explorer. Interleavings differ in *when* an actor gets a message, far
 * less in *which* message it gets in which state: the same (actor state, message) pair recurs across
 * thousands of global states. A transition is a pure function of the two — no machine reads a message's id
 * or cause (test/explore/transitionCache.test.ts runs every example both ways) — so the snapshot it leads to
 * and the actions it emits are kept, keyed by the 64-bit structural hashes of both, and reused: the hit
 * costs two hash lookups instead of an XState macrostep.
 */
import type { AnyMachineSnapshot } from 'xstate';
import type { Message } from '../protocol/messages.ts';
import { runTransition, type ActorTransition } from '../runtime/step.ts';
import type { CollectedAction } from '../runtime/xstateScope.ts';
import type { Model } from '../runtime/world.ts';
import { actorHash, messageHash } from './fingerprint.ts';

interface Entry {
  after: AnyMachineSnapshot;
  actions: readonly CollectedAction[];
}

/** Past this many entries the cache starts afresh: memory stays bounded, and a hit rate is rebuilt quickly. */
const LIMIT = 1 << 19;

export class TransitionCache {
  private readonly map = new Map<string, Entry>();
  hits = 0;
  misses = 0;

  readonly transition: ActorTransition = (model: Model, actor: number, before: AnyMachineSnapshot, msg: Message, actions: CollectedAction[]) => {
    const s = actorHash(before);
    const m = messageHash(msg);
    const key = `${actor},${s.hi},${s.lo},${m.hi},${m.lo}`;
    const hit = this.map.get(key);
    if (hit !== undefined) {
      this.hits++;
      for (const a of hit.actions) actions.push(a);
      return hit.after;
    }
    this.misses++;
    const first = actions.length;
    const after = runTransition(model, actor, before, msg, actions);
    if (this.map.size >= LIMIT) this.map.clear();
    this.map.set(key, { after, actions: actions.slice(first) });
    return after;
  };
}
