/**
 * From a real trace to a scenario the model can run: what each vCPU's guest must have executed for KVM to
 * see the exits it saw, and the VM around it.
 *
 * Each vCPU thread's exits are read in order:
 *   - EPT_VIOLATION + kvm_page_fault on a private GPA (shared bit clear) with EEQ type ACCEPT
 *     → `accept`: the requested level (EEQ info bits 2:0) gives 4K or 2M; the 4K exits that follow inside a
 *     2M accept are its 512-way fallback (§6.iii, Linux tdx_accept_memory), contiguous 4K exits one range;
 *   - the same with EEQ type NONE → a `load` or `store` (exit qualification bit 1) of the private page;
 *     again at the same page before anything else happened → the same instruction retried;
 *     an ACCEPT exit on that page next → its #VE handler accepting it (`privateVe: accept`);
 *   - on a shared GPA: MMIO (the page is a device's: kvm_mmio or an MMIO SPTE is seen for it) waits for
 *     its kvm_mmio; otherwise a `load` / `store` of shared memory;
 *   - EPT_MISCONFIG (a TD's TDVMCALL<#VE.RequestMMIO>, or VMX's MMIO) + kvm_mmio → `load` / `store` of
 *     the device register, with the value the trace shows for writes;
 *   - IO_INSTRUCTION + kvm_pio write → `out`;
 *   - TDCALL + KVM_EXIT_HYPERCALL, then the KVM_SET_MEMORY_ATTRIBUTES QEMU answers it with
 *     (kvm_vm_set_mem_attributes, until the next kvm_entry) → `mapGpa`; no attributes before the vCPU runs
 *     again → the VMM answered EAGAIN (`vmm.mapGpaEagain`); kvm_hypercall nr KVM_HC_MAP_GPA_RANGE → `mapGpa`;
 *   - the last HLT of a vCPU → `hlt`.
 * The VM: TD or VMX (EEQ, TDCALL exits, shared-bit GPAs, TDX messages say TD; a guest RIP KVM can read
 * says VMX), GPAW 52 when a GPA needs it, guest_memfd memslots from the build's PRIVATE attribute ranges,
 * one register-file device per MMIO page (registers seeded with the values first read), image pages from
 * the leaves the build mapped before any vCPU ran, SEPT_VE_DISABLE unless a guest went on after touching
 * a page KVM AUGed for it, privateHugePages when a private 2M leaf appears.
 *
 * What a trace cannot show is left out and said so (`notes`): private memory contents, instructions that
 * never exited, exits the model has no instruction for.
 */
import { PAGE_SIZE, TDX_PS_2M, gpaToGfn, pageSizeOfPgLevel, sharedBit, tdxLevelToPgLevel, type Gpaw } from '../arch/gpa.ts';
import { hex } from '../arch/hex.ts';
import { KVM_EXIT_HYPERCALL, KVM_HC_MAP_GPA_RANGE, KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_MEMORY_ATTRIBUTE_PRIVATE, PG_LEVEL_1G, PG_LEVEL_2M } from '../arch/kvmApi.ts';
import { decodeAcceptEeqInfo, TDX_EXT_EXIT_QUAL_INFO_SHIFT, TDX_EXT_EXIT_QUAL_TYPE_ACCEPT, TDX_EXT_EXIT_QUAL_TYPE_MASK, TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION } from '../arch/tdxStatus.ts';
import {
  EPT_VIOLATION_ACC_INSTR,
  EPT_VIOLATION_ACC_WRITE,
  EXIT_REASON_EPT_MISCONFIG,
  EXIT_REASON_EPT_VIOLATION,
  EXIT_REASON_EXCEPTION_NMI,
  EXIT_REASON_EXTERNAL_INTERRUPT,
  EXIT_REASON_HLT,
  EXIT_REASON_IO_INSTRUCTION,
  EXIT_REASON_OTHER_SMI,
  EXIT_REASON_TDCALL,
  EXIT_REASON_VMCALL,
  VMX_EXIT_REASONS_FAILED_VMENTRY,
  EXIT_REASON_BASIC_MASK,
} from '../arch/vmx.ts';
import type { ParsedTrace } from './parseTrace.ts';
import type { DataOf, SourceRef, TraceEvent } from './traceEvent.ts';

