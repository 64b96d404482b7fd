// TDCALL leaves (guest → TDX module) and the TDG.VP.VMCALL (GHCI) hypercall ABI the guest uses to
// reach the VMM through the module.

import { hex } from './hex.ts';
import {
  EXIT_REASON_CPUID,
  EXIT_REASON_EPT_VIOLATION,
  EXIT_REASON_HLT,
  EXIT_REASON_IO_INSTRUCTION,
  EXIT_REASON_MSR_READ,
  EXIT_REASON_MSR_WRITE,
} from './vmx.ts';

// TDCALL leaf numbers, leaf in RAX (§4.2) [TM:include/tdx_api_defs.h]
// [L616:arch/x86/include/asm/shared/tdx.h]. Older Linux headers used other names for some of these
// (TDX_GET_VEINFO 3, TDX_ACCEPT_PAGE 6, …); the module's names are used here.
export const TDG_VP_VMCALL = 0;
export const TDG_VP_INFO = 1;
export const TDG_MR_RTMR_EXTEND = 2;
export const TDG_VP_VEINFO_GET = 3;
export const TDG_MR_REPORT = 4;
export const TDG_VP_CPUIDVE_SET = 5;
export const TDG_MEM_PAGE_ACCEPT = 6;
export const TDG_VM_RD = 7;
export const TDG_VM_WR = 8;
export const TDG_VP_RD = 9;
export const TDG_VP_WR = 10;
export const TDG_SYS_RD = 11;
export const TDG_SYS_RDALL = 12;
export const TDG_SERVTD_RD = 18;
export const TDG_SERVTD_WR = 20;
export const TDG_MR_VERIFYREPORT = 22;
export const TDG_MEM_PAGE_ATTR_RD = 23;
export const TDG_MEM_PAGE_ATTR_WR = 24;
// L2 (TD partitioning) leaves; listed so a decoded RAX never shows a bare number.
export const TDG_VP_ENTER = 25;
export const TDG_VP_INVEPT = 26;
export const TDG_VP_INVVPID = 27;

// TDG.VP.INFO outputs (TDX module 1.5.01, tdg_vp_info.c): RCX holds the GPA width the TD was built with,
// R10 is a bitmap of optional TDCALLs the module offers (bit 0: TDG.SYS.RD).
export const TDG_VP_INFO_GPAW_WIDE = 52;
export const TDG_VP_INFO_GPAW_NARROW = 48;
export const TDG_SYS_RD_AVAILABLE = 1n << 0n;

/** Leaf number → architectural name ('TDG.MEM.PAGE.ACCEPT'). */
export const TDCALL_LEAF_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [TDG_VP_VMCALL]: 'TDG.VP.VMCALL',
  [TDG_VP_INFO]: 'TDG.VP.INFO',
  [TDG_MR_RTMR_EXTEND]: 'TDG.MR.RTMR.EXTEND',
  [TDG_VP_VEINFO_GET]: 'TDG.VP.VEINFO.GET',
  [TDG_MR_REPORT]: 'TDG.MR.REPORT',
  [TDG_VP_CPUIDVE_SET]: 'TDG.VP.CPUIDVE.SET',
  [TDG_MEM_PAGE_ACCEPT]: 'TDG.MEM.PAGE.ACCEPT',
  [TDG_VM_RD]: 'TDG.VM.RD',
  [TDG_VM_WR]: 'TDG.VM.WR',
  [TDG_VP_RD]: 'TDG.VP.RD',
  [TDG_VP_WR]: 'TDG.VP.WR',
  [TDG_SYS_RD]: 'TDG.SYS.RD',
  [TDG_SYS_RDALL]: 'TDG.SYS.RDALL',
  [TDG_SERVTD_RD]: 'TDG.SERVTD.RD',
  [TDG_SERVTD_WR]: 'TDG.SERVTD.WR',
  [TDG_MR_VERIFYREPORT]: 'TDG.MR.VERIFYREPORT',
  [TDG_MEM_PAGE_ATTR_RD]: 'TDG.MEM.PAGE.ATTR.RD',
  [TDG_MEM_PAGE_ATTR_WR]: 'TDG.MEM.PAGE.ATTR.WR',
  [TDG_VP_ENTER]: 'TDG.VP.ENTER',
  [TDG_VP_INVEPT]: 'TDG.VP.INVEPT',
  [TDG_VP_INVVPID]: 'TDG.VP.INVVPID',
});

