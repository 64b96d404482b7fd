import type { Invariant } from './invariant.ts';

/** Any failure an actor reports — KVM_BUG_ON, guest panic or #DF, a message no state accepts, a model limit. */
export const noFailure: Invariant = {
  name: 'no-failure',
  description: 'no actor reaches a failure: KVM_BUG_ON, a guest panic or #DF, a VM marked dead, a model limit',
  // Decided by the delivery's own failures.
  footprint: {},
  check(_model, before, after) {
    if (after.failures.length === before.failures.length) return null;
    const f = after.failures[after.failures.length - 1]!;
    return `${f.reason}: ${f.detail}`;
  },
};