export type BuiltOp =
  | { op: 'load'; gpa: bigint; size: number }
  | { op: 'store'; gpa: bigint; size: number; value: bigint }
  | { op: 'accept'; gpa: bigint; size: bigint }
  | { op: 'mapGpa'; gpa: bigint; size: bigint; to: 'shared' | 'private' }
  | { op: 'out'; port: number; size: number; value: bigint }
  | { op: 'hlt' };

export interface Origin {
  /** The trace lines the instruction was read from (its exits, the fault, kvm_mmio …). */
  src: SourceRef[];
  /** What was seen, in a few words: `EPT_VIOLATION, EEQ ACCEPT at 4K`. */
  what: string;
  /** Times the trace shows the instruction faulting again on the same page after re-entry. */
  retries?: number;
}

export interface PlacedOp {
  op: BuiltOp;
  origin: Origin;
}

export interface BuiltVcpu {
  vcpu: number;
  ops: PlacedOp[];
  privateVe: 'panic' | 'accept';
}

export interface Note {
  src: SourceRef | null;
  message: string;
}

export interface BuiltScenario {
  name: string;
  description: string;
  vmType: 'tdx' | 'vmx';
  gpaw: Gpaw;
  septVeDisable: boolean;
  privateHugePages: boolean;
  mapGpaEagain: number;
  memslots: { gpa: bigint; size: bigint; guestMemfd: boolean; why: string }[];
  devices: { gpa: bigint; registers: Map<bigint, bigint>; src: SourceRef | null }[];
  image: { gpa: bigint; src: SourceRef | null }[];
  vcpus: BuiltVcpu[];
  notes: Note[];
}

const ASYNC_EXITS: ReadonlySet<number> = new Set([EXIT_REASON_EXTERNAL_INTERRUPT, EXIT_REASON_EXCEPTION_NMI, EXIT_REASON_OTHER_SMI]);
const TWO_MB = pageSizeOfPgLevel(PG_LEVEL_2M);
/** What QEMU gives a TD that a trace does not size: 2 GiB of guest_memfd RAM from 0, as the examples do. */
const DEFAULT_RAM = 0x80000000n;
const ONE_GB = pageSizeOfPgLevel(PG_LEVEL_1G);

const page = (a: bigint) => a & ~(PAGE_SIZE - 1n);
const srcOf = (e: TraceEvent): SourceRef[] => (e.src === null ? [] : [e.src]);
const at = (s: SourceRef | null) => (s === null ? '' : `${s.file}:${s.line}`);

/** A failed entry (BUSY, reason -1) or an asynchronous exit: the guest's program did nothing. */
function isAsync(d: DataOf<'kvm_exit'>): boolean {
  if (d.reason === null) return false;
  if ((d.reason & VMX_EXIT_REASONS_FAILED_VMENTRY) !== 0) return true;
  return ASYNC_EXITS.has(d.reason & EXIT_REASON_BASIC_MASK);
}

export function isTdTrace(events: readonly TraceEvent[]): boolean {
  let vmxRip = false;
  for (const e of events) {
    const d = e.data;
    if (d.name === 'tdx_seamcall_error' || d.name === 'tdx_pending_access') return true;
    if (d.name === 'kvm_exit') {
      if (d.reason !== null && (d.reason & EXIT_REASON_BASIC_MASK) === EXIT_REASON_TDCALL) return true;
      if (d.reason === EXIT_REASON_EPT_VIOLATION && d.info2 !== 0n) return true;
      if (d.rip !== 0n) vmxRip = true;
    }
    if (d.name === 'kvm_vm_set_mem_attributes' && (d.attributes & BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE)) !== 0n) return true;
    if (d.name === 'kvm_page_fault' && (d.address & sharedBit(48)) !== 0n) return true;
  }
  return !vmxRip;
}

/** The first GPA 4-level EPT cannot hold: anything at or above it needs GPAW 52, whose shared bit is 51 (§2). */
const GPAW_48_END = sharedBit(48) << 1n;

function gpawOf(events: readonly TraceEvent[]): Gpaw {
  const wide = events.some((e) => (e.data.name === 'kvm_page_fault' && e.data.address >= GPAW_48_END) || (e.data.name === 'kvm_tdp_mmu_spte_changed' && e.data.gfn >= gpaToGfn(GPAW_48_END)));
  return wide ? 52 : 48;
}

