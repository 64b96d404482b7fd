/**
 * Verifying a lasso outcome (a non-progress cycle the explorer found; README, "The log"): the world after
 * the last event equals the world after event `loopStart` (the initial world for 0).
 *
 * PLACEHOLDER: the explorer's lasso search lands with its own verification here; until then a lasso log is
 * refused by `replay --verify` rather than passed unchecked.
 */
import { LogError } from '../log/errors.ts';
import type { ParsedLog } from '../log/reader.ts';
import type { Lasso } from '../log/schema.ts';
import type { Model, World } from '../runtime/world.ts';

export interface LassoCheck {
  model: Model;
  log: ParsedLog;
  file: string;
  lasso: Lasso;
  /** The world before the first event. */
  initial: World;
  /** The world after the last event, re-derived (every event's `state` hash was checked on the way). */
  last: World;
}

/** Throws a LogError naming the end record's line and the `outcome.lasso` field when the loop does not close. */
export function verifyLasso(c: LassoCheck): void {
  throw new LogError('BAD_RECORD', c.file, c.log.lines, 'outcome.lasso: this build of tdxsim cannot verify a non-progress cycle yet', 'outcome.lasso');
}
