/**
 * What a real kernel would have traced during a model run: the tracepoints KVM hits for each delivered
 * message, with the fields it would print. `tdxsim export --format trace-cmd` prints these events, and the
 * importer aligns a real trace against them, so both directions share one definition.
 *
 *   TDH.VP.ENTER (kvm.vcpuN → tdx)           kvm_entry (tdx_vcpu_run, just before the SEAMCALL; rip 0 for a TD)
 *   TD exit (tdx → kvm.vcpuN)                kvm_exit with KVM's reason (tdx_to_vmx_exit_reason: a TDVMCALL
 *                                            becomes VMCALL, CPUID, HLT, IO_INSTRUCTION, MSR_* or, for
 *                                            #VE.RequestMMIO, EPT_MISCONFIG; BUSY is reason -1), then for an
 *                                            EPT violation kvm_page_fault (tdx_handle_ept_violation, not for
 *                                            the unexpected-PENDING exit that kills the VM). A raw
 *                                            EPT_MISCONFIG from the module is not traced (tdx_vcpu_run returns
 *                                            before trace_kvm_exit).
 *   VMLAUNCH/VMRESUME, VM exit (VMX)         kvm_entry, kvm_exit, kvm_page_fault / handle_mmio_page_fault
 *   SPTE_CMPXCHG that succeeded, SPTE_WRITE  kvm_tdp_mmu_spte_changed (a freeze and its restore are not
 *                                            traced; freeze then final value is one change), then for a leaf
 *                                            the fault installed kvm_mmu_set_spte or mark_mmio_spte
 *   SPLIT_HUGE_PAGE                          kvm_tdp_mmu_spte_changed, kvm_mmu_split_huge_page
 *   TDP_WALK_RESULT of a fault's walk        kvm_mmu_spte_requested (kvm_tdp_mmu_map's goal)
 *   KVM_EXIT_* (kvm.vcpuN → vmm)             kvm_mmio / kvm_pio first where KVM traces them, kvm_userspace_exit
 *   KVM_RUN completing an MMIO read          kvm_mmio read
 *   KVM_SET_MEMORY_ATTRIBUTES                kvm_vm_set_mem_attributes
 *   a KVM_BUG_ON from a SEAMCALL status      console: `kvm_intel: SEAMCALL <leaf> failed: …` at that SEAMCALL's
 *                                            return, and KVM_RUN's -EIO (kvm_userspace_exit error)
 *   the VM killed by a PENDING access        console: `Guest access before accepting …`, KVM_RUN's -EIO
 *
 * Each event belongs to a thread as QEMU would run it: a vCPU's KVM_RUN thread for what its exits cause
 * (including the VMM's answer to them, as QEMU converts memory on the vCPU thread), the VMM's main thread
 * for the TD build and the teardown.
 */
