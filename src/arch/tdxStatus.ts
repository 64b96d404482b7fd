// TDX module status codes and the other module-defined numbers KVM and the guest exchange with it:
// operand ids, extended exit qualification, TD attributes and controls, metadata field ids,
// zero-step thresholds and the module's own state variables.

import { hex, hex16 } from './hex.ts';
import { EXIT_REASON_NAMES } from './vmx.ts';

// Status layout (§4.7, `api_error_code_t`): bits 31:0 operand id (or details), 39:32 details,
// 47:40 class, 60 host-recoverability hint, 61 fatal, 62 non-recoverable, 63 error. Linux compares
// only the top half, so the same code matches whatever operand the module blamed.
export const TDX_SEAMCALL_STATUS_MASK = 0xffffffff00000000n;
const TDX_OPERAND_MASK = 0xffffffffn;

// Status codes (§4.7) [TM:include/auto_gen/tdx_error_codes_defs.h] [L616:arch/x86/kvm/vmx/tdx_errno.h].
export const TDX_SUCCESS = 0x0000000000000000n;
export const TDX_NON_RECOVERABLE_VCPU = 0x4000000100000000n;
// The 1.5 module sets the fatal bit (61) when a TD becomes non-recoverable, but Linux's list has the
// value without it (and WRONG_APIC_MODE without the error bit). KVM takes its exit reason only from
// the statuses on its own list, so a TD exit carrying the module's value would look unexpected to
// it. Which one a production module sends is UNCONFIRMED (§4.7 note, §9, §10).
export const TDX_NON_RECOVERABLE_TD = 0x6000000200000000n;
export const TDX_NON_RECOVERABLE_TD_LINUX = 0x4000000200000000n;
export const TDX_INTERRUPTED_RESUMABLE = 0x8000000300000000n;
export const TDX_INTERRUPTED_RESTARTABLE = 0x8000000400000000n;
export const TDX_NON_RECOVERABLE_TD_NON_ACCESSIBLE = 0x6000000500000000n;
export const TDX_NON_RECOVERABLE_TD_WRONG_APIC_MODE = 0xe000000700000000n;
export const TDX_NON_RECOVERABLE_TD_WRONG_APIC_MODE_LINUX = 0x6000000700000000n;
export const TDX_OPERAND_INVALID = 0xc000010000000000n;
// A physical-address operand outside every TDMR (no PAMT covers it).
export const TDX_OPERAND_ADDR_RANGE_ERROR = 0xc000010100000000n;
// Every module lock is a try-lock, so contention surfaces as this status plus the operand id of the
// lock that could not be taken (§7.2).
export const TDX_OPERAND_BUSY = 0x8000020000000000n;
export const TDX_PREVIOUS_TLB_EPOCH_BUSY = 0x8000020100000000n;
export const TDX_SYS_BUSY = 0x8000020200000000n;
export const TDX_RND_NO_ENTROPY = 0x8000020300000000n;
export const TDX_OPERAND_BUSY_HOST_PRIORITY = 0x8000020400000000n;
export const TDX_HOST_PRIORITY_BUSY_TIMEOUT = 0x9000020500000000n;
export const TDX_PAGE_METADATA_INCORRECT = 0xc000030000000000n;
export const TDX_VCPU_ASSOCIATED = 0x8000070100000000n;
export const TDX_VCPU_NOT_ASSOCIATED = 0x8000070200000000n;
export const TDX_NO_VALID_VE_INFO = 0xc000070400000000n;
export const TDX_KEY_GENERATION_FAILED = 0x8000080000000000n;
// Teardown refusals (§5b.4): VP.FLUSH once the keys are gone, KEY.FREEID before CACHE.WB has run on
// every package, RECLAIM of the TDR while the TD still owns pages
// [TM:src/vmm_dispatcher/api_calls/tdh_vp_flush.c, tdh_mng_key_freeid.c, tdh_phymem_page_reclaim.c].
export const TDX_TD_KEYS_NOT_CONFIGURED = 0x8000081000000000n;
export const TDX_KEY_STATE_INCORRECT = 0xc000081100000000n;
export const TDX_KEY_CONFIGURED = 0x0000081500000000n;
export const TDX_WBCACHE_NOT_COMPLETE = 0x8000081700000000n;
export const TDX_NO_HKID_READY_TO_WBCACHE = 0x0000082100000000n;
export const TDX_WBCACHE_RESUME_ERROR = 0xc000082300000000n;
export const TDX_TD_ASSOCIATED_PAGES_EXIST = 0xc000040000000000n;
export const TDX_FLUSHVP_NOT_DONE = 0x8000082400000000n;
// A TDR operand's TD state, checked right after the TDR itself and before op_state
// (check_td_in_correct_build_state): a fatal TD (the code carries the fatal bit itself), then keys not
// configured, then fewer TDCS pages than the TD needs [TM:src/common/helpers/helpers.c].
export const TDX_TD_FATAL = 0xe000060400000000n;
export const TDX_TDCS_NOT_ALLOCATED = 0xc000060600000000n;
export const TDX_LIFECYCLE_STATE_INCORRECT = 0xc000060700000000n;
export const TDX_OP_STATE_INCORRECT = 0xc000060800000000n;
export const TDX_EPT_WALK_FAILED = 0xc0000b0000000000n;
export const TDX_EPT_ENTRY_FREE = 0xc0000b0100000000n;
export const TDX_EPT_ENTRY_NOT_FREE = 0xc0000b0200000000n;
export const TDX_EPT_ENTRY_NOT_PRESENT = 0xc0000b0300000000n;
export const TDX_EPT_ENTRY_NOT_LEAF = 0xc0000b0400000000n;
export const TDX_EPT_ENTRY_LEAF = 0xc0000b0500000000n;
export const TDX_GPA_RANGE_NOT_BLOCKED = 0xc0000b0600000000n;
// No error bit: BLOCK on an already-blocked entry is reported, not refused (§5a.4 step 6).
export const TDX_GPA_RANGE_ALREADY_BLOCKED = 0x00000b0700000000n;
export const TDX_TLB_TRACKING_NOT_DONE = 0xc0000b0800000000n;
export const TDX_EPT_INVALID_PROMOTE_CONDITIONS = 0xc0000b0900000000n;
// The two ACCEPT answers carry the S-EPT level of the mapping found in the low bits, not an
// operand id (§4.8).
export const TDX_PAGE_ALREADY_ACCEPTED = 0x00000b0a00000000n;
export const TDX_PAGE_SIZE_MISMATCH = 0xc0000b0b00000000n;
export const TDX_GPA_RANGE_BLOCKED = 0xc0000b0c00000000n;
export const TDX_EPT_ENTRY_STATE_INCORRECT = 0xc0000b0d00000000n;
export const TDX_EPT_PAGE_NOT_FREE = 0xc0000b0e00000000n;
export const TDX_METADATA_FIELD_NOT_READABLE = 0xc0000c0200000000n;

