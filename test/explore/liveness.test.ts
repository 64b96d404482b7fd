/**
 * The non-progress check on hand-built models whose cycles are known (tinyModels.ts): a retry loop a fair
 * scheduler can run for ever is found, with the shortest lasso; a loop that exists only while some message
 * is never delivered is not; a fair loop that must interleave two activities gets both; a system that
 * never quiesces is "no end state is reachable". And the graph it searches is the unreduced one: as many
 * edges as the plain search has transitions, where the sleep sets' explored edges alone miss a finding.
 */
import { describe, expect, it } from 'vitest';
import { explore, type ExploreResult } from '../../src/explore/explore.ts';
import { nonProgress, noFailure } from '../../src/explore/invariants/index.ts';
import { findNonProgress } from '../../src/explore/liveness/nonProgress.ts';
import type { FrozenGraph } from '../../src/explore/liveness/stateGraph.ts';
import { enabledChoices, initialWorld, step } from '../../src/runtime/step.ts';
import type { Model, World } from '../../src/runtime/world.ts';
import { fingerprint } from '../../src/explore/fingerprint.ts';
import { hashKey } from '../../src/explore/structuralHash.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { modelFor } from '../../src/session/session.ts';
import { exampleFile } from '../helpers.ts';
import { model, oneShot, pinger, requester, server, sink, waiter } from './tinyModels.ts';

const BOUNDS = { maxDepth: 1_000, maxStates: 100_000, maxMillis: Number.POSITIVE_INFINITY };

function check(m: Model): { r: ExploreResult; g: FrozenGraph } {
  let g: FrozenGraph | null = null;
  const r = explore(m, [nonProgress], BOUNDS, { onGraph: (x) => (g = x) });
  return { r, g: g! };
}

function after(m: Model, choices: readonly number[]): World {
  let w = initialWorld(m);
  for (const c of choices) w = step(m, w, c, enabledChoices(m, w)).world;
  return w;
}

/** The names delivered along `choices`, from the initial world. */
function names(m: Model, choices: readonly number[]): string[] {
  let w = initialWorld(m);
  return choices.map((c) => {
    const r = step(m, w, c, enabledChoices(m, w));
    w = r.world;
    return `${r.delivered.from}→${r.delivered.to} ${r.delivered.name}`;
  });
}

describe('non-progress on hand-built models', () => {
  it('a retry loop a fair scheduler can run for ever: r asks s, which stays locked; found after the one finite step elsewhere', () => {
    const m = model({ r: requester('s'), s: server('r'), x: sink(), t: oneShot('x', 'TICK') });
    const { r } = check(m);
    expect(r.status).toBe('violation');
    const v = r.violation!;
    expect(v.invariant).toBe('non-progress');
    // At the start TICK is in flight and stays so along REQ/BUSY: unfair; the shortest fair lasso delivers it first.
    expect(v.lasso).toEqual({ loopStart: 1, starving: 'r', retries: 'r repeats REQ' });
    expect(names(m, v.choices)).toEqual(['t→x TICK', 'r→s REQ', 's→r BUSY']);
    expect(v.detail).toBe('r repeats REQ forever (2 steps a turn); r never reaches a state tagged progress (it is in requesting)');
    expect(r.liveness).toMatchObject({ exhaustive: true, findings: 1 });
  });

  it('a loop that exists only while h\'s RELEASE is never delivered is no finding: the fair schedules all end', () => {
    const m = model({ r: requester('s'), s: server('r'), h: oneShot('s', 'RELEASE') });
    const { r, g } = check(m);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, violation: null });
    expect(r.liveness).toMatchObject({ exhaustive: true, findings: 0 });
    expect(r.terminals).toBeGreaterThan(0);
    // The unfair loop is there: REQ/BUSY back to the initial state with RELEASE in flight all along.
    expect(names(m, [0, 0])).toEqual(['r→s REQ', 's→r BUSY']);
    expect(hashKey(fingerprint(m, after(m, [0, 0])))).toBe(hashKey(fingerprint(m, initialWorld(m))));
    expect(g.nodes).toBe(r.states);
  });

  it('a fair loop must interleave: r starves only while y and z ping-pong too, so one turn delivers REQ, BUSY, PING and PONG', () => {
    const m = model({ r: requester('s'), s: server('r'), y: pinger('z', true), z: pinger('y', false) });
    const { r } = check(m);
    const v = r.violation!;
    expect(v.lasso).toMatchObject({ loopStart: 0, starving: 'r' });
    expect(names(m, v.choices).sort()).toEqual(['r→s REQ', 's→r BUSY', 'y→z PING', 'z→y PONG']);
  });

  it('two actors ping-ponging for ever while a third waits for GO: the waiter starves only if GO is never delivered, so the finding is that no end state is reachable', () => {
    const m = model({ a: pinger('b', true), b: pinger('a', false), c: waiter(), g: oneShot('c', 'GO') });
    const { r } = check(m);
    expect(r.terminals).toBe(0);
    const v = r.violation!;
    expect(v.lasso!.starving).not.toBe('c');
    expect(v.lasso!.loopStart).toBe(1);
    expect(names(m, v.choices)[0]).toBe('g→c GO');
    expect(v.detail).toMatch(/^no end state is reachable after step 1: [ab] repeats P[IO]NG forever \(2 steps a turn\), and every schedule from there goes on so$/);
  });

  // The graph of the edges the sleep-set search explores itself misses edges a fair cycle needs and
  // under-counts what is deliverable (the ignoring problem); these two came out of a random search of
  // tiny models (the actor order matters, it decides what the sleep sets prune).
  it('the explored edges alone miss a starving waiter: n, which nobody answers, while p and q ping-pong', () => {
    const m = model({ p: pinger('q', true), q: pinger('p', false), w: waiter(), n: waiter(), g: oneShot('w', 'GO') });
    const { r, g } = check(m);
    expect(r.violation!.lasso).toMatchObject({ loopStart: 1, starving: 'n' });
    expect(names(m, r.violation!.choices)).toEqual(['g→w GO', 'p→q PING', 'q→p PONG']);
    expect(g.pruned.some((x) => x === 1)).toBe(true);
    expect(findNonProgress(exploredOnly(g)).findings).toEqual([]);
  });

  it('the explored edges alone invent a starving requester: r looks stuck on a loop whose RELEASE they never see delivered', () => {
    const m = model({ h: oneShot('s', 'RELEASE'), s: server('r'), g: oneShot('w', 'GO'), w: waiter(), r: requester('s') });
    const { r, g } = check(m);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true });
    const reduced = findNonProgress(exploredOnly(g));
    expect(reduced.findings.map((f) => g.threads[f.thread]!.id)).toEqual(['r']);
  });

  it('a search stopped by its state bound checks the states it expanded and says it was not exhaustive', () => {
    const m = model({ r: requester('s'), s: server('r'), h: oneShot('s', 'RELEASE') });
    const r = explore(m, [nonProgress], { ...BOUNDS, maxStates: 3 });
    expect(r.bound).toBe('states');
    expect(r.liveness).toMatchObject({ exhaustive: false, findings: 0 });
  });
});

