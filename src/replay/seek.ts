/**
 * Any step of a log of any length, in time that does not grow with it: the nearest checkpoint at or before
 * the step (src/log/checkpointIndex.ts), restored and proven against the log (its state hash must be the
 * one the log records there), then fewer than `block` steps re-executed with the logged choices, each
 * checked as `replay` checks it (message, payload, cause, state hash) on lines read straight from the
 * checkpoint's byte offset. Memory holds the model, one world and one block of the log.
 *
 * The index is a cache. It is used when its trailer matches the log (header, size, modification time);
 * otherwise, and when it is missing, it is rebuilt by one verified pass over the log (every event
 * re-executed), written beside it, and used from then on. A checkpoint that does not restore the state
 * the log records means the index was changed: it is not trusted, it is rebuilt.
 *
 * What a seek does not check is the part of the log it does not read: `replay --verify` reads it all.
 */
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { actorsFor } from '../../machines/registry.ts';
import { stringifyCanonical } from '../log/canonical.ts';
import { IndexProblem, IndexReader, IndexWriter, initialNodes, type CheckpointRecord, type IndexTrailer, type LinePos } from '../log/checkpointIndex.ts';
import { chainHash, unsealLine } from '../log/hashChain.ts';
import { LogError } from '../log/errors.ts';
import { openLogLines } from '../log/lineSource.ts';
import { LogScan, scanLog, type LogItem, type ScanStart, type Tear } from '../log/reader.ts';
import { HASH_PATTERN, type EndRecord, type EventRecord, type HeaderRecord } from '../log/schema.ts';
import type { Message } from '../protocol/messages.ts';
import { enabledChoices, initialWorld, step } from '../runtime/step.ts';
import { createModel, type Model, type World } from '../runtime/world.ts';
import { worldHash } from '../runtime/worldHash.ts';
import { parseScenarioObject, ScenarioError } from '../scenario/load.ts';
import type { Scenario } from '../scenario/schema.ts';
import { restoreWorld } from './restoreWorld.ts';

/** The state after a step, as `seek` returns it. */
export interface SeekResult {
  step: number;
  /** The world after `step` (the initial world for 0). */
  world: World;
  /** The world before `step` (null for 0), stepped from which `world` is: an untouched actor is the same object in both. */
  before: World | null;
  /** Step `step`'s record as the log has it (null for 0). */
  event: EventRecord | null;
  /** Step `step`'s message as the model re-derived it (bigints, not hex strings; null for 0). */
  delivered: Message | null;
}

/**
 * How the index was found when the log was opened: used as found, rebuilt now, not needed (a log smaller
 * than `minIndexBytes`, read from its start), or not writable (seeks then replay from the start).
 */
export type IndexState = 'fresh' | 'built' | 'none' | 'unwritable';

/** A log opened for seeking. `close` releases the index. */
export interface IndexedLog {
  readonly file: string;
  readonly header: HeaderRecord;
  readonly scenario: Scenario;
  readonly model: Model;
  /** Events in the log (the last step). */
  readonly steps: number;
  readonly end: EndRecord | null;
  readonly torn: Tear | null;
  readonly compressed: boolean;
  /** The index file, and whether it was used as found, rebuilt now, or could not be written (seeks then replay from the start). */
  readonly indexFile: string;
  readonly indexState: IndexState;
  /** The world after `step` (0 … steps), its record and its message. */
  seek(step: number): SeekResult;
  /** The records of steps `from` … `to` (inclusive), read from the nearest block start; checked as a scan checks them. */
  events(from: number, to: number): Generator<EventRecord, void, undefined>;
  close(): void;
}

/** How `openIndexed` reports on the index and when it builds one. */
export interface OpenIndexedOptions {
  /** Told when the index is (re)built and why, e.g. to print on stderr. */
  onNotice?: (message: string) => void;
  /**
   * A log smaller than this gets no index when it has none: reading it from the start costs no more than a
   * checkpoint would save.
   * @default 1 MiB
   */
  minIndexBytes?: number;
}

const MIN_INDEX_BYTES = 1 << 20;