// Linux's software-defined codes (§4.7) [TV:arch/x86/include/asm/tdx.h@095b71a0]. Class 0xFF is
// never produced by the module, so SEAMCALL faults (VMfailInvalid, #GP, #UD) cannot collide with a
// real status.
export const TDX_ERROR = 1n << 63n;
export const TDX_NON_RECOVERABLE = 1n << 62n;
export const TDX_SW_ERROR = TDX_ERROR | (0xffn << 40n);
export const TDX_SEAMCALL_VMFAILINVALID = TDX_SW_ERROR | 0xffff0000n;
export const TDX_SEAMCALL_GP = TDX_SW_ERROR | 13n;
export const TDX_SEAMCALL_UD = TDX_SW_ERROR | 6n;

const STATUS_CODES = {
  TDX_SUCCESS,
  TDX_NON_RECOVERABLE_VCPU,
  TDX_NON_RECOVERABLE_TD,
  TDX_NON_RECOVERABLE_TD_LINUX,
  TDX_INTERRUPTED_RESUMABLE,
  TDX_INTERRUPTED_RESTARTABLE,
  TDX_NON_RECOVERABLE_TD_NON_ACCESSIBLE,
  TDX_NON_RECOVERABLE_TD_WRONG_APIC_MODE,
  TDX_NON_RECOVERABLE_TD_WRONG_APIC_MODE_LINUX,
  TDX_OPERAND_INVALID,
  TDX_OPERAND_ADDR_RANGE_ERROR,
  TDX_OPERAND_BUSY,
  TDX_PREVIOUS_TLB_EPOCH_BUSY,
  TDX_SYS_BUSY,
  TDX_RND_NO_ENTROPY,
  TDX_OPERAND_BUSY_HOST_PRIORITY,
  TDX_HOST_PRIORITY_BUSY_TIMEOUT,
  TDX_PAGE_METADATA_INCORRECT,
  TDX_VCPU_ASSOCIATED,
  TDX_VCPU_NOT_ASSOCIATED,
  TDX_NO_VALID_VE_INFO,
  TDX_KEY_GENERATION_FAILED,
  TDX_TD_KEYS_NOT_CONFIGURED,
  TDX_KEY_STATE_INCORRECT,
  TDX_KEY_CONFIGURED,
  TDX_WBCACHE_NOT_COMPLETE,
  TDX_NO_HKID_READY_TO_WBCACHE,
  TDX_WBCACHE_RESUME_ERROR,
  TDX_TD_ASSOCIATED_PAGES_EXIST,
  TDX_FLUSHVP_NOT_DONE,
  TDX_TD_FATAL,
  TDX_TDCS_NOT_ALLOCATED,
  TDX_LIFECYCLE_STATE_INCORRECT,
  TDX_OP_STATE_INCORRECT,
  TDX_EPT_WALK_FAILED,
  TDX_EPT_ENTRY_FREE,
  TDX_EPT_ENTRY_NOT_FREE,
  TDX_EPT_ENTRY_NOT_PRESENT,
  TDX_EPT_ENTRY_NOT_LEAF,
  TDX_EPT_ENTRY_LEAF,
  TDX_GPA_RANGE_NOT_BLOCKED,
  TDX_GPA_RANGE_ALREADY_BLOCKED,
  TDX_TLB_TRACKING_NOT_DONE,
  TDX_EPT_INVALID_PROMOTE_CONDITIONS,
  TDX_PAGE_ALREADY_ACCEPTED,
  TDX_PAGE_SIZE_MISMATCH,
  TDX_GPA_RANGE_BLOCKED,
  TDX_EPT_ENTRY_STATE_INCORRECT,
  TDX_EPT_PAGE_NOT_FREE,
  TDX_METADATA_FIELD_NOT_READABLE,
  TDX_SW_ERROR,
};
const STATUS_NAME_BY_CODE: ReadonlyMap<bigint, string> = new Map(
  Object.entries(STATUS_CODES).map(([name, code]) => [code, name]),
);
// Software codes whose low bits are part of the code, so they are matched whole.
const SW_STATUS_NAMES: ReadonlyMap<bigint, string> = new Map([
  [TDX_SEAMCALL_VMFAILINVALID, 'TDX_SEAMCALL_VMFAILINVALID'],
  [TDX_SEAMCALL_GP, 'TDX_SEAMCALL_GP'],
  [TDX_SEAMCALL_UD, 'TDX_SEAMCALL_UD'],
]);
// After TDH.VP.ENTER, these statuses carry the VMX exit reason in the low 32 bits (§4.1, §5c.1).
const EXIT_REASON_STATUSES: ReadonlySet<bigint> = new Set([
  TDX_SUCCESS,
  TDX_NON_RECOVERABLE_VCPU,
  TDX_NON_RECOVERABLE_TD,
  TDX_NON_RECOVERABLE_TD_LINUX,
  TDX_NON_RECOVERABLE_TD_NON_ACCESSIBLE,
  TDX_NON_RECOVERABLE_TD_WRONG_APIC_MODE,
  TDX_NON_RECOVERABLE_TD_WRONG_APIC_MODE_LINUX,
]);
const LEVEL_STATUSES: ReadonlySet<bigint> = new Set([TDX_PAGE_ALREADY_ACCEPTED, TDX_PAGE_SIZE_MISMATCH]);

