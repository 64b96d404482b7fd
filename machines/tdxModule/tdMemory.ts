/**
 * The TD's private memory as the TDX module manages it, and the memory SEAMCALLs as pure functions over
 * it: the S-EPT (septTree.ts), the PAMT (pamt.ts), the TD epoch (tlbTracking.ts), op_state and the
 * measurement. Every handler runs the checks in the order of §5a.4 and reports a refusal exactly as the
 * module does: status | operand id in RAX, and from the walk on the architectural entry in RCX and
 * level | public state << 8 in RDX.
 *
 * The explicit TDR operand is checked before a handler runs (tdrOperand.ts). The module's try-locks
 * (§7.2) are checked where §5a.4 puts them, against what other callers hold across the module's own
 * steps (moduleLocks.ts): the S-EPT tree lock in the leaf's mode after the level check, the entry lock
 * (TDEL, set by a guest's ACCEPT or a RELOCATE while memory works) after the walk, and the PAMT entry of
 * a page handed over.
 */
import { createHash } from 'node:crypto';
import type { Gprs } from '../../src/protocol/messages.ts';
import {
  TDX_SUCCESS,
  TDX_OPERAND_INVALID,
  TDX_OPERAND_BUSY,
  TDX_OP_STATE_INCORRECT,
  TDX_EPT_WALK_FAILED,
  TDX_EPT_ENTRY_STATE_INCORRECT,
  TDX_EPT_ENTRY_NOT_PRESENT,
  TDX_GPA_RANGE_ALREADY_BLOCKED,
  TDX_GPA_RANGE_NOT_BLOCKED,
  TDX_TLB_TRACKING_NOT_DONE,
  TDX_PAGE_METADATA_INCORRECT,
  TDX_EPT_PAGE_NOT_FREE,
  TDX_EPT_INVALID_PROMOTE_CONDITIONS,
  TDX_PREVIOUS_TLB_EPOCH_BUSY,
  TDX_OPERAND_ID_RCX,
  TDX_OPERAND_ID_R8,
  TDX_OPERAND_ID_R9,
  TDX_OPERAND_ID_SEPT_TREE,
  PT_REG,
  PT_EPT,
  tdxStatusWithOperand,
} from '../../src/arch/tdxStatus.ts';
import { septAllows, septIsLeaf, type SeptState } from '../../src/arch/sept.ts';
import { makeSeptEntry, septArchView, septLevelState, septHpa, septStateOf, withSeptState, SEPT_TDEL, SEPT_TDHP, SEPT_FREE_ENTRY } from '../../src/arch/septEntry.ts';
import { PAGE_SHIFT, PAGE_SIZE } from '../../src/arch/gpa.ts';
import { TDX_EXTENDMR_CHUNKSIZE } from '../../src/arch/tdxStatus.ts';
import { readEntry, writeEntry, walkSept, type SeptPages, type SeptSlot } from './septTree.ts';
import { pamtEntryOf, pamtRangeFree, pamtSet, type Pamt } from './pamt.ts';
import { isTlbTracked, trackEpoch, type TdEpoch } from './tlbTracking.ts';
import { canTake, NO_LOCKS, type LockMode, type ModuleLocks } from './moduleLocks.ts';

export type OpState = 'UNINITIALIZED' | 'INITIALIZED' | 'RUNNABLE';

export interface TdMemory {
  tdr: bigint;
  hkid: number;
  /** GPA bit that selects the shared EPT (§2); a private GPA has it clear. */
  sharedMask: bigint;
  /** TDX level of the entries in the S-EPT root page: 3 with 4-level EPT, 4 with 5-level. */
  topLevel: number;
  /** PFN of the S-EPT root, TDCS page index 3 (§1.3); null until that TDCS page is added. */
  septRoot: number | null;
  sept: SeptPages;
  pamt: Pamt;
  epoch: TdEpoch;
  opState: OpState;
  /** TDR child count: S-EPT pages plus 4K-equivalents of mapped pages (§5a.3). */
  childCount: number;
  /** Number of TDH.MEM.PAGE.ADD and TDH.MR.EXTEND operations folded into MRTD, and its running digest. */
  mrtd: { updates: number; digest: string };
}

/** Memory traffic a SEAMCALL needs before it can return (performed by hw.mem). */
export type MemRequest =
  | { op: 'COPY'; src: bigint; srcKeyid: number; dst: bigint; dstKeyid: number; bytes: bigint }
  | { op: 'ZERO'; pa: bigint; keyid: number; bytes: bigint }
  | { op: 'HASH'; pa: bigint; keyid: number; bytes: bigint };

