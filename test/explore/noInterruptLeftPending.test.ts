/**
 * no-interrupt-left-pending: the end-state check for interrupts a running TD vCPU never took. The world
 * after ipi-wakeup (vCPU 0 handled 0xfd and spins with IF = 1) passes; the same world with what 832f359
 * fixed put back — a notification that came while the handler ran, never processed, ON and PIR set for
 * good — fails, and so do a deliverable vIRR vector with IF = 1 and an unprocessed notification alone. A
 * guest that ended with IF = 0, a thread blocked in HLT, and any world with messages in flight pass.
 */
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { runModel } from '../../src/runtime/runner.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import { defaultInvariants, INVARIANTS, noInterruptLeftPending } from '../../src/explore/invariants/index.ts';
import type { World } from '../../src/runtime/world.ts';
import type { Message } from '../../src/protocol/messages.ts';
import type { CpuContext } from '../../machines/hw/cpu.ts';
import type { KvmVcpuContext } from '../../machines/kvm/kvmVcpu.ts';
import { exampleFile } from '../helpers.ts';

const model = modelFor(loadScenarioFile(exampleFile('ipi-wakeup')).scenario);
const end = runModel(model, { scheduler: fifoScheduler() }).world;
const LAST = { id: 0, from: 'hw.cpu0', to: 'guest.vcpu0', kind: 'insn', name: 'SPIN', payload: {}, cause: null } as unknown as Message;
const check = (w: World) => noInterruptLeftPending.check(model, w, w, LAST);

/** `w` with `actor`'s context changed by `patch` (and, if given, its state value). */
function withContext<T>(w: World, actor: string, patch: Partial<T>, value?: string): World {
  const i = model.indexOf.get(actor)!;
  const snapshots = w.snapshots.slice();
  const s = snapshots[i]!;
  snapshots[i] = { ...s, ...(value === undefined ? {} : { value }), context: { ...(s.context as T), ...patch } } as typeof s;
  return { ...w, snapshots };
}

const VECTOR_FC = 1n << 0xfcn;

describe('no-interrupt-left-pending', () => {
  it('is a default invariant, listed after no-lost-wakeup', () => {
    const names = INVARIANTS.map((s) => s.name);
    expect(names.indexOf('no-interrupt-left-pending')).toBe(names.indexOf('no-lost-wakeup') + 1);
    expect(defaultInvariants().map((i) => i.name)).toContain('no-interrupt-left-pending');
    expect(noInterruptLeftPending.footprint).toEqual({ quiescent: true });
  });

  it('ipi-wakeup at its end: vCPU 0 handled 0xfd and spins with IF = 1, nothing left pending', () => {
    expect(end.pending).toEqual([]);
    expect((model.actors.map((a, i) => [a.id, end.snapshots[i]!.context]).find(([id]) => id === 'hw.cpu0')![1] as CpuContext).rflagsIf).toBe(true);
    expect(check(end)).toBeNull();
  });

  it('before 832f359: a notification that came during the handler, never processed — ON and PIR stay set at rest', () => {
    const lost = withContext<CpuContext>(withContext<KvmVcpuContext>(end, 'kvm.vcpu0', { piDesc: { on: true, pir: VECTOR_FC } }), 'hw.cpu0', { piNotification: true });
    expect(check(lost)).toBe(
      "interrupt left pending: kvm.vcpu0's guest spins in guest mode at rest, but ON is set in its posted-interrupt descriptor (PIR 0x1000000000000000000000000000000000000000000000000000000000000000)",
    );
  });

  it('an unprocessed notification alone, or a deliverable vIRR vector with IF = 1, is left pending too', () => {
    expect(check(withContext<CpuContext>(end, 'hw.cpu0', { piNotification: true }))).toBe(
      "interrupt left pending: kvm.vcpu0's guest spins in guest mode at rest, but a posted-interrupt notification it received was never processed",
    );
    const cpu = (w: World) => w.snapshots[model.indexOf.get('hw.cpu0')!]!.context as CpuContext;
    const virr = { ...cpu(end).vapic, virr: VECTOR_FC, rvi: 0xfc };
    expect(check(withContext<CpuContext>(end, 'hw.cpu0', { vapic: virr }))).toBe(
      "interrupt left pending: kvm.vcpu0's guest spins in guest mode at rest, but vector 0xfc is deliverable in its vIRR with RFLAGS.IF = 1",
    );
    // A guest that ended with interrupts disabled chose not to take it.
    expect(check(withContext<CpuContext>(end, 'hw.cpu0', { vapic: virr, rflagsIf: false }))).toBeNull();
  });

  it('a thread blocked in HLT is no-lost-wakeup\'s case; with messages in flight nothing is judged', () => {
    const lost = withContext<KvmVcpuContext>(end, 'kvm.vcpu0', { piDesc: { on: true, pir: VECTOR_FC } });
    expect(check(withContext<KvmVcpuContext>(lost, 'kvm.vcpu0', {}, 'halted'))).toBeNull();
    expect(check({ ...lost, pending: [LAST] })).toBeNull();
  });
});
