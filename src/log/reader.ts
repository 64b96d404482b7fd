/**
 * Reads and verifies a log in one pass, as a stream: lines are read in chunks (src/log/lineSource.ts), so
 * memory is bounded by the longest line and one block's decoding tables, whatever the log's length. Each
 * line is checked in this order, so the error names the most specific cause at the first line affected:
 *
 *   0. text?       a regular file (never a FIFO or device), valid UTF-8              IO / BAD_JSON
 *   1. complete?   a last line without '\n' is torn (the writer died mid-line)       TORN_LINE
 *   2. JSON?       …and nested no deeper than MAX_LOG_DEPTH; a header of this version BAD_JSON / NOT_A_LOG /
 *                                                                                     UNSUPPORTED_VERSION
 *   3. chained?    hash over the raw text, before any field is trusted              HASH_MISMATCH
 *   4. valid?      zod schema of its record type, then the event encoding           BAD_RECORD
 *   5. in order?   seq = previous + 1; nothing after the end record                 SEQ_GAP / TRAILING_DATA
 *   6. signed?     only when a key is given: the end record's HMAC                  SIGNATURE
 *
 * `scanLog` yields the records one by one; `readLog` collects them (a log that fits in memory: the
 * inspector, exports, tests). A gzip-compressed log reads the same, transparently.
 */
