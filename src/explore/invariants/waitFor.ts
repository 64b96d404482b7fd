/**
 * KVM's threads waiting for one another, as a wait-for graph, so a deadlock shows while other threads
 * still run (messages in flight), not only at quiescence. The waits the model has:
 *
 * - a thread queued on kvm->mmu_lock waits for the lock's holders;
 * - a thread in kvm_make_all_cpus_request (kickWaiting > 0: a kick or a remote TLB flush, under mmu_lock
 *   for the zaps) waits for the other vCPU threads' acknowledgements;
 * - a memslot update in synchronize_srcu waits for the vCPU threads that have not left their kvm->srcu
 *   read-side section since it began (a reader that keeps running inside it is non-progress, not this);
 * - the VMM stopping the VM waits for every vCPU thread still inside KVM_RUN;
 * - the VMM's host program at `waitExit` waits for that vCPU's thread, at `join` for that host thread, and
 *   a host thread at `waitExit` for the vCPU it runs;
 * - a thread asleep on one of KVM's mutexes (kvm->lock, vcpu->mutex, kvm->slots_lock: kvmLocks.ts) waits
 *   for the mutex's holder, so a lock-order inversion between host threads is a cycle.
 *
 * A thread is blocked when nothing is in flight to it and it is in one of those waits. Blocked threads
 * that wait only for blocked threads stay blocked forever: the greatest such set (start from every
 * blocked thread, drop one while anything it waits for could still move) is a deadlock, and it contains a
 * cycle the detail names. The check is conservative where the model keeps counts, not names: a thread
 * waiting for acknowledgements leaves the set as soon as any vCPU thread could still move.
 */
import type { AnyMachineSnapshot } from 'xstate';
import type { Model, World } from '../../runtime/world.ts';
import type { MmuLockState } from '../../../machines/kvm/mmuLock.ts';
import type { VmmContext } from '../../../machines/vmm/vmm.ts';
import { describeStep } from '../../../machines/vmm/hostProgram.ts';
import { lockWaits, type KvmLocksContext } from '../../../machines/kvm/kvmLocks.ts';
import { describeThreadStep, type HostThreadContext } from '../../../machines/vmm/hostThread.ts';
import { stateName } from './invariant.ts';

interface Wait {
  /** What the thread waits in, for the report. */
  on: string;
  /** Threads any one of which could end the wait. */
  for: readonly string[];
}

/** What each waiting thread waits in (for a report that names a stuck thread's wait). */
export function waitDescriptions(model: Model, world: World): Map<string, string> {
  return new Map([...waitsOf(model, world)].map(([a, w]) => [a, w.on]));
}

function waitsOf(model: Model, world: World): Map<string, Wait> {
  return waitsIn(model, (i) => world.snapshots[i]!);
}

/**
 * Whether any thread waits at all in the states `snapshot` gives (per actor index): most states have no
 * wait. The same answer as a non-empty `waitsIn`, without building it.
 */
export function anyWait(model: Model, snapshot: (i: number) => AnyMachineSnapshot): boolean {
  const mmu = model.indexOf.get('kvm.mmu');
  if (mmu !== undefined && (snapshot(mmu).context as { lock: MmuLockState }).lock.waiters.length > 0) return true;
  for (let i = 0; i < model.actors.length; i++) {
    const k = (snapshot(i).context as { kickWaiting?: number }).kickWaiting;
    if (typeof k === 'number' && k > 0) return true;
  }
  const vm = model.indexOf.get('kvm.vm');
  if (vm !== undefined && ((snapshot(vm).context as { srcuWaiting?: readonly number[] }).srcuWaiting ?? []).length > 0) return true;
  const locks = model.indexOf.get('kvm.locks');
  if (locks !== undefined && lockWaits((snapshot(locks).context as KvmLocksContext).kvmLocks).length > 0) return true;
  for (let i = 0; i < model.actors.length; i++) {
    if (/^vmm\.thread\d+$/.test(model.actors[i]!.id) && stateName(snapshot(i).value) === 'waitingExit') return true;
  }
  const vmm = model.indexOf.get('vmm');
  if (vmm === undefined) return false;
  const s = snapshot(vmm);
  const state = stateName(s.value);
  if (state === 'stopping') return true;
  const c = s.context as VmmContext;
  const step = c.program[c.pc];
  if (state === 'building') return step?.op === 'join';
  if (state !== 'running') return false;
  return !c.awaiting && step?.op === 'waitExit' && c.inKernel[step.vcpu] === true;
}

