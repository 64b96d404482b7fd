/**
 * The library of named invariants and monitors a scenario can declare (`invariants:`) or a user can pick
 * with `tdxsim explore --invariant NAME`. Each lives in its own file; this is the list.
 */
import { fixed, type Invariant, type InvariantSpec } from './invariant.ts';
import { noFailure } from './noFailure.ts';
import { noDeadlock } from './noDeadlock.ts';
import { mirrorSeptAgree } from './mirrorSeptAgree.ts';
import { noPrivateDataToHost } from './noPrivateDataToHost.ts';
import { septParentFirst } from './septParentFirst.ts';
import { removeAfterTrack } from './removeAfterTrack.ts';
import { eptViolationProgress, eptViolationProgressSpec } from './eptViolationProgress.ts';
import { kickCompletes, kickCompletesSpec } from './kickCompletes.ts';
import { sharedSpteSuppressVe } from './sharedSpteSuppressVe.ts';
import { noSpuriousMemoryFault } from './noSpuriousMemoryFault.ts';
import { nonProgress } from './nonProgress.ts';
import { noStaleTranslation } from './noStaleTranslation.ts';
import { noVeInUnsafeContext } from './noVeInUnsafeContext.ts';
import { guestPteMatchesAttribute } from './guestPteMatchesAttribute.ts';
import { mmioWithinPage } from './mmioWithinPage.ts';

import { noLostWakeup } from './noLostWakeup.ts';
import { noInterruptLeftPending } from './noInterruptLeftPending.ts';
import { interruptLatency, interruptLatencySpec } from './interruptLatency.ts';

export type { Invariant, InvariantSpec } from './invariant.ts';
export { noFailure, noDeadlock, mirrorSeptAgree, noPrivateDataToHost, septParentFirst, removeAfterTrack, eptViolationProgress, kickCompletes, noStaleTranslation, sharedSpteSuppressVe, noSpuriousMemoryFault, noLostWakeup, noInterruptLeftPending, interruptLatency, noVeInUnsafeContext, guestPteMatchesAttribute, mmioWithinPage, nonProgress };
export { NON_PROGRESS } from './nonProgress.ts';

/**
 * The library of invariants and bounded monitors (`tdxsim invariants`), in the order they are listed and
 * checked.
 */
export const INVARIANTS: readonly InvariantSpec[] = [
  fixed(noFailure),
  fixed(noDeadlock),
  fixed(mirrorSeptAgree),
  fixed(septParentFirst),
  fixed(removeAfterTrack),
  fixed(noPrivateDataToHost),
  fixed(noStaleTranslation),
  eptViolationProgressSpec,
  kickCompletesSpec,
  fixed(sharedSpteSuppressVe),
  fixed(noSpuriousMemoryFault),
  fixed(noLostWakeup),
  fixed(noInterruptLeftPending),
  interruptLatencySpec,
  fixed(noVeInUnsafeContext),
  fixed(guestPteMatchesAttribute),
  fixed(mmioWithinPage),
  // Liveness last: it is checked on the state graph once the search is done.
  fixed(nonProgress),
];

/** The library entry named `name`, or undefined. */
export function invariantNamed(name: string): InvariantSpec | undefined {
  return INVARIANTS.find((i) => i.name === name);
}

/** The invariants checked when neither the scenario nor the command line names any. */
export const defaultInvariants = (): Invariant[] => INVARIANTS.filter((s) => s.byDefault).map((s) => s.create());

/** A scenario's `invariants:` section (names checked by the schema) as invariants; absent → the defaults. */
export function invariantsOf(entries: readonly (string | { name: string; bound: number })[] | undefined): Invariant[] {
  if (entries === undefined) return defaultInvariants();
  return entries.map((e) => (typeof e === 'string' ? invariantNamed(e)!.create() : invariantNamed(e.name)!.create(e.bound)));
}
