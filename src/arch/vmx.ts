// VMX architectural numbers the TDX flows carry: exit reasons, exception vectors and the
// EPT-violation exit qualification.

// Exit reasons (§4.5) [L616:arch/x86/include/uapi/asm/vmx.h] [TM:src/common/x86_defs/vmcs_defs.h].
// The TDX module reports the same numbers in RAX[31:0] after TDH.VP.ENTER, so one table serves
// both plain VMX and TD exits.
export const EXIT_REASON_EXCEPTION_NMI = 0;
export const EXIT_REASON_EXTERNAL_INTERRUPT = 1;
export const EXIT_REASON_TRIPLE_FAULT = 2;
export const EXIT_REASON_INIT_SIGNAL = 3;
export const EXIT_REASON_SIPI_SIGNAL = 4;
export const EXIT_REASON_OTHER_SMI = 6;
export const EXIT_REASON_INTERRUPT_WINDOW = 7;
export const EXIT_REASON_NMI_WINDOW = 8;
export const EXIT_REASON_CPUID = 10;
export const EXIT_REASON_HLT = 12;
export const EXIT_REASON_VMCALL = 18;
export const EXIT_REASON_IO_INSTRUCTION = 30;
export const EXIT_REASON_MSR_READ = 31;
export const EXIT_REASON_MSR_WRITE = 32;
export const EXIT_REASON_MONITOR_TRAP_FLAG = 37;
export const EXIT_REASON_MCE_DURING_VMENTRY = 41;
export const EXIT_REASON_EPT_VIOLATION = 48;
export const EXIT_REASON_EPT_MISCONFIG = 49;
export const EXIT_REASON_WBINVD = 54;
export const EXIT_REASON_BUS_LOCK = 74;
export const EXIT_REASON_NOTIFY = 75;
export const EXIT_REASON_TDCALL = 77;

/** Bit 31 of the exit reason flags a failed VM entry rather than an exit (§4.5). */
export const VMX_EXIT_REASONS_FAILED_VMENTRY = 0x8000_0000;
/** Bits 15:0 are the basic exit reason (SDM Vol. 3C "Basic VM-Exit Information"; KVM's union vmx_exit_reason). */
export const EXIT_REASON_BASIC_MASK = 0xffff;
/**
 * KVM's exit reason when TDH.VP.ENTER returned a status that carries none (BUSY from the entry, §5c.1 step 4):
 * tdx_to_vmx_exit_reason returns -1u [KX], which kvm_exit prints as `0xffff FAILED_VMENTRY 0x7fff0000`.
 */
export const TDX_NO_EXIT_REASON = 0xffff_ffff;

/** Exit reason → name as Linux's VMX_EXIT_REASONS spells it, so traces match kvm_exit output. */
export const EXIT_REASON_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [EXIT_REASON_EXCEPTION_NMI]: 'EXCEPTION_NMI',
  [EXIT_REASON_EXTERNAL_INTERRUPT]: 'EXTERNAL_INTERRUPT',
  [EXIT_REASON_TRIPLE_FAULT]: 'TRIPLE_FAULT',
  [EXIT_REASON_INIT_SIGNAL]: 'INIT_SIGNAL',
  [EXIT_REASON_SIPI_SIGNAL]: 'SIPI_SIGNAL',
  [EXIT_REASON_OTHER_SMI]: 'OTHER_SMI',
  [EXIT_REASON_INTERRUPT_WINDOW]: 'INTERRUPT_WINDOW',
  [EXIT_REASON_NMI_WINDOW]: 'NMI_WINDOW',
  [EXIT_REASON_CPUID]: 'CPUID',
  [EXIT_REASON_HLT]: 'HLT',
  [EXIT_REASON_VMCALL]: 'VMCALL',
  [EXIT_REASON_IO_INSTRUCTION]: 'IO_INSTRUCTION',
  [EXIT_REASON_MSR_READ]: 'MSR_READ',
  [EXIT_REASON_MSR_WRITE]: 'MSR_WRITE',
  [EXIT_REASON_MONITOR_TRAP_FLAG]: 'MONITOR_TRAP_FLAG',
  [EXIT_REASON_MCE_DURING_VMENTRY]: 'MCE_DURING_VMENTRY',
  [EXIT_REASON_EPT_VIOLATION]: 'EPT_VIOLATION',
  [EXIT_REASON_EPT_MISCONFIG]: 'EPT_MISCONFIG',
  [EXIT_REASON_WBINVD]: 'WBINVD',
  [EXIT_REASON_BUS_LOCK]: 'BUS_LOCK',
  [EXIT_REASON_NOTIFY]: 'NOTIFY',
  [EXIT_REASON_TDCALL]: 'TDCALL',
});

// Exception vectors (§4.6) [L616:arch/x86/include/asm/trapnr.h]. #DF matters because the module
// injects it instead of a second #VE while VE_INFO is still valid (§5a.6).
export const DF_VECTOR = 8;
export const GP_VECTOR = 13;
export const PF_VECTOR = 14;
export const VE_VECTOR = 20;

// VM-exit interruption information (SDM Vol. 3C 25.9.2) [L616:arch/x86/include/asm/vmx.h]: vector in
// bits 7:0, type in 10:8 (0 = external interrupt), error code valid 11, valid 31. A TD exit hands it to
// KVM in R9 (§4.1); for an EXTERNAL_INTERRUPT exit KVM insists on a valid external interrupt and
// treats anything else, 0 included, as a bug (vmx_handle_external_interrupt_irqoff's KVM_BUG).
export const INTR_INFO_VECTOR_MASK = 0xff;
export const INTR_INFO_INTR_TYPE_MASK = 0x700;
export const INTR_TYPE_EXT_INTR = 0 << 8;
export const INTR_INFO_VALID_MASK = 0x8000_0000;