import { EINTR, EIO, KVM_EXIT_IO_OUT, PG_LEVEL_4K } from '../arch/kvmApi.ts';
import { seamcallLeaf } from '../arch/seamcall.ts';
import { PAGE_SHIFT, gfnDirectBits, pagesOfPgLevel, sharedBit, type Gpaw } from '../arch/gpa.ts';
import { ACC_ALL, FROZEN_SPTE, TDX_SHADOW_MMIO_VALUE, VMX_EPT_MISCONFIG_WX_VALUE, VMX_EPT_EXECUTABLE_MASK, VMX_EPT_READABLE_MASK, VMX_EPT_WRITABLE_MASK, getMmioSpteGeneration, isLastSpte, isMmioSpte, isShadowPresentPte } from '../arch/spte.ts';
import {
  EXIT_REASON_EPT_MISCONFIG,
  EXIT_REASON_EPT_VIOLATION,
  EXIT_REASON_EXTERNAL_INTERRUPT,
  EXIT_REASON_TDCALL,
  EXIT_REASON_VMCALL,
  EPT_VIOLATION_ACC_WRITE,
  EPT_VIOLATION_PROT_MASK,
  EXIT_REASON_BASIC_MASK,
  TDX_NO_EXIT_REASON,
} from '../arch/vmx.ts';
import { TDVMCALL_INSTRUCTION_CPUID, TDVMCALL_INSTRUCTION_HLT, TDVMCALL_INSTRUCTION_IO, TDVMCALL_INSTRUCTION_RDMSR, TDVMCALL_INSTRUCTION_WRMSR, TDVMCALL_VE_REQUEST_MMIO } from '../arch/tdcall.ts';
import { TDX_EXT_EXIT_QUAL_TYPE_MASK, TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION, isTdxError, tdxStatusName } from '../arch/tdxStatus.ts';
import { EXIT_REASON_NAMES } from '../arch/vmx.ts';
import type { ParsedLog } from '../log/reader.ts';
import type { EventRecord } from '../log/schema.ts';
import { scenarioFromLog } from '../replay/replay.ts';
import { formatPayload } from './tracepoints/registry.ts';
import { userspaceExitName } from './tracepoints/kvmUserspaceExit.ts';
import type { Frame, Thread, TraceEvent, TraceEventData } from './traceEvent.ts';

/** The task names and ids the export gives the model's threads (QEMU names its vCPU threads `CPU N/KVM`). */
export const VMM_COMM = 'qemu-system-x86';
export const VMM_PID = 4200;
export const vcpuComm = (n: number): string => `CPU ${n}/KVM`;
export const vcpuPid = (n: number): number => VMM_PID + 1 + n;

/** Step N is logged at N microseconds: deterministic, ordered, one step per timestamp. */
export function logicalTs(seq: number): string {
  return (seq / 1e6).toFixed(6);
}

const VCPU_ACTOR = /^(?:kvm\.vcpu|guest\.vcpu|hw\.cpu)(\d+)$/;
const KVM_VCPU = /^kvm\.vcpu(\d+)$/;
/** TDVMCALL sub-functions KVM dispatches as the VMX exit of the same number (tdcall_to_vmx_exit_reason). */
const TDVMCALL_AS_EXIT: ReadonlySet<number> = new Set([TDVMCALL_INSTRUCTION_CPUID, TDVMCALL_INSTRUCTION_HLT, TDVMCALL_INSTRUCTION_IO, TDVMCALL_INSTRUCTION_RDMSR, TDVMCALL_INSTRUCTION_WRMSR]);
/** The memory SEAMCALLs whose failure KVM prints with the S-EPT entry and level/state they return. */
const PRINTS_ENTRY: ReadonlySet<string> = new Set(['TDH.MEM.SEPT.ADD', 'TDH.MEM.PAGE.AUG', 'TDH.MEM.PAGE.ADD', 'TDH.MEM.RANGE.BLOCK', 'TDH.MEM.PAGE.REMOVE', 'TDH.MEM.PAGE.DEMOTE']);

