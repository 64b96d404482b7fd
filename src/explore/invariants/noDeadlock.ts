/**
 * No thread waits forever: when nothing is in flight and no failure was reached, every host thread is at
 * rest, and the VMM's host program has run to its end. A KVM vCPU thread rests blocked in HLT (the guest's program ended with `hlt`), in guest mode while
 * its guest spins at the end of a program without `hlt`, after its vCPU was freed, with the VM dead, or in userspace where the VMM left it; kvm.vm rests between ioctls or destroyed; nobody holds mmu_lock; the VMM
 * waits in its main loop or has exited; each CPU is idle. Any other quiescent world is a deadlock — a
 * vCPU spinning on a lock nobody releases, a kick whose acknowledgements never come, a VMM stuck in
 * `stopping` — and the detail names who is stuck where. Threads waiting for one another in a cycle
 * (waitFor.ts) are a deadlock at once, whatever else is still in flight.
 *
 * Only KVM's threads and the VMM wait or are waited for, and a wait cycle among them can only form at a
 * delivery to one of them (it changes a wait, or takes the last message a waiting thread still had to
 * take): a send to one of them ends a wait, a delivery to anyone else touches none. So the cycle is
 * looked for at those deliveries, reading those threads and the messages in flight to them, and found at
 * the delivery that closes it; the rest of the world is read only when nothing is in flight.
 */
import type { Model, World } from '../../runtime/world.ts';
import { snapshotOf, stateName, type Invariant } from './invariant.ts';
import type { VmmContext } from '../../../machines/vmm/vmm.ts';
import { describeStep } from '../../../machines/vmm/hostProgram.ts';
import { anyWait, waitCycle, waitDescriptions } from './waitFor.ts';
import { pendingWakeup } from './noLostWakeup.ts';

const REST: readonly [RegExp, readonly string[]][] = [
  [/^kvm\.vcpu\d+$/, ['halted', 'freed', 'vmDead']],
  [/^kvm\.vm$/, ['idle', 'destroyed', 'vmDead', 'modelLimit']],
  [/^kvm\.mmu$/, ['unlocked']],
  [/^vmm$/, ['running', 'exited', 'buildFailed']],
  [/^vmm\.thread\d+$/, ['idle', 'done']],
  [/^hw\.cpu\d+$/, ['idle']],
];

/** A vCPU thread inside TDH.VP.ENTER / VMRESUME: at rest if its guest runs on forever. */
const GUEST_MODE = ['inTdhVpEnter', 'inGuestMode'];

function guestSpins(model: Model, world: World, kvmVcpu: string): boolean {
  const guest = snapshotOf(model, world, kvmVcpu.replace(/^kvm\./, 'guest.'));
  return guest !== undefined && stateName(guest.value) === 'spinning';
}

/**
 * A vCPU thread the VMM chose never to run again rests in userspace: stopped on a memory fault
 * (`vmm.memoryFault: stop`), or holding an exit a finished host program took and did not answer.
 */
function vmmStopped(model: Model, world: World, kvmVcpu: string): boolean {
  const vmm = snapshotOf(model, world, 'vmm');
  if (vmm === undefined) return false;
  const c = vmm.context as VmmContext;
  const v = Number(kvmVcpu.replace(/^kvm\.vcpu/, ''));
  // A vCPU a host thread was to create once the TD ran never gets a KVM_RUN (a TD takes no vCPU then).
  return c.stopped[v] === true || (c.held[v] != null && c.pc >= c.program.length) || (c.threads?.unrun.includes(v) ?? false);
}

/** The threads that can wait for one another (waitFor.ts): KVM's vCPU threads, kvm.vm, kvm.mmu's lock, kvm.locks' mutexes, the VMM and its host threads (vmm.threadN). */
const THREADS = (a: string): boolean => a.startsWith('kvm.') || a === 'vmm' || a.startsWith('vmm.');

export const noDeadlock: Invariant = {
  name: 'no-deadlock',
  description: 'no wait cycle between threads (mmu_lock, kicks, synchronize_srcu, the VMM waiting for vCPUs or its host threads, KVM\'s mutexes), even with messages in flight; when nothing is in flight, every vCPU thread is halted or freed, mmu_lock is free, kvm.vm and the VMM are idle or gone',
  footprint: {
    on: THREADS,
    reads: THREADS,
    pendingTo: THREADS,
    quiescent: true,
    // With something in flight only a wait cycle counts, and most states have no thread waiting at all.
    fast: (v) => (anyWait(v.model, (i) => v.snapshot(i)) ? noDeadlock.check(v.model, v.before(), v.after(), v.delivered) : null),
  },
  check(model, _before, after, m) {
    if (after.failures.length > 0) return null;
    if (after.pending.length > 0 && !THREADS(m.to)) return null;
    const cycle = waitCycle(model, after);
    if (cycle !== null) return `deadlock: a wait cycle: ${cycle}`;
    if (after.pending.length > 0) return null;
    const stuck: string[] = [];
    const waits = waitDescriptions(model, after);
    model.actors.forEach((a, i) => {
      const rest = REST.find(([re]) => re.test(a.id))?.[1];
      const state = stateName(after.snapshots[i]!.value);
      // Blocked in HLT is rest, unless a wake-up it should have seen is pending (no-lost-wakeup).
      if (rest === undefined || (rest.includes(state) && pendingWakeup(model, after, a.id) === null)) return;
      if (GUEST_MODE.includes(state) && guestSpins(model, after, a.id)) return;
      if (state === 'inUserspace' && vmmStopped(model, after, a.id)) return;
      const on = waits.get(a.id);
      stuck.push(`${a.id} in ${state}${on === undefined ? '' : ` (waits for ${on})`}`);
    });
    const vmm = model.indexOf.get('vmm');
    const c = vmm === undefined ? undefined : (after.snapshots[vmm]!.context as VmmContext);
    if (c !== undefined && stateName(after.snapshots[vmm!]!.value) === 'running' && c.pc < c.program.length) stuck.push(`vmm waits at ${describeStep(c.program[c.pc])}`);
    return stuck.length === 0 ? null : `deadlock: nothing in flight, but ${stuck.join(', ')}`;
  },
};
