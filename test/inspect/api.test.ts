/**
 * The inspector's API beyond one step: background verification, torn logs, the wrapping filter and its
 * match list, the diff between two steps, collapsed statecharts, a counterexample's preemptions, a
 * lasso's loop, and steering (a new log, the old one untouched).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ChoicesResult, CollapsedChart, DiffResult, EventRow, FindResult, MatchesResult, SteerResult, Summary, VerifyResult } from '../../src/inspect/api.ts';
import { inspectTarget } from '../../src/cli/inspect.ts';
import { countPreemptions } from '../../src/explore/minimise.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { allStates, statechartOf } from '../../src/export/statechart.ts';
import { kvmVcpuMachine } from '../../machines/kvm/kvmVcpu.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { enabledChoices } from '../../src/runtime/step.ts';
import { hex16 } from '../../src/arch/hex.ts';
import { describeSpte } from '../../src/session/format.ts';
import { statePath } from '../../src/session/stateView.ts';
import { formatOptionsFor, modelFor } from '../../src/session/session.ts';
import { startInspector, type Inspector } from '../../src/inspect/server.ts';
import { InspectSession } from '../../src/inspect/session.ts';
import { exampleLog } from '../export/fixtures.ts';
import { counterexampleLog, lassoLog } from './fixtures.ts';
import { logText } from './logText.ts';

/** The guest vCPU's state after the #VE, as replay says. */
function afterVe(log: ReturnType<typeof exampleLog>['log'], file: string): string {
  const r = replayLog(log, file, { to: log.events.find((e) => e.name === '#VE')!.seq });
  return statePath(r.world.snapshots[r.model.indexOf.get('guest.vcpu0')!]!.value);
}

const servers: Inspector[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));
const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-inspect-api-'));

async function serve(target: Parameters<typeof startInspector>[0]) {
  const insp = await startInspector(target, { port: 0, webDir: dir, verifyWorker: null });
  servers.push(insp);
  const get = async <T>(p: string): Promise<T> => {
    const res = await fetch(insp.url + p.slice(1));
    const body = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new Error(`${res.status}: ${body.error}`);
    return body;
  };
  const post = (p: string, body: unknown) => fetch(insp.url + p.slice(1), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { insp, get, post };
}

const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
};

describe('background verification (replay --verify)', () => {
  const { log } = exampleLog('mmio-ve');

  it('a good log: every step and the outcome re-derived', async () => {
    const file = write('good.log.jsonl', logText(log));
    const { get } = await serve(inspectTarget(file, {}, () => {}));
    expect(await get<VerifyResult>('/api/verify')).toEqual({ status: 'verified', steps: log.events.length, text: `verified: ${log.events.length} steps, hashes and outcome re-derived` });
  });

  it('a state hash the model does not reach, between checkpoints, is found by the check with its line (opening does not look there)', async () => {
    const file = write('bad-hash.log.jsonl', logText(log, (r, i) => (i === 5 ? { ...r, state: 'AAAAAAAAAAA' } : r)));
    const { get } = await serve(inspectTarget(file, {}, () => {}));
    expect((await get<Summary>('/api/summary')).outcome?.status).toBe('ok');
    const v = await get<VerifyResult>('/api/verify');
    expect(v.status).toBe('failed');
    expect(v.text).toBe(`not verified: ${file}:6: replay diverged: state hash ${log.events[4]!.state} after this step, the log says AAAAAAAAAAA`);
  });

  it('an outcome the run does not reach is a claim that fails the check, naming the end record\'s line', async () => {
    const end = log.events.length + 2;
    const file = write('bad-outcome.log.jsonl', logText(log, (r) => (r['type'] === 'end' ? { ...r, outcome: { status: 'failure', reason: 'made up', failures: [] } } : r)));
    const { get } = await serve(inspectTarget(file, {}, () => {}));
    const s = await get<Summary>('/api/summary');
    expect(s.outcome).toEqual({ status: 'failure', reason: 'made up' });
    const v = await get<VerifyResult>('/api/verify');
    expect(v).toEqual({ status: 'failed', text: `not verified: ${file}:${end}: replay diverged: outcome ok (null), the log says failure (made up)` });
  });
});

