/**
 * No guest access through a stale translation (§1.2, §7.4, §5c.2 steps 3 and 5): while a CPU performs a
 * guest load or store — from a fresh walk or from its TLB (machines/hw/tlb.ts) — the translation it uses
 * still stands in the tables:
 * - through the S-EPT, the GFN's leaf is still present (MAPPED, or blocked: a translation cached before a
 *   TDH.MEM.RANGE.BLOCK may be used until the TRACK, the kick and the flush at the next TDH.VP.ENTER
 *   retire it — that window is what the tracking protocol is for) and maps the same host page. A
 *   translation to a page the module has since removed, or that now maps another page or is PENDING
 *   again, lets the guest reach memory that is no longer its own;
 * - through the shared EPT, the GFN is not PRIVATE by then: KVM_SET_MEMORY_ATTRIBUTES zaps the shared
 *   leaf and waits for every vCPU to leave guest mode (kvm_flush_remote_tlbs, KVM_REQ_TLB_FLUSH) before
 *   it stores the attribute, so a vCPU still using a shared translation of a converted GFN skipped that
 *   flush.
 * A VMX guest's accesses are not checked.
 */
import { hex } from '../../arch/hex.ts';
import { PAGE_SHIFT, pageSizeOfPgLevel, tdxLevelToPgLevel } from '../../arch/gpa.ts';
import { septHpa, septStateOf } from '../../arch/septEntry.ts';
import { spteToPfn } from '../../arch/spte.ts';
import { indexAt, readEntry } from '../../../machines/tdxModule/septTree.ts';
import { attributeIsPrivate } from '../../../machines/kvm/memAttributes.ts';
import type { CpuContext } from '../../../machines/hw/cpu.ts';
import type { TdxModuleContext } from '../../../machines/tdxModule/tdxModule.ts';
import type { TdpMmuContext } from '../../../machines/kvm/tdpMmu.ts';
import type { AnyMachineSnapshot } from 'xstate';
import type { Model, World } from '../../runtime/world.ts';
import { snapshotOf, stateName, type DeliveryView, type Invariant } from './invariant.ts';

/** Leaf states whose translation a CPU may still hold and use. */
const STILL_TRANSLATED = new Set(['MAPPED', 'BLOCKED', 'BLOCKEDW']);

/** The host address `leaf` translates `gpa` to. */
const hpaThrough = (entry: bigint, pgLevel: number, gpa: bigint) => (spteToPfn(entry) << BigInt(PAGE_SHIFT)) | (gpa & (pageSizeOfPgLevel(pgLevel) - 1n));

/** An actor's snapshot by id. */
type Snapshots = (actor: string) => AnyMachineSnapshot;

const accessing = (snap: AnyMachineSnapshot) => stateName(snap.value) === 'accessing';

/** What is wrong with CPU `id`'s access (`snap`), or null; `of` gives the other actors' snapshots. */
function staleAccess(snap: AnyMachineSnapshot, of: Snapshots, id: string): string | null {
  if (!accessing(snap)) return null;
  const c = snap.context as CpuContext;
  const a = c.access;
  const w = c.lastWalk;
  if (a === null || w === null || w.kind !== 'translated' || c.vmType !== 'tdx') return null;
  const how = w.cached === true ? 'a cached translation' : 'its walk';
  const hpa = hpaThrough(w.leaf.spte, w.leaf.pgLevel, a.gpa);
  const what = `${id}'s ${a.op} to GPA ${hex(a.gpa)} goes through ${how} to HPA ${hex(hpa)}`;
  if (a.ept === 'secure') {
    const td = (of('tdx').context as TdxModuleContext).mem;
    if (td.septRoot === null || td.sept[td.septRoot] === undefined) return `${what}, but the TD's S-EPT is gone`;
    // Down through present and blocked non-leaf entries (a blocked S-EPT page still holds its leaves).
    let pfn = td.septRoot;
    for (let level = td.topLevel; level >= 0; level--) {
      const entry = readEntry(td.sept, pfn, indexAt(a.gpa, level));
      const state = septStateOf(entry);
      if ((state === 'NL_MAPPED' || state === 'NL_BLOCKED') && level > 0) {
        pfn = Number(septHpa(entry) >> BigInt(PAGE_SHIFT));
        continue;
      }
      if (!STILL_TRANSLATED.has(state)) return `${what}, but the S-EPT leaf of the GFN is ${state}${state === 'FREE' || state === 'REMOVED' ? ' (the page was removed)' : ''}`;
      const now = hpaThrough(entry, tdxLevelToPgLevel(level), a.gpa);
      if (now !== hpa) return `${what}, but the S-EPT leaf of the GFN (${state}) now maps HPA ${hex(now)}`;
      return null;
    }
    return null;
  }
  const mmu = of('kvm.mmu').context as TdpMmuContext;
  const gfn = (a.gpa & ~c.sharedMask) >> BigInt(PAGE_SHIFT);
  if (attributeIsPrivate(mmu.privateRanges, gfn)) return `${what}, but GFN ${hex(gfn)} is PRIVATE now (KVM zapped its shared leaf and flushed every vCPU's TLB before it changed the attribute)`;
  return null;
}

