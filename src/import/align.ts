/**
 * Aligning a real trace with the trace the model's run would have produced (src/import/modelTrace.ts).
 *
 * Both are cut into threads — each vCPU's KVM_RUN thread, and the VMM's — because the interleaving of
 * threads is the scheduler's, not the model's: within a thread the order is the program's and KVM's.
 * Each event gets a comparison key with the fields the model predicts (exit reason, exit qualification's
 * access and permission bits, EEQ, faulting GPA, SPTE transitions by kind and permissions, MMIO and port
 * data the guest wrote, SEAMCALL status) and without those it cannot (timestamps, RIPs, host PFNs,
 * register data a device returned). Only event names the real trace recorded are compared, so a trace
 * taken with `-e kvm` alone is not faulted for missing kvmmmu lines. Exits the host causes and the guest
 * does not — external interrupts, NMIs, SMIs, a refused TDH.VP.ENTER (BUSY), a HLT the guest is woken from
 * — are set aside with the entry that follows them, on both sides.
 *
 * The two key sequences are walked together; where they differ, the shortest resynchronisation (fewest
 * events skipped on both sides, confirmed by the next matches) closes a hunk of trace-only and
 * model-only events. Bare dmesg lines, which have no thread, are matched by key against the model's
 * messages wherever they are.
 */
import { FROZEN_SPTE, SHADOW_NONPRESENT_VALUE, TDX_SHADOW_MMIO_VALUE, VMX_EPT_MISCONFIG_WX_VALUE, VMX_EPT_RWX_MASK, isLargePte, isLastSpte, isMmioSpte, isShadowPresentPte } from '../arch/spte.ts';
import { hex } from '../arch/hex.ts';
import { EXIT_REASON_EPT_VIOLATION, EXIT_REASON_EXCEPTION_NMI, EXIT_REASON_EXTERNAL_INTERRUPT, EXIT_REASON_HLT, EXIT_REASON_OTHER_SMI, VMX_EXIT_REASONS_FAILED_VMENTRY, EPT_VIOLATION_PROT_MASK, EPT_VIOLATION_ACC_READ, EPT_VIOLATION_ACC_WRITE, EPT_VIOLATION_ACC_INSTR, EXIT_REASON_BASIC_MASK } from '../arch/vmx.ts';
import type { Thread, TraceEvent } from './traceEvent.ts';

export interface KeyContext {
  td: boolean;
}

/** Exit-qualification bits worth comparing: access (2:0) and, for a TD, the permissions the module reports (5:3). */
const ACCESS_BITS = EPT_VIOLATION_ACC_READ | EPT_VIOLATION_ACC_WRITE | EPT_VIOLATION_ACC_INSTR;
const qualMask = (ctx: KeyContext) => BigInt(ctx.td ? ACCESS_BITS | EPT_VIOLATION_PROT_MASK : ACCESS_BITS);

function spteKind(spte: bigint, level: number, td: boolean): string {
  if (spte === FROZEN_SPTE) return 'frozen';
  if (isShadowPresentPte(spte)) {
    if (!isLastSpte(spte, level)) return 'nonleaf';
    const rwx = Number(spte & VMX_EPT_RWX_MASK);
    return `leaf${rwx & 1 ? 'R' : '-'}${rwx & 2 ? 'W' : '-'}${rwx & 4 ? 'X' : '-'}${isLargePte(spte) ? '+huge' : ''}`;
  }
  if (spte !== SHADOW_NONPRESENT_VALUE && spte !== 0n && isMmioSpte(spte, td ? TDX_SHADOW_MMIO_VALUE : VMX_EPT_MISCONFIG_WX_VALUE)) return 'mmio';
  return 'nonpresent';
}

