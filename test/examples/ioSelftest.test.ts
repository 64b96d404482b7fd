/**
 * The guest operations the upstream TDX selftests use, through the whole stack: `in` and `out` of a
 * register (Instruction.IO after a #VE), a TDVMCALL issued with chosen registers (bad size → R10 back),
 * ReportFatalError → KVM_EXIT_SYSTEM_EVENT (TDX_FATAL, 16 GPRs), GetTdVmCallInfo in the kernel (leaf 0)
 * and in userspace (leaf 1, KVM_EXIT_TDX), GetQuote, an unknown sub-function, TDG.VP.INFO, MMIO requests
 * KVM refuses or passes on, counted and conditional loops, and a guest-side check that fails the run.
 */
import { describe, expect, it } from 'vitest';
import { arrows, payload, runExample, runScenario, type RecordedRun } from '../helpers.ts';
import { parseScenarioObject } from '../../src/scenario/load.ts';
import type { ScenarioInput } from '../../src/scenario/schema.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import { KVM_EXIT_IO, KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KVM_EXIT_SYSTEM_EVENT, KVM_SYSTEM_EVENT_TDX_FATAL, KVM_EXIT_TDX, KVM_EXIT_MMIO } from '../../src/arch/kvmApi.ts';
import {
  TDVMCALL_EXPOSE_REGS_MASK,
  TDVMCALL_GET_QUOTE,
  TDVMCALL_GET_TD_VM_CALL_INFO,
  TDVMCALL_INSTRUCTION_IO,
  TDVMCALL_REPORT_FATAL_ERROR,
  TDVMCALL_STATUS_INVALID_OPERAND,
  TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED,
  TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT,
  TDX_REPORT_FATAL_ERROR_GPA_VALID,
} from '../../src/arch/tdcall.ts';
import { EXIT_REASON_TDCALL, ioExitQualification } from '../../src/arch/vmx.ts';
import { TDX_SUCCESS, TD_ATTR_SEPT_VE_DISABLE } from '../../src/arch/tdxStatus.ts';
import { GUEST_TEXT_BASE } from '../../machines/guest/program.ts';
import type { GuestVcpuContext } from '../../machines/guest/guestVcpu.ts';

type Gprs = Record<string, bigint>;
const TD_VM = { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] } as const;
const GMEM = [{ gpa: 0, size: 0x80000000, guestMemfd: true }];
const td = (name: string, programs: ScenarioInput['vcpus'][number]['program'][], extra: Partial<ScenarioInput> = {}) =>
  parseScenarioObject({ name, vm: TD_VM, memslots: GMEM, vcpus: programs.map((program) => ({ program })), ...extra });
const guestRegs = (r: RecordedRun, v = 0) => (actorView(r.deliveries.at(-1)!.world, r.model.indexOf.get(`guest.vcpu${v}`)!).context as GuestVcpuContext).regs;
/** Every delivered message with this name, as (1-based step, payload). */
const all = <T = Gprs>(r: RecordedRun, name: string) =>
  r.deliveries.flatMap((d, i) => (d.message.name === name ? [{ step: i + 1, from: d.message.from, to: d.message.to, p: d.message.payload as T }] : []));
/** The VM entry that returns from the TDCALL delivered at `step`: the next VMRESUME to that guest. */
const entryAfter = (r: RecordedRun, step: number) => all<{ tdcallReturn: Gprs | null }>(r, 'VMRESUME').find((e) => e.step > step)!.p.tdcallReturn!;

