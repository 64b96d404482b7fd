/**
 * Long and compressed logs through the built CLI: a run of more than one block writes its checkpoint
 * index, `replay --to` and `export --from/--to` open steps through it (and say so when they cannot trust
 * it), a gzip log round-trips and its cut tail reads as a torn one.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildCli, scratchDir, tdxsim } from './helpers.ts';

/** mmio-ve's TD with a guest doing `ops` MMIO accesses: about 17 events each. */
function longScenario(ops: number): string {
  const program: unknown[] = [];
  for (let i = 0; i < ops; i++) program.push(i % 2 === 0 ? { op: 'load', gpa: '0x8000fe000004', size: 4, reg: 'rbx' } : { op: 'store', gpa: '0x8000fe000004', size: 4, value: `0x${i.toString(16)}` });
  program.push({ op: 'hlt' });
  return stringify({
    name: 'long-mmio',
    description: 'many MMIO accesses',
    vm: { type: 'tdx', gpaw: 48 },
    memslots: [{ gpa: '0x0', size: '0x80000000', guestMemfd: true }],
    devices: [{ name: 'regs', kind: 'mmio-regs', gpa: '0xfe000000', size: '0x1000', registers: { '0x0': '0x1af41000', '0x4': '0x0' } }],
    vcpus: [{ program }],
  });
}

describe('long and compressed logs', () => {
  let dir: string;
  beforeAll(() => {
    buildCli();
    dir = scratchDir();
    writeFileSync(path.join(dir, 'long.yaml'), longScenario(150));
  });

  it('run writes the index beside a log of more than a block; replay --to gives what --verify re-derives', () => {
    expect(tdxsim(dir, 'run', 'long.yaml', '--log', 'long.jsonl').status).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['long.jsonl', 'long.jsonl.idx', 'long.yaml']);
    for (const step of ['1', '1023', '1024', '2047', '2500']) {
      const seek = tdxsim(dir, 'replay', 'long.jsonl', '--to', step, '--json');
      expect(seek.stderr).toBe('');
      const full = tdxsim(dir, 'replay', 'long.jsonl', '--to', step, '--json', '--verify');
      expect(JSON.parse(seek.stdout)).toEqual({ ...JSON.parse(full.stdout), verified: false });
    }
  });

  it('an index changed by hand is not trusted: the step is still right, and stderr says why', () => {
    const idx = path.join(dir, 'long.jsonl.idx');
    const text = readFileSync(idx, 'utf8');
    writeFileSync(idx, text.replace(/("pc":)(\d)/g, (_m, k: string, d: string) => `${k}${d === '9' ? '8' : '9'}`));
    const r = tdxsim(dir, 'replay', 'long.jsonl', '--to', '2000', '--json');
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^tdxsim: long\.jsonl\.idx: not trusted \(.*\): removed, and rebuilt from the log if the log is large enough to need one\n/);
    const full = tdxsim(dir, 'replay', 'long.jsonl', '--to', '2000', '--json', '--verify');
    expect(JSON.parse(r.stdout)).toEqual({ ...JSON.parse(full.stdout), verified: false });
  });

  it('export --from/--to draws only those steps', () => {
    const r = tdxsim(dir, 'export', 'long.jsonl', '--format', 'mermaid', '--from', '2040', '--to', '2050');
    expect(r.status).toBe(0);
    expect(r.stdout.match(/->>|-->>/g)).toHaveLength(11);
    expect(r.stdout).toMatch(/: 2040 /);
    expect(tdxsim(dir, 'export', 'long.jsonl', '--format', 'mermaid', '--from', '20', '--to', '10').status).toBe(2);
  });

  it('a gzip log: the same records, verified, byte-identical when run again; a cut tail is a torn line', () => {
    expect(tdxsim(dir, 'run', 'long.yaml', '--log', 'long.jsonl.gz').status).toBe(0);
    expect(tdxsim(dir, 'run', 'long.yaml', '--log', 'again.jsonl.gz').status).toBe(0);
    expect(readFileSync(path.join(dir, 'long.jsonl.gz')).equals(readFileSync(path.join(dir, 'again.jsonl.gz')))).toBe(true);
    const verify = tdxsim(dir, 'replay', 'long.jsonl.gz', '--verify');
    expect(verify.status).toBe(0);
    expect(verify.stdout).toMatch(/^# verified: all \d+ events re-derived/m);
    const seek = tdxsim(dir, 'replay', 'long.jsonl.gz', '--to', '1500', '--json');
    const plain = tdxsim(dir, 'replay', 'long.jsonl', '--to', '1500', '--json');
    expect(seek.stdout).toBe(plain.stdout);
    const gz = readFileSync(path.join(dir, 'long.jsonl.gz'));
    // Cut near the middle, where the kept bytes end inside an event line past its event number (at a
    // newline it would be an intact shorter log): the first such length from the middle on.
    const endsInsideEvent = (n: number) => {
      const text = gunzipSync(gz.subarray(0, n), { finishFlush: zlibConstants.Z_SYNC_FLUSH }).toString();
      return /^\{"e":\d+,/.test(text.slice(text.lastIndexOf('\n') + 1));
    };
    let cutAt = Math.floor(gz.length / 2);
    while (!endsInsideEvent(cutAt)) cutAt++;
    writeFileSync(path.join(dir, 'cut.jsonl.gz'), gz.subarray(0, cutAt));
    const cut = tdxsim(dir, 'replay', 'cut.jsonl.gz');
    expect(cut.status).toBe(0);
    expect(cut.stderr).toMatch(/^tdxsim: warning: cut\.jsonl\.gz:\d+: torn last line: the writer stopped inside event \d+ \(no trailing newline\); the log ends at step \d+\n$/);
    expect(tdxsim(dir, 'replay', 'cut.jsonl.gz', '--verify').status).toBe(2);
  });
});
