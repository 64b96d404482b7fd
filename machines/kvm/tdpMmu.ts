/**
 * KVM's VM-wide memory state as one actor: the TDP MMU's page-table pages of the direct (shared) root
 * and, for a TD, the mirror root (§1.4); kvm->mmu_lock, whose states are this machine's statechart
 * (§7.1); the per-GFN memory attributes (PRIVATE) and the memslots' backing — guest_memfd pages for
 * private memory, the VMM's userspace pages for shared memory — that kvm_mmu_faultin_pfn reads (§6.ii A.4).
 *
 * Every SPTE change is one SPTE_CMPXCHG delivery, answered with 0 or -EBUSY plus the current value and no
 * other effect (tdp_mmu_set_spte_atomic, §7.6), so a vCPU's read of an SPTE and its cmpxchg are separate
 * steps that another thread can interleave with. Walks (TDP_WALK from KVM, EPT_WALK from the CPU) return
 * the SPTEs along the path in one step; each read is atomic in the real system and the cmpxchg that
 * follows re-checks the value it depends on.
 */
import { setup, assign, emit, enqueueActions } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing, type ActorId } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { isShadowPresentPte, isLargePte, spteToPfn } from '../../src/arch/spte.ts';
import { eptLevels, gfnToGpa, gfnDirectBits, pagesOfPgLevel, pageSizeOfPgLevel } from '../../src/arch/gpa.ts';
import { PG_LEVEL_4K, PG_LEVEL_2M, EBUSY } from '../../src/arch/kvmApi.ts';
import { attributeIsPrivate, rangeIsPrivate, setAttribute, type PrivateRanges } from './memAttributes.ts';
import { backingPfn, findMemslot, type Memslot } from './memslots.ts';
import { gmemPfn, type GmemHoles } from './guestMemfd.ts';
import { acquire, release, lockStateName, UNLOCKED, type Grant, type LockMode, type MmuLockState } from './mmuLock.ts';
import { readSpte, writeSpte, walkTdp, presentLeaves, sharedNonPresentSpte, type SptPages } from './tdpIter.ts';
import type { TdpRoot } from '../../src/protocol/messages.ts';


export interface TdpMmuInput {
  vmType: 'tdx' | 'vmx';
  gpaw: 48 | 52;
  /** Root page-table pages: allocated when the first vCPU loads its MMU; the model starts with them. */
  directRootPfn: number;
  mirrorRootPfn: number | null;
  memslots: readonly Memslot[];
  /** Policy privateHugePages (src/policies.ts): private faults may map 2M. */
  privateHugePages: boolean;
  /** Policy sharedSuppressVe: the direct root's non-present SPTEs carry suppress-#VE (absent: upstream, on). */
  sharedSuppressVe?: boolean;
}

export interface TdpMmuContext {
  vmType: 'tdx' | 'vmx';
  /** 4-level EPT for GPAW 48, 5-level for 52 (§2). */
  topLevel: number;
  /** kvm->arch.gfn_direct_bits: the direct root of a TD maps GFNs with the shared bit (§2); 0 for VMX. */
  gfnDirectBits: bigint;
  roots: { direct: number; mirror: number | null };
  pages: SptPages;
  lock: MmuLockState;
  memslots: readonly Memslot[];
  /** GFN ranges whose memory attribute is KVM_MEMORY_ATTRIBUTE_PRIVATE (the attributes xarray, §1.4). */
  privateRanges: PrivateRanges;
  privateHugePages: boolean;
  /**
   * What an absent entry of a direct-root page holds (SHADOW_NONPRESENT_VALUE, or 0 with policy
   * sharedSuppressVe off); mirror pages always hold SHADOW_NONPRESENT_VALUE.
   */
  directFill: bigint;
  /**
   * kvm->mmu_invalidate_seq: bumped when an invalidation ends (an attribute change, a guest_memfd
   * invalidation). A fault that read the attribute and pfn under an older value is stale and retries
   * (§6.ii A.4–A.5).
   */
  mmuInvalidateSeq: number;
  /**
   * mmu_invalidate_in_progress and the GFN range the invalidations in progress cover. An attribute change
   * holds mmu_lock for write only around its zap and around its end, and stores the attributes in between
   * without it; a fault that takes the read lock in that window finds its GFN in the range and retries
   * (mmu_invalidate_retry_gfn, §6.ii A.5).
   */
  invalidation: { inProgress: number; gfnStart: bigint; gfnEnd: bigint };
  /** sp->external_spt of each mirror page-table page below the root: the S-EPT page linked with it (host PFNs). */
  externalSpt: Readonly<Record<number, number>>;
  /** Both roots were freed at VM destruction (§5b.4 step 4): nothing may touch the pages again. */
  freed: boolean;
  /** lpage_info's KVM_LPAGE_GUEST_INHIBIT_FLAG, set one way: keys "level:index" of the inhibited ranges. */
  guestInhibit: Readonly<Record<string, true>>;
  /** Holes punched in guest_memfd (absent until the first): which private GFNs get a fresh page (guestMemfd.ts). */
  gmemHoles?: GmemHoles;
}

