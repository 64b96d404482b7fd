/**
 * The guest kernel's memory-management data, which every guest vCPU reaches through guest memory: the
 * page tables of the direct map and the EFI unaccepted-memory table (its bitmap, one bit per unit of
 * `unitSize` bytes from `physBase`) with the accepting_list, both under unaccepted_memory_lock (§6.ii).
 *
 * It is one actor because these are words every vCPU reads and writes; each message is one atomic access
 * (a page walk, a PTE store) or one critical section of unaccepted_memory_lock, which nothing else can
 * interleave with. accept_memory's critical sections (drivers/firmware/efi/unaccepted_memory.c) are:
 * lock → check accepting_list → list_add → find the first set run → unlock (interrupts stay off); then, after
 * arch_accept_memory of the run, lock → bitmap_clear → the next run → unlock, and at the end list_del and
 * spin_unlock_irqrestore in the same section. A caller whose range meets one on the list drops the lock and
 * tries again; the model answers it when the colliding entry leaves the list, since every try in between
 * finds the same world.
 *
 * A guest PTE is an x86 PTE: PAGE_KERNEL's flags (P, RW, A, D, NX) and the GPA, with the TD's shared bit
 * (cc_mkdec) set in the address when the page is mapped shared — the encryption state the guest believes.
 */
import { setup, enqueueActions } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { PAGE_SIZE } from '../../src/arch/gpa.ts';

/** _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_NX: PAGE_KERNEL (__PAGE_KERNEL without GLOBAL). */
export const PAGE_KERNEL = 0x8000000000000063n;
export const _PAGE_PRESENT = 1n;
/** Bits 12..51 of a PTE: the page frame's address (with a TD's shared bit inside it). */
export const PTE_PFN_MASK = 0x000ffffffffff000n;

/** A direct-map page the guest maps: the PTE, and what it means. */
export interface GuestPte {
  pte: bigint;
  /** The GPA the PTE maps, without the shared bit. */
  gpa: bigint;
  /** The shared bit is set in the PTE: the guest believes the page shared (decrypted). */
  shared: boolean;
}

/** The EFI unaccepted-memory table (struct efi_unaccepted_memory) and its bitmap as bits, unit 0 first. */
export interface UnacceptedTable {
  physBase: bigint;
  unitSize: bigint;
  /** '1' = the unit is still unaccepted. */
  bitmap: string;
}

/**
 * An accepting_list entry (struct accept_range) on `vcpu`'s stack: units [start, end) that its bitmap walk
 * covers, and the byte offsets from physBase the v1 posting stored and compared instead.
 */
export interface AcceptRange {
  vcpu: number;
  start: bigint;
  end: bigint;
  physStart: bigint;
  physEnd: bigint;
}

export interface GuestKernelInput {
  sharedMask: bigint;
  pageTables: Record<string, GuestPte>;
  unaccepted: UnacceptedTable | null;
  /** Policy acceptingListUnitGranular (src/policies.ts). */
  unitGranularCheck: boolean;
  /** Policy acceptMemoryPastEnd (src/policies.ts). */
  acceptPastEnd: boolean;
}

