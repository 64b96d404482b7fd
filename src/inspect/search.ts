/**
 * A filter over a whole log, as a cancellable pass that yields to the event loop: the server keeps
 * answering (the page goes on showing steps) while a filter reads a million events, reports its progress,
 * and stops as soon as nobody wants the answer. A paged log (pagedLog.ts) is streamed from its file, each
 * record's text made from the record, so the pass holds one block and the matching step numbers; a log
 * held whole is read from memory.
 */
import type { SearchProgress } from './api.ts';
import { compileQuery } from './query.ts';
import type { InspectSession } from './session.ts';
import { textOfRecord } from './pagedLog.ts';
import { eventRow } from './stepView.ts';

export { nextMatch } from './nextMatch.ts';
export type { SearchProgress } from './api.ts';

/** Records read between two yields to the event loop (and two progress reports). */
export const SEARCH_SLICE = 8192;


/** Matching step numbers, ascending, growing without an array element per step. */
class SeqList {
  #buf = new Int32Array(1024);
  length = 0;
  push(seq: number): void {
    if (this.length === this.#buf.length) {
      const next = new Int32Array(this.#buf.length * 2);
      next.set(this.#buf);
      this.#buf = next;
    }
    this.#buf[this.length++] = seq;
  }
  done(): Int32Array {
    return this.#buf.slice(0, this.length);
  }
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Every step of `session` matching `q` (an empty query matches none). `onProgress` is told after every
 * slice; the pass ends early, with null, once `cancelled` says so.
 */
export async function searchLog(session: InspectSession, q: string, onProgress: (p: SearchProgress) => void = () => {}, cancelled: () => boolean = () => false): Promise<Int32Array | null> {
  const match = compileQuery(q);
  const steps = session.steps;
  const out = new SeqList();
  if (match === null) return out.done();
  const paged = session.paged;
  let scanned = 0;
  if (paged === null) {
    for (let s = 1; s <= steps; s++) {
      if (match(eventRow(session, s))) out.push(s);
      if (++scanned % SEARCH_SLICE === 0) {
        onProgress({ scanned, steps, matches: out.length });
        await yieldToLoop();
        if (cancelled()) return null;
      }
    }
  } else {
    const records = paged.records(1, steps);
    try {
      for (let r = records.next(); !r.done; r = records.next()) {
        const ev = r.value;
        const t = textOfRecord(ev, session.fmt);
        if (match({ seq: ev.seq, from: ev.from, to: ev.to, kind: ev.kind, name: ev.name, label: t.label, fields: t.fields })) out.push(ev.seq);
        if (++scanned % SEARCH_SLICE === 0) {
          onProgress({ scanned, steps, matches: out.length });
          await yieldToLoop();
          if (cancelled()) return null;
        }
      }
    } finally {
      // Closes the file when the pass stops early.
      records.return(undefined);
    }
  }
  onProgress({ scanned, steps, matches: out.length });
  return out.done();
}
