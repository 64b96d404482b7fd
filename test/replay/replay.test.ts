import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ALL_EXAMPLES, runExample, runScenario, type RecordedRun } from '../helpers.ts';
import { twoVcpuMmio } from '../twoVcpu.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { sealRecord, unsealLine, GENESIS } from '../../src/log/hashChain.ts';
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

/** Rewrite one record and re-seal every hash after it: the chain is intact, only re-execution can tell. */
function resealWith(text: string, lineNo: number, edit: (rec: Record<string, unknown>) => void): string {
  const lines = text.trimEnd().split('\n');
  let prev = GENESIS;
  const out = lines.map((line, i) => {
    const rec = JSON.parse(unsealLine(line)!.body) as Record<string, unknown>;
    if (i + 1 === lineNo) edit(rec);
    const sealed = sealRecord(prev, rec);
    prev = sealed.hash;
    return sealed.line;
  });
  return out.join('\n') + '\n';
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
