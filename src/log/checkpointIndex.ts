/**
 * The checkpoint index: a sidecar file (`run.log.jsonl.idx`) holding the world after every block's last
 * event (seq + 1 a multiple of the block), so that any step of a log is the nearest checkpoint plus at
 * most `block` re-executed steps
 * (src/replay/seek.ts), whatever the log's length. A run writes it with its log; `replay`, `export` and
 * `openIndexed` rebuild it from the log when it is missing or stale. It is a cache: everything in it is
 * checked against the log before it is used.
 *
 * Format (text, one record per line):
 *
 *   line 1   {"index":"tdxsim-index","version":1,"block":B,"header":"<h of the log's header>"}
 *   N <digest> <refs> <text>           a node: an actor's text or a container's (src/runtime/worldHash.ts),
 *                                      whose digest is digest(text, 22); refs gives, for each # reference
 *                                      in the text in order, the byte offset of that node's record, or
 *                                      `i` for a node of the initial world (the reader hashes that itself)
 *   C <seq> <line> <offset> <zoffset> <prevHash> <refs> <worldText>
 *                                      a checkpoint: the world after event seq, whose line is `line` at
 *                                      byte `offset` of the text (and, in a gzip log, at compressed byte
 *                                      `zoffset`, a full-flush point; `-` otherwise) after a line hashed
 *                                      prevHash; its state hash is digest(worldText, 11)
 *   directory                          one 16-byte line per checkpoint: its record's offset, 15 digits
 *   trailer                            a JSON line: the log's size and modification time, its events, the
 *                                      positions of line 2 and of the end record, where the directory is
 *
 * Nodes are written once (a node already written, or in the initial world, is referenced by offset), so
 * a checkpoint costs what changed since the last one. A reader holds one checkpoint at a time.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import type { AnyMachineSnapshot } from 'xstate';
import { digestText, NODE_DIGEST_CHARS, shadowOf, shadowText, worldParts, type Shadow } from '../runtime/worldHash.ts';
import type { World } from '../runtime/world.ts';

export const INDEX_FORMAT = 'tdxsim-index';
export const INDEX_VERSION = 1;
const DIRECTORY_ENTRY = 16;
/** Remembered written nodes; past this many, memory is bounded by forgetting (a node may then be written twice). */
const STORED_LIMIT = 1 << 20;

/** Where a line of the log starts. */
export interface LinePos {
  line: number;
  offset: number;
  /** Compressed offset of a full-flush point just before the line (gzip logs written with their index). */
  compressedOffset?: number;
  /** Hash of the line before it. */
  prevHash: string;
}

/** What the trailer says about the log the index was built from. */
export interface IndexTrailer {
  index: typeof INDEX_FORMAT;
  /** The log file: bytes and modification time (ns) when the index was finished; any change makes it stale. */
  log: { size: number; mtimeNs: string };
  block: number;
  /** h of the log's header. */
  header: string;
  events: number;
  /** h of the last complete line. */
  lastHash: string;
  /** Line 2's position (the first event's line). */
  start: LinePos;
  end: LinePos | null;
  torn: { line: number; offset: number; cut: string; lastStep: number } | null;
  checkpoints: number;
  directory: number;
}

/** All digested nodes of `world` (the initial world), by digest: what checkpoints reference as `i`. */
export function initialNodes(world: World): Map<string, object> {
  const out = new Map<string, object>();
  const visit = (s: Shadow) => {
    if (s.tok.charCodeAt(0) === 0x23) {
      if (out.has(s.tok.slice(1))) return;
      out.set(s.tok.slice(1), s.v);
    }
    if (s.kids !== null) for (const k of s.kids) if (k !== undefined) visit(k);
  };
  const parts = worldParts(world);
  for (const a of parts.actors) if (a.context !== undefined) visit(a.context);
  for (const s of world.snapshots) if (typeof s.value === 'object' && s.value !== null) visit(shadowOf(s.value, undefined));
  for (const p of parts.pending) visit(p);
  visit(parts.failures);
  return out;
}

/** The shadows referenced (by #digest) from a container's text, in text order, looking into inlined children. */
function refsIn(s: Shadow, out: Shadow[]): void {
  if (s.kids === null) return;
  for (let i = 0; i < s.kids.length; i++) {
    const k = s.kids[i];
    if (k === undefined) continue;
    if (s.toks[i]!.charCodeAt(0) === 0x23) out.push(k);
    else refsIn(k, out);
  }
}

