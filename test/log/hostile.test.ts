/**
 * Logs built to hurt the reader: files that are not files, bytes that are not UTF-8, JSON nested to
 * overflow a recursive walk, wrong types inside the loosely typed outcome, torn tails, and signatures.
 * Each is a LogError naming file, line and field, or (a tear) a described, usable prefix.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogError } from '../../src/log/errors.ts';
import { chainHash, GENESIS, sealRecord, unsealLine } from '../../src/log/hashChain.ts';
import { MAX_LOG_DEPTH, parseLogText, readLog, tearNotice } from '../../src/log/reader.ts';
import type { EventInput, HeaderInput } from '../../src/log/schema.ts';
import { readSigningKey, signingKey } from '../../src/log/signature.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'tdxsim-log-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FILE = 'x.log.jsonl';

const header: HeaderInput = { model: 'm', scenario: { name: 's' }, scenarioFile: null, scheduler: { kind: 'fifo' } };
const ev = (seq: number): EventInput => ({ seq, from: 'a', to: 'b', kind: 'hw', name: 'N', payload: { v: BigInt(seq) }, cause: null, choice: 0, state: 'AAAAAAAAAP8' });
const KEY = signingKey(Buffer.from('0123456789abcdef0123456789abcdef'));

function sample(opts: { signed?: boolean; ended?: boolean } = {}): string[] {
  const w = MemoryLogWriter.open(header, FILE, opts.signed ? { signWith: KEY } : {});
  [1, 2, 3].forEach((s) => w.append(ev(s)));
  if (opts.ended !== false) w.end({ status: 'ok', reason: null, failures: [] });
  return w.output;
}
const toText = (lines: readonly string[]) => lines.map((l) => l + '\n').join('');

/** Re-seals every line after an edit: the chain is intact, as a forger who knows the format would leave it. */
function reseal(lines: readonly string[], edit: (rec: Record<string, unknown>, line: number) => void): string {
  let prev = GENESIS;
  return toText(
    lines.map((l, i) => {
      const rec = JSON.parse(unsealLine(l)!.body) as Record<string, unknown>;
      edit(rec, i + 1);
      const s = sealRecord(prev, rec);
      prev = s.hash;
      return s.line;
    }),
  );
}

/** Seals a raw body as is: for bodies sealRecord would refuse to produce (100,000-deep arrays). */
function sealRaw(prev: string, body: string): { line: string; hash: string } {
  const hash = chainHash(prev, body);
  return { line: body.slice(0, -1) + `,"h":"${hash}"}`, hash };
}

function thrown(f: () => unknown): LogError {
  try {
    f();
  } catch (e) {
    if (e instanceof LogError) return e;
    throw e;
  }
  throw new Error('expected a LogError');
}

describe('files that are not regular files are refused before a byte is read', () => {
  it('a FIFO (no writer: reading it would block forever)', () => {
    const fifo = join(dir, 'fifo.log.jsonl');
    execFileSync('mkfifo', [fifo]);
    const e = thrown(() => readLog(fifo));
    expect([e.code, e.line, e.message]).toEqual(['IO', 0, `${fifo}:0: cannot read log: a FIFO is not a regular file`]);
  });

  it('/dev/zero (reading it would never end)', () => {
    expect(thrown(() => readLog('/dev/zero')).message).toBe('/dev/zero:0: cannot read log: a character device is not a regular file');
  });

  it('a directory', () => {
    const d = join(dir, 'dir.log.jsonl');
    mkdirSync(d);
    expect(thrown(() => readLog(d)).message).toBe(`${d}:0: cannot read log: a directory is not a regular file`);
  });

  it('a key file that is a FIFO, or too short to be a key', () => {
    const fifo = join(dir, 'key.fifo');
    execFileSync('mkfifo', [fifo]);
    expect(thrown(() => readSigningKey(fifo)).message).toBe(`${fifo}:0: cannot read key: a FIFO is not a regular file`);
    const short = join(dir, 'short.key');
    writeFileSync(short, 'secret\n');
    expect(thrown(() => readSigningKey(short)).message).toBe(`${short}:0: cannot use key: it has 7 byte(s), a key needs at least 16 (make one with: head -c 32 /dev/urandom > ${short})`);
  });
});

describe('bytes that are not UTF-8', () => {
  it('an invalid byte inside a complete line is named at that line, not turned into U+FFFD and a hash mismatch', () => {
    const lines = sample();
    const bytes = Buffer.from(toText(lines), 'utf8');
    const at = Buffer.byteLength(toText(lines.slice(0, 2))) + 5; // line 3, byte 6
    bytes[at] = 0xff;
    const path = join(dir, 'latin.log.jsonl');
    writeFileSync(path, bytes);
    const e = thrown(() => readLog(path));
    expect([e.code, e.line, e.message]).toEqual(['BAD_JSON', 3, `${path}:3: invalid UTF-8 (byte 0xff at byte 6 of the line): tdxsim writes UTF-8`]);
  });

  it('a multi-byte character cut by a tear is part of the torn line only', () => {
    const lines = sample({ ended: false });
    const tail = Buffer.from('{"e":4,"m":["é', 'utf8');
    const path = join(dir, 'split.log.jsonl');
    writeFileSync(path, Buffer.concat([Buffer.from(toText(lines)), tail.subarray(0, tail.length - 1)]));
    const log = readLog(path, { allowTorn: true });
    expect(log.events).toHaveLength(3);
    expect(log.torn).toMatchObject({ line: 5, cut: 'event 4', lastStep: 3 });
  });
});

