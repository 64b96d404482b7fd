/**
 * Reads and verifies a log in one pass. Each line is checked in this order, so the error names the most
 * specific cause at the first line affected:
 *
 *   0. text?       a regular file (never a FIFO or device), valid UTF-8              IO / BAD_JSON
 *   1. complete?   a last line without '\n' is torn (the writer died mid-line)       TORN_LINE
 *   2. JSON?       …and nested no deeper than MAX_LOG_DEPTH                          BAD_JSON / NOT_A_LOG
 *   3. chained?    hash over the raw text, before any field is trusted              HASH_MISMATCH
 *   4. valid?      zod schema of its record type                                    BAD_RECORD
 *   5. in order?   seq = previous + 1; nothing after the end record                 SEQ_GAP / TRAILING_DATA
 *   6. signed?     only when a key is given: the end record's HMAC                  SIGNATURE
 *
 * The whole file is held in memory (streaming is not needed at the sizes we write), but every step is
 * linear in the text: lines are cut with indexOf, never by rescanning from the start.
 */
import { isUtf8 } from 'node:buffer';
import type { z } from 'zod';
import { LogError } from './errors.ts';
import { chainHash, GENESIS, unsealLine } from './hashChain.ts';
import { NotRegularFileError, readRegularFile } from './regularFile.ts';
import { LogMac, unsignedEndBody, type SigningKey } from './signature.ts';
import { firstInvalidByte } from './utf8.ts';
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
  /** Check the end record's signature with this key; an unsigned log is then an error (SIGNATURE). */
  key?: SigningKey;
};

/** A torn last line: what a crash mid-write leaves. Everything before it is intact and usable. */
export type Tear = {
  /** 1-based number of the torn line. */
  line: number;
  /** What reached the file, without a '\n'. */
  text: string;
  /** What was being written: `event 84`, `the end record`, or `a line` when too little survived to tell. */
  cut: string;
  /** The last intact step: the log ends there. */
  lastStep: number;
};

/**
 * A log as read: header, events in step order, the end record (null if the run was cut off) and the number of
 * lines.
 */
export type ParsedLog = {
  header: HeaderRecord;
  events: EventRecord[];
  /** null when the run was stopped before it could write one (or its line is torn). */
  end: EndRecord | null;
  /** Complete lines read, header included. */
  lines: number;
  /** The torn last line, when `allowTorn` let it through: the log was opened with a tear. */
  torn: Tear | null;
  /** The end record's signature: who signed (key id) and whether this read checked it (a key was given). */
  signed: null | { keyId: string; checked: boolean };
};

/**
 * Deeper than any record tdxsim writes (6 levels: the header's scenario), shallow enough that every
 * recursive walk over a record (serialisation, validation, views) stays far from the stack limit.
 */
export const MAX_LOG_DEPTH = 64;

/** `file:LINE: torn last line: …` — the notice printed when a command carries on with the intact prefix. */
export function tearNotice(file: string, tear: Tear): string {
  return `${file}:${tear.line}: ${tearDetail(tear)}`;
}

/** The notice without its `file:LINE: ` prefix (for a LogError, which adds it). */
export function tearDetail(tear: Tear): string {
  return `torn last line: the writer stopped inside ${tear.cut} (no trailing newline); the log ends at step ${tear.lastStep}`;
}

/** Names the record a torn line was, from the prefix every record starts with (the writer's key order). */
function tornRecord(text: string): string {
  const event = /^\{"type":"event","seq":(\d+),/.exec(text);
  if (event) return `event ${event[1]}`;
  if (text.startsWith('{"type":"event"')) return 'an event';
  if (text.startsWith('{"type":"end"')) return 'the end record';
  return 'a line';
}

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
  let bytes: Buffer;
  try {
    bytes = readRegularFile(path);
  } catch (err) {
    const detail = err instanceof NotRegularFileError ? `${err.what} is not a regular file` : (err as Error).message;
    throw new LogError('IO', path, 0, `cannot read log: ${detail}`, null, { cause: err });
  }
  return parseLogText(decodeLog(bytes, path), path, opts);
}

/**
 * Strict UTF-8, except in a torn last line: a crash may cut a multi-byte character in two, and that line
 * is only reported, never trusted. Elsewhere an invalid byte is named at its line (without this, it would
 * become U+FFFD and surface as a puzzling hash mismatch).
 */