/** The shadows referenced from a value's token. */
function refsOfValue(v: unknown, out: Shadow[]): void {
  if (typeof v !== 'object' || v === null) return;
  const s = shadowOf(v, undefined);
  if (s.tok.charCodeAt(0) === 0x23) out.push(s);
  else refsIn(s, out);
}

/** Writes an index as the log is written (or rebuilt). Append-only; `finish` adds the directory and trailer. */
export class IndexWriter {
  readonly path: string;
  readonly #fd: number;
  #offset = 0;
  readonly #initial: ReadonlySet<string>;
  #stored = new Map<string, number>();
  readonly #checkpoints: number[] = [];

  constructor(path: string, opts: { block: number; header: string; initial: World }) {
    this.path = path;
    this.#initial = new Set(initialNodes(opts.initial).keys());
    this.#fd = openSync(path, 'w');
    this.#append(JSON.stringify({ index: INDEX_FORMAT, version: INDEX_VERSION, block: opts.block, header: opts.header }));
  }

  #append(line: string): number {
    const at = this.#offset;
    const bytes = Buffer.from(line + '\n', 'utf8');
    for (let o = 0; o < bytes.length; ) o += writeSync(this.#fd, bytes, o, bytes.length - o);
    this.#offset += bytes.length;
    return at;
  }

