/**
 * Append-only log writers. `LogWriter` writes a file, `MemoryLogWriter` an array of lines (tests, the
 * explorer); both inherit the sealing and sequencing rules from `SealingLogWriter`, so a log written to
 * memory is byte-identical to the same log written to disk.
 *
 * Inputs are validated against the same schemas the reader applies, so anything the writer accepts the
 * reader accepts too.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import type { z } from 'zod';
import { NotJsonError } from './canonical.ts';
import { LogError } from './errors.ts';
import { GENESIS, sealRecord, unsealLine } from './hashChain.ts';
import { LogMac, type SigningKey } from './signature.ts';
import {
  EventInputSchema,
  firstIssue,
  HeaderInputSchema,
  LOG_FORMAT,
  LOG_VERSION,
  OutcomeSchema,
  type EndInput,
  type EventInput,
  type HeaderInput,
} from './schema.ts';

type Sealed = { line: string; hash: string };

export interface WriterOptions {
  /** Sign the log: the end record gets an HMAC-SHA256 over every line (src/log/signature.ts). */
  signWith?: SigningKey;
}

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
    throw new LogError('BAD_RECORD', file, line, `cannot write ${err.reason} at ${err.path}`, err.path, {
      cause: err,
    });
  }
}

/** Seals the header (line 1). Separate from the writers so a bad header fails before any file is touched. */
function sealHeader(header: HeaderInput, file: string): Sealed {
  check(HeaderInputSchema, header, 'header', file, 1);
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

  /** `header` is the sealed first line, which the subclass has already written (`lastLine` stays '' until an event). */
  protected constructor(file: string, header: Sealed, opts: WriterOptions) {
    this.file = file;
    this.#prevHash = header.hash;
    this.#mac = opts.signWith === undefined ? null : new LogMac(opts.signWith);
    this.#mac?.line(header.line);
  }

  /** Writes one complete line (given without its '\n'), or throws. */
  protected abstract emit(line: string): void;
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
  append(event: EventInput): string {
    const line = this.#lines + 1;
    this.#assertOpen(line);
    check(EventInputSchema, event, 'event', this.file, line);
    if (event.seq !== this.#lastSeq + 1) {
      throw new LogError('SEQ_GAP', this.file, line, `cannot write event: expected seq ${this.#lastSeq + 1}, got ${event.seq}`, 'seq');
    }
    const record = {
      type: 'event',
      seq: event.seq,
      from: event.from,
      to: event.to,
      kind: event.kind,
      name: event.name,
      payload: event.payload,
      cause: event.cause,
      choice: event.choice,
      state: event.state,
    };
    const sealed = seal(this.#prevHash, record, this.file, line);
    this.#write(sealed);
    this.#mac?.line(sealed.line);
    this.#lastSeq = event.seq;
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
    this.#write(seal(this.#prevHash, record, this.file, line));
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
  }
}

function writeAll(fd: number, text: string): void {
  // The string overload avoids a Buffer copy per line; a short write (disk nearly full) resumes in bytes.
  const written = writeSync(fd, text);
  const length = Buffer.byteLength(text);
  if (written === length) return;
  const bytes = Buffer.from(text, 'utf8');
  for (let offset = written; offset < length; ) offset += writeSync(fd, bytes, offset, length - offset);
}

/**
 * Writes straight to the file descriptor with `writeSync`: no user-space buffer, so if the process dies
 * the file holds every line appended so far, plus at most one torn line that the reader detects.
 */
export class LogWriter extends SealingLogWriter {
  #fd: number;

  private constructor(path: string, fd: number, header: Sealed, opts: WriterOptions) {
    super(path, header, opts);
    this.#fd = fd;
  }

  /** Creates or truncates `path` and writes the header. */
  static open(path: string, header: HeaderInput, opts: WriterOptions = {}): LogWriter {
    const first = sealHeader(header, path);
    let fd: number | undefined;
    try {
      fd = openSync(path, 'w');
      writeAll(fd, first.line + '\n');
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      throw new LogError('IO', path, fd === undefined ? 0 : 1, `cannot write log: ${(err as Error).message}`, null, {
        cause: err,
      });
    }
    return new LogWriter(path, fd, first, opts);
  }

  protected override emit(line: string): void {
    writeAll(this.#fd, line + '\n');
  }

  /** fsync once at close: per-line fsync would dominate run time and only guards against power loss. */
  protected override release(): void {
    try {
      fsyncSync(this.#fd);
    } catch (err) {
      throw new LogError('IO', this.file, 0, `fsync failed: ${(err as Error).message}`, null, { cause: err });
    } finally {
      closeSync(this.#fd);
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
    const first = sealHeader(header, name);
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
