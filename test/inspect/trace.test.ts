/**
 * The inspector's server side of an imported trace (`tdxsim import --inspect`, `tdxsim inspect <trace>`):
 * the trace's events with their alignment as `tdxsim import --json` reports it, where each goes in the
 * sequence view, each step's projected tracepoints with their partners, the divergences and livelock
 * signatures, the filter over trace fields, and the server's protections on the new endpoints.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { FindResult, MatchesResult, StepView, Summary, TraceEventRow, TraceInfo } from '../../src/inspect/api.ts';
import { importCommand, importedTarget } from '../../src/cli/import.ts';
import { inspectCommand, inspectTarget } from '../../src/cli/inspect.ts';
import { main } from '../../src/cli/main.ts';
import { importTraces } from '../../src/import/importTrace.ts';
import { reportJson } from '../../src/import/report.ts';
import { startInspector, type Inspector, type InspectTarget } from '../../src/inspect/server.ts';
import { planRows } from '../../src/inspect/traceRows.ts';
import { fixture, TRACES } from '../import/helpers.ts';

const servers: Inspector[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));
const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-inspect-trace-'));
writeFileSync(path.join(dir, 'main.js'), '/* app */');

async function serve(target: InspectTarget) {
  const insp = await startInspector(target, { port: 0, webDir: dir, verifyWorker: null });
  servers.push(insp);
  const get = async <T>(p: string): Promise<T> => {
    const res = await fetch(insp.url + p.slice(1));
    const body = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new Error(`${res.status}: ${body.error}`);
    return body;
  };
  return { insp, get };
}

/** The JSON report's view of the same import, which the inspector must agree with. */
type Report = {
  trace: { id: number; line: number; align: { status: string; seq?: number; divergence?: number | null } }[];
  modelTrace: { seq: number; align: { status: string; trace?: number } }[];
  divergences: { kind: string; message: string; hint: string | null; trace: { id: number | null; file: string; line: number } | null; model: { seq: number } | null; traceEvents: number[] }[];
  firstDivergence: number | null;
  livelocks: { trace: { faults: number[]; text: string }[] };
};

function imported(...names: string[]) {
  const r = importTraces(names.map(fixture), { keepLog: true });
  const report = reportJson(r, { scenario: null, log: null }) as unknown as Report;
  return { r, report, target: importedTarget(r, { scenario: null, log: null }) };
}

