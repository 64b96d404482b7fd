/**
 * Invariants over one delivery's world, for property tests of private memory (§6.ii, §6.iv, §7.4, §7.6).
 * Each check returns a list of problems (empty when it holds), phrased with GFNs, SPTE values and states
 * in hex so a counterexample reads like a kernel bug report.
 */
import { runModel, type Delivery } from '../../src/runtime/runner.ts';
import { initialWorld } from '../../src/runtime/step.ts';
import { randomScheduler } from '../../src/runtime/scheduler/random.ts';
import { modelFor } from '../../src/cli/session.ts';
import type { Scenario } from '../../src/scenario/schema.ts';
import type { Model, World } from '../../src/runtime/world.ts';
import type { Message } from '../../src/protocol/messages.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import { FROZEN_SPTE, spteToPfn } from '../../src/arch/spte.ts';
import { gpaToGfn, PAGE_SHIFT } from '../../src/arch/gpa.ts';
import { hex } from '../../src/arch/hex.ts';
import { presentLeaves, walkTdp } from '../../machines/kvm/tdpIter.ts';
import { attributeIsPrivate } from '../../machines/kvm/memAttributes.ts';
import { septLeaves } from '../../machines/tdxModule/septTree.ts';
import type { TdpMmuContext } from '../../machines/kvm/tdpMmu.ts';
import type { TdxModuleContext } from '../../machines/tdxModule/tdxModule.ts';
import type { KvmVmContext } from '../../machines/kvm/kvmVm.ts';
import type { MemoryContext } from '../../machines/hw/memory.ts';
import { TD_HKID } from '../../machines/registry.ts';

export const ctxOf = <T>(model: Model, world: World, actor: string): T => actorView(world, model.indexOf.get(actor)!).context as T;

/** Every GFN below 2^36 (GPAW 48 without the shared bit). */
const GFN_LIMIT = 1n << 36n;

/**
 * Why the mirror leaf and the S-EPT leaf of `gfn` may disagree in this world, or null if they may not:
 * - the mirror SPTE is FROZEN_SPTE: a vCPU's fault path owns it between its cmpxchg and its final write
 *   or restore, and the S-EPT leaf is FREE before TDH.MEM.PAGE.AUG / PAGE.ADD and PENDING/MAPPED after (§7.6);
 * - kvm.vm, holding mmu_lock for write, is zapping that leaf: from its SPTE_WRITE to non-present until its
 *   remove hook has finished, the S-EPT leaf is MAPPED/PENDING, then BLOCKED, then FREE (§6.iv step 4).
 *   SPTE_WRITE and BLOCK are sent in the same step, so either may be delivered first.
 * Nothing else may make them differ, not even for one delivery.
 */
export function transientReason(model: Model, world: World, gfn: bigint): string | null {
  const mmu = ctxOf<TdpMmuContext>(model, world, 'kvm.mmu');
  const end = walkTdp(mmu.pages, mmu.roots.mirror!, mmu.topLevel, gfn << BigInt(PAGE_SHIFT)).at(-1)!;
  if (end.spte === FROZEN_SPTE) return `the mirror SPTE at ${hex(BigInt(end.tablePfn))}[${end.index}] is frozen`;
  const vm = ctxOf<KvmVmContext>(model, world, 'kvm.vm');
  if (vm.zap !== null && vm.zap.root === 'mirror' && vm.zap.leaves[vm.zap.at]?.gfn === gfn) return 'kvm.vm is zapping it under write mmu_lock';
  return null;
}

/**
 * (a) The mirror root and the S-EPT agree: every present mirror leaf maps a GFN whose S-EPT leaf is MAPPED
 * or PENDING at the same level with the same HPA, and every S-EPT leaf that is not FREE has a present
 * mirror leaf — except for the transient GFNs above. Also KVM's attribute rule (§6.ii A.4, §6.iv): a
 * present mirror leaf is on a PRIVATE GFN and a present direct-root leaf on a shared one.
 */
