import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogError } from '../../src/log/errors.ts';
import { GENESIS, sealRecord } from '../../src/log/hashChain.ts';
import { parseLogText, readLog, verifyChainOnly, type ParsedLog } from '../../src/log/reader.ts';
import type { EventInput, HeaderInput } from '../../src/log/schema.ts';
import { LogWriter, MemoryLogWriter } from '../../src/log/writer.ts';

// Property bodies are blocks, not `(v) => expect(...)`: vitest matchers return an Assertion object, and
// fast-check fails a property that returns anything other than true or undefined.

const dir = mkdtempSync(join(tmpdir(), 'tdxsim-log-reader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FILE = 'examples/x.log.jsonl';

const text = fc.string({ unit: 'binary', maxLength: 10 });
const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 10 });
const header: fc.Arbitrary<HeaderInput> = fc.record({
  model: text,
  scenario: fc.dictionary(text, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  scenarioFile: fc.option(text, { nil: null }),
  scheduler: fc.oneof(
    fc.constant({ kind: 'fifo' as const }),
    fc.record({ kind: fc.constant('random' as const), seed: fc.integer() }),
  ),
});
const event = fc.record({
  from: name,
  to: name,
  kind: name,
  name,
  payload: fc.dictionary(text, fc.oneof(fc.jsonValue({ maxDepth: 1, stringUnit: 'binary' }), fc.bigInt()), { maxKeys: 4 }),
  cause: fc.option(fc.integer({ min: 1, max: 100 }), { nil: null }),
  choice: fc.nat(9),
  state: fc.stringMatching(/^[A-Za-z0-9_-]{11}$/),
});

/** A complete log as its lines (without '\n'); at least one event, sometimes an end record. */
const logLines = fc
  .record({ header, events: fc.array(event, { minLength: 1, maxLength: 6 }), ended: fc.boolean() })
  .map(({ header, events, ended }) => {
    const w = MemoryLogWriter.open(header);
    // A cause is an earlier step.
    events.forEach((e, i) => w.append({ seq: i + 1, ...e, cause: e.cause === null || i === 0 ? null : 1 + (e.cause % i) }));
    if (ended) w.end({ status: 'ok', reason: null });
    return w.output;
  });
// tsconfig targets ES2022, so no Array#with / #toSpliced.
const replaced = <T,>(xs: readonly T[], i: number, x: T): T[] => xs.map((y, j) => (j === i ? x : y));
const removed = <T,>(xs: readonly T[], i: number): T[] => xs.filter((_, j) => j !== i);
const toText = (lines: readonly string[]) => lines.map((l) => l + '\n').join('');

function thrown(f: () => unknown): LogError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(LogError);
    const e = err as LogError;
    expect(e.message.startsWith(`${e.file}:${e.line}: `)).toBe(true);
    return e;
  }
  throw new Error('expected a LogError');
}

