/**
 * One opened log, ready for time travel: the records, the model that replays them, and the world at any
 * step on demand. A log of 100k steps holds 100k worlds' worth of history, so only every
 * CHECKPOINT_EVERY-th world is kept; the world at step N is the nearest checkpoint at or before N,
 * stepped forward with the logged choices (at most CHECKPOINT_EVERY - 1 steps), plus a small cache for
 * the step-by-step walking the inspector is used for.
 *
 * Opening a log replays it once, checking every delivery against its record (and the world hash at each
 * checkpoint and at the end); any mismatch is reported by `replayLog`, which names the exact line. The
 * full check (every state hash, the end record) runs afterwards in the background (verify.ts). A live
 * session starts empty and grows as `tdxsim run --inspect` delivers messages; a steered one (steer.ts)
 * is built the same way.
 *
 * While replaying, each delivery is tested for being a preemption (src/explore/minimise.ts's definition:
 * the previous delivery sent a message that could be delivered now, and another one was chosen), so a
 * counterexample's thread switches can be marked without another pass.
 *
 * A log too long to hold (`openPaged`, from PAGED_MIN_BYTES on) is not replayed at open: its records are
 * read by block through the checkpoint index and its worlds by seek (pagedLog.ts), so the time to open
 * it and show a step, and the memory it holds, do not grow with its length.
 */
import type { Message } from '../protocol/messages.ts';
import { stringifyCanonical } from '../log/canonical.ts';
import { LogError } from '../log/errors.ts';
import type { ParsedLog } from '../log/reader.ts';
import type { EndRecord, EventRecord, HeaderRecord } from '../log/schema.ts';
import { replayLog, scenarioFromLog } from '../replay/replay.ts';
import { enabledChoices, initialWorld, step } from '../runtime/step.ts';
import { createModel, type Model, type World } from '../runtime/world.ts';
import { worldHash } from '../runtime/worldHash.ts';
import type { Scenario } from '../scenario/schema.ts';
import { actorsFor } from '../../machines/registry.ts';
import { MODEL_VERSION } from '../version.ts';
import { formatFields, type FormatOptions } from '../session/format.ts';
import { formatOptionsFor } from '../session/session.ts';
import { messageLabel } from '../export/messageLabel.ts';
import type { IndexedLog } from '../replay/seek.ts';
import { PagedLog, type StepText } from './pagedLog.ts';
import { preemptionNote } from './preemption.ts';

export { preemptionNote } from './preemption.ts';
export type { StepText } from './pagedLog.ts';

export const CHECKPOINT_EVERY = 256;
const CACHE_SIZE = 8;

/**
 * From this size on, `tdxsim inspect` opens a log paged (through its checkpoint index) rather than whole:
 * about 80k events, where reading and replaying the whole log starts to cost seconds and hundreds of MB.
 */
export const PAGED_MIN_BYTES = 8 << 20;

export class InspectSession {
  /** Every record, for a log held whole (empty for a paged one: read records with `event`). */
  readonly events: EventRecord[] = [];
  end: EndRecord | null = null;
  readonly model: Model;
  readonly fmt: FormatOptions;
  readonly modelVersionMatches: boolean;
  /** The torn last line of a log opened with `allowTorn` (null for a complete log). */
  torn: ParsedLog['torn'] = null;
  /** The log's signature as the reader saw it (null: unsigned, or a live run). */
  signed: ParsedLog['signed'] = null;
  /** Steps that are preemptions, with what they preempted (a log held whole; a paged one: `preemptionAt`). */
  readonly preemptions = new Map<number, string>();
  /** The log read by block through its index, for a log too long to hold (null: held whole). */
  readonly paged: PagedLog | null = null;
  readonly #text: StepText[] = [];
  readonly #checkpoints: World[] = [];
  readonly #effects = new Map<number, number[]>();
  #cache: { n: number; world: World }[] = [];
  #listeners = new Set<() => void>();

