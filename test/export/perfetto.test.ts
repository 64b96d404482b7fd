import { describe, expect, it } from 'vitest';
import { perfettoTrace, type TraceEvent } from '../../src/export/perfetto.ts';
import { exampleLog } from './fixtures.ts';

describe('Perfetto (Chrome trace-event JSON) export of a log', () => {
  const { log, actors } = exampleLog('mmio-ve');
  const trace = perfettoTrace({ events: log.events, end: log.end, actors, title: 'tdxsim mmio-ve' });
  // What Perfetto reads: the JSON text, not our objects.
  const events = (JSON.parse(JSON.stringify(trace)) as { traceEvents: TraceEvent[] }).traceEvents;
  const slices = events.filter((e) => e.ph === 'X');
  const within = (ts: number, tid: number) => slices.some((s) => s.tid === tid && s.ts <= ts && ts <= s.ts + s.dur!);

  it('every event has the fields the format requires: ph, pid, tid, ts, name', () => {
    for (const e of events) {
      expect(typeof e.ph, JSON.stringify(e)).toBe('string');
      expect(Number.isInteger(e.pid) && Number.isInteger(e.tid) && typeof e.ts === 'number' && typeof e.name === 'string', JSON.stringify(e)).toBe(true);
    }
  });

  it('names one thread per actor with M thread_name metadata, in model order', () => {
    const names = events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [e.tid, (e.args as { name: string }).name]);
    expect(names.map(([, n]) => n)).toEqual(actors.filter((a) => log.events.some((e) => e.from === a || e.to === a)));
    expect(new Set(names.map(([t]) => t)).size).toBe(names.length);
  });

  it('has one X slice per delivered message on the receiver thread, at logical time seq × 10 µs, never overlapping', () => {
    const tidOf = new Map(events.filter((e) => e.name === 'thread_name').map((e) => [(e.args as { name: string }).name, e.tid]));
    const messages = slices.filter((s) => s.name !== 'scenario start');
    expect(messages).toHaveLength(log.events.length);
    messages.forEach((s, i) => {
      const ev = log.events[i]!;
      expect(s.tid).toBe(tidOf.get(ev.to));
      expect(s.ts).toBe(ev.seq * 10);
      expect(s.dur).toBeGreaterThan(0);
      expect((s.args as { step: number }).step).toBe(ev.seq);
    });
    const byThread = new Map<number, TraceEvent[]>();
    for (const s of slices) byThread.set(s.tid, [...(byThread.get(s.tid) ?? []), s]);
    for (const list of byThread.values()) {
      const sorted = list.slice().sort((a, b) => a.ts - b.ts);
      for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.ts).toBeGreaterThanOrEqual(sorted[i - 1]!.ts + sorted[i - 1]!.dur!);
    }
  });

  it('every flow start has exactly one matching finish, with unique ids, each inside a slice on its own thread', () => {
    const starts = events.filter((e) => e.ph === 's');
    const finishes = events.filter((e) => e.ph === 'f');
    expect(starts).toHaveLength(log.events.length);
    expect(new Set(starts.map((e) => e.id)).size).toBe(starts.length);
    for (const s of starts) {
      const f = finishes.filter((x) => x.id === s.id);
      expect(f, `flow ${s.id}`).toHaveLength(1);
      expect(f[0]!.bp).toBe('e');
      expect(f[0]!.ts).toBeGreaterThan(s.ts);
      expect(within(s.ts, s.tid), `flow ${s.id} start`).toBe(true);
      expect(within(f[0]!.ts, f[0]!.tid), `flow ${s.id} finish`).toBe(true);
    }
    expect(finishes).toHaveLength(starts.length);
  });

  it('a flow starts in the slice of the message whose handling sent it (its cause)', () => {
    const starts = new Map(events.filter((e) => e.ph === 's').map((e) => [e.id, e]));
    for (const ev of log.events.filter((e) => e.cause !== null)) {
      const s = starts.get(ev.seq)!;
      expect(Math.floor(s.ts / 10)).toBe(ev.cause);
    }
  });

  it('a failed run gets a global instant naming the failure', () => {
    const failed = exampleLog('mmio-ve', { maxSteps: 10 });
    const t = perfettoTrace({ events: failed.log.events, end: failed.log.end, actors: failed.actors, title: 't' });
    const instant = t.traceEvents.find((e) => e.ph === 'i');
    expect(instant?.name).toMatch(/^failure: step bound 10 reached/);
    expect(instant?.s).toBe('g');
  });
});
