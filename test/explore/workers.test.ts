/**
 * `tdxsim explore --workers N` through the built CLI (workers run compiled JavaScript): an exhaustive search
 * on two workers counts exactly the states one worker counts and reaches the same verdict, on every example
 * with more than one vCPU; with a fix switched off both find the race and print the same minimised
 * counterexample; seeded walks split across workers give the one-worker result.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildCli, REPO_ROOT, scratchDir, tdxsim, type CliResult } from '../e2e/helpers.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { modelFor } from '../../src/session/session.ts';
import { invariantsOf } from '../../src/explore/invariants/index.ts';
import { exploreInWorkers } from '../../src/explore/parallel.ts';
import { enabledChoices, initialWorld, step } from '../../src/runtime/step.ts';
import { ALL_EXAMPLES, exampleFile, FAILING_EXAMPLES } from '../helpers.ts';

/** The compiled worker (buildCli puts it there); this file's own imports are the TypeScript sources. */
const WORKER = pathToFileURL(path.join(REPO_ROOT, 'dist/src/explore/exploreWorker.js'));

const MULTI_VCPU = ALL_EXAMPLES.filter((name) => loadScenarioFile(exampleFile(name)).scenario.vcpus.length > 1);
/** The multi-vCPU examples that explore clean: the racy ones stop at their violation, wherever each worker meets it first. */
const CLEAN_MULTI_VCPU = MULTI_VCPU.filter((name) => !(name in FAILING_EXAMPLES));
/**
 * Each case explores its example twice through the CLI; the two largest (accept-level-two-vcpus, 37 s,
 * and halt-poll's 118k states) would be a tenth of the suite on a loaded 2-core machine and add no
 * shape the others lack (parallel-faults and zap-during-accept have the most contended channels).
 */
const TWO_WORKER_CASES = CLEAN_MULTI_VCPU.filter((name) => name !== 'accept-level-two-vcpus' && name !== 'halt-poll');

