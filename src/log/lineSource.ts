/**
 * A log file as a stream of lines, read in chunks so that memory stays bounded by the longest line
 * whatever the file's length (the whole file is never one string). A gzip-compressed log (found by its
 * magic bytes, not its name) is inflated on the way; its writer flushes after every record, so a file cut
 * anywhere inflates to every complete line before the cut plus a torn one.
 *
 * A read may start in the middle: at a byte offset of the text, which for a compressed log must be a
 * full-flush point whose compressed offset the checkpoint index records (deflate needs no earlier bytes
 * from there on).
 */
import { closeSync, readSync } from 'node:fs';
import { Inflate, Z_SYNC_FLUSH } from 'pako';
import { LogError } from './errors.ts';
import { NotRegularFileError, openRegularFile } from './regularFile.ts';

/** A line longer than this is refused: tdxsim writes none (the header holds the scenario, a few MB at most). */
export const MAX_LINE_BYTES = 256 * 1024 * 1024;
/** Reads start small (a seek wants a block, about 100 KB) and grow to this. */
const FIRST_CHUNK_BYTES = 1 << 16;
const CHUNK_BYTES = 1 << 20;

/** Where a read starts: 1-based line number, byte offset in the text, and for a compressed log the offset in the file. */
export interface ReadPosition {
  line: number;
  offset: number;
  compressedOffset?: number;
}

/** One line without its '\n'; `complete` is false for a last line without one (torn). */
export interface RawLine {
  bytes: Buffer;
  line: number;
  /** Byte offset of the line's start in the (uncompressed) text. */
  offset: number;
  complete: boolean;
}

interface ChunkSource {
  next(): Buffer | null;
}

class CorruptCompression extends Error {}

function fileChunks(fd: number, position: number): ChunkSource {
  let pos = position;
  let size = FIRST_CHUNK_BYTES;
  return {
    next() {
      const buf = Buffer.allocUnsafe(size);
      const n = readSync(fd, buf, 0, size, pos);
      size = Math.min(CHUNK_BYTES, size * 2);
      if (n === 0) return null;
      pos += n;
      return buf.subarray(0, n);
    },
  };
}

function inflated(input: ChunkSource, raw: boolean): ChunkSource {
  const inflate = new Inflate(raw ? { raw: true } : {});
  const queue: Buffer[] = [];
  inflate.onData = (c) => queue.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  inflate.onEnd = () => {};
  return {
    next() {
      while (queue.length === 0) {
        if (inflate.ended) return null;
        const c = input.next();
        if (c === null) return null; // a file cut short: what inflated so far is all there is
        // SYNC_FLUSH: hand over every byte inflated so far, not just full 64 KiB buffers.
        inflate.push(c, Z_SYNC_FLUSH);
        if (inflate.err) throw new CorruptCompression(inflate.msg || `zlib error ${inflate.err}`);
      }
      return queue.shift()!;
    },
  };
}

/** Whether the file starts with the gzip magic bytes. */
export function isGzip(fd: number): boolean {
  const head = Buffer.alloc(2);
  return readSync(fd, head, 0, 2, 0) === 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** An open log: its lines from `from` on, whether it is compressed, and `close`. */
export interface OpenedLog {
  readonly compressed: boolean;
  lines(): Generator<RawLine, void, undefined>;
  close(): void;
}

/** Opens `path` (a regular file, or a LogError IO naming what it is) for reading lines from `from`. */
export function openLogLines(path: string, from: ReadPosition = { line: 1, offset: 0 }): OpenedLog {
  let fd: number;
  try {
    fd = openRegularFile(path);
  } catch (err) {
    const detail = err instanceof NotRegularFileError ? `${err.what} is not a regular file` : (err as Error).message;
    throw new LogError('IO', path, 0, `cannot read log: ${detail}`, null, { cause: err });
  }
  let compressed: boolean;
  try {
    compressed = isGzip(fd);
  } catch (err) {
    closeSync(fd);
    throw new LogError('IO', path, 0, `cannot read log: ${(err as Error).message}`, null, { cause: err });
  }
  if (compressed && from.offset !== 0 && from.compressedOffset === undefined) {
    closeSync(fd);
    throw new RangeError(`${path}: a compressed log is read from its start or from a full-flush point`);
  }
  const source = !compressed ? fileChunks(fd, from.offset) : from.offset === 0 ? inflated(fileChunks(fd, 0), false) : inflated(fileChunks(fd, from.compressedOffset!), true);
  let open = true;
  return {
    compressed,
    lines: () => splitLines(source, from, path),
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/** Lines of the in-memory `text`, as a file holding it would give them (tests, logs run in memory). */
export function textLines(text: string | Buffer, file: string): Generator<RawLine, void, undefined> {
  let done = false;
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return splitLines({ next: () => (done ? null : ((done = true), bytes)) }, { line: 1, offset: 0 }, file);
}

function* splitLines(source: ChunkSource, from: ReadPosition, path: string): Generator<RawLine, void, undefined> {
  let line = from.line;
  let offset = from.offset;
  let carry: Buffer[] = [];
  let carried = 0;
  for (;;) {
    let chunk: Buffer | null;
    try {
      chunk = source.next();
    } catch (err) {
      if (!(err instanceof CorruptCompression)) throw err;
      throw new LogError('BAD_JSON', path, line, `compressed data is damaged (${err.message}): the lines before this one are intact`);
    }
    if (chunk === null) break;
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      const bytes = carried === 0 ? piece : Buffer.concat([...carry, piece]);
      carry = [];
      carried = 0;
      yield { bytes, line, offset, complete: true };
      offset += bytes.length + 1;
      line++;
      start = nl + 1;
    }
    if (start < chunk.length) {
      carry.push(chunk.subarray(start));
      carried += chunk.length - start;
      if (carried > MAX_LINE_BYTES) throw new LogError('BAD_JSON', path, line, `line is longer than ${MAX_LINE_BYTES / (1024 * 1024)} MiB: tdxsim writes no line that long`);
    }
  }
  if (carried > 0) yield { bytes: Buffer.concat(carry), line, offset, complete: false };
}
