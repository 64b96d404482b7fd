/**
 * No thread waits forever: when nothing is in flight and no failure was reached, every host thread is at
 * rest. A KVM vCPU thread rests blocked in HLT (the guest's program ended with `hlt`), in guest mode while
 * its guest spins at the end of a program without `hlt`, after its vCPU was freed, or with the VM dead; kvm.vm rests between ioctls or destroyed; nobody holds mmu_lock; the VMM
 * waits in its main loop or has exited; each CPU is idle. Any other quiescent world is a deadlock — a
 * vCPU spinning on a lock nobody releases, a kick whose acknowledgements never come, a VMM stuck in
 * `stopping` — and the detail names who is stuck where.
 */
import type { Model, World } from '../../runtime/world.ts';
import { snapshotOf, stateName, type Invariant } from './invariant.ts';

const REST: readonly [RegExp, readonly string[]][] = [
  [/^kvm\.vcpu\d+$/, ['halted', 'freed', 'vmDead']],
  [/^kvm\.vm$/, ['idle', 'destroyed', 'vmDead', 'modelLimit']],
  [/^kvm\.mmu$/, ['unlocked']],
  [/^vmm$/, ['running', 'exited', 'buildFailed']],
  [/^hw\.cpu\d+$/, ['idle']],
];

/** A vCPU thread inside TDH.VP.ENTER / VMRESUME: at rest if its guest runs on forever. */
const GUEST_MODE = ['inTdhVpEnter', 'inGuestMode'];

function guestSpins(model: Model, world: World, kvmVcpu: string): boolean {
  const guest = snapshotOf(model, world, kvmVcpu.replace(/^kvm\./, 'guest.'));
  return guest !== undefined && stateName(guest.value) === 'spinning';
}

export const noDeadlock: Invariant = {
  name: 'no-deadlock',
  description: 'when nothing is in flight, every vCPU thread is halted or freed, mmu_lock is free, kvm.vm and the VMM are idle or gone',
  footprint: { quiescent: true },
  check(model, _before, after) {
    if (after.pending.length > 0 || after.failures.length > 0) return null;
    const stuck: string[] = [];
    model.actors.forEach((a, i) => {
      const rest = REST.find(([re]) => re.test(a.id))?.[1];
      const state = stateName(after.snapshots[i]!.value);
      if (rest === undefined || rest.includes(state)) return;
      if (GUEST_MODE.includes(state) && guestSpins(model, after, a.id)) return;
      stuck.push(`${a.id} in ${state}`);
    });
    return stuck.length === 0 ? null : `deadlock: nothing in flight, but ${stuck.join(', ')}`;
  },
};
