import fc from 'fast-check';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogError } from '../../src/log/errors.ts';
import { readLog } from '../../src/log/reader.ts';
import type { EndInput, EventInput, HeaderInput } from '../../src/log/schema.ts';
import { LogWriter, MemoryLogWriter } from '../../src/log/writer.ts';

// Property bodies are blocks, not `(v) => expect(...)`: vitest matchers return an Assertion object, and
// fast-check fails a property that returns anything other than true or undefined.

const dir = mkdtempSync(join(tmpdir(), 'tdxsim-log-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
const tmpFile = () => join(dir, `${++fileCount}.log.jsonl`);

/** Independent reference for what values become on disk: bigints as hex, and -0 as 0 (as JSON does). */
function hexify(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (typeof value === 'bigint') return value < 0n ? `-0x${(-value).toString(16)}` : `0x${value.toString(16)}`;
  if (Array.isArray(value)) return value.map(hexify);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, hexify(v)]));
  }
  return value;
}

const text = fc.string({ unit: 'binary', maxLength: 12 });
const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 12 });
const field = fc.oneof(fc.jsonValue({ maxDepth: 2, stringUnit: 'binary' }), fc.bigInt(), fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { maxLength: 3 }));
const header: fc.Arbitrary<HeaderInput> = fc.record({
  model: text,
  scenario: fc.dictionary(text, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
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
  payload: fc.dictionary(text, field, { maxKeys: 5 }),
  cause: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: null }),
  choice: fc.nat(),
  state: fc.stringMatching(/^[A-Za-z0-9_-]{11}$/),
});
const outcome: fc.Arbitrary<EndInput> = fc.record({
  status: fc.constantFrom('ok' as const, 'failure' as const),
  reason: fc.option(text, { nil: null }),
});
const logInput = fc.record({
  header,
  // A cause is an earlier step.
  events: fc.array(event, { maxLength: 6 }).map((es) => es.map((e, i): EventInput => ({ seq: i + 1, ...e, cause: e.cause === null || i === 0 ? null : 1 + (e.cause % i) }))),
  outcome: fc.option(outcome, { nil: null }),
});
type LogInput = typeof logInput extends fc.Arbitrary<infer T> ? T : never;

function writeAll<W extends LogWriter | MemoryLogWriter>(writer: W, input: LogInput): W {
  for (const e of input.events) writer.append(e);
  if (input.outcome) writer.end(input.outcome);
  writer.close();
  return writer;
}

function thrown(f: () => unknown): LogError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(LogError);
    return err as LogError;
  }
  throw new Error('expected a LogError');
}

const fifo: HeaderInput = { model: '0.1.0', scenario: {}, scenarioFile: null, scheduler: { kind: 'fifo' } };
const ev = (seq: number, extra: Partial<EventInput> = {}): EventInput => ({
  seq,
  from: 'kvm.vcpu0',
  to: 'tdx',
  kind: 'seamcall',
  name: 'TDH.MEM.PAGE.AUG',
  payload: { gpa: 0x8000_1000n },
  cause: null,
  choice: 0,
  state: 'ASNFZ4mrze8',
  ...extra,
});

describe('LogWriter / readLog round trip', () => {
  it('reads back what was written; bigints come back as hex strings', () => {
    fc.assert(
      fc.property(logInput, (input) => {
        const path = tmpFile();
        writeAll(LogWriter.open(path, input.header), input);
        const log = readLog(path);
        const { hash: headerHash, ...headerRest } = log.header;
        expect(headerHash).toMatch(/^[\w-]{11}$/);
        expect(headerRest).toEqual({ type: 'header', format: 'tdxsim-log', version: 2, ...(hexify(input.header) as object), block: 1024 });
        expect(log.events.map(({ hash: _, ...rest }) => rest)).toEqual(
          input.events.map((e) => ({ type: 'event', ...(hexify(e) as object) })),
        );
        expect(log.end && { ...log.end, hash: undefined }).toEqual(
          input.outcome && { type: 'end', steps: input.events.length, outcome: hexify(input.outcome), hash: undefined },
        );
        expect(log.lines).toBe(1 + input.events.length + (input.outcome ? 1 : 0));
        expect(log.torn).toBeNull();
        rmSync(path);
      }),
      { numRuns: 60 },
    );
  });

  it('is byte-identical across writers given the same records, in a file or in memory', () => {
    fc.assert(
      fc.property(logInput, (input) => {
        const [a, b] = [tmpFile(), tmpFile()];
        const wa = writeAll(LogWriter.open(a, input.header), input);
        writeAll(LogWriter.open(b, input.header), input);
        const mem = writeAll(MemoryLogWriter.open(input.header), input);
        const bytes = readFileSync(a);
        expect(readFileSync(b).equals(bytes)).toBe(true);
        expect(Buffer.from(mem.text()).equals(bytes)).toBe(true);
        expect(mem.lastHash).toBe(wa.lastHash);
        expect(mem.lines).toBe(mem.output.length);
        rmSync(a);
        rmSync(b);
      }),
      { numRuns: 40 },
    );
  });

  it('writes keys in schema order however the caller built its objects', () => {
    const w = MemoryLogWriter.open({ scheduler: { seed: 7, kind: 'random' }, scenarioFile: null, scenario: {}, model: 'm' });
    w.append({ state: 'AAAAAAAAAAA', choice: 1, cause: null, payload: {}, name: 'N', kind: 'k', to: 't', from: 'f', seq: 1 });
    w.end({ extra: [1n], reason: null, status: 'failure' });
    expect(w.output.map((l) => Object.keys(JSON.parse(l)))).toEqual([
      ['type', 'format', 'version', 'model', 'scenario', 'scenarioFile', 'scheduler', 'block', 'h'],
      ['e', 'm', 'p', 'c', 'x', 's', 'h'],
      ['type', 'steps', 'outcome', 'h'],
    ]);
    expect(w.output[0]).toContain('"scheduler":{"kind":"random","seed":7}');
    expect(w.output[2]).toContain('"outcome":{"status":"failure","reason":null,"extra":["0x1"]}');
  });
});