export function mirrorSeptAgree(model: Model, world: World): string[] {
  const problems: string[] = [];
  const mmu = ctxOf<TdpMmuContext>(model, world, 'kvm.mmu');
  const tdx = ctxOf<TdxModuleContext>(model, world, 'tdx');
  if (tdx.mem.septRoot === null) return problems;
  const skip = { has: (gfn: bigint) => transientReason(model, world, gfn) !== null };
  const mirror = presentLeaves(mmu.pages, mmu.roots.mirror!, mmu.topLevel, 0n, GFN_LIMIT);
  const sept = new Map(septLeaves(tdx.mem.sept, tdx.mem.septRoot, tdx.mem.topLevel).map((l) => [gpaToGfn(l.gpa), l]));
  for (const m of mirror) {
    if (!attributeIsPrivate(mmu.privateRanges, m.gfn)) problems.push(`mirror leaf ${hex(m.spte)} for GFN ${hex(m.gfn)} whose attribute is shared`);
    if (skip.has(m.gfn)) continue;
    const s = sept.get(m.gfn);
    if (s === undefined) problems.push(`mirror leaf ${hex(m.spte)} for GFN ${hex(m.gfn)} but the S-EPT entry is FREE`);
    else if (!['MAPPED', 'PENDING'].includes(s.state) || s.hpa !== spteToPfn(m.spte) << BigInt(PAGE_SHIFT) || s.tdxLevel !== m.pgLevel - 1)
      problems.push(`mirror leaf ${hex(m.spte)} (level ${m.pgLevel}) for GFN ${hex(m.gfn)} but S-EPT ${s.state} hpa=${hex(s.hpa)} tdxLevel=${s.tdxLevel}`);
  }
  const mirrorGfns = new Set(mirror.map((m) => m.gfn));
  for (const [gfn, s] of sept) {
    if (skip.has(gfn) || mirrorGfns.has(gfn)) continue;
    problems.push(`S-EPT ${s.state} hpa=${hex(s.hpa)} for GFN ${hex(gfn)} without a present mirror leaf (${hex(walkTdp(mmu.pages, mmu.roots.mirror!, mmu.topLevel, s.gpa).at(-1)!.spte)})`);
  }
  const direct = presentLeaves(mmu.pages, mmu.roots.direct, mmu.topLevel, mmu.gfnDirectBits, mmu.gfnDirectBits | GFN_LIMIT);
  for (const d of direct) {
    const gfn = d.gfn & ~mmu.gfnDirectBits;
    if (attributeIsPrivate(mmu.privateRanges, gfn)) problems.push(`direct leaf ${hex(d.spte)} for GFN ${hex(gfn)} whose attribute is PRIVATE`);
  }
  return problems;
}

/** Values the guest stores through the private alias carry this tag in bits 63:48, shared ones the other. */
export const PRIVATE_TAG = 0x5ec0n << 48n;
export const SHARED_TAG = 0x5a4en << 48n;
export const isPrivateValue = (v: bigint) => v >> 48n === PRIVATE_TAG >> 48n;

const bigintJson = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? hex(x) : x));

/**
 * (b) No private data reaches the host, checked at delivery `d` with the world before it:
 * - a MEM_READ with KeyID 0 of a page last written with the TD's HKID is answered integrity=false, value 0;
 * - no message to KVM or the VMM carries a value the guest stored privately, and no page held under KeyID 0
 *   contains one;
 * - when kvm.vm's clear after TDH.MEM.PAGE.REMOVE completes, that page is all zero under KeyID 0.
 */
