/**
 * Hostile and damaged input, through the built CLI as a user meets it: YAML that expands or is not UTF-8,
 * files that are not files, logs nested to overflow a stack, wrong types in an end record, torn logs, logs
 * re-sealed after an edit, and signed logs. Every refusal is exit 2 with one line on stderr naming file,
 * line (and field), never a stack trace, and leaves an existing log as it was.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainHash, unsealLine } from '../../src/log/hashChain.ts';
import { buildCli, example, logLines, resealLog, scratchDir, splitLines, tdxsim, type CliResult } from './helpers.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = scratchDir();
  dirs.push(d);
  return d;
}

/** A good log of mmio-ve, written once: the "existing --log" every refusal must leave alone. */
let goodLog: Buffer;
let goodText: string;
let goodLines: string[];
/** A 32-byte key, as `head -c 32 /dev/urandom` would make (fixed here, so logs are comparable). */
const KEY = Buffer.from('4b7d0e2a9f6c1358b0a4e7d2c9f61e3a', 'hex').toString('hex');

beforeAll(() => {
  buildCli();
  const d = tmp();
  expect(tdxsim(d, 'run', example('mmio-ve'), '--log', 'good.jsonl').status).toBe(0);
  goodLog = readFileSync(path.join(d, 'good.jsonl'));
  goodText = goodLog.toString('utf8');
  goodLines = splitLines(goodText);
}, 180_000);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Exit 2, stdout empty, exactly `stderr` (one line), no stack trace. */
function expectRefused(r: CliResult, stderr: string): void {
  expect(r.stderr).toBe(stderr + '\n');
  expect(r.status).toBe(2);
  expect(r.stdout).toBe('');
}

/** Writes `files` into a fresh directory holding a copy of the good log as existing.jsonl. */
function dirWith(files: Record<string, string | Buffer>): string {
  const d = tmp();
  writeFileSync(path.join(d, 'existing.jsonl'), goodLog);
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(d, name), content);
  return d;
}

const existingUntouched = (d: string) => expect(readFileSync(path.join(d, 'existing.jsonl')).equals(goodLog)).toBe(true);