describe('LogWriter rules', () => {
  it('returns each line hash and tracks lines, lastSeq and lastHash', () => {
    const w = MemoryLogWriter.open(fifo);
    expect([w.lines, w.lastSeq]).toEqual([1, 0]);
    const h1 = w.append(ev(1));
    expect(w.output[1]).toContain(`"h":"${h1}"`);
    expect([w.lines, w.lastSeq, w.lastHash]).toEqual([2, 1, h1]);
    const h2 = w.end({ status: 'ok', reason: null });
    expect(JSON.parse(w.output[2]!)).toEqual({ type: 'end', steps: 1, outcome: { status: 'ok', reason: null }, h: h2 });
  });

  it('refuses a seq that is not lastSeq + 1, and stays usable', () => {
    const w = MemoryLogWriter.open(fifo);
    for (const seq of [2, 5]) {
      const err = thrown(() => w.append(ev(seq)));
      expect([err.code, err.line, err.field]).toEqual(['SEQ_GAP', 2, 'seq']);
      expect(err.message.startsWith('<memory>:2: ')).toBe(true);
    }
    w.append(ev(1));
    expect(thrown(() => w.append(ev(1))).code).toBe('SEQ_GAP');
    expect(w.lines).toBe(2);
  });

  it.each([
    ['a bad state hash', ev(1, { state: 'XYZ' }), 'state'],
    ['an unknown field', { ...ev(1), extra: 1 } as EventInput, 'extra'],
    ['an empty name', ev(1, { name: '' }), 'name'],
    ['an array payload', ev(1, { payload: [] as unknown as Record<string, unknown> }), 'payload'],
    ['a Map in the payload', ev(1, { payload: { spte: new Map() } }), 'payload.spte'],
    ['NaN in the payload', ev(1, { payload: { regs: [1, NaN] } }), 'payload.regs[1]'],
  ])('refuses an event with %s, naming the field, and writes nothing', (_what, input, fieldName) => {
    const w = MemoryLogWriter.open(fifo);
    const err = thrown(() => w.append(input));
    expect([err.code, err.line, err.field]).toEqual(['BAD_RECORD', 2, fieldName]);
    expect(w.output).toHaveLength(1);
  });

  it('names outcome fields by their path in the end record', () => {
    const w = MemoryLogWriter.open(fifo);
    const err = thrown(() => w.end({ status: 'done', reason: null } as unknown as EndInput));
    expect([err.code, err.line, err.field]).toEqual(['BAD_RECORD', 2, 'outcome.status']);
    expect(thrown(() => w.end({ status: 'ok', reason: null, at: new Date(0) })).field).toBe('outcome.at');
  });

  it('refuses a bad header before touching the file', () => {
    const path = tmpFile();
    writeFileSync(path, 'precious\n');
    const err = thrown(() => LogWriter.open(path, { ...fifo, scheduler: { kind: 'pct' } } as unknown as HeaderInput));
    expect([err.code, err.line, err.field]).toEqual(['BAD_RECORD', 1, 'scheduler.kind']);
    expect(readFileSync(path, 'utf8')).toBe('precious\n');
  });

  it('refuses to write after end or close', () => {
    const w = MemoryLogWriter.open(fifo);
    w.end({ status: 'failure', reason: 'invariant septLegality violated' });
    expect(thrown(() => w.append(ev(1))).code).toBe('TRAILING_DATA');
    expect(thrown(() => w.end({ status: 'ok', reason: null })).code).toBe('TRAILING_DATA');
    w.close();
    w.close();
    expect(thrown(() => w.append(ev(1))).code).toBe('IO');
  });

  it('reports an unwritable path as IO at line 0', () => {
    const err = thrown(() => LogWriter.open(join(dir, 'missing', 'x.log.jsonl'), fifo));
    expect([err.code, err.line]).toEqual(['IO', 0]);
    expect(existsSync(join(dir, 'missing'))).toBe(false);
  });

  it('leaves every appended line on disk before close, as a crash would find it', () => {
    const path = tmpFile();
    const w = LogWriter.open(path, fifo);
    w.append(ev(1));
    w.append(ev(2));
    expect(readLog(path).events.map((e) => e.seq)).toEqual([1, 2]);
    w.close();
  });
});