describe('deeply nested JSON', () => {
  const lines = sample();
  /** Line 3 (event 2) with its payload change replaced by `nested`, sealed so that only the depth is wrong. */
  function withPayload(nested: string): string {
    const [head, ev1] = [lines[0]!, lines[1]!];
    const body2 = unsealLine(lines[2]!)!.body.replace('"q":{"v":"0x2"}', `"q":{"v":${nested}}`);
    const sealed = sealRaw(unsealLine(ev1)!.hash, body2);
    return toText([head, ev1, sealed.line]);
  }

  it('100,000 unclosed [ on a line: not valid JSON, at that line', () => {
    const e = thrown(() => parseLogText(toText([lines[0]!, lines[1]!, '['.repeat(100_000)]), FILE));
    expect([e.code, e.line, e.message]).toEqual(['BAD_JSON', 3, `${FILE}:3: not valid JSON (Unexpected end of JSON input)`]);
  });

  it('100,000 balanced [ ] in a payload: refused at its line and field before anything walks it', () => {
    const e = thrown(() => parseLogText(withPayload('['.repeat(100_000) + ']'.repeat(100_000)), FILE));
    expect([e.code, e.line, e.field, e.message]).toEqual(['BAD_JSON', 3, 'q', `${FILE}:3: q: nested more than ${MAX_LOG_DEPTH} levels deep (tdxsim writes no record that deep)`]);
  });

  it(`${MAX_LOG_DEPTH} levels are accepted, one more is not`, () => {
    // The record is level 1 and the payload level 2, so its value may open MAX_LOG_DEPTH − 2 arrays.
    const ok = MAX_LOG_DEPTH - 2;
    expect(parseLogText(withPayload('['.repeat(ok) + ']'.repeat(ok)), FILE).events).toHaveLength(2);
    expect(thrown(() => parseLogText(withPayload('['.repeat(ok + 1) + ']'.repeat(ok + 1)), FILE)).field).toBe('q');
  });
});

describe('wrong types inside the end record\'s outcome', () => {
  const lines = sample();
  const cases: [string, (o: Record<string, unknown>) => void, string, string][] = [
    ['"violation": null', (o) => (o['violation'] = null), 'outcome.violation', 'Invalid input: expected object, received null'],
    ['a violation without its detail', (o) => (o['violation'] = { invariant: 'no-failure' }), 'outcome.violation.detail', 'Invalid input: expected string, received undefined'],
    ['a violation whose bound is a string', (o) => (o['violation'] = { invariant: 'kick-completes', bound: '2', detail: 'd' }), 'outcome.violation.bound', 'Invalid input: expected number, received string'],
    ['"failures": {}', (o) => (o['failures'] = {}), 'outcome.failures', 'Invalid input: expected array, received object'],
    ['a failure whose seq is a string', (o) => (o['failures'] = [{ actor: 'a', seq: '3', reason: 'r', detail: 'd' }]), 'outcome.failures.0.seq', 'Invalid input: expected number, received string'],
    ['a lasso whose loopStart is negative', (o) => (o['lasso'] = { loopStart: -1, starving: 'a', retries: 'b' }), 'outcome.lasso.loopStart', 'Too small: expected number to be >=0'],
  ];
  it.each(cases)('%s → BAD_RECORD naming the field, at the end record\'s line', (_what, edit, field, message) => {
    const text = reseal(lines, (rec, line) => {
      if (line === 5) edit(rec['outcome'] as Record<string, unknown>);
    });
    const e = thrown(() => parseLogText(text, FILE));
    expect([e.code, e.line, e.field, e.message]).toEqual(['BAD_RECORD', 5, field, `${FILE}:5: bad end record: ${field}: ${message}`]);
  });

  it('fields this version does not know are still accepted (the outcome stays loose)', () => {
    const text = reseal(lines, (rec, line) => {
      if (line === 5) (rec['outcome'] as Record<string, unknown>)['later'] = { any: 'thing' };
    });
    expect(parseLogText(text, FILE).end?.outcome['later']).toEqual({ any: 'thing' });
  });
});