describe('scenario files that YAML accepts but tdxsim refuses (run and explore: exit 2, --log untouched)', () => {
  const scenario = (...vcpus: string[]) =>
    ['name: bad', 'vm: { type: tdx, gpaw: 48 }', 'devices:', '  - { name: regs, kind: mmio-regs, gpa: 0xfe000000, size: 0x1000 }', 'vcpus:', ...vcpus, ''].join('\n');
  const laughs = () => {
    const lines = ['name: bad', 'lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 10; i++) lines.push(`l${i}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    return lines.join('\n') + '\n';
  };
  const NO_ALIASES = 'scenarios accept no anchors or aliases: write the value out in full';
  const TAGS = 'scenarios hold plain values (of the explicit tags only !!str, !!int, !!float, !!bool, !!null, !!map and !!seq are accepted)';

  const cases: { what: string; content: string | Buffer; stderr: string }[] = [
    {
      what: 'an anchor and its alias (two vCPUs sharing a program)',
      content: scenario('  - program: &prog', '      - { op: hlt }', '  - program: *prog'),
      stderr: `tdxsim: bad.yaml:6:14: YAML anchor &prog: ${NO_ALIASES}`,
    },
    { what: '"billion laughs": ten levels of nine aliases', content: laughs(), stderr: `tdxsim: bad.yaml:2:6: YAML anchor &a: ${NO_ALIASES}` },
    { what: 'an alias to an anchor that was never defined', content: scenario('  - program: *nowhere'), stderr: `tdxsim: bad.yaml:6:14: YAML alias *nowhere: ${NO_ALIASES}` },
    { what: 'a !!binary value', content: scenario('  - program: [{ op: hlt }]').replace('name: bad', 'name: !!binary YmFk'), stderr: `tdxsim: bad.yaml:1:7: YAML tag !!binary: ${TAGS}` },
    { what: 'a local tag !foo', content: scenario('  - program: [!foo { op: hlt }]'), stderr: `tdxsim: bad.yaml:6:15: YAML tag !foo: ${TAGS}` },
    {
      what: 'a Latin-1 byte in the description',
      content: Buffer.concat([Buffer.from('name: bad\ndescription: caf'), Buffer.from([0xe9]), Buffer.from('\nvm: { type: tdx, gpaw: 48 }\n')]),
      stderr: 'tdxsim: bad.yaml:2:17: invalid UTF-8 (byte 0xe9): a scenario is UTF-8 text',
    },
    { what: 'a key given twice', content: scenario('  - program: [{ op: hlt }]').replace('vm: { type: tdx, gpaw: 48 }', 'vm: { type: tdx, gpaw: 48, gpaw: 52 }'), stderr: 'tdxsim: bad.yaml:2:28: duplicate key gpaw: a mapping holds each key once' },
    { what: '100,000 nested [', content: `name: bad\nvm: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`, stderr: 'tdxsim: bad.yaml:2:37: nested more than 32 levels deep' },
  ];

  for (const c of cases) {
    it(`run: ${c.what}`, () => {
      const d = dirWith({ 'bad.yaml': c.content });
      expectRefused(tdxsim(d, 'run', 'bad.yaml', '--log', 'existing.jsonl'), c.stderr);
      existingUntouched(d);
      expect(readdirSync(d).sort()).toEqual(['bad.yaml', 'existing.jsonl']);
    });
  }

  it('explore: the same refusal, and its --log is left alone', () => {
    const d = dirWith({ 'bad.yaml': laughs() });
    expectRefused(tdxsim(d, 'explore', 'bad.yaml', '--log', 'existing.jsonl'), `tdxsim: bad.yaml:2:6: YAML anchor &a: ${NO_ALIASES}`);
    existingUntouched(d);
  });

  it('a FIFO or /dev/zero as the scenario is refused without reading it', () => {
    const d = dirWith({});
    execFileSync('mkfifo', [path.join(d, 'fifo.yaml')]);
    expectRefused(tdxsim(d, 'run', 'fifo.yaml', '--log', 'existing.jsonl'), 'tdxsim: fifo.yaml: a FIFO is not a regular file: give a scenario file, a directory with scenario.yaml, or a bundled example');
    expectRefused(tdxsim(d, 'run', '/dev/zero', '--log', 'existing.jsonl'), 'tdxsim: /dev/zero: a character device is not a regular file: give a scenario file, a directory with scenario.yaml, or a bundled example');
    existingUntouched(d);
  });
});

describe('log files that are not regular files: replay, export and inspect refuse them without blocking', () => {
  let d: string;
  beforeAll(() => {
    d = tmp();
    execFileSync('mkfifo', [path.join(d, 'fifo.jsonl')]);
    mkdirSync(path.join(d, 'dir.jsonl'));
  });

  it.each([
    ['a FIFO', 'fifo.jsonl', 'a FIFO'],
    ['/dev/zero', '/dev/zero', 'a character device'],
    ['a directory', 'dir.jsonl', 'a directory'],
  ])('replay %s', (_what, file, kind) => {
    expectRefused(tdxsim(d, 'replay', file), `tdxsim: ${file}:0: cannot read log: ${kind} is not a regular file`);
    expectRefused(tdxsim(d, 'replay', file, '--verify'), `tdxsim: ${file}:0: cannot read log: ${kind} is not a regular file`);
  });

  it('export and inspect of a FIFO named like a log', () => {
    expectRefused(tdxsim(d, 'export', 'fifo.jsonl', '--format', 'mermaid'), 'tdxsim: fifo.jsonl:0: cannot read log: a FIFO is not a regular file');
    expectRefused(tdxsim(d, 'export', 'fifo.jsonl', '--format', 'statechart-mermaid'), 'tdxsim: fifo.jsonl:0: cannot read log: a FIFO is not a regular file');
    expectRefused(tdxsim(d, 'inspect', 'fifo.jsonl'), 'tdxsim: fifo.jsonl:0: cannot read log: a FIFO is not a regular file');
  });

  it('export and inspect of /dev/zero, which could be a log or a scenario', () => {
    expectRefused(tdxsim(d, 'export', '/dev/zero', '--format', 'perfetto'), 'tdxsim: /dev/zero:0: cannot read log or scenario: a character device is not a regular file');
    expectRefused(tdxsim(d, 'inspect', '/dev/zero'), 'tdxsim: /dev/zero:0: cannot read log or scenario: a character device is not a regular file');
  });
});

describe('log lines built to crash a reader', () => {
  /** The good log with line `n` (1-based) replaced by `raw` and everything after it dropped. */
  const upTo = (n: number, raw: string) => [...goodLines.slice(0, n - 1), raw].join('\n') + '\n';

  it('100,000 unclosed [ on line 5 → not valid JSON at line 5', () => {
    const d = dirWith({ 'deep.jsonl': upTo(5, '['.repeat(100_000)) });
    for (const args of [['replay', 'deep.jsonl'], ['replay', 'deep.jsonl', '--verify'], ['export', 'deep.jsonl', '--format', 'mermaid']]) {
      expectRefused(tdxsim(d, ...args), 'tdxsim: deep.jsonl:5: not valid JSON (Unexpected end of JSON input)');
    }
  });

  it('100,000 balanced [ ] inside a payload, with a correct hash → refused at line 5, field p, no stack overflow', () => {
    // Line 5 (event 4) is its message's first, so it carries the whole payload as "p".
    expect(goodLines[4]).toContain('"p":{');
    const body = unsealLine(goodLines[4]!)!.body.replace('"p":{', `"p":{"deep":${'['.repeat(100_000)}${']'.repeat(100_000)},`);
    const hash = chainHash(unsealLine(goodLines[3]!)!.hash, body);
    const d = dirWith({ 'deep.jsonl': upTo(5, body.slice(0, -1) + `,"h":"${hash}"}`) });
    expectRefused(tdxsim(d, 'replay', 'deep.jsonl', '--to', '2'), 'tdxsim: deep.jsonl:5: p: nested more than 64 levels deep (tdxsim writes no record that deep)');
    expectRefused(tdxsim(d, 'export', 'deep.jsonl', '--format', 'perfetto'), 'tdxsim: deep.jsonl:5: p: nested more than 64 levels deep (tdxsim writes no record that deep)');
  });

  it('an invalid UTF-8 byte on line 7 → named at line 7 (not a hash mismatch after U+FFFD)', () => {
    const bytes = Buffer.from(goodLog);
    bytes[Buffer.byteLength(goodLines.slice(0, 6).join('\n') + '\n') + 3] = 0xfe;
    const d = dirWith({ 'latin.jsonl': bytes });
    expectRefused(tdxsim(d, 'replay', 'latin.jsonl'), 'tdxsim: latin.jsonl:7: invalid UTF-8 (byte 0xfe at byte 4 of the line): tdxsim writes UTF-8');
  });
});

describe('wrong types inside the end record (re-sealed, so only the schema can tell)', () => {
  const end = () => goodLines.length;
  const withOutcome = (edit: (o: Record<string, unknown>) => void) =>
    resealLog(goodText, (rec, line) => {
      if (line === end()) edit(rec.outcome as Record<string, unknown>);
    });

  it('"violation": null → BAD_RECORD naming outcome.violation, for replay and replay --verify alike', () => {
    const d = dirWith({ 'v.jsonl': withOutcome((o) => (o.violation = null)) });
    const msg = `tdxsim: v.jsonl:${end()}: bad end record: outcome.violation: Invalid input: expected object, received null`;
    expectRefused(tdxsim(d, 'replay', 'v.jsonl', '--verify'), msg);
    expectRefused(tdxsim(d, 'replay', 'v.jsonl', '--to', '3'), msg);
  });

  it('a violation whose invariant is a number, failures that are not a list', () => {
    const d = dirWith({
      'inv.jsonl': withOutcome((o) => (o.violation = { invariant: 7, detail: 'x' })),
      'fail.jsonl': withOutcome((o) => (o.failures = 'none')),
    });
    expectRefused(tdxsim(d, 'replay', 'inv.jsonl', '--verify'), `tdxsim: inv.jsonl:${end()}: bad end record: outcome.violation.invariant: Invalid input: expected string, received number`);
    expectRefused(tdxsim(d, 'replay', 'fail.jsonl', '--verify'), `tdxsim: fail.jsonl:${end()}: bad end record: outcome.failures: Invalid input: expected array, received string`);
  });
});

describe('a torn log: the intact prefix stays usable, --verify refuses it', () => {
  let d: string;
  /** Lines: header, events 1…E, end. Cut inside event E, so the log ends at step E − 1. */
  let events: number;
  let tornLine: number;
  beforeAll(() => {
    events = goodLines.length - 2;
    tornLine = goodLines.length - 1;
    const cut = goodLines.slice(0, -2).join('\n') + '\n' + goodLines.at(-2)!.slice(0, 60);
    d = dirWith({ 'torn.jsonl': cut });
  });
  const notice = () => `tdxsim: warning: torn.jsonl:${tornLine}: torn last line: the writer stopped inside event ${events} (no trailing newline); the log ends at step ${events - 1}\n`;

  it('replay --to N inside the prefix: exit 0, the state, and the notice on stderr', () => {
    const r = tdxsim(d, 'replay', 'torn.jsonl', '--to', '97', '--actor', 'guest.vcpu0');
    expect(r.stderr).toBe(notice());
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^# state after step 97:.*#VE/m);
  });

  it('replay without --to shows the last intact step', () => {
    const r = tdxsim(d, 'replay', 'torn.jsonl', '--json');
    expect(r.stderr).toBe(notice());
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as { step: number }).step).toBe(events - 1);
  });

  it('replay --to past the prefix: exit 2, after the notice', () => {
    const r = tdxsim(d, 'replay', 'torn.jsonl', '--to', String(events));
    expect(r.stderr).toBe(`${notice()}tdxsim: --to ${events}: the log has steps 0..${events - 1}\n`);
    expect(r.status).toBe(2);
  });

  it('export: exit 0, the diagram of the intact steps, and the notice', () => {
    const r = tdxsim(d, 'export', 'torn.jsonl', '--format', 'mermaid');
    expect(r.stderr).toBe(notice());
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^sequenceDiagram/m);
  });

  it('replay --verify: exit 2, the log is incomplete', () => {
    expectRefused(
      tdxsim(d, 'replay', 'torn.jsonl', '--verify'),
      `tdxsim: torn.jsonl:${tornLine}: torn last line: the writer stopped inside event ${events} (no trailing newline); the log ends at step ${events - 1}: the log is incomplete, so it cannot be verified`,
    );
  });
});