// Operand ids, the low 32 bits of a status (§4.8) [TM:include/auto_gen/tdx_error_codes_defs.h].
// GPRs use the architectural register numbering; RSP (4) is not in §4.8's list.
export const TDX_OPERAND_ID_RAX = 0;
export const TDX_OPERAND_ID_RCX = 1;
export const TDX_OPERAND_ID_RDX = 2;
export const TDX_OPERAND_ID_RBX = 3;
export const TDX_OPERAND_ID_RBP = 5;
export const TDX_OPERAND_ID_RSI = 6;
export const TDX_OPERAND_ID_RDI = 7;
export const TDX_OPERAND_ID_R8 = 8;
export const TDX_OPERAND_ID_R9 = 9;
export const TDX_OPERAND_ID_R10 = 10;
export const TDX_OPERAND_ID_R11 = 11;
export const TDX_OPERAND_ID_R12 = 12;
export const TDX_OPERAND_ID_R13 = 13;
export const TDX_OPERAND_ID_R14 = 14;
export const TDX_OPERAND_ID_R15 = 15;
export const TDX_OPERAND_ID_ATTRIBUTES = 64;
export const TDX_OPERAND_ID_XFAM = 65;
export const TDX_OPERAND_ID_EXEC_CONTROLS = 66;
export const TDX_OPERAND_ID_EPTP_CONTROLS = 67;
export const TDX_OPERAND_ID_MAX_VCPUS = 68;
export const TDX_OPERAND_ID_CPUID_CONFIG = 69;
export const TDX_OPERAND_ID_TSC_FREQUENCY = 70;
export const TDX_OPERAND_ID_PAGE = 95;
export const TDX_OPERAND_ID_TDR = 0x80;
export const TDX_OPERAND_ID_TDCX = 129;
export const TDX_OPERAND_ID_TDVPR = 130;
export const TDX_OPERAND_ID_TDCS = 144;
export const TDX_OPERAND_ID_TDVPS = 145;
// The S-EPT tree lock; Linux calls this id TDX_OPERAND_ID_SEPT.
export const TDX_OPERAND_ID_SEPT_TREE = 0x92;
// The S-EPT entry itself is blamed through RCX (the page-info operand), not through this id (§4.8).
export const TDX_OPERAND_ID_SEPT_ENTRY = 0x93;
export const TDX_OPERAND_ID_RTMR = 168;
export const TDX_OPERAND_ID_TD_EPOCH = 0xa9;
export const TDX_OPERAND_ID_OP_STATE = 172;
export const TDX_OPERAND_ID_KOT = 186;
export const TDX_OPERAND_ID_KET = 187;
export const TDX_OPERAND_ID_WBCACHE = 188;