describe('a torn log', () => {
  const { log } = exampleLog('mmio-ve');
  const text = logText(log);

  it('opens on its intact prefix, names the tear, and verifies the hashes it has', async () => {
    // Cut the last event line in the middle: the end record is gone, the event before it is intact.
    const cut = text.lastIndexOf('\n', text.length - 2);
    const lastEvent = text.lastIndexOf('\n', cut - 1);
    const file = write('torn.log.jsonl', text.slice(0, lastEvent + 40));
    const warned: string[] = [];
    const target = inspectTarget(file, {}, (l) => warned.push(l));
    expect('session' in target).toBe(true);
    const intact = log.events.length - 1;
    expect(warned).toEqual([`tdxsim: warning: ${file}:${intact + 2}: torn last line (the writer stopped mid-line); showing the ${intact} intact steps before it`]);
    const { get } = await serve(target);
    const s = await get<Summary>('/api/summary');
    expect(s.steps).toBe(intact);
    expect(s.outcome).toBeNull();
    expect(s.torn?.line).toBe(intact + 2);
    expect(s.torn?.notice).toBe(`${file}:${intact + 2}: torn last line (the writer stopped mid-line); showing the ${intact} intact steps before it. The run's end was not recorded, so there is no outcome.`);
    expect(await get<VerifyResult>('/api/verify')).toEqual({ status: 'partial', steps: intact, text: `hashes verified for ${intact} steps; the outcome cannot be: the log is torn at line ${intact + 2}` });
  });
});

describe('filter: wrapping round, and the list of matches', () => {
  const { log, file } = exampleLog('mmio-ve');
  const ves = log.events.filter((e) => e.name === '#VE').map((e) => e.seq);

  it('next after the last match wraps to the first; previous before the first wraps to the last', async () => {
    expect(ves.length).toBeGreaterThan(1);
    const { get } = await serve({ session: InspectSession.open(log, file) });
    expect(await get<FindResult>(`/api/find?q=%23VE&from=${ves.at(-1)}&dir=next&wrap=1`)).toEqual({ seq: ves[0], total: ves.length, wrapped: true });
    expect(await get<FindResult>(`/api/find?q=%23VE&from=${ves[0]}&dir=prev&wrap=1`)).toEqual({ seq: ves.at(-1), total: ves.length, wrapped: true });
    expect(await get<FindResult>(`/api/find?q=%23VE&from=0&dir=next&wrap=1`)).toEqual({ seq: ves[0], total: ves.length, wrapped: false });
    // Without wrap=1, as before: no match past the last.
    expect((await get<FindResult>(`/api/find?q=%23VE&from=${ves.at(-1)}&dir=next`)).seq).toBeNull();
    expect(await get<FindResult>(`/api/find?q=nothing-matches-this&from=3&dir=next&wrap=1`)).toEqual({ seq: null, total: 0, wrapped: false });
    expect(await get<MatchesResult>('/api/matches?q=%23VE')).toEqual({ seqs: ves });
  });
});

