/**
 * The CPU's virtual APIC and KVM's posted-interrupt and halt paths, one message at a time: posted-interrupt
 * processing at a boundary, delivery only with IF = 1, the displaced instruction after IRET, a status read
 * deferred while a PIR is in flight, the NMI held while VE_INFO is valid; the sender's notification or
 * wake-up, the self-IPI, and kvm_vcpu_halt's check with and without TDH.VP.RD.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { cpuMachine } from '../../machines/hw/cpu.ts';
import { actorsFor } from '../../machines/registry.ts';
import { parseScenarioObject } from '../../src/scenario/load.ts';
import { TDVMCALL_INSTRUCTION_HLT } from '../../src/arch/tdcall.ts';
import type { Message, MessageKind } from '../../src/protocol/messages.ts';

type Sent = { to: string; name: string; payload: Record<string, unknown> };

function drive(actor: ReturnType<typeof createActor>, to: string) {
  const sent: Sent[] = [];
  actor.on('tdxsim.send', (e: { to: string; name: string; payload: unknown }) => sent.push({ to: e.to, name: e.name, payload: e.payload as Record<string, unknown> }));
  actor.start();
  let id = 0;
  const deliver = (from: string, kind: MessageKind, name: string, payload: Record<string, unknown>) => {
    const before = sent.length;
    actor.send({ type: name, msg: { id: id++, from, to, kind, name, payload, cause: null } as unknown as Message } as never);
    return sent.slice(before).map((s) => `${s.to} ${s.name}`);
  };
  return { sent, deliver, context: () => actor.getSnapshot().context as Record<string, unknown> };
}

const RIP = 0xffffffff81000000n;
const cpu = () => drive(createActor(cpuMachine, { input: { vcpu: 0, vmType: 'tdx', gpaw: 48 } }), 'hw.cpu0');
const notify = { vcpu: 0, requester: null, vector: 0xf2 };
const load = { vcpu: 0, rip: RIP, gla: 0n, gpa: 0x800000001000n, size: 8, length: 3, reg: 'rax' };

describe('hw.cpu: posted-interrupt processing and virtual-interrupt delivery', () => {
  it('the notification vector never exits; its processing starts at the next boundary and the instruction goes on', () => {
    const c = cpu();
    expect(c.deliver('kvm.vcpu0', 'interrupt', 'IPI', notify)).toEqual([]);
    expect(c.deliver('guest.vcpu0', 'insn', 'LOAD', load)).toEqual(['kvm.vcpu0 PIR_XCHG', 'kvm.mmu EPT_WALK']);
    expect(c.deliver('kvm.vcpu0', 'posted-interrupt', 'PIR', { vcpu: 0, pir: 1n << 0x30n })).toEqual([]);
    expect(c.context().vapic).toEqual({ virr: 1n << 0x30n, isr: 0n, rvi: 0x30, svi: 0 });
  });

  it('IF = 0 holds the interrupt; STI holds it one instruction more (blocking by STI); then the next boundary delivers it instead of the instruction, which runs after EOI and IRET', () => {
    const c = cpu();
    c.deliver('kvm.vcpu0', 'interrupt', 'IPI', notify);
    c.deliver('guest.vcpu0', 'insn', 'CLI', { vcpu: 0, rip: RIP });
    c.deliver('kvm.vcpu0', 'posted-interrupt', 'PIR', { vcpu: 0, pir: (1n << 0x30n) | (1n << 0x41n) });
    expect(c.deliver('guest.vcpu0', 'insn', 'STI', { vcpu: 0, rip: RIP + 1n })).toEqual(['guest.vcpu0 RETIRE']);
    expect(c.context()).toMatchObject({ rflagsIf: true, stiBlocking: true });
    // The instruction after the STI runs in its shadow (an STI with IF already 1 opens no new one).
    expect(c.deliver('guest.vcpu0', 'insn', 'STI', { vcpu: 0, rip: RIP + 2n })).toEqual(['guest.vcpu0 RETIRE']);
    expect(c.context()).toMatchObject({ stiBlocking: false });
    expect(c.deliver('guest.vcpu0', 'insn', 'LOAD', load)).toEqual(['guest.vcpu0 VIRTUAL_INTERRUPT']);
    expect(c.sent.at(-1)!.payload).toEqual({ vcpu: 0, vector: 0x41, rip: RIP });
    expect(c.context()).toMatchObject({ rflagsIf: false, vapic: { virr: 1n << 0x30n, isr: 1n << 0x41n, rvi: 0x30, svi: 0x41 } });
    expect(c.deliver('guest.vcpu0', 'insn', 'EOI', { vcpu: 0, rip: 0xffffffff81200000n })).toEqual([]);
    expect(c.context().vapic).toEqual({ virr: 1n << 0x30n, isr: 0n, rvi: 0x30, svi: 0 });
    // IRET: IF = 1, and the displaced LOAD is at a boundary again — where 0x30 is delivered in its turn.
    expect(c.deliver('guest.vcpu0', 'insn', 'IRET', { vcpu: 0, rip: 0xffffffff81200002n })).toEqual(['guest.vcpu0 VIRTUAL_INTERRUPT']);
    c.deliver('guest.vcpu0', 'insn', 'EOI', { vcpu: 0, rip: 0xffffffff81200000n });
    expect(c.deliver('guest.vcpu0', 'insn', 'IRET', { vcpu: 0, rip: 0xffffffff81200002n })).toEqual(['kvm.mmu EPT_WALK']);
    expect(c.context()).toMatchObject({ rflagsIf: true, interrupted: null, vapic: { virr: 0n, isr: 0n } });
  });

  it('a spinning guest takes the interrupt as soon as the PIR lands; after IRET it spins again', () => {
    const c = cpu();
    c.deliver('guest.vcpu0', 'insn', 'STI', { vcpu: 0, rip: RIP });
    c.deliver('guest.vcpu0', 'insn', 'SPIN', { vcpu: 0, rip: RIP + 1n });
    expect(c.deliver('kvm.vcpu0', 'interrupt', 'IPI', notify)).toEqual(['kvm.vcpu0 PIR_XCHG']);
    expect(c.deliver('kvm.vcpu0', 'posted-interrupt', 'PIR', { vcpu: 0, pir: 1n << 0x30n })).toEqual(['guest.vcpu0 VIRTUAL_INTERRUPT']);
    c.deliver('guest.vcpu0', 'insn', 'EOI', { vcpu: 0, rip: 0xffffffff81200000n });
    expect(c.deliver('guest.vcpu0', 'insn', 'IRET', { vcpu: 0, rip: 0xffffffff81200002n })).toEqual([]);
    expect(c.context()).toMatchObject({ spinRip: RIP + 1n, rflagsIf: true });
  });

  it("the module's status read waits for a PIR in flight (the exchange is atomic in hardware)", () => {
    const c = cpu();
    c.deliver('kvm.vcpu0', 'interrupt', 'IPI', notify);
    c.deliver('guest.vcpu0', 'tdcall', 'TDG.VP.VMCALL<Instruction.HLT>', { vcpu: 0, rip: RIP, RAX: 0n, R11: BigInt(TDVMCALL_INSTRUCTION_HLT), R12: 0n });
    expect(c.deliver('tdx', 'guest-interrupt-status', 'GUEST_INTERRUPT_STATUS_GET', { vcpu: 0 })).toEqual([]);
    expect(c.deliver('kvm.vcpu0', 'posted-interrupt', 'PIR', { vcpu: 0, pir: 1n << 0x30n })).toEqual(['tdx GUEST_INTERRUPT_STATUS']);
    expect(c.sent.at(-1)!.payload).toEqual({ vcpu: 0, rvi: 0x30, svi: 0, virr: 1n << 0x30n });
  });

  it('PEND_NMI waits while VE_INFO is valid and comes at the first boundary after TDG.VP.VEINFO.GET, whatever IF is', () => {
    const c = cpu();
    c.deliver('tdx', 've-info', 'VE_INJECT', { vcpu: 0, exitReason: 48, exitQualification: 0x181n, gla: 0n, gpa: 0x8000fe000000n, instrLength: 0 });
    c.deliver('tdx', 'interrupt', 'PEND_NMI', { vcpu: 0 });
    expect(c.deliver('guest.vcpu0', 'tdcall', 'TDG.VP.VEINFO.GET', { vcpu: 0, rip: 0xffffffff81100000n, RAX: 3n })).toEqual(['tdx TDG.VP.VEINFO.GET']);
    c.deliver('tdx', 've-info', 'VE_INFO_GET', { vcpu: 0 });
    expect(c.deliver('guest.vcpu0', 'tdcall', 'TDG.VP.VMCALL<#VE.RequestMMIO>', { vcpu: 0, rip: 0xffffffff81100004n, RAX: 0n })).toEqual(['guest.vcpu0 NMI']);
    expect(c.deliver('guest.vcpu0', 'insn', 'IRET', { vcpu: 0, rip: 0xffffffff81210000n })).toEqual(['tdx TDG.VP.VMCALL<#VE.RequestMMIO>']);
    expect(c.context()).toMatchObject({ pendNmi: false, inNmi: false, rflagsIf: false });
  });
});

const scenario = parseScenarioObject({ name: 'one', vm: { type: 'tdx' }, memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }], vcpus: [{ program: [{ op: 'hlt' }] }] });
function kvmVcpu0(policies: Record<string, boolean> = {}) {
  const spec = actorsFor({ ...scenario, policies: { ...scenario.policies, ...policies } }).find((a) => a.id === 'kvm.vcpu0')!;
  return drive(createActor(spec.machine, { input: spec.input } as never), 'kvm.vcpu0');
}
const msi = { vcpu: 0, address_lo: 0xfee00000, address_hi: 0, data: 0x30, flags: 0 };
const hltExit = (r12: bigint) => ({ vcpu: 0, RAX: 77n, RCX: 0xffccn, R10: 0n, R11: BigInt(TDVMCALL_INSTRUCTION_HLT), R12: r12 });

describe('kvm.vcpu: posting, waking, and the TD halt check', () => {
  it('in guest mode the first post sends the notification vector; while ON is set a second sends nothing', () => {
    const k = kvmVcpu0();
    k.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null });
    expect(k.deliver('vmm', 'ioctl', 'KVM_SIGNAL_MSI', msi)).toEqual(['hw.cpu0 IPI', 'vmm KVM_SIGNAL_MSI']);
    expect(k.deliver('vmm', 'ioctl', 'KVM_SIGNAL_MSI', { ...msi, data: 0x31 })).toEqual(['vmm KVM_SIGNAL_MSI']);
    expect(k.deliver('hw.cpu0', 'posted-interrupt', 'PIR_XCHG', { vcpu: 0 })).toEqual(['hw.cpu0 PIR']);
    expect(k.sent.at(-1)!.payload).toEqual({ vcpu: 0, pir: (1n << 0x30n) | (1n << 0x31n) });
    expect(k.context().piDesc).toEqual({ pir: 0n, on: false });
  });

  it('HLT with R12 = 1: blocked without a SEAMCALL; a post wakes it and the entry self-IPIs first', () => {
    const k = kvmVcpu0();
    k.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null });
    expect(k.deliver('tdx', 'td-exit', 'TDCALL', hltExit(1n))).toEqual([]);
    expect(k.deliver('vmm', 'ioctl', 'KVM_SIGNAL_MSI', msi)).toEqual(['vmm KVM_SIGNAL_MSI', 'hw.cpu0 IPI', 'tdx TDH.VP.ENTER']);
  });

  it('HLT with R12 = 0: TDH.VP.RD of TD_VCPU_STATE_DETAILS_NON_ARCH; VMXIP = 1 → enter, 0 → block', () => {
    const k = kvmVcpu0();
    k.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null });
    expect(k.deliver('tdx', 'td-exit', 'TDCALL', hltExit(0n))).toEqual(['tdx TDH.VP.RD']);
    expect(k.sent.at(-1)!.payload).toEqual({ RCX: 0x100010000n, RDX: 0x9100000000000100n });
    expect(k.deliver('tdx', 'seamcall-return', 'TDH.VP.RD', { RAX: 0n, R8: 1n })).toEqual(['tdx TDH.VP.ENTER']);
    k.deliver('tdx', 'td-exit', 'TDCALL', hltExit(0n));
    expect(k.deliver('tdx', 'seamcall-return', 'TDH.VP.RD', { RAX: 0n, R8: 0n })).toEqual([]);
  });

  it('a post while TDH.VP.RD is out makes the loop check again instead of blocking', () => {
    const k = kvmVcpu0();
    k.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null });
    k.deliver('tdx', 'td-exit', 'TDCALL', hltExit(0n));
    expect(k.deliver('vmm', 'ioctl', 'KVM_SIGNAL_MSI', msi)).toEqual(['vmm KVM_SIGNAL_MSI']);
    expect(k.deliver('tdx', 'seamcall-return', 'TDH.VP.RD', { RAX: 0n, R8: 0n })).toEqual(['hw.cpu0 IPI', 'tdx TDH.VP.ENTER']);
  });

  it('hltChecksVmxip off: the descriptor alone; ON clear → blocked without TDH.VP.RD', () => {
    const k = kvmVcpu0({ hltChecksVmxip: false });
    k.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null });
    expect(k.deliver('tdx', 'td-exit', 'TDCALL', hltExit(0n))).toEqual([]);
  });

  it('KVM_NMI in guest mode: a reschedule kick; before the next entry TDH.VP.WR of PEND_NMI', () => {
    const k = kvmVcpu0();
    k.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null });
    expect(k.deliver('vmm', 'ioctl', 'KVM_NMI', { vcpu: 0 })).toEqual(['vmm KVM_NMI', 'hw.cpu0 IPI']);
    expect(k.deliver('tdx', 'td-exit', 'EXTERNAL_INTERRUPT', { vcpu: 0, RAX: 1n, R9: 0x800000fdn })).toEqual(['hw.cpu0 LOCAL_IRQ_ENABLE']);
    expect(k.deliver('hw.cpu0', 'interrupt', 'IRQ_HANDLED', { vcpu: 0 })).toEqual(['tdx TDH.VP.WR']);
    expect(k.sent.at(-1)!.payload).toEqual({ RCX: 0x100010000n, RDX: 0x200000000000000bn, R8: 1n, R9: 0xffn });
    expect(k.deliver('tdx', 'seamcall-return', 'TDH.VP.WR', { RAX: 0n })).toEqual(['tdx TDH.VP.ENTER']);
  });
});
