/**
 * Rebuilding a world from a checkpoint (src/log/checkpointIndex.ts): the texts the state hash is taken
 * over (src/runtime/worldHash.ts) parsed back into values, references followed to their node records (each
 * checked against its digest) or to the initial world's nodes, and each actor's snapshot rebuilt from its
 * state by its XState scope. The caller proves the result against the log: its state hash must be the
 * one the log records at that step.
 */
import { IndexProblem, type IndexReader } from '../log/checkpointIndex.ts';
import type { Message } from '../protocol/messages.ts';
import type { Failure, Model, World } from '../runtime/world.ts';
import type { RestoredActor } from '../runtime/xstateScope.ts';

const BIGINT = /-?0x[0-9a-f]+/y;
const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Parses one node's text; `ref` resolves each `#digest` in order. */
export function parseStateText(text: string, ref: (digest: string) => unknown): unknown {
  let i = 0;
  const bad = (what: string): never => {
    throw new IndexProblem(`a node's text is not state text (${what} at character ${i})`);
  };
  const str = (): string => {
    let j = i + 1;
    while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
    if (j >= text.length) bad('an unterminated string');
    const s = JSON.parse(text.slice(i, j + 1)) as string;
    i = j + 1;
    return s;
  };
  const expect = (c: string) => {
    if (text[i] !== c) bad(`expected ${c}`);
    i++;
  };
  const value = (): unknown => {
    const c = text[i];
    switch (c) {
      case '{': {
        i++;
        const o: Record<string, unknown> = {};
        if (text[i] === '}') {
          i++;
          return o;
        }
        for (;;) {
          if (text[i] !== '"') bad('expected a key');
          const k = str();
          expect(':');
          const v = value();
          // defineProperty: an own key named __proto__ stays a key, as JSON.parse would have it.
          if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
          else o[k] = v;
          if (text[i] === ',') {
            i++;
            continue;
          }
          expect('}');
          return o;
        }
      }
      case '[': {
        i++;
        const a: unknown[] = [];
        if (text[i] === ']') {
          i++;
          return a;
        }
        for (;;) {
          a.push(value());
          if (text[i] === ',') {
            i++;
            continue;
          }
          expect(']');
          return a;
        }
      }
      case '"':
        return str();
      case '#': {
        const d = text.slice(i + 1, i + 23);
        i += 23;
        return ref(d);
      }
      case 'u':
        i++;
        return undefined;
      case 't':
        if (!text.startsWith('true', i)) bad('a bad literal');
        i += 4;
        return true;
      case 'f':
        if (!text.startsWith('false', i)) bad('a bad literal');
        i += 5;
        return false;
      case 'n':
        if (!text.startsWith('null', i)) bad('a bad literal');
        i += 4;
        return null;
      default: {
        BIGINT.lastIndex = i;
        const b = BIGINT.exec(text);
        if (b !== null) {
          i += b[0].length;
          return b[0].startsWith('-') ? -BigInt(b[0].slice(1)) : BigInt(b[0]);
        }
        NUMBER.lastIndex = i;
        const n = NUMBER.exec(text);
        if (n === null) return bad('an unexpected character');
        i += n[0].length;
        return Number(n[0]);
      }
    }
  };
  const v = value();
  if (i !== text.length) bad('trailing text');
  return v;
}

/**
 * The world of checkpoint text `worldText` with references `refs`, read from `reader`; `initial` holds the
 * initial world's nodes by digest.
 */
export function restoreWorld(model: Model, worldText: string, refs: readonly string[], reader: IndexReader, initial: ReadonlyMap<string, object>): World {
  const loaded = new Map<string, unknown>();
  const resolver = (list: readonly string[]) => {
    let k = 0;
    const resolve = (digest: string): unknown => {
      const r = list[k++];
      if (r === undefined) throw new IndexProblem('a node has more references than its record lists');
      if (r === 'i') {
        const o = initial.get(digest);
        if (o === undefined) throw new IndexProblem(`node ${digest} is not in the initial world`);
        return o;
      }
      const known = loaded.get(digest);
      if (known !== undefined) return known;
      const node = reader.node(Number(r), digest);
      const inner = resolver(node.refs);
      const v = parseStateText(node.text, inner.resolve);
      inner.done();
      loaded.set(digest, v);
      return v;
    };
    return {
      resolve,
      done: () => {
        if (k !== list.length) throw new IndexProblem('a node lists more references than its text holds');
      },
    };
  };
  const root = resolver(refs);
  const w = parseStateText(worldText, root.resolve) as { seq: number; nextId: number; actors: RestoredActor[]; pending: Message[]; failures: Failure[] };
  root.done();
  if (!Array.isArray(w.actors) || w.actors.length !== model.actors.length) throw new IndexProblem(`a checkpoint holds ${w.actors?.length} actors, the model has ${model.actors.length}`);
  const snapshots = w.actors.map((a, i) => model.scopes[i]!.restore(a));
  return { snapshots, pending: w.pending, nextId: w.nextId, seq: w.seq, failures: w.failures };
}