export interface SeamcallResult {
  td: TdMemory;
  /** RAX = status, plus the output registers. */
  regs: Gprs;
  mem: MemRequest | null;
}

const pfnOf = (pa: bigint) => Number(pa >> BigInt(PAGE_SHIFT));
const paOf = (pfn: number) => BigInt(pfn) << BigInt(PAGE_SHIFT);
const pagesAt = (tdxLevel: number) => 512 ** tdxLevel;

// page_info (§0.2): level in bits 2:0, bits 11:3 and 63:52 reserved.
const PAGE_INFO_RESERVED = 0xff8n | ~((1n << 52n) - 1n);

function fail(td: TdMemory, status: bigint, operand?: number, slot?: SeptSlot): SeamcallResult {
  const regs: Gprs = { RAX: operand === undefined ? status : tdxStatusWithOperand(status, operand) };
  if (slot !== undefined) {
    regs.RCX = septArchView(slot.entry);
    regs.RDX = septLevelState(slot.tdxLevel, slot.state);
  }
  return { td, regs, mem: null };
}

/** MRTD: a running SHA-384 over the measured operations (the module's 128-byte block layout is not reproduced). */
export function extendMrtd(mrtd: TdMemory['mrtd'], what: string): TdMemory['mrtd'] {
  return { updates: mrtd.updates + 1, digest: createHash('sha384').update(mrtd.digest + what).digest('hex') };
}

/** MRTD before anything is measured. */
export const MRTD_INITIAL: TdMemory['mrtd'] = { updates: 0, digest: createHash('sha384').update('').digest('hex') };

const ok = (td: TdMemory, regs: Gprs = {}, mem: MemRequest | null = null): SeamcallResult => ({ td, regs: { RAX: TDX_SUCCESS, ...regs }, mem });

/** Which op_states let each leaf run (§5b.1, non-migration states). */
const OP_STATES: Readonly<Record<string, readonly OpState[]>> = {
  'TDH.MEM.PAGE.ADD': ['INITIALIZED'],
  'TDH.MR.EXTEND': ['INITIALIZED'],
  'TDH.MEM.SEPT.ADD': ['INITIALIZED', 'RUNNABLE'],
  'TDH.MEM.PAGE.AUG': ['INITIALIZED', 'RUNNABLE'],
  'TDH.MEM.RANGE.BLOCK': ['INITIALIZED', 'RUNNABLE'],
  'TDH.MEM.RANGE.UNBLOCK': ['INITIALIZED', 'RUNNABLE'],
  'TDH.MEM.PAGE.REMOVE': ['INITIALIZED', 'RUNNABLE'],
  'TDH.MEM.SEPT.REMOVE': ['INITIALIZED', 'RUNNABLE'],
  'TDH.MEM.PAGE.DEMOTE': ['INITIALIZED', 'RUNNABLE'],
  'TDH.MEM.PAGE.PROMOTE': ['INITIALIZED', 'RUNNABLE'],
  'TDH.MEM.TRACK': ['INITIALIZED', 'RUNNABLE'],
  'TDH.MEM.SEPT.RD': ['INITIALIZED', 'RUNNABLE'],
  'TDH.MEM.PAGE.RELOCATE': ['INITIALIZED', 'RUNNABLE'],
};

/** TDX levels each leaf accepts (§5a.3 "Level ranges accepted"); 'top' = the EPT root level. */
const LEVELS: Readonly<Record<string, readonly [number, number | 'top']>> = {
  'TDH.MEM.PAGE.ADD': [0, 0],
  'TDH.MR.EXTEND': [0, 0],
  'TDH.MEM.PAGE.AUG': [0, 1],
  'TDH.MEM.SEPT.ADD': [1, 'top'],
  'TDH.MEM.RANGE.BLOCK': [0, 'top'],
  'TDH.MEM.RANGE.UNBLOCK': [0, 'top'],
  'TDH.MEM.PAGE.REMOVE': [0, 2],
  'TDH.MEM.PAGE.DEMOTE': [1, 2],
  'TDH.MEM.PAGE.PROMOTE': [1, 2],
  'TDH.MEM.SEPT.REMOVE': [1, 'top'],
  'TDH.MEM.SEPT.RD': [0, 'top'],
  'TDH.MEM.PAGE.RELOCATE': [0, 0],
};

/**
 * How each leaf takes the S-EPT tree lock (§7.2, checked in 1.5.01 for AUG, SEPT.ADD, BLOCK, SEPT.RD and
 * RELOCATE): structural edits that must not race a walk — BLOCK, UNBLOCK, SEPT.REMOVE — exclusively, the
 * rest shared next to their entry lock. PAGE.ADD and MR.EXTEND hold the TDR exclusively instead.
 */
