/**
 * Append-only log writers. `LogWriter` writes a file (gzip-compressed when its name ends in `.gz`),
 * `MemoryLogWriter` an array of lines (tests, the explorer); both inherit the sealing, sequencing and
 * encoding rules from `SealingLogWriter`, so a log written to memory is byte-identical to the same log
 * written to disk.
 *
 * Inputs are validated against the same schemas the reader applies, so anything the writer accepts the
 * reader accepts too.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { Deflate, Z_FULL_FLUSH, Z_SYNC_FLUSH } from 'pako';
import type { z } from 'zod';
import { NotJsonError, stringifyCanonical } from './canonical.ts';
import { LogError } from './errors.ts';
import { EventEncoder } from './eventCodec.ts';
import { GENESIS, sealBody, sealRecord, unsealLine } from './hashChain.ts';
import { LogMac, type SigningKey } from './signature.ts';
import { IndexWriter, type LinePos } from './checkpointIndex.ts';
import { renameSync, rmSync, statSync } from 'node:fs';
import type { World } from '../runtime/world.ts';
import {
  DEFAULT_BLOCK,
  HASH_PATTERN,
  firstIssue,
  HeaderInputSchema,
  LOG_FORMAT,
  LOG_VERSION,
  OutcomeSchema,
  type EndInput,
  type EventInput,
  type EndRecord,
  type EventRecord,
  type HeaderInput,
  type HeaderRecord,
  type LogRecord,
} from './schema.ts';

type Sealed = { line: string; hash: string };

export interface WriterOptions {
  /** Sign the log: the end record gets an HMAC-SHA256 over every line (src/log/signature.ts). */
  signWith?: SigningKey;
  /** Events per block of the encoding (and between checkpoints). @default 1024 */
  block?: number;
  /**
   * Write the checkpoint index beside the log (`<log>.idx`, src/log/checkpointIndex.ts) as it goes: give
   * the run's initial world, and pass each event's world to `append`. File logs only.
   */
  index?: { initial: World };
}

export type { LinePos } from './checkpointIndex.ts';

/** `at` prefixes the field path when `input` is a part of the record (the end record's outcome). */
function check(schema: z.ZodType, input: unknown, what: string, file: string, line: number, at?: string): void {
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = firstIssue(result.error);
    const field = at === undefined ? issue.field : issue.field === null ? at : `${at}.${issue.field}`;
    throw new LogError('BAD_RECORD', file, line, `cannot write ${what}: ${field ?? 'record'}: ${issue.message}`, field);
  }
}

