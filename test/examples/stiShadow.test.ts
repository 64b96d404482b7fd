/**
 * Blocking by STI on a TD vCPU and the tdx_safe_halt of Linux before v6.3 (policy safeHaltStiAfterTdcall
 * off: `sti; tdcall`, TDX_HCALL_ISSUE_STI): the interrupt already in vIRR is held back at the TDCALL's
 * boundary by the STI shadow, so the HLT TDVMCALL reaches KVM, whose VMXIP check keeps the vCPU runnable,
 * and the interrupt is taken after the TDCALL returns with interrupts on.
 */
import { describe, expect, it } from 'vitest';
import { arrows, exampleFile, payload, runScenario } from '../helpers.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { explore } from '../../src/explore/explore.ts';
import { invariantsOf } from '../../src/explore/invariants/index.ts';
import { contextOf } from '../../src/explore/invariants/invariant.ts';
import type { GuestVcpuContext } from '../../machines/guest/guestVcpu.ts';
import type { Gprs } from '../../src/protocol/messages.ts';

const scenarioOf = (name: string) => withPolicies(loadScenarioFile(exampleFile(name)).scenario, { safeHaltStiAfterTdcall: false });

describe('sti; tdcall (safeHaltStiAfterTdcall off)', () => {
  it('FIFO hlt-wakeup: 0x30 is in vIRR when the guest issues STI, yet the HLT TDCALL right after it still leaves (the shadow); VMXIP = 1, and the interrupt comes after the TDCALL returns, with no STI after it', () => {
    const run = runScenario(scenarioOf('hlt-wakeup'));
    const seq = arrows(run);
    expect(run.outcome.status).toBe('ok');
    const sti = seq.indexOf('guest.vcpu0 → hw.cpu0 STI');
    const pir = seq.indexOf('kvm.vcpu0 → hw.cpu0 PIR');
    expect(pir).toBeLessThan(sti);
    expect(seq.slice(sti, sti + 4)).toEqual(['guest.vcpu0 → hw.cpu0 STI', 'hw.cpu0 → guest.vcpu0 RETIRE', 'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<Instruction.HLT>', 'hw.cpu0 → tdx TDG.VP.VMCALL<Instruction.HLT>']);
    expect(payload<Gprs>(run, sti + 3).R12).toBe(0n);
    expect(payload(run, seq.indexOf('hw.cpu0 → tdx GUEST_INTERRUPT_STATUS') + 1)).toEqual({ vcpu: 0, rvi: 0x30, svi: 0, virr: 1n << 0x30n });
    expect(payload(run, seq.indexOf('tdx → kvm.vcpu0 TDH.VP.RD') + 1)).toEqual({ RAX: 0n, R8: 1n });
    const resumed = seq.indexOf('tdx → guest.vcpu0 VMRESUME', sti);
    expect(seq.slice(resumed)).toEqual(['tdx → guest.vcpu0 VMRESUME', 'guest.vcpu0 → hw.cpu0 SPIN', 'hw.cpu0 → guest.vcpu0 VIRTUAL_INTERRUPT', 'guest.vcpu0 → hw.cpu0 EOI', 'guest.vcpu0 → hw.cpu0 IRET']);
    expect(seq.filter((a) => a === 'guest.vcpu0 → hw.cpu0 STI')).toHaveLength(1);
  });

  it.each([
    ['hlt-wakeup', 1024],
    ['ipi-wakeup', 3640],
  ])('%s: clean and exhaustive (%i states); the handler took the vector once in every end state', (name, states) => {
    const model = modelFor(scenarioOf(name));
    const ends: number[][] = [];
    const invariants = invariantsOf(loadScenarioFile(exampleFile(name)).scenario.invariants);
    const r = explore(model, [...invariants, { name: 'ends', description: '', check: (m, _b, a) => (a.pending.length === 0 && ends.push([...contextOf<GuestVcpuContext>(m, a, 'guest.vcpu0').interrupts]), null) }], { maxDepth: 10_000, maxStates: 100_000, maxMillis: Number.POSITIVE_INFINITY });
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states });
    expect(ends.length).toBeGreaterThan(0);
    expect(ends.every((e) => e.length === 1)).toBe(true);
  });
});