const TREE_MODE: Readonly<Record<string, LockMode>> = {
  'TDH.MEM.SEPT.ADD': 'S',
  'TDH.MEM.PAGE.AUG': 'S',
  'TDH.MEM.RANGE.BLOCK': 'X',
  'TDH.MEM.RANGE.UNBLOCK': 'X',
  'TDH.MEM.PAGE.REMOVE': 'S',
  'TDH.MEM.SEPT.REMOVE': 'X',
  'TDH.MEM.PAGE.DEMOTE': 'S',
  'TDH.MEM.PAGE.PROMOTE': 'S',
  'TDH.MEM.SEPT.RD': 'S',
  'TDH.MEM.PAGE.RELOCATE': 'S',
};

/** In op_states that run vCPUs, removing or resizing a mapping needs BLOCK and a retired epoch (§5a.2). */
const needsTracking = (td: TdMemory) => td.opState === 'RUNNABLE';

interface Located {
  gpa: bigint;
  level: number;
  slot: SeptSlot;
}

/**
 * §5a.4 steps 1–4 for a page-info operand: op_state, level and GPA, the tree lock, then the walk. Returns
 * the slot at the requested level or the refusal.
 */
function locate(td: TdMemory, leaf: string, pageInfo: bigint, locks: ModuleLocks): Located | SeamcallResult {
  if (!OP_STATES[leaf]!.includes(td.opState) || td.septRoot === null) return fail(td, TDX_OP_STATE_INCORRECT);
  const level = Number(pageInfo & 7n);
  const gpa = pageInfo & ~7n;
  const [lo, hiSpec] = LEVELS[leaf]!;
  const hi = hiSpec === 'top' ? td.topLevel : hiSpec;
  const size = PAGE_SIZE << BigInt(9 * level);
  if ((pageInfo & PAGE_INFO_RESERVED) !== 0n || level < lo || level > hi || (gpa & td.sharedMask) !== 0n || gpa >= td.sharedMask << 1n || (gpa & (size - 1n)) !== 0n) {
    return fail(td, TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX);
  }
  const treeMode = TREE_MODE[leaf];
  if (treeMode !== undefined && !canTake(locks.septTree, treeMode)) return fail(td, TDX_OPERAND_BUSY, TDX_OPERAND_ID_SEPT_TREE);
  const { path, reached } = walkSept(td.sept, td.septRoot, td.topLevel, gpa, level);
  const slot = path.at(-1)!;
  if (!reached) return fail(td, TDX_EPT_WALK_FAILED, TDX_OPERAND_ID_RCX, slot);
  return { gpa, level, slot };
}

const isResult = (x: Located | SeamcallResult): x is SeamcallResult => 'regs' in x;

/** §5a.4 step 5: the entry lock. A host that loses it sets host priority so the guest backs off (§7.3). */
function entryLocked(td: TdMemory, at: Located): SeamcallResult | null {
  if ((at.slot.entry & SEPT_TDEL) === 0n) return null;
  const marked = { ...td, sept: writeEntry(td.sept, at.slot.pagePfn, at.slot.index, at.slot.entry | SEPT_TDHP) };
  return fail(marked, TDX_OPERAND_BUSY, TDX_OPERAND_ID_RCX, at.slot);
}

/** A host SEAMCALL that got the entry lock and succeeded clears host priority: the host got its turn (§7.3). */
function setEntry(td: TdMemory, at: Located, entry: bigint): TdMemory {
  return { ...td, sept: writeEntry(td.sept, at.slot.pagePfn, at.slot.index, entry & ~SEPT_TDHP) };
}

function stateCheck(td: TdMemory, leaf: string, at: Located): SeamcallResult | null {
  return septAllows(leaf, at.slot.state) ? null : fail(td, TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_ID_RCX, at.slot);
}

const BLOCKED_STATES: readonly SeptState[] = ['BLOCKED', 'PENDING_BLOCKED', 'NL_BLOCKED'];

/**
 * §5a.4 step 7 as a question (also asked by the explorer's remove-after-track invariant): in a running TD
 * the entry must be blocked, and the epoch of the block retired (§7.4). BEPOCH lives with the page the
 * entry maps.
 */
