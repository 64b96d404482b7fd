/**
 * KVM's adaptive halt-polling on a TD vCPU (example halt-poll, policy haltPollNs): the first halt blocks
 * at once, the window it leaves makes the second halt poll (its end a kvm_vcpu_can_poll message) with the
 * TD's check (ON, TDH.VP.RD of VMXIP) on each pass; halt_poll_ns 0 never polls; the search is clean.
 */
import { describe, expect, it } from 'vitest';
import { arrows, exampleFile, payload, runScenario } from '../helpers.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { explore } from '../../src/explore/explore.ts';
import { invariantsOf } from '../../src/explore/invariants/index.ts';
import { contextOf } from '../../src/explore/invariants/invariant.ts';
import { runModel } from '../../src/runtime/runner.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import { DEFAULT_POLICIES, type PolicyOverrides } from '../../src/policies.ts';
import type { GuestVcpuContext } from '../../machines/guest/guestVcpu.ts';
import type { KvmVcpuContext } from '../../machines/kvm/kvmVcpu.ts';

const NAME = 'halt-poll';
const scenarioOf = (policy: PolicyOverrides = {}) => withPolicies(loadScenarioFile(exampleFile(NAME)).scenario, policy);
const vmxipReads = (seq: string[]) => seq.filter((a) => a === 'kvm.vcpu0 → tdx TDH.VP.RD').length;

describe('halt-poll: two halts of one vCPU, two IPIs', () => {
  it('haltPollNs defaults to KVM_HALT_POLL_NS_DEFAULT (200000 ns)', () => {
    expect(DEFAULT_POLICIES.haltPollNs).toBe(200000);
  });

  it('FIFO: the first halt blocks without a poll window; the second polls — its window ends (kvm_vcpu_can_poll), the last check reads VMXIP again, the IPI posted meanwhile wakes the loop', () => {
    const run = runScenario(scenarioOf());
    const seq = arrows(run);
    expect(run.outcome.status).toBe('ok');
    const halts = seq.flatMap((a, i) => (a === 'tdx → kvm.vcpu0 TDCALL' ? [i] : []));
    expect(halts).toHaveLength(2);
    const polls = seq.flatMap((a, i) => (a === 'kvm.vcpu0 → kvm.vcpu0 kvm_vcpu_can_poll' ? [i] : []));
    expect(polls).toHaveLength(1);
    expect(polls[0]!).toBeGreaterThan(halts[1]!);
    expect(payload(run, polls[0]! + 1)).toEqual({ vcpu: 0, window: 1 });
    // One VMXIP read before the first block; two in the second halt: before polling and after the window.
    expect(vmxipReads(seq.slice(0, halts[1]))).toBe(1);
    expect(vmxipReads(seq.slice(halts[1]))).toBe(2);
    expect(seq.indexOf('kvm.vcpu0 → tdx TDH.VP.RD', polls[0]!)).toBe(polls[0]! + 2);
  });

  it('after it: both vectors handled in order; the first halt blocked, so the window grew to 10 µs; the second ended while checking, so it stayed', () => {
    const model = modelFor(scenarioOf());
    const w = runModel(model, { scheduler: fifoScheduler() }).world;
    expect(contextOf<GuestVcpuContext>(model, w, 'guest.vcpu0').interrupts).toEqual([0xfd, 0xfc]);
    expect(contextOf<KvmVcpuContext>(model, w, 'kvm.vcpu0').haltPoll).toEqual({ ns: 10000, window: 'none', windows: 1, blocked: false });
  });

  it('haltPollNs 0: no window ever opens, the second halt checks once and blocks like the first', () => {
    const run = runScenario(scenarioOf({ haltPollNs: 0 }));
    const seq = arrows(run);
    expect(run.outcome.status).toBe('ok');
    expect(seq.some((a) => a.endsWith('kvm_vcpu_can_poll'))).toBe(false);
    expect(vmxipReads(seq)).toBe(2);
    const model = modelFor(scenarioOf({ haltPollNs: 0 }));
    expect(contextOf<KvmVcpuContext>(model, runModel(model, { scheduler: fifoScheduler() }).world, 'kvm.vcpu0').haltPoll.ns).toBe(0);
  });

  it('default: clean and exhaustive (118,094 states); in every end state vCPU 0 took 0xfd, then 0xfc', () => {
    const ends: number[][] = [];
    const model = modelFor(scenarioOf());
    const invariants = invariantsOf(loadScenarioFile(exampleFile(NAME)).scenario.invariants);
    const r = explore(model, [...invariants, { name: 'ends', description: '', check: (m, _b, a) => (a.pending.length === 0 && ends.push([...contextOf<GuestVcpuContext>(m, a, 'guest.vcpu0').interrupts]), null) }], {
      maxDepth: 10_000,
      maxStates: 200_000,
      maxMillis: Number.POSITIVE_INFINITY,
    });
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 118094 });
    expect(ends.length).toBeGreaterThan(0);
    expect([...new Set(ends.map((e) => e.map((v) => v.toString(16)).join(',')))]).toEqual(['fd,fc']);
  });
});
