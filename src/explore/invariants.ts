/**
 * Named invariants the explorer checks after every delivery. Each looks at the world before and after one
 * delivery and returns null when it holds, or a sentence saying what broke, in the model's own terms.
 */
import type { Message } from '../protocol/messages.ts';
import type { Model, World } from '../runtime/world.ts';

export interface Invariant {
  name: string;
  description: string;
  check(model: Model, before: World, after: World, delivered: Message): string | null;
}

/** Any failure an actor reports — KVM_BUG_ON, guest panic or #DF, a message no state accepts, a model limit. */
export const noFailure: Invariant = {
  name: 'no-failure',
  description: 'no actor reaches a failure: KVM_BUG_ON, a guest panic or #DF, an unexpected message, a model limit',
  check(_model, before, after) {
    if (after.failures.length === before.failures.length) return null;
    const f = after.failures[after.failures.length - 1]!;
    return `${f.reason}: ${f.detail}`;
  },
};

export const INVARIANTS: readonly Invariant[] = [noFailure];

export function invariantNamed(name: string): Invariant | undefined {
  return INVARIANTS.find((i) => i.name === name);
}
