/**
 * No interrupt left pending: at rest (nothing in flight), a TD vCPU whose guest runs on — its thread in
 * guest mode, the guest spinning at the end of its program, at an instruction boundary all the time — has
 * nothing the CPU should still be doing with interrupts:
 *
 * - ON clear in its posted-interrupt descriptor. ON set means a notification was due (the IPI in guest
 *   mode, or the self-IPI at the next entry) and posted-interrupt processing, which does not look at
 *   RFLAGS.IF, takes PIR into vIRR and clears ON at the next boundary; at rest it never will.
 * - No notification received and not yet processed (the CPU's own record of the IPI), for the same reason.
 * - No deliverable vector in vIRR while RFLAGS.IF = 1, no STI shadow, VE_INFO free and no NMI handler
 *   running: the CPU delivers one at the next boundary (SDM 30.2.1, RVI[7:4] > VPPR[7:4]).
 *
 * Legitimately left pending, and not flagged: vectors in vIRR of a guest that ended with interrupts
 * disabled (IF = 0: the program chose not to take them); anything pending for a vCPU thread blocked in
 * HLT (no-lost-wakeup decides whether it is a lost wake-up: with R12 = 1 the guest halted with interrupts
 * blocked and waits for nothing but ON), parked in userspace by the VMM, freed, or of a dead VM. A guest
 * that stopped anywhere but at its spin in guest mode at rest is no-deadlock's finding.
 *
 * This is the end-state check that would have caught what irq19b fixed (832f359): a notification that
 * arrived while the guest's handler ran after its program ended was never processed, and PIR stayed set
 * with ON for good.
 */
import { hex } from '../../arch/hex.ts';
import type { Model, World } from '../../runtime/world.ts';
import type { KvmVcpuContext } from '../../../machines/kvm/kvmVcpu.ts';
import type { CpuContext } from '../../../machines/hw/cpu.ts';
import { highestVector, virtualInterruptPending } from '../../../machines/hw/virtualApic.ts';
import { snapshotOf, stateName, type Invariant } from './invariant.ts';

/** A vCPU thread running its guest (TDH.VP.ENTER, or the model's guest-mode state). */
const GUEST_MODE = ['inTdhVpEnter', 'inGuestMode'];
const KVM_VCPU = /^kvm\.vcpu(\d+)$/;

/** What the TD vCPU whose KVM thread is `kvmVcpu` has left pending at rest, or null. */
export function interruptLeftPending(model: Model, world: World, kvmVcpu: string): string | null {
  const k = snapshotOf(model, world, kvmVcpu);
  if (k === undefined || !GUEST_MODE.includes(stateName(k.value))) return null;
  const kc = k.context as KvmVcpuContext;
  if (kc.vmType !== 'tdx') return null;
  const guest = snapshotOf(model, world, `guest.vcpu${kc.vcpu}`);
  if (guest === undefined || stateName(guest.value) !== 'spinning') return null;
  const cpu = snapshotOf(model, world, `hw.cpu${kc.vcpu}`)?.context as CpuContext | undefined;
  if (kc.piDesc.on) return `ON is set in its posted-interrupt descriptor (PIR ${hex(kc.piDesc.pir)})`;
  if (cpu === undefined) return null;
  if (cpu.piNotification) return 'a posted-interrupt notification it received was never processed';
  if (cpu.rflagsIf && !cpu.stiBlocking && cpu.veInfo.valid === 0 && !cpu.inNmi && virtualInterruptPending(cpu.vapic)) {
    return `vector ${hex(highestVector(cpu.vapic.virr))} is deliverable in its vIRR with RFLAGS.IF = 1`;
  }
  return null;
}

export const noInterruptLeftPending: Invariant = {
  name: 'no-interrupt-left-pending',
  description: 'at rest, no TD vCPU whose guest spins in guest mode has ON set in its posted-interrupt descriptor, an unprocessed notification, or a deliverable vIRR vector with RFLAGS.IF = 1',
  // Only a world with nothing in flight is judged, and then it reads the whole world.
  footprint: { quiescent: true },
  check(model, _before, after) {
    if (after.pending.length > 0 || after.failures.length > 0) return null;
    for (const a of model.actors) {
      if (!KVM_VCPU.test(a.id)) continue;
      const why = interruptLeftPending(model, after, a.id);
      if (why !== null) return `interrupt left pending: ${a.id}'s guest spins in guest mode at rest, but ${why}`;
    }
    return null;
  },
};