export function blockTracking(td: TdMemory, slot: SeptSlot): { ok: true } | { ok: false; why: 'not-blocked' } | { ok: false; why: 'not-tracked'; bepoch: number } {
  if (!needsTracking(td)) return { ok: true };
  if (!BLOCKED_STATES.includes(slot.state)) return { ok: false, why: 'not-blocked' };
  const bepoch = pamtEntryOf(td.pamt, pfnOf(septHpa(slot.entry)))?.bepoch ?? 0;
  return isTlbTracked(td.epoch, bepoch) ? { ok: true } : { ok: false, why: 'not-tracked', bepoch };
}

/**
 * An entry not blocked is reported with the entry; an unretired block is not: the 1.5.01 handlers (REMOVE,
 * SEPT.REMOVE, DEMOTE, PROMOTE, RELOCATE) leave RCX and RDX cleared for TDX_TLB_TRACKING_NOT_DONE.
 */
function trackingCheck(td: TdMemory, at: Located): SeamcallResult | null {
  const t = blockTracking(td, at.slot);
  if (t.ok) return null;
  return t.why === 'not-blocked' ? fail(td, TDX_GPA_RANGE_NOT_BLOCKED, TDX_OPERAND_ID_RCX, at.slot) : fail(td, TDX_TLB_TRACKING_NOT_DONE, TDX_OPERAND_ID_RCX);
}

/** §5a.4 step 8: the page the caller hands over is locked exclusively in the PAMT and must be PT_NDA. */
function targetPageCheck(td: TdMemory, pa: bigint, tdxLevel: number, operand: number, locks: ModuleLocks): SeamcallResult | null {
  const size = PAGE_SIZE << BigInt(9 * tdxLevel);
  if ((pa & (size - 1n)) !== 0n) return fail(td, TDX_OPERAND_INVALID, operand);
  if (locks.pages.has(pfnOf(pa))) return fail(td, TDX_OPERAND_BUSY, operand);
  return pamtRangeFree(td.pamt, pfnOf(pa), tdxLevel) ? null : fail(td, TDX_PAGE_METADATA_INCORRECT, operand);
}

// ---------------------------------------------------------------------------------------------------------
// The leaves. Inputs are the registers as KVM passes them (§4.1).

/** TDH.MEM.SEPT.ADD(RCX pi, RDX TDR, R8 new S-EPT page): FREE → NL_MAPPED over a page of FREE entries. */
export function septAdd(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.SEPT.ADD', r.RCX!, locks);
  if (isResult(at)) return at;
  const e = entryLocked(td, at) ?? stateCheck(td, 'TDH.MEM.SEPT.ADD', at);
  if (e) return e;
  // NL_MAPPED passes the state table only for a call without a new page (§5a.2); with one (KVM always
  // supplies one) the 1.5.01 module refuses an existing S-EPT page as a state error, with the entry.
  if (at.slot.state !== 'FREE') return fail(td, TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_ID_RCX, at.slot);
  const p = targetPageCheck(td, r.R8!, 0, TDX_OPERAND_ID_R8, locks);
  if (p) return p;
  const pfn = pfnOf(r.R8!);
  let next = setEntry(td, at, makeSeptEntry('NL_MAPPED', r.R8!));
  next = { ...next, sept: { ...next.sept, [pfn]: {} }, pamt: pamtSet(next.pamt, pfn, { type: PT_EPT, owner: td.tdr, bepoch: 0, tdxLevel: 0 }), childCount: next.childCount + 1 };
  return ok(next);
}

/** TDH.MEM.PAGE.AUG(RCX pi, RDX TDR, R8 page): FREE/REMOVED → PENDING (§5a.3). */
export function pageAug(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.PAGE.AUG', r.RCX!, locks);
  if (isResult(at)) return at;
  const e = entryLocked(td, at) ?? stateCheck(td, 'TDH.MEM.PAGE.AUG', at) ?? targetPageCheck(td, r.R8!, at.level, TDX_OPERAND_ID_R8, locks);
  if (e) return e;
  let next = setEntry(td, at, makeSeptEntry('PENDING', r.R8!));
  next = { ...next, pamt: pamtSet(next.pamt, pfnOf(r.R8!), { type: PT_REG, owner: td.tdr, bepoch: 0, tdxLevel: at.level }), childCount: next.childCount + pagesAt(at.level) };
  return ok(next);
}

/**
 * TDH.MEM.PAGE.ADD(RCX GPA, RDX TDR, R8 page, R9 source): build-time add, FREE → MAPPED, the source
 * page copied in with the TD's key and the GPA folded into MRTD (§5a.3). The copy is the MemRequest.
 */
