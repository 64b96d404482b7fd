/**
 * The TDX module's statechart driven one message at a time, for tests that need the module's own answers
 * (what it sends, and its context) without the rest of the model: a TD built to RUNNABLE with vCPU 0,
 * then entries, VM exits and SEAMCALLs delivered by hand. The module's steps of its own (tdx → tdx) are
 * handed back to it by `step`.
 */
import { expect } from 'vitest';
import { createActor } from 'xstate';
import { tdxModuleMachine, type TdxModuleContext } from '../../machines/tdxModule/tdxModule.ts';
import { HOST_LAYOUT, TD_HKID } from '../../machines/registry.ts';
import { STEPPING_EPF_THRESHOLD, TDX_SUCCESS, TD_ATTR_SEPT_VE_DISABLE } from '../../src/arch/tdxStatus.ts';
import type { Gprs, Message, MessageKind } from '../../src/protocol/messages.ts';

export interface Sent {
  to: string;
  kind: string;
  name: string;
  payload: Record<string, unknown>;
}

export const TDR = HOST_LAYOUT.tdrPa;
export const TDVPR0 = HOST_LAYOUT.tdvprPa(0);
const TDVPR1 = HOST_LAYOUT.tdvprPa(1);

export function tdxModule(zeroStepThreshold = STEPPING_EPF_THRESHOLD) {
  const actor = createActor(tdxModuleMachine, { input: { gpaw: 48, tdvpr: [TDVPR0, TDVPR1], hkidShift: HOST_LAYOUT.hkidShift, zeroStepThreshold } });
  const sent: Sent[] = [];
  const signals: unknown[] = [];
  actor.on('*', (e) => {
    if (e.type === 'tdxsim.send') sent.push({ to: e.to, kind: e.kind, name: e.name, payload: e.payload as Record<string, unknown> });
    else signals.push(e);
  });
  actor.start();
  let id = 0;
  /** Deliver one message; the messages the module sent while handling it. */
  const deliver = (from: string, kind: MessageKind, name: string, payload: Record<string, unknown>): Sent[] => {
    const before = sent.length;
    actor.send({ type: name, msg: { id: id++, from, to: 'tdx', kind, name, payload, cause: null } as unknown as Message } as never);
    return sent.slice(before);
  };
  /** A SEAMCALL and its one return to the caller. */
  const call = (from: string, name: string, regs: Record<string, unknown>): Gprs => {
    const out = deliver(from, 'seamcall', name, regs);
    expect(out, `${from} ${name}`).toHaveLength(1);
    expect(out[0]).toMatchObject({ to: from, name });
    return out[0]!.payload as Gprs;
  };
  /** Deliver the module's steps of its own until it sends something elsewhere; those messages. */
  const step = (out: Sent[]): Sent[] => {
    let pending = out;
    for (;;) {
      const own = pending.filter((m) => m.to === 'tdx');
      const other = pending.filter((m) => m.to !== 'tdx');
      if (own.length === 0) return other;
      pending = [...other, ...own.flatMap((m) => deliver('tdx', 'seam-step', m.name, m.payload))];
    }
  };
  const ctx = () => actor.getSnapshot().context as TdxModuleContext;
  return { deliver, call, step, ctx, signals };
}

export type TdxDriver = ReturnType<typeof tdxModule>;

/** KVM_TDX_INIT_VM, KVM_TDX_INIT_VCPU for vCPU 0 (on CPU 0), KVM_TDX_FINALIZE_VM (§5b.3), without memory. */
export function runnableTd(options: { attributes?: bigint; zeroStepThreshold?: number } = {}): TdxDriver {
  const m = tdxModule(options.zeroStepThreshold);
  const ok = (from: string, name: string, regs: Record<string, unknown>) => expect(m.call(from, name, regs), name).toMatchObject({ RAX: TDX_SUCCESS });
  ok('kvm.vm', 'TDH.MNG.CREATE', { RCX: TDR, RDX: BigInt(TD_HKID) });
  ok('kvm.vm', 'TDH.MNG.KEY.CONFIG', { RCX: TDR });
  for (const i of [0, 1, 2, 3, 4, 5]) ok('kvm.vm', 'TDH.MNG.ADDCX', { RCX: HOST_LAYOUT.tdcsPa(i), RDX: TDR });
  ok('kvm.vm', 'TDH.MNG.INIT', { RCX: TDR, RDX: HOST_LAYOUT.tdParamsPa, tdParams: { attributes: options.attributes ?? TD_ATTR_SEPT_VE_DISABLE, configFlags: 0x4n, eptpControls: 0x1en } });
  ok('kvm.vcpu0', 'TDH.VP.CREATE', { RCX: TDVPR0, RDX: TDR });
  for (const i of [0, 1, 2, 3, 4]) ok('kvm.vcpu0', 'TDH.VP.ADDCX', { RCX: HOST_LAYOUT.tdcxPa(0, i), RDX: TDVPR0 });
  ok('kvm.vcpu0', 'TDH.VP.INIT', { RCX: TDVPR0, RDX: 0n, R8: 0n });
  ok('kvm.vm', 'TDH.MR.FINALIZE', { RCX: TDR });
  return m;
}

/** vCPU 0's TDH.VP.ENTER through its epoch step (and a stepping filter, if any): what reaches the guest or KVM. */
export function enter(m: TdxDriver, regs: Gprs = {}): Sent[] {
  return m.step(m.deliver('kvm.vcpu0', 'seamcall', 'TDH.VP.ENTER', { vcpu: 0, RCX: TDVPR0, ...regs }));
}
