/** `tdxsim export` as a user calls it: formats, --out, --actor, and the errors for bad input. */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { exportCommand } from '../../src/cli/export.ts';
import { actorsFor } from '../../machines/registry.ts';
import { scenarioFromLog } from '../../src/replay/replay.ts';
import { logText } from '../inspect/logText.ts';
import { exampleLog } from './fixtures.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-export-'));
const { log } = exampleLog('mmio-ve');
const logFile = path.join(dir, 'mmio-ve.log.jsonl');
writeFileSync(logFile, logText(log));

function run(...args: string[]): { code: number; out: string[]; err: string } {
  const out: string[] = [];
  let err = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    err += String(s);
    return true;
  });
  try {
    return { code: main(args, (l) => out.push(l)), out, err };
  } finally {
    spy.mockRestore();
  }
}

describe('tdxsim export', () => {
  it('--format mermaid prints a sequence diagram of the log', () => {
    const r = run('export', logFile, '--format', 'mermaid');
    expect(r.code).toBe(0);
    expect(r.out.join('\n').split('\n')[0]).toBe('sequenceDiagram');
    expect(r.out.join('\n').match(/->>/g)).toHaveLength(log.events.length);
  });

  it('--format perfetto --out writes trace JSON that parses', () => {
    const out = path.join(dir, 'trace.json');
    const r = run('export', logFile, '--format', 'perfetto', '--out', out);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`wrote a Perfetto trace`);
    const trace = JSON.parse(readFileSync(out, 'utf8')) as { traceEvents: { ph: string }[] };
    expect(trace.traceEvents.filter((e) => e.ph === 'X').length).toBeGreaterThanOrEqual(log.events.length);
  });

  it('takes a scenario too, running it in memory first', () => {
    const r = run('export', 'mmio-ve', '--format', 'mermaid', '--actor', 'kvm.mmu');
    expect(r.code).toBe(0);
    expect(r.out.join('\n')).toContain('participant kvm_mmu as kvm.mmu');
  });

  it('--format statechart-mermaid without --actor writes one fenced block per machine', () => {
    const r = run('export', logFile, '--format', 'statechart-mermaid');
    expect(r.code).toBe(0);
    const text = r.out.join('\n');
    const machines = new Set(actorsFor(scenarioFromLog(log, logFile)).map((a) => a.machine.id));
    expect(text.match(/```mermaid\nstateDiagram-v2/g)!.length).toBe(machines.size);
    for (const m of machines) expect(text).toContain(`## ${m} (`);
  });

  it('--format statechart-svg draws one machine, or one file per machine with --out DIR', async () => {
    const out: string[] = [];
    expect(await exportCommand(logFile, { format: 'statechart-svg', actor: 'guest.vcpu0' }, (l) => out.push(l))).toBe(0);
    expect(out.join('\n')).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[^>]*data-machine="guestVcpu"/);
    const charts = path.join(dir, 'charts');
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await exportCommand(logFile, { format: 'statechart-svg', out: charts }, () => {})).toBe(0);
    } finally {
      spy.mockRestore();
    }
    expect(readdirSync(charts)).toEqual(expect.arrayContaining(['guestVcpu.svg', 'kvmVcpu.svg', 'tdpMmu.svg']));
    await expect(Promise.resolve().then(() => exportCommand(logFile, { format: 'statechart-svg' }, () => {}))).rejects.toThrow(/pass --actor ID, or --out DIR/);
  });

  it('bad input exits 2 and says why: unknown format, unknown actor', () => {
    const bad = run('export', logFile, '--format', 'dot');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/Allowed choices are mermaid, perfetto, statechart-mermaid, statechart-svg/);
    const actor = run('export', logFile, '--format', 'mermaid', '--actor', 'kvm.vcpu9');
    expect(actor.code).toBe(2);
    expect(actor.err).toMatch(/--actor kvm\.vcpu9: no such actor \(guest\.vcpu0, /);
  });

  it('a torn log is exported up to its last intact step, after a warning naming the torn line', () => {
    const torn = path.join(dir, 'torn.log.jsonl');
    writeFileSync(torn, logText(log).slice(0, -10));
    const t = run('export', torn, '--format', 'perfetto');
    expect(t.code).toBe(0);
    expect(t.err).toBe(`tdxsim: warning: ${torn}:${log.events.length + 2}: torn last line: the writer stopped inside the end record (no trailing newline); the log ends at step ${log.events.length}\n`);
  });
});
