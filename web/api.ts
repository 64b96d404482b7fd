/** The inspector's JSON API (src/inspect/server.ts), typed by src/inspect/api.ts. */
import type { EventRow, FindResult, StatechartsResponse, StepView, Summary } from '../src/inspect/api.ts';

async function get<T>(url: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(url, signal ? { signal } : {});
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

export const api = {
  summary: () => get<Summary>('/api/summary'),
  events: (from: number, count: number) => get<{ steps: number; rows: EventRow[] }>(`/api/events?from=${from}&count=${count}`),
  /** `actor`: whose context to include; null for the step's receiver. */
  step: (n: number, actor: string | null, signal: AbortSignal) => get<StepView>(`/api/step?n=${n}${actor === null ? '' : `&actor=${encodeURIComponent(actor)}`}`, signal),
  find: (q: string, from: number, dir: 'next' | 'prev') => get<FindResult>(`/api/find?q=${encodeURIComponent(q)}&from=${from}&dir=${dir}`),
  statecharts: () => get<StatechartsResponse>('/api/statecharts'),
};