/** The interruption information of an external interrupt on `vector`. */
export function externalInterruptInfo(vector: number): number {
  return (INTR_INFO_VALID_MASK | INTR_TYPE_EXT_INTR | (vector & INTR_INFO_VECTOR_MASK)) >>> 0;
}

/** is_external_intr: valid, type external interrupt. */
export function isExternalIntr(info: number): boolean {
  return (info & (INTR_INFO_VALID_MASK | INTR_INFO_INTR_TYPE_MASK)) >>> 0 === (INTR_INFO_VALID_MASK | INTR_TYPE_EXT_INTR) >>> 0;
}

// Host IDT vectors of the IPIs the flows send (x86-64) [L616:arch/x86/include/asm/irq_vectors.h].
// kvm_make_all_cpus_request kicks with smp_call_function_many: one target CPU gets the single-target
// vector, several share CALL_FUNCTION_VECTOR; a signal's kick_process is a reschedule IPI.
export const RESCHEDULE_VECTOR = 0xfd;
export const CALL_FUNCTION_VECTOR = 0xfc;
export const CALL_FUNCTION_SINGLE_VECTOR = 0xfb;
export const POSTED_INTR_VECTOR = 0xf2;

// INVEPT types (SDM Vol. 3C 30.3) [L616:arch/x86/include/asm/vmx.h VMX_EPT_EXTENT_*]: single-context
// flushes the translations derived from one EPTP, all-context (KVM's ept_sync_global) every EPT-derived one.
export const VMX_EPT_EXTENT_CONTEXT = 1;
export const VMX_EPT_EXTENT_GLOBAL = 2;

// VMCS field encodings and the control bit KVM writes into a TD vCPU's VMCS with TDH.VP.WR after
// TDH.VP.INIT (§5b.3 step 3) [L616:arch/x86/include/asm/vmx.h].
export const VMCS_POSTED_INTR_NV = 0x0000_0002;
export const VMCS_POSTED_INTR_DESC_ADDR = 0x0000_2016;
export const VMCS_PIN_BASED_VM_EXEC_CONTROL = 0x0000_4000;
export const PIN_BASED_POSTED_INTR = 1 << 7;

// EPT-violation exit qualification (§4.10) [L616:arch/x86/include/asm/vmx.h]. KVM turns the
// access bits into a page-fault error code, and the PROT bits tell it whether the entry was present.
export const EPT_VIOLATION_ACC_READ = 1 << 0;
export const EPT_VIOLATION_ACC_WRITE = 1 << 1;
export const EPT_VIOLATION_ACC_INSTR = 1 << 2;
// Bits 3–5 are the AND of R/W/X along the walk; for ACCEPT-caused exits the module fills them with
// the R/W/X of the S-EPT entry it found (§4.10).
export const EPT_VIOLATION_PROT_READ = 1 << 3;
export const EPT_VIOLATION_PROT_WRITE = 1 << 4;
export const EPT_VIOLATION_PROT_EXEC = 1 << 5;
export const EPT_VIOLATION_PROT_MASK = EPT_VIOLATION_PROT_READ | EPT_VIOLATION_PROT_WRITE | EPT_VIOLATION_PROT_EXEC;
export const EPT_VIOLATION_EXEC_FOR_USER = 1 << 6;
export const EPT_VIOLATION_GVA_IS_VALID = 1 << 7;
export const EPT_VIOLATION_GVA_TRANSLATED = 1 << 8;
export const INTR_INFO_UNBLOCK_NMI = 1 << 12;

/** Bits 12:7, which the TDX module zeroes before handing an EPT-violation qualification to the VMM (§4.10). */
export const TDX_EXIT_QUAL_CLEARED_BITS = 0b11_1111 << 7;

// I/O-instruction exit qualification (Intel SDM Vol. 3C, table "Exit Qualification for I/O
// Instructions"); a TD gets it in VE_INFO when the module converts the exit to a #VE (§5c.3), and
// Linux's handle_io decodes it with the same layout.
export const IO_EXIT_QUAL_SIZE_MASK = 0b111; // access size − 1: 0, 1 or 3
export const IO_EXIT_QUAL_IN = 1 << 3; // direction: 1 = IN, 0 = OUT
export const IO_EXIT_QUAL_STRING = 1 << 4;
export const IO_EXIT_QUAL_REP = 1 << 5;
export const IO_EXIT_QUAL_IMMEDIATE = 1 << 6; // port from the instruction, not DX
export const IO_EXIT_QUAL_PORT_SHIFT = 16;

/** The qualification for a non-string `out`/`in` with the port in DX. */
export function ioExitQualification(port: number, size: 1 | 2 | 4, isIn: boolean): bigint {
  return BigInt((size - 1) | (isIn ? IO_EXIT_QUAL_IN : 0) | (port << IO_EXIT_QUAL_PORT_SHIFT));
}

export function decodeIoExitQualification(q: bigint): { port: number; size: number; isIn: boolean; string: boolean } {
  const n = Number(q & 0xffffffffn);
  return { port: (n >>> IO_EXIT_QUAL_PORT_SHIFT) & 0xffff, size: (n & IO_EXIT_QUAL_SIZE_MASK) + 1, isIn: (n & IO_EXIT_QUAL_IN) !== 0, string: (n & IO_EXIT_QUAL_STRING) !== 0 };
}
