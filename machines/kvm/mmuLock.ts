/**
 * kvm->mmu_lock as data: an rwlock with a reader set, at most one writer, and FIFO waiters (§7.1).
 * Linux's queued rwlock makes a new reader wait behind a waiting writer, so a stream of faulting vCPUs
 * cannot starve a zap; the same rule is applied here.
 */
import type { ActorId } from '../../src/protocol/messages.ts';

export type LockMode = 'read' | 'write';

export interface MmuLockState {
  readers: readonly ActorId[];
  writer: ActorId | null;
  waiters: readonly { actor: ActorId; mode: LockMode }[];
}

export const UNLOCKED: MmuLockState = { readers: [], writer: null, waiters: [] };

export interface Grant {
  actor: ActorId;
  mode: LockMode;
}

export function acquire(lock: MmuLockState, actor: ActorId, mode: LockMode): { lock: MmuLockState; granted: Grant[] } {
  const free = lock.writer === null && lock.waiters.length === 0 && (mode === 'read' || lock.readers.length === 0);
  if (!free) return { lock: { ...lock, waiters: [...lock.waiters, { actor, mode }] }, granted: [] };
  return mode === 'read'
    ? { lock: { ...lock, readers: [...lock.readers, actor] }, granted: [{ actor, mode }] }
    : { lock: { ...lock, writer: actor }, granted: [{ actor, mode }] };
}

export function release(lock: MmuLockState, actor: ActorId, mode: LockMode): { lock: MmuLockState; granted: Grant[] } {
  let next: MmuLockState;
  if (mode === 'write') {
    if (lock.writer !== actor) throw new Error(`mmu_lock: ${actor} releases write but the writer is ${lock.writer}`);
    next = { ...lock, writer: null };
  } else {
    const i = lock.readers.indexOf(actor);
    if (i < 0) throw new Error(`mmu_lock: ${actor} releases read without holding it`);
    next = { ...lock, readers: lock.readers.filter((_, j) => j !== i) };
  }
  // Wake waiters in order: one writer alone, or every reader up to the next writer.
  const granted: Grant[] = [];
  let waiters = next.waiters;
  while (waiters.length > 0 && next.writer === null) {
    const w = waiters[0]!;
    if (w.mode === 'write') {
      if (next.readers.length > 0) break;
      next = { ...next, writer: w.actor };
    } else {
      next = { ...next, readers: [...next.readers, w.actor] };
    }
    granted.push(w);
    waiters = waiters.slice(1);
    if (w.mode === 'write') break;
  }
  return { lock: { ...next, waiters }, granted };
}

export function lockStateName(lock: MmuLockState): 'unlocked' | 'readLocked' | 'writeLocked' {
  return lock.writer !== null ? 'writeLocked' : lock.readers.length > 0 ? 'readLocked' : 'unlocked';
}