export interface GuestKernelContext extends GuestKernelInput {
  acceptingList: readonly AcceptRange[];
  /** accept_memory calls that met a colliding accepting_list entry and try again when it leaves. */
  retrying: readonly { vcpu: number; start: bigint; end: bigint }[];
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

export const vaKey = (va: bigint) => '0x' + (va & ~(PAGE_SIZE - 1n)).toString(16);

/** A guest PTE for `gpa`, shared or private (cc_mkdec / cc_mkenc on PAGE_KERNEL). */
export function guestPte(gpa: bigint, shared: boolean, sharedMask: bigint): GuestPte {
  const base = gpa & ~(PAGE_SIZE - 1n) & ~sharedMask;
  return { pte: PAGE_KERNEL | base | (shared ? sharedMask : 0n), gpa: base, shared };
}

/** What accept_memory asks for, in units: [start, end) after the clamps and the extra unit past the end. */
function unitRange(c: GuestKernelContext, start: bigint, end: bigint): { start: bigint; end: bigint; phys: { start: bigint; end: bigint } } | null {
  const t = c.unaccepted!;
  let s = start < t.physBase ? t.physBase : start;
  if (end < t.physBase) return null;
  s -= t.physBase;
  let e = end - t.physBase;
  // load_unaligned_zeropad() may read past `end` into the next unit: accept that unit too.
  if (c.acceptPastEnd && e % t.unitSize === 0n) e += t.unitSize;
  const limit = BigInt(t.bitmap.length) * t.unitSize;
  if (e > limit) e = limit;
  return { start: s / t.unitSize, end: (e + t.unitSize - 1n) / t.unitSize, phys: { start: s, end: e } };
}

/** Whether a call for [start, end) collides with an accepting_list entry (v2: in units; v1: in bytes). */
function collides(c: GuestKernelContext, vcpu: number, start: bigint, end: bigint): boolean {
  const r = unitRange(c, start, end);
  if (r === null) return false;
  return c.acceptingList.some((e) => {
    if (e.vcpu === vcpu) return false;
    // Units [start, end): touching ranges do not collide (Michael Roth's off-by-one fix to 50e782a86c98).
    if (c.unitGranularCheck) return !(e.end <= r.start || e.start >= r.end);
    // The v1 posting kept byte offsets in the list and compared those: two calls in one unit can pass.
    return !(e.physEnd < r.phys.start || e.physStart > r.phys.end);
  });
}

/** The first run of set bits in units [from, end), as physical addresses. */
function firstRun(t: UnacceptedTable, from: bigint, end: bigint): { physStart: bigint; physEnd: bigint } | null {
  let i = Number(from);
  const stop = Math.min(Number(end), t.bitmap.length);
  while (i < stop && t.bitmap[i] !== '1') i++;
  if (i >= stop) return null;
  let j = i;
  while (j < stop && t.bitmap[j] === '1') j++;
  return { physStart: t.physBase + BigInt(i) * t.unitSize, physEnd: t.physBase + BigInt(j) * t.unitSize };
}

function clearBits(t: UnacceptedTable, physStart: bigint, physEnd: bigint): UnacceptedTable {
  const a = Number((physStart - t.physBase) / t.unitSize);
  const b = Number((physEnd - t.physBase) / t.unitSize);
  return { ...t, bitmap: t.bitmap.slice(0, a) + '0'.repeat(b - a) + t.bitmap.slice(b) };
}

/** accept_memory's accepting_list entry for `vcpu`. */
function entryFor(c: GuestKernelContext, vcpu: number, start: bigint, end: bigint): AcceptRange | null {
  const r = unitRange(c, start, end);
  return r === null ? null : { vcpu, start: r.start, end: r.end, physStart: r.phys.start, physEnd: r.phys.end };
}

export const guestKernelMachine = setup({
  types: { context: {} as GuestKernelContext, events: {} as MachineEvent, input: {} as GuestKernelInput, emitted: {} as Emitted },
  actions: {
    walk: enqueueActions(({ context, event, enqueue }) => {
      const { vcpu, va } = payloadOf(event, 'guest-mm', 'GUEST_PT_WALK');
      const e = context.pageTables[vaKey(va)];
      enqueue.emit(out(event.msg.from, 'guest-mm', 'GUEST_PT_WALK_RESULT', { vcpu, va, pte: e === undefined ? null : e.pte }));
    }),
    writePte: enqueueActions(({ context, event, enqueue }) => {
      const { vcpu, va, pte } = payloadOf(event, 'guest-mm', 'GUEST_PTE_WRITE');
      const gpa = pte & PTE_PFN_MASK & ~context.sharedMask;
      enqueue.assign({ pageTables: { ...context.pageTables, [vaKey(va)]: { pte, gpa, shared: (pte & context.sharedMask) !== 0n } } });
      enqueue.emit(out(event.msg.from, 'guest-mm', 'GUEST_PTE_WRITTEN', { vcpu, va }));
    }),
    begin: enqueueActions(({ context, event, enqueue }) => {
      const { vcpu, start, end } = payloadOf(event, 'guest-mm', 'ACCEPT_MEMORY_BEGIN');
      if (context.unaccepted === null) {
        enqueue.emit(out(event.msg.from, 'guest-mm', 'ACCEPT_MEMORY_RANGE', { vcpu, physStart: null, physEnd: null }));
        return;
      }
      if (collides(context, vcpu, start, end)) {
        enqueue.assign({ retrying: [...context.retrying, { vcpu, start, end }] });
        return;
      }
      const entry = entryFor(context, vcpu, start, end);
      const run = entry === null ? null : firstRun(context.unaccepted, entry.start, entry.end);
      if (entry !== null && run !== null) enqueue.assign({ acceptingList: [...context.acceptingList, entry] });
      enqueue.emit(out(event.msg.from, 'guest-mm', 'ACCEPT_MEMORY_RANGE', { vcpu, physStart: run?.physStart ?? null, physEnd: run?.physEnd ?? null }));
    }),
    clear: enqueueActions(({ context, event, enqueue }) => {
      const { vcpu, physStart, physEnd } = payloadOf(event, 'guest-mm', 'ACCEPT_MEMORY_CLEAR');
      const table = clearBits(context.unaccepted!, physStart, physEnd);
      const mine = context.acceptingList.find((e) => e.vcpu === vcpu)!;
      const run = firstRun(table, (physEnd - table.physBase) / table.unitSize, mine.end);
      enqueue.assign({ unaccepted: table });
      if (run !== null) {
        enqueue.emit(out(event.msg.from, 'guest-mm', 'ACCEPT_MEMORY_RANGE', { vcpu, ...run }));
        return;
      }
      // list_del and spin_unlock_irqrestore; callers that collided with this entry try again now.
      const list = context.acceptingList.filter((e) => e !== mine);
      enqueue.emit(out(event.msg.from, 'guest-mm', 'ACCEPT_MEMORY_RANGE', { vcpu, physStart: null, physEnd: null }));
      let ctx: GuestKernelContext = { ...context, unaccepted: table, acceptingList: list, retrying: [] };
      for (const r of context.retrying) {
        if (collides(ctx, r.vcpu, r.start, r.end)) {
          ctx = { ...ctx, retrying: [...ctx.retrying, r] };
          continue;
        }
        const entry = entryFor(ctx, r.vcpu, r.start, r.end);
        const next = entry === null ? null : firstRun(ctx.unaccepted!, entry.start, entry.end);
        if (entry !== null && next !== null) ctx = { ...ctx, acceptingList: [...ctx.acceptingList, entry] };
        enqueue.emit(out(`guest.vcpu${r.vcpu}`, 'guest-mm', 'ACCEPT_MEMORY_RANGE', { vcpu: r.vcpu, physStart: next?.physStart ?? null, physEnd: next?.physEnd ?? null }));
      }
      enqueue.assign({ acceptingList: ctx.acceptingList, retrying: ctx.retrying });
    }),
    unexpected: enqueueActions(({ enqueue }) => enqueue.emit({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'guestKernel',
  context: ({ input }) => ({ ...input, acceptingList: [], retrying: [] }),
  initial: 'running',
  states: {
    running: {
      on: {
        GUEST_PT_WALK: { actions: 'walk' },
        GUEST_PTE_WRITE: { actions: 'writePte' },
        ACCEPT_MEMORY_BEGIN: { actions: 'begin' },
        ACCEPT_MEMORY_CLEAR: { actions: 'clear' },
        '*': { actions: 'unexpected' },
      },
    },
  },
});
