/**
 * No lost wake-up: a TD vCPU thread blocked in HLT (kvm_vcpu_halt, halted) never has a wake-up event
 * pending that it is meant to see — ON set in its posted-interrupt descriptor, or, when the guest halted
 * with interrupts enabled (TDG.VP.VMCALL<Instruction.HLT> with R12 = 0), a deliverable virtual interrupt
 * in its CPU's vIRR (VMXIP) or in a PIR on its way there. Nothing in the model will wake such a vCPU
 * again but a signal: the guest waits for ever for an interrupt it was sent (policy hltChecksVmxip off
 * blocks on the descriptor alone). A predicate of vCPU v's thread, its CPU and the PIRs in flight to that CPU,
 * so it can only become true at a delivery to kvm.vcpuV (which alone posts, sends PIR and blocks) or to
 * hw.cpuV (which takes PIR into vIRR): it is checked there, for v, and the search meets the first wake-up
 * lost at the delivery that loses it. Non-progress and no-deadlock treat such a thread as stuck rather
 * than at rest (src/explore/progress.ts, noDeadlock.ts).
 */
import { hex } from '../../arch/hex.ts';
import type { Model, World } from '../../runtime/world.ts';
import type { KvmVcpuContext } from '../../../machines/kvm/kvmVcpu.ts';
import type { CpuContext } from '../../../machines/hw/cpu.ts';
import { highestVector, takePir, virtualInterruptPending } from '../../../machines/hw/virtualApic.ts';
import { snapshotOf, stateName, type Invariant } from './invariant.ts';

/** A vCPU thread or its CPU: the deliveries that can lose a wake-up. */
const VCPU_SIDE = /^(?:kvm\.vcpu|hw\.cpu)(\d+)$/;

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
  // A delivery to vCPU v's thread or CPU reads both, and the PIRs in flight to the CPU.
  footprint: {
    on: (a) => VCPU_SIDE.test(a),
    reads: (a) => VCPU_SIDE.test(a),
    pendingTo: (a) => a.startsWith('hw.cpu'),
    // Only a thread blocked in HLT can have lost its wake-up.
    fast(v) {
      const thread = v.model.indexOf.get(`kvm.vcpu${VCPU_SIDE.exec(v.delivered.to)![1]}`);
      if (thread === undefined || stateName(v.snapshot(thread).value) !== 'halted') return null;
      return noLostWakeup.check(v.model, v.before(), v.after(), v.delivered);
    },
  },
  check(model, _before, after, m) {
    const v = VCPU_SIDE.exec(m.to)?.[1];
    if (v === undefined) return null;
    const thread = `kvm.vcpu${v}`;
    const why = pendingWakeup(model, after, thread);
    return why === null ? null : `lost wake-up: ${thread} is blocked in HLT (kvm_vcpu_halt) although ${why}`;
  },
};