describe('examples/io-selftest: the upstream selftest I/O test', () => {
  const r = runExample('io-selftest');
  it('runs to the power-off with every check holding', () => {
    expect(r.outcome.status).toBe('ok');
    expect(r.outcome.failures).toEqual([]);
    expect(guestRegs(r)).toMatchObject({ rax: 0xffn, rbx: TDVMCALL_STATUS_INVALID_OPERAND });
  });
  it('OUT, IN, OUT of AL each reach the VMM as KVM_EXIT_IO; the bad-size TDVMCALL never leaves the kernel', () => {
    const io = all<{ direction: number; size: number; port: number; data: bigint; exit_reason: number }>(r, 'KVM_EXIT_IO').map((e) => [e.p.exit_reason, e.p.direction, e.p.port, e.p.size, e.p.data]);
    expect(io).toEqual([
      [KVM_EXIT_IO, KVM_EXIT_IO_OUT, 0x50, 1, 0xabn],
      [KVM_EXIT_IO, KVM_EXIT_IO_IN, 0x50, 1, 0n],
      [KVM_EXIT_IO, KVM_EXIT_IO_OUT, 0x50, 1, 0xffn],
      [KVM_EXIT_IO, KVM_EXIT_IO_OUT, 0x604, 2, 0x2000n],
    ]);
  });
  it('IN: the #VE carries the IN qualification, the TDVMCALL R13 = 0, the VMM answers all ones, R11 = 0xff', () => {
    const inAt = arrows(r).indexOf('guest.vcpu0 → hw.cpu0 IN') + 1;
    expect(payload(r, inAt)).toMatchObject({ port: 0x50, size: 1, length: 1 });
    const ve = all<{ exitQualification: bigint }>(r, 'VE_INJECT').find((e) => e.step > inAt)!;
    expect(ve.p.exitQualification).toBe(ioExitQualification(0x50, 1, true));
    const call = all(r, 'TDG.VP.VMCALL<Instruction.IO>').find((e) => e.step > inAt && e.to === 'tdx')!;
    expect(call.p).toMatchObject({ R10: 0n, R11: BigInt(TDVMCALL_INSTRUCTION_IO), R12: 1n, R13: 0n, R14: 0x50n, R15: 0n });
    const run = all<{ ioData?: bigint }>(r, 'KVM_RUN').find((e) => e.step > call.step)!;
    expect(run.p.ioData).toBe(0xffn);
    expect(entryAfter(r, call.step)).toEqual({ RAX: TDX_SUCCESS, R10: 0n, R11: 0xffn });
  });
  it('the raw TDVMCALL with size 3 is refused in the kernel: R10 = INVALID_OPERAND, no exit to the VMM', () => {
    const raw = all(r, 'TDG.VP.VMCALL<Instruction.IO>').filter((e) => e.from === 'guest.vcpu0').at(-2)!;
    expect(raw.p).toMatchObject({ RCX: TDVMCALL_EXPOSE_REGS_MASK, R10: 0n, R11: 30n, R12: 3n, R13: 1n, R14: 0x50n, R15: 0xabn });
    const seq = arrows(r);
    expect(seq.slice(raw.step, raw.step + 4)).toEqual(['hw.cpu0 → tdx TDG.VP.VMCALL<Instruction.IO>', 'tdx → kvm.vcpu0 TDCALL', 'kvm.vcpu0 → tdx TDH.VP.ENTER', 'tdx → tdx ENTER_EPOCH']);
    expect(entryAfter(r, raw.step)).toEqual({ RAX: TDX_SUCCESS, R10: TDVMCALL_STATUS_INVALID_OPERAND });
  });
});

describe('port I/O operands', () => {
  it('IN AX merges into the register, IN EAX zero-extends; OUT of a register sends its low bytes', () => {
    const r = runScenario(
      td('in-widths', [
        [
          { op: 'in', port: 0x70, size: 2, reg: 'rcx' },
          { op: 'in', port: 0x71, size: 4, reg: 'rdx' },
          { op: 'out', port: 0x80, size: 2, reg: 'rcx' },
          { op: 'hlt' },
        ],
      ]),
    );
    expect(guestRegs(r)).toMatchObject({ rcx: 0xffffn, rdx: 0xffffffffn });
    const io = all<{ direction: number; size: number; port: number; data: bigint }>(r, 'KVM_EXIT_IO').map((e) => [e.p.direction, e.p.port, e.p.size, e.p.data]);
    expect(io).toEqual([
      [KVM_EXIT_IO_IN, 0x70, 2, 0n],
      [KVM_EXIT_IO_IN, 0x71, 4, 0n],
      [KVM_EXIT_IO_OUT, 0x80, 2, 0xffffn],
    ]);
  });
  it('an ACPI PM register reads 0', () => {
    const r = runScenario(td('pm-read', [[{ op: 'in', port: 0x604, size: 2, reg: 'rax' }, { op: 'check', reg: 'rax', equals: 0 }, { op: 'hlt' }]]));
    expect(r.outcome.failures).toEqual([]);
  });
  it.each([
    ['size 0', { r12: 0, r13: 1 }],
    ['size 8', { r12: 8, r13: 1 }],
    ['direction 2', { r12: 1, r13: 2 }],
  ])('Instruction.IO with %s: INVALID_OPERAND in R10', (_what, regs) => {
    const r = runScenario(td('io-bad', [[{ op: 'tdvmcall', subfunction: 30, r14: 0x50, ...regs, results: { r10: 'rax' } }, { op: 'hlt' }]]));
    expect(guestRegs(r).rax).toBe(TDVMCALL_STATUS_INVALID_OPERAND);
    expect(all(r, 'KVM_EXIT_IO')).toEqual([]);
  });
});

