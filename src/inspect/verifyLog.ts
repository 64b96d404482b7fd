/**
 * The check `tdxsim replay --verify` makes (src/replay/replay.ts: every delivery and state hash re-derived,
 * then the end record's outcome), worded for the inspector. Shared by the worker thread (verifyWorker.ts)
 * and the in-thread fallback (verify.ts); pure, so both say exactly the same.
 */
import { LogError } from '../log/errors.ts';
import type { ParsedLog } from '../log/reader.ts';
import { replayLog } from '../replay/replay.ts';
import { verifyLogFile } from '../replay/verifyStream.ts';
import type { VerifyResult } from './api.ts';

const plural = (n: number) => `${n} step${n === 1 ? '' : 's'}`;

export function verifyLog(log: ParsedLog, file: string): VerifyResult {
  try {
    if (log.end === null) {
      // Replay checks every delivery and state hash even without --verify; only the outcome is missing.
      replayLog(log, file);
      const why = log.torn ? `the log is torn at line ${log.torn.line}` : 'the log has no end record';
      return { status: 'partial', steps: log.events.length, text: `hashes verified for ${plural(log.events.length)}; the outcome cannot be: ${why}` };
    }
    replayLog(log, file, { verify: true });
    return { status: 'verified', steps: log.events.length, text: `verified: ${plural(log.events.length)}, hashes and outcome re-derived` };
  } catch (e) {
    if (e instanceof LogError) return { status: 'failed', text: `not verified: ${e.message}` };
    // A model bug while re-executing is as much a failure to verify as a diverging hash.
    return { status: 'failed', text: `not verified: ${file}: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/**
 * The same check of a log read from its file as a stream (a paged log, too long to hold): one world and
 * one block in memory, whatever its length. Worded exactly as `verifyLog`.
 */
export function verifyLogStreaming(file: string): VerifyResult {
  try {
    const r = verifyLogFile(file, { allowTorn: true });
    const steps = r.log.steps;
    if (r.log.end === null || r.log.torn !== null) {
      const why = r.log.torn ? `the log is torn at line ${r.log.torn.line}` : 'the log has no end record';
      return { status: 'partial', steps, text: `hashes verified for ${plural(steps)}; the outcome cannot be: ${why}` };
    }
    return { status: 'verified', steps, text: `verified: ${plural(steps)}, hashes and outcome re-derived` };
  } catch (e) {
    if (e instanceof LogError) return { status: 'failed', text: `not verified: ${e.message}` };
    return { status: 'failed', text: `not verified: ${file}: ${e instanceof Error ? e.message : String(e)}` };
  }
}
