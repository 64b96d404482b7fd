/**
 * Subcommands that finish asynchronously (a server, an ELK layout). `main` returns synchronously, so such a
 * command reports its exit code through `process.exitCode` when it settles, with the same error mapping
 * as main.ts: bad input (a log, scenario or option) is 2, a model failure 1.
 */
import { LogError } from '../log/errors.ts';
import { ModelBug } from '../runtime/errors.ts';
import { ScenarioError } from '../scenario/load.ts';
import { EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK } from './exitCodes.ts';

export function exitCodeForError(e: unknown): number {
  if (e instanceof ScenarioError || e instanceof LogError || e instanceof RangeError) {
    process.stderr.write(`tdxsim: ${e.message}\n`);
    return EXIT_BAD_INPUT;
  }
  if (e instanceof ModelBug) {
    process.stderr.write(`tdxsim: model bug: ${e.message}\n`);
    return EXIT_FAILURE;
  }
  // Operating-system errors (a port in use, a file that cannot be written) are the user's to fix.
  if (e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string') {
    process.stderr.write(`tdxsim: ${e.message}\n`);
    return EXIT_BAD_INPUT;
  }
  throw e;
}

/** Returns what `main` should return now; a promise's outcome lands in `process.exitCode` later. */
export function settleLater(result: number | Promise<number>): number {
  if (typeof result === 'number') return result;
  result.then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.exitCode = exitCodeForError(e);
    },
  );
  return EXIT_OK;
}
