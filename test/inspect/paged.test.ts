/**
 * A log of a million events opened paged (through its checkpoint index, never whole), checked through the
 * HTTP API against one streamed replay of the same file: step 500,000's record and world, the pager's
 * windows at the start, middle and end, a filter across the whole log (with its progress, and cancelled
 * midway), the memory the server grows by, and a torn huge log.
 */
import { closeSync, existsSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow, FindResult, MatchesResult, SearchProgress, StepView, Summary, TreeNode, VerifyResult } from '../../src/inspect/api.ts';
import { inspectTarget } from '../../src/cli/inspect.ts';
import { activeStateIds } from '../../src/export/statechart.ts';
import { messageLabel } from '../../src/export/messageLabel.ts';
import { contextTree } from '../../src/inspect/contextTree.ts';
import { pageTables } from '../../src/inspect/pageTables.ts';
import { compileQuery } from '../../src/inspect/query.ts';
import { startInspector, type Inspector, type SearchReport } from '../../src/inspect/server.ts';
import { transitionsTaken } from '../../src/inspect/transitionTaken.ts';
import type { Message } from '../../src/protocol/messages.ts';
import { verifyLogFile } from '../../src/replay/verifyStream.ts';
import type { Model, World } from '../../src/runtime/world.ts';
import { formatFields, type FormatOptions } from '../../src/session/format.ts';
import { formatOptionsFor } from '../../src/session/session.ts';
import { statePath } from '../../src/session/stateView.ts';
import { writeBigLog } from './bigLog.ts';

const MID = 500_000;
/** What the server may grow by while it opens the log and answers everything below: far less than holding it (about 1 KB an event). */
const RSS_BUDGET = 256 * 1024 * 1024;
/** Live heap after a full collection: 64 decoded blocks, a few worlds, the kept filter results. */
const HEAP_BUDGET = 128 * 1024 * 1024;
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
/** One on a field of the record, one on a value in the decoded fields (a third of the steps match it). */
const QUERIES = ['to:kvm.mmu', '0x8000fe000004'];

let file = '';
let steps = 0;
let model: Model;
let fmt: FormatOptions;
/** A copy of the big log cut inside a line: its intact steps, and the torn line. */
const torn = { file: '', intact: 0, line: 0 };
/** The streamed replay's view of the log. */
const rows = new Map<number, Omit<EventRow, 'preemption'>>();
const expectedMatches = new Map<string, number[]>();
const effectsOfMid: number[] = [];
let mid: { before: World; after: World; delivered: Message } | null = null;
let rssBefore = 0;
let heapBefore = 0;
let insp: Inspector;
const searches: SearchReport[] = [];

const windows: [number, number][] = [
  [1, 2000],
  [MID - 1000, MID + 999],
];

beforeAll(async () => {
  const big = writeBigLog();
  file = big.file;
  steps = big.steps;
  fmt = formatOptionsFor(big.scenario);
  windows.push([steps - 600, steps]);
  // The first 16 MB of the big log and half of the next line: about 200k steps, then a torn line.
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(17 << 20);
  readSync(fd, buf, 0, buf.length, 0);
  closeSync(fd);
  const lineStart = buf.indexOf(0x0a, 16 << 20) + 1;
  const lineEnd = buf.indexOf(0x0a, lineStart);
  torn.file = path.join(path.dirname(file), 'torn.log.jsonl');
  writeFileSync(torn.file, buf.subarray(0, lineStart + Math.floor((lineEnd - lineStart) / 2)));
  torn.intact = buf.subarray(0, lineStart).toString('utf8').split('\n').length - 2;
  torn.line = torn.intact + 2;
  windows.push([torn.intact, torn.intact]);
  const matchers = QUERIES.map((q) => [q, compileQuery(q)!] as const);
  for (const [q] of matchers) expectedMatches.set(q, []);
  let prev: World | null = null;
  // One streamed replay of the whole file (every hash re-derived), remembering what the tests compare.
  const r = verifyLogFile(file, {
    onStep: (s) => {
      const m = s.message;
      const label = messageLabel(m);
      const fields = formatFields(m.payload, fmt);
      const row = { seq: s.seq, from: m.from, to: m.to, kind: m.kind, name: m.name, label, fields, cause: m.cause };
      for (const [q, match] of matchers) if (match(row)) expectedMatches.get(q)!.push(s.seq);
      if (windows.some(([a, b]) => s.seq >= a && s.seq <= b)) rows.set(s.seq, row);
      if (m.cause === MID) effectsOfMid.push(s.seq);
      if (s.seq === MID) mid = { before: prev!, after: s.world, delivered: m };
      prev = s.world;
    },
  });
  model = r.model;
  expect(r.log.steps).toBe(steps);
  gc();
  rssBefore = process.memoryUsage().rss;
  heapBefore = process.memoryUsage().heapUsed;
  const warnings: string[] = [];
  const target = inspectTarget(file, {}, (l) => warnings.push(l));
  expect(warnings).toEqual([]);
  insp = await startInspector(target, { port: 0, webDir: path.dirname(file), verifyWorker: null, onSearch: (s) => searches.push(s) });
});
afterAll(async () => {
  await insp?.close();
  if (file) rmSync(path.dirname(file), { recursive: true, force: true });
});

