import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ALL_EXAMPLES, runExample, runScenario, type RecordedRun } from '../helpers.ts';
import { twoVcpuMmio } from '../twoVcpu.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { encodeLog } from '../../src/log/writer.ts';
import type { LogRecord } from '../../src/log/schema.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { stringifyCanonical } from '../../src/log/canonical.ts';
import { worldHash, worldView } from '../../src/runtime/worldHash.ts';
import { LogError } from '../../src/log/errors.ts';

const FILE = 'run.log.jsonl';

function expectReplayMatchesLiveRun(run: RecordedRun) {
  const r = replayLog(parseLogText(run.text, FILE), FILE, { keepAll: true, verify: true });
  expect(r.history).toHaveLength(run.deliveries.length + 1);
  run.deliveries.forEach((d, i) => {
    const replayed = r.history![i + 1]!;
    expect(worldHash(r.model, replayed)).toBe(worldHash(run.model, d.world));
    expect(stringifyCanonical(worldView(r.model, replayed))).toBe(stringifyCanonical(worldView(run.model, d.world)));
  });
}

/** Rewrite one record (as the reader decodes it) and re-seal every line: the chain is intact, only re-execution can tell. */
function resealWith(text: string, lineNo: number, edit: (rec: Record<string, unknown>) => void): string {
  const log = parseLogText(text, FILE);
  const records = [log.header, ...log.events, ...(log.end ? [log.end] : [])].map((r) => structuredClone(r) as unknown as Record<string, unknown>);
  edit(records[lineNo - 1]!);
  return encodeLog(records as unknown as LogRecord[]);
}

describe('replay rebuilds every actor state at every step', () => {
  it.each(ALL_EXAMPLES)('%s: every step equals the live run, and --verify passes', (name) => {
    expectReplayMatchesLiveRun(runExample(name));
  });

  it('two racing vCPUs under random schedules: every step equals the live run', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom('tdx' as const, 'vmx' as const), (seed, type) => {
        expectReplayMatchesLiveRun(runScenario(twoVcpuMmio(type), seed));
      }),
      { numRuns: 25 },
    );
  });

  it('--to N gives the state after N deliveries, for any N', () => {
    const run = runScenario(twoVcpuMmio('tdx'), 3);
    const log = parseLogText(run.text, FILE);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: run.deliveries.length }), (n) => {
        const r = replayLog(log, FILE, { to: n });
        const live = n === 0 ? null : run.deliveries[n - 1]!.world;
        if (live) expect(worldHash(r.model, r.world)).toBe(worldHash(run.model, live));
        else expect(r.world.seq).toBe(0);
      }),
      { numRuns: 30 },
    );
  });

  it('a re-sealed log whose choice was changed diverges at exactly that line', () => {
    const run = runScenario(twoVcpuMmio('tdx'), 11);
    const log = parseLogText(run.text, FILE);
    const line = 20;
    expect(log.events.length).toBeGreaterThan(line);
    const tampered = resealWith(run.text, line, (rec) => {
      rec['choice'] = 99;
    });
    expect(() => replayLog(parseLogText(tampered, FILE), FILE, { verify: true })).toThrowError(new RegExp(`^${FILE}:${line}: replay diverged`));
  });

  it('a re-sealed log whose payload was changed diverges at exactly that line', () => {
    const run = runExample('mmio-ve');
    const tampered = resealWith(run.text, 36, (rec) => {
      (rec['payload'] as Record<string, unknown>)['mmioData'] = '0xdead';
    });
    try {
      replayLog(parseLogText(tampered, FILE), FILE, { verify: true });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(LogError);
      expect((e as LogError).code).toBe('REPLAY_DIVERGED');
      expect((e as LogError).line).toBe(36);
      expect((e as LogError).field).toBe('payload');
    }
  });
});

