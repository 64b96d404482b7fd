/**
 * Reads and verifies a log in one pass. Each line is checked in this order, so the error names the most
 * specific cause at the first line affected:
 *
 *   1. complete?   a last line without '\n' is torn (the writer died mid-line)       TORN_LINE
 *   2. JSON?                                                                         BAD_JSON / NOT_A_LOG
 *   3. chained?    hash over the raw text, before any field is trusted              HASH_MISMATCH
 *   4. valid?      zod schema of its record type                                    BAD_RECORD
 *   5. in order?   seq = previous + 1; nothing after the end record                 SEQ_GAP / TRAILING_DATA
 *
 * The whole file is held in memory (streaming is not needed at the sizes we write), but every step is
 * linear in the text: lines are cut with indexOf, never by rescanning from the start.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { LogError } from './errors.ts';
import { chainHash, GENESIS, unsealLine } from './hashChain.ts';
import {
  EndRecordSchema,
  EventRecordSchema,
  firstIssue,
  HeaderRecordSchema,
  LOG_FORMAT,
  type EndRecord,
  type EventRecord,
  type HeaderRecord,
} from './schema.ts';

export type ReadOptions = {
  /**
   * Accept a torn last line (a crash mid-write): return every complete record before it and describe
   * the torn line in `torn`, instead of throwing TORN_LINE.
   * @default false
   */
  allowTorn?: boolean;
};

/**
 * A log as read: header, events in step order, the end record (null if the run was cut off) and the number of
 * lines.
 */
export type ParsedLog = {
  header: HeaderRecord;
  events: EventRecord[];
  /** null when the run was stopped before it could write one. */
  end: EndRecord | null;
  /** Complete lines read, header included. */
  lines: number;
  /** The torn last line, when `allowTorn` let it through. */
  torn: null | { line: number; text: string };
};

type Line = { text: string; line: number; complete: boolean };

/** Yields lines without their '\n'; a non-empty tail without one is yielded as incomplete. */
function* splitLines(text: string): Generator<Line> {
  let line = 0;
  for (let start = 0; start < text.length; ) {
    const nl = text.indexOf('\n', start);
    line++;
    if (nl === -1) {
      yield { text: text.slice(start), line, complete: false };
      return;
    }
    yield { text: text.slice(start, nl), line, complete: true };
    start = nl + 1;
  }
}

/**
 * Reads a log file, checking every record's schema and the hash chain line by line.
 * @throws LogError naming the file, line and field of the first problem (torn, edited, reordered lines)
 */
export function readLog(path: string, opts: ReadOptions = {}): ParsedLog {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new LogError('IO', path, 0, `cannot read log: ${(err as Error).message}`, null, { cause: err });
  }
  return parseLogText(text, path, opts);
}

