/**
 * KVM's TDP MMU as one actor: the page-table pages of the direct (shared) root and, for a TD, the mirror
 * root (§1.4), and kvm->mmu_lock, whose states are this machine's statechart (§7.1).
 *
 * Every SPTE change is one SPTE_CMPXCHG delivery, answered with 0 or -EBUSY plus the current value and no
 * other effect (tdp_mmu_set_spte_atomic, §7.6), so a vCPU's read of an SPTE and its cmpxchg are separate
 * steps that another thread can interleave with. Walks (TDP_WALK from KVM, EPT_WALK from the CPU) return
 * the SPTEs along the path in one step; each read is atomic in the real system and the cmpxchg that
 * follows re-checks the value it depends on.
 */
import { setup, emit, enqueueActions } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing, type ActorId } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { isShadowPresentPte, isLargePte } from '../../src/arch/spte.ts';
import { eptLevels, gfnToGpa } from '../../src/arch/gpa.ts';
import { acquire, release, lockStateName, UNLOCKED, type Grant, type LockMode, type MmuLockState } from './mmuLock.ts';
import { readSpte, writeSpte, walkTdp, type SptPages } from './tdpIter.ts';

/** -EBUSY as the kernel returns it. */
export const EBUSY = -16;

export interface TdpMmuInput {
  vmType: 'tdx' | 'vmx';
  gpaw: 48 | 52;
  /** Root page-table pages: allocated when the first vCPU loads its MMU; the model starts with them. */
  directRootPfn: number;
  mirrorRootPfn: number | null;
}

export interface TdpMmuContext {
  vmType: 'tdx' | 'vmx';
  /** 4-level EPT for GPAW 48, 5-level for 52 (§2). */
  topLevel: number;
  roots: { direct: number; mirror: number | null };
  pages: SptPages;
  lock: MmuLockState;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

const lockTransitions = {
  MMU_LOCK_READ: { target: 'lockChanged', actions: 'lockAcquire' },
  MMU_LOCK_WRITE: { target: 'lockChanged', actions: 'lockAcquire' },
  MMU_UNLOCK: { target: 'lockChanged', actions: 'lockRelease' },
} as const;

/** Every thread the lock operation let in learns it at once: MMU_LOCK_ACQUIRED to each grantee. */
function grantMessages(granted: readonly Grant[]): Outgoing[] {
  return granted.map((g) => out(g.actor, 'mmu', 'MMU_LOCK_ACQUIRED', { vcpu: vcpuNumber(g.actor), mode: g.mode }));
}

export const tdpMmuMachine = setup({
  types: {
    context: {} as TdpMmuContext,
    events: {} as MachineEvent,
    input: {} as TdpMmuInput,
    emitted: {} as Emitted,
  },
  guards: {
    isUnlocked: ({ context }) => lockStateName(context.lock) === 'unlocked',
    isReadLocked: ({ context }) => lockStateName(context.lock) === 'readLocked',
  },
  actions: {
    lockAcquire: enqueueActions(({ context, event, enqueue }) => {
      const mode: LockMode = event.type === 'MMU_LOCK_WRITE' ? 'write' : 'read';
      const r = acquire(context.lock, event.msg.from, mode);
      enqueue.assign({ lock: r.lock });
      for (const m of grantMessages(r.granted)) enqueue.emit(m);
    }),
    lockRelease: enqueueActions(({ context, event, enqueue }) => {
      const r = release(context.lock, event.msg.from, payloadOf(event, 'mmu', 'MMU_UNLOCK').mode);
      enqueue.assign({ lock: r.lock });
      for (const m of grantMessages(r.granted)) enqueue.emit(m);
    }),
    answerTdpWalk: emit(({ context, event }) => {
      const w = payloadOf(event, 'mmu', 'TDP_WALK');
      const root = w.root === 'mirror' ? context.roots.mirror! : context.roots.direct;
      const path = walkTdp(context.pages, root, context.topLevel, gfnToGpa(w.gfn));
      return out(event.msg.from, 'mmu', 'TDP_WALK_RESULT', { vcpu: w.vcpu, root: w.root, gfn: w.gfn, path });
    }),
    /** The CPU walks the shared EPT (the direct root) or a VMX guest's EPT: the same pages. */
    answerEptWalk: emit(({ context, event }) => {
      const w = payloadOf(event, 'ept-walk', 'EPT_WALK');
      const path = walkTdp(context.pages, context.roots.direct, context.topLevel, w.gpa);
      return out(event.msg.from, 'ept-walk', 'EPT_WALK_RESULT', { vcpu: w.vcpu, ept: w.ept, gpa: w.gpa, path });
    }),
    cmpxchg: enqueueActions(({ context, event, enqueue }) => {
      const c = payloadOf(event, 'mmu', 'SPTE_CMPXCHG');
      const current = readSpte(context.pages, c.tablePfn, c.index);
      if (current !== c.oldSpte) {
        enqueue.emit(out(event.msg.from, 'mmu', 'SPTE_CMPXCHG_RESULT', { vcpu: c.vcpu, ret: EBUSY, currentSpte: current }));
        return;
      }
      let pages = writeSpte(context.pages, c.tablePfn, c.index, c.newSpte);
      const linksPage = c.pgLevel > 1 && isShadowPresentPte(c.newSpte) && !isLargePte(c.newSpte);
      if (linksPage) {
        if (c.childPfn === null || pages[c.childPfn] !== undefined) {
          throw new Error(`TDP MMU: cmpxchg links page 0x${(c.childPfn ?? 0).toString(16)} which is missing or already in use`);
        }
        // A fresh page from the vCPU's cache: every entry SHADOW_NONPRESENT_VALUE (§3.4).
        pages = { ...pages, [c.childPfn]: {} };
      }
      enqueue.assign({ pages });
      enqueue.emit(out(event.msg.from, 'mmu', 'SPTE_CMPXCHG_RESULT', { vcpu: c.vcpu, ret: 0, currentSpte: c.newSpte }));
    }),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'tdpMmu',
  context: ({ input }) => {
    const pages: Record<number, Record<number, bigint>> = { [input.directRootPfn]: {} };
    if (input.mirrorRootPfn !== null) pages[input.mirrorRootPfn] = {};
    return {
      vmType: input.vmType,
      topLevel: eptLevels(input.gpaw),
      roots: { direct: input.directRootPfn, mirror: input.mirrorRootPfn },
      pages,
      lock: UNLOCKED,
    };
  },
  initial: 'unlocked',
  on: {
    TDP_WALK: { actions: 'answerTdpWalk' },
    EPT_WALK: { actions: 'answerEptWalk' },
    SPTE_CMPXCHG: { actions: 'cmpxchg' },
    '*': { actions: 'unexpected' },
  },
  states: {
    unlocked: { on: lockTransitions },
    readLocked: { on: lockTransitions },
    writeLocked: { on: lockTransitions },
    /** Transient: settle on the state that names the lock's new holders. */
    lockChanged: {
      always: [{ guard: 'isUnlocked', target: 'unlocked' }, { guard: 'isReadLocked', target: 'readLocked' }, { target: 'writeLocked' }],
    },
  },
});

function vcpuNumber(actor: ActorId): number {
  const m = /vcpu(\d+)$/.exec(actor);
  return m ? Number(m[1]) : -1;
}
