/**
 * Interrupts of a TD vCPU (examples hlt-wakeup, mapgpa-interrupt, nmi-during-ve): the message sequences
 * FIFO takes, the state each flow leaves behind, and the searches — clean and exhaustive with upstream's
 * policies; with hltChecksVmxip or mapGpaEventCheck off a minimal counterexample that replays.
 */
import { describe, expect, it } from 'vitest';
import { arrows, payload, runScenario } from '../helpers.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor, headerFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { runModelEvents } from '../../src/session/run.ts';
import { explore } from '../../src/explore/explore.ts';
import { invariantsOf, noDeadlock } from '../../src/explore/invariants/index.ts';
import { minimise } from '../../src/explore/minimise.ts';
import { contextOf } from '../../src/explore/invariants/invariant.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { POSTED_INTR_VECTOR, RESCHEDULE_VECTOR } from '../../src/arch/vmx.ts';
import { TDVMCALL_STATUS_RETRY } from '../../src/arch/tdcall.ts';
import { exampleFile } from '../helpers.ts';
import { runModel } from '../../src/runtime/runner.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import type { PolicyOverrides } from '../../src/policies.ts';
import type { GuestVcpuContext } from '../../machines/guest/guestVcpu.ts';
import type { CpuContext } from '../../machines/hw/cpu.ts';
import type { KvmVcpuContext } from '../../machines/kvm/kvmVcpu.ts';
import type { Gprs } from '../../src/protocol/messages.ts';
import { formatActorState } from '../../src/session/stateView.ts';
import { actorView } from '../../src/runtime/worldHash.ts';

const UNBOUNDED = { maxDepth: 10_000, maxStates: 2_000_000, maxMillis: Number.POSITIVE_INFINITY };
const scenarioOf = (name: string, policy: PolicyOverrides = {}) => withPolicies(loadScenarioFile(exampleFile(name)).scenario, policy);
const declared = (name: string) => invariantsOf(loadScenarioFile(exampleFile(name)).scenario.invariants);
const search = (name: string) => explore(modelFor(scenarioOf(name)), declared(name), UNBOUNDED);
/** The world FIFO leaves at the end. */
const finalWorld = (name: string) => {
  const model = modelFor(scenarioOf(name));
  return { model, world: runModel(model, { scheduler: fifoScheduler() }).world };
};

/** The search with `policy`: the violation minimised, written as an explore log and replayed with --verify. */
function counterexample(name: string, policy: PolicyOverrides) {
  const scenario = scenarioOf(name, policy);
  const model = modelFor(scenario);
  const invariants = declared(name);
  const found = explore(model, invariants, UNBOUNDED).violation!;
  const inv = invariants.find((i) => i.name === found.invariant)!;
  const m = minimise(model, inv, { maxStates: 1_000_000, maxDepth: found.choices.length });
  if (m.status !== 'minimal') throw new Error(`not minimised: ${m.status}`);
  const { choices, preemptions, detail } = m.counterexample;
  const file = `${name}.counterexample.log.jsonl`;
  const writer = MemoryLogWriter.open(headerFor(scenario, `examples/${name}/scenario.yaml`, { kind: 'explore' }), file);
  const violation = { invariant: inv.name, ...(inv.bound !== undefined ? { bound: inv.bound } : {}), detail };
  runModelEvents(model, scenario, { choices, maxSteps: choices.length, log: writer, violation }).subscribe(() => {});
  writer.close();
  const replay = replayLog(parseLogText(writer.text(), file), file, { verify: true });
  return { model, invariant: found.invariant, steps: choices.length, preemptions, detail, replay, log: writer.text() };
}