describe('diff between two steps', () => {
  const { log, file } = exampleLog('mmio-ve');
  const veStep = log.events.find((e) => e.name === '#VE')!.seq;
  const install = log.events.filter((e) => e.name === 'SPTE_CMPXCHG' && e.seq < veStep).at(-1)!;

  it('names each actor that changed, its context paths old → new, and the SPTE decoded on both sides', async () => {
    const session = InspectSession.open(log, file);
    const { get } = await serve({ session });
    const r = await get<DiffResult>(`/api/diff?a=${install.seq - 1}&b=${install.seq}`);
    expect(r.actors.map((a) => a.id)).toEqual([install.to]);
    const mmu = r.actors[0]!;
    const spte = BigInt(install.payload['newSpte'] as string);
    const change = mmu.tables.find((t) => t.new?.entry === hex16(spte))!;
    expect(change.field).toBe('pages');
    expect(change.kind).toBe('spte');
    expect(change.new!.kind).toBe('mmio');
    // The CLI's own decoding, without the value the table shows in its own column.
    expect(change.new!.decoded).toBe(describeSpte(spte, formatOptionsFor(session.scenario), change.level ?? undefined).replace(/^0x[0-9a-f]{16} /, ''));
    expect(change.old === null || change.old.entry !== change.new!.entry).toBe(true);

    // Far apart and backwards: every actor the run touched in between, each with what differs.
    const wide = await get<DiffResult>(`/api/diff?a=${veStep}&b=0`);
    expect(wide.actors.length).toBeGreaterThan(3);
    const guest = wide.actors.find((a) => a.id === 'guest.vcpu0')!;
    expect([guest.stateA, guest.stateB]).toEqual([afterVe(log, file), 'notEntered']);
    const paths = wide.actors.flatMap((a) => a.paths);
    expect(paths.length).toBeGreaterThan(0);
    expect(paths.every((p) => p.old !== p.new)).toBe(true);
    expect(wide.actors.find((a) => a.id === 'kvm.mmu')!.tables.some((t) => t.old?.kind === 'mmio' && t.new === null)).toBe(true);
    await expect(get(`/api/diff?a=0&b=${log.events.length + 1}`)).rejects.toThrow(/^400: step \d+: the log has steps 0\.\./);
  });

  it('decodes S-EPT entries for the TDX module', async () => {
    const { log: pl, file: pf } = exampleLog('private-accept');
    const aug = pl.events.find((e) => e.name === 'TDH.MEM.PAGE.AUG' && e.to === 'tdx')!;
    const { get } = await serve({ session: InspectSession.open(pl, pf) });
    const r = await get<DiffResult>(`/api/diff?a=${aug.seq - 1}&b=${aug.seq}`);
    const tdx = r.actors.find((a) => a.id === 'tdx')!;
    const sept = tdx.tables.filter((t) => t.kind === 'sept');
    expect(sept.length).toBeGreaterThan(0);
    expect(sept.some((t) => t.new?.kind === 'PENDING')).toBe(true);
  });
});

describe('collapsed statecharts', () => {
  const { log, file } = exampleLog('mmio-ve');

  it('KVM\'s vCPU with nothing expanded: each compound state is one box; expanding one brings its inside back', async () => {
    const { get } = await serve({ session: InspectSession.open(log, file) });
    const all = allStates(statechartOf(kvmVcpuMachine));
    const compounds = all.filter((s) => s.children.length > 0 && s.id !== 'kvmVcpu').map((s) => s.id);
    const none = await get<CollapsedChart>('/api/statechart?machine=kvmVcpu');
    const count = (s: CollapsedChart['layout']['root']): number => 1 + s.children.reduce((n, c) => n + count(c), 0);
    expect(none.collapsed.sort()).toEqual(compounds.filter((id) => !compounds.some((o) => o !== id && id.startsWith(o + '.'))).sort());
    expect(count(none.layout.root)).toBeLessThan(all.length / 2);
    const handler = none.layout.root.children.find((c) => c.id === 'kvmVcpu.handlingEptViolation')!;
    expect(handler.children).toEqual([]);
    expect(handler.rows[0]!.text).toMatch(/^▸ \d+ states inside \(collapsed\)$/);
    // Arrows into the handler's inside now end at its box.
    expect(none.layout.edges.some((e) => e.target === 'kvmVcpu.handlingEptViolation')).toBe(true);
    expect(none.layout.edges.every((e) => !e.target.startsWith('kvmVcpu.handlingEptViolation.'))).toBe(true);

    const open = await get<CollapsedChart>('/api/statechart?machine=kvmVcpu&expand=kvmVcpu.handlingEptViolation');
    expect(open.collapsed).not.toContain('kvmVcpu.handlingEptViolation');
    expect(open.collapsed).toContain('kvmVcpu.handlingEptViolation.splitting');
    expect(open.layout.root.children.find((c) => c.id === 'kvmVcpu.handlingEptViolation')!.children.length).toBeGreaterThan(3);
    await expect(get('/api/statechart?machine=kvmVcpu&expand=kvmVcpu.nope')).rejects.toThrow(/^400: kvmVcpu has no state "kvmVcpu.nope"/);
    await expect(get('/api/statechart?machine=nope')).rejects.toThrow(/^400: no machine "nope"/);
  });
});

