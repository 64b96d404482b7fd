/**
 * KVM's mirror root and the TDX module's S-EPT agree (§1.4, §6.ii, §7.6): every present mirror leaf maps a
 * GFN whose S-EPT leaf is MAPPED or PENDING at the same level with the same HPA, every S-EPT leaf that is
 * not FREE has a present mirror leaf, and KVM's attribute rule holds (§6.ii A.4, §6.iv): a present mirror
 * leaf is on a PRIVATE GFN, a present direct-root leaf on a shared one. Two windows are allowed and named
 * (transientReason); nothing else may make them differ, not even for one delivery.
 */
import { FROZEN_SPTE, spteToPfn } from '../../arch/spte.ts';
import { gpaToGfn, PAGE_SHIFT } from '../../arch/gpa.ts';
import { hex } from '../../arch/hex.ts';
import { presentLeaves, walkTdp } from '../../../machines/kvm/tdpIter.ts';
import { attributeIsPrivate } from '../../../machines/kvm/memAttributes.ts';
import { septLeaves } from '../../../machines/tdxModule/septTree.ts';
import { findMemslot } from '../../../machines/kvm/memslots.ts';
import type { TdpMmuContext } from '../../../machines/kvm/tdpMmu.ts';
import type { TdxModuleContext } from '../../../machines/tdxModule/tdxModule.ts';
import type { KvmVmContext } from '../../../machines/kvm/kvmVm.ts';
import type { KvmVcpuContext } from '../../../machines/kvm/kvmVcpu.ts';
import type { Model, World } from '../../runtime/world.ts';
import { contextOf, snapshotOf, type Invariant } from './invariant.ts';
import { actorHash } from '../fingerprint.ts';
import { hashKey } from '../structuralHash.ts';

/** Every GFN below 2^36 (GPAW 48 without the shared bit). */
const GFN_LIMIT = 1n << 36n;

/**
 * Why the mirror leaf and the S-EPT leaf of `gfn` may disagree in this world, or null if they may not:
 * - the mirror SPTE is FROZEN_SPTE: a vCPU's fault path owns it between its cmpxchg and its final write
 *   or restore, and the S-EPT leaf is FREE before TDH.MEM.PAGE.AUG / PAGE.ADD and PENDING/MAPPED after (§7.6);
 * - kvm.vm, holding mmu_lock for write, is zapping that leaf: from its SPTE_WRITE to non-present until its
 *   remove hook has finished, the S-EPT leaf is MAPPED/PENDING, then BLOCKED, then FREE (§6.iv step 4).
 *   SPTE_WRITE and BLOCK are sent in the same step, so either may be delivered first;
 * - a vCPU thread holding mmu_lock for write is splitting the huge leaf that covers it (the huge-page
 *   series): BLOCK → TRACK → DEMOTE change the S-EPT before the mirror SPTE is replaced;
 * - a write to that mirror SPTE is in flight: the thread that owns it has issued it (and may have moved
 *   on, even released mmu_lock, in the same step), and kvm.mmu, which holds the table, has not applied it.
 */
export function transientReason(model: Model, world: World, gfn: bigint): string | null {
  const mmu = contextOf<TdpMmuContext>(model, world, 'kvm.mmu');
  const end = walkTdp(mmu.pages, mmu.roots.mirror!, mmu.topLevel, gfn << BigInt(PAGE_SHIFT)).at(-1)!;
  if (end.spte === FROZEN_SPTE) return `the mirror SPTE at ${hex(BigInt(end.tablePfn))}[${end.index}] is frozen`;
  const vm = contextOf<KvmVmContext>(model, world, 'kvm.vm');
  if (vm.zap !== null && vm.zap.root === 'mirror' && vm.zap.leaves[vm.zap.at]?.gfn === gfn) return 'kvm.vm is zapping it under write mmu_lock';
  const sameEntry = (p: { tablePfn?: number; index?: number } | null | undefined) => p?.tablePfn === end.tablePfn && p.index === end.index;
  for (const a of model.actors) {
    if (!a.id.startsWith('kvm.vcpu')) continue;
    const split = contextOf<KvmVcpuContext>(model, world, a.id).split;
    if (sameEntry(split?.huge)) return `${a.id} is splitting the huge leaf under write mmu_lock`;
  }
  const write = world.pending.find((m) => m.to === 'kvm.mmu' && (m.payload as { root?: string }).root === 'mirror' && sameEntry(m.payload as { tablePfn?: number; index?: number }));
  if (write !== undefined) return `${write.from}'s ${write.name} of it is in flight to kvm.mmu`;
  return null;
}

interface Disagreement {
  /** Null for the attribute rule, which no window excuses. */
  gfn: bigint | null;
  problem: string;
}

/**
 * The comparison of the two tables alone, which depends on kvm.mmu's and the module's state only; the
 * explorer meets the same pair in many worlds, so it is kept per pair of actor hashes.
 */