function decodeLog(bytes: Buffer, path: string): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  const bad = firstInvalidByte(bytes);
  if (bad >= bytes.lastIndexOf(0x0a) + 1) return bytes.toString('utf8'); // only the torn tail
  let line = 1;
  let lineStart = 0;
  for (let nl = bytes.indexOf(0x0a); nl !== -1 && nl < bad; nl = bytes.indexOf(0x0a, nl + 1)) {
    line++;
    lineStart = nl + 1;
  }
  throw new LogError('BAD_JSON', path, line, `invalid UTF-8 (byte 0x${bytes[bad]!.toString(16).padStart(2, '0')} at byte ${bad - lineStart + 1} of the line): tdxsim writes UTF-8`);
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
  const mac = opts.key === undefined ? null : new LogMac(opts.key);

  for (const { text: raw, line, complete } of splitLines(text)) {
    if (end !== null) fail('TRAILING_DATA', line, `data after the end record (line ${lines}); a finished log has nothing after it`);
    if (!complete) {
      if (header === null) fail('TORN_LINE', line, 'torn header: the file ends before the first line was complete');
      const torn: Tear = { line, text: raw, cut: tornRecord(raw), lastStep: events.length };
      if (!opts.allowTorn) fail('TORN_LINE', line, `${tearDetail(torn)} (the ${lines} lines before it are intact)`);
      if (mac !== null) fail('SIGNATURE', line, `the log is torn, so its signature (in the end record) cannot be checked`, 'signature');
      return { header, events, end, lines, torn, signed: null };
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
    const deep = tooDeep(value, 1);
    if (deep !== null) {
      // The record's own field is enough to find it; the full path would be dozens of indices long.
      const field = typeof deep[0] === 'string' ? deep[0] : null;
      fail('BAD_JSON', line, `${field ?? 'record'}: nested more than ${MAX_LOG_DEPTH} levels deep (tdxsim writes no record that deep)`, field);
    }
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

    // 6. signature
    if (mac !== null) {
      if (record.type !== 'end') mac.line(raw);
      else checkSignature(mac, record, sealed.body, line, fail);
    }
  }
  if (header === null) return fail('EMPTY', 0, 'no header'); // unreachable: line 1 is a header or threw
  if (mac !== null && end === null) fail('SIGNATURE', lines, 'log is not signed: it has no end record, which is where a signature goes', 'signature');
  const signed = end?.signature === undefined ? null : { keyId: end.signature.keyId, checked: mac !== null };
  return { header, events, end, lines, torn: null, signed };
}

function checkSignature(mac: LogMac, end: EndRecord, body: string, line: number, fail: Fail): void {
  const claimed = end.signature;
  if (claimed === undefined) fail('SIGNATURE', line, 'log is not signed (its end record has no signature): verify it without --key', 'signature');
  const unsigned = unsignedEndBody(body);
  if (unsigned === null) fail('SIGNATURE', line, 'the signature must be the end record\'s last field before "hash", as the writer puts it', 'signature');
  if (claimed.keyId !== mac.keyId) {
    fail('SIGNATURE', line, `signed with key ${claimed.keyId}, but the key given is ${mac.keyId}`, 'signature.keyId');
  }
  if (!mac.matches(unsigned, claimed)) {
    fail('SIGNATURE', line, `signature mismatch: the log was changed after key ${claimed.keyId} signed it (its hash chain was recomputed without the key)`, 'signature.mac');
  }
}

/**
 * The key path of the first container nested deeper than MAX_LOG_DEPTH, or null. Recursion is bounded by
 * MAX_LOG_DEPTH, whatever the input: JSON.parse builds a 100,000-deep array without trouble, but the first
 * recursive walk over it would overflow the stack.
 */
function tooDeep(value: unknown, depth: number): (string | number)[] | null {
  if (typeof value !== 'object' || value === null) return null;
  if (depth > MAX_LOG_DEPTH) return [];
  // Runs on every record, so no per-node arrays: plain loops over the parsed value.
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const below = tooDeep(value[i], depth + 1);
      if (below !== null) return [i, ...below];
    }
    return null;
  }
  for (const k in value) {
    const below = tooDeep((value as Record<string, unknown>)[k], depth + 1);
    if (below !== null) return [k, ...below];
  }
  return null;
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