describe('a counterexample: its preemptions', () => {
  it('marks the same preemptions src/explore/minimise.ts counts along the schedule', async () => {
    const cx = counterexampleLog();
    const { get } = await serve({ session: InspectSession.open(cx.log, cx.file) });
    const s = await get<Summary>('/api/summary');
    expect(s.scheduler).toBe('explore');
    const expected = countPreemptions(modelFor(cx.scenario), cx.choices);
    expect(expected).toBeGreaterThan(2);
    expect(s.preemptions).toBe(expected);
    const rows = (await get<{ rows: EventRow[] }>(`/api/events?from=1&count=${cx.log.events.length}`)).rows;
    const marked = rows.filter((r) => r.preemption !== null);
    expect(marked).toHaveLength(expected);
    const p = marked[0]!;
    expect(p.preemption).toMatch(new RegExp(`^preemption: step ${p.seq - 1} sent .+ to \\S+, deliverable here; step ${p.seq} delivers to ${p.to.replace('.', '\\.')} instead$`));
    expect(await get<VerifyResult>('/api/verify')).toMatchObject({ status: 'verified', steps: cx.log.events.length });
  });

  it('a FIFO run is not marked (its schedule is not the point of the log)', async () => {
    const { log, file } = exampleLog('mmio-ve');
    const { get } = await serve({ session: InspectSession.open(log, file) });
    expect((await get<Summary>('/api/summary')).preemptions).toBeNull();
    expect((await get<{ rows: EventRow[] }>('/api/events?from=1&count=50')).rows.every((r) => r.preemption === null)).toBe(true);
  });
});

describe('a lasso log', () => {
  it('reports its loop: steps loopStart+1 … steps, what starves and what it retries', async () => {
    const l = lassoLog();
    const { get } = await serve({ session: InspectSession.open(l.log, l.file) });
    const s = await get<Summary>('/api/summary');
    expect(s.lasso).toEqual({ loopStart: l.loopStart, first: l.loopStart + 1, last: l.log.events.length, starving: 'guest.vcpu0', retries: 'TDG.MEM.PAGE.ACCEPT 0x200000' });
    expect(s.lasso!.last - s.lasso!.first + 1).toBe(l.period);
  });

  it('a loopStart outside the log is reported, not drawn', async () => {
    const l = lassoLog();
    const bad = parseLogText(logText(l.log, (r) => (r['type'] === 'end' ? { ...r, outcome: { ...(r['outcome'] as object), lasso: { loopStart: 9999, starving: 'x', retries: 'y' } } } : r)), 'bad-lasso.log.jsonl');
    const { get } = await serve({ session: InspectSession.open(bad, 'bad-lasso.log.jsonl') });
    const s = await get<Summary>('/api/summary');
    expect(s.lasso).toBeNull();
    expect(s.warning).toBe(`end record: outcome.lasso.loopStart must be a step 0 ≤ N < ${l.log.events.length}, got 9999`);
  });
});

