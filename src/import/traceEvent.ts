/**
 * One event of a kernel trace, whether read from a real trace (trace-cmd report, ftrace, perf script,
 * dmesg) or produced from a tdxsim log (src/import/modelTrace.ts). Both sides use the same shape, so the
 * aligner compares like with like and the exporter prints what the importer reads back.
 */

export type TraceFormat = 'trace-cmd' | 'ftrace' | 'perf' | 'dmesg';
export const TRACE_FORMATS: readonly TraceFormat[] = ['trace-cmd', 'ftrace', 'perf', 'dmesg'];

/** Where a real event was read: file and 1-based line; `endLine` > `line` when the line was wrapped. */
export interface SourceRef {
  file: string;
  line: number;
  endLine: number;
}

/** The line frame: who recorded the event, where and when. dmesg lines have no task or CPU. */
export interface Frame {
  /** Seconds as printed (`812.100042`), or null (a dmesg line without timestamp). */
  ts: string | null;
  cpu: number | null;
  comm: string | null;
  pid: number | null;
}

/** The payload of each tracepoint the importer understands, decoded; numbers are the printed values. */
export type TraceEventData =
  | { name: 'kvm_entry'; vcpu: number | null; rip: bigint | null; immediateExit: boolean }
  | {
      name: 'kvm_exit';
      vcpu: number | null;
      isa: 'vmx' | 'svm';
      /** Full 32-bit VMX exit reason (basic | flags); null for an SVM or unknown name. */
      reason: number | null;
      /** The basic reason as printed: `EPT_VIOLATION`, `0x4d`, `npf`. */
      reasonName: string;
      /** Flag names printed after the basic reason (`FAILED_VMENTRY`, leftover bits in hex). */
      flags: string[];
      rip: bigint;
      info1: bigint;
      info2: bigint;
      intrInfo: number | null;
      errorCode: number | null;
      /** `info`: the oldest layout (`info a b`); `info1`: info1/info2 with or without intr_info/error_code. */
      layout: 'info' | 'info1';
    }
  | { name: 'kvm_page_fault'; vcpu: number | null; rip: bigint | null; address: bigint; errorCode: bigint; layout: 'old' | 'new' }
  | {
      name: 'kvm_userspace_exit';
      /** run->exit_reason; null when KVM_RUN failed (`restart`, `error`). */
      reason: number | null;
      reasonName: string;
      /** KVM_RUN's negative return value, or null when it returned 0. */
      errno: number | null;
    }
  | { name: 'kvm_mmio'; type: 'unsatisfied-read' | 'read' | 'write'; len: number; gpa: bigint; val: bigint }
  | { name: 'kvm_fast_mmio'; gpa: bigint }
  | { name: 'kvm_pio'; rw: 'read' | 'write'; port: number; size: number; count: number; val: number | null }
  | { name: 'kvm_hypercall'; nr: bigint; args: [bigint, bigint, bigint, bigint] }
  | { name: 'kvm_vm_set_mem_attributes'; start: bigint; end: bigint; attributes: bigint }
  | { name: 'kvm_tdp_mmu_spte_changed'; asId: number; gfn: bigint; level: number; oldSpte: bigint; newSpte: bigint }
  | { name: 'kvm_mmu_set_spte'; gfn: bigint; spte: bigint; access: string; level: number; sptep: bigint }
  | { name: 'kvm_mmu_spte_requested'; gfn: bigint; pfn: bigint; level: number }
  | { name: 'mark_mmio_spte'; sptep: string; gfn: bigint; access: number; gen: number }
  | { name: 'handle_mmio_page_fault'; addr: bigint; gfn: bigint; access: number }
  | { name: 'fast_page_fault'; vcpu: number; gva: bigint; errorCode: string; sptep: string; oldSpte: bigint; newSpte: bigint; spurious: boolean; fixed: boolean }
  | { name: 'check_mmio_spte'; spte: bigint; kvmGen: number; spteGen: number; valid: boolean }
  | { name: 'kvm_mmu_split_huge_page'; gfn: bigint; spte: bigint; level: number; errno: number }
  | {
      name: 'tdx_seamcall_error';
      /** Architectural name (`TDH.MEM.PAGE.DEMOTE`), or null when the printed name or number is no known leaf. */
      leafName: string | null;
      leaf: number | null;
      /** The name or number as printed (`TDH_MEM_PAGE_DEMOTE`, `0x000000000000000f`). */
      printed: string;
      status: bigint;
      /** `TDX_TLB_TRACKING_NOT_DONE`, `TDX_OPERAND_BUSY|SEPT_TREE` (src/arch/tdxStatus.ts). */
      statusName: string;
      /** Named outputs KVM printed with it (`entry`, `level_state`, `rcx`, …). */
      operands: Record<string, bigint>;
      /** kvm: KVM's own print (kvm_intel); virt/tdx: the core kernel's seamcall_err. */
      origin: 'kvm' | 'virt/tdx';
    }
  | { name: 'tdx_pending_access'; gpa: bigint; vcpu: number }
  | { name: 'printk'; text: string }
  | { name: 'unknown'; event: string; payload: string };

export type TraceEventName = TraceEventData['name'];
export type DataOf<N extends TraceEventName> = Extract<TraceEventData, { name: N }>;

/** Which thread an event belongs to: a vCPU's KVM_RUN thread, the VMM's other threads, or a bare dmesg line. */
export type Thread = `vcpu${number}` | 'vm' | 'dmesg';

export interface TraceEvent {
  /** Where a real event was read; null for one the model produced. */
  src: SourceRef | null;
  format: TraceFormat;
  frame: Frame;
  /** The event name as written in the line (`kvm_exit`, `console`, `sched_switch`). */
  event: string;
  /** The text after `event:`. */
  payload: string;
  data: TraceEventData;
  thread: Thread;
  /** The model step (log seq) that produced it; absent for real events. */
  seq?: number;
}

/** A problem with one input line: a warning by default, an error (exit 2) under --strict. */
export interface Diagnostic {
  file: string;
  line: number;
  message: string;
}

export function isVcpuThread(t: Thread): t is `vcpu${number}` {
  return t.startsWith('vcpu');
}

export function vcpuOfThread(t: Thread): number | null {
  return isVcpuThread(t) ? Number(t.slice(4)) : null;
}
