/**
 * Host interrupts at the CPU (§7.4): an IPI waits for the guest's next instruction boundary, and when the
 * vCPU thread enables interrupts after the exit, every requester whose IPI was pending gets its
 * KVM_REQ_ACK — two kvm_make_all_cpus_request callers at once (a zap and a split) must both be released.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { cpuMachine } from '../../machines/hw/cpu.ts';
import type { Message, MessageKind } from '../../src/protocol/messages.ts';

function cpu() {
  const actor = createActor(cpuMachine, { input: { vcpu: 1, vmType: 'tdx', gpaw: 48 } });
  const sent: string[] = [];
  const payloads: Record<string, unknown>[] = [];
  actor.on('tdxsim.send', (e) => {
    sent.push(`${e.to} ${e.name}`);
    payloads.push(e.payload as Record<string, unknown>);
  });
  actor.start();
  let id = 0;
  const deliver = (from: string, kind: MessageKind, name: string, payload: Record<string, unknown>) =>
    actor.send({ type: name, msg: { id: id++, from, to: 'hw.cpu1', kind, name, payload, cause: null } as unknown as Message } as never);
  return { sent, payloads, deliver };
}

describe('hw.cpu: IPIs, the boundary exit and the acks', () => {
  it('two requesters: one EXTERNAL_INTERRUPT exit at the next load, and both are acknowledged after LOCAL_IRQ_ENABLE', () => {
    const { sent, deliver } = cpu();
    deliver('kvm.vcpu1', 'interrupt', 'IPI', { vcpu: 1, requester: 'kvm.vm', vector: 0xfb });
    deliver('kvm.vcpu1', 'interrupt', 'IPI', { vcpu: 1, requester: 'kvm.vcpu0', vector: 0xfb });
    expect(sent).toEqual([]);
    deliver('guest.vcpu1', 'insn', 'LOAD', { vcpu: 1, rip: 0xffffffff81000000n, gla: 0n, gpa: 0x200000n, size: 8, length: 3, reg: 'rax' });
    expect(sent).toEqual(['tdx EXTERNAL_INTERRUPT']);
    deliver('kvm.vcpu1', 'interrupt', 'LOCAL_IRQ_ENABLE', { vcpu: 1 });
    expect(sent.slice(1)).toEqual(['kvm.vm KVM_REQ_ACK', 'kvm.vcpu0 KVM_REQ_ACK', 'kvm.vcpu1 IRQ_HANDLED']);
  });

  it('a spinning guest is interrupted at once; with no IPI pending a TDCALL goes on to the module', () => {
    const { sent, payloads, deliver } = cpu();
    deliver('guest.vcpu1', 'tdcall', 'TDG.VP.VEINFO.GET', { vcpu: 1, RAX: 3n });
    expect(sent).toEqual(['tdx TDG.VP.VEINFO.GET']);
    deliver('guest.vcpu1', 'insn', 'SPIN', { vcpu: 1, rip: 0xffffffff81000010n });
    deliver('kvm.vcpu1', 'interrupt', 'IPI', { vcpu: 1, requester: 'kvm.vm', vector: 0xfb });
    expect(sent.slice(1)).toEqual(['tdx EXTERNAL_INTERRUPT']);
    expect(payloads[1]).toEqual({ vcpu: 1, exitReason: 1, rip: 0xffffffff81000010n, interruptionInfo: 0x800000fb });
  });

  it("an interrupt taken at a TDCALL boundary reports the TDCALL's RIP, not 0, and the highest pending vector", () => {
    const { sent, payloads, deliver } = cpu();
    deliver('kvm.vcpu1', 'interrupt', 'IPI', { vcpu: 1, requester: 'kvm.vm', vector: 0xfb });
    deliver('kvm.vcpu1', 'interrupt', 'IPI', { vcpu: 1, requester: null, vector: 0xfd });
    // The #VE handler's TDG.VP.VMCALL<#VE.RequestMMIO>, at the handler's own address.
    deliver('guest.vcpu1', 'tdcall', 'TDG.VP.VMCALL<#VE.RequestMMIO>', { vcpu: 1, rip: 0xffffffff81100004n, RAX: 0n, RCX: 0xffccn, R10: 0n, R11: 48n });
    expect(sent).toEqual(['tdx EXTERNAL_INTERRUPT']);
    expect(payloads[0]).toEqual({ vcpu: 1, exitReason: 1, rip: 0xffffffff81100004n, interruptionInfo: 0x800000fd });
  });
});
