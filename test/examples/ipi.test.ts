/**
 * Guest-to-guest IPIs in a TD (example ipi-wakeup): the x2APIC ICR write → MSR_WRITE exit → the module's
 * #VE → TDG.VP.VMCALL<Instruction.WRMSR> → KVM's kvm_apic_send_ipi posting to the destination's descriptor;
 * the search clean with upstream's policies and, with hltChecksVmxip off, the lost wake-up minimised and
 * replayed; the loader's checks of the op.
 */
import { describe, expect, it } from 'vitest';
import { arrows, exampleFile, payload, runScenario } from '../helpers.ts';
import { loadScenarioFile, parseScenarioText, ScenarioError } from '../../src/scenario/load.ts';
import { modelFor, headerFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { runModelEvents } from '../../src/session/run.ts';
import { explore } from '../../src/explore/explore.ts';
import { invariantsOf } from '../../src/explore/invariants/index.ts';
import { minimise } from '../../src/explore/minimise.ts';
import { contextOf } from '../../src/explore/invariants/invariant.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { runModel } from '../../src/runtime/runner.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import { POSTED_INTR_VECTOR, RESCHEDULE_VECTOR } from '../../src/arch/vmx.ts';
import type { PolicyOverrides } from '../../src/policies.ts';
import type { GuestVcpuContext } from '../../machines/guest/guestVcpu.ts';
import type { KvmVcpuContext } from '../../machines/kvm/kvmVcpu.ts';
import type { CpuContext } from '../../machines/hw/cpu.ts';

const NAME = 'ipi-wakeup';
const UNBOUNDED = { maxDepth: 10_000, maxStates: 200_000, maxMillis: Number.POSITIVE_INFINITY };
const scenarioOf = (policy: PolicyOverrides = {}) => withPolicies(loadScenarioFile(exampleFile(NAME)).scenario, policy);
const declared = () => invariantsOf(loadScenarioFile(exampleFile(NAME)).scenario.invariants);

describe('ipi-wakeup: vCPU 1 wakes vCPU 0 from tdx_safe_halt with RESCHEDULE_VECTOR', () => {
  const run = runScenario(scenarioOf());
  const seq = arrows(run);
  const from = seq.indexOf('guest.vcpu1 → hw.cpu1 WRMSR');
  const at = (name: string, after = from) => seq.indexOf(name, after) + 1;

  it('FIFO: WRMSR 0x830 → MSR_WRITE exit → #VE (exit reason 32, length 2) → TDG.VP.VMCALL<Instruction.WRMSR> → kvm_apic_send_ipi, which notifies vCPU 0 and returns before vCPU 1 re-enters', () => {
    expect(run.outcome.status).toBe('ok');
    const ipiPath = seq.slice(from).filter((a) => a.includes('vcpu1') || a.includes('cpu1') || a.includes('kvm_apic_send_ipi'));
    expect(ipiPath).toEqual([
      'guest.vcpu1 → hw.cpu1 WRMSR',
      'hw.cpu1 → tdx MSR_WRITE',
      'tdx → hw.cpu1 VE_INJECT',
      'hw.cpu1 → guest.vcpu1 #VE',
      'guest.vcpu1 → hw.cpu1 TDG.VP.VEINFO.GET',
      'hw.cpu1 → tdx TDG.VP.VEINFO.GET',
      'tdx → hw.cpu1 VE_INFO_GET',
      'hw.cpu1 → tdx VE_INFO',
      'tdx → guest.vcpu1 TDG.VP.VEINFO.GET',
      'guest.vcpu1 → hw.cpu1 TDG.VP.VMCALL<Instruction.WRMSR>',
      'hw.cpu1 → tdx TDG.VP.VMCALL<Instruction.WRMSR>',
      'tdx → kvm.vcpu1 TDCALL',
      'kvm.vcpu1 → kvm.vcpu0 kvm_apic_send_ipi',
      'kvm.vcpu0 → kvm.vcpu1 kvm_apic_send_ipi',
      'kvm.vcpu1 → tdx TDH.VP.ENTER',
      'tdx → guest.vcpu1 VMRESUME',
      'guest.vcpu1 → hw.cpu1 SPIN',
    ]);
    expect(payload(run, at('guest.vcpu1 → hw.cpu1 WRMSR', 0))).toEqual({ vcpu: 1, rip: 0xffffffff81000000n, msr: 0x830, value: 0xfdn, length: 2 });
    expect(payload(run, at('hw.cpu1 → tdx MSR_WRITE'))).toEqual({ vcpu: 1, exitReason: 32, rip: 0xffffffff81000000n, insnLength: 2 });
    expect(payload(run, at('tdx → hw.cpu1 VE_INJECT'))).toEqual({ vcpu: 1, exitReason: 32, exitQualification: 0n, gla: 0n, gpa: 0n, instrLength: 2 });
    expect(payload(run, at('tdx → guest.vcpu1 TDG.VP.VEINFO.GET'))).toMatchObject({ RAX: 0n, RCX: 0x20n, RDX: 0n, R10: 2n });
    expect(payload(run, at('guest.vcpu1 → hw.cpu1 TDG.VP.VMCALL<Instruction.WRMSR>'))).toMatchObject({ R10: 0n, R11: 0x20n, R12: 0x830n, R13: 0xfdn });
    expect(payload(run, at('kvm.vcpu1 → kvm.vcpu0 kvm_apic_send_ipi'))).toEqual({ vcpu: 0, source: 1, icr: 0xfdn, vector: RESCHEDULE_VECTOR });
    // vCPU 0 is inside TDH.VP.ENTER when the post lands: the notification vector goes to its CPU.
    expect(payload(run, at('kvm.vcpu0 → hw.cpu0 IPI'))).toEqual({ vcpu: 0, requester: null, vector: POSTED_INTR_VECTOR });
    expect(payload(run, at('kvm.vcpu1 → tdx TDH.VP.ENTER')).R10).toBe(0n);
    expect(payload(run, at('hw.cpu0 → guest.vcpu0 VIRTUAL_INTERRUPT'))).toEqual({ vcpu: 0, vector: 0xfd, rip: 0xffffffff81000002n });
  });

  it('the message lines print the MSR and the vectors in hex', async () => {
    const { formatDelivery } = await import('../../src/session/format.ts');
    const line = (name: string) => {
      const d = run.deliveries[at(name, 0) - 1]!;
      return formatDelivery({ seq: d.seq, ...d.message }, { mmioValue: 0n });
    };
    expect(line('guest.vcpu1 → hw.cpu1 WRMSR')).toContain('WRMSR  rip=0xffffffff81000000 msr=0x830 value=0xfd length=2');
    expect(line('kvm.vcpu1 → kvm.vcpu0 kvm_apic_send_ipi')).toContain('kvm_apic_send_ipi()  source=1 icr=0xfd vector=0xfd');
    expect(line('hw.cpu0 → guest.vcpu0 VIRTUAL_INTERRUPT')).toContain('VIRTUAL_INTERRUPT  vector=0xfd rip=0xffffffff81000002');
  });

  it('after it: vCPU 0 took 0xfd once, both descriptors and virtual APICs are clear, vCPU 1 moved past the WRMSR', () => {
    const model = modelFor(scenarioOf());
    const w = runModel(model, { scheduler: fifoScheduler() }).world;
    expect(contextOf<GuestVcpuContext>(model, w, 'guest.vcpu0').interrupts).toEqual([0xfd]);
    expect(contextOf<GuestVcpuContext>(model, w, 'guest.vcpu1').interrupts).toEqual([]);
    expect(contextOf<GuestVcpuContext>(model, w, 'guest.vcpu1').pc).toBe(1);
    for (const v of [0, 1]) {
      expect(contextOf<KvmVcpuContext>(model, w, `kvm.vcpu${v}`).piDesc).toEqual({ pir: 0n, on: false });
      expect(contextOf<CpuContext>(model, w, `hw.cpu${v}`).vapic).toEqual({ virr: 0n, isr: 0n, rvi: 0, svi: 0 });
    }
  });

  it('default: clean and exhaustive (3,874 states); in every end state vCPU 0 took 0xfd exactly once', () => {
    const ends: number[][] = [];
    const model = modelFor(scenarioOf());
    const r = explore(model, [...declared(), { name: 'ends', description: '', check: (m, _b, a) => (a.pending.length === 0 && ends.push([...contextOf<GuestVcpuContext>(m, a, 'guest.vcpu0').interrupts]), null) }], UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 3874 });
    expect(ends.length).toBeGreaterThan(0);
    expect(ends.every((e) => e.length === 1 && e[0] === 0xfd)).toBe(true);
  });

  it('hltChecksVmxip off: the IPI reaches vIRR just before the HLT TDVMCALL and the descriptor check blocks the vCPU — a lost wake-up (113 steps, 2 preemptions), which replays', () => {
    const scenario = scenarioOf({ hltChecksVmxip: false });
    const model = modelFor(scenario);
    const invariants = declared();
    const found = explore(model, invariants, UNBOUNDED).violation!;
    expect(found.invariant).toBe('no-lost-wakeup');
    const inv = invariants.find((i) => i.name === found.invariant)!;
    const m = minimise(model, inv, { maxStates: 200_000, maxDepth: found.choices.length });
    if (m.status !== 'minimal') throw new Error(`not minimised: ${m.status}`);
    expect(m.counterexample.choices.length).toBe(113);
    expect(m.counterexample.preemptions).toBe(2);
    expect(m.counterexample.detail).toBe('lost wake-up: kvm.vcpu0 is blocked in HLT (kvm_vcpu_halt) although its guest halted with interrupts enabled (R12 = 0) and vector 0xfd is pending for it (VMXIP)');
    const file = `${NAME}.counterexample.log.jsonl`;
    const writer = MemoryLogWriter.open(headerFor(scenario, `examples/${NAME}/scenario.yaml`, { kind: 'explore' }), file);
    const { choices, detail } = m.counterexample;
    runModelEvents(model, scenario, { choices, maxSteps: choices.length, log: writer, violation: { invariant: inv.name, detail } }).subscribe(() => {});
    writer.close();
    expect(replayLog(parseLogText(writer.text(), file), file, { verify: true }).verified).toBe(true);
  });
});