  #ref(digest: string, write: () => number): string {
    if (this.#initial.has(digest)) return 'i';
    const known = this.#stored.get(digest);
    if (known !== undefined) return String(known);
    const at = write();
    if (this.#stored.size >= STORED_LIMIT) this.#stored.clear();
    this.#stored.set(digest, at);
    return String(at);
  }

  #node(s: Shadow): string {
    return this.#ref(s.tok.slice(1), () => {
      const kids: Shadow[] = [];
      refsIn(s, kids);
      const refs = kids.map((k) => this.#node(k));
      return this.#append(`N ${s.tok.slice(1)} ${refs.length === 0 ? '-' : refs.join(',')} ${shadowText(s)}`);
    });
  }

  #actor(a: { digest: string; text: string; context: Shadow | undefined }, snap: AnyMachineSnapshot): string {
    return this.#ref(a.digest, () => {
      const kids: Shadow[] = [];
      refsOfValue(snap.value, kids);
      if (a.context !== undefined) {
        if (a.context.tok.charCodeAt(0) === 0x23) kids.push(a.context);
        else refsIn(a.context, kids);
      }
      refsOfValue(snap.output, kids);
      refsOfValue(snap.error, kids);
      const refs = kids.map((k) => this.#node(k));
      return this.#append(`N ${a.digest} ${refs.length === 0 ? '-' : refs.join(',')} ${a.text}`);
    });
  }

  /** The world after event `at.seq`, whose line starts at `at`. */
  checkpoint(seq: number, at: LinePos, world: World): void {
    const parts = worldParts(world);
    const refs = parts.actors.map((a, i) => this.#actor(a, world.snapshots[i]!));
    const kids: Shadow[] = [];
    for (const p of parts.pending) {
      if (p.tok.charCodeAt(0) === 0x23) kids.push(p);
      else refsIn(p, kids);
    }
    if (parts.failures.tok.charCodeAt(0) === 0x23) kids.push(parts.failures);
    else refsIn(parts.failures, kids);
    for (const k of kids) refs.push(this.#node(k));
    const z = at.compressedOffset === undefined ? '-' : String(at.compressedOffset);
    this.#checkpoints.push(this.#append(`C ${seq} ${at.line} ${at.offset} ${z} ${at.prevHash} ${refs.length === 0 ? '-' : refs.join(',')} ${parts.text}`));
  }

  /** Writes the directory and the trailer and closes the file: the index is complete. */
  finish(info: Omit<IndexTrailer, 'index' | 'checkpoints' | 'directory'>): IndexTrailer {
    const directory = this.#offset;
    for (const c of this.#checkpoints) this.#append(String(c).padStart(DIRECTORY_ENTRY - 1, '0'));
    const trailer: IndexTrailer = { index: INDEX_FORMAT, ...info, checkpoints: this.#checkpoints.length, directory };
    this.#append(JSON.stringify(trailer));
    closeSync(this.#fd);
    return trailer;
  }

  /** Checkpoints written so far. */
  get checkpoints(): number {
    return this.#checkpoints.length;
  }

  /** Closes without a trailer: the index is incomplete, and readers rebuild it. */
  abort(): void {
    try {
      closeSync(this.#fd);
    } catch {
      // already closed
    }
  }
}

/** Why an index cannot be used as it is. */
export class IndexProblem extends Error {
  override readonly name = 'IndexProblem';
}

/** One checkpoint record as read. */
export interface CheckpointRecord {
  seq: number;
  at: LinePos;
  refs: string[];
  worldText: string;
}

/** One node record as read and checked against its digest. */
export interface NodeRecord {
  digest: string;
  refs: string[];
  text: string;
}

/** Reads records of an index by offset, one at a time. */
export class IndexReader {
  readonly trailer: IndexTrailer;
  readonly #fd: number;
  readonly #size: number;

  private constructor(fd: number, size: number, trailer: IndexTrailer) {
    this.#fd = fd;
    this.#size = size;
    this.trailer = trailer;
  }

  /** Opens `path` and reads its trailer; throws IndexProblem when it has none or it does not parse. */
  static open(path: string, size: number): IndexReader {
    const fd = openSync(path, 'r');
    try {
      const tailBytes = Math.min(size, 1 << 16);
      const tail = Buffer.alloc(tailBytes);
      readSync(fd, tail, 0, tailBytes, size - tailBytes);
      const text = tail.toString('utf8');
      if (!text.endsWith('\n')) throw new IndexProblem('it has no trailer (the run that wrote it was cut off)');
      const last = text.slice(text.lastIndexOf('\n', text.length - 2) + 1, -1);
      let trailer: IndexTrailer;
      try {
        trailer = JSON.parse(last) as IndexTrailer;
      } catch {
        throw new IndexProblem('its trailer is not JSON');
      }
      if (trailer.index !== INDEX_FORMAT || !Number.isInteger(trailer.checkpoints) || !Number.isInteger(trailer.directory)) throw new IndexProblem('its trailer is not a tdxsim index trailer');
      return new IndexReader(fd, size, trailer);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  close(): void {
    closeSync(this.#fd);
  }

  #line(offset: number): string {
    if (!Number.isInteger(offset) || offset < 0 || offset >= this.#size) throw new IndexProblem(`offset ${offset} is outside the index`);
    const parts: Buffer[] = [];
    // Most records are a few hundred bytes: read a little, more only when the line goes on.
    let want = 1 << 12;
    for (let pos = offset; pos < this.#size; want = Math.min(1 << 20, want * 4)) {
      const buf = Buffer.allocUnsafe(Math.min(want, this.#size - pos));
      const n = readSync(this.#fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      const nl = buf.subarray(0, n).indexOf(0x0a);
      if (nl !== -1) {
        parts.push(buf.subarray(0, nl));
        return Buffer.concat(parts).toString('utf8');
      }
      parts.push(buf.subarray(0, n));
      pos += n;
    }
    throw new IndexProblem(`the record at ${offset} has no end`);
  }

  /** Checkpoint number `i` (0 is the one after event `block`). */
  checkpoint(i: number): CheckpointRecord {
    const t = this.trailer;
    if (i < 0 || i >= t.checkpoints) throw new IndexProblem(`no checkpoint ${i}`);
    const entry = this.#line(t.directory + i * DIRECTORY_ENTRY);
    const m = /^C (\d+) (\d+) (\d+) (\d+|-) ([\w-]{11}) ([\d,i-]+) (\{.*\})$/.exec(this.#line(Number(entry)));
    if (m === null) throw new IndexProblem(`checkpoint ${i} is not a checkpoint record`);
    const at: LinePos = { line: Number(m[2]), offset: Number(m[3]), prevHash: m[5]! };
    if (m[4] !== '-') at.compressedOffset = Number(m[4]);
    return { seq: Number(m[1]), at, refs: m[6] === '-' ? [] : m[6]!.split(','), worldText: m[7]! };
  }

  /** The node record at `offset`, after checking that its text hashes to `digest`. */
  node(offset: number, digest: string): NodeRecord {
    const m = /^N ([\w-]{22}) ([\d,i-]+) (.*)$/.exec(this.#line(offset));
    if (m === null) throw new IndexProblem(`the record at ${offset} is not a node`);
    if (m[1] !== digest) throw new IndexProblem(`the record at ${offset} is node ${m[1]}, not ${digest}`);
    if (digestText(m[3]!, NODE_DIGEST_CHARS) !== digest) throw new IndexProblem(`node ${digest} at ${offset} does not hash to its digest (the index was changed)`);
    return { digest, refs: m[2] === '-' ? [] : m[2]!.split(','), text: m[3]! };
  }
}
