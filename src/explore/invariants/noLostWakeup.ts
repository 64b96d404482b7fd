/**
 * No lost wake-up: a TD vCPU thread blocked in HLT (kvm_vcpu_halt, halted) never has a wake-up event
 * pending that it is meant to see — ON set in its posted-interrupt descriptor, or, when the guest halted
 * with interrupts enabled (TDG.VP.VMCALL<Instruction.HLT> with R12 = 0), a deliverable virtual interrupt
 * in its CPU's vIRR (VMXIP) or in a PIR on its way there. Nothing in the model will wake such a vCPU
 * again but a signal: the guest waits for ever for an interrupt it was sent (policy hltChecksVmxip off
 * blocks on the descriptor alone). A state predicate, checked after every delivery; non-progress and
 * no-deadlock treat such a thread as stuck rather than at rest (src/explore/progress.ts, noDeadlock.ts).
 */
import { hex } from '../../arch/hex.ts';
import type { Model, World } from '../../runtime/world.ts';
import type { KvmVcpuContext } from '../../../machines/kvm/kvmVcpu.ts';
import type { CpuContext } from '../../../machines/hw/cpu.ts';
import { highestVector, takePir, virtualInterruptPending } from '../../../machines/hw/virtualApic.ts';
import { snapshotOf, stateName, type Invariant } from './invariant.ts';

const VCPU_THREAD = /^kvm\.vcpu(\d+)$/;

/** What should have woken the blocked vCPU thread `kvmVcpu`, or null if it rests rightly (or is not blocked). */
export function pendingWakeup(model: Model, world: World, kvmVcpu: string): string | null {
  const k = snapshotOf(model, world, kvmVcpu);
  if (k === undefined || stateName(k.value) !== 'halted') return null;
  const kc = k.context as KvmVcpuContext;
  if (kc.vmType !== 'tdx') return null;
  if (kc.piDesc.on) return `ON is set in its posted-interrupt descriptor (PIR ${hex(kc.piDesc.pir)})`;
  if ((kc.exit?.gprs?.R12 ?? 1n) !== 0n) return null;
  const cpuId = `hw.cpu${kc.vcpu}`;
  const cpu = snapshotOf(model, world, cpuId)?.context as CpuContext | undefined;
  if (cpu === undefined) return null;
  const inFlight = world.pending.filter((m) => m.to === cpuId && m.name === 'PIR').reduce((pir, m) => pir | (m.payload as { pir: bigint }).pir, 0n);
  const vapic = takePir(cpu.vapic, inFlight);
  if (!virtualInterruptPending(vapic)) return null;
  return `its guest halted with interrupts enabled (R12 = 0) and vector ${hex(highestVector(vapic.virr))} is pending for it (VMXIP)`;
}

export const noLostWakeup: Invariant = {
  name: 'no-lost-wakeup',
  description: "no TD vCPU stays blocked in HLT with a wake-up pending: ON in its posted-interrupt descriptor, or (halted with R12 = 0) a deliverable interrupt in its vIRR",
  check(model, _before, after) {
    for (const a of model.actors) {
      if (!VCPU_THREAD.test(a.id)) continue;
      const why = pendingWakeup(model, after, a.id);
      if (why !== null) return `lost wake-up: ${a.id} is blocked in HLT (kvm_vcpu_halt) although ${why}`;
    }
    return null;
  },
};