/** The summary line without timings (and the worker count), which may differ between runs. */
const summaryOf = (r: CliResult): string =>
  r.lines
    .find((l) => /^# \d+ states, /.test(l))!
    .replace(/[\d.]+ s, \d+ states\/s/, '')
    .replace(/ \(\d+ workers\)$/, '');
const statesOf = (r: CliResult): number => Number(/^# (\d+) states, /.exec(summaryOf(r))![1]);
const verdictOf = (r: CliResult): string => summaryOf(r).split(' — ')[1]!;

describe('tdxsim explore --workers', () => {
  beforeAll(() => buildCli());

  it('covers the examples with more than one vCPU', () => {
    expect(MULTI_VCPU).toEqual(expect.arrayContaining(['parallel-faults', 'zap-during-accept']));
  });

  const known: Record<string, number> = { 'parallel-faults': 59_643, 'zap-during-accept': 19_553 };
  for (const name of TWO_WORKER_CASES) {
    it(`${name}: two workers visit exactly the states one visits, with the same verdict`, () => {
      const dir = scratchDir();
      const one = tdxsim(dir, 'explore', name, '--workers', '1');
      const two = tdxsim(dir, 'explore', name, '--workers', '2');
      expect(two.status).toBe(one.status);
      expect(statesOf(two)).toBe(statesOf(one));
      expect(verdictOf(two)).toBe(verdictOf(one));
      expect(verdictOf(one)).toBe('exhaustive: every reachable state checked, no violation');
      if (name in known) expect(statesOf(two)).toBe(known[name]);
      expect(two.stdout).toMatch(/ \(2 workers\)\n/);
    });
  }

  const races: [string, string | null, RegExp][] = [
    ['accept-race', null, /# minimised: 129 steps, 1 preemptions .*\n# violation of no-failure at step 129: /],
    ['parallel-faults', 'freezeMirrorSpte=off', /# minimised: 121 steps, 1 preemptions .*\n# violation of sept-parent-first at step 121: /],
    ['zap-during-accept', 'zapBusyKickRetry=off', /# minimised: 143 steps, 1 preemptions .*\n# violation of no-failure at step 143: /],
  ];
  for (const [name, policy, minimised] of races) {
    it(`${name}${policy ? ` with ${policy}` : ''}: two workers find the violation, minimised as one worker's`, () => {
      const dir = scratchDir();
      const policies = policy ? ['--policy', policy] : [];
      const two = tdxsim(dir, 'explore', name, ...policies, '--workers', '2', '--log', 'two.jsonl');
      expect(two.status).toBe(1);
      expect(two.stdout).toMatch(minimised);
      const one = tdxsim(dir, 'explore', name, ...policies, '--log', 'one.jsonl');
      const counterexample = (r: CliResult) => r.stdout.slice(r.stdout.indexOf('# violation of')).replace(/\S+\.jsonl/g, '');
      expect(counterexample(two)).toBe(counterexample(one));
      expect(tdxsim(dir, 'replay', 'two.jsonl', '--verify').status).toBe(0);
    });
  }

  it('a violation deeper than the breadth-first seed: found by a thread\'s depth-first share, along a schedule that replays to it', async () => {
    const scenario = withPolicies(loadScenarioFile(exampleFile('zap-during-accept')).scenario, { zapBusyKickRetry: false });
    const bounds = { maxDepth: 5_000, maxStates: 1_000_000, maxMillis: Number.POSITIVE_INFINITY };
    const r = await exploreInWorkers({ scenario, invariants: scenario.invariants, bounds, search: { mode: 'dfs' }, workers: 2, seed: { width: 2, states: 20 }, workerUrl: WORKER });
    expect(r.status).toBe('violation');
    expect(r.threads).toHaveLength(2);
    const v = r.violation!;
    expect(v.choices.length).toBeGreaterThan(60);
    const model = modelFor(scenario);
    let world = initialWorld(model);
    let detail: string | null = null;
    for (const c of v.choices) {
      const s = step(model, world, c, enabledChoices(model, world));
      detail = invariantsOf(scenario.invariants).find((i) => i.name === v.invariant)!.check(model, world, s.world, s.delivered);
      world = s.world;
    }
    expect(detail).toBe(v.detail);
  });

  it('a frontier of two entries, or three threads on two cores, still gives every state exactly once (59,643 on parallel-faults)', async () => {
    const scenario = loadScenarioFile(exampleFile('parallel-faults')).scenario;
    const bounds = { maxDepth: 5_000, maxStates: 1_000_000, maxMillis: Number.POSITIVE_INFINITY };
    for (const [workers, seed] of [[2, { width: 2, states: 20 }], [3, {}]] as const) {
      const r = await exploreInWorkers({ scenario, invariants: scenario.invariants, bounds, search: { mode: 'dfs' }, workers, seed, workerUrl: WORKER });
      expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 59_643 });
      expect(r.threads).toHaveLength(workers);
    }
  });

  it('random and pct walks on two workers: the same states, transitions and walks as on one, and the same violating walk', () => {
    const dir = scratchDir();
    for (const mode of ['random', 'pct']) {
      const args = ['explore', 'zap-during-accept', '--mode', mode, '--seed', '11', '--walks', '200'];
      expect(summaryOf(tdxsim(dir, ...args, '--workers', '2'))).toBe(summaryOf(tdxsim(dir, ...args)));
      const race = [...args, '--policy', 'zapBusyKickRetry=off', '--no-minimise'];
      const walkOf = (r: CliResult) => /violation found in walk (\d+)/.exec(r.stdout)?.[1];
      const one = tdxsim(dir, ...race);
      expect(one.status).toBe(1);
      expect(walkOf(tdxsim(dir, ...race, '--workers', '2'))).toBe(walkOf(one));
    }
  });

  it('the time bound stops every thread and says so, searching or walking', () => {
    const dir = scratchDir();
    const dfs = tdxsim(dir, 'explore', 'parallel-faults', '--workers', '2', '--time', '0');
    // Nothing found, but not everything checked: exit 3, and the summary says what stopped it.
    expect(dfs.status).toBe(3);
    expect(dfs.stdout).toMatch(/— no violation, not exhaustive \(time bound reached after 0 s: the states not yet visited were not checked\) \(2 workers\)\n/);
    const walks = tdxsim(dir, 'explore', 'parallel-faults', '--workers', '2', '--time', '0', '--mode', 'pct');
    expect(walks.status).toBe(3);
    expect(walks.stdout).toMatch(/— no violation, not exhaustive \(sampling never is; time bound reached\); mode pct .*\(2 workers\)\n/);
  });

  it('--workers 0 is bad input naming the flag', () => {
    const r = tdxsim(scratchDir(), 'explore', 'private-accept', '--workers', '0');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--workers needs a positive integer, got "0"');
  });
});
