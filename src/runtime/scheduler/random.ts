/**
 * Seeded uniform choice among enabled messages. pure-rand's xoroshiro128+ gives the same sequence for the
 * same seed on every platform, so `--seed N` reproduces a run; the seed is recorded in the log header.
 */
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { Message } from '../../protocol/messages.ts';
import type { Scheduler } from './scheduler.ts';

/**
 * Picks among deliverable messages with a seeded PRNG (pure-rand's xoroshiro128+): the same seed gives the
 * same run on every platform.
 */
export function randomScheduler(seed: number): Scheduler {
  const rng = xoroshiro128plus(seed);
  return {
    descriptor: { kind: 'random', seed },
    choose(enabled: readonly Message[]): number {
      return enabled.length === 1 ? 0 : uniformInt(rng, 0, enabled.length - 1);
    },
  };
}
