/**
 * Runs, replays and explorations as rxjs streams: a user composes them (`filter`, `bufferCount`, `take`,
 * `takeUntil`) and the model runs the same however it is watched.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bufferCount, filter, firstValueFrom, lastValueFrom, map, take, takeUntil, timer, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { LogError } from '../../src/log/errors.ts';
import { deliveries, exploreScenario, explorationDone, explorationProgress, findings, loadScenario, modelFor, replayEvents, runScenario, stateViews } from '../../src/index.ts';
import { scratchDir } from '../e2e/helpers.ts';

describe('runScenario', () => {
  it('emits each delivery, then the end; two subscriptions see the same run', async () => {
    const s = loadScenario('mmio-ve');
    const a = await lastValueFrom(runScenario(s).pipe(toArray()));
    const b = await lastValueFrom(runScenario(s).pipe(toArray()));
    expect(a.at(-1)).toMatchObject({ type: 'end', outcome: { status: 'ok' } });
    expect(a.filter((e) => e.type === 'delivery').map((e) => e.type === 'delivery' && e.seq)).toEqual(Array.from({ length: a.length - 1 }, (_, i) => i + 1));
    expect(b.map((e) => (e.type === 'delivery' ? `${e.seq} ${e.message.name}` : e.type))).toEqual(a.map((e) => (e.type === 'delivery' ? `${e.seq} ${e.message.name}` : e.type)));
  });

  it('composes: the MMIO exits, state views in batches, and take() stops the run early', async () => {
    const s = loadScenario('mmio-ve');
    const mmio = await lastValueFrom(runScenario(s).pipe(deliveries(), filter((d) => d.message.name === 'KVM_EXIT_MMIO'), map((d) => d.seq), toArray()));
    expect(mmio.length).toBe(3);
    const model = modelFor(s);
    const batches = await lastValueFrom(runScenario(s).pipe(deliveries(), stateViews(model), bufferCount(50), toArray()));
    expect(batches[0]).toHaveLength(50);
    expect(Object.keys(batches[0]![0]!.actors)).toContain('kvm.mmu');
    const firstFive = await lastValueFrom(runScenario(s).pipe(deliveries(), take(5), toArray()));
    expect(firstFive.map((d) => d.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('with a log, writes exactly what tdxsim run writes; a run cut short leaves no end record', async () => {
    const dir = scratchDir();
    const s = loadScenario('mmio-ve');
    await lastValueFrom(runScenario(s, { log: path.join(dir, 'full.log.jsonl') }));
    expect(readFileSync(path.join(dir, 'full.log.jsonl'), 'utf8')).toContain('"type":"end"');
    await lastValueFrom(runScenario(s, { log: path.join(dir, 'cut.log.jsonl') }).pipe(deliveries(), take(10)));
    expect(readFileSync(path.join(dir, 'cut.log.jsonl'), 'utf8')).not.toContain('"type":"end"');
  });

  it('yielding between slices: takeUntil a timer stops a paced run part way', async () => {
    const seen = await lastValueFrom(runScenario(loadScenario('mmio-ve'), { pace: 5 }).pipe(deliveries(), takeUntil(timer(60)), toArray()));
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.length).toBeLessThan(130);
  });
});

describe('replayEvents', () => {
  it('re-derives every step of a log as it reads it, then the end record', async () => {
    const dir = scratchDir();
    const log = path.join(dir, 'mmio.log.jsonl');
    const run = await lastValueFrom(runScenario(loadScenario('mmio-ve'), { log }).pipe(deliveries(), map((d) => `${d.seq} ${d.message.from}>${d.message.to} ${d.message.name}`), toArray()));
    const replayed = await lastValueFrom(replayEvents(log).pipe(toArray()));
    expect(replayed.filter((e) => e.type === 'delivery').map((e) => e.type === 'delivery' && `${e.seq} ${e.message.from}>${e.message.to} ${e.message.name}`)).toEqual(run);
    expect(replayed.at(-1)).toMatchObject({ type: 'end', steps: run.length, torn: false, end: { outcome: { status: 'ok' } } });
    const ve = await firstValueFrom(replayEvents(log).pipe(filter((e) => e.type === 'delivery' && e.message.name === '#VE')));
    expect(ve.type === 'delivery' && ve.message.to).toBe('guest.vcpu0');
  });

  it('errors where the log and the model part, naming the line', async () => {
    const dir = scratchDir();
    const log = path.join(dir, 'edit.log.jsonl');
    await lastValueFrom(runScenario(loadScenario('mmio-ve'), { log }));
    const lines = readFileSync(log, 'utf8').split('\n');
    lines[6] = lines[6]!.replace('{', '{ ');
    writeFileSync(log, lines.join('\n'));
    const err = await lastValueFrom(replayEvents(log)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LogError);
    expect((err as LogError).message).toMatch(/edit\.log\.jsonl:7: /);
  });
});

describe('exploreScenario', () => {
  it('start, progress, the finding (minimised), then done — and the pieces filter out', async () => {
    const s = loadScenario('accept-race');
    const events = await lastValueFrom(exploreScenario(s, { progressEvery: 100, invariants: ['no-failure'] }).pipe(toArray()));
    expect(events[0]!.type).toBe('start');
    expect(events.at(-1)!.type).toBe('done');
    const finding = await lastValueFrom(exploreScenario(s, { invariants: ['no-failure'] }).pipe(findings()));
    expect(finding).toMatchObject({ invariant: 'no-failure', minimised: 'minimal', preemptions: 1 });
    const progress = await lastValueFrom(exploreScenario(s, { progressEvery: 100, invariants: ['no-failure'] }).pipe(explorationProgress(), toArray()));
    expect(progress.some((p) => p.phase === 'search')).toBe(true);
    expect(progress.some((p) => p.phase === 'minimise')).toBe(true);
  });

  it('an aborted signal ends the search with the summary so far (interrupted)', async () => {
    const stop = new AbortController();
    stop.abort();
    const done = await lastValueFrom(exploreScenario(loadScenario('parallel-faults'), { signal: stop.signal }).pipe(explorationDone()));
    expect(done.result.bound).toBe('interrupted');
    expect(done.result.exhaustive).toBe(false);
    expect(done.finding).toBeNull();
  });

  it('unsubscribing stops the search: no done event, and no counterexample file', async () => {
    const dir = scratchDir();
    const seen = await lastValueFrom(exploreScenario(loadScenario('parallel-faults'), { progressEvery: 1000 }).pipe(explorationProgress(), take(2), toArray()));
    expect(seen).toHaveLength(2);
    expect(existsSync(path.join(dir, 'parallel-faults.counterexample.log.jsonl'))).toBe(false);
  });
});