export function pageAdd(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.PAGE.ADD', r.RCX!, locks);
  if (isResult(at)) return at;
  const e = entryLocked(td, at) ?? stateCheck(td, 'TDH.MEM.PAGE.ADD', at) ?? targetPageCheck(td, r.R8!, 0, TDX_OPERAND_ID_R8, locks);
  if (e) return e;
  if ((r.R9! & (PAGE_SIZE - 1n)) !== 0n) return fail(td, TDX_OPERAND_INVALID, TDX_OPERAND_ID_R9);
  let next = setEntry(td, at, makeSeptEntry('MAPPED', r.R8!));
  next = {
    ...next,
    pamt: pamtSet(next.pamt, pfnOf(r.R8!), { type: PT_REG, owner: td.tdr, bepoch: 0, tdxLevel: 0 }),
    childCount: next.childCount + 1,
    mrtd: extendMrtd(td.mrtd, `MEM.PAGE.ADD ${r.RCX!.toString(16)}`),
  };
  return ok(next, {}, { op: 'COPY', src: r.R9!, srcKeyid: 0, dst: r.R8!, dstKeyid: td.hkid, bytes: PAGE_SIZE });
}

/**
 * TDH.MR.EXTEND(RCX GPA of a 256-byte chunk, RDX TDR): the chunk is read with the TD key and hashed into
 * MRTD. Order as in the 1.5.01 module: op_state, chunk alignment, then a walk to whatever leaf maps the GPA.
 * A walk that ends on a non-leaf (FREE, REMOVED, NL_BLOCKED) is EPT_ENTRY_NOT_PRESENT|RCX with the entry;
 * a leaf that is not MAPPED is a bare EPT_ENTRY_NOT_PRESENT with RCX and RDX cleared.
 */
export function mrExtend(td: TdMemory, r: Gprs): SeamcallResult {
  if (!OP_STATES['TDH.MR.EXTEND']!.includes(td.opState) || td.septRoot === null) return fail(td, TDX_OP_STATE_INCORRECT);
  const chunk = BigInt(TDX_EXTENDMR_CHUNKSIZE);
  const gpa = r.RCX!;
  if ((gpa & (chunk - 1n)) !== 0n) return fail(td, TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX);
  if ((gpa & td.sharedMask) !== 0n || gpa >= td.sharedMask << 1n) return fail(td, TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX);
  const { path } = walkSept(td.sept, td.septRoot, td.topLevel, gpa & ~(PAGE_SIZE - 1n), 0);
  const slot = path.at(-1)!;
  if (!septIsLeaf(slot.state)) return fail(td, TDX_EPT_ENTRY_NOT_PRESENT, TDX_OPERAND_ID_RCX, slot);
  if (!septAllows('TDH.MR.EXTEND', slot.state)) return { td, regs: { RAX: TDX_EPT_ENTRY_NOT_PRESENT, RCX: 0n, RDX: 0n }, mem: null };
  const size = PAGE_SIZE << BigInt(9 * slot.tdxLevel);
  return ok(td, {}, { op: 'HASH', pa: septHpa(slot.entry) + (gpa & (size - 1n)), keyid: td.hkid, bytes: chunk });
}

/** TDH.MEM.RANGE.BLOCK(RCX pi, RDX TDR): RWX cleared, BEPOCH := TD epoch (§5a.3). */
export function rangeBlock(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.RANGE.BLOCK', r.RCX!, locks);
  if (isResult(at)) return at;
  const l = entryLocked(td, at);
  if (l) return l;
  if (BLOCKED_STATES.includes(at.slot.state)) return fail(td, TDX_GPA_RANGE_ALREADY_BLOCKED, TDX_OPERAND_ID_RCX, at.slot);
  const e = stateCheck(td, 'TDH.MEM.RANGE.BLOCK', at);
  if (e) return e;
  const to: SeptState = at.slot.state === 'NL_MAPPED' ? 'NL_BLOCKED' : at.slot.state === 'MAPPED' || at.slot.state === 'BLOCKEDW' ? 'BLOCKED' : 'PENDING_BLOCKED';
  const next = setEntry(td, at, withSeptState(at.slot.entry, to));
  const pfn = pfnOf(septHpa(at.slot.entry));
  const pe = pamtEntryOf(next.pamt, pfn);
  if (pe === undefined) throw new Error(`model bug: BLOCK of ${at.slot.state} entry whose page 0x${pfn.toString(16)} has no PAMT entry`);
  const base = Object.keys(next.pamt).map(Number).find((k) => next.pamt[k] === pe)!;
  return ok({ ...next, pamt: pamtSet(next.pamt, base, { ...pe, bepoch: td.epoch.tdEpoch }) });
}