export function sanitizeName(base: string): string {
  const s = base.toLowerCase().replace(/\.[a-z0-9]+$/, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  return `import-${s || 'trace'}`;
}

interface VcpuState {
  ops: PlacedOp[];
  notes: Note[];
  pendingExit: TraceEvent | null;
  halt: TraceEvent | null;
  /** The last instruction that touched memory and its page, for retries and the #VE handler's accept. */
  touch: { page: bigint; index: number; private: boolean } | null;
  accept: { start: bigint; end: bigint; index: number; fourK: boolean } | null;
  mmioRead: { index: number; gpa: bigint } | null;
  /** The EPT violation and fault of an MMIO page's first touch, which belong to the next kvm_mmio's instruction. */
  mmioTouch: SourceRef[];
  mapGpa: { src: SourceRef[]; ranges: { start: bigint; end: bigint; attributes: bigint; src: SourceRef | null }[] } | null;
  handlerAccept: boolean;
  eagain: number;
}

export function buildScenario(trace: ParsedTrace, name: string): BuiltScenario {
  const events = trace.events;
  const td = isTdTrace(events);
  const gpaw = gpawOf(events);
  const shared = td ? sharedBit(gpaw) : 0n;
  const notes: Note[] = [];
  const firstEntry = events.findIndex((e) => e.data.name === 'kvm_entry');
  const beforeRun = (i: number) => firstEntry === -1 || i < firstEntry;

  // Device pages: every GPA KVM emulated MMIO for, or mapped an MMIO SPTE at.
  const devicePages = new Map<bigint, { registers: Map<bigint, bigint>; written: Set<bigint>; src: SourceRef | null }>();
  const device = (gpa: bigint, src: SourceRef | null) => {
    const p = page(gpa & ~shared);
    if (!devicePages.has(p)) devicePages.set(p, { registers: new Map(), written: new Set(), src });
    return devicePages.get(p)!;
  };
  for (const e of events) {
    const d = e.data;
    if (d.name === 'kvm_mmio' || d.name === 'kvm_fast_mmio') device(d.gpa, e.src);
    if (d.name === 'handle_mmio_page_fault') device(d.addr, e.src);
    if (d.name === 'mark_mmio_spte') device(d.gfn << 12n, e.src);
  }
  const isDevice = (gpa: bigint) => devicePages.has(page(gpa & ~shared));

  const septVeOn = events.some((e) => e.data.name === 'tdx_pending_access' || (e.data.name === 'kvm_exit' && e.data.reason === EXIT_REASON_EPT_VIOLATION && Number(e.data.info2 & TDX_EXT_EXIT_QUAL_TYPE_MASK) === TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION));

  const vcpuIds = new Set<number>();
  for (const e of events) if (e.thread.startsWith('vcpu')) vcpuIds.add(Number(e.thread.slice(4)));
  for (const e of events) if (e.data.name === 'tdx_pending_access') vcpuIds.add(e.data.vcpu);
  const count = vcpuIds.size === 0 ? 1 : Math.max(...vcpuIds) + 1;

  const states: VcpuState[] = [...Array(count).keys()].map(() => ({
    ops: [],
    notes: [],
    pendingExit: null,
    halt: null,
    touch: null,
    accept: null,
    mmioRead: null,
    mmioTouch: [],
    mapGpa: null,
    handlerAccept: false,
    eagain: 0,
  }));
  let mapGpaDone = false;
  // Without the attributes tracepoint a MapGPA's range is unknown, and an unanswered one proves nothing.
  const attributesRecorded = events.some((e) => e.data.name === 'kvm_vm_set_mem_attributes');

  const push = (s: VcpuState, op: BuiltOp, origin: Origin) => {
    s.ops.push({ op, origin });
    if (op.op !== 'accept') s.accept = null;
    if (op.op !== 'load' && op.op !== 'store') s.touch = null;
  };

  const touch = (s: VcpuState, exit: TraceEvent, pf: TraceEvent, gpa: bigint, qual: bigint, isPrivate: boolean) => {
    const p = page(gpa);
    const last = s.ops.length - 1;
    if (s.touch !== null && s.touch.page === p && s.touch.index === last) {
      // The same page again before anything else: the instruction was retried (re-entered, faulted again).
      const o = s.ops[last]!;
      o.origin.src.push(...srcOf(exit), ...srcOf(pf));
      o.origin.retries = (o.origin.retries ?? 0) + 1;
      return;
    }
    if ((qual & BigInt(EPT_VIOLATION_ACC_INSTR)) !== 0n) notes.push({ src: exit.src, message: `an instruction fetch from ${hex(gpa)} exited; the model's guest only loads and stores, so it loads instead` });
    const write = (qual & BigInt(EPT_VIOLATION_ACC_WRITE)) !== 0n;
    // TD exits report the GPA with bits 11:0 clear; VMX gives the byte, and memory accesses must be aligned.
    const size = gpa % 8n === 0n ? 8 : gpa % 4n === 0n ? 4 : gpa % 2n === 0n ? 2 : 1;
    const kind = `${isPrivate ? 'private' : 'shared'} EPT_VIOLATION (${write ? 'write' : 'read'})`;
    push(s, write ? { op: 'store', gpa, size, value: 0n } : { op: 'load', gpa, size }, { src: [...srcOf(exit), ...srcOf(pf)], what: kind });
    s.touch = { page: p, index: s.ops.length - 1, private: isPrivate };
  };

  const acceptExit = (s: VcpuState, exit: TraceEvent, pf: TraceEvent, gpa: bigint, info: number) => {
    const reqPs = decodeAcceptEeqInfo(info).reqLevel;
    const size = pageSizeOfPgLevel(tdxLevelToPgLevel(Math.min(reqPs, TDX_PS_2M)));
    const base = gpa & ~(size - 1n);
    const src = [...srcOf(exit), ...srcOf(pf)];
    const last = s.ops.length - 1;
    if (s.accept !== null && gpa >= s.accept.start && gpa < s.accept.end) {
      s.ops[s.accept.index]!.origin.src.push(...src);
      return;
    }
    if (s.touch !== null && s.touch.private && s.touch.index === last && s.touch.page === page(gpa) && size === PAGE_SIZE) {
      // tdx_accept_memory of the page the touch faulted on: the guest's #VE handler (§6.ii B.3).
      s.handlerAccept = true;
      s.ops[last]!.origin.src.push(...src);
      s.ops[last]!.origin.what += ', then its #VE handler accepted the page';
      return;
    }
    if (s.accept !== null && s.accept.fourK && size === PAGE_SIZE && gpa === s.accept.end && s.accept.index === last) {
      s.accept.end += PAGE_SIZE;
      const op = s.ops[last]!;
      (op.op as { size: bigint }).size += PAGE_SIZE;
      op.origin.src.push(...src);
      return;
    }
    push(s, { op: 'accept', gpa: base, size }, { src, what: `EPT_VIOLATION, EEQ ACCEPT at ${size === PAGE_SIZE ? '4K' : '2M'}` });
    s.accept = { start: base, end: base + size, index: s.ops.length - 1, fourK: size === PAGE_SIZE };
  };

  const eptViolation = (s: VcpuState, exit: TraceEvent, pf: TraceEvent | null) => {
    const d = exit.data as DataOf<'kvm_exit'>;
    const eeqType = Number(d.info2 & TDX_EXT_EXIT_QUAL_TYPE_MASK);
    if (pf === null) {
      // tdx_handle_ept_violation traces no fault for the PENDING access that kills the VM.
      if (td && eeqType === TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION && s.touch !== null) {
        s.ops[s.touch.index]!.origin.src.push(...srcOf(exit));
        return;
      }
      notes.push({ src: exit.src, message: 'an EPT_VIOLATION exit without kvm_page_fault: its GPA is unknown, so it is left out (record kvm:kvm_page_fault too)' });
      return;
    }
    const gpa = (pf.data as DataOf<'kvm_page_fault'>).address;
    const isPrivate = td && (gpa & shared) === 0n;
    if (isPrivate && eeqType === TDX_EXT_EXIT_QUAL_TYPE_ACCEPT) return acceptExit(s, exit, pf, gpa, Number(d.info2 >> TDX_EXT_EXIT_QUAL_INFO_SHIFT));
    if (!isPrivate && isDevice(gpa)) {
      // The first touch of an MMIO page: the instruction is read from the kvm_mmio that follows.
      s.mmioTouch = [...srcOf(exit), ...srcOf(pf)];
      return;
    }
    return touch(s, exit, pf, gpa, d.info1, isPrivate);
  };

  const closeMapGpa = (s: VcpuState, src: SourceRef | null) => {
    const m = s.mapGpa;
    s.mapGpa = null;
    if (m === null) return;
    if (m.ranges.length === 0) {
      if (!attributesRecorded) {
        notes.push({ src, message: 'a MapGPA (TDCALL, KVM_EXIT_HYPERCALL) whose range the trace does not show (record kvm:kvm_vm_set_mem_attributes too), so it is left out' });
        return;
      }
      if (!mapGpaDone) s.eagain++;
      else notes.push({ src, message: 'a MapGPA exit the VMM answered without converting anything after an earlier one succeeded; the model answers EAGAIN only for the first ones' });
      return;
    }
    const start = m.ranges[0]!.start;
    const end = m.ranges.at(-1)!.end;
    const toPrivate = (m.ranges[0]!.attributes & BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE)) !== 0n;
    mapGpaDone = true;
    push(s, { op: 'mapGpa', gpa: start << 12n, size: (end - start) << 12n, to: toPrivate ? 'private' : 'shared' }, {
      src: [...m.src, ...m.ranges.flatMap((r) => (r.src === null ? [] : [r.src]))],
      what: `TDCALL → KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE), KVM_SET_MEMORY_ATTRIBUTES ${toPrivate ? 'PRIVATE' : 'shared'}`,
    });
  };

  events.forEach((e) => {
    if (!e.thread.startsWith('vcpu')) return;
    const s = states[Number(e.thread.slice(4))]!;
    const d = e.data;
    const pending = s.pendingExit;
    const pendingData = pending?.data as DataOf<'kvm_exit'> | undefined;
    switch (d.name) {
      case 'kvm_entry':
        if (pending !== null && pendingData!.reason === EXIT_REASON_EPT_VIOLATION) eptViolation(s, pending, null);
        s.pendingExit = null;
        closeMapGpa(s, e.src);
        return;
      case 'kvm_exit': {
        if (isAsync(d)) return;
        if (pending !== null && pendingData!.reason === EXIT_REASON_EPT_VIOLATION) eptViolation(s, pending, null);
        s.pendingExit = null;
        if (s.halt !== null) {
          s.notes.push({ src: s.halt.src, message: 'a HLT the guest was woken from: the model\'s guest has no interrupt source, so only a last HLT is kept' });
          s.halt = null;
        }
        const reason = d.reason === null ? null : d.reason & EXIT_REASON_BASIC_MASK;
        if (reason === EXIT_REASON_HLT) s.halt = e;
        else if (reason === EXIT_REASON_EPT_VIOLATION || reason === EXIT_REASON_EPT_MISCONFIG || reason === EXIT_REASON_IO_INSTRUCTION || reason === EXIT_REASON_TDCALL || reason === EXIT_REASON_VMCALL) s.pendingExit = e;
        else notes.push({ src: e.src, message: `a ${d.reasonName} exit: the model's guest has no instruction for it, so it is left out` });
        return;
      }
      case 'kvm_page_fault':
        if (pending !== null && pendingData!.reason === EXIT_REASON_EPT_VIOLATION) {
          s.pendingExit = null;
          eptViolation(s, pending, e);
        }
        return;
      case 'kvm_mmio': {
        const dev = device(d.gpa, e.src);
        const off = (d.gpa & ~shared) - page(d.gpa & ~shared);
        const gpa = (d.gpa & ~shared) | shared;
        const src = [...s.mmioTouch, ...(pending === null ? [] : srcOf(pending)), ...srcOf(e)];
        s.pendingExit = null;
        s.mmioTouch = [];
        if (d.type === 'write') {
          dev.written.add(off);
          push(s, { op: 'store', gpa, size: d.len, value: d.val }, { src, what: `MMIO write (kvm_mmio), ${d.len} bytes` });
        } else if (d.type === 'unsatisfied-read') {
          push(s, { op: 'load', gpa, size: d.len }, { src, what: `MMIO read (kvm_mmio), ${d.len} bytes` });
          s.mmioRead = { index: s.ops.length - 1, gpa: d.gpa };
        } else {
          if (s.mmioRead !== null && s.mmioRead.gpa === d.gpa) s.ops[s.mmioRead.index]!.origin.src.push(...srcOf(e));
          else push(s, { op: 'load', gpa, size: d.len }, { src, what: `MMIO read (kvm_mmio), ${d.len} bytes` });
          s.mmioRead = null;
          // A register the guest reads before writing it starts with the value the device returned.
          if (!dev.written.has(off) && !dev.registers.has(off)) dev.registers.set(off, d.val);
        }
        s.touch = null;
        return;
      }
      case 'kvm_pio': {
        const src = [...(pending === null ? [] : srcOf(pending)), ...srcOf(e)];
        s.pendingExit = null;
        if (d.rw === 'write' && td) push(s, { op: 'out', port: d.port, size: d.size, value: BigInt(d.val ?? 0) }, { src, what: `port I/O write (kvm_pio), ${d.size} bytes` });
        else notes.push({ src: e.src, message: `a port ${d.rw === 'read' ? 'read (IN)' : 'write in a VMX guest'} at ${hex(d.port)}: the model has no such instruction, so it is left out` });
        return;
      }
      case 'kvm_userspace_exit':
        if (d.reason === KVM_EXIT_HYPERCALL && pending !== null && (pendingData!.reason === EXIT_REASON_TDCALL || pendingData!.reason === EXIT_REASON_VMCALL)) {
          s.mapGpa ??= { src: srcOf(pending), ranges: [] };
          s.mapGpa.src.push(...srcOf(e));
          s.pendingExit = null;
        }
        return;
      case 'kvm_vm_set_mem_attributes':
        if (s.mapGpa !== null) s.mapGpa.ranges.push({ start: d.start, end: d.end, attributes: d.attributes, src: e.src });
        return;
      case 'kvm_hypercall':
        if (d.nr === BigInt(KVM_HC_MAP_GPA_RANGE)) {
          s.pendingExit = null;
          const toPrivate = (d.args[2] & BigInt(KVM_MAP_GPA_RANGE_ENCRYPTED)) !== 0n;
          mapGpaDone = true;
          push(s, { op: 'mapGpa', gpa: d.args[0], size: d.args[1] * PAGE_SIZE, to: toPrivate ? 'private' : 'shared' }, { src: [...(pending === null ? [] : srcOf(pending)), ...srcOf(e)], what: 'kvm_hypercall KVM_HC_MAP_GPA_RANGE' });
        }
        return;
      default:
        return;
    }
  });

  states.forEach((s) => {
    const pending = s.pendingExit;
    if (pending !== null && (pending.data as DataOf<'kvm_exit'>).reason === EXIT_REASON_EPT_VIOLATION) eptViolation(s, pending, null);
    closeMapGpa(s, null);
    if (s.halt !== null) push(s, { op: 'hlt' }, { src: srcOf(s.halt), what: 'HLT' });
    notes.push(...s.notes);
  });

  // Only SEAMCALL failures and no vCPU activity (a bare dmesg): run the usual way KVM comes to call that leaf.
  const story = states.every((s) => s.ops.length === 0) ? seamcallStory(events) : null;
  if (story !== null) {
    states[0]!.ops.push(...story.ops);
    if (story.handlerAccept) states[0]!.handlerAccept = true;
    notes.push({ src: story.src, message: story.note });
  }

  const wentOn = states.map((s) => s.handlerAccept || s.ops.some((o, i) => (o.op.op === 'load' || o.op.op === 'store') && o.origin.what.startsWith('private') && wentOnAfter(s, i)));
  const anyWentOn = wentOn.some(Boolean);
  if (septVeOn && anyWentOn) notes.push({ src: null, message: 'one guest hit a PENDING page with SEPT_VE_DISABLE (VM dead) while another went on after touching one; the scenario keeps SEPT_VE_DISABLE' });
  const septVeDisable = td && (septVeOn || !anyWentOn);

  const privateHugePages = td && (story?.hugePages === true || events.some((e) => {
    const d = e.data;
    if (d.name === 'kvm_mmu_split_huge_page') return true;
    if (d.name === 'kvm_mmu_set_spte') return d.level >= PG_LEVEL_2M && (d.gfn << 12n & shared) === 0n;
    if (d.name === 'kvm_mmu_spte_requested') return d.level >= PG_LEVEL_2M;
    return false;
  }));

  // Image: private 4K leaves the build mapped (KVM_TDX_INIT_MEM_REGION → TDH.MEM.PAGE.ADD) before any vCPU ran.
  const image: BuiltScenario['image'] = [];
  if (td) {
    events.forEach((e, i) => {
      if (!beforeRun(i) || e.data.name !== 'kvm_mmu_set_spte') return;
      const gpa = e.data.gfn << 12n;
      if ((gpa & shared) === 0n && !image.some((p) => p.gpa === gpa)) image.push({ gpa, src: e.src });
    });
  }

  // Memslots: the PRIVATE ranges QEMU set before the first entry, else 2 GiB from 0; then wide enough for
  // every GPA the guest used, and cut around the devices.
  const ranges: { start: bigint; end: bigint; why: string }[] = [];
  events.forEach((e, i) => {
    const d = e.data;
    if (td && beforeRun(i) && d.name === 'kvm_vm_set_mem_attributes' && (d.attributes & BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE)) !== 0n) {
      ranges.push({ start: d.start << 12n, end: d.end << 12n, why: `KVM_SET_MEMORY_ATTRIBUTES PRIVATE at ${at(e.src)}` });
    }
  });
  if (ranges.length === 0) ranges.push({ start: 0n, end: DEFAULT_RAM, why: `no build-time memory attributes in the trace: ${hex(DEFAULT_RAM)} bytes from 0` });
  const used: bigint[] = [];
  for (const s of states) {
    for (const { op } of s.ops) {
      if (op.op === 'load' || op.op === 'store') {
        if (!isDevice(op.gpa)) used.push(op.gpa & ~shared);
      } else if (op.op === 'accept' || op.op === 'mapGpa') used.push(op.gpa + op.size - 1n);
    }
  }
  for (const p of image) used.push(p.gpa);
  const top = ranges.reduce((m, r) => (r.end > m ? r.end : m), 0n);
  const need = used.reduce((m, g) => (g >= m ? g + 1n : m), 0n);
  if (need > top) {
    const end = ((need + ONE_GB - 1n) / ONE_GB) * ONE_GB;
    ranges.push({ start: top, end, why: `widened to ${hex(end)} for ${hex(need - 1n)}` });
  }
  const memslots: BuiltScenario['memslots'] = [];
  const devs = [...devicePages.keys()].sort((a, b) => (a < b ? -1 : 1));
  for (const r of ranges) {
    let start = r.start;
    for (const d of devs) {
      if (d < start || d >= r.end) continue;
      if (d > start) memslots.push({ gpa: start, size: d - start, guestMemfd: td, why: r.why });
      start = d + PAGE_SIZE;
    }
    if (start < r.end) memslots.push({ gpa: start, size: r.end - start, guestMemfd: td, why: r.why });
  }

  const vcpus: BuiltVcpu[] = states.map((s, v) => {
    const ops = s.ops.flatMap((o) => (o.op.op === 'accept' ? splitAccept(o) : [o]));
    if (ops.length === 0) {
      const first = image[0];
      if (first !== undefined) ops.push({ op: { op: 'load', gpa: first.gpa, size: 8 }, origin: { src: [], what: 'placeholder: the trace shows no instruction of this vCPU; a load of an image page exits nowhere' } });
      else ops.push({ op: { op: 'hlt' }, origin: { src: [], what: 'placeholder: the trace shows no instruction of this vCPU' } });
      notes.push({ src: null, message: `vCPU ${v}: no instruction of it exited in the trace; the scenario gives it a placeholder` });
    }
    return { vcpu: v, ops, privateVe: td && !septVeDisable && wentOn[v] ? 'accept' : 'panic' };
  });

  return {
    name,
    description: `Built by tdxsim import from ${trace.files.map((f) => `${f.file} (${f.format})`).join(', ')}`,
    vmType: td ? 'tdx' : 'vmx',
    gpaw,
    septVeDisable,
    privateHugePages,
    mapGpaEagain: states.reduce((n, s) => n + s.eagain, 0),
    memslots,
    devices: devs.map((d) => ({ gpa: d, registers: devicePages.get(d)!.registers, src: devicePages.get(d)!.src })),
    image,
    vcpus,
    notes,
  };

  /** After op `i` (its last fault), did this vCPU enter again and exit for something else than that page's PENDING state? */
  function wentOnAfter(s: VcpuState, i: number): boolean {
    const srcs = s.ops[i]!.origin.src;
    const lastLine = srcs.at(-1);
    if (lastLine === undefined) return false;
    const v = states.indexOf(s);
    const after = events.filter((e) => e.thread === `vcpu${v}` && e.src !== null && e.src.file === lastLine.file && e.src.line > lastLine.endLine);
    const entry = after.findIndex((e) => e.data.name === 'kvm_entry');
    if (entry === -1) return false;
    const nextExit = after.slice(entry).find((e) => e.data.name === 'kvm_exit' && !isAsync(e.data));
    // A trace that ends there (a guest that panicked, a recording stopped) says nothing either way.
    if (nextExit === undefined) return false;
    const nd = nextExit.data as DataOf<'kvm_exit'>;
    return !(nd.reason === EXIT_REASON_EPT_VIOLATION && Number(nd.info2 & TDX_EXT_EXIT_QUAL_TYPE_MASK) === TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION);
  }
}