describe('hlt-wakeup: tdx_safe_halt and a device MSI', () => {
  const run = runScenario(scenarioOf('hlt-wakeup'));
  const seq = arrows(run);
  const from = seq.indexOf('vmm → kvm.vcpu0 KVM_RUN');

  it('FIFO: the MSI is posted before the entry (no IPI, ON set), the entry self-IPIs, the CPU exchanges the PIR at the CLI boundary; HLT with R12 = 0 finds ON clear, TDH.VP.RD says VMXIP, KVM enters again; STI, and the interrupt lands on the spin', () => {
    expect(run.outcome.status).toBe('ok');
    expect(seq.slice(from)).toEqual([
      'vmm → kvm.vcpu0 KVM_RUN',
      'vmm → kvm.vcpu0 KVM_SIGNAL_MSI',
      'kvm.vcpu0 → tdx TDH.VP.ENTER',
      'kvm.vcpu0 → hw.cpu0 IPI',
      'kvm.vcpu0 → vmm KVM_SIGNAL_MSI',
      'tdx → tdx ENTER_EPOCH',
      'tdx → hw.cpu0 INVEPT',
      'hw.cpu0 → guest.vcpu0 VMLAUNCH',
      'guest.vcpu0 → hw.cpu0 CLI',
      'hw.cpu0 → kvm.vcpu0 PIR_XCHG',
      'hw.cpu0 → guest.vcpu0 RETIRE',
      'kvm.vcpu0 → hw.cpu0 PIR',
      'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<Instruction.HLT>',
      'hw.cpu0 → tdx TDG.VP.VMCALL<Instruction.HLT>',
      'tdx → kvm.vcpu0 TDCALL',
      'kvm.vcpu0 → tdx TDH.VP.RD',
      'tdx → hw.cpu0 GUEST_INTERRUPT_STATUS_GET',
      'hw.cpu0 → tdx GUEST_INTERRUPT_STATUS',
      'tdx → kvm.vcpu0 TDH.VP.RD',
      'kvm.vcpu0 → tdx TDH.VP.ENTER',
      'tdx → tdx ENTER_EPOCH',
      'tdx → guest.vcpu0 VMRESUME',
      'guest.vcpu0 → hw.cpu0 STI',
      'hw.cpu0 → guest.vcpu0 RETIRE',
      'guest.vcpu0 → hw.cpu0 SPIN',
      'hw.cpu0 → guest.vcpu0 VIRTUAL_INTERRUPT',
      'guest.vcpu0 → hw.cpu0 EOI',
      'guest.vcpu0 → hw.cpu0 IRET',
    ]);
    const at = (name: string) => from + 1 + seq.slice(from).indexOf(name);
    expect(payload(run, at('vmm → kvm.vcpu0 KVM_SIGNAL_MSI'))).toEqual({ vcpu: 0, address_lo: 0xfee00000, address_hi: 0, data: 0x30, flags: 0 });
    expect(payload(run, at('kvm.vcpu0 → hw.cpu0 IPI'))).toEqual({ vcpu: 0, requester: null, vector: POSTED_INTR_VECTOR });
    expect(payload(run, at('kvm.vcpu0 → hw.cpu0 PIR'))).toEqual({ vcpu: 0, pir: 1n << 0x30n });
    expect(payload<Gprs>(run, at('guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<Instruction.HLT>')).R12).toBe(0n);
    expect(payload(run, at('kvm.vcpu0 → tdx TDH.VP.RD'))).toEqual({ RCX: 0x100010000n, RDX: 0x9100000000000100n });
    expect(payload(run, at('hw.cpu0 → tdx GUEST_INTERRUPT_STATUS'))).toEqual({ vcpu: 0, rvi: 0x30, svi: 0, virr: 1n << 0x30n });
    expect(payload(run, at('tdx → kvm.vcpu0 TDH.VP.RD'))).toEqual({ RAX: 0n, R8: 1n });
    expect(payload(run, at('hw.cpu0 → guest.vcpu0 VIRTUAL_INTERRUPT'))).toEqual({ vcpu: 0, vector: 0x30, rip: 0xffffffff81000002n });
  });

  it('after it: the handler took 0x30 once, the virtual APIC is empty again, IF = 1, the descriptor clear, the guest spins', () => {
    const { model, world: w } = finalWorld('hlt-wakeup');
    expect(contextOf<GuestVcpuContext>(model, w, 'guest.vcpu0').interrupts).toEqual([0x30]);
    const cpu = contextOf<CpuContext>(model, w, 'hw.cpu0');
    expect(cpu).toMatchObject({ rflagsIf: true, vapic: { virr: 0n, isr: 0n, rvi: 0, svi: 0 }, piNotification: false, pirInFlight: false, interrupted: null, spinRip: 0xffffffff81000002n });
    expect(contextOf<KvmVcpuContext>(model, w, 'kvm.vcpu0').piDesc).toEqual({ pir: 0n, on: false });
  });

  it("the state panel shows the interrupt state by name, vectors and registers in hex", () => {
    const { model, world } = finalWorld('hlt-wakeup');
    const panel = (id: string) => formatActorState(id, actorView(world, model.indexOf.get(id)!), { mmioValue: 0n }).join('\n');
    expect(panel('hw.cpu0')).toContain('  rflagsIf: true');
    expect(panel('hw.cpu0')).toContain('  vapic: {virr: 0x0, isr: 0x0, rvi: 0x0, svi: 0x0}');
    expect(panel('hw.cpu0')).toContain('  pendNmi: false');
    expect(panel('kvm.vcpu0')).toContain('  piDesc: {pir: 0x0, on: false}');
    expect(panel('guest.vcpu0')).toContain('  interrupts: [0x30]');
  });

  it('default: clean and exhaustive; in every end state the handler ran once', () => {
    const ends: number[][] = [];
    const model = modelFor(scenarioOf('hlt-wakeup'));
    const r = explore(model, [...declared('hlt-wakeup'), { name: 'ends', description: '', check: (m, _b, a) => (a.pending.length === 0 && ends.push([...contextOf<GuestVcpuContext>(m, a, 'guest.vcpu0').interrupts]), null) }], UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 1132 });
    expect(ends.length).toBeGreaterThan(0);
    expect(ends.every((e) => e.length === 1 && e[0] === 0x30)).toBe(true);
  });

  it('hltChecksVmxip off: the interrupt already taken into vIRR is invisible to the descriptor check — a lost wake-up (74 steps, 2 preemptions), which replays', () => {
    const c = counterexample('hlt-wakeup', { hltChecksVmxip: false });
    expect(c).toMatchObject({ invariant: 'no-lost-wakeup', steps: 74, preemptions: 2 });
    expect(c.detail).toBe('lost wake-up: kvm.vcpu0 is blocked in HLT (kvm_vcpu_halt) although its guest halted with interrupts enabled (R12 = 0) and vector 0x30 is pending for it (VMXIP)');
    expect(c.replay.verified).toBe(true);
    // Left alone the blocked vCPU never runs its guest again, and nothing is in flight: no-deadlock names it too.
    const model = modelFor(scenarioOf('hlt-wakeup', { hltChecksVmxip: false }));
    expect(explore(model, [noDeadlock], UNBOUNDED).violation?.detail).toBe('deadlock: nothing in flight, but kvm.vcpu0 in halted');
  });
});

