/**
 * The world's state hash, as every log event records it, and the readable view `tdxsim replay` prints.
 *
 * The hash is a Merkle hash over the world's plain data, so that a step costs what it changed, not the
 * size of the world (before log version 2 every step serialised the whole world, guest programs
 * included, which made a logged run quadratic in its length). Snapshots, contexts, payloads and messages
 * are immutable and a step shares every unchanged part with the world before it, so the hasher keeps, per
 * actor slot, a *shadow* of the context it hashed last (each value, its token, and the shadows of large
 * children) and re-tokenises only what is not the very same object or value as before. Large containers
 * (a guest program, a page table) are also remembered by identity, so a world that is not the successor
 * of the last one hashed still finds them. No per-object WeakMap on the hot path: its entries cost the
 * garbage collector more than the hashing they save.
 *
 * Definition (log version 2; changing it changes the log version, src/log/schema.ts):
 *
 *   digest(text, n)   the first n characters of base64url(SHA-256(UTF-8 text))
 *   token(v)          string: its JSON text; finite number: its JSON text (-0 is 0); true, false, null;
 *                     undefined: u; bigint: 0x… or -0x… (lowercase hex); plain object or array: its text
 *                     when that is at most 64 characters long, else # followed by digest(text, 22);
 *                     nothing else (a function, a class instance, NaN) is state
 *   text(object)      {"key":token,…} in own-key order;  text(array): [token,…]
 *   actorText(s)      {"status":"…","value":token,"context":token} for XState snapshot s, followed by
 *                     ,"historyValue":{"stateId":["nodeId",…]} when it has history, and ,"output":token
 *                     and ,"error":token when they are defined
 *   worldText(w)      {"seq":N,"nextId":N,"actors":[#a,…],"pending":[token,…],"failures":token}, where
 *                     a is digest(actorText, 22) of each actor in model order, pending the messages in
 *                     flight in send order (plain objects {id,from,to,kind,name,payload,cause})
 *   state hash        digest(worldText(w), 11): 11 base64url characters, 66 bits
 *
 * Every token is unambiguous (strings are quoted, bigints start 0x, references #), so equal hashes mean
 * equal worlds, a bigint and its hex string told apart. A checkpoint index stores exactly these texts
 * (src/log/checkpointIndex.ts), so a restored world is proven against the log's hash.
 */
import { hash } from 'node:crypto';
import type { AnyMachineSnapshot } from 'xstate';
import { ModelBug } from './errors.ts';
import type { Model, World } from './world.ts';

/** Characters of a node digest (132 bits) and of a state hash (66 bits). */
export const NODE_DIGEST_CHARS = 22;
export const STATE_HASH_CHARS = 11;
/** A container whose text is at most this long is written inline in its parent's text. */
export const INLINE_MAX = 64;
/** A container whose text is at least this long is also remembered by identity (a WeakMap). */
const LARGE_TEXT = 4096;

/** The first `chars` characters of base64url(SHA-256(text)). */
export function digestText(text: string, chars: number): string {
  return hash('sha256', text, 'base64url').slice(0, chars);
}

/**
 * A container as last hashed: the object (whose values are what the tokens were computed from), its
 * token, and per key (or index) the value's token and, for a container value that holds a digest, its own
 * shadow. `keys` is null for an array.
 */
export interface Shadow {
  readonly v: object;
  readonly tok: string;
  readonly keys: readonly string[] | null;
  readonly toks: readonly string[];
  /** null when no value holds a digest (most containers: no array to allocate). */
  readonly kids: readonly (Shadow | undefined)[] | null;
  /** Whether its text holds a digest reference (directly or in an inlined child). */
  readonly hasRefs: boolean;
}

const large = new WeakMap<object, Shadow>();
/** `"key":` for the keys seen lately: contexts reuse a small vocabulary of keys. */
const keyPrefix = new Map<string, string>();
const KEY_CACHE_LIMIT = 1 << 14;

function keyText(k: string): string {
  let t = keyPrefix.get(k);
  if (t === undefined) {
    if (keyPrefix.size >= KEY_CACHE_LIMIT) keyPrefix.clear();
    t = JSON.stringify(k) + ':';
    keyPrefix.set(k, t);
  }
  return t;
}

function notState(v: object): never {
  const name = (v as { constructor?: { name?: string } }).constructor?.name ?? 'unknown';
  throw new TypeError(`state hash: ${name} is not a plain object or array`);
}

/** Tokens of the strings seen lately: state names and enumerations, a small vocabulary. */
const stringTokens = new Map<string, string>();