/** The index file of a log: beside it, named after it. */
export const indexFileOf = (logPath: string): string => `${logPath}.idx`;

/** The scenario a log's header carries, validated again. */
function scenarioOfHeader(header: HeaderRecord, file: string): Scenario {
  try {
    return parseScenarioObject(header.scenario, `${file}:1 (header.scenario)`);
  } catch (e) {
    if (e instanceof ScenarioError) throw new LogError('BAD_RECORD', file, 1, `header.scenario: ${e.message}`, 'scenario');
    throw e;
  }
}

function readHeader(file: string): { header: HeaderRecord; compressed: boolean; startOffset: number } {
  const { scan, close, compressed } = scanLog(file, { allowTorn: true });
  try {
    for (const item of scan) if (item.type === 'header') return { header: item.record, compressed, startOffset: scan.endOffset };
  } finally {
    close();
  }
  throw new LogError('EMPTY', file, 0, 'no header');
}

function statOf(file: string): { size: number; mtimeNs: string } {
  const s = statSync(file, { bigint: true });
  return { size: Number(s.size), mtimeNs: String(s.mtimeNs) };
}

/** Checks a re-derived delivery against its record, as replay does; throws REPLAY_DIVERGED at its line and field. */
export function checkDelivery(file: string, line: number, m: Message, ev: EventRecord, world: World, model: Model, checkState = true): void {
  const got = { from: m.from, to: m.to, kind: m.kind, name: m.name, payload: stringifyCanonical(m.payload), cause: m.cause };
  const want = { from: ev.from, to: ev.to, kind: ev.kind, name: ev.name, payload: stringifyCanonical(ev.payload), cause: ev.cause };
  for (const k of Object.keys(want) as (keyof typeof want)[]) {
    if (got[k] !== want[k]) throw new LogError('REPLAY_DIVERGED', file, line, `replay diverged at ${k}: the model delivers ${String(got[k])}, the log says ${String(want[k])}`, k);
  }
  if (!checkState) return;
  const h = worldHash(model, world);
  if (h !== ev.state) throw new LogError('REPLAY_DIVERGED', file, line, `replay diverged: state hash ${h} after this step, the log says ${ev.state}`, 'state');
}

function stepTo(file: string, line: number, model: Model, world: World, ev: EventRecord, checkState = true): { world: World; delivered: Message } {
  const enabled = enabledChoices(model, world);
  if (ev.choice >= enabled.length) {
    throw new LogError('REPLAY_DIVERGED', file, line, `replay diverged: choice ${ev.choice} but only ${enabled.length} message(s) are deliverable here`, 'choice');
  }
  const r = step(model, world, ev.choice, enabled);
  checkDelivery(file, line, r.delivered, ev, r.world, model, checkState);
  return { world: r.world, delivered: r.delivered };
}

/**
 * Builds the index of `file` by one verified pass (every event re-executed and checked), writing it to
 * `indexFile` (through a temporary file, so a reader never sees half of one). Returns its trailer.
 */