const OPERAND_IDS = {
  RAX: TDX_OPERAND_ID_RAX,
  RCX: TDX_OPERAND_ID_RCX,
  RDX: TDX_OPERAND_ID_RDX,
  RBX: TDX_OPERAND_ID_RBX,
  RBP: TDX_OPERAND_ID_RBP,
  RSI: TDX_OPERAND_ID_RSI,
  RDI: TDX_OPERAND_ID_RDI,
  R8: TDX_OPERAND_ID_R8,
  R9: TDX_OPERAND_ID_R9,
  R10: TDX_OPERAND_ID_R10,
  R11: TDX_OPERAND_ID_R11,
  R12: TDX_OPERAND_ID_R12,
  R13: TDX_OPERAND_ID_R13,
  R14: TDX_OPERAND_ID_R14,
  R15: TDX_OPERAND_ID_R15,
  ATTRIBUTES: TDX_OPERAND_ID_ATTRIBUTES,
  XFAM: TDX_OPERAND_ID_XFAM,
  EXEC_CONTROLS: TDX_OPERAND_ID_EXEC_CONTROLS,
  EPTP_CONTROLS: TDX_OPERAND_ID_EPTP_CONTROLS,
  MAX_VCPUS: TDX_OPERAND_ID_MAX_VCPUS,
  CPUID_CONFIG: TDX_OPERAND_ID_CPUID_CONFIG,
  TSC_FREQUENCY: TDX_OPERAND_ID_TSC_FREQUENCY,
  PAGE: TDX_OPERAND_ID_PAGE,
  TDR: TDX_OPERAND_ID_TDR,
  TDCX: TDX_OPERAND_ID_TDCX,
  TDVPR: TDX_OPERAND_ID_TDVPR,
  TDCS: TDX_OPERAND_ID_TDCS,
  TDVPS: TDX_OPERAND_ID_TDVPS,
  SEPT_TREE: TDX_OPERAND_ID_SEPT_TREE,
  SEPT_ENTRY: TDX_OPERAND_ID_SEPT_ENTRY,
  RTMR: TDX_OPERAND_ID_RTMR,
  TD_EPOCH: TDX_OPERAND_ID_TD_EPOCH,
  OP_STATE: TDX_OPERAND_ID_OP_STATE,
  KOT: TDX_OPERAND_ID_KOT,
  KET: TDX_OPERAND_ID_KET,
  WBCACHE: TDX_OPERAND_ID_WBCACHE,
};
const OPERAND_NAME_BY_ID: ReadonlyMap<number, string> = new Map(
  Object.entries(OPERAND_IDS).map(([name, id]) => [id, name]),
);