describe('an IPI to itself', () => {
  it('posts to its own descriptor outside guest mode (no kvm_apic_send_ipi message, no notification) and the self-IPI before the entry delivers it', () => {
    const text = ['name: self-ipi', 'vm: { type: tdx, gpaw: 48 }', 'memslots: [{ gpa: 0x0, size: 0x80000000, guestMemfd: true }]', 'vcpus:', '  - program:', '      - { op: sti }', '      - { op: ipi, to: 0, vector: 0x40 }', ''].join('\n');
    const r = runScenario(parseScenarioText(text, 'self.yaml'));
    const s = arrows(r);
    expect(r.outcome.status).toBe('ok');
    expect(s.some((a) => a.includes('kvm_apic_send_ipi'))).toBe(false);
    const tdExit = s.indexOf('tdx → kvm.vcpu0 TDCALL');
    expect(s.slice(tdExit, tdExit + 3)).toEqual(['tdx → kvm.vcpu0 TDCALL', 'kvm.vcpu0 → hw.cpu0 IPI', 'kvm.vcpu0 → tdx TDH.VP.ENTER']);
    expect(payload(r, s.indexOf('hw.cpu0 → guest.vcpu0 VIRTUAL_INTERRUPT') + 1)).toMatchObject({ vector: 0x40 });
  });
});