/** The token of a value that is not a container. */
function primitiveToken(v: unknown): string {
  switch (typeof v) {
    case 'string': {
      let t = stringTokens.get(v);
      if (t === undefined) {
        if (stringTokens.size >= KEY_CACHE_LIMIT) stringTokens.clear();
        t = JSON.stringify(v);
        if (v.length <= 64) stringTokens.set(v, t);
      }
      return t;
    }
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`state hash: ${v} is not a finite number`);
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v < 0n ? '-0x' + (-v).toString(16) : '0x' + v.toString(16);
    case 'undefined':
      return 'u';
    default:
      if (v === null) return 'null';
      throw new TypeError(`state hash: a ${typeof v} is not state`);
  }
}

/** The token of a container's text: inline when short, a digest reference otherwise. */
export function containerToken(text: string): string {
  return text.length <= INLINE_MAX ? text : '#' + digestText(text, NODE_DIGEST_CHARS);
}

/**
 * The shadow of container `v`, reusing `hint` (the shadow of what stood in its place last time) for every
 * key whose value is the same object or primitive as then.
 */
export function shadowOf(v: object, hint: Shadow | undefined): Shadow {
  if (hint !== undefined && hint.v === v) return hint;
  const known = large.get(v);
  if (known !== undefined) return known;
  const isArray = Array.isArray(v);
  if (!isArray) {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) notState(v);
  }
  const keys = isArray ? null : Object.keys(v);
  const n = keys === null ? (v as unknown[]).length : keys.length;
  const toks = new Array<string>(n);
  let kids: (Shadow | undefined)[] | null = null;
  // A hint of the other kind (array for object) or with other keys only helps where keys line up.
  const h = hint !== undefined && (hint.keys === null) === isArray ? hint : undefined;
  const hv = h?.v as Record<string, unknown> | unknown[] | undefined;
  let text = isArray ? '[' : '{';
  let hasRefs = false;
  for (let i = 0; i < n; i++) {
    const k = keys === null ? '' : keys[i]!;
    const x = keys === null ? (v as unknown[])[i] : (v as Record<string, unknown>)[k];
    const aligned = h !== undefined && i < h.toks.length && (keys === null || h.keys![i] === k);
    let t: string;
    let kid: Shadow | undefined;
    if (aligned && (keys === null ? (hv as unknown[])[i] : (hv as Record<string, unknown>)[k]) === x) {
      t = h.toks[i]!;
      kid = h.kids?.[i];
    } else if (typeof x === 'object' && x !== null) {
      const s = shadowOf(x, aligned ? h.kids?.[i] : undefined);
      t = s.tok;
      // Only digested children (and short ones that hold digested ones) are worth a shadow of their own;
      // other short ones are cheaper to write again.
      kid = t.charCodeAt(0) === 0x23 || s.hasRefs ? s : undefined;
    } else {
      t = primitiveToken(x);
    }
    toks[i] = t;
    if (kid !== undefined) {
      kids ??= new Array<Shadow | undefined>(n);
      kids[i] = kid;
      hasRefs = true;
    }
    text += (i === 0 ? '' : ',') + (keys === null ? t : keyText(k) + t);
  }
  text += isArray ? ']' : '}';
  const s: Shadow = { v, tok: containerToken(text), keys, toks, kids, hasRefs };
  if (text.length >= LARGE_TEXT) large.set(v, s);
  return s;
}

/** The text of the container a shadow stands for (its digest is taken over this). */
export function shadowText(s: Shadow): string {
  let text = s.keys === null ? '[' : '{';
  for (let i = 0; i < s.toks.length; i++) text += (i === 0 ? '' : ',') + (s.keys === null ? s.toks[i] : keyText(s.keys[i]!) + s.toks[i]);
  return text + (s.keys === null ? ']' : '}');
}

/** The token of any value inside a container's text. */
export function token(v: unknown): string {
  return typeof v === 'object' && v !== null ? shadowOf(v, undefined).tok : primitiveToken(v);
}

/** A container's text (what its digest is taken over). */
export function nodeText(v: object): string {
  return shadowText(shadowOf(v, undefined));
}

/** An actor slot as last hashed: the snapshot, its digest, and its context's shadow. */
interface ActorShadow {
  readonly s: AnyMachineSnapshot;
  readonly d: string;
  readonly ctx: Shadow | undefined;
}

const actorSlots: (ActorShadow | undefined)[] = [];

function actorShadow(s: AnyMachineSnapshot, hint: ActorShadow | undefined): ActorShadow {
  if (hint !== undefined && hint.s === s) return hint;
  const c = s.context as unknown;
  const ctx = typeof c === 'object' && c !== null ? shadowOf(c, hint?.ctx) : undefined;
  return { s, d: digestText(actorTextWith(s, ctx === undefined ? primitiveToken(c) : ctx.tok), NODE_DIGEST_CHARS), ctx };
}

