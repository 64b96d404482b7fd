/**
 * Seeded sampling (src/explore/sample.ts): a seed fixes every walk, a walk replays without the walks
 * before it, different seeds schedule differently, both strategies find the race examples' bugs within a
 * small budget with schedules that replay to the same violation, and clean examples stay clean without
 * ever claiming to be exhaustive.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { invariantsOf, type Invariant } from '../../src/explore/invariants/index.ts';
import { sample, walkSeed, type SampleMode, type SampleOptions } from '../../src/explore/sample.ts';
import { enabledChoices, initialWorld, step } from '../../src/runtime/step.ts';
import type { Model } from '../../src/runtime/world.ts';
import type { PolicyOverrides } from '../../src/policies.ts';
import { exampleFile } from '../helpers.ts';

const MODES: readonly SampleMode[] = ['random', 'pct'];
const bounds = (walks: number) => ({ maxDepth: 5_000, maxStates: 1_000_000, maxMillis: Number.POSITIVE_INFINITY, walks });

function example(name: string, policy: PolicyOverrides = {}) {
  const scenario = withPolicies(loadScenarioFile(exampleFile(name)).scenario, policy);
  return { model: modelFor(scenario), invariants: invariantsOf(scenario.invariants) };
}

/** Never fails; writes down every delivery (channel and message name), i.e. the schedules run. */
function scheduleWitness(): Invariant & { deliveries: string[] } {
  return {
    name: 'witness schedule',
    description: '',
    deliveries: [],
    check(_m, _b, _a, d) {
      this.deliveries.push(`${d.from}>${d.to}:${d.name}`);
      return null;
    },
  };
}

/** Steps the model along `choices` and returns what `invariant` says of the last delivery. */
function replayVerdict(model: Model, invariants: readonly Invariant[], choices: readonly number[]): { invariant: string; detail: string } | null {
  let world = initialWorld(model);
  for (const [i, c] of choices.entries()) {
    const enabled = enabledChoices(model, world);
    const r = step(model, world, c, enabled);
    if (i === choices.length - 1) {
      for (const inv of invariants) {
        const detail = inv.check(model, world, r.world, r.delivered);
        if (detail !== null) return { invariant: inv.name, detail };
      }
    }
    world = r.world;
  }
  return null;
}

describe('seeded sampling', () => {
  const zap = example('zap-during-accept');

  it('the same seed gives the same walks, states, transitions and verdict', () => {
    fc.assert(
      fc.property(fc.constantFrom(...MODES), fc.nat({ max: 0xffff_ffff }), (mode, seed) => {
        const a = scheduleWitness();
        const b = scheduleWitness();
        const ra = sample(zap.model, [...zap.invariants, a], bounds(4), { mode, seed });
        const rb = sample(zap.model, [...zap.invariants, b], bounds(4), { mode, seed });
        expect(b.deliveries).toEqual(a.deliveries);
        expect([rb.states, rb.transitions, rb.walks, rb.status]).toEqual([ra.states, ra.transitions, ra.walks, ra.status]);
      }),
      { numRuns: 6 },
    );
  });

  it('different seeds schedule differently, in both modes', () => {
    for (const mode of MODES) {
      const runs = [1, 2, 3].map((seed) => {
        const w = scheduleWitness();
        sample(zap.model, [...zap.invariants, w], bounds(3), { mode, seed });
        return w.deliveries.join('\n');
      });
      expect(new Set(runs).size).toBe(3);
    }
  });

  it('walk seeds of nearby runs and walks are unrelated', () => {
    const seeds = new Set<number>();
    for (let s = 0; s < 20; s++) for (let w = 0; w < 20; w++) seeds.add(walkSeed(s, w));
    expect(seeds.size).toBe(400);
  });

  it('clean examples: no violation in either mode, and never exhaustive', () => {
    for (const name of ['parallel-faults', 'zap-during-accept']) {
      const { model, invariants } = example(name);
      for (const mode of MODES) {
        const r = sample(model, invariants, bounds(30), { mode, seed: 7 });
        expect(r).toMatchObject({ status: 'clean', exhaustive: false, bound: 'walks', walks: 30, violation: null });
        expect(r.states).toBeGreaterThan(1);
        expect(r.terminals).toBeGreaterThan(0);
      }
    }
  });

  it('stops at the distinct-state bound and says so', () => {
    const r = sample(zap.model, zap.invariants, { ...bounds(1_000), maxStates: 500 }, { mode: 'random', seed: 1 });
    expect(r).toMatchObject({ status: 'clean', exhaustive: false, bound: 'states', states: 500 });
  });

  const races: [string, PolicyOverrides, string][] = [
    ['parallel-faults', { freezeMirrorSpte: false }, 'sept-parent-first'],
    ['zap-during-accept', { zapBusyKickRetry: false }, 'no-failure'],
  ];
  for (const [name, policy, invariant] of races) {
    for (const mode of MODES) {
      it(`${name} with ${Object.keys(policy)[0]} off: ${mode} walks find ${invariant} within 100 walks, and the schedule replays to it`, () => {
        const { model, invariants } = example(name, policy);
        const opts: SampleOptions = { mode, seed: 1 };
        const r = sample(model, invariants, bounds(100), opts);
        expect(r.status).toBe('violation');
        const v = r.violation!;
        expect(v.invariant).toBe(invariant);
        expect(r.exhaustive).toBe(false);
        expect(replayVerdict(model, invariants, v.choices)).toEqual({ invariant: v.invariant, detail: v.detail });
        // The walk that found it, run on its own, finds it again: walks do not depend on each other.
        let once = false;
        const alone = sample(model, invariants, bounds(100), { ...opts, nextWalk: () => (once ? null : ((once = true), v.walk)) });
        expect(alone.violation).toEqual(v);
      });
    }
  }

  it('pct draws its change points from the steps of the oldest-first run, the same for every seed', () => {
    const a = sample(zap.model, zap.invariants, bounds(1), { mode: 'pct', seed: 1 });
    const b = sample(zap.model, zap.invariants, bounds(1), { mode: 'pct', seed: 2 });
    expect(a.pctSteps).toBe(b.pctSteps);
    expect(a.pctSteps).toBeGreaterThan(100);
    expect(sample(zap.model, zap.invariants, bounds(1), { mode: 'random', seed: 1 }).pctSteps).toBeNull();
  });
});