/**
 * TDH.MEM.RANGE.UNBLOCK(RCX pi, RDX TDR): needs the block's epoch retired when vCPUs can run (§5a.3). Its
 * state table admits blocked entries only, so the one tracking refusal is an unretired epoch, which the
 * 1.5.01 handler blames on the tree (TDX_TLB_TRACKING_NOT_DONE | SEPT_TREE) without reporting the entry
 * [TM:src/vmm_dispatcher/api_calls/tdh_mem_range_unblock.c].
 */
export function rangeUnblock(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.RANGE.UNBLOCK', r.RCX!, locks);
  if (isResult(at)) return at;
  const e = entryLocked(td, at) ?? stateCheck(td, 'TDH.MEM.RANGE.UNBLOCK', at);
  if (e) return e;
  if (!blockTracking(td, at.slot).ok) return fail(td, TDX_TLB_TRACKING_NOT_DONE, TDX_OPERAND_ID_SEPT_TREE);
  const to: SeptState = at.slot.state === 'NL_BLOCKED' ? 'NL_MAPPED' : at.slot.state === 'BLOCKED' ? 'MAPPED' : 'PENDING';
  return ok(setEntry(td, at, withSeptState(at.slot.entry, to)));
}

/** TDH.MEM.PAGE.REMOVE(RCX pi, RDX TDR): leaf → FREE, page back to PT_NDA and returned in RCX (§5a.3). */
export function pageRemove(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.PAGE.REMOVE', r.RCX!, locks);
  if (isResult(at)) return at;
  const e = entryLocked(td, at) ?? stateCheck(td, 'TDH.MEM.PAGE.REMOVE', at) ?? trackingCheck(td, at);
  if (e) return e;
  const hpa = septHpa(at.slot.entry);
  const next = setEntry(td, at, SEPT_FREE_ENTRY);
  return ok({ ...next, pamt: pamtSet(next.pamt, pfnOf(hpa), null), childCount: next.childCount - pagesAt(at.level) }, { RCX: hpa, RDX: septLevelState(at.level, 'FREE') });
}

/** TDH.MEM.SEPT.REMOVE(RCX pi, RDX TDR): an S-EPT page whose 512 entries are all FREE goes back (§5a.3). */
export function septRemove(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.SEPT.REMOVE', r.RCX!, locks);
  if (isResult(at)) return at;
  const e = entryLocked(td, at) ?? stateCheck(td, 'TDH.MEM.SEPT.REMOVE', at) ?? trackingCheck(td, at);
  if (e) return e;
  const child = pfnOf(septHpa(at.slot.entry));
  if (Object.keys(td.sept[child] ?? {}).length > 0) return fail(td, TDX_EPT_PAGE_NOT_FREE, TDX_OPERAND_ID_RCX, at.slot);
  const next = setEntry(td, at, SEPT_FREE_ENTRY);
  const sept = { ...next.sept };
  delete sept[child];
  return ok({ ...next, sept, pamt: pamtSet(next.pamt, child, null), childCount: next.childCount - 1 }, { RCX: paOf(child) });
}

/**
 * TDH.MEM.TRACK's checks before it takes epoch_lock: the TD's op_state (§5a.4 step 1). Null when the call
 * may go on to the lock; the module's tdxModule.ts holds the lock across a step of its own (§7.2).
 */
export function trackRefused(td: TdMemory): SeamcallResult | null {
  return OP_STATES['TDH.MEM.TRACK']!.includes(td.opState) ? null : fail(td, TDX_OP_STATE_INCORRECT);
}

/** TDH.MEM.TRACK(RCX TDR): advance the TD epoch, or PREVIOUS_TLB_EPOCH_BUSY while vCPUs are still in the old one. */
export function memTrack(td: TdMemory): SeamcallResult {
  const refused = trackRefused(td);
  if (refused !== null) return refused;
  const epoch = trackEpoch(td.epoch);
  if (epoch === null) return fail(td, TDX_PREVIOUS_TLB_EPOCH_BUSY);
  return ok({ ...td, epoch });
}

/**
 * TDH.MEM.PAGE.DEMOTE(RCX pi, RDX TDR, R8 new S-EPT page): a 2M/1G leaf becomes NL_MAPPED over 512
 * entries one level down that carry the *unblocked* original state and consecutive HPAs; the PAMT entry
 * splits; no UNBLOCK is needed afterwards (§5a.3, §6.v).
 */
