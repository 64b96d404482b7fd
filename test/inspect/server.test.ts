import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FindResult, StepView, Summary } from '../../src/inspect/api.ts';
import { startInspector, type Inspector } from '../../src/inspect/server.ts';
import { InspectSession } from '../../src/inspect/session.ts';
import { inspectTarget } from '../../src/cli/inspect.ts';
import { exampleLog } from '../export/fixtures.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { activeStateIds } from '../../src/export/statechart.ts';
import { statePath } from '../../src/session/stateView.ts';
import { guestVcpuMachine } from '../../machines/guest/guestVcpu.ts';
import { logText } from './logText.ts';

/** A raw request: the path goes on the wire exactly as written (fetch would normalise `..` away first), headers as given. */
function rawGet(url: string, pathname: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; body: string; type: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: pathname, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function fakeWebDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-web-'));
  writeFileSync(path.join(dir, 'main.js'), '/* app */');
  writeFileSync(path.join(dir, 'main.css'), '/* css */');
  return dir;
}

describe('inspector server: API over a log', () => {
  const { log, file } = exampleLog('mmio-ve');
  const veStep = log.events.find((e) => e.name === '#VE')!.seq;
  let insp: Inspector;
  const get = async <T>(p: string): Promise<T> => (await fetch(insp.url + p.slice(1))).json() as Promise<T>;

  beforeAll(async () => {
    insp = await startInspector({ session: InspectSession.open(log, file) }, { port: 0, webDir: fakeWebDir() });
  });
  afterAll(() => insp.close());

  it('binds to 127.0.0.1 and serves the app shell with a strict content security policy', async () => {
    expect(insp.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await fetch(insp.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await res.text()).toContain('<script type="module" src="/assets/main.js">');
  });

  it('summarises the log: scenario, steps, actors with their machines, outcome', async () => {
    const s = await get<Summary>('/api/summary');
    expect(s.scenario).toBe('mmio-ve');
    expect(s.steps).toBe(log.events.length);
    expect(s.actors.map((a) => a.id)).toContain('kvm.mmu');
    expect(s.actors.find((a) => a.id === 'kvm.mmu')?.machine).toBe('tdpMmu');
    expect(s.outcome?.status).toBe('ok');
    expect(s.failure).toBeNull();
  });

  it('pages the sequence rows with labels and decoded fields', async () => {
    const r = await get<{ rows: { seq: number; label: string; fields: string }[] }>(`/api/events?from=${veStep}&count=2`);
    expect(r.rows.map((x) => x.seq)).toEqual([veStep, veStep + 1]);
    expect(r.rows[0]!.label).toBe('#VE');
  });

  it('a step: the receiver\'s transition, its active state, and the MMIO SPTE decoded in kvm.mmu\'s page table', async () => {
    const v = await get<StepView>(`/api/step?n=${veStep}`);
    expect(v.event?.name).toBe('#VE');
    // The #VE takes the guest from executing into its handler (and on through eventless steps, if any).
    expect(v.taken?.actor).toBe('guest.vcpu0');
    expect(v.taken?.transitions[0]).toBe('guestVcpu.executing|#VE|0');
    const guest = v.actors.find((a) => a.id === 'guest.vcpu0')!;
    const replayed = replayLog(log, file, { to: veStep });
    const value = replayed.world.snapshots[replayed.model.indexOf.get('guest.vcpu0')!]!.value;
    expect(guest.active).toEqual(activeStateIds(guestVcpuMachine, value));
    expect(guest.state).toBe(statePath(value));
    expect(guest.state).not.toBe('executing');
    // Contexts come for one actor per request: the receiver by default, or the one asked for.
    expect(guest.detailed).toBe(true);
    expect(v.actors.find((a) => a.id === 'kvm.mmu')!.tables).toEqual([]);
    const mmu = (await get<StepView>(`/api/step?n=${veStep}&actor=kvm.mmu`)).actors.find((a) => a.id === 'kvm.mmu')!;
    expect(mmu.detailed).toBe(true);
    const rows = mmu.tables.flatMap((t) => t.pages.flatMap((p) => p.rows));
    const mmio = rows.find((r) => r.kind === 'mmio')!;
    expect(mmio.spte).toMatch(/^0x[0-9a-f]{16}$/);
    expect(mmio.decoded).toMatch(/^mmio gen=\d+ gpa=0x8000fe000000 --- SVE=0$/);
    expect(mmio.suppressVe).toBe(false);
    expect(mmio.mmuPresent).toBe(false);
  });

  it('finds the next and previous matching step, with the total', async () => {
    const next = await get<FindResult>('/api/find?q=%23VE&from=0&dir=next');
    expect(next.seq).toBe(veStep);
    expect(next.total).toBe(log.events.filter((e) => e.name === '#VE').length);
    expect((await get<FindResult>(`/api/find?q=%23VE&from=${veStep}&dir=prev`)).seq).toBeNull();
    expect((await get<FindResult>(`/api/find?q=to:kvm.mmu&from=${veStep}&dir=prev`)).seq).toBe(veStep - 2);
  });

  it('answers a bad step with 400, not a crash', async () => {
    const res = await fetch(insp.url + 'api/step?n=999999');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/steps 0\.\./);
    expect((await fetch(insp.url + 'api/step?n=-1')).status).toBe(400);
    expect((await fetch(insp.url + 'api/step?n=1&actor=nobody')).status).toBe(400);
  });

  it('serves only the listed assets: no path traversal, no directory listing', async () => {
    expect((await rawGet(insp.url, '/assets/main.js')).status).toBe(200);
    expect((await rawGet(insp.url, '/assets/main.js')).type).toMatch(/^text\/javascript/);
    for (const p of [
      '/assets/../package.json',
      '/assets/..%2f..%2fpackage.json',
      '/assets/%2e%2e/%2e%2e/package.json',
      '/../../../../etc/passwd',
      '/..%2f..%2f..%2fetc%2fpasswd',
      '//etc/passwd',
      '/assets/',
      '/assets/main.js/../../src/cli/main.ts',
      '/assets/main.js%00.css',
      '/api/../package.json',
      '/dist/web/main.js',
      '/package.json',
    ]) {
      const r = await rawGet(insp.url, p);
      expect(r.status, p).toBeGreaterThanOrEqual(400);
      expect(r.body, p).not.toMatch(/devDependencies|root:|import /);
    }
  });

  it('refuses other methods and foreign Host headers (DNS rebinding)', async () => {
    expect((await fetch(insp.url + 'api/summary', { method: 'POST' })).status).toBe(405);
    expect((await fetch(insp.url + 'api/steer')).status).toBe(405);
    const r = await rawGet(insp.url, '/api/summary', { host: 'attacker.example:80' });
    expect(r.status).toBe(403);
  });

  it('refuses a request whose Origin is another site\'s, on the live stream and on steering (403); its own origin passes', async () => {
    const port = new URL(insp.url).port;
    const steerBody = JSON.stringify({ log: 'main', n: 0, choice: 0 });
    const json = { 'content-type': 'application/json' };
    for (const origin of ['http://attacker.example', `http://attacker.example:${port}`, 'null', `https://127.0.0.1:${port}`, `http://127.0.0.1:${Number(port) + 1}`]) {
      const live = await rawGet(insp.url, '/api/live', { origin });
      expect(live.status, origin).toBe(403);
      expect(live.body).toMatch(/only the inspector's own page/);
      expect((await rawGet(insp.url, '/api/steer', { origin, ...json }, 'POST', steerBody)).status, origin).toBe(403);
      expect((await rawGet(insp.url, '/api/summary', { origin })).status, origin).toBe(403);
    }
    // The Host check still comes first: the right Origin with a rebinding Host is refused too.
    expect((await rawGet(insp.url, '/api/live', { host: 'attacker.example', origin: 'http://attacker.example' })).status).toBe(403);
    for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
      const live = await rawGet(insp.url, '/api/live', { origin });
      expect(live.status, origin).toBe(200);
      expect(live.type).toMatch(/^text\/event-stream/);
    }
    // Without an Origin (curl, the CLI's tests) the request is served: only browsers send one.
    expect((await rawGet(insp.url, '/api/live')).status).toBe(200);
    // Steering from the page's own origin must be JSON.
    expect((await rawGet(insp.url, '/api/steer', { origin: `http://127.0.0.1:${port}`, 'content-type': 'text/plain' }, 'POST', steerBody)).status).toBe(415);
  });
});