const NO_INVALIDATION: TdpMmuContext['invalidation'] = { inProgress: 0, gfnStart: 0n, gfnEnd: 0n };

/** The lpage_info entry of the `pgLevel` range holding `gfn`: level and range index. */
export const lpageKey = (gfn: bigint, pgLevel: number) => `${pgLevel}:${(gfn / pagesOfPgLevel(pgLevel)).toString(16)}`;
const PAGES_2M = pagesOfPgLevel(PG_LEVEL_2M);

/**
 * kvm_mmu_max_mapping_level for a fault: 2M for a private fault when the policy allows huge private
 * mappings, the aligned 2M range lies inside the memslot, all of it is private (no KVM_LPAGE_MIXED_FLAG)
 * and the guest has not inhibited it; 4K otherwise (and always upstream, §6.ii A.4).
 */
function maxMappingLevel(c: TdpMmuContext, slot: Memslot | undefined, gfn: bigint, isPrivate: boolean): number {
  if (!c.privateHugePages || !isPrivate || slot === undefined || !slot.guestMemfd) return PG_LEVEL_4K;
  const base = gfn & ~(PAGES_2M - 1n);
  const inSlot = base >= slot.baseGfn && base + PAGES_2M <= slot.baseGfn + BigInt(slot.npages);
  if (!inSlot || !rangeIsPrivate(c.privateRanges, base, base + PAGES_2M) || c.guestInhibit[lpageKey(gfn, PG_LEVEL_2M)]) return PG_LEVEL_4K;
  return PG_LEVEL_2M;
}

/**
 * mmu_invalidate_retry_gfn: an invalidation in progress covers the GFN, or one ended since the fault's
 * snapshot. `gfn` is the fault's (no shared bit): invalidation ranges are in memslot GFNs.
 */
