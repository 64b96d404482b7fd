/**
 * The one error type of the log layer. Every failure names the file and the 1-based line it was found on
 * (0 when the file as a whole is at fault), so a message can be pasted into an editor's "go to line".
 */

export type LogErrorCode =
  /** The first line is not a tdxsim log header (wrong file, or not JSON at all). */
  | 'NOT_A_LOG'
  /** A tdxsim log of another format version (version 1 logs predate the compact encoding). */
  | 'UNSUPPORTED_VERSION'
  /** A line is not valid JSON. */
  | 'BAD_JSON'
  /** The last line has no trailing newline: the writer was interrupted mid-line. */
  | 'TORN_LINE'
  /** A line is JSON but not a valid record; `field` names the offending field. */
  | 'BAD_RECORD'
  /** A line's hash does not follow from the previous line's: edited, removed or reordered lines. */
  | 'HASH_MISMATCH'
  /** An event's seq is not the previous seq + 1 (or the end record's step count disagrees). */
  | 'SEQ_GAP'
  /** Something follows the end record (or the writer was asked to append after it). */
  | 'TRAILING_DATA'
  /** The file is empty. */
  | 'EMPTY'
  /** The file could not be read or written. */
  | 'IO'
  /** Re-executing the header's scenario does not reproduce this line (the model or the log changed). */
  | 'REPLAY_DIVERGED'
  /** A signed log's signature does not match, or a key was given for an unsigned log, or none for a signed one. */
  | 'SIGNATURE';

/**
 * A log that cannot be trusted or used: unreadable, not JSON, a record of the wrong shape, a broken hash
 * chain, a torn last line, or a replay that diverges. The message names file and line.
 */
export class LogError extends Error {
  override readonly name = 'LogError';
  readonly code: LogErrorCode;
  readonly file: string;
  /** 1-based line number; 0 when the error concerns the whole file. */
  readonly line: number;
  /** Dotted path of the record field at fault (`'seq'`, `'outcome.status'`), or null. */
  readonly field: string | null;
  /** The message without the `file:line: ` prefix. */
  readonly detail: string;

  constructor(
    code: LogErrorCode,
    file: string,
    line: number,
    detail: string,
    field: string | null = null,
    options?: { cause?: unknown },
  ) {
    // `file:line:` first, like a compiler diagnostic, so editors and terminals can jump to it.
    super(`${file}:${line}: ${detail}`, options);
    this.code = code;
    this.file = file;
    this.line = line;
    this.field = field;
    this.detail = detail;
  }
}
