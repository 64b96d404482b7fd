/** `tdxsim inspect` and `tdxsim run --inspect/--stately` as commands: what they print, and bad input. */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { inspectCommand } from '../../src/cli/inspect.ts';
import { main } from '../../src/cli/main.ts';
import type { Summary } from '../../src/inspect/api.ts';
import { liveRun } from '../../src/cli/liveRun.ts';
import type { Inspector } from '../../src/inspect/server.ts';
import { OptionalPackageMissing } from '../../src/inspect/stately.ts';
import { exampleLog } from '../export/fixtures.ts';
import { logText } from './logText.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-inspect-cli-'));
const servers: Inspector[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

async function inspect(arg: string): Promise<{ printed: string[]; url: string }> {
  const printed: string[] = [];
  let url = '';
  const code = await inspectCommand(arg, { port: 0, onInspector: (i) => (servers.push(i), (url = i.url)) }, (l) => printed.push(l));
  expect(code).toBe(0);
  return { printed, url };
}

describe('tdxsim inspect', () => {
  it('runs a bundled example in memory, serves it on loopback and prints the URL', async () => {
    const { printed, url } = await inspect('mmio-ve');
    expect(printed[0]).toMatch(/^# mmio-ve \(run in memory\): scenario mmio-ve, \d+ steps, outcome ok$/);
    expect(printed.at(-1)).toBe(`# inspector: ${url}   (Ctrl-C to stop)`);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const s = (await (await fetch(url + 'api/summary')).json()) as Summary;
    expect(s.scenario).toBe('mmio-ve');
  });

  it('a counterexample log prints the link that opens on its failing step', async () => {
    const failed = exampleLog('mmio-ve', { maxSteps: 9 });
    const file = path.join(dir, 'cex.log.jsonl');
    writeFileSync(file, logText(failed.log));
    const { printed, url } = await inspect(file);
    expect(printed).toContain(`# counterexample: opens on step 9: ${url}#step=9`);
  });

  it('a log past the paged size opens paged: its missing index is built first, and the command says so', async () => {
    const { log } = exampleLog('mmio-ve');
    const file = path.join(dir, 'paged.log.jsonl');
    writeFileSync(file, logText(log));
    const said: string[] = [];
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((s) => (said.push(String(s)), true));
    const printed: string[] = [];
    let url = '';
    try {
      expect(await inspectCommand(file, { port: 0, pagedFrom: 0, onInspector: (i) => (servers.push(i), (url = i.url)) }, (l) => printed.push(l))).toBe(0);
    } finally {
      stderr.mockRestore();
    }
    expect(said).toEqual([`tdxsim: ${file}: building its checkpoint index ${file}.idx (there is none): one pass over the log, after which any step opens from its nearest checkpoint\n`]);
    expect(existsSync(`${file}.idx`)).toBe(true);
    expect(printed[0]).toBe(`# ${file}: scenario mmio-ve, ${log.events.length} steps, outcome ok`);
    const s = (await (await fetch(url + 'api/summary')).json()) as Summary;
    expect(s.paged).toEqual({ block: 1024, indexFile: `${file}.idx`, indexState: 'built' });
    expect(s.steps).toBe(log.events.length);
  });

  it('a scenario that does not exist is bad input (exit 2), and no server starts', () => {
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(main(['inspect', path.join(dir, 'nope.yaml')], () => {})).toBe(2);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('tdxsim run --inspect: the live stream', () => {
  /** A GET with the headers given, read to its end (the stream ends with the run, or at once when refused). */
  const get = (url: string, headers: Record<string, string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(url);
      const req = request({ host: u.hostname, port: u.port, path: '/api/live', headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });

  it('a page on another site cannot subscribe (403), so it cannot even start the run; the inspector\'s own page can', async () => {
    const printed: string[] = [];
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let url = '';
    const listening = new Promise<void>((resolve) => {
      void liveRun('mmio-ve', { inspect: true, port: 0, log: path.join(dir, 'live-origin.log.jsonl'), onInspector: (i) => (servers.push(i), (url = i.url), resolve()) }, (l) => printed.push(l)).then((code) => printed.push(`exit ${code}`));
    });
    try {
      await listening;
      const port = new URL(url).port;
      const foreign = await get(url, { origin: 'http://attacker.example' });
      expect(foreign.status).toBe(403);
      expect(foreign.body).toBe("tdxsim inspect: requests from http://attacker.example are refused; only the inspector's own page may use it\n");
      // The run waits for a viewer: a refused subscription is none.
      await new Promise((r) => setImmediate(r));
      expect(printed).toEqual([]);
      const own = await get(url, { origin: `http://127.0.0.1:${port}` });
      expect(own.status).toBe(200);
      expect(own.body).toMatch(/"live":false}\n\n$/);
      expect(printed.at(-1)).toBe('exit 0');
    } finally {
      stderr.mockRestore();
    }
  });
});

describe('tdxsim run --stately', () => {
  it('without the optional @statelyai/inspect package: a clear error, and the log is not touched', async () => {
    const log = path.join(dir, 'stately.log.jsonl');
    const run = liveRun('mmio-ve', { stately: true, log }, () => {});
    await expect(run).rejects.toThrow(OptionalPackageMissing);
    await expect(run).rejects.toThrow(/npm install --no-save @statelyai\/inspect.*needs network access/);
    expect(existsSync(log)).toBe(false);
  });
});
