/**
 * The TDX module's side of a guest memory access that went wrong, and of TDG.MEM.PAGE.ACCEPT:
 * - acceptDecision: §5a.5, walk without the tree lock, then ALREADY_ACCEPTED / SIZE_MISMATCH / an
 *   EPT-violation TD exit with EEQ type ACCEPT / zero the page under the guest-side entry lock;
 * - eptViolationDecision: §5a.6, a hardware EPT violation on a private GPA becomes a #VE (PENDING page,
 *   PENDING_VE_DISABLE clear), a TD exit with EEQ PENDING_EPT_VIOLATION (PENDING, disable set), or a TD
 *   exit with EEQ NONE (anything else, e.g. FREE or a blocked accepted page, §6.vi, [S003]).
 */
import {
  TDX_SUCCESS,
  TDX_OPERAND_INVALID,
  TDX_OPERAND_BUSY,
  TDX_PAGE_ALREADY_ACCEPTED,
  TDX_PAGE_SIZE_MISMATCH,
  TDX_OPERAND_ID_RCX,
  TDX_EXT_EXIT_QUAL_TYPE_ACCEPT,
  TDX_EXT_EXIT_QUAL_TYPE_NONE,
  TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION,
  makeEeq,
  makeAcceptEeqInfo,
  tdxStatusWithOperand,
} from '../../src/arch/tdxStatus.ts';
import { SEPT_STATE_PUBLIC, septAllows, septIsLeaf } from '../../src/arch/sept.ts';
import { SEPT_TDEL, SEPT_TDHP, septHpa, withSeptState } from '../../src/arch/septEntry.ts';
import { VMX_EPT_RWX_MASK } from '../../src/arch/spte.ts';
import { EPT_VIOLATION_ACC_WRITE } from '../../src/arch/vmx.ts';
import { PAGE_SIZE } from '../../src/arch/gpa.ts';
import { walkSept, writeEntry, type SeptSlot } from './septTree.ts';
import type { TdMemory } from './tdMemory.ts';

export type AcceptOutcome =
  /** Returned to the guest in RAX, no exit. */
  | { kind: 'status'; status: bigint; td: TdMemory }
  /** Fault-like EPT-violation TD exit; the guest's RIP stays on the TDCALL (§5a.5). */
  | { kind: 'exit'; exitQualification: bigint; eeq: bigint; gpa: bigint }
  /** PENDING at the requested level: the entry is locked and the page must be zeroed with the TD key. */
  | { kind: 'zero'; td: TdMemory; pa: bigint; bytes: bigint };

/** §4.10: an ACCEPT's synthesised exit qualification is "write" plus the R/W/X of the entry found. */
function acceptExit(slot: SeptSlot, reqLevel: number, gpa: bigint): AcceptOutcome {
  const info = makeAcceptEeqInfo({ reqLevel, errLevel: slot.tdxLevel, state: SEPT_STATE_PUBLIC[slot.state], leaf: septIsLeaf(slot.state) });
  return {
    kind: 'exit',
    exitQualification: BigInt(EPT_VIOLATION_ACC_WRITE) | ((slot.entry & VMX_EPT_RWX_MASK) << 3n),
    eeq: makeEeq(TDX_EXT_EXIT_QUAL_TYPE_ACCEPT, info),
    gpa: gpa & ~(PAGE_SIZE - 1n),
  };
}

const ACCEPT_MAX_LEVEL = 1;

export function acceptDecision(td: TdMemory, rcx: bigint): AcceptOutcome {
  const level = Number(rcx & 7n);
  const gpa = rcx & ~0xfffn;
  const size = PAGE_SIZE << BigInt(9 * level);
  // TDX 1.5 accepts 4K and 2M only; 1G is OPERAND_INVALID, which Linux takes as "try smaller" (§6.ii A.1).
  if (level > ACCEPT_MAX_LEVEL || (rcx & 0xff8n) !== 0n || (gpa & td.sharedMask) !== 0n || (gpa & (size - 1n)) !== 0n || td.septRoot === null) {
    return { kind: 'status', status: tdxStatusWithOperand(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX), td };
  }
  const { path, reached } = walkSept(td.sept, td.septRoot, td.topLevel, gpa, level);
  const slot = path.at(-1)!;
  if (!reached) {
    if (slot.state === 'MAPPED') return { kind: 'status', status: TDX_PAGE_ALREADY_ACCEPTED | BigInt(slot.tdxLevel), td };
    return acceptExit(slot, level, gpa);
  }
  if ((slot.entry & SEPT_TDEL) !== 0n || (slot.entry & SEPT_TDHP) !== 0n) {
    // Locked by someone else, or a host is waiting for it (host priority): the guest backs off (§7.3).
    return { kind: 'status', status: tdxStatusWithOperand(TDX_OPERAND_BUSY, TDX_OPERAND_ID_RCX), td };
  }
  if (slot.state === 'NL_MAPPED' || slot.state === 'NL_BLOCKED') return { kind: 'status', status: TDX_PAGE_SIZE_MISMATCH | BigInt(level), td };
  if (slot.state === 'MAPPED') return { kind: 'status', status: TDX_PAGE_ALREADY_ACCEPTED | BigInt(level), td };
  if (!septAllows('TDG.MEM.PAGE.ACCEPT', slot.state)) return acceptExit(slot, level, gpa);
  const locked = { ...td, sept: writeEntry(td.sept, slot.pagePfn, slot.index, slot.entry | SEPT_TDEL) };
  return { kind: 'zero', td: locked, pa: septHpa(slot.entry), bytes: size };
}

/** After the zeroing: PENDING → MAPPED (RWX = 111), entry lock released (§5a.3). */
export function acceptComplete(td: TdMemory, rcx: bigint): { td: TdMemory; status: bigint } {
  const level = Number(rcx & 7n);
  const { path, reached } = walkSept(td.sept, td.septRoot!, td.topLevel, rcx & ~0xfffn, level);
  const slot = path.at(-1)!;
  if (!reached || !septAllows('TDG.MEM.PAGE.ACCEPT', slot.state) || (slot.entry & SEPT_TDEL) === 0n) {
    throw new Error(`model bug: ACCEPT completion finds ${slot.state} at level ${slot.tdxLevel} without its entry lock`);
  }
  const entry = withSeptState(slot.entry, slot.state === 'PENDING' ? 'MAPPED' : 'EXPORTED_DIRTY') & ~SEPT_TDEL;
  return { td: { ...td, sept: writeEntry(td.sept, slot.pagePfn, slot.index, entry) }, status: TDX_SUCCESS };
}

export type ViolationOutcome =
  | { kind: 'inject-ve' }
  /** Not PENDING: the module logs the fault for zero-step (§7.5) and exits with EEQ type NONE. */
  | { kind: 'td-exit'; eeq: bigint }
  /** PENDING with PENDING_VE_DISABLE: logged for zero-step too, then an exit with EEQ type PENDING_EPT_VIOLATION. */
  | { kind: 'pending-exit'; eeq: bigint };

/** §5a.6 for a private GPA: only a PENDING leaf is the guest's business. */
export function eptViolationDecision(td: TdMemory, gpa: bigint, pendingVeDisabled: boolean): ViolationOutcome {
  const { path } = walkSept(td.sept, td.septRoot!, td.topLevel, gpa, 0);
  const slot = path.at(-1)!;
  if (slot.state !== 'PENDING') return { kind: 'td-exit', eeq: makeEeq(TDX_EXT_EXIT_QUAL_TYPE_NONE) };
  if (pendingVeDisabled) return { kind: 'pending-exit', eeq: makeEeq(TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION) };
  return { kind: 'inject-ve' };
}