describe('re-sealed logs whose header or end record was edited: replay --verify re-derives them', () => {
  const verify = (text: string) => tdxsim(dirWith({ 'x.jsonl': text }), 'replay', 'x.jsonl', '--verify');

  it('header.model → line 1, field model', () => {
    const r = verify(resealLog(goodText, (rec, line) => {
      if (line === 1) rec.model = 'tdxsim-model/0.0.9';
    }));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^tdxsim: x\.jsonl:1: header\.model: the log was written by tdxsim-model\/0\.0\.9, this is tdxsim-model\/[^,]+: only the model that wrote a log can vouch for it\n$/);
  });

  it('header.scheduler (fifo → random, seed 3) → the first choice that seed would not make', () => {
    const d = tmp();
    expect(tdxsim(d, 'run', example('parallel-faults'), '--log', 'fifo.jsonl').status).toBe(0);
    const text = resealLog(readFileSync(path.join(d, 'fifo.jsonl'), 'utf8'), (rec, line) => {
      if (line === 1) rec.scheduler = { kind: 'random', seed: 3 };
    });
    const r = verify(text);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^tdxsim: x\.jsonl:\d+: replay diverged at choice: the header's scheduler \(random, seed 3\) picks \d+ here, the log says \d+\n$/);
  });

  it('outcome.failures → the end record\'s line, naming the failure the model reaches', () => {
    const r = verify(resealLog(goodText, (rec, line) => {
      if (line === goodLines.length) (rec.outcome as { failures: unknown[] }).failures = [{ actor: 'tdx', seq: 1, reason: 'r', detail: 'd' }];
    }));
    expectRefused(r, `tdxsim: x.jsonl:${goodLines.length}: replay diverged at outcome.failures[0]: the model reaches none, the log says tdx at step 1: r: d`);
  });

  it('the untouched log verifies and says what was checked', () => {
    const r = verify(goodText);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^# verified: all \d+ events re-derived from the scenario by tdxsim-model\/\S+ with the header's scheduler \(fifo\), matching state hashes; hash chain intact; outcome ok$/m);
  });
});

