/**
 * The compact event encoding (log version 2; README "The log"). A log is mostly the same few dozen
 * messages over and over, each with a payload that differs from that message's last one in a field or two,
 * so within a block of events:
 *
 *   - a message (from, to, kind, name) is defined on first use, `"m":[from,to,kind,name]`, and named by
 *     its number afterwards, `"m":7`; an actor is written by id on its first use and by number afterwards;
 *   - a payload is written whole (`p`) the first time, then as the keys that changed (`q`), or not at all
 *     when it is the same payload again;
 *   - the cause is left out when it is the previous step (almost always), the choice when it is 0.
 *
 * Every block starts afresh (at each seq that is a multiple of the header's `block`), so a reader can
 * start decoding at a block's first line with nothing but the header: that is where checkpoints sit
 * (src/log/checkpointIndex.ts). Both sides keep only one block's tables, whatever the log's length.
 */
import { stringifyCanonical } from './canonical.ts';
import type { EncodedEvent, EventInput, EventRecord } from './schema.ts';

/** Whether two payload values write the same JSON (bigints as their hex strings). */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  try {
    return stringifyCanonical(a) === stringifyCanonical(b);
  } catch {
    // Not JSON: the record's own serialisation reports it, at its field.
    return false;
  }
}

/** The changed keys of `next` against `prev`, or null when the two do not have the same keys in the same order. */
function delta(prev: Record<string, unknown>, next: Record<string, unknown>): Record<string, unknown> | null {
  const pk = Object.keys(prev);
  const nk = Object.keys(next);
  if (pk.length !== nk.length) return null;
  const q: Record<string, unknown> = {};
  for (let i = 0; i < nk.length; i++) {
    const k = nk[i]!;
    if (pk[i] !== k) return null;
    if (!sameValue(prev[k], next[k])) q[k] = next[k];
  }
  return q;
}

const isBlockStart = (seq: number, block: number) => seq % block === 0;

/** Turns events into their lines' records, block by block. */
export class EventEncoder {
  readonly #block: number;
  #messages = new Map<string, number>();
  #actors = new Map<string, number>();
  #payloads: Record<string, unknown>[] = [];

  constructor(block: number) {
    this.#block = block;
  }

  /**
   * The record to seal for `ev` (key order e, m, p|q, c, x, s); `ev` is already validated. The tables
   * change only when `commit` is called, once the line is written, so a refused event leaves no trace.
   */
  encode(ev: EventInput): { record: Record<string, unknown>; commit: () => void } {
    const fresh = isBlockStart(ev.seq, this.#block);
    const messages = fresh ? new Map<string, number>() : this.#messages;
    const actors = fresh ? new Map<string, number>() : this.#actors;
    const payloads = fresh ? [] : this.#payloads;
    const key = ev.from + '\u0000' + ev.to + '\u0000' + ev.kind + '\u0000' + ev.name;
    let id = messages.get(key);
    let m: unknown;
    const newActors: string[] = [];
    const actor = (a: string): string | number => {
      const n = actors.get(a) ?? (newActors.includes(a) ? actors.size + newActors.indexOf(a) : undefined);
      if (n !== undefined) return n;
      newActors.push(a);
      return a;
    };
    if (id === undefined) {
      id = messages.size;
      const from = actor(ev.from);
      m = [from, actor(ev.to), ev.kind, ev.name];
    } else {
      m = id;
    }
    const record: Record<string, unknown> = { e: ev.seq, m };
    const payload = ev.payload as Record<string, unknown>;
    const prev = payloads[id];
    const q = prev === undefined ? null : delta(prev, payload);
    if (q === null) record['p'] = payload;
    else if (Object.keys(q).length > 0) record['q'] = q;
    if (ev.cause === null) record['c'] = null;
    else if (ev.cause !== ev.seq - 1) record['c'] = ev.seq - ev.cause;
    if (ev.choice !== 0) record['x'] = ev.choice;
    record['s'] = ev.state;
    const messageId = id;
    return {
      record,
      commit: () => {
        this.#messages = messages;
        this.#actors = actors;
        this.#payloads = payloads;
        if (!messages.has(key)) messages.set(key, messageId);
        for (const a of newActors) actors.set(a, actors.size);
        payloads[messageId] = payload;
      },
    };
  }
}

/** What the decoder reports for a line that is valid JSON of the right shape but not a valid encoding. */
export type CodecFail = (detail: string, field: string) => never;

/** Reads event records back, block by block; the mirror of `EventEncoder`. */
export class EventDecoder {
  readonly #block: number;
  #messages: { from: string; to: string; kind: string; name: string }[] = [];
  #defined = new Set<string>();
  #actors: string[] = [];
  #payloads: Record<string, unknown>[] = [];

  constructor(block: number) {
    this.#block = block;
  }

  decode(r: EncodedEvent, hash: string, fail: CodecFail): EventRecord {
    const seq = r.e;
    if (isBlockStart(seq, this.#block)) {
      this.#messages = [];
      this.#defined.clear();
      this.#actors = [];
      this.#payloads = [];
    }
    let id: number;
    if (typeof r.m === 'number') {
      id = r.m;
      if (id >= this.#messages.length) fail(`message ${id} is not defined in this block (${this.#messages.length} are)`, 'm');
    } else {
      const from = this.#actor(r.m[0], 'm[0]', fail);
      const to = this.#actor(r.m[1], 'm[1]', fail);
      const [, , kind, name] = r.m;
      const key = from + '\u0000' + to + '\u0000' + kind + '\u0000' + name;
      if (this.#defined.has(key)) fail(`${name} from ${from} to ${to} is already defined in this block`, 'm');
      this.#defined.add(key);
      id = this.#messages.length;
      this.#messages.push({ from, to, kind, name });
    }
    const msg = this.#messages[id]!;
    const prev = this.#payloads[id];
    let payload: Record<string, unknown>;
    if (r.p !== undefined) {
      if (r.q !== undefined) fail('an event has p or q, not both', 'q');
      payload = r.p;
    } else if (prev === undefined) {
      fail(`the first ${msg.name} of a block needs its payload (p)`, 'p');
    } else if (r.q !== undefined) {
      const q = r.q;
      for (const k of Object.keys(q)) if (!Object.hasOwn(prev, k)) fail(`q changes ${JSON.stringify(k)}, which the previous ${msg.name} payload does not have`, 'q');
      payload = {};
      for (const k of Object.keys(prev)) payload[k] = Object.hasOwn(q, k) ? q[k] : prev[k];
    } else {
      payload = prev;
    }
    this.#payloads[id] = payload;
    let cause: number | null;
    if (r.c === null) cause = null;
    else {
      cause = seq - (r.c ?? 1);
      if (cause < 1) fail(r.c === undefined ? 'step 1 has no previous step to be caused by: its c is null' : `c ${r.c} points before step 1`, 'c');
    }
    return { type: 'event', seq, from: msg.from, to: msg.to, kind: msg.kind, name: msg.name, payload, cause, choice: r.x ?? 0, state: r.s, hash };
  }

  #actor(ref: string | number, field: string, fail: CodecFail): string {
    if (typeof ref === 'number') {
      const id = this.#actors[ref];
      if (id === undefined) fail(`actor ${ref} is not defined in this block (${this.#actors.length} are)`, field);
      return id;
    }
    const known = this.#actors.indexOf(ref);
    if (known >= 0) fail(`actor ${ref} is number ${known} in this block: written by id once only`, field);
    this.#actors.push(ref);
    return ref;
  }
}