function invalidateRetryGfn(c: TdpMmuContext, mmuSeq: number, gfn: bigint): boolean {
  const plain = gfn & ~c.gfnDirectBits;
  if (c.invalidation.inProgress > 0 && plain >= c.invalidation.gfnStart && plain < c.invalidation.gfnEnd) return true;
  return mmuSeq !== c.mmuInvalidateSeq;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

/** The pre-fill of the pages of `root`. */
const fillOf = (c: TdpMmuContext, root: TdpRoot): bigint => (root === 'direct' ? c.directFill : sharedNonPresentSpte(true));

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
    /** kvm.vm zapping a shared leaf under write mmu_lock: it waits for the store before it flushes remote TLBs. */
    zapOfDirectRoot: ({ event }) => (event.msg.payload as { vcpu: number; root: string }).vcpu === -1 && (event.msg.payload as { root: string }).root === 'direct',
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
      const path = walkTdp(context.pages, root, context.topLevel, gfnToGpa(w.gfn), fillOf(context, w.root));
      const stale =
        w.mmuSeq === undefined
          ? {}
          : { stale: invalidateRetryGfn(context, w.mmuSeq, w.gfn), maxLevel: maxMappingLevel(context, findMemslot(context.memslots, w.gfn), w.gfn, w.root === 'mirror') };
      return out(event.msg.from, 'mmu', 'TDP_WALK_RESULT', { vcpu: w.vcpu, root: w.root, gfn: w.gfn, path, ...stale });
    }),
    /** The CPU walks the shared EPT (the direct root) or a VMX guest's EPT: the same pages. */
    answerEptWalk: emit(({ context, event }) => {
      const w = payloadOf(event, 'ept-walk', 'EPT_WALK');
      const path = walkTdp(context.pages, context.roots.direct, context.topLevel, w.gpa, context.directFill);
      return out(event.msg.from, 'ept-walk', 'EPT_WALK_RESULT', { vcpu: w.vcpu, ept: w.ept, gpa: w.gpa, path, keyid: 0 });
    }),
    /**
     * kvm_mmu_faultin_pfn's reads: the attribute (a lockless xarray lookup) and the pfn — from
     * guest_memfd for a private fault, the userspace mapping for a shared one. Upstream TDX maps private
     * memory at 4K only (tdx_gmem_max_mapping_level, §6.iii).
     */
    faultin: emit(({ context, event }) => {
      const f = payloadOf(event, 'mmu', 'FAULTIN');
      const slot = findMemslot(context.memslots, f.gfn);
      const attrPrivate = attributeIsPrivate(context.privateRanges, f.gfn);
      const kind = slot === undefined ? 'none' : slot.invalid === true ? 'invalid' : slot.guestMemfd ? 'gmem' : 'normal';
      const pfn = slot === undefined ? null : f.isPrivate && slot.guestMemfd ? gmemPfn(context.gmemHoles, f.gfn) : backingPfn(slot, f.gfn, f.isPrivate);
      return out(event.msg.from, 'mmu', 'FAULTIN_RESULT', {
        vcpu: f.vcpu,
        gfn: f.gfn,
        attrPrivate,
        slot: kind,
        pfn,
        maxLevel: maxMappingLevel(context, slot, f.gfn, f.isPrivate),
      });
    }),
    /** kvm_swap_active_memslots: the new set is what every later lookup (a fault's, under kvm->srcu) finds. */
    swapMemslots: enqueueActions(({ event, enqueue }) => {
      const m = payloadOf(event, 'mmu', 'MEMSLOTS_SWAP');
      enqueue.assign({ memslots: m.memslots });
      enqueue.emit(out(event.msg.from, 'mmu', 'MEMSLOTS_SWAPPED', { vcpu: m.vcpu }));
    }),
    /** fault->mmu_seq = kvm->mmu_invalidate_seq: the snapshot kvm_mmu_faultin_pfn takes (§6.ii A.4–A.5). */
    answerMmuSeq: emit(({ context, event }) => {
      const q = payloadOf(event, 'mmu', 'MMU_INVALIDATE_SEQ_READ');
      return out(event.msg.from, 'mmu', 'MMU_INVALIDATE_SEQ', { vcpu: q.vcpu, mmuSeq: context.mmuInvalidateSeq });
    }),
    spteWritten: emit(({ event }) => out(event.msg.from, 'mmu', 'SPTE_WRITTEN', { vcpu: -1 })),
    /** The thread that froze an SPTE (or holds mmu_lock for write) stores its value without a cmpxchg (§7.6). */
    spteWrite: assign({
      pages: ({ context, event }) => {
        const w = payloadOf(event, 'mmu', 'SPTE_WRITE');
        const fill = fillOf(context, w.root);
        const current = readSpte(context.pages, w.tablePfn, w.index, fill);
        if (current !== w.oldSpte) {
          throw new Error(`TDP MMU: ${event.msg.from} writes SPTE ${w.tablePfn.toString(16)}[${w.index}] expecting 0x${w.oldSpte.toString(16)} but it is 0x${current.toString(16)}: it does not own it`);
        }
        let pages = writeSpte(context.pages, w.tablePfn, w.index, w.newSpte, fill);
        if (w.childPfn !== null) {
          if (pages[w.childPfn] !== undefined) throw new Error(`TDP MMU: page 0x${w.childPfn.toString(16)} is already in use`);
          pages = { ...pages, [w.childPfn]: {} };
        }
        return pages;
      },
      externalSpt: ({ context, event }) => {
        const w = payloadOf(event, 'mmu', 'SPTE_WRITE');
        return w.childPfn !== null && w.externalPfn !== undefined ? { ...context.externalSpt, [w.childPfn]: w.externalPfn } : context.externalSpt;
      },
    }),
    /**
     * kvm_mmu_uninit_tdp_mmu after the last root reference is put: every page-table page goes. For the
     * mirror root, handle_removed_pt frees a page's children before the page, and hands each page's
     * external (S-EPT) page to the free hook in that order; the root's S-EPT page is the TDCS page and is
     * not among them.
     */
    freeRoots: enqueueActions(({ context, event, enqueue }) => {
      const q = payloadOf(event, 'mmu', 'TDP_FREE_ROOTS');
      const externalPages: { externalPfn: number; gfn: bigint; pgLevel: number }[] = [];
      let mirrorLeaves = 0;
      const visit = (tablePfn: number, level: number, baseGfn: bigint) => {
        const page = context.pages[tablePfn] ?? {};
        const span = pagesOfPgLevel(level);
        for (const key of Object.keys(page).map(Number).sort((a, b) => a - b)) {
          const spte = page[key]!;
          if (!isShadowPresentPte(spte)) continue;
          const gfn = baseGfn + BigInt(key) * span;
          if (level === 1 || isLargePte(spte)) {
            mirrorLeaves++;
            continue;
          }
          const child = Number(spteToPfn(spte));
          visit(child, level - 1, gfn);
          externalPages.push({ externalPfn: context.externalSpt[child]!, gfn, pgLevel: level - 1 });
        }
      };
      if (context.roots.mirror !== null) visit(context.roots.mirror, context.topLevel, 0n);
      enqueue.assign({ pages: {}, externalSpt: {}, freed: true });
      enqueue.emit(out(event.msg.from, 'mmu', 'TDP_FREE_ROOTS_RESULT', { vcpu: q.vcpu, externalPages, mirrorLeaves }));
    }),
    /**
     * kvm_mmu_invalidate_begin + range_add, then the zap's iteration under write mmu_lock; GFNs in the
     * reply are as the root's iterator sees them.
     */
    answerLeafScan: enqueueActions(({ context, event, enqueue }) => {
      const q = payloadOf(event, 'mmu', 'TDP_LEAF_SCAN');
      const direct = q.root === 'direct' ? context.gfnDirectBits : 0n;
      const root = q.root === 'mirror' ? context.roots.mirror! : context.roots.direct;
      const leaves = presentLeaves(context.pages, root, context.topLevel, q.gfnStart | direct, q.gfnEnd | direct);
      const inv = context.invalidation;
      // kvm_mmu_zap_memslot (a memslot DELETE or MOVE) zaps without an invalidation: faults are held off by KVM_MEMSLOT_INVALID.
      if (q.invalidate !== false) enqueue.assign({
        invalidation:
          inv.inProgress === 0
            ? { inProgress: 1, gfnStart: q.gfnStart, gfnEnd: q.gfnEnd }
            : { inProgress: inv.inProgress + 1, gfnStart: q.gfnStart < inv.gfnStart ? q.gfnStart : inv.gfnStart, gfnEnd: q.gfnEnd > inv.gfnEnd ? q.gfnEnd : inv.gfnEnd },
      });
      enqueue.emit(out(event.msg.from, 'mmu', 'TDP_LEAF_SCAN_RESULT', { vcpu: q.vcpu, root: q.root, leaves }));
    }),
    /** kvm_mmu_invalidate_end: the sequence moves on, so every fault that snapshotted it before retries. */
    invalidateEnd: assign(({ context }) => {
      const inProgress = context.invalidation.inProgress - 1;
      if (inProgress < 0) throw new Error('TDP MMU: kvm_mmu_invalidate_end without an invalidation in progress');
      return { mmuInvalidateSeq: context.mmuInvalidateSeq + 1, invalidation: inProgress === 0 ? NO_INVALIDATION : { ...context.invalidation, inProgress } };
    }),
    answerLpageInfo: emit(({ context, event }) => {
      const q = payloadOf(event, 'mmu', 'LPAGE_INFO_READ');
      return out(event.msg.from, 'mmu', 'LPAGE_INFO', { ...q, guestInhibit: context.guestInhibit[lpageKey(q.gfn, q.pgLevel)] === true });
    }),
    setGuestInhibit: assign({
      guestInhibit: ({ context, event }) => {
        const q = payloadOf(event, 'mmu', 'LPAGE_GUEST_INHIBIT');
        return { ...context.guestInhibit, [lpageKey(q.gfn, q.pgLevel)]: true as const };
      },
    }),
    /** The splitter holds mmu_lock for write: the child page is filled and linked in one step (§6.iii step 4). */
    splitHugePage: assign({
      pages: ({ context, event }) => {
        const w = payloadOf(event, 'mmu', 'SPLIT_HUGE_PAGE');
        const current = readSpte(context.pages, w.tablePfn, w.index);
        if (current !== w.oldSpte || !isLargePte(current)) {
          throw new Error(`TDP MMU: ${event.msg.from} splits ${w.tablePfn.toString(16)}[${w.index}] = 0x${current.toString(16)}, which is not the huge leaf 0x${w.oldSpte.toString(16)}`);
        }
        if (context.pages[w.childPfn] !== undefined) throw new Error(`TDP MMU: page 0x${w.childPfn.toString(16)} is already in use`);
        const child: Record<number, bigint> = {};
        for (let i = 0n; i < PAGES_2M; i++) child[Number(i)] = w.childSpte + i * pageSizeOfPgLevel(w.pgLevel - 1);
        return writeSpte({ ...context.pages, [w.childPfn]: child }, w.tablePfn, w.index, w.newSpte);
      },
      externalSpt: ({ context, event }) => {
        const w = payloadOf(event, 'mmu', 'SPLIT_HUGE_PAGE');
        return w.externalPfn === undefined ? context.externalSpt : { ...context.externalSpt, [w.childPfn]: w.externalPfn };
      },
    }),
    setAttributes: enqueueActions(({ context, event, enqueue }) => {
      const a = payloadOf(event, 'mmu', 'SET_ATTRIBUTES');
      enqueue.assign({ privateRanges: setAttribute(context.privateRanges, a.gfnStart, a.gfnEnd, a.private) });
      enqueue.emit(out(event.msg.from, 'mmu', 'SET_ATTRIBUTES_DONE', { vcpu: a.vcpu }));
    }),
    cmpxchg: enqueueActions(({ context, event, enqueue }) => {
      const c = payloadOf(event, 'mmu', 'SPTE_CMPXCHG');
      const fill = fillOf(context, c.root);
      const current = readSpte(context.pages, c.tablePfn, c.index, fill);
      if (current !== c.oldSpte) {
        enqueue.emit(out(event.msg.from, 'mmu', 'SPTE_CMPXCHG_RESULT', { vcpu: c.vcpu, ret: EBUSY, currentSpte: current }));
        return;
      }
      let pages = writeSpte(context.pages, c.tablePfn, c.index, c.newSpte, fill);
      const linksPage = c.pgLevel > 1 && isShadowPresentPte(c.newSpte) && !isLargePte(c.newSpte);
      if (linksPage) {
        if (c.childPfn === null || pages[c.childPfn] !== undefined) {
          throw new Error(`TDP MMU: cmpxchg links page 0x${(c.childPfn ?? 0).toString(16)} which is missing or already in use`);
        }
        // A fresh page from the vCPU's cache: every entry the root's pre-fill (SHADOW_NONPRESENT_VALUE, §3.4).
        pages = { ...pages, [c.childPfn]: {} };
      }
      enqueue.assign({ pages, ...(linksPage && c.externalPfn !== undefined ? { externalSpt: { ...context.externalSpt, [c.childPfn!]: c.externalPfn } } : {}) });
      enqueue.emit(out(event.msg.from, 'mmu', 'SPTE_CMPXCHG_RESULT', { vcpu: c.vcpu, ret: 0, currentSpte: c.newSpte }));
    }),
    /** The page cache drops the range: the next private fault on it gets a fresh guest_memfd page. */
    truncateGmem: enqueueActions(({ context, event, enqueue }) => {
      const t = payloadOf(event, 'mmu', 'GMEM_TRUNCATE_RANGE');
      enqueue.assign({ gmemHoles: [...(context.gmemHoles ?? []), { start: t.gfnStart, end: t.gfnEnd }] });
      enqueue.emit(out(event.msg.from, 'mmu', 'GMEM_TRUNCATE_DONE', { vcpu: t.vcpu }));
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
      gfnDirectBits: input.vmType === 'tdx' ? gfnDirectBits(input.gpaw) : 0n,
      roots: { direct: input.directRootPfn, mirror: input.mirrorRootPfn },
      pages,
      lock: UNLOCKED,
      memslots: input.memslots,
      privateRanges: [],
      privateHugePages: input.privateHugePages,
      directFill: sharedNonPresentSpte(input.sharedSuppressVe ?? true),
      mmuInvalidateSeq: 0,
      invalidation: NO_INVALIDATION,
      externalSpt: {},
      freed: false,
      guestInhibit: {},
    };
  },
  initial: 'unlocked',
  on: {
    TDP_WALK: { actions: 'answerTdpWalk' },
    EPT_WALK: { actions: 'answerEptWalk' },
    SPTE_CMPXCHG: { actions: 'cmpxchg' },
    SPTE_WRITE: [{ guard: 'zapOfDirectRoot', actions: ['spteWrite', 'spteWritten'] }, { actions: 'spteWrite' }],
    FAULTIN: { actions: 'faultin' },
    MMU_INVALIDATE_SEQ_READ: { actions: 'answerMmuSeq' },
    SET_ATTRIBUTES: { actions: 'setAttributes' },
    TDP_LEAF_SCAN: { actions: 'answerLeafScan' },
    MEMSLOTS_SWAP: { actions: 'swapMemslots' },
    MMU_INVALIDATE_END: { actions: 'invalidateEnd' },
    LPAGE_INFO_READ: { actions: 'answerLpageInfo' },
    LPAGE_GUEST_INHIBIT: { actions: 'setGuestInhibit' },
    SPLIT_HUGE_PAGE: { actions: 'splitHugePage' },
    TDP_FREE_ROOTS: { actions: 'freeRoots' },
    GMEM_TRUNCATE_RANGE: { actions: 'truncateGmem' },
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
