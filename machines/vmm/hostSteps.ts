/**
 * The scenario's `host:` steps as the VMM's program steps. The VMM reaches guest memory through its own
 * mapping of each memslot (the userspace_addr behind it), which is the shared backing: the memslot's
 * anonymous memory at the host PFN KVM also maps for a shared GFN (memslots.ts), written with KeyID 0.
 */
import { gpaToGfn, PAGE_SIZE } from '../../src/arch/gpa.ts';
import { hex } from '../../src/arch/hex.ts';
import { KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_EXIT_FLAG_PRIVATE, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY } from '../../src/arch/kvmApi.ts';
import type { Scenario } from '../../src/scenario/schema.ts';
import { backingPfn, findMemslot, type Memslot } from '../kvm/memslots.ts';
import type { BuildStep, ExitExpectation, HostStep, PreFaultStep } from './hostProgram.ts';

/** Each memslot binds its own guest_memfd at offset 0 (guestMemfd.ts): the slot and the file offset of a GPA. */
function gmemOffset(s: Scenario, gpa: bigint, sharedMask: bigint): { slot: number; offset: bigint } {
  const g = gpa & ~sharedMask;
  const slot = s.memslots.findIndex((m) => m.guestMemfd && g >= m.gpa && g < m.gpa + m.size);
  return { slot, offset: g - s.memslots[slot]!.gpa };
}

type PreFaultInput = Extract<NonNullable<Scenario['host']>[number], { op: 'preFaultMemory' }>;
const preFault = (h: PreFaultInput, label: string): PreFaultStep => ({
  label,
  vcpu: h.vcpu,
  gpa: h.gpa,
  size: h.size,
  flags: h.flags ?? 0n,
  expectRet: h.expectRet ?? null,
  expectSize: h.expectSize ?? null,
});

/** The scenario's KVM_PRE_FAULT_MEMORY steps marked beforeFinalize: they run in the build, before KVM_TDX_FINALIZE_VM. */
export function buildPreFaults(s: Scenario): BuildStep[] {
  return (s.host ?? []).flatMap((h, i): BuildStep[] => (h.op === 'preFaultMemory' && h.beforeFinalize === true ? [{ op: 'preFaultBuild', ...preFault(h, `host[${i}]`) }] : []));
}

const MEMSLOT_FLAGS = { KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_MEM_GUEST_MEMFD } as const;

/** Userspace addresses guest memory by GPA without the shared bit: the shared bit is not part of a GFN. */
export function hostPa(memslots: readonly Memslot[], gpa: bigint, sharedMask: bigint): bigint | null {
  const g = gpa & ~sharedMask;
  const slot = findMemslot(memslots, gpaToGfn(g));
  if (slot === undefined) return null;
  return (backingPfn(slot, gpaToGfn(g), false)! << 12n) | (g & (PAGE_SIZE - 1n));
}

type WaitExitInput = Extract<NonNullable<Scenario['host']>[number], { op: 'waitExit' }>;

/** A `waitExit` step's fields as the exit's fields to check (hostProgram.ts ExitExpectation). */
export function exitExpectation(h: WaitExitInput): ExitExpectation {
  const expect: ExitExpectation = {};
  const addr = h.port !== undefined ? BigInt(h.port) : h.gpa;
  if (addr !== undefined) expect.address = addr;
  if (h.size !== undefined) expect.size = BigInt(h.size);
  if (h.direction !== undefined) expect.direction = h.direction === 'in' ? KVM_EXIT_IO_IN : KVM_EXIT_IO_OUT;
  if (h.write !== undefined) expect.direction = h.write ? 1 : 0;
  if (h.data !== undefined) expect.data = h.data;
  if (h.nr !== undefined) expect.code = BigInt(h.nr);
  if (h.private !== undefined) expect.code = h.private ? BigInt(KVM_MEMORY_EXIT_FLAG_PRIVATE) : 0n;
  return expect;
}

/**
 * The main thread's memslots as it has set them by a step: the build's, then each KVM_SET_USER_MEMORY_REGION2
 * of its program applied in order (as succeeding unless the step expects an error; one that fails otherwise
 * fails the run). A read or write resolves its GPA in this view, not the build's: after a delete the GPA has
 * no mapping, and the step fails instead of reaching memory the slot no longer covers.
 */