function actorTextWith(s: AnyMachineSnapshot, contextToken: string): string {
  const snap = s as AnyMachineSnapshot & { historyValue?: Record<string, { id: string }[]>; children?: Record<string, unknown> };
  if (snap.children !== undefined && Object.keys(snap.children).length > 0) {
    throw new ModelBug(`state hash: an actor has spawned child actors (${Object.keys(snap.children).join(', ')}); the runtime owns every actor`);
  }
  let t = '{"status":' + JSON.stringify(s.status) + ',"value":' + token(s.value) + ',"context":' + contextToken;
  const history = snap.historyValue;
  if (history !== undefined && Object.keys(history).length > 0) {
    const ids: Record<string, string[]> = {};
    for (const k of Object.keys(history)) ids[k] = history[k]!.map((n) => n.id);
    t += ',"historyValue":' + JSON.stringify(ids);
  }
  if (s.output !== undefined) t += ',"output":' + token(s.output);
  if (s.error !== undefined) t += ',"error":' + token(s.error);
  return t + '}';
}

/** The text an actor's digest is taken over. */
export function actorText(s: AnyMachineSnapshot): string {
  return actorTextWith(s, token(s.context));
}

/** digest(actorText(s), 22). */
export function actorDigest(s: AnyMachineSnapshot): string {
  return actorShadow(s, undefined).d;
}

/** What a checkpoint stores of a world: its text, and each part's text with the shadows of what it references. */
export interface WorldParts {
  text: string;
  actors: { digest: string; text: string; context: Shadow | undefined }[];
  /** Shadows of the messages in flight and of the failures: containers, digested or inline. */
  pending: Shadow[];
  failures: Shadow;
}

/** The parts of `world` (hashing what is not hashed yet), in the order their references appear in `text`. */
export function worldParts(world: World): WorldParts {
  const text = worldText(world);
  const actors = world.snapshots.map((s, i) => {
    const a = actorShadow(s, actorSlots[i]);
    const c = s.context as unknown;
    return { digest: a.d, text: actorTextWith(s, a.ctx === undefined ? primitiveToken(c) : a.ctx.tok), context: a.ctx };
  });
  return { text, actors, pending: world.pending.map((m) => shadowOf(m, undefined)), failures: shadowOf(world.failures, undefined) };
}

/** The messages in flight last hashed, and their tokens: most stay in flight for several steps. */
let lastPending: readonly object[] = [];
let lastPendingToks: readonly string[] = [];
let lastFailures: { v: object; tok: string } | undefined;

/** The root text the state hash is taken over. */
export function worldText(world: World): string {
  let actors = '';
  for (let i = 0; i < world.snapshots.length; i++) {
    const a = actorShadow(world.snapshots[i]!, actorSlots[i]);
    actorSlots[i] = a;
    actors += (i === 0 ? '#' : ',#') + a.d;
  }
  const pendingToks = new Array<string>(world.pending.length);
  let pending = '';
  for (let i = 0; i < world.pending.length; i++) {
    const m = world.pending[i]!;
    const j = lastPending.indexOf(m);
    const t = j >= 0 ? lastPendingToks[j]! : token(m);
    pendingToks[i] = t;
    pending += (i === 0 ? '' : ',') + t;
  }
  lastPending = world.pending;
  lastPendingToks = pendingToks;
  if (lastFailures === undefined || lastFailures.v !== world.failures) lastFailures = { v: world.failures, tok: token(world.failures) };
  return `{"seq":${world.seq},"nextId":${world.nextId},"actors":[${actors}],"pending":[${pending}],"failures":${lastFailures.tok}}`;
}

/** The state hash of `world`: 11 base64url characters (66 bits) of SHA-256 over `worldText`. */
export function worldHash(_model: Model, world: World): string {
  return digestText(worldText(world), STATE_HASH_CHARS);
}

/** One actor's state as plain data: XState status, state value and context. */
export interface ActorView {
  value: unknown;
  status: string;
  context: unknown;
}

export function actorView(world: World, i: number): ActorView {
  const s = world.snapshots[i]!;
  return { value: s.value, status: s.status, context: s.context };
}

/**
 * Every actor's state as plain data (status, state value, context) and the messages in flight: what `tdxsim
 * replay` prints.
 */
export function worldView(model: Model, world: World): { actors: Record<string, ActorView>; pending: unknown[] } {
  const actors: Record<string, ActorView> = {};
  model.actors.forEach((a, i) => {
    actors[a.id] = actorView(world, i);
  });
  const pending = world.pending.map((m) => ({ id: m.id, from: m.from, to: m.to, kind: m.kind, name: m.name, payload: m.payload, cause: m.cause }));
  return { actors, pending };
}
