/**
 * Seeking in a log through its checkpoint index: every step restored exactly (the state the log records),
 * the index rebuilt when missing or stale, a changed index not trusted, compressed logs alike.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readLog } from '../../src/log/reader.ts';
import { LogWriter } from '../../src/log/writer.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { indexFileOf, openIndexed } from '../../src/replay/seek.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import { initialWorld } from '../../src/runtime/step.ts';
import { randomScheduler } from '../../src/runtime/scheduler/random.ts';
import { worldHash } from '../../src/runtime/worldHash.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { headerFor, modelFor, recordRun } from '../../src/session/session.ts';
import { exampleFile } from '../helpers.ts';
import { twoVcpuMmio } from '../twoVcpu.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-seek-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A log written with a small block, so that a short run has many checkpoints. */
function writeLog(name: string, scenario = loadScenarioFile(exampleFile('td-poweroff')).scenario, seed?: number, block = 16, withIndex = false): string {
  const file = path.join(dir, name);
  const scheduler = seed === undefined ? fifoScheduler() : randomScheduler(seed);
  const model = modelFor(scenario);
  const w = LogWriter.open(file, headerFor(scenario, null, scheduler.descriptor), { block, ...(withIndex ? { index: { initial: initialWorld(model) } } : {}) });
  recordRun(model, w, { scheduler });
  w.close();
  return file;
}

describe('seek', () => {
  it('restores every step exactly: the state hash, the record and the message of a full replay', () => {
    for (const [name, file] of [['td-poweroff', writeLog('a.jsonl')], ['two vCPUs, random', writeLog('b.jsonl', twoVcpuMmio('tdx'), 5, 8)]] as const) {
      const log = readLog(file);
      const full = replayLog(log, file, { keepAll: true });
      const notices: string[] = [];
      const h = openIndexed(file, { onNotice: (m) => notices.push(m), minIndexBytes: 0 });
      expect(h.steps, name).toBe(log.events.length);
      // Every block start and end, and steps in between: bounded work, every kind of position.
      const steps = [...new Set([...Array.from({ length: h.steps + 1 }, (_, n) => n).filter((n) => n % 7 === 0 || n % 8 <= 1 || n % 16 === 15), h.steps])];
      for (const n of steps) {
        const r = h.seek(n);
        expect(worldHash(h.model, r.world), `${name} step ${n}`).toBe(worldHash(full.model, full.history![n]!));
        expect(r.event, `${name} step ${n}`).toEqual(n === 0 ? null : log.events[n - 1]);
        if (n > 0) expect(worldHash(h.model, r.before!)).toBe(worldHash(full.model, full.history![n - 1]!));
      }
      expect(h.end).toEqual(log.end);
      h.close();
    }
  });

  it('builds the index when it is missing, uses it when fresh, rebuilds it when the log changed', () => {
    const file = writeLog('c.jsonl');
    rmSync(indexFileOf(file), { force: true });
    const notices: string[] = [];
    const a = openIndexed(file, { onNotice: (m) => notices.push(m), minIndexBytes: 0 });
    expect([a.indexState, existsSync(indexFileOf(file))]).toEqual(['built', true]);
    expect(notices[0]).toContain('(there is none)');
    a.close();
    const b = openIndexed(file, { onNotice: (m) => notices.push(m), minIndexBytes: 0 });
    expect(b.indexState).toBe('fresh');
    b.close();
    // Another run written over the same file: same header, other events.
    writeLog('c.jsonl', loadScenarioFile(exampleFile('td-poweroff')).scenario, 3);
    const c = openIndexed(file, { onNotice: (m) => notices.push(m), minIndexBytes: 0 });
    expect(c.indexState).toBe('built');
    expect(notices.at(-1)).toMatch(/the log changed since it was written|belongs to another log/);
    const log = readLog(file);
    expect(c.seek(log.events.length).event).toEqual(log.events.at(-1));
    c.close();
  });

  it('a changed index is detected and not trusted: the seek still gives the logged state', () => {
    const file = writeLog('d.jsonl');
    openIndexed(file, { minIndexBytes: 0 }).close();
    const idx = indexFileOf(file);
    const text = readFileSync(idx, 'utf8');
    // Change one value inside a stored node, keeping the file's length (and so every offset) the same.
    const tampered = text.replace(/("pc":)(\d)/g, (_m, k: string, d: string) => `${k}${d === '9' ? '8' : '9'}`);
    expect(tampered).not.toBe(text);
    writeFileSync(idx, tampered);
    const notices: string[] = [];
    const h = openIndexed(file, { onNotice: (m) => notices.push(m), minIndexBytes: 0 });
    const log = readLog(file);
    const full = replayLog(log, file, { to: 300 });
    expect(worldHash(h.model, h.seek(300).world)).toBe(worldHash(full.model, full.world));
    expect(notices.join('\n')).toMatch(/not trusted|damaged/);
    h.close();
  });

  it('the index a run writes with its log is used as it is, for a plain log and a compressed one', () => {
    for (const name of ['w.jsonl', 'w.jsonl.gz']) {
      const file = writeLog(name, undefined, undefined, 16, true);
      const log = readLog(file);
      const full = replayLog(log, file, { keepAll: true });
      const h = openIndexed(file, { minIndexBytes: 0 });
      expect(h.indexState, name).toBe('fresh');
      for (const n of [1, 15, 16, 17, 100, 255, 256, log.events.length]) {
        const r = h.seek(n);
        expect(worldHash(h.model, r.world), `${name} step ${n}`).toBe(worldHash(full.model, full.history![n]!));
        expect(r.event).toEqual(log.events[n - 1]);
      }
      expect(h.end).toEqual(log.end);
      h.close();
    }
  });

  it('a log smaller than minIndexBytes without an index is read from its start, and gets none', () => {
    const file = writeLog('small.jsonl');
    rmSync(indexFileOf(file), { force: true });
    const h = openIndexed(file);
    expect([h.indexState, existsSync(indexFileOf(file))]).toEqual(['none', false]);
    const log = readLog(file);
    expect(h.seek(200).event).toEqual(log.events[199]);
    h.close();
  });

  it('reads events of a window from the nearest block start', () => {
    const file = writeLog('e.jsonl');
    const log = readLog(file);
    const h = openIndexed(file, { minIndexBytes: 0 });
    expect([...h.events(37, 70)]).toEqual(log.events.slice(36, 70));
    h.close();
  });
});