type Payload = Record<string, unknown>;
const big = (v: unknown): bigint => (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' ? BigInt(v) : 0n);
const num = (v: unknown): number => Number(big(v));

interface Failure {
  actor: string;
  seq: number;
  reason: string;
  detail: string;
}

function failuresOf(log: ParsedLog): Failure[] {
  const f = (log.end?.outcome as { failures?: unknown } | undefined)?.failures;
  return Array.isArray(f) ? (f as Failure[]).filter((x) => typeof x?.actor === 'string' && typeof x.seq === 'number') : [];
}

/** Which thread each step ran on (see the file comment). */
function threadResolver(events: readonly EventRecord[]): (seq: number) => Thread {
  const firstRun = new Map<number, number>();
  for (const e of events) {
    const m = KVM_VCPU.exec(e.to);
    if (m && e.name === 'KVM_RUN' && !firstRun.has(Number(m[1]))) firstRun.set(Number(m[1]), e.seq);
  }
  const memo = new Map<number, Thread>();
  const own = (e: EventRecord): Thread | null | 'cause' => {
    if (e.kind === 'close' || e.kind === 'close-return' || e.kind === 'kvm-call' || e.kind === 'kvm-call-return') return 'vm';
    const m = VCPU_ACTOR.exec(e.from) ?? VCPU_ACTOR.exec(e.to);
    if (m) {
      const n = Number(m[1]);
      const first = firstRun.get(n);
      return first === undefined || e.seq < first ? 'vm' : (`vcpu${n}` as Thread);
    }
    return e.cause === null ? 'vm' : 'cause';
  };
  return (seq) => {
    const path: number[] = [];
    let s: number | null = seq;
    let found: Thread = 'vm';
    while (s !== null) {
      const hit = memo.get(s);
      if (hit !== undefined) {
        found = hit;
        break;
      }
      path.push(s);
      const e: EventRecord = events[s - 1]!;
      const o = own(e);
      if (o !== 'cause') {
        found = o ?? 'vm';
        break;
      }
      s = e.cause;
    }
    for (const p of path) memo.set(p, found);
    return found;
  };
}

/** KVM's exit reason for a TD exit (tdx_to_vmx_exit_reason). */
function tdExitReason(name: string, p: Payload): number | null {
  switch (name) {
    case 'EPT_VIOLATION':
      return EXIT_REASON_EPT_VIOLATION;
    case 'EXTERNAL_INTERRUPT':
      return EXIT_REASON_EXTERNAL_INTERRUPT;
    case 'BUSY':
      return TDX_NO_EXIT_REASON;
    case 'EPT_MISCONFIG':
      return null;
    case 'TDCALL': {
      if (big(p['R10']) !== 0n) return EXIT_REASON_VMCALL;
      const leaf = num(p['R11']);
      if (TDVMCALL_AS_EXIT.has(leaf)) return leaf;
      if (leaf === TDVMCALL_VE_REQUEST_MMIO) return EXIT_REASON_EPT_MISCONFIG;
      return EXIT_REASON_TDCALL;
    }
    default:
      return null;
  }
}

/** The `(rwxu)` kvm_mmu_set_spte prints for an EPT SPTE (shadow_present_mask and shadow_user_mask are non-zero). */
function setSpteAccess(spte: bigint): string {
  return `r${spte & VMX_EPT_WRITABLE_MASK ? 'w' : '-'}${spte & VMX_EPT_EXECUTABLE_MASK ? 'x' : '-'}${spte & VMX_EPT_READABLE_MASK ? 'u' : '-'}`;
}

/** An SPTE is a u64: the byte offset of entry `index` in its page-table page is index × 8. */
const SPTE_BYTES = 8n;
const roundGfn = (gfn: bigint, level: number) => gfn & ~(pagesOfPgLevel(level) - 1n);

export function modelTrace(log: ParsedLog, file = '<log>'): TraceEvent[] {
  const scenario = scenarioFromLog(log, file);
  const td = scenario.vm.type === 'tdx';
  const gpaw = scenario.vm.gpaw as Gpaw;
  const shared = td ? sharedBit(gpaw) : 0n;
  const directBits = td ? gfnDirectBits(gpaw) : 0n;
  const mmioValue = td ? TDX_SHADOW_MMIO_VALUE : VMX_EPT_MISCONFIG_WX_VALUE;
  const events = log.events;
  const threadOf = threadResolver(events);
  const vmCpu = scenario.vcpus.length;

  const out: { e: TraceEvent; order: number }[] = [];
  const emit = (seq: number, data: TraceEventData, thread: Thread = threadOf(seq)) => {
    const n = thread.startsWith('vcpu') ? Number(thread.slice(4)) : null;
    const frame: Frame = n === null ? { ts: logicalTs(seq), cpu: vmCpu, comm: VMM_COMM, pid: VMM_PID } : { ts: logicalTs(seq), cpu: n, comm: vcpuComm(n), pid: vcpuPid(n) };
    const { event, payload } = formatPayload(data);
    out.push({ e: { src: null, format: 'trace-cmd', frame, event, payload, data, thread, seq }, order: out.length });
  };

  const frozenOld = new Map<string, bigint>();
  const cmpxchg = new Map<string, Payload>();
  const walks = new Map<string, Payload>();
  const faultins = new Map<string, Payload>();
  const mmioReads = new Map<string, { len: number; gpa: bigint }>();
  const nextGuestRip = (from: number, vcpu: number): bigint => {
    for (let i = from; i < events.length; i++) {
      const e = events[i]!;
      if (e.from === `guest.vcpu${vcpu}` && e.kind === 'insn') return big(e.payload['rip']);
    }
    return 0n;
  };

  const spteChanged = (seq: number, sender: string, p: Payload, oldSpte: bigint, newSpte: bigint) => {
    const level = num(p['pgLevel']);
    const gfn = roundGfn(big(p['gfn']), level);
    emit(seq, { name: 'kvm_tdp_mmu_spte_changed', asId: 0, gfn, level, oldSpte, newSpte });
    if (!KVM_VCPU.test(sender)) return;
    // tdp_mmu_map_handle_target_level: the leaf of a fault is traced once more, as MMIO or as a mapping.
    const sptep = (big(p['tablePfn']) << BigInt(PAGE_SHIFT)) | (big(p['index']) * SPTE_BYTES);
    if (!isShadowPresentPte(newSpte) && newSpte !== FROZEN_SPTE && isMmioSpte(newSpte, mmioValue)) {
      emit(seq, { name: 'mark_mmio_spte', sptep: sptep.toString(16).padStart(16, '0'), gfn, access: Number(newSpte & ACC_ALL), gen: getMmioSpteGeneration(newSpte) });
    } else if (isShadowPresentPte(newSpte) && isLastSpte(newSpte, level)) {
      emit(seq, { name: 'kvm_mmu_set_spte', gfn, spte: newSpte, access: setSpteAccess(newSpte), level, sptep });
    }
  };

  for (const e of events) {
    const p = e.payload;
    const seq = e.seq;
    const vm = KVM_VCPU.exec(e.from)?.[1] ?? KVM_VCPU.exec(e.to)?.[1];
    const vcpu = vm === undefined ? null : Number(vm);
    switch (e.kind) {
      case 'seamcall':
        if (e.name === 'TDH.VP.ENTER' && vcpu !== null) emit(seq, { name: 'kvm_entry', vcpu, rip: 0n, immediateExit: false });
        break;
      case 'td-exit': {
        if (vcpu === null) break;
        const reason = tdExitReason(e.name, p);
        if (reason === null) break;
        const busy = reason === TDX_NO_EXIT_REASON;
        emit(seq, {
          name: 'kvm_exit',
          vcpu,
          isa: 'vmx',
          reason,
          reasonName: EXIT_REASON_NAMES[reason & EXIT_REASON_BASIC_MASK] ?? `0x${(reason & EXIT_REASON_BASIC_MASK).toString(16)}`,
          flags: [],
          rip: 0n,
          info1: busy ? 0n : big(p['RCX']),
          info2: busy ? 0n : big(p['RDX']),
          intrInfo: busy ? 0 : Number(big(p['R9']) & 0xffffffffn),
          errorCode: 0,
          layout: 'info1',
        });
        if (e.name === 'EPT_VIOLATION') {
          const gpa = big(p['R8']);
          const qual = big(p['RCX']);
          const eeqType = Number(big(p['RDX']) & TDX_EXT_EXIT_QUAL_TYPE_MASK);
          const isPrivate = (gpa & shared) === 0n;
          const unexpectedPending = isPrivate && eeqType === TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION && (qual & BigInt(EPT_VIOLATION_PROT_MASK)) === 0n;
          if (!unexpectedPending) emit(seq, { name: 'kvm_page_fault', vcpu, rip: 0n, address: gpa, errorCode: isPrivate ? BigInt(EPT_VIOLATION_ACC_WRITE) : qual, layout: 'new' });
        }
        break;
      }
      case 'vm-entry':
        if (vcpu !== null && KVM_VCPU.test(e.from)) emit(seq, { name: 'kvm_entry', vcpu, rip: nextGuestRip(seq, vcpu), immediateExit: false });
        break;
      case 'vm-exit': {
        if (vcpu === null || !KVM_VCPU.test(e.to)) break;
        const reason = num(p['exitReason']);
        emit(seq, {
          name: 'kvm_exit',
          vcpu,
          isa: 'vmx',
          reason,
          reasonName: EXIT_REASON_NAMES[reason] ?? `0x${reason.toString(16)}`,
          flags: [],
          rip: big(p['rip']),
          info1: big(p['exitQualification']),
          info2: 0n,
          intrInfo: 0,
          errorCode: 0,
          layout: 'info1',
        });
        if (e.name === 'EPT_VIOLATION') emit(seq, { name: 'kvm_page_fault', vcpu, rip: big(p['rip']), address: big(p['gpa']), errorCode: big(p['exitQualification']), layout: 'new' });
        if (e.name === 'EPT_MISCONFIG') emit(seq, { name: 'handle_mmio_page_fault', addr: big(p['gpa']), gfn: big(p['gpa']) >> 12n, access: 0 });
        break;
      }
      case 'mmu':
        projectMmu(e, seq);
        break;
      case 'kvm-exit': {
        if (vcpu === null) break;
        switch (e.name) {
          case 'KVM_EXIT_MMIO': {
            const len = num(p['len']);
            const gpa = big(p['phys_addr']);
            if (num(p['is_write']) === 1) emit(seq, { name: 'kvm_mmio', type: 'write', len, gpa, val: big(p['data']) });
            else {
              emit(seq, { name: 'kvm_mmio', type: 'unsatisfied-read', len, gpa, val: 0n });
              mmioReads.set(e.from, { len, gpa });
            }
            break;
          }
          case 'KVM_EXIT_IO':
            emit(seq, { name: 'kvm_pio', rw: num(p['direction']) === KVM_EXIT_IO_OUT ? 'write' : 'read', port: num(p['port']), size: num(p['size']), count: num(p['count']), val: num(p['data']) });
            break;
        }
        // KVM_RUN interrupted by a signal returns -EINTR with KVM_EXIT_INTR in run->exit_reason.
        const ret = num(p['ret']);
        const reason = num(p['exit_reason']);
        emit(seq, ret < 0 ? { name: 'kvm_userspace_exit', reason: null, reasonName: ret === EINTR ? 'restart' : 'error', errno: ret } : { name: 'kvm_userspace_exit', reason, reasonName: userspaceExitName(reason), errno: null });
        break;
      }
      case 'ioctl':
        if (e.name === 'KVM_RUN' && vcpu !== null && p['mmioData'] !== null && p['mmioData'] !== undefined) {
          const r = mmioReads.get(e.to);
          if (r !== undefined) {
            const mask = (1n << BigInt(r.len * 8)) - 1n;
            emit(seq, { name: 'kvm_mmio', type: 'read', len: r.len, gpa: r.gpa, val: big(p['mmioData']) & mask });
            mmioReads.delete(e.to);
          }
        }
        if (e.name === 'KVM_SET_MEMORY_ATTRIBUTES') {
          const start = big(p['address']) >> 12n;
          emit(seq, { name: 'kvm_vm_set_mem_attributes', start, end: start + (big(p['size']) >> 12n), attributes: big(p['attributes']) });
        }
        break;
    }
  }

  function projectMmu(e: EventRecord, seq: number): void {
    const p = e.payload;
    const key = (x: Payload) => `${String(x['root'])}:${String(x['tablePfn'])}:${String(x['index'])}`;
    switch (e.name) {
      case 'SPTE_CMPXCHG':
        cmpxchg.set(e.from, p);
        break;
      case 'SPTE_CMPXCHG_RESULT': {
        const req = cmpxchg.get(e.to);
        cmpxchg.delete(e.to);
        if (req === undefined || num(p['ret']) !== 0) break;
        const newSpte = big(req['newSpte']);
        if (newSpte === FROZEN_SPTE) frozenOld.set(key(req), big(req['oldSpte']));
        else spteChanged(seq, e.to, req, big(req['oldSpte']), newSpte);
        break;
      }
      case 'SPTE_WRITE': {
        const k = key(p);
        const written = big(p['oldSpte']);
        const old = written === FROZEN_SPTE ? (frozenOld.get(k) ?? FROZEN_SPTE) : written;
        frozenOld.delete(k);
        const newSpte = big(p['newSpte']);
        if (old !== newSpte) spteChanged(seq, e.from, p, old, newSpte);
        break;
      }
      case 'SPLIT_HUGE_PAGE': {
        const level = num(p['pgLevel']);
        spteChanged(seq, 'kvm.mmu', p, big(p['oldSpte']), big(p['newSpte']));
        emit(seq, { name: 'kvm_mmu_split_huge_page', gfn: roundGfn(big(p['gfn']), level), spte: big(p['oldSpte']), level, errno: 0 });
        break;
      }
      case 'FAULTIN_RESULT':
        faultins.set(e.to, p);
        break;
      case 'TDP_WALK':
        walks.set(e.from, p);
        break;
      case 'TDP_WALK_RESULT': {
        const req = walks.get(e.to);
        walks.delete(e.to);
        const fin = faultins.get(e.to);
        if (req === undefined || req['mmuSeq'] === undefined || p['stale'] === true || fin === undefined) break;
        const maxLevel = p['maxLevel'] === undefined ? num(fin['maxLevel']) : Math.min(num(fin['maxLevel']), num(p['maxLevel']));
        const level = Math.max(PG_LEVEL_4K, maxLevel);
        const gfn = big(req['gfn']) & ~directBits;
        const pfn = fin['pfn'] === null || fin['pfn'] === undefined ? 0n : big(fin['pfn']);
        emit(seq, { name: 'kvm_mmu_spte_requested', gfn, pfn: pfn | (gfn & (pagesOfPgLevel(level) - 1n)), level });
        break;
      }
    }
  }

  for (const f of failuresOf(log)) {
    const v = KVM_VCPU.exec(f.actor);
    const pending = /Guest access before accepting (0x[0-9a-f]+) on vCPU (\d+)/.exec(f.detail);
    if (pending) emit(f.seq, { name: 'tdx_pending_access', gpa: BigInt(pending[1]!), vcpu: Number(pending[2]) });
    const bug = /(TDH\.[A-Z.]+) returned/.exec(f.detail);
    if (bug) {
      const leaf = bug[1]!;
      const ret = [...events].reverse().find((x) => x.seq <= f.seq && x.kind === 'seamcall-return' && x.name === leaf && x.to === f.actor && isTdxError(big(x.payload['RAX'])));
      if (ret !== undefined) {
        const status = big(ret.payload['RAX']);
        const operands: Record<string, bigint> = PRINTS_ENTRY.has(leaf) ? { entry: big(ret.payload['RCX']), level_state: big(ret.payload['RDX']) } : {};
        emit(ret.seq, { name: 'tdx_seamcall_error', leafName: leaf, leaf: seamcallLeaf(leaf), printed: leaf.replace(/\./g, '_'), status, statusName: tdxStatusName(status), operands, origin: 'kvm' });
      }
    }
    if (v && (f.reason === 'VM dead' || f.reason === 'KVM bug')) emit(f.seq, { name: 'kvm_userspace_exit', reason: null, reasonName: 'error', errno: EIO }, `vcpu${Number(v[1])}` as Thread);
  }
  return out.sort((a, b) => a.e.seq! - b.e.seq! || a.order - b.order).map((x) => x.e);
}