import { isUtf8 } from 'node:buffer';
import type { z } from 'zod';
import { LogError } from './errors.ts';
import { EventDecoder } from './eventCodec.ts';
import { chainHash, GENESIS, unsealLine } from './hashChain.ts';
import { openLogLines, textLines, type RawLine, type ReadPosition } from './lineSource.ts';
import { LogMac, unsignedEndBody, type SigningKey } from './signature.ts';
import { firstInvalidByte } from './utf8.ts';
import {
  EncodedEventSchema,
  EndRecordSchema,
  firstIssue,
  HeaderRecordSchema,
  HASH_PATTERN,
  LOG_FORMAT,
  LOG_VERSION,
  type EncodedEvent,
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
  const event = /^\{"e":(\d+),/.exec(text);
  if (event) return `event ${event[1]}`;
  if (text.startsWith('{"e":')) return 'an event';
  if (text.startsWith('{"type":"end"')) return 'the end record';
  return 'a line';
}

/** One record as a scan yields it: where it is (line, byte offset of the line in the text) and what it says. */
export type LogItem =
  | { type: 'header'; record: HeaderRecord; line: number; offset: number }
  | { type: 'event'; record: EventRecord; line: number; offset: number }
  | { type: 'end'; record: EndRecord; line: number; offset: number };

/**
 * Where a scan starts when it does not start at the header: the first event line of a block (seq
 * `lastSeq + 1`, a multiple of the header's block), with the hash of the line before it.
 */
export interface ScanStart extends ReadPosition {
  header: HeaderRecord;
  prevHash: string;
  lastSeq: number;
}

/**
 * A log read as a stream of checked records. Iterate it once; afterwards `header`, `end`, `lines`,
 * `torn` and `signed` describe what was read.
 */
export class LogScan implements Iterable<LogItem> {
  header: HeaderRecord | null = null;
  end: EndRecord | null = null;
  /** Complete lines read, header included (the line number of the last one). */
  lines = 0;
  /** The torn last line, when `allowTorn` let it through. */
  torn: Tear | null = null;
  signed: null | { keyId: string; checked: boolean } = null;
  /** seq of the last event read. */
  lastSeq = 0;
  /** Hash of the last complete line read. */
  lastHash = GENESIS;
  /** Byte offset just past the last complete line read. */
  endOffset = 0;
  readonly #lines: Iterable<RawLine>;
  readonly #file: string;
  readonly #opts: ReadOptions;
  readonly #start: ScanStart | null;

  constructor(lines: Iterable<RawLine>, file: string, opts: ReadOptions = {}, start: ScanStart | null = null) {
    this.#lines = lines;
    this.#file = file;
    this.#opts = opts;
    this.#start = start;
  }

  *[Symbol.iterator](): Generator<LogItem, void, undefined> {
    const file = this.#file;
    const opts = this.#opts;
    // Annotated (not inferred) so that TypeScript treats calls as never returning and narrows after them.
    const fail: Fail = (code, line, detail, field = null) => {
      throw new LogError(code, file, line, detail, field);
    };
    const start = this.#start;
    let header: HeaderRecord | null = start?.header ?? null;
    let decoder = header === null ? null : new EventDecoder(header.block);
    let prevHash = start?.prevHash ?? GENESIS;
    let lastSeq = start?.lastSeq ?? 0;
    let end: EndRecord | null = null;
    const mac = opts.key === undefined || start !== null ? null : new LogMac(opts.key);
    let sawAny = false;

    for (const { bytes, line, offset, complete } of this.#lines) {
      sawAny = true;
      if (end !== null) fail('TRAILING_DATA', line, `data after the end record (line ${this.lines}); a finished log has nothing after it`);
      if (!complete) {
        if (header === null) fail('TORN_LINE', line, 'torn header: the file ends before the first line was complete');
        const raw = bytes.toString('utf8');
        const torn: Tear = { line, text: raw, cut: tornRecord(raw), lastStep: lastSeq };
        if (!opts.allowTorn) fail('TORN_LINE', line, `${tearDetail(torn)} (the ${this.lines} lines before it are intact)`);
        if (mac !== null) fail('SIGNATURE', line, `the log is torn, so its signature (in the end record) cannot be checked`, 'signature');
        this.torn = torn;
        return;
      }
      // 0. strict UTF-8 (a torn tail may cut a character in two, and is only reported, never trusted)
      if (!isUtf8(bytes)) {
        const bad = firstInvalidByte(bytes);
        fail('BAD_JSON', line, `invalid UTF-8 (byte 0x${bytes[bad]!.toString(16).padStart(2, '0')} at byte ${bad + 1} of the line): tdxsim writes UTF-8`);
      }
      const raw = bytes.toString('utf8');

      // 2. JSON
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (err) {
        // A first line that is not even JSON usually means the wrong file, not a damaged log.
        if (line === 1 && !raw.includes(`"${LOG_FORMAT}"`)) fail('NOT_A_LOG', line, `not a ${LOG_FORMAT} file: the first line is not JSON`);
        fail('BAD_JSON', line, raw === '' ? 'empty line' : `not valid JSON (${(err as Error).message})`);
      }
      if (header === null) {
        if (!looksLikeHeader(value)) fail('NOT_A_LOG', line, `not a ${LOG_FORMAT} file: the first line is not a ${LOG_FORMAT} header`);
        const v = (value as { version?: unknown }).version;
        if (v !== LOG_VERSION) {
          fail('UNSUPPORTED_VERSION', line, `${LOG_FORMAT} version ${JSON.stringify(v)}: this tdxsim reads version ${LOG_VERSION} only (version 2 changed the state hash and the event encoding); replay it with the tdxsim that wrote it, or run its scenario again`, 'version');
        }
      }
      const deep = tooDeep(value, 1);
      if (deep !== null) {
        // The record's own field is enough to find it; the full path would be dozens of indices long.
        const field = typeof deep[0] === 'string' ? deep[0] : null;
        fail('BAD_JSON', line, `${field ?? 'record'}: nested more than ${MAX_LOG_DEPTH} levels deep (tdxsim writes no record that deep)`, field);
      }
      const kind = recordKind(value, header === null, line, fail);

      // 3. hash chain, on the raw text
      const sealed = unsealLine(raw);
      if (sealed === null) {
        validate(kind, value, line, fail); // a specific field error beats "not sealed"
        fail('HASH_MISMATCH', line, raw.endsWith('\r')
          ? 'line ends with CR: the file was converted to CRLF line endings, which changes every hash'
          : 'line is not as the writer sealed it: "h" must be the last field, with no spaces (was the line reformatted?)', 'h');
      }
      const expected = chainHash(prevHash, sealed.body);
      if (expected !== sealed.hash) {
        const cause = line === 1 ? 'the header was edited' : 'line was edited, or a line before it was removed or reordered';
        fail('HASH_MISMATCH', line, `hash mismatch: ${cause} (expected ${expected}, found ${sealed.hash})`);
      }
      prevHash = expected;

      // 4. schema, 5. order
      validate(kind, value, line, fail);
      this.lines = line;
      this.lastHash = expected;
      this.endOffset = offset + bytes.length + 1;
      if (kind === 'header') {
        const { h, ...rest } = value as z.infer<typeof HeaderRecordSchema>;
        header = { ...rest, hash: h };
        decoder = new EventDecoder(header.block);
        mac?.line(raw);
        yield { type: 'header', record: header, line, offset };
      } else if (kind === 'event') {
        const encoded = value as EncodedEvent;
        if (encoded.e !== lastSeq + 1) {
          fail('SEQ_GAP', line, `seq gap: expected event ${lastSeq + 1}, found ${encoded.e} (events were dropped or duplicated before the log was sealed)`, 'e');
        }
        const record = decoder!.decode(encoded, expected, (detail, field) => fail('BAD_RECORD', line, `bad event record: ${field}: ${detail}`, field));
        lastSeq = encoded.e;
        this.lastSeq = lastSeq;
        mac?.line(raw);
        yield { type: 'event', record, line, offset };
      } else {
        const { h, ...rest } = value as z.infer<typeof EndRecordSchema>;
        end = { ...rest, hash: h };
        if (end.steps !== lastSeq) fail('SEQ_GAP', line, `end record counts ${end.steps} steps but the log holds ${lastSeq} events`, 'steps');
        // 6. signature
        if (mac !== null) checkSignature(mac, end, sealed.body, line, fail);
        this.end = end;
        yield { type: 'end', record: end, line, offset };
      }
      this.header = header;
    }
    if (!sawAny && start === null) fail('EMPTY', 0, 'file is empty: not even the header was written');
    if (mac !== null && end === null) fail('SIGNATURE', this.lines, 'log is not signed: it has no end record, which is where a signature goes', 'signature');
    this.signed = end?.signature === undefined ? null : { keyId: end.signature.keyId, checked: mac !== null };
  }
}

/**
 * Scans the log at `path` (plain or gzip), from its header or from `start`. The file stays open until the
 * scan is iterated to its end or `close` is called.
 */
export function scanLog(path: string, opts: ReadOptions = {}, start: ScanStart | null = null): { scan: LogScan; close: () => void; compressed: boolean } {
  const opened = openLogLines(path, start ?? undefined);
  const lines = opened.lines();
  const closing: Iterable<RawLine> = {
    *[Symbol.iterator]() {
      try {
        yield* lines;
      } finally {
        opened.close();
      }
    },
  };
  return { scan: new LogScan(closing, path, opts, start), close: () => opened.close(), compressed: opened.compressed };
}

function collect(scan: LogScan): ParsedLog {
  const events: EventRecord[] = [];
  for (const item of scan) if (item.type === 'event') events.push(item.record);
  if (scan.header === null) throw new LogError('EMPTY', '', 0, 'no header'); // unreachable: line 1 is a header or threw
  return { header: scan.header, events, end: scan.end, lines: scan.lines, torn: scan.torn, signed: scan.signed };
}

/**
 * Reads a log file (plain or gzip) whole, checking every record's schema and the hash chain line by line.
 * For a log too large to hold, iterate `scanLog` instead.
 * @throws LogError naming the file, line and field of the first problem (torn, edited, reordered lines)
 */
export function readLog(path: string, opts: ReadOptions = {}): ParsedLog {
  return collect(scanLog(path, opts).scan);
}

/** `file` only labels error messages. */
export function parseLogText(text: string | Buffer, file: string, opts: ReadOptions = {}): ParsedLog {
  if (text.length === 0) throw new LogError('EMPTY', file, 0, 'file is empty: not even the header was written');
  return collect(new LogScan(textLines(text, file), file, opts));
}

function checkSignature(mac: LogMac, end: EndRecord, body: string, line: number, fail: Fail): void {
  const claimed = end.signature;
  if (claimed === undefined) fail('SIGNATURE', line, 'log is not signed (its end record has no signature): verify it without --key', 'signature');
  const unsigned = unsignedEndBody(body);
  if (unsigned === null) fail('SIGNATURE', line, 'the signature must be the end record\'s last field before "h", as the writer puts it', 'signature');
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

type RecordKind = 'header' | 'event' | 'end';

const SCHEMAS: Record<RecordKind, z.ZodType> = { header: HeaderRecordSchema, event: EncodedEventSchema, end: EndRecordSchema };

const EVENT_KEYS = new Set(['e', 'm', 'p', 'q', 'c', 'x', 's', 'h']);
const isInt = (v: unknown, min: number) => typeof v === 'number' && Number.isInteger(v) && v >= min;
const isName = (v: unknown) => typeof v === 'string' && v.length > 0;
const isJsonObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);

/** EncodedEventSchema's rules by hand, for the common case of a valid line: the schema then only names what is wrong. */
function plainEvent(v: Record<string, unknown>): boolean {
  for (const k in v) if (!EVENT_KEYS.has(k)) return false;
  const m = v['m'];
  const mOk = isInt(m, 0) || (Array.isArray(m) && m.length === 4 && (isInt(m[0], 0) || isName(m[0])) && (isInt(m[1], 0) || isName(m[1])) && isName(m[2]) && isName(m[3]));
  return (
    isInt(v['e'], 1) &&
    mOk &&
    (v['p'] === undefined || isJsonObject(v['p'])) &&
    (v['q'] === undefined || (isJsonObject(v['q']) && Object.keys(v['q'] as object).length > 0)) &&
    (v['c'] === undefined || v['c'] === null || isInt(v['c'], 2)) &&
    (v['x'] === undefined || isInt(v['x'], 1)) &&
    typeof v['s'] === 'string' &&
    HASH_PATTERN.test(v['s']) &&
    typeof v['h'] === 'string' &&
    HASH_PATTERN.test(v['h'])
  );
}

function validate(kind: RecordKind, value: unknown, line: number, fail: Fail): void {
  if (kind === 'event' && plainEvent(value as Record<string, unknown>)) return;
  const result = SCHEMAS[kind].safeParse(value);
  if (result.success) return;
  const { field, message } = firstIssue(result.error);
  fail('BAD_RECORD', line, `bad ${kind} record: ${field ?? 'record'}: ${message}`, field);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function looksLikeHeader(value: unknown): boolean {
  return isObject(value) && value.type === 'header' && value.format === LOG_FORMAT;
}

function recordKind(value: unknown, first: boolean, line: number, fail: Fail): RecordKind {
  if (first) return 'header';
  if (!isObject(value)) return fail('BAD_RECORD', line, 'record is not a JSON object');
  // Dispatch by hand rather than with a zod union: cheaper, and the error can say what was expected.
  if ('e' in value) return 'event';
  switch (value.type) {
    case 'end':
      return 'end';
    case 'header':
      return fail('BAD_RECORD', line, 'a header may only appear on line 1', 'type');
    default:
      return fail('BAD_RECORD', line, `unknown record: an event has "e", the end record "type":"end" (found ${'type' in value ? `type ${JSON.stringify(value.type)}` : 'neither'})`, 'type' in value ? 'type' : null);
  }
}

/**
 * Checks only the hash chain over the complete lines of `text`, ignoring what the records say.
 * Returns the number of complete lines and the first line whose hash does not follow (null if none).
 */
export function verifyChainOnly(text: string): { lines: number; firstBadLine: number | null } {
  let prevHash = GENESIS;
  let lines = 0;
  for (const { bytes, line, complete } of textLines(text, '<text>')) {
    if (!complete) break;
    const raw = bytes.toString('utf8');
    const sealed = unsealLine(raw);
    if (sealed === null || chainHash(prevHash, sealed.body) !== sealed.hash) return { lines: line, firstBadLine: line };
    prevHash = sealed.hash;
    lines = line;
  }
  return { lines, firstBadLine: null };
}