class SlotView {
  private slots: { id: number; slot: Memslot }[];
  /** Per slot id: the step that last deleted it. */
  private deletedBy = new Map<number, string>();
  constructor(memslots: readonly Memslot[]) {
    this.slots = memslots.map((slot, i) => ({ id: slot.id ?? i, slot }));
  }
  apply(h: { slot: number; gpa: bigint; size: bigint; flags: readonly string[] }, label: string): void {
    const rest = this.slots.filter((x) => x.id !== h.slot);
    const old = this.slots.find((x) => x.id === h.slot);
    if (h.size === 0n) {
      if (old !== undefined) this.deletedBy.set(h.slot, label);
      this.slots = rest;
      return;
    }
    const guestMemfd = old?.slot.guestMemfd ?? h.flags.includes('KVM_MEM_GUEST_MEMFD');
    this.slots = [...rest, { id: h.slot, slot: { baseGfn: gpaToGfn(h.gpa), npages: h.size / PAGE_SIZE, guestMemfd } }];
  }
  /** The host PA of a GPA, or why userspace has no mapping of it. */
  resolve(gpa: bigint, sharedMask: bigint): { pa: bigint } | { gone: string } {
    const pa = hostPa(this.slots.map((x) => x.slot), gpa, sharedMask);
    if (pa !== null) return { pa };
    const by = [...this.deletedBy.values()].at(-1);
    return { gone: `${hex(gpa & ~sharedMask)} is in no memslot${by !== undefined ? ` (${by} deleted or moved it)` : ''}: the VMM has no mapping of it` };
  }
}

export function hostSteps(s: Scenario, memslots: readonly Memslot[], sharedMask: bigint): HostStep[] {
  const view = new SlotView(memslots);
  const at = (gpa: bigint): { pa: bigint; gone?: string } => {
    const r = view.resolve(gpa, sharedMask);
    return 'pa' in r ? r : { pa: 0n, gone: r.gone };
  };
  // A pre-fault marked beforeFinalize belongs to the build (buildPreFaults), not to this part.
  const steps = (s.host ?? []).map((h, i): HostStep | null => {
    const label = `host[${i}]`;
    switch (h.op) {
      case 'waitExit':
        return { op: 'waitExit', label, vcpu: h.vcpu, exit: h.exit, expect: exitExpectation(h) };
      case 'run':
        return { op: 'run', label, vcpu: h.vcpu, data: h.data ?? null, ret: h.ret ?? 0 };
      case 'write':
        return { op: 'write', label, gpa: h.gpa, ...at(h.gpa), size: h.size, value: h.value };
      case 'read':
        return { op: 'read', label, gpa: h.gpa, ...at(h.gpa), size: h.size, expect: h.expect ?? null };
      case 'waitMemory':
        return { op: 'waitMemory', label, gpa: h.gpa, ...at(h.gpa), size: h.size, value: h.value };
      case 'exit':
        return { op: 'exit', label };
      case 'setMemoryRegion':
        if (h.expectRet === undefined || h.expectRet === 0) view.apply(h, label);
        return { op: 'setMemoryRegion', label, slot: h.slot, flags: h.flags.reduce((f, n) => f | MEMSLOT_FLAGS[n], 0), gpa: h.gpa, size: h.size, guestMemfdOffset: h.guestMemfdOffset, expectRet: h.expectRet ?? null };
      case 'setAttributes':
        return { op: 'convert', label, address: h.gpa, size: h.size, attributes: h.to === 'private' ? BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE) : 0n, expectRet: h.expectRet ?? null };
      case 'punchHole': {
        const f = gmemOffset(s, h.gpa, sharedMask);
        return { op: 'fallocate', label, slot: f.slot, mode: h.mode ?? FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, offset: f.offset, len: h.size, expectRet: h.expectRet ?? null };
      }
      case 'truncate':
        return { op: 'ftruncate', label, slot: gmemOffset(s, h.gpa, sharedMask).slot, length: h.length, expectRet: h.expectRet ?? null };
      case 'preFaultMemory':
        return h.beforeFinalize === true ? null : { op: 'preFault', ...preFault(h, label) };
    }
  });
  return steps.filter((x): x is HostStep => x !== null);
}