/** `status | operand`, as the module reports which operand or lock failed (§4.8). */
export function tdxStatusWithOperand(status: bigint, operand: number | bigint): bigint {
  const op = BigInt(operand);
  if ((status & TDX_OPERAND_MASK) !== 0n) throw new RangeError(`status ${hex16(status)} already has low bits set`);
  if (op < 0n || op > TDX_OPERAND_MASK) throw new RangeError(`operand ${operand} does not fit in 32 bits`);
  return status | op;
}

/** Bit 63: the call failed. Statuses without it (ALREADY_BLOCKED, KEY_CONFIGURED …) are informational. */
export function isTdxError(status: bigint): boolean {
  return (status & TDX_ERROR) !== 0n;
}

/** KVM's tdx_operand_busy(): the status class is TDX_OPERAND_BUSY, whatever operand id it names (§7.3). */
export function isOperandBusy(status: bigint): boolean {
  return (status & TDX_SEAMCALL_STATUS_MASK) === TDX_OPERAND_BUSY;
}

/**
 * A full RAX value as a kernel developer would spell it: 'TDX_OPERAND_BUSY|SEPT_TREE',
 * 'TDX_PAGE_SIZE_MISMATCH|level=1', 'TDX_SUCCESS|exit_reason=EPT_VIOLATION', 'TDX_SUCCESS'.
 * An unknown code is printed as 16 hex digits.
 */
export function tdxStatusName(status: bigint): string {
  const sw = SW_STATUS_NAMES.get(status);
  if (sw !== undefined) return sw;
  const code = status & TDX_SEAMCALL_STATUS_MASK;
  const name = STATUS_NAME_BY_CODE.get(code);
  if (name === undefined) return hex16(status);
  const low = Number(status & TDX_OPERAND_MASK);
  if (low === 0) return name;
  if (LEVEL_STATUSES.has(code)) return `${name}|level=${low}`;
  if (EXIT_REASON_STATUSES.has(code)) return `${name}|exit_reason=${EXIT_REASON_NAMES[low] ?? hex(low)}`;
  // Linux's software codes put their own details in the low bits, never an operand id.
  if (code === TDX_SW_ERROR) return `${name}|${hex(low)}`;
  return `${name}|${OPERAND_NAME_BY_ID.get(low) ?? hex(low)}`;
}

/**
 * The inverse of tdxStatusName for a status a user writes: 'TDX_EPT_WALK_FAILED|RCX',
 * 'TDX_PAGE_ALREADY_ACCEPTED|level=1', 'TDX_SUCCESS'. Null for a name the catalogue does not have.
 */
export function tdxStatusCode(name: string): bigint | null {
  for (const [value, sw] of SW_STATUS_NAMES) if (sw === name) return value;
  const [base, detail, ...rest] = name.split('|');
  if (rest.length > 0 || base === undefined) return null;
  const code = [...STATUS_NAME_BY_CODE].find(([, n]) => n === base)?.[0];
  if (code === undefined) return null;
  if (detail === undefined) return code;
  const level = /^level=(\d+)$/.exec(detail);
  if (level) return code | BigInt(level[1]!);
  const id = OPERAND_IDS[detail as keyof typeof OPERAND_IDS];
  if (id !== undefined) return code | BigInt(id);
  return /^0x[0-9a-f]+$/i.test(detail) ? code | BigInt(detail) : null;
}

