/** Process exit codes of every subcommand. */
export const EXIT_OK = 0;
/** The model reached a failure: guest panic, #DF, KVM bug, violated invariant, step bound. */
export const EXIT_FAILURE = 1;
/** Bad input: a malformed scenario, a torn or tampered log, an unknown option. */
export const EXIT_BAD_INPUT = 2;
