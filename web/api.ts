/**
 * The inspector's JSON API (src/inspect/server.ts), typed by src/inspect/api.ts. Every request names the
 * log the page shows (`main`, or a steered one), set once at boot from the URL.
 */
import type { ChoicesResult, CollapsedChart, DiffResult, EventRow, FindResult, MatchesResult, StatechartsResponse, SteerResult, StepView, Summary, TraceEventRow, TraceInfo, VerifyResult } from '../src/inspect/api.ts';

let logId = 'main';

async function parse<T>(res: Response): Promise<T> {
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try {
      msg = ((await res.json()) as { error?: string }).error ?? msg;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(msg);
  }
  return (await res.json()) as T;
}

function url(path: string, params: Record<string, string | number | null | undefined> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) p.set(k, String(v));
  if (logId !== 'main') p.set('log', logId);
  const q = p.toString();
  return q ? `${path}?${q}` : path;
}

const get = <T>(path: string, params: Record<string, string | number | null | undefined> = {}, signal?: AbortSignal): Promise<T> =>
  fetch(url(path, params), signal ? { signal } : {}).then((r) => parse<T>(r));

export const api = {
  setLog(id: string): void {
    logId = /^(main|s\d{1,6})$/.test(id) ? id : 'main';
  },
  get log(): string {
    return logId;
  },
  summary: () => get<Summary>('/api/summary'),
  events: (from: number, count: number) => get<{ steps: number; rows: EventRow[] }>('/api/events', { from, count }),
  /** `actor`: whose context to include; null for the step's receiver. */
  step: (n: number, actor: string | null, signal: AbortSignal) => get<StepView>('/api/step', { n, actor }, signal),
  /** `trace`: with an imported trace, the trace event selected (the search starts from its row). */
  find: (q: string, from: number, dir: 'next' | 'prev', trace: number | null = null) => get<FindResult>('/api/find', { q, from, dir, wrap: 1, trace }),
  matches: (q: string) => get<MatchesResult>('/api/matches', { q }),
  statecharts: () => get<StatechartsResponse>('/api/statecharts'),
  statechart: (machine: string, expand: readonly string[]) => get<CollapsedChart>('/api/statechart', { machine, expand: expand.join(',') }),
  trace: () => get<TraceInfo>('/api/trace'),
  traceEvents: (from: number, count: number) => get<{ events: number; rows: TraceEventRow[] }>('/api/trace-events', { from, count }),
  diff: (a: number, b: number) => get<DiffResult>('/api/diff', { a, b }),
  verify: () => get<VerifyResult>('/api/verify'),
  choices: (n: number) => get<ChoicesResult>('/api/choices', { n }),
  steer: (n: number, choice: number) =>
    fetch('/api/steer', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ log: logId, n, choice }) }).then((r) => parse<SteerResult>(r)),
  downloadUrl: () => url('/api/download'),
  liveUrl: () => url('/api/live'),
};
