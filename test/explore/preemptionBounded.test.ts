/**
 * The preemption-bounded search (src/explore/preemptionBounded.ts): level K visits exactly the states some
 * schedule with at most K preemptions reaches — the count an independent breadth-first search over
 * (world, messages the last delivery sent) with the minimiser's preemption rule gives — a level that sees
 * every state says it is exhaustive, a race is found at the level of its fewest preemptions, and
 * `tdxsim explore --preemptions` prints the levels and refuses what it cannot combine with.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { explore, type ExploreResult } from '../../src/explore/explore.ts';
import { startPreemptionBounded } from '../../src/explore/preemptionBounded.ts';
import { countPreemptions, isPreemption } from '../../src/explore/minimise.ts';
import { fingerprint } from '../../src/explore/fingerprint.ts';
import { hashKey } from '../../src/explore/structuralHash.ts';
import { invariantsOf, noFailure, type Invariant } from '../../src/explore/invariants/index.ts';
import { enabledChoices, initialWorld, step } from '../../src/runtime/step.ts';
import type { Message } from '../../src/protocol/messages.ts';
import type { Model, World } from '../../src/runtime/world.ts';
import { exampleFile } from '../helpers.ts';
import { buildCli, scratchDir, tdxsim } from '../e2e/helpers.ts';

const BOUNDS = { maxDepth: 10_000, maxStates: 2_000_000, maxMillis: Number.POSITIVE_INFINITY };

function bounded(model: Model, invariants: Invariant[], k: number, only = false): ExploreResult {
  const x = startPreemptionBounded(model, invariants, BOUNDS, k, { only });
  while (!x.step());
  return x.result();
}

/**
 * Per K ≤ maxK, the states some schedule with at most K preemptions reaches: a 0-1 breadth-first search
 * (Dijkstra with costs 0 and 1) over nodes (world, deliverable messages the last delivery sent), built on
 * the plain step function and minimise.ts's isPreemption, sharing nothing with the search under test.
 */
function statesWithin(model: Model, maxK: number): number[] {
  type Node = { world: World; sent: readonly Message[]; cost: number };
  const best = new Map<string, number>();
  const stateCost = new Map<string, number>();
  const keyOf = (w: World, sent: readonly Message[]) => {
    const heads = new Set(enabledChoices(model, w));
    return `${hashKey(fingerprint(model, w))}|${sent.filter((m) => heads.has(m)).map((m) => `${m.from}>${m.to}`).sort().join(',')}`;
  };
  const root: Node = { world: initialWorld(model), sent: [], cost: 0 };
  let layer: Node[][] = [[root]];
  best.set(keyOf(root.world, []), 0);
  for (let c = 0; c <= maxK; c++) {
    const queue = layer[c] ?? [];
    for (let q = 0; q < queue.length; q++) {
      const node = queue[q]!;
      if (best.get(keyOf(node.world, node.sent))! < node.cost) continue;
      const fp = hashKey(fingerprint(model, node.world));
      if (!stateCost.has(fp) || stateCost.get(fp)! > c) stateCost.set(fp, c);
      const enabled = enabledChoices(model, node.world);
      for (let i = 0; i < enabled.length; i++) {
        const cost = c + (isPreemption(enabled, node.sent, enabled[i]!) ? 1 : 0);
        if (cost > maxK) continue;
        const r = step(model, node.world, i, enabled);
        const key = keyOf(r.world, r.sent);
        if ((best.get(key) ?? Infinity) <= cost) continue;
        best.set(key, cost);
        (layer[cost] ??= []).push({ world: r.world, sent: r.sent, cost });
      }
    }
  }
  return [...Array(maxK + 1).keys()].map((k) => [...stateCost.values()].filter((c) => c <= k).length);
}

