/**
 * KVM's sleeping locks — kvm->lock, kvm->slots_lock and each vCPU's vcpu->mutex — as explicit mutexes
 * with a holder and a FIFO of waiters, owned by one actor (`kvm.locks`) the way the lock words live in
 * struct kvm and struct kvm_vcpu. A thread takes a mutex with MUTEX_LOCK and is answered MUTEX_ACQUIRED
 * when it holds it (at once, or when the holder's MUTEX_UNLOCK hands it over); MUTEX_UNLOCK is answered
 * MUTEX_UNLOCKED. Taking and dropping are separate steps, so any other thread can act while a lock is held
 * and a thread asleep on a held mutex is a waiter the no-deadlock invariant's wait-for graph sees.
 *
 * The order the kernel takes them in (Documentation/virt/kvm/locking.rst; vcpu->mutex outside
 * kvm->slots_lock is the documented exception to "VM before vCPU"): kvm->lock → vcpu->mutex →
 * kvm->slots_lock. `ioctlLocks` says which an ioctl holds, in that order (tdx.c tdx_acquire_vm_state_locks
 * for the TD's state transitions; kvm_vm_set_mem_attributes for KVM_SET_MEMORY_ATTRIBUTES;
 * kvm_vm_ioctl_create_vcpu for KVM_CREATE_VCPU). Other ioctls (a memslot update: slots_lock) use the same
 * API: `ioctlLocks`, then `mutexLock` / `mutexUnlock` steps around the ioctl body.
 *
 * KVM_RUN holds its vCPU's mutex for the whole ioctl (kvm_vcpu_ioctl): the vCPU thread (kvm.vcpuN) takes it
 * on entry and drops it when KVM_RUN returns to userspace, so a TD-state ioctl against a running vCPU sleeps
 * on it (kvm_lock_all_vcpus waits, killably) and the wait-for graph names the vCPU as the holder.
 *
 * The model takes these mutexes only in scenarios with host threads (`hostThreads:`): with one VMM thread
 * nothing competes for them, and leaving them out keeps those logs as they were.
 */
import { setup, enqueueActions } from 'xstate';
import { out, type MachineEvent, type Outgoing } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';

export const KVM_LOCK = 'kvm->lock';
export const SLOTS_LOCK = 'kvm->slots_lock';
export const vcpuMutex = (vcpu: number) => `vcpu${vcpu}->mutex`;

/** One mutex: the thread holding it (an actor id) and the threads asleep on it, first come first served. */
export interface Mutex {
  holder: string | null;
  waiters: readonly string[];
}

export type KvmLocks = Readonly<Record<string, Mutex>>;

export function initialLocks(vcpus: number): KvmLocks {
  const locks: Record<string, Mutex> = { [KVM_LOCK]: { holder: null, waiters: [] }, [SLOTS_LOCK]: { holder: null, waiters: [] } };
  for (let v = 0; v < vcpus; v++) locks[vcpuMutex(v)] = { holder: null, waiters: [] };
  return locks;
}

/** mutex_lock: the thread holds it now (granted) or sleeps as its last waiter. */
export function mutexLock(locks: KvmLocks, name: string, thread: string): { locks: KvmLocks; granted: boolean } {
  const m = locks[name];
  if (m === undefined) throw new Error(`kvm.locks: no mutex ${name}`);
  if (m.holder === thread) throw new Error(`kvm.locks: ${thread} takes ${name} it already holds (a self-deadlock)`);
  if (m.holder === null) return { locks: { ...locks, [name]: { holder: thread, waiters: m.waiters } }, granted: true };
  return { locks: { ...locks, [name]: { holder: m.holder, waiters: [...m.waiters, thread] } }, granted: false };
}

/** mutex_unlock: the first waiter, if any, becomes the holder (`next`), as the mutex hands off to the woken waiter. */
export function mutexUnlock(locks: KvmLocks, name: string, thread: string): { locks: KvmLocks; next: string | null } {
  const m = locks[name];
  if (m === undefined || m.holder !== thread) throw new Error(`kvm.locks: ${thread} unlocks ${name} held by ${m?.holder ?? 'nobody'}`);
  const [next = null, ...rest] = m.waiters;
  return { locks: { ...locks, [name]: { holder: next, waiters: rest } }, next };
}

/** Each waiter and the holder it waits for, for the wait-for graph. */
export function lockWaits(locks: KvmLocks): { thread: string; on: string; holder: string }[] {
  return Object.entries(locks).flatMap(([name, m]) => (m.holder === null ? [] : m.waiters.map((thread) => ({ thread, on: name, holder: m.holder! }))));
}

/** The ioctls that take these mutexes, by the model's host-step op. */
export type LockedIoctl = 'createVcpu' | 'initVm' | 'initVcpu' | 'initMemRegion' | 'finalize' | 'setAttributes';

/**
 * The mutexes an ioctl holds across its body, in the order it takes them (it drops them in reverse).
 * `vcpus` are the vCPUs that exist when it runs (kvm_lock_all_vcpus takes every online vCPU's mutex).
 */
export function ioctlLocks(op: LockedIoctl, vcpus: readonly number[]): string[] {
  switch (op) {
    case 'initVm':
    case 'initVcpu':
    case 'initMemRegion':
    case 'finalize':
      // tdx_acquire_vm_state_locks: kvm->lock, every vCPU's mutex, then slots_lock (vcpu->mutex outside slots_lock).
      return [KVM_LOCK, ...[...vcpus].sort((a, b) => a - b).map(vcpuMutex), SLOTS_LOCK];
    case 'setAttributes':
      return [SLOTS_LOCK];
    case 'createVcpu':
      return [KVM_LOCK];
  }
}

export interface KvmLocksContext {
  kvmLocks: KvmLocks;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

/** The lock words: answers MUTEX_LOCK when the caller holds the mutex, MUTEX_UNLOCK at once. */
export const kvmLocksMachine = setup({
  types: { context: {} as KvmLocksContext, events: {} as MachineEvent, input: {} as { vcpus: number }, emitted: {} as Emitted },
  actions: {
    lock: enqueueActions(({ context, event, enqueue }) => {
      const name = (event.msg.payload as { lock: string }).lock;
      const r = mutexLock(context.kvmLocks, name, event.msg.from);
      enqueue.assign({ kvmLocks: r.locks });
      if (r.granted) enqueue.emit(out(event.msg.from, 'mutex', 'MUTEX_ACQUIRED', { lock: name }));
    }),
    unlock: enqueueActions(({ context, event, enqueue }) => {
      const name = (event.msg.payload as { lock: string }).lock;
      const r = mutexUnlock(context.kvmLocks, name, event.msg.from);
      enqueue.assign({ kvmLocks: r.locks });
      enqueue.emit(out(event.msg.from, 'mutex', 'MUTEX_UNLOCKED', { lock: name }));
      if (r.next !== null) enqueue.emit(out(r.next, 'mutex', 'MUTEX_ACQUIRED', { lock: name }));
    }),
  },
}).createMachine({
  id: 'kvmLocks',
  context: ({ input }) => ({ kvmLocks: initialLocks(input.vcpus) }),
  initial: 'ready',
  states: { ready: { on: { MUTEX_LOCK: { actions: 'lock' }, MUTEX_UNLOCK: { actions: 'unlock' } } } },
});