export function pageDemote(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.PAGE.DEMOTE', r.RCX!, locks);
  if (isResult(at)) return at;
  const e = entryLocked(td, at) ?? stateCheck(td, 'TDH.MEM.PAGE.DEMOTE', at) ?? trackingCheck(td, at) ?? targetPageCheck(td, r.R8!, 0, TDX_OPERAND_ID_R8, locks);
  if (e) return e;
  const childState: SeptState = at.slot.state === 'MAPPED' || at.slot.state === 'BLOCKED' ? 'MAPPED' : 'PENDING';
  const hpa = septHpa(at.slot.entry);
  const step = PAGE_SIZE << BigInt(9 * (at.level - 1));
  const page: Record<number, bigint> = {};
  for (let i = 0; i < 512; i++) page[i] = makeSeptEntry(childState, hpa + BigInt(i) * step);
  const newPfn = pfnOf(r.R8!);
  let next = setEntry(td, at, makeSeptEntry('NL_MAPPED', r.R8!));
  const big = pamtEntryOf(td.pamt, pfnOf(hpa))!;
  let pamt = pamtSet(next.pamt, pfnOf(hpa), null);
  const per = pagesAt(at.level - 1);
  for (let i = 0; i < 512; i++) pamt = pamtSet(pamt, pfnOf(hpa) + i * per, { ...big, tdxLevel: at.level - 1 });
  pamt = pamtSet(pamt, newPfn, { type: PT_EPT, owner: td.tdr, bepoch: 0, tdxLevel: 0 });
  next = { ...next, sept: { ...next.sept, [newPfn]: page }, pamt, childCount: next.childCount + 1 };
  return ok(next);
}

/**
 * TDH.MEM.PAGE.PROMOTE(RCX pi, RDX TDR): 512 children all MAPPED or all PENDING, consecutive HPAs from a
 * boundary of the large size, merge into one leaf; the child S-EPT page is freed and returned (§5a.3).
 */
export function pagePromote(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.PAGE.PROMOTE', r.RCX!, locks);
  if (isResult(at)) return at;
  const e = entryLocked(td, at) ?? stateCheck(td, 'TDH.MEM.PAGE.PROMOTE', at) ?? trackingCheck(td, at);
  if (e) return e;
  const child = pfnOf(septHpa(at.slot.entry));
  const entries = [...Array(512).keys()].map((i) => readEntry(td.sept, child, i));
  const first = entries[0]!;
  const firstState = septStateOf(first);
  const step = PAGE_SIZE << BigInt(9 * (at.level - 1));
  const size = PAGE_SIZE << BigInt(9 * at.level);
  const promotable =
    (firstState === 'MAPPED' || firstState === 'PENDING') &&
    (septHpa(first) & (size - 1n)) === 0n &&
    entries.every((x, i) => septStateOf(x) === firstState && septHpa(x) === septHpa(first) + BigInt(i) * step && (x & SEPT_TDEL) === 0n);
  if (!promotable) return fail(td, TDX_EPT_INVALID_PROMOTE_CONDITIONS, TDX_OPERAND_ID_RCX, at.slot);
  let next = setEntry(td, at, makeSeptEntry(firstState, septHpa(first)));
  const sept = { ...next.sept };
  delete sept[child];
  let pamt = next.pamt;
  const per = pagesAt(at.level - 1);
  const base = pfnOf(septHpa(first));
  const small = pamtEntryOf(pamt, base)!;
  for (let i = 0; i < 512; i++) pamt = pamtSet(pamt, base + i * per, null);
  pamt = pamtSet(pamtSet(pamt, base, { ...small, tdxLevel: at.level }), child, null);
  next = { ...next, sept, pamt, childCount: next.childCount - 1 };
  return ok(next, { RCX: paOf(child) });
}

/** The state a relocated entry ends in: the module unblocks it as it points it at the new page. */
const UNBLOCKED: Partial<Record<SeptState, SeptState>> = { BLOCKED: 'MAPPED', PENDING_BLOCKED: 'PENDING', MAPPED: 'MAPPED', PENDING: 'PENDING' };

/**
 * TDH.MEM.PAGE.RELOCATE(RCX pi of a 4K page, RDX TDR, R8 new page): the private page behind a leaf moves
 * to a new host page [TM:src/vmm_dispatcher/api_calls/tdh_mem_page_relocate.c, 1.5.01]. No KVM issues it;
 * the playground is its only caller. Order: op_state, level (4K only), tree lock shared, walk, entry lock,
 * a leaf in an allowed state, the new page differs from the old (else OPERAND_INVALID | R8), then in a
 * running TD the entry must be blocked (GPA_RANGE_NOT_BLOCKED | RCX with the entry) and its block tracked
 * (TLB_TRACKING_NOT_DONE | RCX, without the entry), then the new page locked and PT_NDA (R8).
 *
 * An accepted page's contents are copied with the TD's key, which is memory's work: the entry lock (and
 * the tree, TDR and both pages' PAMT entries, moduleLocks.ts) stay held until it is done, and only then
 * does the entry change (relocateComplete). A PENDING page has nothing to copy and moves at once. On
 * success RCX returns the old page, now PT_NDA again; the entry is left unblocked on the new page.
 */