describe('preemption-bounded search', () => {
  it('mapgpa-vs-touch: level K visits the states an independent search finds within K preemptions, K = 0 … 2', () => {
    const model = () => modelFor(loadScenarioFile(exampleFile('mapgpa-vs-touch')).scenario);
    const expected = statesWithin(model(), 2);
    const levels = [0, 1, 2].map((k) => bounded(model(), [noFailure], k, true).states);
    expect(levels).toEqual(expected);
    expect(expected[0]).toBeLessThan(expected[2]!);
  });

  it('parallel-faults: 9,201 / 45,115 / 58,217 / 59,563 states within 0 … 3 preemptions; at 4 every state (59,643) and the search says it is exhaustive', () => {
    const model = modelFor(loadScenarioFile(exampleFile('parallel-faults')).scenario);
    const r = bounded(model, invariantsOf(loadScenarioFile(exampleFile('parallel-faults')).scenario.invariants), 6);
    expect(r.preemptions!.levels.map((l) => l.states)).toEqual([9_201, 45_115, 58_217, 59_563, 59_643]);
    expect(r.preemptions!.levels.map((l) => l.unreached === 0)).toEqual([false, false, false, false, true]);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, bound: null, states: 59_643, terminals: 8 });
    const plain = explore(modelFor(loadScenarioFile(exampleFile('parallel-faults')).scenario), [noFailure], BOUNDS);
    expect(plain.states).toBe(r.states);
  });

  it('stops at the level of the race: parallel-faults without the freeze breaks sept-parent-first with one preemption, on a schedule that has one', () => {
    const model = modelFor(withPolicies(loadScenarioFile(exampleFile('parallel-faults')).scenario, { freezeMirrorSpte: false }));
    const r = bounded(model, invariantsOf(['sept-parent-first']), 3);
    expect(r.status).toBe('violation');
    expect(r.violation!.invariant).toBe('sept-parent-first');
    expect(r.preemptions!.levels.map((l) => l.preemptions)).toEqual([0, 1]);
    expect(countPreemptions(model, r.violation!.choices)).toBeLessThanOrEqual(1);
  });

  it('a level alone counts what the same level counts in the iteration', () => {
    const model = () => modelFor(loadScenarioFile(exampleFile('zap-during-accept')).scenario);
    const it2 = bounded(model(), [noFailure], 2);
    const only2 = bounded(model(), [noFailure], 2, true);
    expect(only2.preemptions!.levels).toHaveLength(1);
    expect(only2.states).toBe(it2.preemptions!.levels.find((l) => l.preemptions === 2)!.states);
  });
});

describe('tdxsim explore --preemptions (CLI)', () => {
  beforeAll(() => buildCli());

  it('prints one line per level, exits 3 while states remain unseen and 0 once a level sees them all; refuses what it cannot combine with', () => {
    const dir = scratchDir();
    const some = tdxsim(dir, 'explore', 'parallel-faults', '--preemptions', '1', '--quiet');
    expect(some.status).toBe(3);
    expect(some.stdout).toContain('# exhaustive up to 0 preemptions: 9201 states');
    expect(some.stdout).toContain('# exhaustive up to 1 preemption: 45115 states');
    expect(some.stdout).toContain('preemption bound reached: schedules with more than 1 preemption were not searched (they reach 2752 states not seen)');
    // A level a bound stops is not exhaustive up to its K, and says so.
    const cut = tdxsim(dir, 'explore', 'parallel-faults', '--preemptions', '3', '--max-states', '20000', '--quiet');
    expect(cut.status).toBe(3);
    expect(cut.stdout).toMatch(/^# exhaustive up to 0 preemptions: \d+ states/m);
    expect(cut.stdout).toMatch(/^# up to 1 preemption, not exhaustive \(the states bound stopped it\): 20000 states, \d+ transitions, /m);
    expect(cut.stdout).not.toContain('# exhaustive up to 1 preemption');
    const all = tdxsim(dir, 'explore', 'parallel-faults', '--preemptions', '9', '--quiet', '--json');
    expect(all.status).toBe(0);
    const json = JSON.parse(all.stdout) as { verdict: string; preemptions: { bound: number; levels: { preemptions: number; unreached: number }[] } };
    expect(json.verdict).toBe('clean');
    expect(json.preemptions.bound).toBe(9);
    expect(json.preemptions.levels.at(-1)).toMatchObject({ preemptions: 4, unreached: 0 });
    for (const [args, words] of [
      [['--preemptions', '2', '--workers', '2'], '--preemptions searches on one thread; drop --workers'],
      [['--preemptions', '2', '--persistent-sets'], '--preemptions searches without reduction; drop --persistent-sets'],
      [['--single-level'], '--single-level applies to --preemptions'],
      [['--preemptions', '2', '--mode', 'random'], '--preemptions applies to --mode dfs, not random'],
    ] as const) {
      const bad = tdxsim(dir, 'explore', 'parallel-faults', ...args);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toContain(words);
    }
  });

  it('--persistent-sets: fewer states, the same verdict, and says what it learnt', () => {
    const dir = scratchDir();
    const r = tdxsim(dir, 'explore', 'parallel-faults', '--persistent-sets', '--invariant', 'no-failure', '--quiet');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('# exploring parallel-faults (depth-first, persistent sets)');
    expect(r.stdout).toMatch(/# 29625 states, \d+ transitions, .* — exhaustive: every reachable state checked, no violation/);
    expect(r.stdout).toContain('# persistent sets: a topology of 31 channels, learnt by walks and checked by every new transition (2 restarts for a channel or a cause it lacked)');
  });
});
