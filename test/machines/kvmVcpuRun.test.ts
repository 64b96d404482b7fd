/**
 * KVM's vCPU thread around TDH.VP.ENTER, driven one message at a time: what it does with R9 of an
 * external-interrupt exit (handle_exit_irqoff), and which TDVMCALL outputs a BUSY entry leaves in place.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { actorsFor } from '../../machines/registry.ts';
import { parseScenarioObject } from '../../src/scenario/load.ts';
import { TDVMCALL_VE_REQUEST_MMIO } from '../../src/arch/tdcall.ts';
import { TDX_OPERAND_BUSY, TDX_OPERAND_ID_TD_EPOCH, tdxStatusWithOperand } from '../../src/arch/tdxStatus.ts';
import type { Message, MessageKind } from '../../src/protocol/messages.ts';

const scenario = parseScenarioObject({
  name: 'one',
  vm: { type: 'tdx' },
  memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
  vcpus: [{ program: [{ op: 'hlt' }] }],
});

function kvmVcpu0() {
  const spec = actorsFor(scenario).find((a) => a.id === 'kvm.vcpu0')!;
  const actor = createActor(spec.machine, { input: spec.input } as never);
  const sent: { to: string; name: string; payload: Record<string, unknown> }[] = [];
  const signals: { type: string; reason?: string; detail?: string }[] = [];
  actor.on('*', (e: { type: string; to?: string; name?: string; payload?: unknown }) => {
    if (e.type === 'tdxsim.send') sent.push({ to: e.to!, name: e.name!, payload: e.payload as Record<string, unknown> });
    else signals.push(e as never);
  });
  actor.start();
  let id = 0;
  const deliver = (from: string, kind: MessageKind, name: string, payload: Record<string, unknown>) => {
    const before = sent.length;
    actor.send({ type: name, msg: { id: id++, from, to: 'kvm.vcpu0', kind, name, payload, cause: null } as unknown as Message } as never);
    return sent.slice(before);
  };
  return { deliver, signals };
}

const TDCALL = 77n;

describe('kvm.vcpu: an EXTERNAL_INTERRUPT TD exit (handle_exit_irqoff)', () => {
  it('R9 0x800000fb (valid, external, vector 0xfb): counted and the vCPU enters again', () => {
    const t = kvmVcpu0();
    expect(t.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null }).map((s) => s.name)).toEqual(['TDH.VP.ENTER']);
    const out = t.deliver('tdx', 'td-exit', 'EXTERNAL_INTERRUPT', { vcpu: 0, RAX: 1n, RCX: 0n, RDX: 0n, R8: 0n, R9: 0x800000fbn });
    expect(out.map((s) => s.name)).toEqual(['TDH.VP.ENTER']);
    expect(t.signals).toEqual([]);
  });

  it('R9 0: vmx_handle_external_interrupt_irqoff refuses it, KVM_BUG, the VM is dead', () => {
    const t = kvmVcpu0();
    t.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null });
    const out = t.deliver('tdx', 'td-exit', 'EXTERNAL_INTERRUPT', { vcpu: 0, RAX: 1n, RCX: 0n, RDX: 0n, R8: 0n, R9: 0n });
    expect(out).toEqual([]);
    expect(t.signals).toEqual([
      {
        type: 'tdxsim.failure',
        reason: 'KVM bug',
        detail: 'kvm.vcpu0: KVM_BUG: unexpected VM-Exit interrupt info: 0x0 (vmx_handle_external_interrupt_irqoff, §5c.1 step 4)',
      },
    ]);
  });
});

describe('kvm.vcpu: TDVMCALL outputs and a BUSY entry (§5c.1 step 5)', () => {
  it("an MMIO read's R10/R11 go with the entry, stay for the entry after a BUSY refusal, and are gone after a real exit", () => {
    const t = kvmVcpu0();
    t.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null });
    // TDG.VP.VMCALL<#VE.RequestMMIO>: a 4-byte read of shared GPA 0x8000fe000000.
    const exit = t.deliver('tdx', 'td-exit', 'TDCALL', { vcpu: 0, RAX: TDCALL, RCX: 0xffccn, R10: 0n, R11: BigInt(TDVMCALL_VE_REQUEST_MMIO), R12: 4n, R13: 0n, R14: 0x8000fe000000n, R15: 0n });
    expect(exit.map((s) => s.name)).toEqual(['KVM_EXIT_MMIO']);
    const entry = t.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: 0x1af41000n });
    expect(entry).toEqual([{ to: 'tdx', name: 'TDH.VP.ENTER', payload: { vcpu: 0, RCX: 0x100010000n, R10: 0n, R11: 0x1af41000n } }]);
    // A TRACK holds epoch_lock: the entry comes back BUSY before entering, with the registers as they went in.
    const again = t.deliver('tdx', 'td-exit', 'BUSY', { vcpu: 0, RAX: tdxStatusWithOperand(TDX_OPERAND_BUSY, TDX_OPERAND_ID_TD_EPOCH) });
    expect(again).toEqual([{ to: 'tdx', name: 'TDH.VP.ENTER', payload: { vcpu: 0, RCX: 0x100010000n, R10: 0n, R11: 0x1af41000n } }]);
    // The entry happened (the guest ran, then an interrupt): the outputs were consumed.
    const after = t.deliver('tdx', 'td-exit', 'EXTERNAL_INTERRUPT', { vcpu: 0, RAX: 1n, RCX: 0n, RDX: 0n, R8: 0n, R9: 0x800000fbn });
    expect(after).toEqual([{ to: 'tdx', name: 'TDH.VP.ENTER', payload: { vcpu: 0, RCX: 0x100010000n } }]);
  });
});

describe('kvm.vcpu: KVM_REQ_TLB_FLUSH (kvm_flush_remote_tlbs, §1.2)', () => {
  it('made while the vCPU is in userspace: the next KVM_RUN flushes its CPU (global INVEPT) before TDH.VP.ENTER, once', () => {
    const t = kvmVcpu0();
    expect(t.deliver('kvm.vm', 'kvm-request', 'KVM_REQ_TLB_FLUSH', { vcpu: 0 }).map((s) => `${s.to} ${s.name}`)).toEqual(['kvm.vm KVM_REQ_ACK']);
    const run = t.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null });
    expect(run).toEqual([{ to: 'hw.cpu0', name: 'INVEPT', payload: { vcpu: 0, type: 2, eptp: null, then: null } }]);
    expect(t.deliver('hw.cpu0', 'tlb-return', 'INVEPT', { vcpu: 0 }).map((s) => s.name)).toEqual(['TDH.VP.ENTER']);
    // The exit after it re-enters without another flush.
    expect(t.deliver('tdx', 'td-exit', 'EXTERNAL_INTERRUPT', { vcpu: 0, RAX: 1n, RCX: 0n, RDX: 0n, R8: 0n, R9: 0x800000fbn }).map((s) => s.name)).toEqual(['TDH.VP.ENTER']);
  });

  it('made while the vCPU is in the TD: an IPI, and the flush before the entry that follows the exit', () => {
    const t = kvmVcpu0();
    t.deliver('vmm', 'ioctl', 'KVM_RUN', { vcpu: 0, mmioData: null });
    expect(t.deliver('kvm.vm', 'kvm-request', 'KVM_REQ_TLB_FLUSH', { vcpu: 0 }).map((s) => `${s.to} ${s.name}`)).toEqual(['hw.cpu0 IPI']);
    const out = t.deliver('tdx', 'td-exit', 'EXTERNAL_INTERRUPT', { vcpu: 0, RAX: 1n, RCX: 0n, RDX: 0n, R8: 0n, R9: 0x800000fbn });
    // The IPI's handler runs when the thread enables interrupts; then vcpu_enter_guest takes the request.
    expect(out.map((s) => `${s.to} ${s.name}`)).toEqual(['hw.cpu0 LOCAL_IRQ_ENABLE']);
    expect(t.deliver('hw.cpu0', 'interrupt', 'IRQ_HANDLED', { vcpu: 0 }).map((s) => `${s.to} ${s.name}`)).toEqual(['hw.cpu0 INVEPT']);
    expect(t.deliver('hw.cpu0', 'tlb-return', 'INVEPT', { vcpu: 0 }).map((s) => s.name)).toEqual(['TDH.VP.ENTER']);
  });
});