describe('an EPT-violation retry loop (perf script) beside the model', () => {
  const { r, report, target } = imported('ept-retry-loop.perf.txt');
  const file = 'examples/traces/ept-retry-loop.perf.txt';
  let api: Awaited<ReturnType<typeof serve>>['get'];
  let info: TraceInfo;
  let rows: TraceEventRow[];

  it('the summary names the trace, its events and its first divergence', async () => {
    api = (await serve(target)).get;
    const s = await api<Summary>('/api/summary');
    expect(s.trace).toEqual({ inputs: [{ file, format: 'perf', lines: 41, events: 41 }], events: 41, divergenceCount: 1, first: 0 });
    expect(s.steps).toBe(r.outcome.steps);
    info = await api<TraceInfo>('/api/trace');
    rows = (await api<{ events: number; rows: TraceEventRow[] }>('/api/trace-events?from=0&count=2000')).rows;
    expect(rows).toHaveLength(41);
  });

  it('every trace event as the JSON report has it: file, line, its aligned step or why it has none', () => {
    for (const e of report.trace) {
      const row = rows[e.id]!;
      expect(row.line).toBe(e.line);
      expect(row.file).toBe(file);
      expect(row.status).toBe(e.align.status);
      expect(row.seq).toBe(e.align.status === 'aligned' ? e.align.seq : null);
      if (e.align.status === 'trace-only') expect(row.divergence).toBe(e.align.divergence);
    }
    // Line 14, decoded with the tracepoint's own field names.
    const fault = rows.find((x) => x.line === 14)!;
    expect(fault).toMatchObject({ ts: '512.000191', cpu: 6, comm: 'CPU 1/KVM', pid: 9302, thread: 'vcpu1', event: 'kvm_page_fault', payload: 'vcpu 1 rip 0x0 address 0x0000000000201000 error_code 0x2', fields: 'rip=0x0 address=0x201000 error_code=0x2' });
    expect(rows.find((x) => x.line === 13)!.fields).toBe('EPT_VIOLATION rip=0x0 info1=0x1 info2=0x0 intr_info=0x0 error_code=0x0');
  });

  it('each aligned event goes on its step\'s row, each other one between rows after the step its thread was at', () => {
    for (const [id, seq, between] of info.placement) {
      const row = rows[id]!;
      if (row.status === 'aligned') expect([seq, between]).toEqual([row.seq, 0]);
      else {
        expect(between).toBe(1);
        // After the last event before it on its vCPU thread, or in the trace.
        const before = info.placement.filter(([other]) => other < id && (rows[other]!.thread === row.thread || !row.thread.startsWith('vcpu'))).at(-1);
        if (before) expect(seq).toBe(before[1]);
      }
    }
    expect(info.placement.map(([id]) => id)).toEqual(rows.map((x) => x.id));
    // The rows: every step once, in order, with the trace's 41 events on or between them.
    const plan = planRows(r.outcome.steps, info.placement);
    expect(plan.filter((p) => p.kind === 'step').map((p) => p.seq)).toEqual(Array.from({ length: r.outcome.steps + 1 }, (_, i) => i));
    expect(plan.filter((p) => p.trace !== null)).toHaveLength(41);
    expect(plan.map((p) => p.seq)).toEqual([...plan.map((p) => p.seq)].sort((a, b) => a - b));
  });

  it('the divergence with both ends, and the livelock signature with its seven faults', () => {
    const d = report.divergences[0]!;
    expect(info.first).toBe(report.firstDivergence);
    expect(info.divergences[0]).toMatchObject({ index: 0, kind: 'fault-retried', divergence: true, thread: 'vcpu1', message: d.message, hint: d.hint, trace: d.trace, seq: d.model!.seq, traceEvents: d.traceEvents });
    expect(info.divergences[0]!.trace).toEqual({ id: rows.find((x) => x.line === 17)!.id, file, line: 17 });
    expect(info.divergences[1]).toMatchObject({ kind: 'trace-ends', divergence: false });
    const l = info.livelocks[0]!;
    expect(l).toMatchObject({ side: 'trace', thread: 'vcpu1', gpa: '0x201000', faults: report.livelocks.trace[0]!.faults, modelToo: false, text: report.livelocks.trace[0]!.text });
    expect(l.faults.map((id) => rows[id]!.line)).toEqual([14, 18, 22, 27, 31, 35, 39]);
    expect(l.faults.map((id) => rows[id]!.livelock)).toEqual(l.faults.map((_, k) => ({ index: 0, fault: k + 1, of: 7 })));
  });

  it('a step carries the tracepoints the model hits there, each with its trace partner or its divergence', async () => {
    const exitLine = rows.find((x) => x.line === 13)!;
    const at = await api<StepView>(`/api/step?n=${exitLine.seq}`);
    expect(at.trace!.on).toEqual(info.placement.filter(([, seq, b]) => seq === exitLine.seq && b === 0).map(([id]) => id));
    expect(at.trace!.model.map((m) => [m.text.split(':')[0], m.trace, m.status])).toEqual([
      ['kvm_exit', exitLine.id, 'aligned'],
      ['kvm_page_fault', rows.find((x) => x.line === 14)!.id, 'aligned'],
    ]);
    // Where the model maps the GPA the trace keeps faulting on: model-only, part of the divergence.
    const d = info.divergences[0]!;
    const mapped = await api<StepView>(`/api/step?n=${d.seq}`);
    expect(mapped.trace!.model).toContainEqual({ text: expect.stringMatching(/^kvm_tdp_mmu_spte_changed: as id 0 gfn 201 level 1 old_spte 8000000000000000 new_spte /), thread: 'vcpu1', trace: null, status: 'model-only', divergence: 0 });
    expect(d.modelSteps).toContain(d.seq);
  });

  it('the filter matches trace fields: a GPA, a divergence kind, kind:trace; matches lists steps and trace events', async () => {
    const gpa = await api<MatchesResult>('/api/matches?q=0x201000');
    expect(gpa.traces).toEqual(rows.filter((x) => /\b0x0*201000\b/.test(x.payload)).map((x) => x.id));
    expect(gpa.traces).toHaveLength(7);
    expect(gpa.seqs.length).toBeGreaterThan(0);
    expect((await api<MatchesResult>('/api/matches?q=fault-retried')).traces).toEqual(info.divergences[0]!.traceEvents);
    expect((await api<MatchesResult>('/api/matches?q=kind:trace')).traces).toHaveLength(41);
    expect((await api<MatchesResult>('/api/matches?q=kind:trace')).seqs).toEqual([]);
    expect((await api<MatchesResult>('/api/matches?q=actor:vcpu0 name:kvm_entry')).traces).toEqual(rows.filter((x) => x.thread === 'vcpu0' && x.event === 'kvm_entry').map((x) => x.id));
    // A file:line, as a word or quoted.
    const line14 = rows.find((x) => x.line === 14)!.id;
    expect((await api<MatchesResult>('/api/matches?q=ept-retry-loop.perf.txt:14')).traces).toEqual([line14]);
    expect((await api<MatchesResult>(`/api/matches?q=${encodeURIComponent('"perf.txt:14"')}`)).traces).toEqual([line14]);
    // A field by the tracepoint's own name.
    expect((await api<MatchesResult>('/api/matches?q=error_code kind:trace')).traces).toEqual(rows.filter((x) => /\berror_code=/.test(x.fields)).map((x) => x.id));
  });

  it('next/previous match walks the rows: steps and trace events in display order, from a trace event too, wrapping round', async () => {
    const q = encodeURIComponent('name:kvm_page_fault');
    const plan = planRows(r.outcome.steps, info.placement);
    const order = plan.filter((p) => p.trace !== null && rows[p.trace]!.event === 'kvm_page_fault').map((p) => p.trace!);
    expect(order).toHaveLength(8);
    let at = { seq: 0, trace: null as number | null };
    const seen: number[] = [];
    for (let i = 0; i < order.length; i++) {
      const f = await api<FindResult>(`/api/find?q=${q}&from=${at.seq}${at.trace === null ? '' : `&trace=${at.trace}`}&dir=next&wrap=1`);
      expect(f.wrapped).toBe(false);
      expect(f.seq).toBe(rows[f.trace!]!.status === 'aligned' ? rows[f.trace!]!.seq : info.placement[f.trace!]![1]);
      seen.push(f.trace!);
      at = { seq: f.seq!, trace: f.trace! };
    }
    expect(seen).toEqual(order);
    const round = await api<FindResult>(`/api/find?q=${q}&from=${at.seq}&trace=${at.trace}&dir=next&wrap=1`);
    expect(round).toMatchObject({ trace: order[0], wrapped: true, total: 0, traceTotal: 8 });
    const back = await api<FindResult>(`/api/find?q=${q}&from=${round.seq}&trace=${round.trace}&dir=prev&wrap=1`);
    expect(back).toMatchObject({ trace: order.at(-1), wrapped: true });
    // A model message that matches is found on its step's row, with no trace event.
    const model = await api<FindResult>(`/api/find?q=${encodeURIComponent('name:TDH.VP.ENTER')}&from=0&dir=next&wrap=1`);
    expect(model.trace).toBeNull();
    expect(r.log.events[model.seq! - 1]!.name).toBe('TDH.VP.ENTER');
  });

  it('bad parameters are a 400 naming them', async () => {
    await expect(api('/api/find?q=x&trace=41')).rejects.toThrow('400: trace event 41: the trace has events 0..40');
    await expect(api('/api/trace-events?from=-1')).rejects.toThrow('400: from must be a non-negative integer, got "-1"');
  });
});