/** `file` only labels error messages. */
export function parseLogText(text: string, file: string, opts: ReadOptions = {}): ParsedLog {
  if (text.length === 0) throw new LogError('EMPTY', file, 0, 'file is empty: not even the header was written');
  // Annotated (not inferred) so that TypeScript treats calls as never returning and narrows after them.
  const fail: Fail = (code, line, detail, field = null) => {
    throw new LogError(code, file, line, detail, field);
  };

  let header: HeaderRecord | null = null;
  const events: EventRecord[] = [];
  let end: EndRecord | null = null;
  let prevHash = GENESIS;
  let lines = 0;

  for (const { text: raw, line, complete } of splitLines(text)) {
    if (end !== null) fail('TRAILING_DATA', line, `data after the end record (line ${lines}); a finished log has nothing after it`);
    if (!complete) {
      if (header === null) fail('TORN_LINE', line, 'torn header: the file ends before the first line was complete');
      if (!opts.allowTorn) {
        fail('TORN_LINE', line, `torn last line (no trailing newline): the writer stopped mid-line; the ${lines} lines before it are intact`);
      }
      return { header, events, end, lines, torn: { line, text: raw } };
    }

    // 2. JSON
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      // A first line that is not even JSON usually means the wrong file, not a damaged log.
      if (line === 1 && !raw.includes(`"${LOG_FORMAT}"`)) fail('NOT_A_LOG', line, `not a ${LOG_FORMAT} file: the first line is not JSON`);
      fail('BAD_JSON', line, raw === '' ? 'empty line' : `not valid JSON (${(err as Error).message})`);
    }
    if (line === 1 && !looksLikeHeader(value)) fail('NOT_A_LOG', line, `not a ${LOG_FORMAT} file: the first line is not a ${LOG_FORMAT} header`);
    const schema = schemaFor(value, line, fail);

    // 3. hash chain, on the raw text
    const sealed = unsealLine(raw);
    if (sealed === null) {
      validate(schema, value, line, fail); // a specific field error beats "not sealed"
      fail('HASH_MISMATCH', line, raw.endsWith('\r')
        ? 'line ends with CR: the file was converted to CRLF line endings, which changes every hash'
        : 'line is not as the writer sealed it: "hash" must be the last field, with no spaces (was the line reformatted?)', 'hash');
    }
    const expected = chainHash(prevHash, sealed.body);
    if (expected !== sealed.hash) {
      const cause = line === 1 ? 'the header was edited' : 'line was edited, or a line before it was removed or reordered';
      fail('HASH_MISMATCH', line, `hash mismatch: ${cause} (expected ${expected}, found ${sealed.hash})`);
    }
    prevHash = expected;

    // 4. schema
    validate(schema, value, line, fail);
    const record = value as HeaderRecord | EventRecord | EndRecord;

    // 5. order
    const lastSeq = events.length;
    if (record.type === 'header') {
      header = record;
    } else if (record.type === 'event') {
      if (record.seq !== lastSeq + 1) {
        fail('SEQ_GAP', line, `seq gap: expected seq ${lastSeq + 1}, found ${record.seq} (events were dropped or duplicated before the log was sealed)`, 'seq');
      }
      events.push(record);
    } else {
      if (record.steps !== lastSeq) {
        fail('SEQ_GAP', line, `end record counts ${record.steps} steps but the log holds ${lastSeq} events`, 'steps');
      }
      end = record;
    }
    lines = line;
  }
  if (header === null) return fail('EMPTY', 0, 'no header'); // unreachable: line 1 is a header or threw
  return { header, events, end, lines, torn: null };
}

type Fail = (code: LogError['code'], line: number, detail: string, field?: string | null) => never;

function validate(schema: z.ZodType, value: unknown, line: number, fail: Fail): void {
  const result = schema.safeParse(value);
  if (result.success) return;
  const { field, message } = firstIssue(result.error);
  fail('BAD_RECORD', line, `bad ${(value as { type: string }).type} record: ${field ?? 'record'}: ${message}`, field);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function looksLikeHeader(value: unknown): boolean {
  return isObject(value) && value.type === 'header' && value.format === LOG_FORMAT;
}

function schemaFor(
  value: unknown,
  line: number,
  fail: Fail,
): z.ZodType {
  if (line === 1) return HeaderRecordSchema;
  if (!isObject(value)) return fail('BAD_RECORD', line, 'record is not a JSON object');
  // Dispatch by hand rather than with a zod union: cheaper, and the error can say what was expected.
  switch (value.type) {
    case 'event':
      return EventRecordSchema;
    case 'end':
      return EndRecordSchema;
    case 'header':
      return fail('BAD_RECORD', line, 'a header may only appear on line 1', 'type');
    default:
      return fail('BAD_RECORD', line, `unknown record type ${JSON.stringify(value.type)} (expected "event" or "end")`, 'type');
  }
}

/**
 * Checks only the hash chain over the complete lines of `text`, ignoring what the records say.
 * Returns the number of complete lines and the first line whose hash does not follow (null if none).
 */
export function verifyChainOnly(text: string): { lines: number; firstBadLine: number | null } {
  let prevHash = GENESIS;
  let lines = 0;
  for (const { text: raw, line, complete } of splitLines(text)) {
    if (!complete) break;
    const sealed = unsealLine(raw);
    if (sealed === null || chainHash(prevHash, sealed.body) !== sealed.hash) return { lines: line, firstBadLine: line };
    prevHash = sealed.hash;
    lines = line;
  }
  return { lines, firstBadLine: null };
}
