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
import { childPath, NotJsonError, stringifyCanonical } from './canonical.ts';
import type { EncodedEvent, EventInput, EventRecord } from './schema.ts';

/**
 * The JSON text of one payload value, as stringifyCanonical writes it (bigints as hex strings), or
 * undefined for an undefined value (an absent key, as in JSON). A value that is not JSON is refused with
 * its path in the payload.
 */
function valueText(key: string, v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (Number.isFinite(v)) return JSON.stringify(v);
      break;
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v < 0n ? '"-0x' + (-v).toString(16) + '"' : '"0x' + v.toString(16) + '"';
    case 'undefined':
      return undefined;
    case 'object':
      if (v === null) return 'null';
      try {
        return stringifyCanonical(v);
      } catch (err) {
        if (!(err instanceof NotJsonError)) throw err;
        const at = childPath('payload', key);
        throw new NotJsonError(err.path === '(root)' ? at : err.path.startsWith('[') ? at + err.path : `${at}.${err.path}`, err.reason);
      }
  }
  throw new NotJsonError(childPath('payload', key), typeof v === 'number' ? `${v} is not a JSON number` : `${typeof v} is not a JSON value`);
}

/** A payload as the keys it writes and their values' JSON texts, each value serialised once. */
interface PayloadText {
  keys: string[];
  texts: string[];
}

function payloadText(payload: Record<string, unknown>): PayloadText {
  const keys: string[] = [];
  const texts: string[] = [];
  for (const k of Object.keys(payload)) {
    const t = valueText(k, payload[k]);
    if (t === undefined) continue;
    keys.push(k);
    texts.push(t);
  }
  return { keys, texts };
}

function objectText(keys: readonly string[], texts: readonly string[], only?: readonly boolean[]): string {
  let s = '{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    if (only !== undefined && !only[i]) continue;
    s += (first ? '' : ',') + JSON.stringify(keys[i]) + ':' + texts[i];
    first = false;
  }
  return s + '}';
}

/** Which keys changed against `prev`, or null when the two do not have the same keys in the same order. */
function changed(prev: PayloadText, next: PayloadText): boolean[] | null {
  if (prev.keys.length !== next.keys.length) return null;
  const out = new Array<boolean>(next.keys.length);
  for (let i = 0; i < next.keys.length; i++) {
    if (prev.keys[i] !== next.keys[i]) return null;
    out[i] = prev.texts[i] !== next.texts[i];
  }
  return out;
}

const isBlockStart = (seq: number, block: number) => seq % block === 0;

/** Turns events into their lines' records, block by block. */
export class EventEncoder {
  readonly #block: number;
  #messages = new Map<string, number>();
  #actors = new Map<string, number>();
  #payloads: PayloadText[] = [];

  constructor(block: number) {
    this.#block = block;
  }

  /**
   * The JSON text of the record to seal for `ev` (keys e, m, p|q, c, x, s, in that order); `ev` is
   * already validated. The tables change only when `commit` is called, once the line is written, so a
   * refused event leaves no trace.
   */
  encode(ev: EventInput): { body: string; commit: () => void } {
    const fresh = isBlockStart(ev.seq, this.#block);
    const messages = fresh ? new Map<string, number>() : this.#messages;
    const actors = fresh ? new Map<string, number>() : this.#actors;
    const payloads = fresh ? [] : this.#payloads;
    const key = ev.from + '\u0000' + ev.to + '\u0000' + ev.kind + '\u0000' + ev.name;
    let id = messages.get(key);
    let m: string;
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
      m = JSON.stringify([from, actor(ev.to), ev.kind, ev.name]);
    } else {
      m = String(id);
    }
    let body = '{"e":' + ev.seq + ',"m":' + m;
    const payload = payloadText(ev.payload as Record<string, unknown>);
    const prev = payloads[id];
    const diff = prev === undefined ? null : changed(prev, payload);
    if (diff === null) body += ',"p":' + objectText(payload.keys, payload.texts);
    else if (diff.includes(true)) body += ',"q":' + objectText(payload.keys, payload.texts, diff);
    if (ev.cause === null) body += ',"c":null';
    else if (ev.cause !== ev.seq - 1) body += ',"c":' + (ev.seq - ev.cause);
    if (ev.choice !== 0) body += ',"x":' + ev.choice;
    body += ',"s":' + JSON.stringify(ev.state) + '}';
    const messageId = id;
    return {
      body,
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