function disagreements(mmu: TdpMmuContext, tdx: TdxModuleContext): Disagreement[] {
  const out: Disagreement[] = [];
  // Before the S-EPT root exists, and after VM destruction freed the mirror, there is nothing to compare.
  if (tdx.mem.septRoot === null || mmu.roots.mirror === null || mmu.pages[mmu.roots.mirror] === undefined) return out;
  const mirror = presentLeaves(mmu.pages, mmu.roots.mirror, mmu.topLevel, 0n, GFN_LIMIT);
  const sept = new Map(septLeaves(tdx.mem.sept, tdx.mem.septRoot, tdx.mem.topLevel).map((l) => [gpaToGfn(l.gpa), l]));
  for (const m of mirror) {
    if (!attributeIsPrivate(mmu.privateRanges, m.gfn)) out.push({ gfn: null, problem: `mirror leaf ${hex(m.spte)} for GFN ${hex(m.gfn)} whose attribute is shared` });
    const s = sept.get(m.gfn);
    if (s === undefined) out.push({ gfn: m.gfn, problem: `mirror leaf ${hex(m.spte)} for GFN ${hex(m.gfn)} but the S-EPT entry is FREE` });
    else if (!['MAPPED', 'PENDING'].includes(s.state) || s.hpa !== spteToPfn(m.spte) << BigInt(PAGE_SHIFT) || s.tdxLevel !== m.pgLevel - 1)
      out.push({ gfn: m.gfn, problem: `mirror leaf ${hex(m.spte)} (level ${m.pgLevel}) for GFN ${hex(m.gfn)} but S-EPT ${s.state} hpa=${hex(s.hpa)} tdxLevel=${s.tdxLevel}` });
  }
  const mirrorGfns = new Set(mirror.map((m) => m.gfn));
  for (const [gfn, s] of sept) {
    // KVM maps no GFN outside its memslots, so only a playground thread's raw SEAMCALLs (host.kthreadN) put
    // an S-EPT leaf there; there is no mirror leaf for it to disagree with.
    if (mirrorGfns.has(gfn) || findMemslot(mmu.memslots, gfn) === undefined) continue;
    out.push({ gfn, problem: `S-EPT ${s.state} hpa=${hex(s.hpa)} for GFN ${hex(gfn)} without a present mirror leaf (${hex(walkTdp(mmu.pages, mmu.roots.mirror, mmu.topLevel, s.gpa).at(-1)!.spte)})` });
  }
  const direct = presentLeaves(mmu.pages, mmu.roots.direct, mmu.topLevel, mmu.gfnDirectBits, mmu.gfnDirectBits | GFN_LIMIT);
  for (const d of direct) {
    const gfn = d.gfn & ~mmu.gfnDirectBits;
    if (attributeIsPrivate(mmu.privateRanges, gfn)) out.push({ gfn: null, problem: `direct leaf ${hex(d.spte)} for GFN ${hex(gfn)} whose attribute is PRIVATE` });
  }
  return out;
}

const comparisons = new Map<string, Disagreement[]>();
const COMPARISONS_LIMIT = 1 << 16;

/** Every disagreement in `world` that no window excuses; empty when they agree. */
export function mirrorSeptProblems(model: Model, world: World): string[] {
  if (!model.indexOf.has('tdx')) return [];
  const mmuSnap = snapshotOf(model, world, 'kvm.mmu')!;
  const tdxSnap = snapshotOf(model, world, 'tdx')!;
  const key = hashKey(actorHash(mmuSnap)) + hashKey(actorHash(tdxSnap));
  let found = comparisons.get(key);
  if (found === undefined) {
    found = disagreements(mmuSnap.context as TdpMmuContext, tdxSnap.context as TdxModuleContext);
    if (comparisons.size >= COMPARISONS_LIMIT) comparisons.clear();
    comparisons.set(key, found);
  }
  return found.filter((d) => d.gfn === null || transientReason(model, world, d.gfn) === null).map((d) => d.problem);
}

const READS = new Set(['kvm.mmu', 'tdx', 'kvm.vm']);
const reads = (actor: string) => READS.has(actor) || actor.startsWith('kvm.vcpu');

/**
 * The explorer's fast path: whether every disagreement of the two tables is excused by a frozen mirror SPTE
 * — the first window transientReason looks at, and the one that depends on kvm.mmu alone. Then the verdict
 * is null whatever the other actors do. Each side's leaves are kept per interned state id (per id space:
 * one per search or thread), the answer per pair of them.
 */
interface MirrorSide {
  /** Present mirror leaves by GFN. */
  leaves: Map<bigint, { spte: bigint; pgLevel: number }>;
  /** A mirror or direct leaf breaks the attribute rule: no window excuses it. */
  attributeProblem: boolean;
  /** Whether the mirror walk to a GFN ends at FROZEN_SPTE, as asked. */
  frozen: Map<bigint, boolean>;
  mmu: TdpMmuContext;
}
type SeptSide = Map<bigint, { state: string; hpa: bigint; tdxLevel: number }>;
interface Memo {
  mirror: Map<number, MirrorSide | null>;
  sept: Map<number, SeptSide | null>;
  pairs: Map<number, boolean>;
}
const memos = new WeakMap<object, Memo>();

