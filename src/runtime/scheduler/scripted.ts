/** Replays a schedule the explorer found: choice by choice, then nothing more (the run stops at its end). */
import type { Message } from '../../protocol/messages.ts';
import type { Scheduler } from './scheduler.ts';

/**
 * Replays a schedule: delivers exactly these choices, in order (a counterexample, a steered run). Running
 * past its end is an error.
 */
export function scriptedScheduler(choices: readonly number[]): Scheduler {
  let at = 0;
  return {
    descriptor: { kind: 'explore' },
    choose(enabled: readonly Message[]): number {
      const c = choices[at++];
      if (c === undefined || c >= enabled.length) throw new Error(`model bug: the explored schedule has no choice ${at - 1} among ${enabled.length} deliverable message(s)`);
      return c;
    },
  };
}