// Extended exit qualification, RDX on TD exit (§4.9) [TM:src/common/x86_defs/vmcs_defs.h]: type in
// bits 3:0, bits 31:4 reserved, info in 63:32. It is how the module tells KVM why a private-GPA
// EPT violation happened.
export const TDX_EXT_EXIT_QUAL_TYPE_NONE = 0;
export const TDX_EXT_EXIT_QUAL_TYPE_ACCEPT = 1;
export const TDX_EXT_EXIT_QUAL_TYPE_GPA_DETAILS = 2;
export const TDX_EXT_EXIT_QUAL_TYPE_TD_ENTRY_MSR_LOAD_FAILURE = 3;
export const TDX_EXT_EXIT_QUAL_TYPE_TD_ENTRY_XSTATE_LOAD_FAILURE = 4;
export const TDX_EXT_EXIT_QUAL_TYPE_ATTR_WR = 5;
export const TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION = 6;
export const TDX_EXT_EXIT_QUAL_TYPE_MASK = 0xfn;
export const TDX_EXT_EXIT_QUAL_INFO_SHIFT = 32n;
export const TDX_EXT_EXIT_QUAL_INFO_MASK = 0xffffffffn << TDX_EXT_EXIT_QUAL_INFO_SHIFT;
const EEQ_RESERVED_MASK = ~(TDX_EXT_EXIT_QUAL_TYPE_MASK | TDX_EXT_EXIT_QUAL_INFO_MASK) & ((1n << 64n) - 1n);

const EEQ_TYPE_NAMES: Readonly<Record<number, string>> = {
  [TDX_EXT_EXIT_QUAL_TYPE_NONE]: 'NONE',
  [TDX_EXT_EXIT_QUAL_TYPE_ACCEPT]: 'ACCEPT',
  [TDX_EXT_EXIT_QUAL_TYPE_GPA_DETAILS]: 'GPA_DETAILS',
  [TDX_EXT_EXIT_QUAL_TYPE_TD_ENTRY_MSR_LOAD_FAILURE]: 'TD_ENTRY_MSR_LOAD_FAILURE',
  [TDX_EXT_EXIT_QUAL_TYPE_TD_ENTRY_XSTATE_LOAD_FAILURE]: 'TD_ENTRY_XSTATE_LOAD_FAILURE',
  [TDX_EXT_EXIT_QUAL_TYPE_ATTR_WR]: 'ATTR_WR',
  [TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION]: 'PENDING_EPT_VIOLATION',
};

function checkField(what: string, v: number, bits: number): void {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) throw new RangeError(`${what} ${v} does not fit in ${bits} bits`);
}

export function makeEeq(type: number, info = 0): bigint {
  checkField('EEQ type', type, 4);
  checkField('EEQ info', info, 32);
  return BigInt(type) | (BigInt(info) << TDX_EXT_EXIT_QUAL_INFO_SHIFT);
}

export function decodeEeq(eeq: bigint): { type: number; typeName: string; info: number } {
  if (eeq < 0n || eeq >> 64n !== 0n || (eeq & EEQ_RESERVED_MASK) !== 0n) {
    throw new RangeError(`EEQ ${eeq < 0n ? String(eeq) : hex(eeq)} has reserved bits (31:4 or above 63) set (§4.9)`);
  }
  const type = Number(eeq & TDX_EXT_EXIT_QUAL_TYPE_MASK);
  return {
    type,
    typeName: EEQ_TYPE_NAMES[type] ?? hex(type),
    info: Number((eeq & TDX_EXT_EXIT_QUAL_INFO_MASK) >> TDX_EXT_EXIT_QUAL_INFO_SHIFT),
  };
}

/**
 * Info word of an ACCEPT / ATTR_WR EEQ (§4.9, `tdaccept_vmx_eeq_info_t`). Levels are TDX S-EPT levels
 * (4K = 0): the level the guest asked for and the level where the walk found the offending entry;
 * `state` is that entry's public S-EPT state (§5a.1), `leaf` whether it is a leaf. The huge-page
 * series reads the requested level back as a pg_level, `(info & 7) + 1` (§4.9, §6.iii).
 */
export interface AcceptEeqInfo {
  reqLevel: number;
  errLevel: number;
  state: number;
  leaf: boolean;
}

