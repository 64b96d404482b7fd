// KVM-side numbers: the userspace ABI the flows touch, the page-fault handler's internal results,
// page-fault error-code bits, page-table levels and KVM's own TD/vCPU states.

// VM type and exit reasons seen by the userspace VMM (§4.12) [L616:include/uapi/linux/kvm.h].
export const KVM_X86_TDX_VM = 5;
// KVM_EXIT_IO is not in §4.12's list (§4.3 only names it as the fallback for Instruction.IO); 2 is
// Linux's value in include/uapi/linux/kvm.h.
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
// KVM_RUN interrupted by a signal (-EINTR): how a VMM stops a vCPU thread. Linux uapi value, not in §4.12.
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
// Not in §4.12 either (§4.7 mentions the exit without a number); 17 is Linux's uapi value.
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_MEMORY_FAULT = 39;
export const KVM_EXIT_TDX = 40;

/** Exit reason → uapi name, for logs and the inspector. */
export const KVM_EXIT_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [KVM_EXIT_IO]: 'KVM_EXIT_IO',
  [KVM_EXIT_HYPERCALL]: 'KVM_EXIT_HYPERCALL',
  [KVM_EXIT_INTR]: 'KVM_EXIT_INTR',
  [KVM_EXIT_MMIO]: 'KVM_EXIT_MMIO',
  [KVM_EXIT_SHUTDOWN]: 'KVM_EXIT_SHUTDOWN',
  [KVM_EXIT_FAIL_ENTRY]: 'KVM_EXIT_FAIL_ENTRY',
  [KVM_EXIT_INTERNAL_ERROR]: 'KVM_EXIT_INTERNAL_ERROR',
  [KVM_EXIT_SYSTEM_EVENT]: 'KVM_EXIT_SYSTEM_EVENT',
  [KVM_EXIT_MEMORY_FAULT]: 'KVM_EXIT_MEMORY_FAULT',
  [KVM_EXIT_TDX]: 'KVM_EXIT_TDX',
});

// Exit payload details (§4.12). ReportFatalError arrives as a SYSTEM_EVENT of type TDX_FATAL; a
// MEMORY_FAULT says whether the faulting access was private so userspace can convert (§6.iv).
export const KVM_SYSTEM_EVENT_TDX_FATAL = 7;
// run->io for KVM_EXIT_IO (Linux uapi): direction, and the data's offset in the kvm_run page mapping
// (KVM_PIO_PAGE_OFFSET 1 on x86, so the bytes sit one page after struct kvm_run).
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;
export const KVM_PIO_PAGE_OFFSET = 1;
export const KVM_MEMORY_EXIT_FLAG_PRIVATE = 1 << 3;

// MapGPA reaches userspace as KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE) (§4.12, §6.iv)
// [L616:include/uapi/linux/kvm_para.h]. args[2] holds the direction and page-size attributes.
export const KVM_HC_MAP_GPA_RANGE = 12;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_4K = 0;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_2M = 1 << 0;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_1G = 1 << 1;
export const KVM_MAP_GPA_RANGE_ENCRYPTED = 1 << 4;
export const KVM_MAP_GPA_RANGE_DECRYPTED = 0;
export const KVM_EXIT_HYPERCALL_LONG_MODE = 1 << 0;

/** The per-GFN attribute that is the source of truth for private vs shared (§1.4, §4.12). */
export const KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3;

// KVM_MEMORY_ENCRYPT_OP sub-commands for TDX, in creation order (§4.12, §5b.3)
// [L616:Documentation/virt/kvm/x86/intel-tdx.rst].
export const KVM_TDX_CAPABILITIES = 0;
export const KVM_TDX_INIT_VM = 1;
export const KVM_TDX_INIT_VCPU = 2;
export const KVM_TDX_INIT_MEM_REGION = 3;
export const KVM_TDX_FINALIZE_VM = 4;
export const KVM_TDX_GET_CPUID = 5;
/** INIT_MEM_REGION flag: also TDH.MR.EXTEND each page into MRTD (§4.12, §5b.3). */
export const KVM_TDX_MEASURE_MEMORY_REGION = 1 << 0;

// Page-fault handler results; they steer the KVM vCPU's loop, e.g. RETRY on a private GPA makes
// TDX retry locally instead of re-entering (§4.13, §6.ii) [L616:arch/x86/kvm/mmu/mmu_internal.h].
export const RET_PF_CONTINUE = 0;
export const RET_PF_RETRY = 1;
export const RET_PF_EMULATE = 2;
export const RET_PF_WRITE_PROTECTED = 3;
export const RET_PF_INVALID = 4;
export const RET_PF_FIXED = 5;
export const RET_PF_SPURIOUS = 6;