// TDG.VP.VMCALL sub-functions, in R11 (§4.3) [L616:arch/x86/include/asm/shared/tdx.h].
// GHCI-defined services live at 0x1000x.
export const TDVMCALL_GET_TD_VM_CALL_INFO = 0x10000;
export const TDVMCALL_MAP_GPA = 0x10001;
export const TDVMCALL_GET_QUOTE = 0x10002;
export const TDVMCALL_REPORT_FATAL_ERROR = 0x10003;
export const TDVMCALL_SETUP_EVENT_NOTIFY_INTERRUPT = 0x10004;
// Instruction emulation requests reuse the VMX exit reason of the instruction they stand for, by
// design (`hcall_func(exit_reason)` is the identity), which is why KVM can dispatch them through its
// ordinary exit handlers (§4.3, §5c.1).
export const TDVMCALL_INSTRUCTION_CPUID = EXIT_REASON_CPUID;
export const TDVMCALL_INSTRUCTION_HLT = EXIT_REASON_HLT;
export const TDVMCALL_INSTRUCTION_IO = EXIT_REASON_IO_INSTRUCTION;
export const TDVMCALL_INSTRUCTION_RDMSR = EXIT_REASON_MSR_READ;
export const TDVMCALL_INSTRUCTION_WRMSR = EXIT_REASON_MSR_WRITE;
export const TDVMCALL_VE_REQUEST_MMIO = EXIT_REASON_EPT_VIOLATION;

/** Sub-function → the GHCI display name used inside 'TDG.VP.VMCALL<…>' message names (§4.3). */
export const TDVMCALL_SUBFUNCTION_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [TDVMCALL_GET_TD_VM_CALL_INFO]: 'GetTdVmCallInfo',
  [TDVMCALL_MAP_GPA]: 'MapGPA',
  [TDVMCALL_GET_QUOTE]: 'GetQuote',
  [TDVMCALL_REPORT_FATAL_ERROR]: 'ReportFatalError',
  [TDVMCALL_SETUP_EVENT_NOTIFY_INTERRUPT]: 'SetupEventNotifyInterrupt',
  [TDVMCALL_INSTRUCTION_CPUID]: 'Instruction.CPUID',
  [TDVMCALL_INSTRUCTION_HLT]: 'Instruction.HLT',
  [TDVMCALL_INSTRUCTION_IO]: 'Instruction.IO',
  [TDVMCALL_INSTRUCTION_RDMSR]: 'Instruction.RDMSR',
  [TDVMCALL_INSTRUCTION_WRMSR]: 'Instruction.WRMSR',
  [TDVMCALL_VE_REQUEST_MMIO]: '#VE.RequestMMIO',
});

/** 'TDG.VP.VMCALL<#VE.RequestMMIO>'; a sub-function KVM does not know shows as 'TDG.VP.VMCALL<0x…>'. */
export function tdvmcallMessageName(subfn: number): string {
  return `TDG.VP.VMCALL<${TDVMCALL_SUBFUNCTION_NAMES[subfn] ?? hex(subfn)}>`;
}

// TDVMCALL status returned to the guest in R10 (§4.4) [L616:arch/x86/include/asm/shared/tdx.h].
// SUBFUNC_UNSUPPORTED came later; older guests treat it like INVALID_OPERAND.
export const TDVMCALL_STATUS_SUCCESS = 0x0n;
export const TDVMCALL_STATUS_RETRY = 0x1n;
export const TDVMCALL_STATUS_INVALID_OPERAND = 0x8000000000000000n;
export const TDVMCALL_STATUS_ALIGN_ERROR = 0x8000000000000002n;
export const TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED = 0x8000000000000003n;

// TDG.VP.VMCALL<GetTdVmCallInfo> leaf 1, R11 bits (GHCI 1.5): optional sub-functions the host supports.
// QEMU answers with SetupEventNotifyInterrupt when KVM lets userspace support it (user_tdvmcallinfo_1_r11).
export const TDVMCALLINFO_GET_QUOTE = 1n << 0n;
export const TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT = 1n << 1n;

// TDG.VP.VMCALL<ReportFatalError> R12: bit 63 says R13 holds the GPA of an information page (GHCI).
export const TDX_REPORT_FATAL_ERROR_GPA_VALID = 1n << 63n;

/** Guest R10 for a standard GHCI call; KVM treats any non-zero R10 as a KVM hypercall number (§4.3). */
export const TDX_HYPERCALL_STANDARD = 0n;

// Guest RCX on TDG.VP.VMCALL is a bitmap of the GPRs handed to the VMM, bit n = GPR n in the
// architectural encoding (§4.3 gives RAX 0, RCX 1, RSP 4, RBP 5; §4.8's operand ids use the same
// numbering for the rest). RAX, RCX and RSP may never be exposed, and RBP not under NO_RBP_MOD.
const GPR_BIT = {
  RDX: 1n << 2n,
  RBX: 1n << 3n,
  RSI: 1n << 6n,
  RDI: 1n << 7n,
  R8: 1n << 8n,
  R9: 1n << 9n,
  R10: 1n << 10n,
  R11: 1n << 11n,
  R12: 1n << 12n,
  R13: 1n << 13n,
  R14: 1n << 14n,
  R15: 1n << 15n,
} as const;

/** What a Linux guest puts in RCX: RDX, RBX, RSI, RDI, R8–R15 (= 0xffcc) (§4.3). */
export const TDVMCALL_EXPOSE_REGS_MASK: bigint = Object.values(GPR_BIT).reduce((mask, bit) => mask | bit, 0n);