describe('--verify checks the header and end-record fields it used to take on trust', () => {
  const verifyError = (text: string): LogError => {
    try {
      replayLog(parseLogText(text, FILE), FILE, { verify: true });
    } catch (e) {
      if (e instanceof LogError) return e;
      throw e;
    }
    throw new Error('expected --verify to fail');
  };

  it('header.model: a re-sealed log claiming another model version fails at line 1; --to still replays it', () => {
    const run = runExample('mmio-ve');
    const text = resealWith(run.text, 1, (rec) => {
      rec['model'] = 'tdxsim-model/9.9.9';
    });
    const e = verifyError(text);
    expect([e.code, e.line, e.field]).toEqual(['REPLAY_DIVERGED', 1, 'model']);
    expect(e.message).toMatch(new RegExp(`^${FILE}:1: header\\.model: the log was written by tdxsim-model/9\\.9\\.9, this is tdxsim-model/.+: only the model that wrote a log can vouch for it$`));
    expect(replayLog(parseLogText(text, FILE), FILE, { to: 10 }).modelVersionMatches).toBe(false);
  });

  /** The first step where a run under `other` chooses differently: both runs are the same up to there. */
  function firstDifference(a: RecordedRun, b: RecordedRun): number {
    const i = a.deliveries.findIndex((d, k) => d.choice !== b.deliveries[k]?.choice);
    expect(i).toBeGreaterThan(0);
    return i;
  }

  it('header.scheduler: a FIFO log re-sealed as random (seed 0) fails at the first choice seed 0 would not make', () => {
    const scenario = twoVcpuMmio('tdx');
    const fifo = runScenario(scenario);
    const i = firstDifference(fifo, runScenario(scenario, 0));
    const e = verifyError(resealWith(fifo.text, 1, (rec) => {
      rec['scheduler'] = { kind: 'random', seed: 0 };
    }));
    expect([e.code, e.line, e.field]).toEqual(['REPLAY_DIVERGED', i + 2, 'choice']);
    expect(e.message).toMatch(new RegExp(`^${FILE}:${i + 2}: replay diverged at choice: the header's scheduler \\(random, seed 0\\) picks \\d+ here, the log says ${fifo.deliveries[i]!.choice}$`));
  });

  it('header.scheduler: a seed changed from 7 to 8 fails at the first choice seed 8 makes differently', () => {
    const scenario = twoVcpuMmio('tdx');
    const seven = runScenario(scenario, 7);
    const i = firstDifference(seven, runScenario(scenario, 8));
    const e = verifyError(resealWith(seven.text, 1, (rec) => {
      rec['scheduler'] = { kind: 'random', seed: 8 };
    }));
    expect([e.line, e.field]).toEqual([i + 2, 'choice']);
  });

  it('the seeded log itself verifies (the scheduler is re-created with its seed)', () => {
    const run = runScenario(twoVcpuMmio('tdx'), 7);
    expect(replayLog(parseLogText(run.text, FILE), FILE, { verify: true }).verified).toBe(true);
  });

  it('outcome.failures: a failure edited in the end record is caught against the one the model reaches', () => {
    const run = runExample('private-touch-ve');
    expect(run.outcome.failures).toHaveLength(1);
    const f = run.outcome.failures[0]!;
    const end = run.text.trimEnd().split('\n').length;
    const e = verifyError(resealWith(run.text, end, (rec) => {
      ((rec['outcome'] as { failures: { detail: string }[] }).failures[0]!).detail = 'nothing to see';
    }));
    expect([e.code, e.line, e.field]).toEqual(['REPLAY_DIVERGED', end, 'outcome.failures']);
    expect(e.message).toBe(`${FILE}:${end}: replay diverged at outcome.failures[0]: the model reaches ${f.actor} at step ${f.seq}: ${f.reason}: ${f.detail}, the log says ${f.actor} at step ${f.seq}: ${f.reason}: nothing to see`);
  });

  it('outcome.failures: a failure added to a clean run is caught', () => {
    const run = runExample('mmio-ve');
    const end = run.text.trimEnd().split('\n').length;
    const e = verifyError(resealWith(run.text, end, (rec) => {
      (rec['outcome'] as { failures: unknown[] }).failures.push({ actor: 'tdx', seq: 3, reason: 'r', detail: 'd' });
    }));
    expect(e.message).toBe(`${FILE}:${end}: replay diverged at outcome.failures[0]: the model reaches none, the log says tdx at step 3: r: d`);
  });

  it('outcome.lasso: a loop claimed on a run that has none is refused (src/replay/lasso.ts re-derives it)', () => {
    const run = runExample('mmio-ve');
    const end = run.text.trimEnd().split('\n').length;
    const bare = verifyError(resealWith(run.text, end, (rec) => {
      (rec['outcome'] as Record<string, unknown>)['lasso'] = { loopStart: 3, starving: 'guest.vcpu0', retries: 'EPT violation' };
    }));
    expect([bare.line, bare.field]).toEqual([end, 'outcome.violation']);
    const claimed = verifyError(resealWith(run.text, end, (rec) => {
      const o = rec['outcome'] as Record<string, unknown>;
      o['status'] = 'failure';
      o['reason'] = 'violation of non-progress: guest.vcpu0 never retires anything';
      o['violation'] = { invariant: 'non-progress', detail: 'guest.vcpu0 never retires anything' };
      o['lasso'] = { loopStart: 3, starving: 'guest.vcpu0', retries: 'EPT violation' };
    }));
    expect(claimed.line).toBe(end);
    expect(claimed.message).toMatch(/lasso|loop/);
  });
});
