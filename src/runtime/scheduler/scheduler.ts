/**
 * A scheduler picks which enabled message is delivered next: the model's only source of nondeterminism.
 * Its descriptor goes into the log header, so a run can be reproduced from the header alone.
 */
import type { Message } from '../../protocol/messages.ts';

/**
 * How a log's header records its scheduler: `fifo`, `random` with its seed, or `explore` (the log's own
 * choices are the schedule).
 */
export type SchedulerDescriptor = { kind: 'fifo' } | { kind: 'random'; seed: number } | { kind: 'explore' };

/**
 * Picks which deliverable message goes next: the model's only source of nondeterminism. Its descriptor goes
 * into a log's header.
 */
export interface Scheduler {
  readonly descriptor: SchedulerDescriptor;
  /** Index into `enabled` (never empty). */
  choose(enabled: readonly Message[]): number;
}