describe('inspector server: a log that cannot be opened', () => {
  it('an edited log gets an error page naming the file and line, with the name escaped', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-edited-'));
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'run<script>.log.jsonl');
    const lines = logText(exampleLog('mmio-ve').log).split('\n');
    // One byte more on line 5: its hash no longer matches, and the chain breaks there.
    lines[4] = lines[4]!.replace('{', '{ ');
    writeFileSync(file, lines.join('\n'));
    const warned: string[] = [];
    const target = inspectTarget(file, {}, (l) => warned.push(l));
    expect('error' in target).toBe(true);
    expect(warned[0]).toMatch(/run<script>\.log\.jsonl:5: /);
    const insp = await startInspector(target, { port: 0, webDir: fakeWebDir() });
    try {
      const res = await fetch(insp.url);
      const html = await res.text();
      expect(res.status).toBe(500);
      expect(html).toContain('The log cannot be opened');
      expect(html).toMatch(/run&lt;script&gt;\.log\.jsonl:5: /);
      expect(html).not.toContain('<script>');
      expect((await fetch(insp.url + 'api/summary')).status).toBe(500);
    } finally {
      await insp.close();
    }
  });

  it('a log torn in its header cannot be opened at all: the error page names it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-torn-'));
    const file = path.join(dir, 'torn.log.jsonl');
    writeFileSync(file, logText(exampleLog('mmio-ve').log).slice(0, 60));
    const target = inspectTarget(file, {}, () => {});
    expect('error' in target && target.error.title).toBe('The log is torn');
    expect('error' in target && target.error.message).toMatch(/torn\.log\.jsonl:1: torn header/);
  });
});