describe('without a trace, and the protections', () => {
  it('a log not imported from a trace: /api/trace is a 404 that says so; its summary has no trace', async () => {
    const target = inspectTarget('mmio-ve', {}, () => {});
    const { get } = await serve(target);
    expect((await get<Summary>('/api/summary')).trace).toBeNull();
    await expect(get('/api/trace')).rejects.toThrow('404: this log was not imported from a trace (tdxsim import --inspect opens one that was)');
    const m = await get<MatchesResult>('/api/matches?q=%23VE');
    expect(m.traces).toBeUndefined();
  });

  it('the trace endpoints keep the Host and Origin checks', async () => {
    const { insp } = await serve(imported('td-mmio.trace-cmd.txt').target);
    const u = new URL(insp.url);
    const raw = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: u.hostname, port: u.port, path: '/api/trace-events', headers }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    expect(await raw({ host: `attacker.example:${u.port}` })).toBe(403);
    expect(await raw({ origin: 'http://attacker.example' })).toBe(403);
    expect(await raw({ origin: `http://127.0.0.1:${u.port}` })).toBe(200);
    const res = await fetch(insp.url + 'api/trace');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });
});

describe('a SEAMCALL failure in dmesg beside its trace', () => {
  it('the dmesg line goes between rows after the model\'s own call of that SEAMCALL; the divergence has both ends', async () => {
    const { report, target } = imported('demote-split.trace-cmd.txt', 'demote-tlb-tracking.dmesg');
    const { get } = await serve(target);
    const info = await get<TraceInfo>('/api/trace');
    const rows = (await get<{ rows: TraceEventRow[] }>('/api/trace-events')).rows;
    const d = info.divergences[info.first!]!;
    expect(d.kind).toBe('seamcall-status');
    expect(d.seq).toBe(report.divergences[report.firstDivergence!]!.model!.seq);
    const err = rows[d.trace!.id!]!;
    expect(err).toMatchObject({ file: 'examples/traces/demote-tlb-tracking.dmesg', line: 1, thread: 'dmesg', event: 'dmesg', status: 'trace-only', ts: '1203.548031' });
    expect(err.fields).toBe('TDH.MEM.PAGE.DEMOTE TDX_TLB_TRACKING_NOT_DONE status=0xc0000b0800000000 rcx=0x80000002a7e000f0 rdx=0x101');
    expect(info.placement[err.id]).toEqual([err.id, d.seq, 1]);
    // The stack dump after it stays with it.
    expect(info.placement.filter(([id]) => rows[id]!.file.endsWith('.dmesg')).every(([, seq]) => seq === d.seq)).toBe(true);
  });
});

