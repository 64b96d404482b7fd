/**
 * The filter of a paged log (a huge one, read by block on the server): one pass over the log per query,
 * as server-sent events from /api/search, whose progress the page shows and which the user can cancel
 * (closing the stream stops the server's pass). Its result, every matching step, then answers "next
 * match", the match count and "only matches" here, without asking again.
 */
import type { SearchProgress } from '../src/inspect/api.ts';

export interface SearchDone {
  q: string;
  seqs: Int32Array;
}

export class LogSearch {
  #source: EventSource | null = null;
  #running: { q: string; promise: Promise<SearchDone | null>; settle: (r: SearchDone | null) => void } | null = null;
  #done: SearchDone | null = null;

  constructor(
    readonly url: (q: string) => string,
    readonly onProgress: (q: string, p: SearchProgress) => void,
  ) {}

  /** The finished result for `q`, if there is one. */
  resultFor(q: string): Int32Array | null {
    return this.#done?.q === q ? this.#done.seqs : null;
  }

  get running(): string | null {
    return this.#running?.q ?? null;
  }

  /** The matches of `q`: the finished result, the pass under way, or a new pass (cancelling another query's). Null when cancelled. */
  run(q: string): Promise<SearchDone | null> {
    if (this.#done?.q === q) return Promise.resolve(this.#done);
    if (this.#running?.q === q) return this.#running.promise;
    this.cancel();
    let settle!: (r: SearchDone | null) => void;
    const promise = new Promise<SearchDone | null>((r) => (settle = r));
    const running = { q, promise, settle };
    this.#running = running;
    const source = new EventSource(this.url(q));
    this.#source = source;
    source.addEventListener('progress', (e) => this.onProgress(q, JSON.parse((e as MessageEvent<string>).data) as SearchProgress));
    source.addEventListener('done', (e) => {
      const r = JSON.parse((e as MessageEvent<string>).data) as { seqs: number[] };
      source.close();
      this.#source = null;
      this.#running = null;
      this.#done = { q, seqs: Int32Array.from(r.seqs) };
      settle(this.#done);
    });
    // An EventSource reconnects on its own after an error; a search is asked for again instead.
    source.addEventListener('error', () => {
      if (this.#running !== running) return;
      this.cancel();
    });
    return promise;
  }

  /** Stops the pass under way (the server stops reading when the stream closes). */
  cancel(): void {
    this.#source?.close();
    this.#source = null;
    const r = this.#running;
    this.#running = null;
    r?.settle(null);
  }
}