describe('examples/fatal-error: TDG.VP.VMCALL<ReportFatalError>', () => {
  const code = TDX_REPORT_FATAL_ERROR_GPA_VALID | 0x1234n;
  const r = runExample('fatal-error');
  it('is KVM_EXIT_SYSTEM_EVENT of type TDX_FATAL (7) with the 16 GPRs in VCPU_REGS order', () => {
    const [e] = all<{ exit_reason: number; type: number; ndata: number; data: bigint[] }>(r, 'KVM_EXIT_SYSTEM_EVENT');
    expect(e!.from).toBe('kvm.vcpu0');
    expect(e!.p.exit_reason).toBe(KVM_EXIT_SYSTEM_EVENT);
    expect(e!.p.type).toBe(KVM_SYSTEM_EVENT_TDX_FATAL);
    expect(e!.p.ndata).toBe(16);
    expect(e!.p.data).toEqual([
      TDX_SUCCESS | BigInt(EXIT_REASON_TDCALL), // RAX: TDH.VP.ENTER's return for the TDCALL exit
      TDVMCALL_EXPOSE_REGS_MASK, // RCX: the exposure bitmap
      0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, // RDX RBX RSP RBP RSI RDI R8 R9: not exposed by the model's guest
      0n, // R10
      BigInt(TDVMCALL_REPORT_FATAL_ERROR), // R11
      code, // R12: error code, GPA valid
      0x8000001000n, // R13: information page
      0x6f6c6c6568n, // R14
      0x21n, // R15
    ]);
  });
  it('QEMU shuts the VM down: the other vCPU is signalled and the files close; the reporting vCPU never re-enters', () => {
    const seq = arrows(r);
    const at = seq.indexOf('kvm.vcpu0 → vmm KVM_EXIT_SYSTEM_EVENT');
    expect(seq.slice(at + 1)).toContain('vmm → kvm.vcpu1 SIG_IPI');
    expect(seq.slice(at + 1)).toContain('vmm → kvm.vm kvm-vm');
    expect(seq.slice(at + 1)).not.toContain('vmm → kvm.vcpu0 KVM_RUN');
    expect(r.outcome.failures).toEqual([]);
  });
});