function seal(prevHash: string, record: object, file: string, line: number): Sealed {
  try {
    return sealRecord(prevHash, record);
  } catch (err) {
    if (!(err instanceof NotJsonError)) throw err;
    // An event's payload is on disk as p or q: name it as the caller knows it.
    const path = err.path.replace(/^[pq](?=$|[.[])/, 'payload');
    throw new LogError('BAD_RECORD', file, line, `cannot write ${err.reason} at ${path}`, path, {
      cause: err,
    });
  }
}

const EVENT_KEYS = new Set(['seq', 'from', 'to', 'kind', 'name', 'payload', 'cause', 'choice', 'state']);
const isInt = (v: unknown, min: number) => typeof v === 'number' && Number.isInteger(v) && v >= min;

/**
 * The event schema's rules (EventInputSchema), checked by hand: this runs once per step of every logged
 * run, where a schema library's generality costs more than the step's own hashing.
 */
function checkEvent(ev: EventInput, file: string, line: number): void {
  const bad = (field: string, message: string): never => {
    throw new LogError('BAD_RECORD', file, line, `cannot write event: ${field}: ${message}`, field);
  };
  if (typeof ev !== 'object' || ev === null) bad('record', 'expected an object');
  for (const k of Object.keys(ev)) if (!EVENT_KEYS.has(k)) bad(k, 'unrecognized key');
  if (!isInt(ev.seq, 1)) bad('seq', 'expected a positive integer');
  for (const k of ['from', 'to', 'kind', 'name'] as const) if (typeof ev[k] !== 'string' || ev[k].length === 0) bad(k, 'expected a non-empty string');
  const p = ev.payload as unknown;
  if (typeof p !== 'object' || p === null || Array.isArray(p) || (Object.getPrototypeOf(p) !== Object.prototype && Object.getPrototypeOf(p) !== null)) bad('payload', 'expected a JSON object');
  if (ev.cause !== null && !isInt(ev.cause, 1)) bad('cause', 'expected a positive integer or null');
  if (!isInt(ev.choice, 0)) bad('choice', 'expected a non-negative integer');
  if (typeof ev.state !== 'string' || !HASH_PATTERN.test(ev.state)) bad('state', 'expected 11 base64url characters');
}

/** Seals the header (line 1). Separate from the writers so a bad header fails before any file is touched. */
function sealHeader(header: HeaderInput, file: string, block: number): Sealed {
  check(HeaderInputSchema, header, 'header', file, 1);
  if (!Number.isInteger(block) || block < 1) throw new RangeError(`block ${block}: a block is a positive number of events`);
  // Rebuilt field by field so that key order on disk never depends on how the caller built its objects.
  const s = header.scheduler;
  const scheduler = s.kind === 'random' ? { kind: 'random', seed: s.seed } : { kind: s.kind };
  const record = {
    type: 'header',
    format: LOG_FORMAT,
    version: LOG_VERSION,
    model: header.model,
    scenario: header.scenario,
    scenarioFile: header.scenarioFile,
    scheduler,
    block,
  };
  return seal(GENESIS, record, file, 1);
}

/** The sealing, sequencing and lifecycle rules; subclasses only decide where a finished line goes. */
export abstract class SealingLogWriter {
  readonly file: string;
  #prevHash: string;
  #lastLine = '';
  #lastSeq = 0;
  #lines = 1; // the header, written by the subclass's `open`
  #state: 'open' | 'ended' | 'closed' | 'failed' = 'open';
  readonly #mac: LogMac | null;
  readonly #encoder: EventEncoder;
  readonly #headerLine: string;
  #lastRecord: null | { type: 'event'; event: EventInput; hash: string } | { type: 'end'; record: EndRecord } = null;
  /** Events per block. */
  readonly block: number;
  /** Bytes of text written so far (uncompressed). */
  #offset: number;

  /** `header` is the sealed first line, which the subclass has already written (`lastLine` stays '' until an event). */
  protected constructor(file: string, header: Sealed, opts: WriterOptions) {
    this.file = file;
    this.#prevHash = header.hash;
    this.#mac = opts.signWith === undefined ? null : new LogMac(opts.signWith);
    this.#mac?.line(header.line);
    this.block = opts.block ?? DEFAULT_BLOCK;
    this.#encoder = new EventEncoder(this.block);
    this.#offset = Buffer.byteLength(header.line) + 1;
    this.#headerLine = header.line;
  }

  /** Writes one complete line (given without its '\n'), or throws. */
  protected abstract emit(line: string): void;
  /**
   * Called before the last line of a block is written (seq + 1 a multiple of `block`): where a checkpoint
   * (the world after it) is read from, the line whose state it must match, then the next block.
   */
  protected blockStart(_at: LinePos, _seq: number): void {}
  /** Called after event `seq` is written, with the world after it when the caller gave one. */
  protected afterEvent(_seq: number, _world: World | undefined): void {}
  /** Called before the end record is written. */
  protected endStart(_at: LinePos): void {}

  /** The header as a reader returns it. */
  get header(): HeaderRecord {
    const { h, ...rest } = JSON.parse(this.#headerLine) as HeaderRecord & { h: string };
    return { ...rest, hash: h } as HeaderRecord;
  }

  /**
   * The last record written, as a reader returns it (an event decoded, its payload's bigints as hex
   * strings), or null before the first event: what a live view of the run shows.
   */
  get lastRecord(): EventRecord | EndRecord | null {
    const last = this.#lastRecord;
    if (last === null) return null;
    if (last.type === 'end') return last.record;
    const e = last.event;
    return { type: 'event', seq: e.seq, from: e.from, to: e.to, kind: e.kind, name: e.name, payload: JSON.parse(stringifyCanonical(e.payload)) as Record<string, unknown>, cause: e.cause, choice: e.choice, state: e.state, hash: last.hash };
  }

  /** Where the next line will start. */
  get next(): LinePos {
    return { line: this.#lines + 1, offset: this.#offset, prevHash: this.#prevHash };
  }
  /** Releases the sink; called once, by `close`. */
  protected abstract release(): void;

  /** Hash of the last line written: identifies the log prefix so far. */
  get lastHash(): string {
    return this.#prevHash;
  }
  /** The last line written, without its '\n' (what `--json` prints). */
  get lastLine(): string {
    return this.#lastLine;
  }
  /** Lines written, header included. */
  get lines(): number {
    return this.#lines;
  }
  /** seq of the last event written; 0 before the first. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /**
   * Appends one event line and returns its hash. `seq` must be exactly `lastSeq + 1`: the caller owns
   * numbering (it is the step number everywhere else), the writer only refuses gaps and repeats.
   */
  append(event: EventInput, world?: World): string {
    const line = this.#lines + 1;
    this.#assertOpen(line);
    checkEvent(event, this.file, line);
    if (event.seq !== this.#lastSeq + 1) {
      throw new LogError('SEQ_GAP', this.file, line, `cannot write event: expected seq ${this.#lastSeq + 1}, got ${event.seq}`, 'seq');
    }
    if (event.cause !== null && event.cause >= event.seq) {
      throw new LogError('BAD_RECORD', this.file, line, `cannot write event: cause: step ${event.cause} is not before step ${event.seq}`, 'cause');
    }
    let encoded: ReturnType<EventEncoder['encode']>;
    try {
      encoded = this.#encoder.encode(event);
    } catch (err) {
      if (!(err instanceof NotJsonError)) throw err;
      throw new LogError('BAD_RECORD', this.file, line, `cannot write ${err.reason} at ${err.path}`, err.path, { cause: err });
    }
    const sealed = sealBody(this.#prevHash, encoded.body);
    if ((event.seq + 1) % this.block === 0) this.blockStart(this.next, event.seq);
    this.#write(sealed);
    encoded.commit();
    this.#mac?.line(sealed.line);
    this.#lastSeq = event.seq;
    this.#lastRecord = { type: 'event', event, hash: sealed.hash };
    this.afterEvent(event.seq, world);
    return this.#prevHash;
  }

  /** Appends the end record (steps = number of events) and returns its hash; nothing may follow it. */
  end(outcome: EndInput): string {
    const line = this.#lines + 1;
    this.#assertOpen(line);
    check(OutcomeSchema, outcome, 'end record', this.file, line, 'outcome');
    const { status, reason, ...extra } = outcome;
    const unsigned = { type: 'end', steps: this.#lastSeq, outcome: { status, reason, ...extra } };
    // The signature covers the record as it reads without it, so it is computed first and then appended.
    const record = this.#mac === null ? unsigned : { ...unsigned, signature: this.#mac.sign(unsealLine(seal(this.#prevHash, unsigned, this.file, line).line)!.body) };
    const sealed = seal(this.#prevHash, record, this.file, line);
    this.endStart(this.next);
    this.#write(sealed);
    this.#lastRecord = { type: 'end', record: { ...(JSON.parse(stringifyCanonical(record)) as Omit<EndRecord, 'hash'>), hash: sealed.hash } };
    this.#state = 'ended';
    return this.#prevHash;
  }

  /** Idempotent. A log closed without `end()` is still valid: it records a run that was stopped. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.release();
  }

  #assertOpen(line: number): void {
    switch (this.#state) {
      case 'open':
        return;
      case 'ended':
        throw new LogError('TRAILING_DATA', this.file, line, 'cannot write after the end record');
      case 'closed':
        throw new LogError('IO', this.file, line, 'cannot write: the writer is closed');
      case 'failed':
        throw new LogError('IO', this.file, line, 'cannot write: an earlier write failed, so the log may end in a torn line');
    }
  }

  #write(sealed: Sealed): void {
    try {
      this.emit(sealed.line);
    } catch (err) {
      // Part of the line may be on disk; appending more would bury that torn line mid-file.
      this.#state = 'failed';
      throw new LogError('IO', this.file, this.#lines + 1, `write failed: ${(err as Error).message}`, null, { cause: err });
    }
    this.#prevHash = sealed.hash;
    this.#lastLine = sealed.line;
    this.#lines++;
    this.#offset += Buffer.byteLength(sealed.line) + 1;
  }
}

function writeAll(fd: number, data: string | Uint8Array): void {
  if (typeof data !== 'string') {
    for (let offset = 0; offset < data.length; ) offset += writeSync(fd, data, offset, data.length - offset);
    return;
  }
  // The string overload avoids a Buffer copy per line; a short write (disk nearly full) resumes in bytes.
  const written = writeSync(fd, data);
  const length = Buffer.byteLength(data);
  if (written === length) return;
  const bytes = Buffer.from(data, 'utf8');
  for (let offset = written; offset < length; ) offset += writeSync(fd, bytes, offset, length - offset);
}

/**
 * A gzip stream written as it goes: every line is followed by a sync flush (so the file always inflates to
 * every line written so far), and every block starts at a full flush (so a reader can start inflating
 * there, src/log/lineSource.ts). Deterministic: the same lines give the same bytes.
 */
class GzipSink {
  readonly #fd: number;
  readonly #deflate = new Deflate({ gzip: true, level: 6 });
  #pending: Uint8Array[] = [];
  /** Compressed bytes written so far. */
  written = 0;

  constructor(fd: number) {
    this.#fd = fd;
    this.#deflate.onData = (c) => this.#pending.push(c);
    this.#deflate.onEnd = () => {};
  }

  write(text: string, flush: typeof Z_SYNC_FLUSH | typeof Z_FULL_FLUSH | true = Z_SYNC_FLUSH): void {
    this.#deflate.push(text, flush);
    if (this.#deflate.err) throw new Error(`gzip: ${this.#deflate.msg}`);
    const out = this.#pending;
    this.#pending = [];
    for (const c of out) {
      writeAll(this.#fd, c);
      this.written += c.length;
    }
  }
}

/**
 * Writes straight to the file descriptor with `writeSync`: no user-space buffer, so if the process dies
 * the file holds every line appended so far, plus at most one torn line that the reader detects. A path
 * ending in `.gz` is written as a gzip stream flushed after every line, with the same guarantee.
 */
export class LogWriter extends SealingLogWriter {
  #fd: number;
  readonly #gzip: GzipSink | null;
  readonly #header: Sealed;
  /** Written to a temporary name, renamed at close: a reader never takes half an index for one. */
  readonly #index: IndexWriter | null;
  #blockAt: LinePos | null = null;
  #endAt: LinePos | null = null;

  private constructor(path: string, fd: number, header: Sealed, opts: WriterOptions, gzip: GzipSink | null) {
    super(path, header, opts);
    this.#fd = fd;
    this.#gzip = gzip;
    this.#header = header;
    this.#index = opts.index === undefined ? null : new IndexWriter(`${path}.idx.tmp-${process.pid}`, { block: this.block, header: header.hash, initial: opts.index.initial });
  }

  /** Where this position is in a gzip file: right after a full flush (inflating can start there). */
  #fullFlush(at: LinePos): LinePos {
    if (this.#gzip === null) return at;
    this.#gzip.write('', Z_FULL_FLUSH);
    return { ...at, compressedOffset: this.#gzip.written };
  }

  protected override blockStart(at: LinePos): void {
    this.#blockAt = this.#fullFlush(at);
  }

  protected override afterEvent(seq: number, world: World | undefined): void {
    if (this.#index !== null && world !== undefined && (seq + 1) % this.block === 0 && this.#blockAt !== null) this.#index.checkpoint(seq, this.#blockAt, world);
  }

  protected override endStart(at: LinePos): void {
    this.#endAt = this.#fullFlush(at);
  }

  /** Creates or truncates `path` and writes the header. */
  static open(path: string, header: HeaderInput, opts: WriterOptions = {}): LogWriter {
    const first = sealHeader(header, path, opts.block ?? DEFAULT_BLOCK);
    let fd: number | undefined;
    let gzip: GzipSink | null = null;
    try {
      fd = openSync(path, 'w');
      if (path.endsWith('.gz')) {
        gzip = new GzipSink(fd);
        gzip.write(first.line + '\n');
      } else {
        writeAll(fd, first.line + '\n');
      }
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      throw new LogError('IO', path, fd === undefined ? 0 : 1, `cannot write log: ${(err as Error).message}`, null, {
        cause: err,
      });
    }
    return new LogWriter(path, fd, first, opts, gzip);
  }

  /** Whether the file is a gzip stream. */
  get compressed(): boolean {
    return this.#gzip !== null;
  }

  /** Bytes of the file so far (compressed bytes for a gzip log). */
  get fileBytes(): number {
    return this.#gzip === null ? this.next.offset : this.#gzip.written;
  }

  protected override emit(line: string): void {
    if (this.#gzip !== null) this.#gzip.write(line + '\n');
    else writeAll(this.#fd, line + '\n');
  }

  /** fsync once at close: per-line fsync would dominate run time and only guards against power loss. */
  protected override release(): void {
    try {
      // The gzip trailer (CRC and length): a log closed without it still inflates, as a torn one does.
      this.#gzip?.write('', true);
      fsyncSync(this.#fd);
    } catch (err) {
      this.#index?.abort();
      throw new LogError('IO', this.file, 0, `fsync failed: ${(err as Error).message}`, null, { cause: err });
    } finally {
      closeSync(this.#fd);
    }
    this.#finishIndex();
  }

  #finishIndex(): void {
    const index = this.#index;
    if (index === null) return;
    if (index.checkpoints === 0) {
      // Shorter than a block: every step is within reach of the start, an index would hold nothing.
      index.abort();
      rmSync(index.path, { force: true });
      return;
    }
    try {
      const s = statSync(this.file, { bigint: true });
      const headerBytes = Buffer.byteLength(this.#header.line) + 1;
      index.finish({
        log: { size: Number(s.size), mtimeNs: String(s.mtimeNs) },
        block: this.block,
        header: this.#header.hash,
        events: this.lastSeq,
        lastHash: this.lastHash,
        start: { line: 2, offset: headerBytes, prevHash: this.#header.hash },
        end: this.#endAt,
        torn: null,
      });
      renameSync(index.path, `${this.file}.idx`);
    } catch (err) {
      // The index is a cache: without it, the first seek builds one.
      index.abort();
      rmSync(index.path, { force: true });
      void err;
    }
  }
}

/** Same rules, lines kept in memory. `text()` is exactly what `LogWriter` would have put in the file. */
export class MemoryLogWriter extends SealingLogWriter {
  /** Lines written so far, without their '\n'. */
  readonly output: string[] = [];

  private constructor(name: string, header: Sealed, opts: WriterOptions) {
    super(name, header, opts);
  }

  /** `name` only labels error messages. */
  static open(header: HeaderInput, name = '<memory>', opts: WriterOptions = {}): MemoryLogWriter {
    const first = sealHeader(header, name, opts.block ?? DEFAULT_BLOCK);
    const writer = new MemoryLogWriter(name, first, opts);
    writer.output.push(first.line);
    return writer;
  }

  text(): string {
    return this.output.length === 0 ? '' : this.output.join('\n') + '\n';
  }

  protected override emit(line: string): void {
    this.output.push(line);
  }

  protected override release(): void {}
}

/**
 * The text of a log holding exactly `records` (as a reader returns them: decoded events, `hash` fields
 * ignored), encoded and sealed as the writer does but without its checks: for tests and tools that need
 * a log whose hash chain holds while its content is whatever they made it.
 */
export function encodeLog(records: readonly LogRecord[]): string {
  let prev = GENESIS;
  let encoder = new EventEncoder(DEFAULT_BLOCK);
  const lines: string[] = [];
  for (const r of records) {
    let body: string;
    if (r.type === 'event') {
      const { type: _t, hash: _h, ...event } = r;
      const encoded = encoder.encode(event);
      encoded.commit();
      body = encoded.body;
    } else {
      const { hash: _h, ...rest } = r as Record<string, unknown>;
      body = stringifyCanonical(rest);
      if (r.type === 'header') encoder = new EventEncoder(r.block);
    }
    const sealed = sealBody(prev, body);
    prev = sealed.hash;
    lines.push(sealed.line);
  }
  return lines.map((l) => l + '\n').join('');
}