function mirrorSide(mmu: TdpMmuContext): MirrorSide | null {
  if (mmu.roots.mirror === null || mmu.pages[mmu.roots.mirror] === undefined) return null;
  const leaves = new Map(presentLeaves(mmu.pages, mmu.roots.mirror, mmu.topLevel, 0n, GFN_LIMIT).map((m) => [m.gfn, { spte: m.spte, pgLevel: m.pgLevel }]));
  let attributeProblem = [...leaves.keys()].some((gfn) => !attributeIsPrivate(mmu.privateRanges, gfn));
  for (const d of presentLeaves(mmu.pages, mmu.roots.direct, mmu.topLevel, mmu.gfnDirectBits, mmu.gfnDirectBits | GFN_LIMIT)) if (attributeIsPrivate(mmu.privateRanges, d.gfn & ~mmu.gfnDirectBits)) attributeProblem = true;
  return { leaves, attributeProblem, frozen: new Map(), mmu };
}

function septSide(tdx: TdxModuleContext): SeptSide | null {
  if (tdx.mem.septRoot === null) return null;
  return new Map(septLeaves(tdx.mem.sept, tdx.mem.septRoot, tdx.mem.topLevel).map((l) => [gpaToGfn(l.gpa), { state: l.state, hpa: l.hpa, tdxLevel: l.tdxLevel }]));
}

function isFrozen(m: MirrorSide, gfn: bigint): boolean {
  let f = m.frozen.get(gfn);
  if (f === undefined) {
    f = walkTdp(m.mmu.pages, m.mmu.roots.mirror!, m.mmu.topLevel, gfn << BigInt(PAGE_SHIFT)).at(-1)!.spte === FROZEN_SPTE;
    m.frozen.set(gfn, f);
  }
  return f;
}

/** `disagreements(mmu, tdx).every((d) => d.gfn !== null && frozen(d.gfn))`, from the two sides. */
function frozenWindowsOnly(m: MirrorSide | null, t: SeptSide | null): boolean {
  if (m === null || t === null) return true;
  if (m.attributeProblem) return false;
  for (const [gfn, leaf] of m.leaves) {
    const s = t.get(gfn);
    const agrees = s !== undefined && (s.state === 'MAPPED' || s.state === 'PENDING') && s.hpa === spteToPfn(leaf.spte) << BigInt(PAGE_SHIFT) && s.tdxLevel === leaf.pgLevel - 1;
    if (!agrees && !isFrozen(m, gfn)) return false;
  }
  for (const gfn of t.keys()) if (!m.leaves.has(gfn) && !isFrozen(m, gfn)) return false;
  return true;
}

export const mirrorSeptAgree: Invariant = {
  name: 'mirror-sept-agree',
  description: "KVM's mirror EPT and the module's S-EPT map the same GFNs to the same HPAs at the same level; private leaves only on PRIVATE GFNs",
  footprint: {
    on: reads,
    reads,
    pendingTo: (a) => a === 'kvm.mmu',
    fast(v) {
      const { model } = v;
      const tdx = model.indexOf.get('tdx');
      if (tdx === undefined) return null;
      const mmu = model.indexOf.get('kvm.mmu')!;
      let memo = memos.get(v.ids);
      if (memo === undefined) memos.set(v.ids, (memo = { mirror: new Map(), sept: new Map(), pairs: new Map() }));
      const mmuId = v.stateId(mmu);
      const tdxId = v.stateId(tdx);
      const key = mmuId * 2 ** 26 + tdxId;
      let agree = memo.pairs.get(key);
      if (agree === undefined) {
        let m = memo.mirror.get(mmuId);
        if (m === undefined) memo.mirror.set(mmuId, (m = mirrorSide(v.snapshot(mmu).context as TdpMmuContext)));
        let t = memo.sept.get(tdxId);
        if (t === undefined) memo.sept.set(tdxId, (t = septSide(v.snapshot(tdx).context as TdxModuleContext)));
        agree = frozenWindowsOnly(m, t);
        memo.pairs.set(key, agree);
      }
      return agree ? null : (mirrorSeptProblems(model, v.after())[0] ?? null);
    },
  },
  check(model, _before, after, delivered) {
    // The verdict reads kvm.mmu, tdx, kvm.vm (its zap) and the vCPU threads (their splits, their writes
    // in flight); a delivery to another actor leaves it as it was before, which was checked (the initial
    // world has nothing mapped).
    if (!reads(delivered.to)) return null;
    return mirrorSeptProblems(model, after)[0] ?? null;
  },
};