  private constructor(
    /** Shown to the user; the log's path, or a description of an in-memory run. */
    readonly file: string,
    readonly header: HeaderRecord,
    readonly scenario: Scenario,
    /** True while a `run --inspect` is still delivering messages into this session. */
    public live: boolean,
    indexed: IndexedLog | null = null,
  ) {
    // A paged log's worlds come from its seeks: they must be the same model's.
    this.model = indexed?.model ?? createModel(actorsFor(scenario));
    this.fmt = formatOptionsFor(scenario);
    this.modelVersionMatches = header.model === MODEL_VERSION;
    if (indexed !== null) this.paged = new PagedLog(indexed, this.fmt);
    else this.#checkpoints.push(initialWorld(this.model));
  }

  /**
   * A log opened for seeking (src/replay/seek.ts `openIndexed`), read by block as it is looked at. Nothing
   * is replayed here: the index was built by a verified pass, each seek proves its checkpoint against
   * the log, and the full check runs in the background as for any log (verify.ts, streaming the file).
   */
  static openPaged(log: IndexedLog): InspectSession {
    const s = new InspectSession(log.file, log.header, log.scenario, false, log);
    s.end = log.end;
    s.torn = log.torn;
    return s;
  }

  /** Replays the whole log once; throws LogError (file and line) if the model does not reproduce it. */
  static open(log: ParsedLog, file: string): InspectSession {
    const s = new InspectSession(file, log.header, scenarioFromLog(log, file), false);
    let world = s.#checkpoints[0]!;
    let sent: readonly Message[] = [];
    const diverged = (seq: number): never => {
      // replayLog re-checks from the start and throws the precise error for the first bad line.
      replayLog(log, file, { to: seq });
      throw new LogError('REPLAY_DIVERGED', file, seq + 1, 'replay diverged: the world hash after this step differs from the log');
    };
    for (const ev of log.events) {
      const enabled = enabledChoices(s.model, world);
      if (ev.choice >= enabled.length) diverged(ev.seq);
      const r = step(s.model, world, ev.choice, enabled);
      const m = r.delivered;
      if (m.from !== ev.from || m.to !== ev.to || m.name !== ev.name || m.kind !== ev.kind || m.cause !== ev.cause || stringifyCanonical(m.payload) !== stringifyCanonical(ev.payload)) {
        diverged(ev.seq);
      }
      world = r.world;
      const checkpoint = ev.seq % CHECKPOINT_EVERY === 0 || ev.seq === log.events.length;
      if (checkpoint && worldHash(s.model, world) !== ev.state) diverged(ev.seq);
      s.append(ev, m, world, preemptionNote(enabled, sent, m, ev.seq));
      sent = r.sent;
    }
    s.end = log.end;
    s.torn = log.torn;
    s.signed = log.signed;
    return s;
  }

  /** An empty session for a run that is about to start; `append` feeds it. */
  static live(header: HeaderRecord, scenario: Scenario, file: string): InspectSession {
    return new InspectSession(file, header, scenario, true);
  }

  /** Record delivery `ev` (the next step), the message as the model delivered it and the world after it. */
  append(ev: EventRecord, delivered: Message, world: World, preemption: string | null = null): void {
    if (this.paged !== null) throw new Error(`${this.file} is paged: a paged log is read, never appended to`);
    if (ev.seq !== this.events.length + 1) throw new RangeError(`append: expected step ${this.events.length + 1}, got ${ev.seq}`);
    this.events.push(ev);
    if (preemption !== null) this.preemptions.set(ev.seq, preemption);
    this.#text.push({ label: messageLabel(ev), fields: formatFields(delivered.payload, this.fmt) });
    if (ev.cause !== null) {
      const list = this.#effects.get(ev.cause) ?? [];
      list.push(ev.seq);
      this.#effects.set(ev.cause, list);
    }
    if (ev.seq % CHECKPOINT_EVERY === 0) this.#checkpoints.push(world);
    this.#remember(ev.seq, world);
  }

