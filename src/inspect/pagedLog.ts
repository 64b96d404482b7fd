/**
 * A log too long to hold, seen through its checkpoint index (src/replay/seek.ts): records are read by
 * block of the log's encoding (`header.block` events, the unit the index and the event codec both start
 * afresh at), decoded on demand and kept in a small LRU; the world at a step is the nearest checkpoint
 * plus fewer than `block` re-executed steps, or a world already at hand stepped forward. Memory holds the
 * model, MAX_BLOCKS decoded blocks and a few worlds, however long the log.
 *
 * What the in-memory session (session.ts) computes once for every step when it opens a log, this computes
 * for the steps asked about: a step's text (from its record: the log writes bigints as `0x…` strings,
 * which are turned back into bigints so the text is the CLI's), the steps its handling sent (found by
 * reading forward until every message it sent and that was ever delivered is found), and, for an
 * explored schedule, the preemptions of a block.
 */
import type { EventRecord } from '../log/schema.ts';
import { messageLabel } from '../export/messageLabel.ts';
import type { Message } from '../protocol/messages.ts';
import { checkDelivery, type IndexedLog } from '../replay/seek.ts';
import { enabledChoices, step } from '../runtime/step.ts';
import type { World } from '../runtime/world.ts';
import { formatFields, type FormatOptions } from '../session/format.ts';
import { preemptionNote } from './preemption.ts';

/** Decoded blocks kept: 64 × 1024 events of about 1 KB decoded each, well under 100 MB. */
export const MAX_BLOCKS = 64;
const MAX_WORLDS = 8;

/** What the sequence view and the filter read for each step. */
export interface StepText {
  /** `EPT_VIOLATION (TD exit)`. */
  label: string;
  /** The CLI's field list: `RAX=0x30 RCX=0x1 … R8=0x8000fe000000`, SPTEs decoded. */
  fields: string;
}

interface Block {
  first: number;
  events: EventRecord[];
  text: (StepText | undefined)[];
  /** Preemption notes of an explored schedule, computed with the block's first request for one. */
  preemptions: Map<number, string> | null;
}

const HEX = /^-?0x[0-9a-f]+$/;

/** A payload as the log holds it, with the bigints it was written from (`0x…` strings) restored. */
export function revivePayload(v: unknown): unknown {
  if (typeof v === 'string') return HEX.test(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(revivePayload);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = revivePayload(x);
    return out;
  }
  return v;
}

/** A step's text from its record alone (no re-execution): what a filter over the whole log reads. */
export function textOfRecord(ev: EventRecord, fmt: FormatOptions): StepText {
  return { label: messageLabel(ev), fields: formatFields(revivePayload(ev.payload) as object, fmt) };
}

export class PagedLog {
  readonly block: number;
  /** Map order is use order: the first entry is the least recently used. */
  readonly #blocks = new Map<number, Block>();
  #worlds: { n: number; world: World }[] = [];
  /** How many messages each step sent that are still in flight at the log's end (never delivered). */
  #undelivered: Map<number, number> | null = null;
  /** Blocks decoded since opening (a block evicted and asked for again counts twice). */
  blocksDecoded = 0;

  constructor(
    readonly log: IndexedLog,
    readonly fmt: FormatOptions,
  ) {
    this.block = log.header.block;
  }

  get steps(): number {
    return this.log.steps;
  }

