/**
 * A canonical view of the world (every actor's state value, status and context, plus the messages in
 * flight) and its hash. The log records the hash after every step so a replay can prove it reaches the
 * same states; the inspector and `replay` print the view.
 */
import { createHash } from 'node:crypto';
import { stringifyCanonical } from '../log/canonical.ts';
import type { Model, World } from './world.ts';

/** One actor's state as plain data: XState status, state value and context. */
export interface ActorView {
  value: unknown;
  status: string;
  context: unknown;
}

export function actorView(world: World, i: number): ActorView {
  const s = world.snapshots[i]!;
  return { value: s.value, status: s.status, context: s.context };
}

/**
 * Every actor's state as plain data (status, state value, context) and the messages in flight: what `tdxsim
 * replay` prints and the state hash covers.
 */
export function worldView(model: Model, world: World): { actors: Record<string, ActorView>; pending: unknown[] } {
  const actors: Record<string, ActorView> = {};
  model.actors.forEach((a, i) => {
    actors[a.id] = actorView(world, i);
  });
  const pending = world.pending.map((m) => ({ id: m.id, from: m.from, to: m.to, kind: m.kind, name: m.name, payload: m.payload, cause: m.cause }));
  return { actors, pending };
}

/** First 16 hex digits of SHA-256 over the canonical JSON of the world view. */
export function worldHash(model: Model, world: World): string {
  return createHash('sha256').update(stringifyCanonical(worldView(model, world))).digest('hex').slice(0, 16);
}