/** `g` without the edges the sleep sets pruned: what a liveness check on the reduced search alone would see. */
function exploredOnly(g: FrozenGraph): FrozenGraph {
  const keep: number[] = [];
  const start = new Int32Array(g.nodes + 1);
  for (let v = 0; v < g.nodes; v++) {
    for (let e = g.start[v]!; e < g.start[v + 1]!; e++) if (g.pruned[e] === 0) keep.push(e);
    start[v + 1] = keep.length;
  }
  const pick = <T extends Int32Array | Uint16Array | Uint8Array>(a: T): T => {
    const b = new (a.constructor as new (n: number) => T)(keep.length);
    keep.forEach((e, i) => (b[i] = a[e]!));
    return b;
  };
  return { ...g, edges: keep.length, start, dst: pick(g.dst), channel: pick(g.channel), progress: pick(g.progress), pruned: new Uint8Array(keep.length) };
}

describe('the recorded graph is the unreduced one', () => {
  for (const name of ['private-accept', 'mmio-ve', 'zap-during-accept']) {
    it(`${name}: as many edges as the plain search's transitions, as many nodes as states`, () => {
      const m = modelFor(loadScenarioFile(exampleFile(name)).scenario);
      const plain = explore(m, [noFailure], BOUNDS, { reduction: false });
      let g: FrozenGraph | null = null;
      const r = explore(m, [noFailure, nonProgress], BOUNDS, { onGraph: (x) => (g = x) });
      expect(r.status).toBe('clean');
      expect(r.transitions).toBeLessThan(plain.transitions);
      expect(g!.edges).toBe(plain.transitions);
      expect(g!.nodes).toBe(plain.states);
      expect(g!.complete.every((c) => c === 1)).toBe(true);
    });
  }

  it('accept-level-split without the split: the ACCEPT loop, from the state graph of 326 states', () => {
    const { scenario } = loadScenarioFile(exampleFile('accept-level-split'));
    const m = modelFor(withPolicies(scenario, { splitOnAcceptLevel: false }));
    const r = explore(m, [nonProgress], BOUNDS);
    expect(r.states).toBe(326);
    expect(r.terminals).toBe(0);
    expect(r.violation!.lasso).toEqual({ loopStart: 122, starving: 'guest.vcpu0', retries: 'kvm.vcpu0 re-enters TDH.VP.ENTER into EPT_VIOLATION (TD exit) at GPA 0x200000' });
    expect(r.violation!.choices).toHaveLength(137);
  });
});