describe('corruption is reported at the exact line', () => {
  it('changing any one character of any line', () => {
    const replacement = fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      fc.constantFrom('\n', '\r', ' ', '"', '\\', '{', '}', ',', ':', '0', 'f', 'g'),
    );
    fc.assert(
      fc.property(logLines, fc.nat(), fc.nat(), replacement, (lines, l, c, ch) => {
        const index = l % lines.length;
        const line = lines[index]!;
        const at = c % line.length;
        fc.pre(line[at] !== ch);
        const edited = replaced(lines, index, line.slice(0, at) + ch + line.slice(at + 1));
        const err = thrown(() => parseLogText(toText(edited), FILE));
        expect(err.file).toBe(FILE);
        expect(err.line).toBe(index + 1);
        const codes = index === 0 ? ['HASH_MISMATCH', 'BAD_JSON', 'BAD_RECORD', 'NOT_A_LOG', 'UNSUPPORTED_VERSION'] : ['HASH_MISMATCH', 'BAD_JSON', 'BAD_RECORD'];
        expect(codes).toContain(err.code);
      }),
      { numRuns: 400 },
    );
  });

  it('deleting an event line: the line that moves up no longer chains', () => {
    fc.assert(
      fc.property(logLines, fc.nat(), (lines, n) => {
        fc.pre(lines.length >= 3);
        const index = 1 + (n % (lines.length - 2)); // an event line with a line after it
        const err = thrown(() => parseLogText(toText(removed(lines, index)), FILE));
        expect(err.line).toBe(index + 1);
        expect(['HASH_MISMATCH', 'SEQ_GAP']).toContain(err.code);
      }),
    );
  });

  it('deleting the last line is undetectable by the chain alone, which is what the end record is for', () => {
    fc.assert(
      fc.property(logLines, (lines) => {
        const full = parseLogText(toText(lines), FILE);
        const cut = parseLogText(toText(lines.slice(0, -1)), FILE);
        expect(cut.lines).toBe(full.lines - 1);
        expect(cut.end).toBeNull();
      }),
    );
  });

  it('swapping two adjacent event lines (or the last event and the end) is reported at the first', () => {
    fc.assert(
      fc.property(logLines, fc.nat(), (lines, n) => {
        fc.pre(lines.length >= 3);
        const index = 1 + (n % (lines.length - 2));
        const swapped = replaced(replaced(lines, index, lines[index + 1]!), index + 1, lines[index]!);
        const err = thrown(() => parseLogText(toText(swapped), FILE));
        expect([err.code, err.line]).toEqual(['HASH_MISMATCH', index + 1]);
        expect(err.message).toMatch(/edited, or a line before it was removed or reordered \(expected [\w-]{11}, found [\w-]{11}\)$/);
      }),
    );
  });

  it('truncating the file inside the last line is a torn line; allowTorn keeps everything before it', () => {
    fc.assert(
      fc.property(logLines, fc.nat(), (lines, n) => {
        const path = join(dir, 'torn.log.jsonl');
        writeFileSync(path, toText(lines));
        const full = readLog(path);
        const lastLength = Buffer.byteLength(lines.at(-1)!); // bytes of the last line, without its '\n'
        const cutAt = 1 + (n % lastLength); // 1..lastLength: at least one byte of the line, never its '\n'
        truncateSync(path, Buffer.byteLength(toText(lines.slice(0, -1))) + cutAt);

        const err = thrown(() => readLog(path));
        expect([err.code, err.line, err.file]).toEqual(['TORN_LINE', lines.length, path]);

        const partial: ParsedLog = readLog(path, { allowTorn: true });
        expect(partial.header).toEqual(full.header);
        expect(partial.lines).toBe(lines.length - 1);
        expect(partial.torn?.line).toBe(lines.length);
        expect(Buffer.from(partial.torn?.text ?? '').length).toBeLessThanOrEqual(cutAt + 2); // + U+FFFD for a split byte
        expect(partial.end).toBeNull();
        expect(partial.events).toEqual(full.end ? full.events : full.events.slice(0, -1));
      }),
      { numRuns: 60 },
    );
  });
});