  #check(seq: number): void {
    if (!Number.isInteger(seq) || seq < 1 || seq > this.steps) throw new RangeError(`step ${seq}: the log has steps 1..${this.steps}`);
  }

  #blockOf(seq: number): Block {
    const k = Math.floor(seq / this.block);
    const hit = this.#blocks.get(k);
    if (hit !== undefined) {
      this.#blocks.delete(k);
      this.#blocks.set(k, hit);
      return hit;
    }
    const first = Math.max(1, k * this.block);
    const last = Math.min((k + 1) * this.block - 1, this.steps);
    const events = [...this.log.events(first, last)];
    if (events.length !== last - first + 1) throw new RangeError(`steps ${first}..${last}: the log gave ${events.length} records`);
    const b: Block = { first, events, text: new Array<StepText | undefined>(events.length), preemptions: null };
    this.blocksDecoded++;
    this.#blocks.set(k, b);
    if (this.#blocks.size > MAX_BLOCKS) this.#blocks.delete(this.#blocks.keys().next().value!);
    return b;
  }

  /** Blocks decoded and held now (the LRU's size). */
  get blocksHeld(): number {
    return this.#blocks.size;
  }

  event(seq: number): EventRecord {
    this.#check(seq);
    const b = this.#blockOf(seq);
    return b.events[seq - b.first]!;
  }

  text(seq: number): StepText {
    this.#check(seq);
    const b = this.#blockOf(seq);
    const i = seq - b.first;
    return (b.text[i] ??= textOfRecord(b.events[i]!, this.fmt));
  }

  /**
   * Records `from` … `to` in order, for a pass over much of the log (a filter): read straight from the
   * file, the LRU neither consulted nor disturbed, so a search does not evict what the page is showing.
   */
  *records(from: number, to: number): Generator<EventRecord, void, undefined> {
    yield* this.log.events(Math.max(1, from), Math.min(to, this.steps));
  }

  /** The world after step `n` (0 = the initial world). */
  worldAt(n: number): World {
    if (!Number.isInteger(n) || n < 0 || n > this.steps) throw new RangeError(`step ${n}: the log has steps 0..${this.steps}`);
    const hit = this.#worlds.find((w) => w.n === n);
    if (hit) return hit.world;
    // A world already at hand a few steps back is cheaper to step from than a checkpoint.
    let from: { n: number; world: World } | null = null;
    for (const w of this.#worlds) if (w.n < n && n - w.n < this.block && (from === null || w.n > from.n)) from = w;
    if (from === null) {
      const r = this.log.seek(n);
      if (r.before !== null) this.#remember(n - 1, r.before);
      this.#remember(n, r.world);
      return r.world;
    }
    let world = from.world;
    for (let seq = from.n + 1; seq <= n; seq++) world = this.#stepFrom(world, seq).world;
    this.#remember(n, world);
    return world;
  }

  /** Step `seq` re-executed from the world before it, its delivery checked against its record (as a seek checks it). */
  #stepFrom(before: World, seq: number): { world: World; delivered: Message; sent: Message[]; enabled: Message[] } {
    const ev = this.event(seq);
    const model = this.log.model;
    const enabled = enabledChoices(model, before);
    const r = step(model, before, ev.choice, enabled);
    // Line seq + 1: the header is line 1 and every event a line. The state hash was proven at the checkpoint.
    checkDelivery(this.log.file, seq + 1, r.delivered, ev, r.world, model, false);
    return { world: r.world, delivered: r.delivered, sent: r.sent, enabled };
  }

  /** The worlds before and after step `n` (n ≥ 1), the second stepped from the first. */
  around(n: number): { before: World; after: World } {
    const before = this.worldAt(n - 1);
    // Stepped from `before` even when a world at n is at hand: an actor the step did not touch must be the
    // very same object in both (that is how the page finds what changed), and one step costs little.
    const after = this.#stepFrom(before, n).world;
    this.#remember(n, after);
    return { before, after };
  }

  /** Steps whose message was sent while handling step `seq`: read forward until all of them that were ever delivered are found. */
  effectsOf(seq: number): number[] {
    const sentHere = this.worldAt(seq).pending.filter((m) => m.cause === seq).length;
    const expected = sentHere - this.#undeliveredFrom(seq);
    const out: number[] = [];
    for (let s = seq + 1; out.length < expected && s <= this.steps; s++) if (this.event(s).cause === seq) out.push(s);
    return out;
  }

  #undeliveredFrom(seq: number): number {
    if (this.#undelivered === null) {
      const m = new Map<number, number>();
      for (const p of this.worldAt(this.steps).pending) if (p.cause !== null) m.set(p.cause, (m.get(p.cause) ?? 0) + 1);
      this.#undelivered = m;
    }
    return this.#undelivered.get(seq) ?? 0;
  }

  /** For an explored schedule: why step `seq` is a preemption (null when it is not). */
  preemption(seq: number): string | null {
    this.#check(seq);
    const b = this.#blockOf(seq);
    if (b.preemptions === null) {
      const notes = new Map<number, string>();
      // The messages the step before sent must be the very objects in flight after it: step it here.
      let world = this.worldAt(0);
      let sent: readonly Message[] = [];
      if (b.first >= 2) {
        const r = this.#stepFrom(this.worldAt(b.first - 2), b.first - 1);
        world = r.world;
        sent = r.sent;
      }
      for (let s = b.first; s < b.first + b.events.length; s++) {
        const r = this.#stepFrom(world, s);
        const note = preemptionNote(r.enabled, sent, r.delivered, s);
        if (note !== null) notes.set(s, note);
        world = r.world;
        sent = r.sent;
      }
      b.preemptions = notes;
    }
    return b.preemptions.get(seq) ?? null;
  }

  #remember(n: number, world: World): void {
    this.#worlds = [{ n, world }, ...this.#worlds.filter((w) => w.n !== n)].slice(0, MAX_WORLDS);
  }

  close(): void {
    this.log.close();
    this.#blocks.clear();
    this.#worlds = [];
  }
}