describe('a torn last line', () => {
  const lines = sample();
  const cut = (n: number, keep: (line: string) => string) => toText(lines.slice(0, n)) + keep(lines[n]!);

  it.each([
    ['inside an event, after its seq', 3, (l: string) => l.slice(0, 40), 'event 3', 2],
    ['inside an event, before its seq was complete', 3, (l: string) => l.slice(0, '{"e":'.length + 1), 'an event', 2],
    ['inside the end record', 4, (l: string) => l.slice(0, 20), 'the end record', 3],
    ['two bytes into a line', 2, (l: string) => l.slice(0, 2), 'a line', 1],
  ])('%s: the notice names the line, the record and the last intact step', (_what, n, keep, what, lastStep) => {
    const log = parseLogText(cut(n, keep), FILE, { allowTorn: true });
    expect(log.torn).toEqual({ line: n + 1, text: keep(lines[n]!), cut: what, lastStep });
    expect(log.events).toHaveLength(lastStep);
    expect(tearNotice(FILE, log.torn!)).toBe(`${FILE}:${n + 1}: torn last line: the writer stopped inside ${what} (no trailing newline); the log ends at step ${lastStep}`);
    const e = thrown(() => parseLogText(cut(n, keep), FILE));
    expect([e.code, e.line, e.message]).toEqual(['TORN_LINE', n + 1, `${FILE}:${n + 1}: torn last line: the writer stopped inside ${what} (no trailing newline); the log ends at step ${lastStep} (the ${n} lines before it are intact)`]);
  });
});

describe('signed logs', () => {
  it('the signature is the end record\'s last field before the hash, and checks with the key', () => {
    const lines = sample({ signed: true });
    expect(lines[4]).toMatch(new RegExp(`^\\{"type":"end","steps":3,"outcome":\\{"status":"ok","reason":null,"failures":\\[\\]\\},"signature":\\{"alg":"hmac-sha256","keyId":"${KEY.id}","mac":"[0-9a-f]{64}"\\},"h":"[\\w-]{11}"\\}$`));
    const log = parseLogText(toText(lines), FILE, { key: KEY });
    expect(log.signed).toEqual({ keyId: KEY.id, checked: true });
    expect(parseLogText(toText(lines), FILE).signed).toEqual({ keyId: KEY.id, checked: false });
  });

  it('signing changes only the end record: the other lines are byte-identical to an unsigned log', () => {
    expect(sample({ signed: true }).slice(0, 4)).toEqual(sample().slice(0, 4));
  });

  it('a forged log (an event edited, the chain recomputed) passes the chain check but not the signature', () => {
    const forged = reseal(sample({ signed: true }), (rec, line) => {
      if (line === 3) rec['q'] = { v: '0xf0f0' };
    });
    expect(parseLogText(forged, FILE).events[1]!.payload).toEqual({ v: '0xf0f0' });
    const e = thrown(() => parseLogText(forged, FILE, { key: KEY }));
    expect([e.code, e.line, e.field, e.message]).toEqual([
      'SIGNATURE',
      5,
      'signature.mac',
      `${FILE}:5: signature mismatch: the log was changed after key ${KEY.id} signed it (its hash chain was recomputed without the key)`,
    ]);
  });

  it('the outcome is covered too', () => {
    const forged = reseal(sample({ signed: true }), (rec, line) => {
      if (line === 5) (rec['outcome'] as Record<string, unknown>)['reason'] = 'fine';
    });
    expect(thrown(() => parseLogText(forged, FILE, { key: KEY })).field).toBe('signature.mac');
  });

  it('another key is named as such', () => {
    const other = signingKey(Buffer.from('another key of enough bytes.....'));
    const e = thrown(() => parseLogText(toText(sample({ signed: true })), FILE, { key: other }));
    expect([e.field, e.message]).toEqual(['signature.keyId', `${FILE}:5: signed with key ${KEY.id}, but the key given is ${other.id}`]);
  });

  it('a key for an unsigned log, or for one without an end record, or a torn one', () => {
    expect(thrown(() => parseLogText(toText(sample()), FILE, { key: KEY })).message).toBe(`${FILE}:5: log is not signed (its end record has no signature): verify it without --key`);
    expect(thrown(() => parseLogText(toText(sample({ ended: false })), FILE, { key: KEY })).message).toBe(`${FILE}:4: log is not signed: it has no end record, which is where a signature goes`);
    const torn = toText(sample({ signed: true })).slice(0, -10);
    expect(thrown(() => parseLogText(torn, FILE, { key: KEY, allowTorn: true })).message).toBe(`${FILE}:5: the log is torn, so its signature (in the end record) cannot be checked`);
  });

  it('a signature moved before the outcome is refused (the signed bytes are the record\'s prefix)', () => {
    const moved = reseal(sample({ signed: true }), (rec, line) => {
      if (line !== 5) return;
      const { type, steps, outcome, signature } = rec;
      for (const k of Object.keys(rec)) delete rec[k];
      Object.assign(rec, { type, steps, signature, outcome });
    });
    expect(thrown(() => parseLogText(moved, FILE, { key: KEY })).message).toBe(`${FILE}:5: the signature must be the end record's last field before "h", as the writer puts it`);
  });
});