describe('steering', () => {
  const cx = counterexampleLog();

  it('lists the messages enabled after a step, the log\'s own choice marked', async () => {
    const session = InspectSession.open(cx.log, cx.file);
    const { get } = await serve({ session });
    const n = cx.log.events.findIndex((_e, i) => i > 0 && enabledChoices(session.model, session.worldAt(i)).length > 1);
    const r = await get<ChoicesResult>(`/api/choices?n=${n}`);
    expect(r.step).toBe(n + 1);
    expect(r.choices.length).toBeGreaterThan(1);
    expect(r.choices.filter((c) => c.taken).map((c) => c.index)).toEqual([cx.log.events[n]!.choice]);
    const taken = r.choices.find((c) => c.taken)!;
    expect([taken.from, taken.to, taken.label]).toEqual([cx.log.events[n]!.from, cx.log.events[n]!.to, session.textOf(n + 1).label]);
  });

  it('a new log: the same schedule to step n, the picked message at n+1, then FIFO to the end; the file it came from is untouched', async () => {
    const file = write('cx.log.jsonl', cx.text);
    const before = readFileSync(file, 'utf8');
    const target = inspectTarget(file, {}, () => {});
    const session = 'session' in target ? target.session : null;
    const { get, post } = await serve(target);
    // The last step where another message could have gone first.
    let n = cx.log.events.length - 1;
    while (enabledChoices(session!.model, session!.worldAt(n)).length < 2) n--;
    const choices = await get<ChoicesResult>(`/api/choices?n=${n}`);
    const pick = choices.choices.find((c) => !c.taken)!;
    const res = await post('/api/steer', { log: 'main', n, choice: pick.index });
    expect(res.status).toBe(200);
    const r = (await res.json()) as SteerResult;
    expect(r.log).toMatch(/^s\d+$/);
    expect(r.step).toBe(n + 1);

    const s = await get<Summary>(`/api/summary?log=${r.log}`);
    expect(s.steered).toEqual({ parent: 'main', step: n + 1, chose: `${pick.from} → ${pick.to} ${pick.label}`, insteadOf: `${cx.log.events[n]!.from} → ${cx.log.events[n]!.to} ${session!.textOf(n + 1).label}`, fileName: `accept-race.steered-at-${n + 1}-choice-${pick.index}.log.jsonl` });
    expect(s.scheduler).toBe('explore');

    const dl = await fetch(`${servers.at(-1)!.url}api/download?log=${r.log}`);
    expect(dl.headers.get('content-disposition')).toBe(`attachment; filename="${s.steered!.fileName}"`);
    const steered = parseLogText(await dl.text(), s.steered!.fileName);
    expect(steered.header.scheduler).toEqual({ kind: 'explore' });
    expect(steered.header.scenario).toEqual(cx.log.header.scenario);
    const strip = (e: { hash: string }) => ({ ...e, hash: '' });
    expect(steered.events.slice(0, n).map(strip)).toEqual(cx.log.events.slice(0, n).map(strip));
    expect(steered.events[n]!.choice).toBe(pick.index);
    expect([steered.events[n]!.from, steered.events[n]!.to]).toEqual([pick.from, pick.to]);
    // FIFO after the steered step: the oldest message each time.
    expect(replayLog(steered, s.steered!.fileName, { verify: true }).verified).toBe(true);
    expect(steered.end).not.toBeNull();
    expect(s.steps).toBe(steered.events.length);
    expect(await get<VerifyResult>(`/api/verify?log=${r.log}`)).toMatchObject({ status: 'verified', steps: steered.events.length });

    expect(readFileSync(file, 'utf8')).toBe(before);
    expect((await get<Summary>('/api/summary')).steps).toBe(cx.log.events.length);
  });

  it('refuses a choice that is not enabled, a step past the end and an unknown log', async () => {
    const { post } = await serve({ session: InspectSession.open(cx.log, cx.file) });
    const bad = async (body: unknown) => {
      const res = await post('/api/steer', body);
      return { status: res.status, error: ((await res.json()) as { error: string }).error };
    };
    expect(await bad({ log: 'main', n: 0, choice: 99 })).toEqual({ status: 400, error: expect.stringMatching(/^choice 99: \d+ message\(s\) can be delivered after step 0 \(0\.\.\d+\)$/) });
    expect(await bad({ log: 'main', n: 9999, choice: 0 })).toEqual({ status: 400, error: `step 9999: the log has steps 0..${cx.log.events.length}` });
    expect(await bad({ log: 's77', n: 0, choice: 0 })).toEqual({ status: 404, error: 'no log "s77"' });
    expect(await bad({ log: 'main', n: '0', choice: 0 })).toEqual({ status: 400, error: 'n and choice must be numbers' });
  });
});
