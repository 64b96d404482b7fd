/**
 * What the loader refuses in the selftest guest operations and the playground's kthreads: each error names
 * the file, line, column and field (exit 2 at the CLI), as every scenario error does.
 */
import { describe, expect, it } from 'vitest';
import { parseScenarioText, ScenarioError } from '../../src/scenario/load.ts';

const td = (...lines: string[]) => ['name: s', 'vm: { type: tdx, gpaw: 48 }', 'memslots: [{ gpa: 0x0, size: 0x80000000, guestMemfd: true }]', 'vcpus:', ...lines, ''].join('\n');
const vmx = (...lines: string[]) => ['name: s', 'vm: { type: vmx }', 'vcpus:', ...lines, ''].join('\n');

function messageOf(text: string): string {
  try {
    parseScenarioText(text, 's.yaml');
  } catch (e) {
    if (e instanceof ScenarioError) return e.message;
    throw e;
  }
  throw new Error('expected a ScenarioError');
}

describe('guest operations', () => {
  it.each([
    ['an OUT with both value and reg', td('  - program:', '      - { op: out, port: 0x80, size: 1, value: 1, reg: rax }'), 's.yaml:6:48: vcpus[0].program[0].value: give an OUT either value or reg'],
    ['an OUT with neither', td('  - program:', '      - { op: out, port: 0x80, size: 1 }'), 's.yaml:6:9: vcpus[0].program[0].value: give an OUT either value or reg'],
    ['an IN in a VMX guest', vmx('  - program:', '      - { op: in, port: 0x80, size: 1, reg: rax }'), 's.yaml:5:25: vcpus[0].program[0].port: port I/O is modelled for a TD guest only (vm.type "tdx"), where it becomes a #VE and TDG.VP.VMCALL<Instruction.IO>'],
    ['an IN of 8 bytes', td('  - program:', '      - { op: in, port: 0x80, size: 8, reg: rax }'), 's.yaml:6:37: vcpus[0].program[0].size: port I/O is 1, 2 or 4 bytes'],
    ['a TDVMCALL in a VMX guest', vmx('  - program:', '      - { op: tdvmcall, subfunction: 0x10000 }'), 's.yaml:5:15: vcpus[0].program[0].op: TDG.VP.VMCALL is a TD guest operation (vm.type "tdx")'],
    ['Instruction.CPUID, which the model cannot answer', td('  - program:', '      - { op: tdvmcall, subfunction: 10 }'), "s.yaml:6:38: vcpus[0].program[0].subfunction: TDG.VP.VMCALL<Instruction.CPUID> is answered by KVM's CPUID/MSR emulation, which the model does not have"],
    ['a result copied into no register', td('  - program:', '      - { op: vpInfo, results: { r8: r8 } }'), 's.yaml:6:38: vcpus[0].program[0].results.r8: Invalid option: expected one of "rax"|"rbx"|"rcx"|"rdx"|"rsi"|"rdi"'],
    ['a loop that branches forward', td('  - program:', '      - { op: hlt }', '      - { op: loop, to: 1, times: 2 }'), 's.yaml:7:25: vcpus[0].program[1].to: a loop branches back: "to" must be below its own index 1'],
    ['a loop with neither times nor until', td('  - program:', '      - { op: hlt }', '      - { op: loop, to: 0 }'), 's.yaml:7:9: vcpus[0].program[1].times: a loop needs times, until or both'],
    ['a loop whose body never leaves the CPU', td('  - program:', '      - { op: check, reg: rax, equals: 0 }', '      - { op: loop, to: 0, times: 2 }'), 's.yaml:7:25: vcpus[0].program[1].to: the loop body needs an instruction that leaves the CPU (a load, store, TDCALL, IN, OUT or HLT)'],
  ])('%s', (_what, text, message) => {
    expect(messageOf(text)).toBe(message);
  });
});

describe('playground kthreads', () => {
  it('need a TD', () => {
    expect(messageOf(vmx('  - program: [{ op: hlt }]', 'kthreads: [{ program: [{ seamcall: TDH.MEM.SEPT.RD }] }]'))).toBe(
      's.yaml:5:11: kthreads: a playground kthread issues SEAMCALLs against a TD (vm.type "tdx")',
    );
  });
  it('issue only the memory-management leaves', () => {
    expect(messageOf(td('  - program: [{ op: hlt }]', 'kthreads: [{ program: [{ seamcall: TDH.VP.ENTER }] }]'))).toMatch(/^s\.yaml:6:36: kthreads\[0\]\.program\[0\]\.seamcall: Invalid option: expected one of "TDH\.MEM\.SEPT\.ADD"/);
  });
});