const get = async <T>(p: string): Promise<T> => {
  const res = await fetch(insp.url + p.slice(1));
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(`${res.status}: ${body.error}`);
  return body;
};

/** Reads `/api/search` to its end (or, with `stopAfter`, aborts after that many progress events). */
async function search(q: string, stopAfter: number | null = null): Promise<{ progress: SearchProgress[]; done: { steps: number; total: number; seqs: number[] } | null }> {
  const abort = new AbortController();
  const res = await fetch(`${insp.url}api/search?q=${encodeURIComponent(q)}`, { signal: abort.signal });
  expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  const progress: SearchProgress[] = [];
  let done = null;
  let text = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body!) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });
      for (let i = text.indexOf('\n\n'); i !== -1; i = text.indexOf('\n\n')) {
        const [event, data] = text.slice(0, i).split('\n') as [string, string];
        text = text.slice(i + 2);
        const value = JSON.parse(data.slice('data: '.length)) as never;
        if (event === 'event: progress') progress.push(value);
        else if (event === 'event: done') done = value;
        else throw new Error(`unexpected event ${event}`);
        if (stopAfter !== null && progress.length >= stopAfter) {
          abort.abort();
          return { progress, done };
        }
      }
    }
  } catch (e) {
    if (!abort.signal.aborted) throw e;
  }
  return { progress, done };
}

/** The tree with only what the page shows of it (key, text, changed, children). */
const tree = (nodes: TreeNode[]): unknown => JSON.parse(JSON.stringify(nodes));

describe('a 1M-event log, opened paged', () => {
  it('opens through its index: the summary counts every step, says it is paged, and the outcome is the end record’s', async () => {
    expect(steps).toBeGreaterThanOrEqual(1_000_000);
    const s = await get<Summary>('/api/summary');
    expect(s.steps).toBe(steps);
    expect(s.paged).toEqual({ block: 1024, indexFile: `${file}.idx`, indexState: 'fresh' });
    expect(s.outcome).toEqual({ status: 'ok', reason: null });
    expect(s.torn).toBeNull();
  });

  it(`step ${MID.toLocaleString('en-US')}: its record and world are the replay’s`, async () => {
    const m = mid!;
    const v = await get<StepView>(`/api/step?n=${MID}`);
    expect(v.step).toBe(MID);
    expect(v.steps).toBe(steps);
    expect(v.event).toEqual({ ...rows.get(MID)!, preemption: null });
    expect(v.effects).toEqual(effectsOfMid);
    expect(v.effects.length).toBeGreaterThan(0);
    expect(v.pending).toEqual(m.after.pending.map((p) => ({ from: p.from, to: p.to, label: messageLabel(p), fields: formatFields(p.payload, fmt), cause: p.cause })));
    expect(tree(v.payload)).toEqual(tree(contextTree(m.delivered.payload, m.delivered.payload)));
    const receiver = model.indexOf.get(m.delivered.to)!;
    expect(v.taken).toEqual({ actor: m.delivered.to, transitions: transitionsTaken(model.actors[receiver]!.machine, m.before.snapshots[receiver]!, m.delivered) });
    // Every actor's state, and each one's context and page tables asked for in turn.
    for (const [i, a] of model.actors.entries()) {
      const snap = m.after.snapshots[i]!;
      const was = m.before.snapshots[i]!;
      const shown = (await get<StepView>(`/api/step?n=${MID}&actor=${encodeURIComponent(a.id)}`)).actors[i]!;
      expect(shown).toMatchObject({ id: a.id, state: statePath(snap.value), active: activeStateIds(a.machine, snap.value), status: snap.status, changed: snap !== was, detailed: true });
      expect(tree(shown.context)).toEqual(tree(contextTree(snap.context, was.context)));
      expect(shown.tables).toEqual(pageTables(snap.context, was.context, fmt));
    }
  });

  it('the pager: windows of at most 2000 rows at the start, the middle and the end, each row the replay’s', async () => {
    for (const [a, b] of windows) {
      const r = await get<{ steps: number; rows: EventRow[] }>(`/api/events?from=${a}&count=${b - a + 1}`);
      expect(r.steps).toBe(steps);
      expect(r.rows.map((x) => x.seq)).toEqual(Array.from({ length: b - a + 1 }, (_, i) => a + i));
      for (const row of r.rows) expect(row).toEqual({ ...rows.get(row.seq)!, preemption: null });
    }
    // Never more than a window, and nothing past the end.
    expect((await get<{ rows: EventRow[] }>(`/api/events?from=1&count=5000`)).rows).toHaveLength(2000);
    expect((await get<{ rows: EventRow[] }>(`/api/events?from=${steps + 1}&count=10`)).rows).toEqual([]);
    await expect(get(`/api/step?n=${steps + 1}`)).rejects.toThrow(`400: step ${steps + 1}: the log has steps 0..${steps}`);
  });

  it('a filter across the whole log streams with progress, then next/previous match and the match list answer from it', async () => {
    for (const q of QUERIES) {
      const want = expectedMatches.get(q)!;
      expect(want.length).toBeGreaterThan(100);
      const before = searches.length;
      const r = await search(q);
      expect(r.done).toEqual({ steps, total: want.length, seqs: want });
      // One report per slice of 8192 records, counting up to the end.
      expect(r.progress.length).toBe(Math.ceil(steps / 8192) + (steps % 8192 === 0 ? 1 : 0));
      expect(r.progress.map((p) => p.scanned)).toEqual(r.progress.map((_, i) => Math.min(steps, (i + 1) * 8192)));
      expect(r.progress.at(-1)).toEqual({ scanned: steps, steps, matches: want.length });
      expect(searches.slice(before)).toEqual([{ log: 'main', q, scanned: steps, steps, matches: want.length, cancelled: false }]);

      const after = want.find((s) => s > MID)!;
      expect(await get<FindResult>(`/api/find?q=${encodeURIComponent(q)}&from=${MID}&dir=next`)).toEqual({ seq: after, wrapped: false, total: want.length });
      const beforeMid = [...want].reverse().find((s) => s < MID)!;
      expect(await get<FindResult>(`/api/find?q=${encodeURIComponent(q)}&from=${MID}&dir=prev`)).toEqual({ seq: beforeMid, wrapped: false, total: want.length });
      expect(await get<FindResult>(`/api/find?q=${encodeURIComponent(q)}&from=${want.at(-1)}&dir=next&wrap=1`)).toEqual({ seq: want[0], wrapped: true, total: want.length });
      expect((await get<MatchesResult>(`/api/matches?q=${encodeURIComponent(q)}`)).seqs).toEqual(want);
      // Answered from the finished pass: the log was not read again.
      expect(searches.length).toBe(before + 1);
    }
  });

  it('closing the search stream cancels the pass: the server stops reading the log', async () => {
    const before = searches.length;
    const r = await search('kind:td-exit', 2);
    expect(r.done).toBeNull();
    await expect.poll(() => searches.length, { timeout: 300_000, interval: 20 }).toBe(before + 1);
    const report = searches.at(-1)!;
    expect(report.cancelled).toBe(true);
    expect(report.scanned).toBeLessThan(steps);
    // The server still answers.
    expect((await get<StepView>(`/api/step?n=${steps}`)).step).toBe(steps);
  });

  it(`memory: the server grows by less than ${RSS_BUDGET / 2 ** 20} MiB of RSS (${HEAP_BUDGET / 2 ** 20} MiB of live heap) over everything above`, () => {
    gc();
    const m = process.memoryUsage();
    expect(m.rss - rssBefore).toBeLessThan(RSS_BUDGET);
    expect(m.heapUsed - heapBefore).toBeLessThan(HEAP_BUDGET);
  });
});