describe('TDG.VP.VMCALL<GetTdVmCallInfo>, GetQuote and sub-functions KVM does not know', () => {
  const r = runScenario(
    td('vmcall-info', [
      [
        { op: 'tdvmcall', subfunction: 0x10000, r12: 0, r13: 7, r14: 7, results: { r10: 'rax', r11: 'rbx', r13: 'rcx', r14: 'rdx' } },
        { op: 'check', reg: 'rax', equals: 0 },
        { op: 'check', reg: 'rcx', equals: 0 },
        { op: 'tdvmcall', subfunction: 0x10000, r12: 1, results: { r10: 'rax', r11: 'rbx' } },
        { op: 'check', reg: 'rbx', equals: TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT },
        { op: 'tdvmcall', subfunction: 0x10000, r12: 2, results: { r10: 'rcx' } },
        { op: 'check', reg: 'rcx', equals: TDVMCALL_STATUS_INVALID_OPERAND },
        { op: 'tdvmcall', subfunction: 0x10002, r12: 0x1000, r13: 0x1000, results: { r10: 'rdx' } },
        { op: 'check', reg: 'rdx', equals: TDVMCALL_STATUS_INVALID_OPERAND },
        { op: 'tdvmcall', subfunction: 0x10002, r12: 0x800000001000, r13: 0x1000, results: { r10: 'rsi' } },
        { op: 'check', reg: 'rsi', equals: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED },
        { op: 'tdvmcall', subfunction: 0x12345, results: { r10: 'rdi' } },
        { op: 'check', reg: 'rdi', equals: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED },
        { op: 'hlt' },
      ],
    ]),
  );
  it('every answer is upstream KVM’s (and QEMU’s for leaf 1)', () => {
    expect(r.outcome.failures).toEqual([]);
    expect(guestRegs(r)).toMatchObject({ rax: 0n });
  });
  it('leaf 0 and leaf 2 and a private quote buffer never leave the kernel; leaf 1 and a shared one are KVM_EXIT_TDX', () => {
    const tdx = all<{ exit_reason: number; nr: number; get_tdvmcall_info?: Gprs; get_quote?: Gprs }>(r, 'KVM_EXIT_TDX').map((e) => e.p);
    expect(tdx).toEqual([
      { vcpu: 0, exit_reason: KVM_EXIT_TDX, flags: 0, nr: TDVMCALL_GET_TD_VM_CALL_INFO, get_tdvmcall_info: { leaf: 1n, ret: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n } },
      { vcpu: 0, exit_reason: KVM_EXIT_TDX, flags: 0, nr: TDVMCALL_GET_QUOTE, get_quote: { ret: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED, gpa: 0x1000n, size: 0x1000n } },
    ]);
  });
  it('an R11 GHCI does not define is shown as the bare leaf', () => {
    expect(all(r, 'TDG.VP.VMCALL').map((e) => e.p.R11)).toEqual([0x12345n, 0x12345n]);
  });
});

describe('examples/vp-info: TDG.VP.INFO', () => {
  const r = runExample('vp-info');
  it('every check in the guests holds', () => expect(r.outcome.failures).toEqual([]));
  it('answers in the module: GPAW 48, ATTRIBUTES, NUM_VCPUS | MAX_VCPUS << 32, VCPU_INDEX, SYS.RD available', () => {
    expect(guestRegs(r, 0)).toEqual({ rax: 48n, rbx: TD_ATTR_SEPT_VE_DISABLE, rcx: 2n | (2n << 32n), rdx: 0n, rsi: 1n, rdi: 0n });
    expect(guestRegs(r, 1)).toMatchObject({ rcx: 2n | (2n << 32n), rdx: 1n });
    const [call] = all(r, 'TDG.VP.INFO');
    expect(call).toMatchObject({ from: 'guest.vcpu0', to: 'hw.cpu0', p: { RAX: 1n, rip: GUEST_TEXT_BASE } });
    expect(all(r, 'TDCALL')).toHaveLength(2); // only the two HLTs exit
  });
  it('GPAW 52', () => {
    const w = runScenario(parseScenarioObject({ name: 'vp-info-52', vm: { ...TD_VM, gpaw: 52 }, memslots: GMEM, vcpus: [{ program: [{ op: 'vpInfo', results: { rcx: 'rax' } }, { op: 'hlt' }] }] }));
    expect(guestRegs(w).rax).toBe(52n);
  });
});