export function buildIndex(file: string, indexFile = indexFileOf(file)): IndexTrailer {
  const before = statOf(file);
  const { header, startOffset } = readHeader(file);
  const model = createModel(actorsFor(scenarioOfHeader(header, file)));
  let world = initialWorld(model);
  const tmp = `${indexFile}.tmp-${process.pid}`;
  const writer = new IndexWriter(tmp, { block: header.block, header: header.hash, initial: world });
  try {
    const { scan } = scanLog(file, { allowTorn: true });
    let prevHash = header.hash;
    let end: LinePos | null = null;
    for (const item of scan) {
      if (item.type === 'event') {
        world = stepTo(file, item.line, model, world, item.record).world;
        // A rebuilt index of a compressed log has no full-flush offsets: its seeks inflate from the start.
        if ((item.record.seq + 1) % header.block === 0) writer.checkpoint(item.record.seq, { line: item.line, offset: item.offset, prevHash }, world);
        prevHash = item.record.hash;
      } else if (item.type === 'end') {
        end = { line: item.line, offset: item.offset, prevHash };
      }
    }
    const torn = scan.torn === null ? null : { line: scan.torn.line, offset: scan.endOffset, cut: scan.torn.cut, lastStep: scan.torn.lastStep };
    const after = statOf(file);
    if (after.size !== before.size || after.mtimeNs !== before.mtimeNs) throw new LogError('IO', file, 0, 'the log changed while its index was being built');
    const info = { log: after, block: header.block, header: header.hash, events: scan.lastSeq, lastHash: scan.lastHash, start: { line: 2, offset: startOffset, prevHash: header.hash }, end, torn };
    const trailer = writer.finish(info);
    renameSync(tmp, indexFile);
    return trailer;
  } catch (err) {
    writer.abort();
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Why the index cannot be used for this log as it is now (null: it can). */
function staleness(t: IndexTrailer, header: HeaderRecord, log: { size: number; mtimeNs: string }): string | null {
  if (t.header !== header.hash) return 'it belongs to another log';
  if (t.block !== header.block) return 'its block differs from the log\'s';
  if (t.log.size !== log.size || t.log.mtimeNs !== log.mtimeNs) return 'the log changed since it was written';
  return null;
}

/**
 * Opens a log for seeking: reads its header, builds its model, and finds (or rebuilds) its checkpoint
 * index. The inspector calls this once per log and `seek` per step shown.
 * @throws LogError for a log that cannot be read or does not replay (file, line, field)
 */
export function openIndexed(file: string, opts: OpenIndexedOptions = {}): IndexedLog {
  const { header, compressed } = readHeader(file);
  const scenario = scenarioOfHeader(header, file);
  const model = createModel(actorsFor(scenario));
  const initial = initialWorld(model);
  const initialMap = initialNodes(initial);
  const indexFile = indexFileOf(file);
  let indexState: IndexState = 'fresh';
  let reader: IndexReader | null = null;

  const load = (): void => {
    const log = statOf(file);
    if (!existsSync(indexFile) && log.size < (opts.minIndexBytes ?? MIN_INDEX_BYTES)) {
      indexState = 'none';
      return;
    }
    let why: string | null = existsSync(indexFile) ? null : 'there is none';
    if (why === null) {
      try {
        reader = IndexReader.open(indexFile, statSync(indexFile).size);
        why = staleness(reader.trailer, header, log);
      } catch (err) {
        if (!(err instanceof IndexProblem)) throw err;
        why = `it is damaged: ${err.message}`;
      }
    }
    if (why === null) return;
    reader?.close();
    reader = null;
    opts.onNotice?.(`${file}: building its checkpoint index ${indexFile} (${why}): one pass over the log, after which any step opens from its nearest checkpoint`);
    try {
      buildIndex(file, indexFile);
      indexState = 'built';
    } catch (err) {
      if (err instanceof LogError || typeof (err as NodeJS.ErrnoException).code !== 'string') throw err;
      // A read-only directory: an index in memory would hold every checkpoint, so seeks replay from the start instead.
      indexState = 'unwritable';
      opts.onNotice?.(`${file}: cannot write ${indexFile} (${(err as Error).message}): every step is replayed from the start`);
      return;
    }
    reader = IndexReader.open(indexFile, statSync(indexFile).size);
  };
  load();

  const trailerOrScan = (): IndexTrailer => {
    if (reader !== null) return reader.trailer;
    // No index: learn the log's extent by one pass (a small log, or an unwritable directory).
    const { scan } = scanLog(file, { allowTorn: true });
    let end: LinePos | null = null;
    let prevHash = header.hash;
    for (const item of scan) {
      if (item.type === 'end') end = { line: item.line, offset: item.offset, prevHash };
      else prevHash = item.record.hash;
    }
    const torn = scan.torn === null ? null : { line: scan.torn.line, offset: scan.endOffset, cut: scan.torn.cut, lastStep: scan.torn.lastStep };
    return { index: 'tdxsim-index', log: statOf(file), block: header.block, header: header.hash, events: scan.lastSeq, lastHash: scan.lastHash, start: { line: 2, offset: 0, prevHash: header.hash }, end, torn, checkpoints: 0, directory: 0 };
  };
  const trailer = trailerOrScan();

  /** A scan from `at` (the line of event lastSeq + 1), or from the start when the log cannot be entered there. */
  const scanFrom = (at: LinePos, lastSeq: number, fromStart = false): { items: Iterator<LogItem>; close: () => void } => {
    const direct = at.line === 2 ? !compressed : !compressed || at.compressedOffset !== undefined;
    if (direct && reader !== null && !fromStart) {
      const start: ScanStart = { header, prevHash: at.prevHash, lastSeq, line: at.line, offset: at.offset, ...(at.compressedOffset !== undefined ? { compressedOffset: at.compressedOffset } : {}) };
      const { scan, close } = scanLog(file, { allowTorn: true }, start);
      return { items: scan[Symbol.iterator](), close };
    }
    // From the start, skipping lines before `at` (checked all the same).
    const { scan, close } = scanLog(file, { allowTorn: true });
    const all = scan[Symbol.iterator]();
    const items: Iterator<LogItem> = {
      next: () => {
        for (;;) {
          const r = all.next();
          if (r.done || r.value.line >= at.line) return r;
        }
      },
    };
    return { items, close };
  };

  const endRecord = ((): EndRecord | null => {
    if (trailer.end === null) return null;
    const { items, close } = scanFrom(trailer.end, trailer.events);
    try {
      const r = items.next();
      if (r.done || r.value.type !== 'end') throw new IndexProblem('its end record position does not hold the end record');
      return r.value.record;
    } finally {
      close();
    }
  })();

  const torn: Tear | null = trailer.torn === null ? null : { line: trailer.torn.line, text: tornText(file, trailer.torn.offset, compressed), cut: trailer.torn.cut, lastStep: trailer.torn.lastStep };

  /**
   * Block k's events (k ≥ 1), from event k·block on, and the state the log records after event
   * k·block − 1 (the checkpoint's step), read from that event's line: its hash must follow from the one
   * the index gives, so a changed index cannot lend it another state.
   */
  const openBlock = (k: number): { cp: CheckpointRecord; state: string; items: Iterator<LogItem>; close: () => void } => {
    const cp = reader!.checkpoint(k - 1);
    if (cp.seq !== k * header.block - 1) throw new IndexProblem(`checkpoint ${k - 1} is for step ${cp.seq}, not ${k * header.block - 1}`);
    if (compressed && cp.at.compressedOffset === undefined) {
      // A rebuilt index of a compressed log has no full-flush points: inflate from the start.
      const { items, close } = scanFrom(trailer.start, 0, true);
      for (let r = items.next(); !r.done; r = items.next()) {
        if (r.value.type === 'event' && r.value.record.seq === cp.seq) return { cp, state: r.value.record.state, items, close };
      }
      close();
      throw new IndexProblem(`the log has no step ${cp.seq}`);
    }
    const opened = openLogLines(file, { line: cp.at.line, offset: cp.at.offset, ...(cp.at.compressedOffset !== undefined ? { compressedOffset: cp.at.compressedOffset } : {}) });
    try {
      const lines = opened.lines();
      const first = lines.next();
      if (first.done || !first.value.complete) throw new IndexProblem(`the line of checkpoint ${k - 1} is not in the log`);
      const raw = first.value.bytes.toString('utf8');
      const sealed = unsealLine(raw);
      if (sealed === null || chainHash(cp.at.prevHash, sealed.body) !== sealed.hash) throw new IndexProblem(`the line of checkpoint ${k - 1} does not follow from the hash the index gives`);
      const rec = JSON.parse(raw) as { e?: unknown; s?: unknown };
      if (rec.e !== cp.seq || typeof rec.s !== 'string' || !HASH_PATTERN.test(rec.s)) throw new IndexProblem(`the line of checkpoint ${k - 1} is not event ${cp.seq}`);
      const start: ScanStart = { header, prevHash: sealed.hash, lastSeq: cp.seq, line: cp.at.line + 1, offset: cp.at.offset + first.value.bytes.length + 1 };
      const scan = new LogScan({ [Symbol.iterator]: () => lines }, file, { allowTorn: true }, start);
      return { cp, state: rec.s, items: scan[Symbol.iterator](), close: () => opened.close() };
    } catch (err) {
      opened.close();
      throw err;
    }
  };

  const seekOnce = (n: number): SeekResult => {
    if (n === 0) return { step: 0, world: initial, before: null, event: null, delivered: null };
    const k = reader === null ? 0 : Math.floor(n / header.block);
    let world = initial;
    let opened: { items: Iterator<LogItem>; close: () => void };
    if (k === 0) {
      opened = scanFrom(trailer.start, 0);
    } else {
      const block = openBlock(k);
      opened = block;
      try {
        world = restoreWorld(model, block.cp.worldText, block.cp.refs, reader!, initialMap);
        // The restored world must be the one the log says its step left.
        const h = worldHash(model, world);
        if (h !== block.state) throw new IndexProblem(`the checkpoint at step ${block.cp.seq} restores state ${h}, the log says ${block.state}`);
      } catch (err) {
        block.close();
        throw err;
      }
    }
    let before: World | null = null;
    try {
      for (let r = opened.items.next(); !r.done; r = opened.items.next()) {
        const item = r.value;
        if (item.type !== 'event') continue;
        const ev = item.record;
        before = world;
        // Every message is checked on the way; the state hash, which proves the whole world, at the step itself.
        const s = stepTo(file, item.line, model, world, ev, ev.seq === n);
        world = s.world;
        if (ev.seq === n) return { step: n, world, before, event: ev, delivered: s.delivered };
      }
    } finally {
      opened.close();
    }
    throw new RangeError(`step ${n}: the log has steps 0..${trailer.events}`);
  };

  const handle: IndexedLog = {
    file,
    header,
    scenario,
    model,
    steps: trailer.events,
    end: endRecord,
    torn,
    compressed,
    indexFile,
    get indexState() {
      return indexState;
    },
    seek(n: number): SeekResult {
      if (!Number.isInteger(n) || n < 0 || n > trailer.events) throw new RangeError(`step ${n}: the log has steps 0..${trailer.events}`);
      try {
        return seekOnce(n);
      } catch (err) {
        if (!(err instanceof IndexProblem)) throw err;
        // A checkpoint that does not restore what the log says: the index was changed. Not trusted: rebuilt.
        opts.onNotice?.(`${indexFile}: not trusted (${err.message}): removed, and rebuilt from the log if the log is large enough to need one`);
        reader?.close();
        reader = null;
        rmSync(indexFile, { force: true });
        load();
        return seekOnce(n);
      }
    },
    *events(from: number, to: number): Generator<EventRecord, void, undefined> {
      if (from < 1 || to > trailer.events || from > to) return;
      const k = reader === null ? 0 : Math.floor(from / header.block);
      const { items, close } = k === 0 ? scanFrom(trailer.start, 0) : openBlock(k);
      try {
        for (let r = items.next(); !r.done; r = items.next()) {
          if (r.value.type !== 'event') continue;
          const seq = r.value.record.seq;
          if (seq > to) break;
          if (seq >= from) yield r.value.record;
        }
      } finally {
        close();
      }
    },
    close() {
      reader?.close();
      reader = null;
    },
  };
  return handle;
}

function tornText(file: string, offset: number, compressed: boolean): string {
  if (compressed) return '';
  const opened = openLogLines(file, { line: 0, offset });
  try {
    for (const l of opened.lines()) return l.bytes.subarray(0, 1 << 16).toString('utf8');
    return '';
  } finally {
    opened.close();
  }
}

/** The state after `step` of the log at `file`: open, seek, close. */
export function seek(file: string, stepNo: number, opts: OpenIndexedOptions = {}): SeekResult & { log: IndexedLog } {
  const log = openIndexed(file, opts);
  try {
    return { ...log.seek(stepNo), log };
  } finally {
    log.close();
  }
}
