/**
 * The persistent-set reduction (src/explore/reduction.ts) changes no verdict: on every bundled example,
 * with its invariants and with the fixes its README switches off, the reduced search and the full one
 * (sleep sets only) find a violation of the same invariant or are both clean with the same end states,
 * and the reduced one visits no more states. Its topology is learnt and checked: started from the initial
 * world's channels alone, it restarts on every channel it meets and still counts the same states.
 */
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { explore, type ExploreResult } from '../../src/explore/explore.ts';
import { invariantsOf, noDeadlock, noFailure, type Invariant } from '../../src/explore/invariants/index.ts';
import type { PolicyOverrides } from '../../src/policies.ts';
import { ALL_EXAMPLES, exampleFile } from '../helpers.ts';

const BOUNDS = { maxDepth: 10_000, maxStates: 400_000, maxMillis: Number.POSITIVE_INFINITY };

/** The fixes the examples' READMEs switch off to show their races. */
const SWITCHED_OFF: readonly [string, PolicyOverrides][] = [
  ['accept-level-split', { splitOnAcceptLevel: false }],
  ['mapgpa-vs-touch', { staleFaultCheck: false }],
  ['parallel-faults', { freezeMirrorSpte: false }],
  ['parallel-faults', { localRetry: false }],
  ['parallel-touches', { localRetry: false }],
  ['zap-during-accept', { zapBusyKickRetry: false }],
  ['zap-during-accept', { kickAfterTrack: false }],
  ['zap-during-accept', { busyLeavesFastpath: false }],
];

/** The example's declared invariants (or the defaults) without non-progress, which turns the reduction off. */
const safetyOf = (name: string): Invariant[] => invariantsOf(loadScenarioFile(exampleFile(name)).scenario.invariants).filter((i) => i.liveness !== true);

function both(name: string, policy: PolicyOverrides, invariants: Invariant[]): [ExploreResult, ExploreResult] {
  const model = () => modelFor(withPolicies(loadScenarioFile(exampleFile(name)).scenario, policy));
  return [explore(model(), invariants, BOUNDS), explore(model(), invariants, BOUNDS, { persistentSets: true })];
}

function expectSameVerdict(full: ExploreResult, reduced: ExploreResult): void {
  expect(reduced.persistentSets).not.toBeNull();
  if (full.status === 'violation') {
    expect(reduced.status).toBe('violation');
    expect(reduced.violation!.invariant).toBe(full.violation!.invariant);
    return;
  }
  // A full search cut by the state bound says nothing about the states it did not reach.
  if (!full.exhaustive) return;
  expect(reduced).toMatchObject({ status: 'clean', exhaustive: true, terminals: full.terminals });
  expect(reduced.states).toBeLessThanOrEqual(full.states);
}

describe('persistent sets', () => {
  // accept-level-two-vcpus (562,477 states in full) is past the bound; parallel-faults below covers two vCPUs.
  for (const name of ALL_EXAMPLES.filter((n) => n !== 'accept-level-two-vcpus')) {
    it(`${name}: the same verdict and end states as sleep sets alone, in no more states, with its invariants and with no-failure`, () => {
      for (const invariants of [safetyOf(name), [noFailure]]) {
        const [full, reduced] = both(name, {}, invariants);
        expectSameVerdict(full, reduced);
      }
    });
  }

  for (const [name, policy] of SWITCHED_OFF) {
    it(`${name} with ${Object.keys(policy)[0]} off: the same invariant breaks`, () => {
      const [full, reduced] = both(name, policy, safetyOf(name));
      expectSameVerdict(full, reduced);
    });
  }

  // Since the TLB, the module's INVEPT at a first entry reaches the CPU and the CPU passes VMLAUNCH on, and the
  // module answers a guest's TDCALLs itself, so each guest and CPU has two senders and only hw.mem has one. A
  // guest's or CPU's message still goes alone where the learnt causality shows that nothing in flight can
  // lead to a message to it from its other sender first (reduction.ts, P1′): the module answers a guest only
  // what that guest's CPU handed it, and one vCPU's types are not the other's.
  it('parallel-faults: guests and CPUs go alone again — 29,625 states instead of 59,643 with no-failure, 42,368 with its invariants; every end state kept', () => {
    const [full, reduced] = both('parallel-faults', {}, [noFailure]);
    expect([full.states, full.terminals]).toEqual([59_643, 8]);
    expect([reduced.states, reduced.terminals]).toEqual([29_625, 8]);
    const [fullDeclared, reducedDeclared] = both('parallel-faults', {}, safetyOf('parallel-faults'));
    expect([fullDeclared.states, reducedDeclared.states, reducedDeclared.terminals]).toEqual([59_643, 42_368, 8]);
  });

  // no-deadlock had no footprint (its wait-for graph is read at every delivery), which made every delivery
  // visible and turned the reduction off wherever it was checked; its footprint is KVM's threads and the VMM.
  it('parallel-faults with no-deadlock: reduced (39,352 states instead of 59,643), the same end states', () => {
    const [full, reduced] = both('parallel-faults', {}, [noFailure, noDeadlock]);
    expect([full.states, full.terminals, full.status]).toEqual([59_643, 8, 'clean']);
    expect([reduced.states, reduced.terminals, reduced.status]).toEqual([39_352, 8, 'clean']);
  });

  it('learns the topology and the causality as it goes: from the initial channels alone it restarts on each new channel or cause and counts the same states', () => {
    const model = () => modelFor(loadScenarioFile(exampleFile('parallel-faults')).scenario);
    const learnt = explore(model(), [noFailure], BOUNDS, { persistentSets: true });
    const blind = explore(model(), [noFailure], BOUNDS, { persistentSets: { walks: 0 } });
    // The 64 walks miss two causes the search then meets.
    expect(learnt.persistentSets!.restarts).toBe(2);
    expect(blind.persistentSets!.restarts).toBeGreaterThan(100);
    expect(blind.persistentSets!.channels).toBe(learnt.persistentSets!.channels);
    expect([blind.states, blind.terminals, blind.status]).toEqual([learnt.states, learnt.terminals, learnt.status]);
  });

  it('is left off, and says why, when non-progress is checked', () => {
    const model = modelFor(loadScenarioFile(exampleFile('parallel-faults')).scenario);
    const r = explore(model, invariantsOf(undefined), BOUNDS, { persistentSets: true });
    expect(r.reductionOff).toBe('non-progress needs the unreduced state graph');
    expect(r.states).toBe(59_643);
  });
});
