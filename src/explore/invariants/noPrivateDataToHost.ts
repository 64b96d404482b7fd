/**
 * A private page's contents never reach the host (§1.3, §2, §6.iv). Checked at each delivery:
 * - a MEM_READ with a host KeyID of a page last written with the TD's HKID is answered integrity=false,
 *   value 0 (what the CPU returns for a TD-owned line read with another key);
 * - no message to or from KVM or the VMM carries a private value, MEM_DATA carries one only to the module
 *   or a CPU, and no page held under a host KeyID contains one;
 * - when kvm.vm's clear of a page given back by TDH.MEM.PAGE.REMOVE or TDH.PHYMEM.PAGE.RECLAIM completes,
 *   the page is all zero under KeyID 0.
 * "Private values" are what the scenario's guests store through private GPAs (and never through shared
 * ones, nor through the guest page tables, whose PTE decides at run time): the model's memory holds
 * values, not ciphertext, so the value itself is the evidence.
 */
import { spteToPfn } from '../../arch/spte.ts';
import { isSharedGpa, PAGE_SHIFT, type Gpaw } from '../../arch/gpa.ts';
import { hex } from '../../arch/hex.ts';
import type { Message } from '../../protocol/messages.ts';
import type { Model, World } from '../../runtime/world.ts';
import type { KvmVmContext } from '../../../machines/kvm/kvmVm.ts';
import type { MemoryContext } from '../../../machines/hw/memory.ts';
import type { GuestOp } from '../../../machines/guest/program.ts';
import { TD_HKID } from '../../../machines/hw/keyIds.ts';
import { contextOf, type Invariant } from './invariant.ts';

const valuesCache = new WeakMap<Model, ReadonlySet<bigint>>();

/** Values the guests store through private GPAs and never through shared ones (0 excluded: memory starts there). */
export function privateValuesOf(model: Model): ReadonlySet<bigint> {
  let set = valuesCache.get(model);
  if (set !== undefined) return set;
  const priv = new Set<bigint>();
  const shared = new Set<bigint>();
  for (const a of model.actors) {
    const input = a.input as { vmType?: string; gpaw?: Gpaw; program?: readonly GuestOp[] };
    if (!a.id.startsWith('guest.') || input.vmType !== 'tdx') continue;
    // A store through the guest page tables goes wherever its PTE says at run time: its value is not known to be private.
    for (const op of input.program ?? []) if (op.op === 'store') (op.paged === true || isSharedGpa(op.gpa, input.gpaw!) ? shared : priv).add(op.value);
  }
  set = new Set([...priv].filter((v) => v !== 0n && !shared.has(v)));
  valuesCache.set(model, set);
  return set;
}

const bigintJson = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? hex(x) : x));

function privateIn(v: unknown, isPrivate: (x: bigint) => boolean, found: bigint[]): void {
  if (typeof v === 'bigint') {
    if (isPrivate(v)) found.push(v);
  } else if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) privateIn(x, isPrivate, found);
  }
}

const HOST = /^(kvm\.|vmm)/;

export function privateDataProblems(model: Model, before: World, after: World, m: Message, isPrivate: (v: bigint) => boolean = (v) => privateValuesOf(model).has(v)): string[] {
  const problems: string[] = [];
  if (!model.indexOf.has('hw.mem')) return problems;
  if (m.name === 'MEM_READ' && (m.payload as { keyid: number }).keyid !== TD_HKID) {
    const p = m.payload as { pa: bigint; keyid: number };
    const page = contextOf<MemoryContext>(model, before, 'hw.mem').pages[Number(p.pa >> BigInt(PAGE_SHIFT))];
    if (page?.keyid === TD_HKID) {
      const reply = after.pending.find((x) => x.cause === after.seq && x.name === 'MEM_DATA');
      const r = reply?.payload as { value: bigint; integrity: boolean } | undefined;
      if (r === undefined || r.integrity || r.value !== 0n) problems.push(`${m.from} read TD page ${hex(p.pa)} with KeyID ${p.keyid} and got ${bigintJson(r)}`);
    }
  }
  if (HOST.test(m.to) || HOST.test(m.from)) {
    const found: bigint[] = [];
    privateIn(m.payload, isPrivate, found);
    for (const x of found) problems.push(`${m.from} → ${m.to} ${m.name} carries the private value ${hex(x)}`);
  }
  if (m.name === 'MEM_DATA' && isPrivate((m.payload as { value: bigint }).value) && m.to !== 'tdx' && !/^hw\.cpu/.test(m.to)) problems.push(`MEM_DATA with a private value to ${m.to}`);
  const mem = contextOf<MemoryContext>(model, after, 'hw.mem');
  // Memory changes only when hw.mem gets a message.
  if (m.to === 'hw.mem') {
    for (const [pfn, page] of Object.entries(mem.pages)) {
      if (page.keyid === TD_HKID) continue;
      for (const w of Object.values(page.words)) if (isPrivate(w)) problems.push(`page ${hex(BigInt(pfn) << 12n)} under KeyID ${page.keyid} holds the private value ${hex(w)}`);
    }
  }
  // kvm.vm's only memory traffic is the clear after TDH.MEM.PAGE.REMOVE + WBINVD (MOVDIR64B with KeyID 0),
  // and at VM destruction the clear of each page the module gives back (TDH.PHYMEM.PAGE.RECLAIM).
  if (m.to === 'kvm.vm' && m.name === 'MEM_DONE') {
    const vm = contextOf<KvmVmContext>(model, before, 'kvm.vm');
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

export const noPrivateDataToHost: Invariant = {
  name: 'no-private-data-to-host',
  description: "a private page's contents never reach KVM, the VMM or a page under a host KeyID; reads with a host key see poison",
  // Everything but the clear's check reads the delivery's own data: its message, its receiver (hw.mem for
  // a read, a write and memory's contents) and the reply it sends; MEM_DONE to kvm.vm reads hw.mem too.
  footprint: { on: (a) => a === 'kvm.vm', reads: (a) => a === 'hw.mem' },
  check: (model, before, after, delivered) => privateDataProblems(model, before, after, delivered)[0] ?? null,
};