/** Every CPU's stale access in `world`, as sentences. */
export function staleAccesses(model: Model, world: World): string[] {
  if (!model.indexOf.has('tdx')) return [];
  const of: Snapshots = (id) => snapshotOf(model, world, id)!;
  const out: string[] = [];
  for (const a of model.actors) {
    if (!a.id.startsWith('hw.cpu')) continue;
    const p = staleAccess(of(a.id), of, a.id);
    if (p !== null) out.push(p);
  }
  return out;
}

const reads = (actor: string) => actor === 'tdx' || actor === 'kvm.mmu' || actor.startsWith('hw.cpu');

/** Per model: the CPUs' actor indices, in actor order. */
const cpusOf = new WeakMap<Model, number[]>();
/** Per id space (explorer engine): a CPU's verdict per (CPU, its state id, tdx's, kvm.mmu's). */
const verdicts = new WeakMap<object, Map<string, string | null>>();

/** `staleAccesses(model, after)[0] ?? null` from interned states: a CPU that is not accessing costs a look. */
function fast(v: DeliveryView): string | null {
  const { model } = v;
  const tdx = model.indexOf.get('tdx');
  if (tdx === undefined) return null;
  let cpus = cpusOf.get(model);
  if (cpus === undefined) cpusOf.set(model, (cpus = model.actors.flatMap((a, i) => (a.id.startsWith('hw.cpu') ? [i] : []))));
  let memo = verdicts.get(v.ids);
  for (const i of cpus) {
    const snap = v.snapshot(i);
    if (!accessing(snap)) continue;
    if (memo === undefined) verdicts.set(v.ids, (memo = new Map()));
    const key = `${i},${v.stateId(i)},${v.stateId(tdx)},${v.stateId(model.indexOf.get('kvm.mmu')!)}`;
    let p = memo.get(key);
    if (p === undefined) {
      p = staleAccess(snap, (id) => v.snapshot(model.indexOf.get(id)!), model.actors[i]!.id);
      memo.set(key, p);
    }
    if (p !== null) return p;
  }
  return null;
}

export const noStaleTranslation: Invariant = {
  name: 'no-stale-translation',
  description: 'no guest access goes through a translation (cached or walked) to a page the S-EPT no longer maps there, or through the shared EPT to a GFN that is PRIVATE since',
  check(model, _before, after, delivered) {
    // The verdict reads the CPUs, the S-EPT and the attributes; a delivery to any other actor leaves it as
    // it was before, which was checked (no CPU is accessing in the initial world).
    if (delivered.to !== 'tdx' && delivered.to !== 'kvm.mmu' && !delivered.to.startsWith('hw.cpu')) return null;
    return staleAccesses(model, after)[0] ?? null;
  },
  // A delivery to another actor changes none of what the verdict reads, so there it is null.
  footprint: { on: reads, reads, fast },
};