export function noPrivateDataToHost(model: Model, before: World, d: Delivery): string[] {
  const problems: string[] = [];
  const m = d.message;
  if (m.name === 'MEM_READ' && (m.payload as { keyid: number }).keyid !== TD_HKID) {
    const p = m.payload as { pa: bigint; keyid: number };
    const page = ctxOf<MemoryContext>(model, before, 'hw.mem').pages[Number(p.pa >> BigInt(PAGE_SHIFT))];
    if (page?.keyid === TD_HKID) {
      const reply = d.world.pending.find((x: Message) => x.cause === d.seq && x.name === 'MEM_DATA');
      const r = reply?.payload as { value: bigint; integrity: boolean } | undefined;
      if (r === undefined || r.integrity || r.value !== 0n) problems.push(`${m.from} read TD page ${hex(p.pa)} with KeyID ${p.keyid} and got ${bigintJson(r)}`);
    }
  }
  if (/^(kvm\.|vmm)/.test(m.to) || /^(kvm\.|vmm)/.test(m.from)) {
    const text = bigintJson(m.payload);
    for (const x of text.matchAll(/0x5ec0[0-9a-f]{12}/g)) problems.push(`${m.from} → ${m.to} ${m.name} carries the private value ${x[0]}`);
  }
  if (m.name === 'MEM_DATA' && isPrivateValue((m.payload as { value: bigint }).value) && m.to !== 'tdx' && !/^hw\.cpu/.test(m.to)) problems.push(`MEM_DATA with a private value to ${m.to}`);
  const mem = ctxOf<MemoryContext>(model, d.world, 'hw.mem');
  for (const [pfn, page] of Object.entries(mem.pages)) {
    if (page.keyid === TD_HKID) continue;
    for (const w of Object.values(page.words)) if (isPrivateValue(w)) problems.push(`page ${hex(BigInt(pfn) << 12n)} under KeyID ${page.keyid} holds the private value ${hex(w)}`);
  }
  // kvm.vm's only memory traffic is the clear after TDH.MEM.PAGE.REMOVE + WBINVD (MOVDIR64B with KeyID 0).
  // At VM destruction it also clears each page the module gives back (TDH.PHYMEM.PAGE.RECLAIM).
  if (m.to === 'kvm.vm' && m.name === 'MEM_DONE') {
    const vm = ctxOf<KvmVmContext>(model, before, 'kvm.vm');
    const leaf = vm.zap?.leaves[vm.zap.at];
    const reclaimed = vm.destroy?.reclaim[vm.destroy.at];
    if (reclaimed !== undefined) {
      const page = mem.pages[Number(reclaimed >> BigInt(PAGE_SHIFT))];
      if (page !== undefined && (page.keyid !== 0 || Object.keys(page.words).length > 0)) problems.push(`after RECLAIM and the clear, page ${hex(reclaimed)} is ${bigintJson(page)}`);
    } else if (leaf === undefined) problems.push('kvm.vm got MEM_DONE outside a zap');
    else {
      const pfn = spteToPfn(leaf.spte);
      const page = mem.pages[Number(pfn)];
      if (page === undefined || page.keyid !== 0 || Object.keys(page.words).length > 0) problems.push(`after REMOVE and the clear, page ${hex(pfn << 12n)} is ${bigintJson(page)}`);
    }
  }
  return problems;
}

/**
 * Run `scenario` under the random scheduler with (a) and (b) checked after every delivery; throws with the
 * step, its arrow and the problems on the first violation. Returns the values of each vCPU's retired
 * loads, in order.
 */
export function runChecked(scenario: Scenario, seed: number) {
  const model = modelFor(scenario);
  let before: World = initialWorld(model);
  const retired: bigint[][] = scenario.vcpus.map(() => []);
  let steps = 0;
  const { outcome } = runModel(model, {
    scheduler: randomScheduler(seed),
    onDelivery: (d: Delivery) => {
      steps++;
      const problems = [...mirrorSeptAgree(model, d.world), ...noPrivateDataToHost(model, before, d)];
      if (problems.length > 0) {
        const m = d.message;
        throw new Error(`step ${d.seq} (${m.from} → ${m.to} ${m.name}), seed ${seed}:\n  ${problems.join('\n  ')}`);
      }
      if (d.message.name === 'RETIRE') {
        const r = d.message.payload as { vcpu: number; value: bigint | null };
        if (r.value !== null) retired[r.vcpu]!.push(r.value);
      }
      before = d.world;
    },
  });
  return { model, outcome, retired, steps, last: before };
}
