/**
 * The imported trace's events, fetched in chunks from /api/trace-events as the sequence view or the trace
 * card needs them (a boot-time accept storm is thousands of lines), kept once loaded.
 */
import type { TraceEventRow } from '../src/inspect/api.ts';
import { api } from './api.ts';

const CHUNK = 500;

export class TraceEvents {
  readonly #chunks = new Map<number, TraceEventRow[] | Promise<TraceEventRow[]>>();
  #onLoaded: () => void;
  #onError: (msg: string) => void;

  constructor(onLoaded: () => void, onError: (msg: string) => void) {
    this.#onLoaded = onLoaded;
    this.#onError = onError;
  }

  /** The event if its chunk is here; otherwise null, and the chunk is asked for. */
  get(id: number): TraceEventRow | null {
    const c = this.#chunks.get(Math.floor(id / CHUNK));
    if (Array.isArray(c)) return c[id % CHUNK] ?? null;
    if (c === undefined) void this.load(id).catch(() => {});
    return null;
  }

  load(id: number): Promise<TraceEventRow> {
    const k = Math.floor(id / CHUNK);
    let c = this.#chunks.get(k);
    if (c === undefined) {
      const p = api.traceEvents(k * CHUNK, CHUNK).then(
        (r) => {
          this.#chunks.set(k, r.rows);
          this.#onLoaded();
          return r.rows;
        },
        (e: Error) => {
          this.#chunks.delete(k);
          this.#onError(`loading trace events ${k * CHUNK}…: ${e.message}`);
          throw e;
        },
      );
      this.#chunks.set(k, p);
      c = p;
    }
    return Promise.resolve(c).then((rows) => {
      const row = rows[id % CHUNK];
      if (!row) throw new Error(`no trace event ${id}`);
      return row;
    });
  }
}