export const RET_PF_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [RET_PF_CONTINUE]: 'RET_PF_CONTINUE',
  [RET_PF_RETRY]: 'RET_PF_RETRY',
  [RET_PF_EMULATE]: 'RET_PF_EMULATE',
  [RET_PF_WRITE_PROTECTED]: 'RET_PF_WRITE_PROTECTED',
  [RET_PF_INVALID]: 'RET_PF_INVALID',
  [RET_PF_FIXED]: 'RET_PF_FIXED',
  [RET_PF_SPURIOUS]: 'RET_PF_SPURIOUS',
});

// Page-fault error code bits KVM derives from an EPT-violation qualification (§4.10)
// [L616:arch/x86/include/asm/kvm_host.h]. 64-bit because PRIVATE_ACCESS sits at bit 49.
export const PFERR_PRESENT_MASK = 1n << 0n;
export const PFERR_WRITE_MASK = 1n << 1n;
export const PFERR_USER_MASK = 1n << 2n;
export const PFERR_RSVD_MASK = 1n << 3n;
export const PFERR_FETCH_MASK = 1n << 4n;
export const PFERR_GUEST_FINAL_MASK = 1n << 32n;
export const PFERR_GUEST_PAGE_MASK = 1n << 33n;
export const PFERR_PRIVATE_ACCESS = 1n << 49n;

// KVM `enum pg_level` (§0.2) [L616:arch/x86/include/asm/pgtable_types.h]. TDX levels are one lower;
// convert only through src/arch/gpa.ts.
export const PG_LEVEL_NONE = 0;
export const PG_LEVEL_4K = 1;
export const PG_LEVEL_2M = 2;
export const PG_LEVEL_1G = 3;

// KVM's view of a TD and of a TD vCPU (§1.4, §5b.2) [L616:arch/x86/kvm/vmx/tdx.h]. KVM_RUN needs the
// vCPU INITIALIZED and the TD RUNNABLE.
export const TD_STATE_UNINITIALIZED = 0;
export const TD_STATE_INITIALIZED = 1;
export const TD_STATE_RUNNABLE = 2;
export const VCPU_TD_STATE_UNINITIALIZED = 0;
export const VCPU_TD_STATE_INITIALIZED = 1;

// x86 instruction-emulator results (arch/x86/kvm/kvm_emulate.h). §6.i names X86EMUL_RETRY_INSTR (what
// a TD's check_emulate_instruction returns) but gives no numbers; these are Linux's values.
export const X86EMUL_CONTINUE = 0;
export const X86EMUL_UNHANDLEABLE = 1;
export const X86EMUL_PROPAGATE_FAULT = 2;
export const X86EMUL_RETRY_INSTR = 3;

// Kernel errno values as KVM returns them (negative): an ioctl's failure to userspace, a lost SPTE cmpxchg.
export const EINTR = -4;
export const EIO = -5;
export const EINVAL = -22;
export const EBUSY = -16;
export const ENOENT = -2;
export const EAGAIN = -11;
export const EFAULT = -14;
export const EOPNOTSUPP = -95;

// fallocate(2) mode bits (include/uapi/linux/falloc.h): guest_memfd takes KEEP_SIZE, optionally with PUNCH_HOLE.
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
/**
 * run->hypercall.ret values the VMM may give a KVM_HC_MAP_GPA_RANGE exit besides 0 (positive errno, as
 * tdx_complete_vmcall_map_gpa compares them in [KX]): EAGAIN → TDVMCALL RETRY, EINVAL → INVALID_OPERAND.
 */
export const HYPERCALL_RET_EAGAIN = 11;
export const HYPERCALL_RET_EINVAL = 22;

// struct kvm_userspace_memory_region2 flags (include/uapi/linux/kvm.h) and KVM's internal flag for a slot
// being deleted or moved (include/linux/kvm_host.h: bit 16, above the userspace-visible ones).
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;
export const KVM_MEM_GUEST_MEMFD = 1 << 2;
export const KVM_MEMSLOT_INVALID = 1 << 16;
/** x86's KVM_USER_MEM_SLOTS: KVM_MEM_SLOTS_NUM (SHRT_MAX) minus the 3 private slots; a larger id is EINVAL. */
export const KVM_USER_MEM_SLOTS = 32764;
/** kvm_set_memory_region's overlap errno (negative, as the ioctl returns it; EINVAL is above). */
export const EEXIST = -17;
/** arch/x86/include/asm/kvm_host.h: the x86 default of the halt_poll_ns module parameter (virt/kvm/kvm_main.c), in ns. */
export const KVM_HALT_POLL_NS_DEFAULT = 200000;
/** virt/kvm/kvm_main.c: halt_poll_ns_grow_start, the window a vCPU's first growth sets (10 µs). */
export const HALT_POLL_NS_GROW_START = 10000;
/** virt/kvm/kvm_main.c: halt_poll_ns_grow, the factor each later growth multiplies by. */
export const HALT_POLL_NS_GROW = 2;