describe('a torn huge log', () => {
  it('opens paged on its intact prefix: its index rebuilt, the tear named, the last intact step shown, verified as partial', async () => {
    const { intact, line: tornLine } = torn;
    const warnings: string[] = [];
    const target = inspectTarget(torn.file, {}, (l) => warnings.push(l));
    expect(warnings).toEqual([
      `tdxsim: ${torn.file}: building its checkpoint index ${torn.file}.idx (there is none): one pass over the log, after which any step opens from its nearest checkpoint`,
      `tdxsim: warning: ${torn.file}:${tornLine}: torn last line (the writer stopped mid-line); showing the ${intact} intact steps before it`,
    ]);
    expect(existsSync(`${torn.file}.idx`)).toBe(true);
    const t = await startInspector(target, { port: 0, webDir: path.dirname(file), verifyWorker: null });
    try {
      const s = (await (await fetch(t.url + 'api/summary')).json()) as Summary;
      expect(s.steps).toBe(intact);
      expect(s.paged?.indexState).toBe('built');
      expect(s.outcome).toBeNull();
      expect(s.torn).toEqual({
        line: tornLine,
        notice: `${torn.file}:${tornLine}: torn last line (the writer stopped mid-line); showing the ${intact} intact steps before it. The run's end was not recorded, so there is no outcome.`,
      });
      const last = (await (await fetch(`${t.url}api/step?n=${intact}`)).json()) as StepView;
      expect(last.event).toEqual({ ...rows.get(intact)!, preemption: null });
      expect((await fetch(`${t.url}api/step?n=${intact + 1}`)).status).toBe(400);
      const v = (await (await fetch(t.url + 'api/verify')).json()) as VerifyResult;
      expect(v).toEqual({ status: 'partial', steps: intact, text: `hashes verified for ${intact} steps; the outcome cannot be: the log is torn at line ${tornLine}` });
    } finally {
      await t.close();
    }
  });
});