describe('#VE.RequestMMIO as KVM checks it', () => {
  const shared = 1n << 47n;
  const mmio = (r12: bigint | number, r13: number, r14: bigint) =>
    runScenario(
      td('mmio-raw', [[{ op: 'tdvmcall', subfunction: 48, r12, r13, r14, r15: 0x1122334455667788n, results: { r10: 'rax', r11: 'rbx' } }, { op: 'hlt' }]], {
        devices: [{ name: 'regs', kind: 'mmio-regs', gpa: 0xfe000000, size: 0x2000 }],
      }),
    );
  it.each([
    ['size 3', 3, 1, shared | 0xfe000000n],
    ['direction 2', 4, 2, shared | 0xfe000000n],
    ['a private GPA', 4, 0, 0xfe000000n],
  ])('%s: INVALID_OPERAND, no KVM_EXIT_MMIO', (_w, size, dir, gpa) => {
    const r = mmio(size, dir, gpa);
    expect(guestRegs(r).rax).toBe(TDVMCALL_STATUS_INVALID_OPERAND);
    expect(all(r, 'KVM_EXIT_MMIO')).toEqual([]);
  });
  it('an 8-byte read across a page boundary goes to userspace as one KVM_EXIT_MMIO (no page check upstream)', () => {
    const r = mmio(8, 0, shared | 0xfe000ffcn);
    expect(all(r, 'KVM_EXIT_MMIO').map((e) => e.p)).toEqual([{ vcpu: 0, exit_reason: KVM_EXIT_MMIO, phys_addr: 0xfe000ffcn, len: 8, is_write: 0, data: 0n }]);
    expect(guestRegs(r).rax).toBe(0n);
  });
  it('only the low 32 bits of R12 count as the size (int size)', () => {
    const r = mmio((1n << 32n) | 4n, 1, shared | 0xfe000000n);
    expect(all(r, 'KVM_EXIT_MMIO').map((e) => [e.p.len, e.p.is_write, e.p.data])).toEqual([[4, 1, 0x55667788n]]);
  });
});

describe('loops and checks', () => {
  it('a counted loop runs its body that many times', () => {
    const r = runScenario(td('count', [[{ op: 'out', port: 0x80, size: 1, value: 1 }, { op: 'loop', to: 0, times: 3 }, { op: 'out', port: 0x81, size: 1, value: 2 }, { op: 'hlt' }]]));
    expect(all<{ port: number }>(r, 'KVM_EXIT_IO').map((e) => e.p.port)).toEqual([0x80, 0x80, 0x80, 0x81]);
  });
  it('nested counted loops multiply; the inner count starts afresh each outer pass', () => {
    const r = runScenario(td('nested', [[{ op: 'out', port: 0x80, size: 1, value: 1 }, { op: 'loop', to: 0, times: 2 }, { op: 'out', port: 0x81, size: 1, value: 1 }, { op: 'loop', to: 0, times: 3 }, { op: 'hlt' }]]));
    expect(all<{ port: number }>(r, 'KVM_EXIT_IO').map((e) => e.p.port)).toEqual([0x80, 0x80, 0x81, 0x80, 0x80, 0x81, 0x80, 0x80, 0x81]);
  });
  it('a loop until a value stops once the register holds it; times bounds it', () => {
    // The IN reads 0xff from an unassigned port: the until-loop stops after one pass; the bounded one runs out.
    const r = runScenario(td('until', [[{ op: 'in', port: 0x50, size: 1, reg: 'rax' }, { op: 'loop', to: 0, until: { reg: 'rax', equals: 0xff } }, { op: 'in', port: 0x51, size: 1, reg: 'rbx' }, { op: 'loop', to: 2, until: { reg: 'rbx', equals: 0x11 }, times: 2 }, { op: 'hlt' }]]));
    expect(all<{ port: number }>(r, 'KVM_EXIT_IO').map((e) => e.p.port)).toEqual([0x50, 0x51, 0x51]);
  });
  it('a failed check ends the run as a guest assertion with the RIP and both values', () => {
    const r = runScenario(td('bad-check', [[{ op: 'in', port: 0x50, size: 1, reg: 'rax' }, { op: 'check', reg: 'rax', equals: 0x11 }, { op: 'hlt' }]]));
    // The IN is 1 byte at the text base; the check's RIP follows it.
    expect(r.outcome.status).not.toBe('ok');
    expect(r.outcome.failures).toMatchObject([{ actor: 'guest.vcpu0', reason: 'guest assertion', detail: `guest.vcpu0: check at RIP 0xffffffff81000001 failed: rax = 0xff, expected 0x11` }]);
    expect(arrows(r)).not.toContain('guest.vcpu0 → hw.cpu0 HLT');
  });
});