function waitsIn(model: Model, snapshot: (i: number) => AnyMachineSnapshot): Map<string, Wait> {
  const waits = new Map<string, Wait>();
  const vcpus = model.actors.filter((a) => /^kvm\.vcpu\d+$/.test(a.id)).map((a) => a.id);
  const mmu = model.indexOf.get('kvm.mmu');
  if (mmu !== undefined) {
    const lock = (snapshot(mmu).context as { lock: MmuLockState }).lock;
    const holders = lock.writer !== null ? [lock.writer] : [...lock.readers];
    for (const w of lock.waiters) waits.set(w.actor, { on: `mmu_lock for ${w.mode}`, for: holders });
  }
  const vm = model.indexOf.get('kvm.vm');
  if (vm !== undefined) {
    const readers = (snapshot(vm).context as { srcuWaiting?: readonly number[] }).srcuWaiting ?? [];
    if (readers.length > 0) waits.set('kvm.vm', { on: 'synchronize_srcu(&kvm->srcu)', for: readers.map((v) => `kvm.vcpu${v}`) });
  }
  model.actors.forEach((a, i) => {
    const c = snapshot(i).context as { kickWaiting?: number };
    if (typeof c.kickWaiting === 'number' && c.kickWaiting > 0 && !waits.has(a.id)) {
      waits.set(a.id, { on: `${c.kickWaiting} KVM_REQ_ACK`, for: vcpus.filter((v) => v !== a.id) });
    }
  });
  const locks = model.indexOf.get('kvm.locks');
  if (locks !== undefined) {
    for (const w of lockWaits((snapshot(locks).context as KvmLocksContext).kvmLocks)) waits.set(w.thread, { on: `${w.on} held by ${w.holder}`, for: [w.holder] });
  }
  model.actors.forEach((a, i) => {
    if (!/^vmm\.thread\d+$/.test(a.id) || stateName(snapshot(i).value) !== 'waitingExit') return;
    const c = snapshot(i).context as HostThreadContext;
    const step = c.program[c.pc]!;
    if (step.op === 'waitExit') waits.set(a.id, { on: describeThreadStep(step), for: [`kvm.vcpu${step.vcpu}`] });
  });
  const vmm = model.indexOf.get('vmm');
  if (vmm !== undefined) {
    const s = snapshot(vmm);
    const c = s.context as VmmContext;
    const state = stateName(s.value);
    if (state === 'stopping') waits.set('vmm', { on: 'pause_all_vcpus', for: c.inKernel.flatMap((k, v) => (k ? [`kvm.vcpu${v}`] : [])) });
    else if (state === 'building') {
      const step = c.program[c.pc];
      if (step?.op === 'join') waits.set('vmm', { on: `pthread_join(vmm.thread${step.thread})`, for: [`vmm.thread${step.thread}`] });
    }
    else if (state === 'running' && !c.awaiting) {
      const step = c.program[c.pc];
      if (step?.op === 'waitExit' && c.inKernel[step.vcpu]) waits.set('vmm', { on: describeStep(step), for: [`kvm.vcpu${step.vcpu}`] });
    }
  }
  return waits;
}

/** The deadlocked threads and their waits, or null. */
export function waitCycle(model: Model, world: World): string | null {
  const waits = waitsOf(model, world);
  if (waits.size === 0) return null;
  const busy = new Set(world.pending.map((m) => m.to));
  const stuck = new Set([...waits.keys()].filter((a) => !busy.has(a)));
  for (let changed = true; changed; ) {
    changed = false;
    for (const a of stuck) {
      const w = waits.get(a)!;
      if (w.for.length === 0 || w.for.some((b) => !stuck.has(b))) {
        stuck.delete(a);
        changed = true;
      }
    }
  }
  if (stuck.size === 0) return null;
  // Walk from the first stuck thread until a thread repeats: that loop is the cycle to name.
  const path: string[] = [];
  let at = [...stuck].sort()[0]!;
  while (!path.includes(at)) {
    path.push(at);
    at = waits.get(at)!.for.find((b) => stuck.has(b))!;
  }
  const cycle = path.slice(path.indexOf(at));
  return cycle.map((a) => `${a} (waits for ${waits.get(a)!.on})`).join(' → ') + ` → ${at}`;
}
