/** The default: deliver the oldest pending message (smallest send id) first. Deterministic by construction. */
import type { Message } from '../../protocol/messages.ts';
import type { Scheduler } from './scheduler.ts';

/** Delivers the oldest deliverable message first: the default, deterministic order of `tdxsim run`. */
export function fifoScheduler(): Scheduler {
  return {
    descriptor: { kind: 'fifo' },
    choose(enabled: readonly Message[]): number {
      let best = 0;
      for (let i = 1; i < enabled.length; i++) if (enabled[i]!.id < enabled[best]!.id) best = i;
      return best;
    },
  };
}