/** Where a bare SEAMCALL failure is replayed: any 2M-aligned private GPA would do, a message does not name one. */
const STORY_GPA = 0x200000n;

/**
 * The guest program that makes KVM issue the failing SEAMCALL of a trace that has nothing else: DEMOTE
 * comes from splitting a private 2M leaf for a 4K ACCEPT (§6.iii); BLOCK, TRACK, REMOVE and WBINVD from
 * zapping a private page on a conversion to shared (§6.iv); SEPT.ADD and AUG from a private fault (§6.ii).
 */
function seamcallStory(events: readonly TraceEvent[]): { ops: PlacedOp[]; hugePages: boolean; handlerAccept: boolean; note: string; src: SourceRef | null } | null {
  const err = events.find((e) => e.data.name === 'tdx_seamcall_error');
  if (err === undefined || err.data.name !== 'tdx_seamcall_error' || err.data.leafName === null) return null;
  const leaf = err.data.leafName;
  const origin = (what: string): Origin => ({ src: srcOf(err), what });
  const gpaNote = `the message does not name the GPA, so the scenario uses ${hex(STORY_GPA)}`;
  if (leaf === 'TDH.MEM.PAGE.DEMOTE' || leaf === 'TDH.MEM.PAGE.PROMOTE') {
    return {
      ops: [{ op: { op: 'store', gpa: STORY_GPA, size: 8, value: 0n }, origin: origin(`the touch that makes KVM map ${leaf === 'TDH.MEM.PAGE.DEMOTE' ? 'and then split' : 'at'} 2M; its #VE handler accepts 4K`) }],
      hugePages: true,
      handlerAccept: true,
      note: `only ${leaf} failing is in the trace: the scenario makes KVM split a private 2M leaf for a 4K ACCEPT (§6.iii), the way it calls ${leaf}; ${gpaNote}`,
      src: err.src,
    };
  }
  if (['TDH.MEM.RANGE.BLOCK', 'TDH.MEM.TRACK', 'TDH.MEM.PAGE.REMOVE', 'TDH.PHYMEM.PAGE.WBINVD'].includes(leaf)) {
    return {
      ops: [
        { op: { op: 'accept', gpa: STORY_GPA, size: PAGE_SIZE }, origin: origin('a private page to zap') },
        { op: { op: 'mapGpa', gpa: STORY_GPA, size: PAGE_SIZE, to: 'shared' }, origin: origin(`the conversion whose zap calls ${leaf}`) },
      ],
      hugePages: false,
      handlerAccept: false,
      note: `only ${leaf} failing is in the trace: the scenario converts an accepted private page to shared, whose zap calls it (§6.iv); ${gpaNote}`,
      src: err.src,
    };
  }
  if (leaf === 'TDH.MEM.PAGE.AUG' || leaf === 'TDH.MEM.SEPT.ADD') {
    return {
      ops: [{ op: { op: 'accept', gpa: STORY_GPA, size: PAGE_SIZE }, origin: origin(`the private fault that calls ${leaf}`) }],
      hugePages: false,
      handlerAccept: false,
      note: `only ${leaf} failing is in the trace: the scenario accepts a private page, whose fault calls it (§6.ii); ${gpaNote}`,
      src: err.src,
    };
  }
  return null;
}

/**
 * tdx_accept_memory tries 2M at every 2M-aligned GPA with 2M left; a run of 4K accepts the trace shows
 * there must not start one, so such a page becomes an accept of its own.
 */
function splitAccept(o: PlacedOp): PlacedOp[] {
  const op = o.op as { op: 'accept'; gpa: bigint; size: bigint };
  if (op.size === TWO_MB && op.gpa % TWO_MB === 0n && o.origin.what.endsWith('2M')) return [o];
  const out: PlacedOp[] = [];
  let start = op.gpa;
  const end = op.gpa + op.size;
  for (let p = op.gpa; p < end; p += PAGE_SIZE) {
    if (p % TWO_MB === 0n && end - p >= TWO_MB) {
      if (p > start) out.push({ op: { op: 'accept', gpa: start, size: p - start }, origin: o.origin });
      out.push({ op: { op: 'accept', gpa: p, size: PAGE_SIZE }, origin: o.origin });
      start = p + PAGE_SIZE;
    }
  }
  if (start < end) out.push({ op: { op: 'accept', gpa: start, size: end - start }, origin: o.origin });
  return out;
}