const ACCEPT_INFO_REQ_LEVEL_SHIFT = 0;
const ACCEPT_INFO_ERR_LEVEL_SHIFT = 3;
const ACCEPT_INFO_STATE_SHIFT = 6;
const ACCEPT_INFO_LEAF_SHIFT = 14;

export function makeAcceptEeqInfo({ reqLevel, errLevel, state, leaf }: AcceptEeqInfo): number {
  checkField('ACCEPT EEQ reqLevel', reqLevel, 3);
  checkField('ACCEPT EEQ errLevel', errLevel, 3);
  checkField('ACCEPT EEQ state', state, 8);
  return (
    (reqLevel << ACCEPT_INFO_REQ_LEVEL_SHIFT) |
    (errLevel << ACCEPT_INFO_ERR_LEVEL_SHIFT) |
    (state << ACCEPT_INFO_STATE_SHIFT) |
    (Number(leaf) << ACCEPT_INFO_LEAF_SHIFT)
  );
}

/** Inverse of makeAcceptEeqInfo; bits 31:15 (reserved, and the L2 VM index at 21:20) are ignored. */
export function decodeAcceptEeqInfo(info: number): AcceptEeqInfo {
  checkField('ACCEPT EEQ info', info, 32);
  return {
    reqLevel: (info >>> ACCEPT_INFO_REQ_LEVEL_SHIFT) & 0b111,
    errLevel: (info >>> ACCEPT_INFO_ERR_LEVEL_SHIFT) & 0b111,
    state: (info >>> ACCEPT_INFO_STATE_SHIFT) & 0xff,
    leaf: ((info >>> ACCEPT_INFO_LEAF_SHIFT) & 1) === 1,
  };
}

// TD ATTRIBUTES bits (§4.11) [L616:arch/x86/include/asm/shared/tdx.h]. KVM lets userspace set only
// SEPT_VE_DISABLE, which Linux guests require: access to a PENDING page then exits to KVM instead of
// raising #VE in the guest.
export const TD_ATTR_DEBUG = 1n << 0n;
export const TD_ATTR_HGS_PLUS_PROF = 1n << 4n;
export const TD_ATTR_PERF_PROF = 1n << 5n;
export const TD_ATTR_PMT_PROF = 1n << 6n;
export const TD_ATTR_ICSSD = 1n << 16n;
export const TD_ATTR_LASS = 1n << 27n;
export const TD_ATTR_SEPT_VE_DISABLE = 1n << 28n;
export const TD_ATTR_MIGRATABLE = 1n << 29n;
export const TD_ATTR_PKS = 1n << 30n;
export const TD_ATTR_KL = 1n << 31n;
export const TD_ATTR_TPA = 1n << 62n;
export const TD_ATTR_PERFMON = 1n << 63n;

// TD_CTLS bits (§4.11). TDH.MNG.INIT copies ATTRIBUTES.SEPT_VE_DISABLE into PENDING_VE_DISABLE; the
// guest may change it later only if CONFIG_FLAGS.FLEXIBLE_PENDING_VE is set.
export const TD_CTLS_PENDING_VE_DISABLE = 1n << 0n;
export const TD_CTLS_ENUM_TOPOLOGY = 1n << 1n;
export const TD_CTLS_VIRT_CPUID2 = 1n << 2n;
export const TD_CTLS_REDUCE_VE = 1n << 3n;
export const TD_CTLS_LOCK = 1n << 63n;
export const TDCS_CONFIG_FLEXIBLE_PENDING_VE = 1n << 1n;

// TD-scope metadata field ids for TDG.VM.RD/WR and TDH.MNG.RD (§4.11) [L616:arch/x86/kvm/vmx/tdx_arch.h].
export const TDCS_CONFIG_FLAGS = 0x1110000300000016n;
export const TDCS_TD_CTLS = 0x1110000300000017n;
export const TDCS_NOTIFY_ENABLES = 0x9100000000000010n;
export const TDCS_TOPOLOGY_ENUM_CONFIGURED = 0x9100000000000019n;
export const TD_MD_FIELD_ID_CPUID_VALUES = 0x9410000300000000n;