describe('compressed logs', () => {
  it('round trip: the same records as the plain log, byte-identical when inflated, and seekable', () => {
    const plain = writeLog('f.jsonl');
    const gz = writeLog('f.jsonl.gz');
    const inflated = readLog(gz);
    expect(inflated).toEqual(readLog(plain));
    const h = openIndexed(gz, { minIndexBytes: 0 });
    expect(h.compressed).toBe(true);
    const full = replayLog(inflated, gz, { to: 200 });
    expect(worldHash(h.model, h.seek(200).world)).toBe(worldHash(full.model, full.world));
    h.close();
  });

  it('the same run gives a byte-identical gzip file', () => {
    const a = readFileSync(writeLog('g1.jsonl.gz'));
    const b = readFileSync(writeLog('g2.jsonl.gz'));
    expect(a.equals(b)).toBe(true);
  });

  it('a file cut anywhere reads as its intact lines plus a torn one', () => {
    const gz = writeLog('h.jsonl.gz');
    const bytes = readFileSync(gz);
    const full = readLog(gz);
    for (const cut of [0.3, 0.6, 0.95]) {
      const torn = path.join(dir, `h-${cut}.jsonl.gz`);
      writeFileSync(torn, bytes.subarray(0, Math.floor(bytes.length * cut)));
      const log = readLog(torn, { allowTorn: true });
      expect(log.events.length).toBeGreaterThan(0);
      expect(log.events).toEqual(full.events.slice(0, log.events.length));
      expect(log.end).toBeNull();
    }
  });
});
