/**
 * The explicit TDR operand of a memory SEAMCALL (RDX; RCX for TDH.MEM.TRACK), checked as the module
 * checks it before anything else the leaf does (§5a.4 step 1) [TM:src/common/helpers/helpers.c
 * `check_lock_and_map_explicit_tdr`, `check_td_in_correct_build_state`]:
 * 1. the address: 4K aligned, no HKID bits, nothing at or above MAX_PA → TDX_OPERAND_INVALID | operand;
 * 2. the PAMT entry of that page, locked shared (exclusively by TDH.MEM.PAGE.ADD and TDH.MR.EXTEND):
 *    another holder in the way → TDX_OPERAND_BUSY | operand. The lock is the given page's, so only the
 *    TD's real TDR (or a page a RELOCATE holds) can be busy;
 * 3. that entry's page type must be PT_TDR (a 4K page) → else TDX_PAGE_METADATA_INCORRECT | operand;
 * 4. the TD behind it: fatal → TDX_TD_FATAL; lifecycle other than KEYS_CONFIGURED →
 *    TDX_TD_KEYS_NOT_CONFIGURED; fewer TDCS pages than the TD needs → TDX_TDCS_NOT_ALLOCATED.
 * op_state comes after, in the leaf itself (tdMemory.ts). The owner of a TDR page is not compared: a TDR
 * owns itself. The model has one TD and no TDMR list (every PA is covered by a PAMT, so
 * TDX_OPERAND_ADDR_RANGE_ERROR does not arise) and never marks a TD fatal.
 */
import {
  TDX_OPERAND_INVALID,
  TDX_OPERAND_BUSY,
  TDX_PAGE_METADATA_INCORRECT,
  TDX_TD_KEYS_NOT_CONFIGURED,
  TDX_TDCS_NOT_ALLOCATED,
  TDX_OPERAND_ID_RCX,
  TDX_OPERAND_ID_RDX,
  PT_TDR,
  tdxStatusWithOperand,
} from '../../src/arch/tdxStatus.ts';
import { PAGE_SHIFT, PAGE_SIZE } from '../../src/arch/gpa.ts';
import { pamtEntryOf, type Pamt } from './pamt.ts';
import { canTake, type LockMode, type ModuleLocks } from './moduleLocks.ts';

/** TDR lifecycle (§5b.1); the statechart's state says which one a call arrives in. */
export type TdrLifecycle = 'HKID_ASSIGNED' | 'KEYS_CONFIGURED' | 'BLOCKED' | 'TEARDOWN';

/** MAX_PA of the platform: the model's 52-bit MAXPHYADDR, KeyID bits included (registry.ts HOST_LAYOUT). */
export const MAX_PA = 52;

/** TDCS pages the TD needs before anything but TDH.MNG.ADDCX may use it (MIN_NUM_TDCS_PAGES, tdxModule.ts TDCS_PAGES). */
const MIN_TDCS_PAGES = 6;

/** Where each memory leaf takes its TDR and how: TRACK has it in RCX; the build-time leaves lock it exclusively. */
export function tdrOperandOf(leaf: string): { operand: number; mode: LockMode } {
  if (leaf === 'TDH.MEM.TRACK') return { operand: TDX_OPERAND_ID_RCX, mode: 'S' };
  if (leaf === 'TDH.MEM.PAGE.ADD' || leaf === 'TDH.MR.EXTEND') return { operand: TDX_OPERAND_ID_RDX, mode: 'X' };
  return { operand: TDX_OPERAND_ID_RDX, mode: 'S' };
}

/**
 * TDH.MEM.SEPT.ADD and TDH.MEM.PAGE.DEMOTE carry flags next to the TDR in RDX (bits 11:0; the TDR PA is
 * bits 51:12), so their RDX is never misaligned [TM:src/vmm_dispatcher/api_calls/tdh_mem_sept_add.c
 * `tdr_and_flags`]. The model knows no flag, and reads the PA only.
 */
const TDR_WITH_FLAGS = new Set(['TDH.MEM.SEPT.ADD', 'TDH.MEM.PAGE.DEMOTE']);

export interface TdrState {
  pamt: Pamt;
  lifecycle: TdrLifecycle;
  tdcsPages: number;
  hkidShift: number;
  /** The TD's TDR, whose PAMT entry lock is the one other callers hold (`locks.tdr`). */
  tdr: bigint;
  /** What other callers hold (moduleLocks.ts). */
  locks: ModuleLocks;
}

/** The refusal status of the TDR operand, or null when the leaf may go on to op_state. */
export function tdrRefusal(leaf: string, value: bigint, td: TdrState): bigint | null {
  const { operand, mode } = tdrOperandOf(leaf);
  const pa = TDR_WITH_FLAGS.has(leaf) ? value & ~(PAGE_SIZE - 1n) : value;
  const hkidBits = (pa >> BigInt(td.hkidShift)) & ((1n << BigInt(MAX_PA - td.hkidShift)) - 1n);
  if ((pa & (PAGE_SIZE - 1n)) !== 0n || hkidBits !== 0n || pa >> BigInt(MAX_PA) !== 0n) return tdxStatusWithOperand(TDX_OPERAND_INVALID, operand);
  const pfn = Number(pa >> BigInt(PAGE_SHIFT));
  const busy = pa === td.tdr ? !canTake(td.locks.tdr, mode) : td.locks.pages.has(pfn);
  if (busy) return tdxStatusWithOperand(TDX_OPERAND_BUSY, operand);
  const entry = pamtEntryOf(td.pamt, pfn);
  if (entry === undefined || entry.type !== PT_TDR || entry.tdxLevel !== 0) return tdxStatusWithOperand(TDX_PAGE_METADATA_INCORRECT, operand);
  if (td.lifecycle !== 'KEYS_CONFIGURED') return TDX_TD_KEYS_NOT_CONFIGURED;
  if (td.tdcsPages < MIN_TDCS_PAGES) return TDX_TDCS_NOT_ALLOCATED;
  return null;
}