export function pageRelocate(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.PAGE.RELOCATE', r.RCX!, locks);
  if (isResult(at)) return at;
  const e = entryLocked(td, at) ?? stateCheck(td, 'TDH.MEM.PAGE.RELOCATE', at);
  if (e) return e;
  const source = septHpa(at.slot.entry);
  if (source === r.R8!) return fail(td, TDX_OPERAND_INVALID, TDX_OPERAND_ID_R8);
  const t = trackingCheck(td, at);
  if (t) return t;
  const p = targetPageCheck(td, r.R8!, 0, TDX_OPERAND_ID_R8, locks);
  if (p) return p;
  if (at.slot.state === 'PENDING' || at.slot.state === 'PENDING_BLOCKED') return relocated(td, at, r.R8!);
  const locked = { ...td, sept: writeEntry(td.sept, at.slot.pagePfn, at.slot.index, at.slot.entry | SEPT_TDEL) };
  return { td: locked, regs: { RAX: TDX_SUCCESS, RCX: source }, mem: { op: 'COPY', src: source, srcKeyid: td.hkid, dst: r.R8!, dstKeyid: td.hkid, bytes: PAGE_SIZE } };
}

function relocated(td: TdMemory, at: Located, target: bigint): SeamcallResult {
  const source = septHpa(at.slot.entry);
  const next = setEntry(td, at, makeSeptEntry(UNBLOCKED[at.slot.state]!, target));
  const pamt = pamtSet(pamtSet(next.pamt, pfnOf(source), null), pfnOf(target), { type: PT_REG, owner: td.tdr, bepoch: 0, tdxLevel: 0 });
  return ok({ ...next, pamt }, { RCX: source, RDX: 0n });
}

/** After the copy: the entry points at the new page, unblocked, its lock released; the old page is free. */
export function relocateComplete(td: TdMemory, r: Gprs): SeamcallResult {
  const { path, reached } = walkSept(td.sept, td.septRoot!, td.topLevel, r.RCX! & ~7n, 0);
  const slot = path.at(-1)!;
  if (!reached || UNBLOCKED[slot.state] === undefined || (slot.entry & SEPT_TDEL) === 0n) {
    throw new Error(`model bug: RELOCATE completion finds ${slot.state} at level ${slot.tdxLevel} without its entry lock`);
  }
  return relocated(td, { gpa: r.RCX! & ~7n, level: 0, slot: { ...slot, entry: slot.entry & ~SEPT_TDEL } }, r.R8!);
}

/** TDH.MEM.SEPT.RD(RCX pi, RDX TDR): any state; RCX = entry, RDX = level/state (§5a.2) [TM:tdh_mem_sept_rd.c]. */
export function septRead(td: TdMemory, r: Gprs, locks: ModuleLocks = NO_LOCKS): SeamcallResult {
  const at = locate(td, 'TDH.MEM.SEPT.RD', r.RCX!, locks);
  if (isResult(at)) return at;
  // The read takes the entry lock too, so an entry a guest is accepting reads as busy.
  const l = entryLocked(td, at);
  if (l) return l;
  return ok(td, { RCX: septArchView(at.slot.entry), RDX: septLevelState(at.level, at.slot.state) });
}

/** The memory leaves by architectural name, for the module's dispatch and the legality test. */
export const MEM_SEAMCALLS: Readonly<Record<string, (td: TdMemory, r: Gprs, locks?: ModuleLocks) => SeamcallResult>> = {
  'TDH.MEM.PAGE.ADD': pageAdd,
  'TDH.MEM.SEPT.ADD': septAdd,
  'TDH.MEM.PAGE.AUG': pageAug,
  'TDH.MEM.RANGE.BLOCK': rangeBlock,
  'TDH.MEM.PAGE.DEMOTE': pageDemote,
  'TDH.MR.EXTEND': mrExtend,
  'TDH.MEM.PAGE.PROMOTE': pagePromote,
  'TDH.MEM.SEPT.RD': septRead,
  'TDH.MEM.PAGE.REMOVE': pageRemove,
  'TDH.MEM.SEPT.REMOVE': septRemove,
  'TDH.MEM.RANGE.UNBLOCK': rangeUnblock,
  'TDH.MEM.PAGE.RELOCATE': pageRelocate,
  'TDH.MEM.TRACK': (td) => memTrack(td),
};
