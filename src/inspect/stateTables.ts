/**
 * Two views of model state that read best as tables rather than as the generic context tree:
 *
 * - the interrupt state of every TD vCPU, gathered from the two actors that hold it — KVM's posted-interrupt
 *   descriptor (kvm.vcpuN `piDesc`: PIR, ON) and the CPU's virtual APIC and flags (hw.cpuN: RVI, vIRR, SVI,
 *   ISR, RFLAGS.IF, PEND_NMI, an NMI in service) — with the vectors the guest's handler took; vector sets
 *   are listed as vectors in hex, not as 256-bit words;
 * - the guest kernel's direct-map page tables (guest.kernel `pageTables`): one row per GVA with its PTE, its
 *   flags, the shared bit (cc_mkdec) and the GPA it maps.
 *
 * Shown for the actor asked for: the interrupt table on any of a vCPU's actors, the page table on guest.kernel.
 */
import { hex, hex16 } from '../arch/hex.ts';
import type { StateTable, StateTableRow } from './api.ts';

type Ctx = Record<string, unknown>;
const VCPU_ACTOR = /^(?:kvm\.vcpu|hw\.cpu|guest\.vcpu)(\d+)$/;

/** Set bits of a 256-bit vector register as vectors in hex: `0x30 0xfd`, `—` when empty. */
export function vectorList(bits: bigint): string {
  const out: string[] = [];
  for (let v = 0; bits >> BigInt(v) !== 0n; v++) if (((bits >> BigInt(v)) & 1n) === 1n) out.push(hex(v));
  return out.length === 0 ? '—' : out.join(' ');
}

const vector = (v: unknown) => (typeof v === 'number' && v !== 0 ? hex(v) : '—');
const flag = (v: unknown) => (v === true ? '1' : v === false ? '0' : '?');
const bits = (v: unknown) => (typeof v === 'bigint' ? vectorList(v) : '—');

export const INTERRUPT_COLUMNS = ['vCPU', 'PIR', 'ON', 'RVI', 'vIRR', 'SVI', 'ISR', 'IF', 'PEND_NMI', 'in NMI', 'handled'];

/** One row per vCPU whose CPU has a virtual APIC (a TD), or null when the model has none. */
export function interruptTable(contexts: (id: string) => { now: Ctx; before: Ctx } | undefined, vcpus: number): StateTable | null {
  const rows: StateTableRow[] = [];
  for (let v = 0; v < vcpus; v++) {
    const cpu = contexts(`hw.cpu${v}`);
    const kvm = contexts(`kvm.vcpu${v}`);
    const guest = contexts(`guest.vcpu${v}`);
    if (cpu === undefined || !('vapic' in cpu.now)) continue;
    const cells = (c: { cpu: Ctx; kvm: Ctx | undefined; guest: Ctx | undefined }) => {
      const apic = c.cpu['vapic'] as Ctx;
      const pi = (c.kvm?.['piDesc'] ?? null) as Ctx | null;
      const handled = (c.guest?.['interrupts'] ?? []) as number[];
      return [
        String(v),
        pi === null ? '—' : bits(pi['pir']),
        pi === null ? '?' : flag(pi['on']),
        vector(apic['rvi']),
        bits(apic['virr']),
        vector(apic['svi']),
        bits(apic['isr']),
        flag(c.cpu['rflagsIf']),
        flag(c.cpu['pendNmi']),
        flag(c.cpu['inNmi']),
        handled.length === 0 ? '—' : handled.map((x) => hex(x)).join(' '),
      ];
    };
    const now = cells({ cpu: cpu.now, kvm: kvm?.now, guest: guest?.now });
    const before = cells({ cpu: cpu.before, kvm: kvm?.before, guest: guest?.before });
    rows.push({ key: String(v), cells: now, changed: now.map((c, i) => c !== before[i]) });
  }
  if (rows.length === 0) return null;
  return { id: 'interrupts', title: 'interrupt state per vCPU (kvm.vcpuN posted-interrupt descriptor, hw.cpuN virtual APIC)', columns: INTERRUPT_COLUMNS, rows };
}

export const GUEST_PTE_COLUMNS = ['GVA', 'PTE', 'flags', 'shared', 'GPA'];

/** x86 PTE flags the guest kernel's PAGE_KERNEL uses. */
function pteFlags(pte: bigint): string {
  const names: [bigint, string][] = [
    [1n, 'P'],
    [2n, 'RW'],
    [0x20n, 'A'],
    [0x40n, 'D'],
    [1n << 63n, 'NX'],
  ];
  return names.filter(([b]) => (pte & b) !== 0n).map(([, n]) => n).join(' ') || '—';
}

interface GuestPteView {
  pte: bigint;
  gpa: bigint;
  shared: boolean;
}

/** guest.kernel's `pageTables`, by GVA in address order; a PTE changed at this step (or removed) is marked. */
export function guestPageTable(now: Ctx, before: Ctx): StateTable | null {
  const t = now['pageTables'] as Record<string, GuestPteView> | undefined;
  if (t === undefined || t === null || typeof t !== 'object') return null;
  const prev = (before['pageTables'] ?? {}) as Record<string, GuestPteView>;
  const row = (e: GuestPteView) => [hex16(e.pte), pteFlags(e.pte), e.shared ? 'yes' : 'no', hex(e.gpa)];
  const keys = Object.keys(t).sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
  const rows: StateTableRow[] = keys.map((va) => {
    const cells = [va, ...row(t[va]!)];
    const old = prev[va] === undefined ? null : [va, ...row(prev[va]!)];
    return { key: va, cells, changed: cells.map((c, i) => old === null || c !== old[i]) };
  });
  return { id: 'guest-page-tables', title: `guest kernel page tables (direct map): ${rows.length} PTE${rows.length === 1 ? '' : 's'}`, columns: GUEST_PTE_COLUMNS, rows };
}

/** The tables the state panel shows for `actor`. */
export function stateTables(actor: string, contexts: (id: string) => { now: Ctx; before: Ctx } | undefined, vcpus: number): StateTable[] {
  const out: StateTable[] = [];
  if (VCPU_ACTOR.test(actor)) {
    const t = interruptTable(contexts, vcpus);
    if (t !== null) out.push(t);
  }
  if (actor === 'guest.kernel') {
    const c = contexts(actor);
    const t = c === undefined ? null : guestPageTable(c.now, c.before);
    if (t !== null) out.push(t);
  }
  return out;
}

/** guest.kernel's `pageTables` is drawn as a table, so the context tree names it instead of expanding it. */
export const isGuestPageTableField = (key: string, holder: unknown) => key === 'pageTables' && holder !== null && typeof holder === 'object' && 'sharedMask' in holder;