describe('the loader', () => {
  const td = (...lines: string[]) => ['name: s', 'vm: { type: tdx, gpaw: 48 }', 'memslots: [{ gpa: 0x0, size: 0x80000000, guestMemfd: true }]', 'vcpus:', ...lines, ''].join('\n');
  const messageOf = (text: string) => {
    try {
      parseScenarioText(text, 's.yaml');
    } catch (e) {
      if (e instanceof ScenarioError) return e.message;
      throw e;
    }
    throw new Error('expected a ScenarioError');
  };
  it.each([
    ['a destination that does not exist', td('  - program:', '      - { op: ipi, to: 1, vector: 0xfd }'), 's.yaml:6:24: vcpus[0].program[0].to: vCPU 1 does not exist (the scenario has 1)'],
    ['an exception vector', td('  - program:', '      - { op: ipi, to: 0, vector: 14 }'), 's.yaml:6:35: vcpus[0].program[0].vector: an interrupt vector is 32..255 (0x20..0xff): 0..31 are exceptions'],
    ['a VMX guest', ['name: s', 'vm: { type: vmx }', 'vcpus:', '  - program:', '      - { op: ipi, to: 0, vector: 0xfd }', ''].join('\n'), 's.yaml:5:15: vcpus[0].program[0].op: IPIs are modelled for a TD guest only (vm.type "tdx"): the ICR write becomes a #VE and TDG.VP.VMCALL<Instruction.WRMSR>'],
  ])('refuses %s, naming file:line:field', (_what, text, message) => {
    expect(messageOf(text)).toBe(message);
  });
});