describe('signed logs: run --sign-key, explore --sign-key, replay --verify --key', () => {
  let d: string;
  let signed: string;
  let endLine: number;
  let keyId: string;
  beforeAll(() => {
    d = tmp();
    writeFileSync(path.join(d, 'key'), Buffer.from(KEY, 'hex'));
    writeFileSync(path.join(d, 'other.key'), Buffer.from('another key, also 32 bytes long.'));
    writeFileSync(path.join(d, 'short.key'), 'secret\n');
    expect(tdxsim(d, 'run', example('mmio-ve'), '--log', 'signed.jsonl', '--sign-key', 'key').status).toBe(0);
    signed = readFileSync(path.join(d, 'signed.jsonl'), 'utf8');
    endLine = splitLines(signed).length;
    keyId = /"keyId":"([0-9a-f]{8})"/.exec(signed)![1]!;
  });
  const write = (name: string, text: string) => writeFileSync(path.join(d, name), text);

  it('signing adds the signature to the end record and changes nothing else; the same key gives the same bytes', () => {
    const lines = splitLines(signed);
    expect(lines.slice(0, -1)).toEqual(goodLines.slice(0, -1));
    expect(lines.at(-1)).toMatch(new RegExp(`,"signature":\\{"alg":"hmac-sha256","keyId":"${keyId}","mac":"[0-9a-f]{64}"\\},"h":"[\\w-]{11}"\\}$`));
    expect(tdxsim(d, 'run', example('mmio-ve'), '--log', 'again.jsonl', '--sign-key', 'key').status).toBe(0);
    expect(readFileSync(path.join(d, 'again.jsonl'), 'utf8')).toBe(signed);
  });

  it('--verify --key: exit 0, and says the signature was checked', () => {
    const r = tdxsim(d, 'replay', 'signed.jsonl', '--verify', '--key', 'key');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`; outcome ok; signature of key ${keyId} checked$`, 'm'));
  });

  it('--verify without --key: exit 2, "signed, not checked"', () => {
    expectRefused(tdxsim(d, 'replay', 'signed.jsonl', '--verify'), `tdxsim: signed.jsonl:${endLine}: signed, not checked: give --key FILE with the key it was signed with (key id ${keyId})`);
  });

  it('a forged log (scenarioFile edited, chain recomputed) passes the chain check and re-execution, but not the signature', () => {
    const edit = (rec: Record<string, unknown>, line: number) => {
      if (line === 1) rec.scenarioFile = 'examples/somewhere-else/scenario.yaml';
    };
    // Re-execution cannot tell: the same edit to an unsigned log verifies.
    write('edited-unsigned.jsonl', resealLog(goodText, edit));
    expect(tdxsim(d, 'replay', 'edited-unsigned.jsonl', '--verify').status).toBe(0);
    write('forged.jsonl', resealLog(signed, edit));
    // The chain is intact, so reading it (replay without --verify) succeeds: only the key can tell.
    const plain = tdxsim(d, 'replay', 'forged.jsonl', '--to', '3');
    expect(plain.status).toBe(0);
    expect(plain.stdout).toContain(`# signed with key ${keyId}: signature not checked (give --key FILE)`);
    expectRefused(
      tdxsim(d, 'replay', 'forged.jsonl', '--verify', '--key', 'key'),
      `tdxsim: forged.jsonl:${endLine}: signature mismatch: the log was changed after key ${keyId} signed it (its hash chain was recomputed without the key)`,
    );
  });

  it('a forged event (its cause edited, chain recomputed) is caught by the signature before re-execution', () => {
    write('forged-event.jsonl', resealLog(signed, (rec, line) => {
      if (line === 40) rec.cause = null;
    }));
    expectRefused(
      tdxsim(d, 'replay', 'forged-event.jsonl', '--verify', '--key', 'key'),
      `tdxsim: forged-event.jsonl:${endLine}: signature mismatch: the log was changed after key ${keyId} signed it (its hash chain was recomputed without the key)`,
    );
  });

  it('a signature stripped by a forger: the log reads as unsigned, and --key says so', () => {
    write('stripped.jsonl', resealLog(signed, (rec) => {
      delete rec.signature;
    }));
    expectRefused(tdxsim(d, 'replay', 'stripped.jsonl', '--verify', '--key', 'key'), `tdxsim: stripped.jsonl:${endLine}: log is not signed (its end record has no signature): verify it without --key`);
  });

  it('an unsigned log with --key → "log is not signed"', () => {
    write('unsigned.jsonl', goodText);
    expectRefused(tdxsim(d, 'replay', 'unsigned.jsonl', '--verify', '--key', 'key'), `tdxsim: unsigned.jsonl:${goodLines.length}: log is not signed (its end record has no signature): verify it without --key`);
  });

  it('the wrong key is named by its id', () => {
    const r = tdxsim(d, 'replay', 'signed.jsonl', '--verify', '--key', 'other.key');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^tdxsim: signed\\.jsonl:${endLine}: signed with key ${keyId}, but the key given is [0-9a-f]{8}\\n$`));
  });

  it('a key file too short, or missing, or a FIFO: exit 2 before the log is opened, so --log is left alone', () => {
    const e = dirWith({ 'short.key': 'secret\n' });
    expectRefused(tdxsim(e, 'run', example('mmio-ve'), '--log', 'existing.jsonl', '--sign-key', 'short.key'), 'tdxsim: short.key:0: cannot use key: it has 7 byte(s), a key needs at least 16 (make one with: head -c 32 /dev/urandom > short.key)');
    const missing = tdxsim(e, 'run', example('mmio-ve'), '--log', 'existing.jsonl', '--sign-key', 'nope.key');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^tdxsim: nope\.key:0: cannot read key: ENOENT: no such file or directory/);
    execFileSync('mkfifo', [path.join(e, 'fifo.key')]);
    expectRefused(tdxsim(e, 'run', example('mmio-ve'), '--log', 'existing.jsonl', '--sign-key', 'fifo.key'), 'tdxsim: fifo.key:0: cannot read key: a FIFO is not a regular file');
    existingUntouched(e);
  });

  it('--sign-key does not combine with --inspect (the live run would write an unsigned log)', () => {
    expectRefused(tdxsim(d, 'run', example('mmio-ve'), '--inspect', '--sign-key', 'key'), 'tdxsim: --sign-key signs a plain run; it does not combine with --inspect or --stately');
  });

  it('explore --sign-key signs the counterexample log, which verifies with the key only', () => {
    const race = [
      'name: accept-race',
      'vm: { type: tdx, gpaw: 48, attributes: [SEPT_VE_DISABLE] }',
      'memslots:',
      '  - { gpa: 0x0, size: 0x80000000, guestMemfd: true }',
      'vcpus:',
      '  - program:',
      '      - { op: accept, gpa: 0x200000, size: 0x1000 }',
      '  - program:',
      '      - { op: load, gpa: 0x200000, size: 8, reg: rax }',
      '',
    ].join('\n');
    write('race.yaml', race);
    expect(tdxsim(d, 'explore', 'race.yaml', '--no-minimise', '--log', 'cx.jsonl', '--sign-key', 'key').status).toBe(1);
    const ok = tdxsim(d, 'replay', 'cx.jsonl', '--verify', '--key', 'key');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`violation of no-failure: .*; signature of key ${keyId} checked$`, 'm'));
    const cxEnd = logLines(path.join(d, 'cx.jsonl')).length;
    expectRefused(tdxsim(d, 'replay', 'cx.jsonl', '--verify'), `tdxsim: cx.jsonl:${cxEnd}: signed, not checked: give --key FILE with the key it was signed with (key id ${keyId})`);
  });
});