// Field ids KVM builds for TDH.MNG.RD and TDH.VP.RD/WR as class << 56 | field (BUILD_TDX_FIELD)
// [L616:arch/x86/kvm/vmx/tdx_arch.h]: TDCS execution controls are class 17, the TD VMCS class 0 with
// the VMCS field encoding as the field.
export const TDX_CLASS_SHIFT = 56n;
export const TD_CLASS_EXECUTION_CONTROLS = 17n;
export const TDVPS_CLASS_VMCS = 0n;
export const TD_TDCS_EXEC_TSC_OFFSET = 10n;
export const TD_TDCS_EXEC_TSC_MULTIPLIER = 11n;

/** BUILD_TDX_FIELD(class, field) for an architectural field (bit 63, NON_ARCH, clear). */
export function buildTdxField(cls: bigint, field: bigint): bigint {
  return (cls << TDX_CLASS_SHIFT) | (field & 0xffffffffn);
}

/** TDCS_EXEC(TSC_OFFSET) = 0x110000000000000a and TDCS_EXEC(TSC_MULTIPLIER) = 0x110000000000000b. */
export const TDCS_EXEC_TSC_OFFSET = buildTdxField(TD_CLASS_EXECUTION_CONTROLS, TD_TDCS_EXEC_TSC_OFFSET);
export const TDCS_EXEC_TSC_MULTIPLIER = buildTdxField(TD_CLASS_EXECUTION_CONTROLS, TD_TDCS_EXEC_TSC_MULTIPLIER);

// TD_PARAMS.config_flags (§4.11). MAX_GPAW selects the 52-bit GPA width (shared bit 51, §2); KVM
// always sets NO_RBP_MOD.
export const TDX_CONFIG_FLAGS_MAX_GPAW = 1n << 0n;
export const TDX_CONFIG_FLAGS_NO_RBP_MOD = 1n << 2n;

/** What hardware (or the module) writes to the VE_INFO word at offset 4 when it delivers a #VE (§1.2). */
export const VE_INFO_VALID = 0xffffffff;

// Zero-step mitigation and KVM loop bounds (§4.14, §7.5) [TM:src/td_transitions/td_exit_stepping.h] [KX].
export const STEPPING_EPF_THRESHOLD = 6;
export const EPF_GPA_LIST_SIZE = 32;
export const STEPPING_TSC_THRESHOLD = 4096;
export const TDX_SEAMCALL_RETRIES = 10000;
export const TDX_MAP_GPA_MAX_LEN = 0x200000;
export const TDX_EXTENDMR_CHUNKSIZE = 256;

// PAMT page types (§1.3) [TM:src/common/memory_handlers/pamt_manager.h]: a page must be PT_NDA before
// the module will take it for a TD.
export const PT_NDA = 0;
export const PT_RSVD = 1;
export const PT_REG = 3;
export const PT_TDR = 4;
export const PT_TDCX = 5;
export const PT_TDVPR = 6;
export const PT_EPT = 8;

// TDR lifecycle state (§5b.1); page reclaim is only allowed in TEARDOWN.
export const TDR_LIFECYCLE_HKID_ASSIGNED = 0;
export const TDR_LIFECYCLE_KEYS_CONFIGURED = 1;
export const TDR_LIFECYCLE_BLOCKED = 2;
export const TDR_LIFECYCLE_TEARDOWN = 3;

// TDCS op_state (§5b.1); 3–10 are migration states the model does not use.
export const OP_STATE_UNINITIALIZED = 0;
export const OP_STATE_INITIALIZED = 1;
export const OP_STATE_RUNNABLE = 2;

// TDVPS vCPU state and the kind of the last TD exit (§5b.1) [TM:src/common/data_structures/tdx_tdvps.h].
export const TDVPS_VCPU_UNINITIALIZED = 0x0;
export const TDVPS_VCPU_READY = 0x2;
export const TDVPS_VCPU_ACTIVE = 0x4;
export const TDVPS_VCPU_DISABLED = 0x8;
export const TDVPS_VCPU_IMPORT = 0x10;
export const TDVPS_LAST_EXIT_ASYNC_FAULT = 0;
export const TDVPS_LAST_EXIT_ASYNC_TRAP = 1;
export const TDVPS_LAST_EXIT_TDVMCALL = 2;
