/** The scenario a trace implies: what each guest executed and the VM around it, valid for `tdxsim run`. */
import { describe, expect, it } from 'vitest';
import { parseTraceFiles, type TraceInput } from '../../src/import/parseTrace.ts';
import { buildScenario } from '../../src/import/scenarioBuilder.ts';
import { scenarioYaml } from '../../src/import/scenarioYaml.ts';
import { parseScenarioText } from '../../src/scenario/load.ts';
import type { Scenario } from '../../src/scenario/schema.ts';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { TRACES, fixture, stormTrace } from './helpers.ts';

function build(...inputs: TraceInput[]): { scenario: Scenario; yaml: string; built: ReturnType<typeof buildScenario> } {
  const built = buildScenario(parseTraceFiles(inputs), 'import-test');
  const yaml = scenarioYaml(built);
  return { scenario: parseScenarioText(yaml, 'import-test.scenario.yaml'), yaml, built };
}

const program = (s: Scenario, v = 0) => s.vcpus[v]!.program;

describe('building the scenario a trace implies', () => {
  it('TD MMIO: the device from kvm_mmio, its register seeded with what the guest first read, one instruction per access', () => {
    const { scenario, yaml } = build(fixture('td-mmio.trace-cmd.txt'));
    expect(scenario.vm).toEqual({ type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] });
    expect(scenario.memslots).toEqual([{ gpa: 0n, size: 0x80000000n, guestMemfd: true }]);
    expect(scenario.devices).toEqual([{ name: 'mmio-fe000000', kind: 'mmio-regs', gpa: 0xfe000000n, size: 0x1000n, registers: { '0': 0x1af41000n } }]);
    expect(program(scenario)).toEqual([
      { op: 'load', gpa: 0x8000fe000000n, size: 4, reg: 'rax' },
      { op: 'store', gpa: 0x8000fe000004n, size: 4, value: 1n },
      { op: 'load', gpa: 0x8000fe000004n, size: 4, reg: 'rax' },
      { op: 'hlt' },
    ]);
    // Each instruction names its trace lines: the first touch's EPT violation and fault belong to the first load.
    expect(yaml).toContain('- { op: load, gpa: 0x8000fe000000, size: 4 }   # examples/traces/td-mmio.trace-cmd.txt:5-6,16-17,21: MMIO read (kvm_mmio), 4 bytes');
  });

  it('an accept (EEQ type ACCEPT), a MapGPA to shared (TDCALL, KVM_EXIT_HYPERCALL, the attributes QEMU set), a shared load, HLT', () => {
    const { scenario } = build(fixture('td-accept-mapgpa.ftrace.txt'));
    expect(program(scenario)).toEqual([
      { op: 'accept', gpa: 0x200000n, size: 0x1000n },
      { op: 'mapGpa', gpa: 0x200000n, size: 0x1000n, to: 'shared' },
      { op: 'load', gpa: 0x800000200000n, size: 8, reg: 'rax' },
      { op: 'hlt' },
    ]);
  });

  it('a VMX guest when KVM could read the RIP and nothing says TD', () => {
    const { scenario } = build(fixture('vmx-mmio-oldest.ftrace.txt'));
    expect(scenario.vm.type).toBe('vmx');
    expect(scenario.memslots).toEqual([{ gpa: 0n, size: 0x80000000n, guestMemfd: false }]);
    expect(program(scenario).map((o) => o.op)).toEqual(['load', 'store', 'load', 'hlt']);
  });

  it('the same fault again and again after re-entering is one load, retried', () => {
    const { scenario, built } = build(fixture('ept-retry-loop.perf.txt'));
    expect(program(scenario, 0)).toEqual([{ op: 'accept', gpa: 0x200000n, size: 0x1000n }, { op: 'hlt' }]);
    expect(program(scenario, 1)).toEqual([{ op: 'load', gpa: 0x201000n, size: 8, reg: 'rax' }]);
    expect(built.vcpus[1]!.ops[0]!.origin.retries).toBe(6);
    expect(built.vcpus[1]!.ops[0]!.origin.src.map((s) => s.line)).toEqual([13, 14, 17, 18, 21, 22, 26, 27, 30, 31, 34, 35, 38, 39]);
  });

  it('512 ACCEPT exits of a boot-time 2M accept are one accept of 2M; the build\'s image page is kept', () => {
    const { scenario, built } = build(stormTrace());
    expect(program(scenario)).toEqual([{ op: 'accept', gpa: 0x200000n, size: 0x200000n }, { op: 'hlt' }]);
    expect(built.vcpus[0]!.ops[0]!.origin.src).toHaveLength(1024);
    expect(scenario.image).toEqual([{ gpa: 0x100000n, words: {} }]);
  });

  it('4K accepts across a 2M boundary are not merged into one tdx_accept_memory that would try 2M there', () => {
    const line = (ts: number, ev: string, payload: string) => `  CPU 0/KVM-7 [001] ${ts.toFixed(6).padStart(12)}: ${`${ev}:`.padEnd(20)} ${payload}`;
    const lines = ['cpus=2'];
    let ts = 10;
    for (let i = 0; i < 514; i++) {
      const gpa = 0x1ff000 + i * 0x1000;
      lines.push(line((ts += 1e-5), 'kvm_entry', 'vcpu 0, rip 0x0'));
      lines.push(line((ts += 1e-5), 'kvm_exit', 'vcpu 0 reason EPT_VIOLATION rip 0x0 info1 0x0000000000000002 info2 0x0000000000000001 intr_info 0x00000000 error_code 0x00000000'));
      lines.push(line((ts += 1e-5), 'kvm_page_fault', `vcpu 0 rip 0x0 address 0x${gpa.toString(16).padStart(16, '0')} error_code 0x2`));
    }
    const { scenario } = build({ file: 'run.txt', text: lines.join('\n') });
    expect(program(scenario)).toEqual([
      { op: 'accept', gpa: 0x1ff000n, size: 0x1000n },
      { op: 'accept', gpa: 0x200000n, size: 0x1000n },
      { op: 'accept', gpa: 0x201000n, size: 0x200000n },
    ]);
  });

  it('a guest that went on after touching a page KVM AUGed accepted it in its #VE handler: SEPT_VE_DISABLE off', () => {
    const { scenario } = build(fixture('demote-split.trace-cmd.txt'));
    expect(scenario.vm.attributes).toEqual([]);
    expect(scenario.policies.privateHugePages).toBe(true);
    expect(scenario.vcpus[0]!.privateVe).toBe('accept');
    expect(program(scenario, 0)).toEqual([{ op: 'store', gpa: 0x200000n, size: 8, value: 0n }]);
    // vCPU 1 only entered the guest: it gets a placeholder, and the notes say so.
    expect(program(scenario, 1)).toEqual([{ op: 'hlt' }]);
  });

  it('a bare dmesg with a DEMOTE failure: the split of a private 2M leaf for a 4K accept, at a GPA the message does not give', () => {
    const { scenario, built } = build(fixture('demote-tlb-tracking.dmesg'));
    expect(scenario.policies.privateHugePages).toBe(true);
    expect(scenario.vm.attributes).toEqual([]);
    expect(scenario.vcpus).toEqual([{ program: [{ op: 'store', gpa: 0x200000n, size: 8, value: 0n }], veHandlerPrologue: [], privateVe: 'accept' }]);
    expect(built.notes.map((n) => n.message)).toContain(
      'only TDH.MEM.PAGE.DEMOTE failing is in the trace: the scenario makes KVM split a private 2M leaf for a 4K ACCEPT (§6.iii), the way it calls TDH.MEM.PAGE.DEMOTE; the message does not name the GPA, so the scenario uses 0x200000',
    );
  });
});

describe('what the trace did not record', () => {
  it('a MapGPA without kvm_vm_set_mem_attributes in the trace is left out with a note, not taken for EAGAIN', () => {
    const text = readFileSync(path.join(TRACES, 'td-accept-mapgpa.ftrace.txt'), 'utf8')
      .split('\n')
      .filter((l) => !l.includes('kvm_vm_set_mem_attributes'))
      .join('\n');
    const { scenario, built } = build({ file: 'no-attrs.txt', text });
    expect(program(scenario).map((o) => o.op)).toEqual(['accept', 'load', 'hlt']);
    expect(scenario.vmm.mapGpaEagain).toBe(0);
    expect(built.notes.map((n) => n.message)).toContain('a MapGPA (TDCALL, KVM_EXIT_HYPERCALL) whose range the trace does not show (record kvm:kvm_vm_set_mem_attributes too), so it is left out');
  });
});