describe('the commands', () => {
  const quiet = () => vi.spyOn(process.stderr, 'write').mockImplementation(() => true);

  it('tdxsim import --inspect prints the report, then the link to the first divergence and the inspector', async () => {
    const out: string[] = [];
    let url = '';
    const spy = quiet();
    try {
      const code = await importCommand([path.join(TRACES, 'ept-retry-loop.perf.txt')], { inspect: true, port: 0, scenarioOut: path.join(dir, 'loop.yaml'), onInspector: (i) => (servers.push(i), (url = i.url)) }, (l) => out.push(l));
      expect(code).toBe(1);
    } finally {
      spy.mockRestore();
    }
    expect(out.some((l) => l.startsWith('first divergence: '))).toBe(true);
    const s = (await (await fetch(url + 'api/summary')).json()) as Summary;
    const info = (await (await fetch(url + 'api/trace')).json()) as TraceInfo;
    const d = info.divergences[0]!;
    expect(out.slice(-2)).toEqual([`# first divergence (fault-retried) opens at: ${url}#step=${d.seq}&trace=${d.trace!.id}`, `# inspector: ${url}   (Ctrl-C to stop)`]);
    expect(s.scenario).toBe('import-ept-retry-loop-perf');
    expect(readFileSync(path.join(dir, 'loop.yaml'), 'utf8')).toBe(info.scenario.yaml);
    expect(info.scenario.file).toBe(path.join(dir, 'loop.yaml'));
  });

  it('--inspect takes --port like inspect does: a bad one is bad input (exit 2), and no import runs', () => {
    let err = '';
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((t: string | Uint8Array) => ((err += String(t)), true));
    try {
      expect(main(['import', path.join(TRACES, 'td-mmio.trace-cmd.txt'), '--inspect', '--port', 'http', '--scenario-out', path.join(dir, 'never.yaml')], () => {})).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(err).toBe("tdxsim: error: option '--port <n>' argument 'http' is invalid. --port needs a non-negative integer, got \"http\"\n");
    expect(readdirSync(dir)).not.toContain('never.yaml');
  });

  it('tdxsim inspect <trace> recognises a trace and writes nothing; a scenario is still a scenario', async () => {
    const out: string[] = [];
    let url = '';
    const before = new Set(readdir());
    const code = await inspectCommand(path.join(TRACES, 'td-mmio.trace-cmd.txt'), { port: 0, onInspector: (i) => (servers.push(i), (url = i.url)) }, (l) => out.push(l));
    expect(code).toBe(0);
    expect(out[0]).toMatch(/^# .*td-mmio\.trace-cmd\.txt \(imported, run in memory\): scenario import-td-mmio-trace-cmd, \d+ steps, outcome ok$/);
    expect(out[1]).toBe(`# trace: ${path.join(TRACES, 'td-mmio.trace-cmd.txt')} (trace-cmd, 33 events); no divergence`);
    expect(out.at(-1)).toBe(`# inspector: ${url}   (Ctrl-C to stop)`);
    expect(((await (await fetch(url + 'api/trace')).json()) as TraceInfo).scenario.file).toBeNull();
    expect(new Set(readdir())).toEqual(before);
    const scenario = inspectTarget('mmio-ve', {}, () => {});
    expect('session' in scenario && scenario.trace).toBeUndefined();
  });
});

const readdir = () => readdirSync(process.cwd());