describe('timer-wakeup: the LAPIC timer on the logical clock', () => {
  it('FIFO: the first KVM_RUN arms it (apic_timer_fn to itself), its expiry posts 0xec like an MSI, and the handler takes it', () => {
    const run = runScenario(scenarioOf('timer-wakeup'));
    const seq = arrows(run);
    const from = seq.indexOf('vmm → kvm.vcpu0 KVM_RUN');
    expect(seq.slice(from, from + 4)).toEqual(['vmm → kvm.vcpu0 KVM_RUN', 'kvm.vcpu0 → kvm.vcpu0 apic_timer_fn', 'kvm.vcpu0 → tdx TDH.VP.ENTER', 'kvm.vcpu0 → hw.cpu0 IPI']);
    expect(payload(run, seq.indexOf('kvm.vcpu0 → hw.cpu0 PIR') + 1)).toEqual({ vcpu: 0, pir: 1n << 0xecn });
    const { model, world } = finalWorld('timer-wakeup');
    expect(contextOf<GuestVcpuContext>(model, world, 'guest.vcpu0').interrupts).toEqual([0xec]);
    expect(contextOf<KvmVcpuContext>(model, world, 'kvm.vcpu0').lapicTimer).toEqual({ vector: 0xec, armed: true });
  });

  it('default: clean and exhaustive; hltChecksVmxip off: the vCPU blocks with 0xec in vIRR, nothing in flight (77 steps, no preemption), which replays', () => {
    expect(search('timer-wakeup')).toMatchObject({ status: 'clean', exhaustive: true, states: 670 });
    const c = counterexample('timer-wakeup', { hltChecksVmxip: false });
    expect(c).toMatchObject({ invariant: 'no-deadlock', steps: 77, preemptions: 0 });
    expect(c.detail).toBe('deadlock: nothing in flight, but kvm.vcpu0 in halted');
    expect(c.replay.verified).toBe(true);
  });
});