describe('parseLogText', () => {
  const header: HeaderInput = { model: '0.1.0', scenario: { name: 'mmio-ve' }, scenarioFile: null, scheduler: { kind: 'fifo' } };
  const ev = (seq: number): EventInput => ({
    seq,
    from: 'guest.vcpu0',
    to: 'hw',
    kind: 'hw',
    name: '#VE',
    payload: { gpa: 0xfee0_0000n },
    cause: seq > 1 ? seq - 1 : null,
    choice: 0,
    state: 'AAAAAAAAAP8',
  });
  const sample = () => {
    const w = MemoryLogWriter.open(header, FILE);
    [1, 2, 3].forEach((s) => w.append(ev(s)));
    w.end({ status: 'ok', reason: null });
    return w.output;
  };
  /** Re-seals a hand-made chain: a tampering that recomputes hashes, which only the rules catch. */
  const reseal = (records: object[]) => {
    let prev = GENESIS;
    return toText(records.map((r) => {
      const { line, hash } = sealRecord(prev, r);
      prev = hash;
      return line;
    }));
  };
  const records = () => sample().map((l) => {
    const { h: _, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return rest;
  });

  it('returns header, events and end of a valid log', () => {
    const log = parseLogText(toText(sample()), FILE);
    expect(log.events.map((e) => [e.seq, e.payload])).toEqual([1, 2, 3].map((s) => [s, { gpa: '0xfee00000' }]));
    expect(log.end?.steps).toBe(3);
    expect([log.lines, log.torn]).toEqual([5, null]);
  });

  it.each([
    ['an empty file', '', 'EMPTY', 0, null],
    ['a text file', 'hello\n', 'NOT_A_LOG', 1, null],
    ['another JSON file', '{"name":"tdxsim","version":"0.1.0"}\n', 'NOT_A_LOG', 1, null],
    ['a torn header', '{"type":"header","format":"tdxsim-log"', 'TORN_LINE', 1, null],
  ])('rejects %s', (_what, input, code, line, field) => {
    const err = thrown(() => parseLogText(input, FILE, { allowTorn: true }));
    expect([err.code, err.line, err.field]).toEqual([code, line, field]);
  });

  it('rejects a blank line as BAD_JSON', () => {
    const lines = sample();
    const err = thrown(() => parseLogText(toText([...lines.slice(0, 2), '', ...lines.slice(2)]), FILE));
    expect([err.code, err.line, err.message]).toEqual(['BAD_JSON', 3, `${FILE}:3: empty line`]);
  });

  it('rejects anything after the end record', () => {
    const lines = sample();
    expect(thrown(() => parseLogText(toText([...lines, lines[1]!]), FILE)).code).toBe('TRAILING_DATA');
    const err = thrown(() => parseLogText(toText(lines) + '{', FILE, { allowTorn: true }));
    expect([err.code, err.line]).toEqual(['TRAILING_DATA', 6]);
  });

  it('names CRLF conversion', () => {
    const err = thrown(() => parseLogText(sample().map((l) => l + '\r\n').join(''), FILE));
    expect([err.code, err.line]).toEqual(['HASH_MISMATCH', 1]);
    expect(err.message).toContain('CRLF');
  });

  it('rejects a reformatted line even when its hash field is intact', () => {
    const lines = sample();
    const spaced = replaced(lines, 2, lines[2]!.replace('"e":2,', '"e": 2,'));
    const err = thrown(() => parseLogText(toText(spaced), FILE));
    expect([err.code, err.line]).toEqual(['HASH_MISMATCH', 3]);
  });

  it('catches a re-sealed seq gap', () => {
    const err = thrown(() => parseLogText(reseal(removed(records(), 2).slice(0, -1)), FILE));
    expect([err.code, err.line, err.field]).toEqual(['SEQ_GAP', 3, 'e']);
    expect(err.message).toBe(`${FILE}:3: seq gap: expected event 2, found 3 (events were dropped or duplicated before the log was sealed)`);
  });

  it('catches an end record whose step count disagrees', () => {
    const rs = records();
    rs[4] = { ...rs[4], steps: 2 };
    const err = thrown(() => parseLogText(reseal(rs), FILE));
    expect([err.code, err.line, err.field]).toEqual(['SEQ_GAP', 5, 'steps']);
  });

  it.each([
    ['an unknown field', (r: Record<string, unknown>) => ({ ...r, extra: 1 }), 'extra'],
    ['a bad state', (r: Record<string, unknown>) => ({ ...r, s: 'FF' }), 's'],
    ['a non-object payload', (r: Record<string, unknown>) => ({ ...r, q: 'x' }), 'q'],
    ['a message that is not defined', (r: Record<string, unknown>) => ({ ...r, m: 3 }), 'm'],
    ['a q with a key the previous payload lacks', (r: Record<string, unknown>) => ({ ...r, q: { spte: '0x1' } }), 'q'],
    ['an unknown record type', (r: Record<string, unknown>) => { const { e: _e, ...rest } = r; return { ...rest, type: 'checkpoint' }; }, 'type'],
    ['a second header', () => records()[0]!, 'type'],
  ])('reports a re-sealed record with %s as BAD_RECORD naming the field', (_what, edit, field) => {
    const rs = records();
    rs[2] = edit(rs[2]!);
    const err = thrown(() => parseLogText(reseal(rs), FILE));
    expect([err.code, err.line, err.field]).toEqual(['BAD_RECORD', 3, field]);
  });

  it('reports a bad header field as BAD_RECORD', () => {
    const rs = records();
    rs[0] = { ...rs[0], block: 0 };
    const err = thrown(() => parseLogText(reseal(rs), FILE));
    expect([err.code, err.line, err.field]).toEqual(['BAD_RECORD', 1, 'block']);
  });

  it('refuses a log of another version, naming it', () => {
    const rs = records();
    rs[0] = { ...rs[0], version: 1 };
    const err = thrown(() => parseLogText(reseal(rs), FILE));
    expect([err.code, err.line, err.field]).toEqual(['UNSUPPORTED_VERSION', 1, 'version']);
    expect(err.message).toBe(`${FILE}:1: tdxsim-log version 1: this tdxsim reads version 2 only (version 2 changed the state hash and the event encoding); replay it with the tdxsim that wrote it, or run its scenario again`);
  });

  it('decodes the compact encoding: a message defined once, payloads as changes, causes and choices by default', () => {
    const lines = sample();
    expect(lines[1]).toMatch(/^\{"e":1,"m":\["guest.vcpu0","hw","hw","#VE"\],"p":\{"gpa":"0xfee00000"\},"c":null,"s":"AAAAAAAAAP8","h":"[\w-]{11}"\}$/);
    expect(lines[2]).toMatch(/^\{"e":2,"m":0,"s":"AAAAAAAAAP8","h":"[\w-]{11}"\}$/);
    const log = parseLogText(toText(lines), FILE);
    expect(log.events[1]).toMatchObject({ seq: 2, from: 'guest.vcpu0', to: 'hw', kind: 'hw', name: '#VE', payload: { gpa: '0xfee00000' }, cause: 1, choice: 0 });
  });

  it('reports a missing file as IO at line 0', () => {
    const err = thrown(() => readLog(join(dir, 'nope.log.jsonl')));
    expect([err.code, err.line]).toEqual(['IO', 0]);
  });
});

describe('verifyChainOnly', () => {
  it('finds the first line whose hash does not follow and ignores a torn tail', () => {
    fc.assert(
      fc.property(logLines, fc.nat(), (lines, n) => {
        expect(verifyChainOnly(toText(lines) + '{"torn')).toEqual({ lines: lines.length, firstBadLine: null });
        const index = n % lines.length;
        const edited = replaced(lines, index, lines[index]!.replace(/"h":"(.)/, (_m, d: string) => `"h":"${d === '0' ? '1' : '0'}`));
        expect(verifyChainOnly(toText(edited)).firstBadLine).toBe(index + 1);
      }),
    );
  });
});

describe('LogWriter on disk', () => {
  it('a file written by LogWriter verifies', () => {
    const path = join(dir, 'ok.log.jsonl');
    const w = LogWriter.open(path, { model: 'm', scenario: {}, scenarioFile: null, scheduler: { kind: 'random', seed: 1 } });
    w.append({ seq: 1, from: 'a', to: 'b', kind: 'k', name: 'n', payload: {}, cause: null, choice: 0, state: 'AAAAAAAAAAA' });
    w.close();
    expect(verifyChainOnly(readFileSync(path, 'utf8'))).toEqual({ lines: 2, firstBadLine: null });
  });
});