/** The comparison key of an event, or null for events the model does not speak about. */
export function compareKey(e: TraceEvent, ctx: KeyContext): string | null {
  const d = e.data;
  const q = qualMask(ctx);
  switch (d.name) {
    case 'kvm_entry':
      return 'kvm_entry';
    case 'kvm_exit':
      if (d.reason === EXIT_REASON_EPT_VIOLATION) return `kvm_exit EPT_VIOLATION qual ${hex(d.info1 & q)}${ctx.td ? ` eeq ${hex(d.info2)}` : ''}`;
      return `kvm_exit ${d.reason === null ? d.reasonName : hex(d.reason)}`;
    case 'kvm_page_fault':
      return `kvm_page_fault ${hex(d.address)} ${hex(d.errorCode & q)}`;
    case 'kvm_userspace_exit':
      return d.errno !== null ? `kvm_userspace_exit errno ${d.errno}` : `kvm_userspace_exit ${d.reason}`;
    case 'kvm_mmio':
      return d.type === 'write' ? `kvm_mmio write ${d.len} ${hex(d.gpa)} ${hex(d.val)}` : `kvm_mmio ${d.type} ${d.len} ${hex(d.gpa)}`;
    case 'kvm_pio':
      return `kvm_pio ${d.rw} ${hex(d.port)} ${d.size} ${d.count}${d.rw === 'write' && d.val !== null ? ` ${hex(d.val)}` : ''}`;
    case 'kvm_hypercall':
      return `kvm_hypercall ${hex(d.nr)} ${d.args.slice(0, 3).map(hex).join(' ')}`;
    case 'kvm_vm_set_mem_attributes':
      return `kvm_vm_set_mem_attributes ${hex(d.start)}-${hex(d.end)} ${hex(d.attributes)}`;
    case 'kvm_tdp_mmu_spte_changed':
      return `kvm_tdp_mmu_spte_changed ${hex(d.gfn)} L${d.level} ${spteKind(d.oldSpte, d.level, ctx.td)}>${spteKind(d.newSpte, d.level, ctx.td)}`;
    case 'kvm_mmu_set_spte':
      return `kvm_mmu_set_spte ${hex(d.gfn)} L${d.level} ${d.access}`;
    case 'mark_mmio_spte':
      return `mark_mmio_spte ${hex(d.gfn)}`;
    case 'kvm_mmu_spte_requested':
      return `kvm_mmu_spte_requested ${hex(d.gfn)} L${d.level}`;
    case 'handle_mmio_page_fault':
      return `handle_mmio_page_fault ${hex(d.addr)}`;
    case 'kvm_mmu_split_huge_page':
      return `kvm_mmu_split_huge_page ${hex(d.gfn)} L${d.level} ${d.errno}`;
    case 'tdx_seamcall_error':
      return `tdx_seamcall_error ${d.leafName ?? d.printed} ${d.statusName}`;
    case 'tdx_pending_access':
      return `tdx_pending_access ${hex(d.gpa)} ${d.vcpu}`;
    default:
      return null;
  }
}

/** Exits the host causes, not the guest's program; BUSY (reason -1) is a refused entry. */
export function isHostExit(e: TraceEvent): boolean {
  if (e.data.name !== 'kvm_exit' || e.data.reason === null) return false;
  if ((e.data.reason & VMX_EXIT_REASONS_FAILED_VMENTRY) !== 0) return true;
  const basic = e.data.reason & EXIT_REASON_BASIC_MASK;
  return basic === EXIT_REASON_EXTERNAL_INTERRUPT || basic === EXIT_REASON_EXCEPTION_NMI || basic === EXIT_REASON_OTHER_SMI;
}

export interface Keyed {
  e: TraceEvent;
  key: string;
}

export type SetAside = 'host exit' | 'woken HLT' | 'not compared';

/** A thread's events in order, split into compared ones and the ones set aside (with why). */
export function threadStreams(events: readonly TraceEvent[], names: ReadonlySet<string>, ctx: KeyContext): { streams: Map<Thread, Keyed[]>; aside: Map<TraceEvent, SetAside> } {
  const streams = new Map<Thread, Keyed[]>();
  const aside = new Map<TraceEvent, SetAside>();
  const byThread = new Map<Thread, TraceEvent[]>();
  for (const e of events) {
    const list = byThread.get(e.thread);
    if (list === undefined) byThread.set(e.thread, [e]);
    else list.push(e);
  }
  for (const [thread, list] of byThread) {
    const keyed: Keyed[] = [];
    let lastEntry = -1;
    list.forEach((x, n) => {
      if (x.data.name === 'kvm_entry') lastEntry = n;
    });
    let skipEntry: SetAside | null = null;
    list.forEach((e, i) => {
      const key = names.has(e.data.name) ? compareKey(e, ctx) : null;
      if (key === null) {
        aside.set(e, 'not compared');
        return;
      }
      if (e.data.name === 'kvm_entry' && skipEntry !== null) {
        aside.set(e, skipEntry);
        skipEntry = null;
        return;
      }
      if (isHostExit(e)) {
        aside.set(e, 'host exit');
        skipEntry = 'host exit';
        return;
      }
      if (e.data.name === 'kvm_exit' && e.data.reason === EXIT_REASON_HLT && lastEntry > i) {
        aside.set(e, 'woken HLT');
        skipEntry = 'woken HLT';
        return;
      }
      keyed.push({ e, key });
    });
    streams.set(thread, keyed);
  }
  return { streams, aside };
}

export interface Pair {
  real: TraceEvent;
  model: TraceEvent;
}