describe('mapgpa-interrupt: an interrupt posted during an 8 MiB MapGPA', () => {
  it('default: clean and exhaustive; some schedule stops the walk with RETRY and resumes from R11', () => {
    let retries = 0;
    const model = modelFor(scenarioOf('mapgpa-interrupt'));
    const r = explore(
      model,
      [
        ...declared('mapgpa-interrupt'),
        { name: 'retry', description: '', check: (_m, _b, _a, d) => ((d.name === 'TDH.VP.ENTER' && (d.payload as Gprs).R10 === BigInt(TDVMCALL_STATUS_RETRY) && retries++), null) },
      ],
      UNBOUNDED,
    );
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 5208 });
    expect(retries).toBeGreaterThan(0);
  });

  it('mapGpaEventCheck off: the next chunk goes to userspace with the interrupt posted (87 steps, 1 preemption), which replays', () => {
    const c = counterexample('mapgpa-interrupt', { mapGpaEventCheck: false });
    expect(c).toMatchObject({ invariant: 'interrupt-latency', steps: 87, preemptions: 1 });
    expect(c.detail).toBe('vCPU 0 handed 1 MapGPA chunk to userspace (KVM_EXIT_HYPERCALL) while an interrupt was posted to it (ON set, PIR 0x1000000000000), more than the bound of 0');
    expect(c.replay.verified).toBe(true);
  });
});

describe('nmi-during-ve: KVM_NMI, PEND_NMI, and VE_INFO', () => {
  const run = runScenario(scenarioOf('nmi-during-ve'));
  const seq = arrows(run);

  it('FIFO: the kick is a reschedule IPI, KVM writes PEND_NMI (management field 11) before entering again, the NMI comes at the load and its IRET runs the load', () => {
    expect(run.outcome.status).toBe('ok');
    const i = seq.indexOf('kvm.vcpu0 → tdx TDH.VP.WR', seq.indexOf('vmm → kvm.vcpu0 KVM_NMI'));
    expect(payload(run, seq.indexOf('kvm.vcpu0 → hw.cpu0 IPI', seq.indexOf('vmm → kvm.vcpu0 KVM_NMI')) + 1)).toEqual({ vcpu: 0, requester: null, vector: RESCHEDULE_VECTOR });
    expect(payload(run, i + 1)).toEqual({ RCX: 0x100010000n, RDX: 0x200000000000000bn, R8: 1n, R9: 0xffn });
    expect(seq.slice(i, i + 9)).toEqual([
      'kvm.vcpu0 → tdx TDH.VP.WR',
      'tdx → hw.cpu0 PEND_NMI',
      'tdx → kvm.vcpu0 TDH.VP.WR',
      'kvm.vcpu0 → tdx TDH.VP.ENTER',
      'tdx → tdx ENTER_EPOCH',
      'tdx → guest.vcpu0 VMRESUME',
      'guest.vcpu0 → hw.cpu0 LOAD',
      'hw.cpu0 → guest.vcpu0 NMI',
      'guest.vcpu0 → hw.cpu0 IRET',
    ]);
    const { model, world } = finalWorld('nmi-during-ve');
    expect(contextOf<GuestVcpuContext>(model, world, 'guest.vcpu0')).toMatchObject({ nmis: 1, regs: { rax: 0x1af41000n } });
  });

  it('every schedule: clean and exhaustive, one NMI, never while VE_INFO is valid, and some schedule holds it back until TDG.VP.VEINFO.GET', () => {
    let held = 0;
    let duringVe = 0;
    const model = modelFor(scenarioOf('nmi-during-ve'));
    const r = explore(
      model,
      [
        ...declared('nmi-during-ve'),
        {
          name: 'nmi',
          description: '',
          check: (m, b, _a, d) => {
            const cpu = contextOf<CpuContext>(m, b, 'hw.cpu0');
            if (d.name === 'NMI' && cpu.veInfo.valid !== 0) duringVe++;
            if (d.name === 'TDG.VP.VEINFO.GET' && d.to === 'hw.cpu0' && cpu.pendNmi) held++;
            return null;
          },
        },
      ],
      UNBOUNDED,
    );
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 2148 });
    expect(duringVe).toBe(0);
    expect(held).toBeGreaterThan(0);
  });
});
