/** Process exit codes of every subcommand. */
export const EXIT_OK = 0;
/** The model reached a failure: guest panic, #DF, KVM bug, violated invariant, step bound. */
export const EXIT_FAILURE = 1;
/** Bad input: a malformed scenario, a torn or tampered log, an unknown option. */
export const EXIT_BAD_INPUT = 2;
/**
 * `explore` found nothing but did not cover everything: a bound (states, depth, time) stopped it, or it
 * sampled walks, which never are exhaustive. Not 0, so a script never reads a partial search as a proof.
 */
export const EXIT_INCOMPLETE = 3;
/** Stopped by Ctrl-C (SIGINT) after printing what it had: 128 + 2, as shells report it. */
export const EXIT_INTERRUPTED = 130;