export interface Hunk {
  thread: Thread;
  real: TraceEvent[];
  model: TraceEvent[];
  /** The aligned pairs around it (null at a stream's start or end). */
  before: Pair | null;
  after: Pair | null;
  /** Index of the hunk's first event in its thread's compared stream, on each side. */
  realIndex: number;
  modelIndex: number;
}

export interface Alignment {
  pairs: Pair[];
  hunks: Hunk[];
  streams: { real: Map<Thread, Keyed[]>; model: Map<Thread, Keyed[]> };
  aside: Map<TraceEvent, SetAside>;
  /** Event names compared (those the real trace recorded). */
  compared: ReadonlySet<string>;
}

/** How far ahead a resynchronisation is looked for, and how many matches confirm it. */
const WINDOW = 400;
const CONFIRM = 2;
/** Key comparisons all resynchronisations of one alignment may spend; past it, the rest of a stream is one hunk. */
const BUDGET = 20_000_000;

function resync(r: Keyed[], m: Keyed[], i: number, j: number, budget: { left: number }): [number, number] | null {
  const confirmed = (a: number, b: number) => {
    for (let k = 0; k < CONFIRM; k++) {
      const x = r[a + k];
      const y = m[b + k];
      if (x === undefined || y === undefined) return x === undefined && y === undefined ? true : k > 0;
      if (x.key !== y.key) return false;
    }
    return true;
  };
  for (let s = 1; s <= 2 * WINDOW; s++) {
    for (let a = 0; a <= s; a++) {
      const b = s - a;
      if (a > WINDOW || b > WINDOW || i + a >= r.length || j + b >= m.length) continue;
      if (--budget.left < 0) return null;
      if (r[i + a]!.key === m[j + b]!.key && confirmed(i + a, j + b)) return [a, b];
    }
  }
  return null;
}

function alignStream(thread: Thread, r: Keyed[], m: Keyed[], pairs: Pair[], hunks: Hunk[], budget: { left: number }): void {
  let i = 0;
  let j = 0;
  let last: Pair | null = null;
  const open = (a: number, b: number) => {
    const h: Hunk = { thread, real: r.slice(i, i + a).map((k) => k.e), model: m.slice(j, j + b).map((k) => k.e), before: last, after: null, realIndex: i, modelIndex: j };
    hunks.push(h);
    i += a;
    j += b;
    return h;
  };
  let pendingHunk: Hunk | null = null;
  while (i < r.length && j < m.length) {
    if (r[i]!.key === m[j]!.key) {
      last = { real: r[i]!.e, model: m[j]!.e };
      pairs.push(last);
      if (pendingHunk !== null) {
        pendingHunk.after = last;
        pendingHunk = null;
      }
      i++;
      j++;
      continue;
    }
    const rs = resync(r, m, i, j, budget);
    if (rs === null) {
      pendingHunk = open(r.length - i, m.length - j);
      break;
    }
    pendingHunk = open(rs[0], rs[1]);
  }
  if (i < r.length || j < m.length) open(r.length - i, m.length - j);
}

/** The dmesg lines no thread recorded, matched by key anywhere in the model's trace. */
function alignBare(real: Keyed[], model: Keyed[], pairs: Pair[], hunks: Hunk[]): void {
  const used = new Set<number>();
  for (const x of real) {
    const k = model.findIndex((y, n) => !used.has(n) && y.key === x.key);
    if (k === -1) hunks.push({ thread: 'dmesg', real: [x.e], model: [], before: null, after: null, realIndex: real.indexOf(x), modelIndex: -1 });
    else {
      used.add(k);
      pairs.push({ real: x.e, model: model[k]!.e });
    }
  }
}

export function alignTraces(real: readonly TraceEvent[], model: readonly TraceEvent[], ctx: KeyContext): Alignment {
  const compared = new Set<string>();
  for (const e of real) if (compareKey(e, ctx) !== null) compared.add(e.data.name);
  const rs = threadStreams(real, compared, ctx);
  const ms = threadStreams(model, compared, ctx);
  const pairs: Pair[] = [];
  const hunks: Hunk[] = [];
  const threads = [...new Set([...rs.streams.keys(), ...ms.streams.keys()])].filter((t) => t !== 'dmesg').sort();
  const budget = { left: BUDGET };
  for (const t of threads) alignStream(t, rs.streams.get(t) ?? [], ms.streams.get(t) ?? [], pairs, hunks, budget);
  const bare = rs.streams.get('dmesg');
  if (bare !== undefined) alignBare(bare, [...ms.streams.values()].flat().filter((k) => k.e.data.name === 'tdx_seamcall_error' || k.e.data.name === 'tdx_pending_access'), pairs, hunks);
  const aside = new Map([...rs.aside, ...ms.aside]);
  return { pairs, hunks, streams: { real: rs.streams, model: ms.streams }, aside, compared };
}