  finish(end: EndRecord | null): void {
    this.end = end;
    this.live = false;
    this.notify();
  }

  get steps(): number {
    return this.paged?.steps ?? this.events.length;
  }

  /** Step `seq`'s record (1 ≤ seq ≤ steps). */
  event(seq: number): EventRecord {
    if (this.paged !== null) return this.paged.event(seq);
    const ev = this.events[seq - 1];
    if (!ev) throw new RangeError(`step ${seq}: the log has steps 1..${this.events.length}`);
    return ev;
  }

  /** For an explored schedule: why step `seq` is a preemption (null when it is not). */
  preemptionAt(seq: number): string | null {
    return this.paged !== null ? this.paged.preemption(seq) : (this.preemptions.get(seq) ?? null);
  }

  /** Preemptions along the whole schedule; null for a paged log, which is not read whole to count them. */
  get preemptionCount(): number | null {
    return this.paged !== null ? null : this.preemptions.size;
  }

  /** The records as a parsed log (what replay and verification take); a paged log is verified from its file instead. */
  parsedLog(): ParsedLog {
    if (this.paged !== null) throw new Error(`${this.file} is paged: it is not held in memory`);
    return { header: this.header, events: this.events, end: this.end, lines: 1 + this.events.length + (this.end ? 1 : 0), torn: this.torn, signed: this.signed };
  }

  textOf(seq: number): StepText {
    if (this.paged !== null) return this.paged.text(seq);
    const t = this.#text[seq - 1];
    if (!t) throw new RangeError(`step ${seq}: the log has steps 1..${this.events.length}`);
    return t;
  }

  /** Steps whose message was sent while handling step `seq`. */
  effectsOf(seq: number): number[] {
    if (this.paged !== null) return this.paged.effectsOf(seq);
    return this.#effects.get(seq) ?? [];
  }

  /** The world after step `n` (0 = before the first delivery). */
  worldAt(n: number): World {
    if (this.paged !== null) return this.paged.worldAt(n);
    if (!Number.isInteger(n) || n < 0 || n > this.events.length) throw new RangeError(`step ${n}: the log has steps 0..${this.events.length}`);
    const hit = this.#cache.find((c) => c.n === n);
    if (hit) return hit.world;
    // Start from the closest known world at or before n: a cached one or a checkpoint.
    let from = Math.floor(n / CHECKPOINT_EVERY) * CHECKPOINT_EVERY;
    let world = this.#checkpoints[from / CHECKPOINT_EVERY]!;
    for (const c of this.#cache) {
      if (c.n <= n && c.n > from) {
        from = c.n;
        world = c.world;
      }
    }
    for (let seq = from + 1; seq <= n; seq++) world = step(this.model, world, this.events[seq - 1]!.choice).world;
    this.#remember(n, world);
    return world;
  }

  /**
   * The worlds before and after step `n` (n ≥ 1), the second stepped from the first, so an actor the step
   * did not touch has the very same snapshot object in both (which is how the page finds what changed).
   */
  around(n: number): { before: World; after: World } {
    if (this.paged !== null) return this.paged.around(n);
    const before = this.worldAt(n - 1);
    const after = step(this.model, before, this.events[n - 1]!.choice).world;
    this.#remember(n, after);
    return { before, after };
  }

  /** The message delivered at step `seq`, as the model holds it (bigints, not the log's hex strings). */
  messageAt(seq: number): Message {
    const before = this.worldAt(seq - 1);
    return enabledChoices(this.model, before)[this.event(seq).choice]!;
  }

  /** Releases a paged log's file and index (nothing to release for a log held whole). */
  close(): void {
    this.paged?.close();
  }

  /** Called after each batch of appends and at the end of a live run. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  notify(): void {
    for (const l of this.#listeners) l();
  }

  #remember(n: number, world: World): void {
    this.#cache = [{ n, world }, ...this.#cache.filter((c) => c.n !== n)].slice(0, CACHE_SIZE);
  }
}
