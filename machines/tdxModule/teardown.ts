/**
 * The TDX module's side of TD teardown (§5b.1, §5b.4): vCPU association and its flush, the lifecycle
 * steps KEYS_CONFIGURED → BLOCKED (TDH.MNG.VPFLUSHDONE) → TEARDOWN (TDH.MNG.KEY.FREEID), the cache
 * write-back that must come between them (TDH.PHYMEM.CACHE.WB), and TDH.PHYMEM.PAGE.RECLAIM, which gives
 * a TD's pages back to the host only once the TD is in TEARDOWN — the TDR last, when it owns nothing else.
 *
 * Which lifecycle state a call arrives in is the statechart's business (tdxModule.ts); these functions
 * make the checks inside one state, in the module's order [TM:src/vmm_dispatcher/api_calls/tdh_vp_flush.c,
 * tdh_mng_vpflushdone.c, tdh_phymem_cache_wb.c, tdh_mng_key_freeid.c, tdh_phymem_page_reclaim.c].
 */
import type { Gprs } from '../../src/protocol/messages.ts';
import {
  TDX_SUCCESS,
  TDX_OPERAND_INVALID,
  TDX_OPERAND_ID_RCX,
  TDX_PAGE_METADATA_INCORRECT,
  TDX_VCPU_NOT_ASSOCIATED,
  TDX_FLUSHVP_NOT_DONE,
  TDX_WBCACHE_NOT_COMPLETE,
  TDX_NO_HKID_READY_TO_WBCACHE,
  TDX_WBCACHE_RESUME_ERROR,
  TDX_LIFECYCLE_STATE_INCORRECT,
  TDX_TD_ASSOCIATED_PAGES_EXIST,
  PT_TDR,
  tdxStatusWithOperand,
} from '../../src/arch/tdxStatus.ts';
import { PAGE_SIZE, PAGE_SHIFT } from '../../src/arch/gpa.ts';
import { pamtEntryOf, pamtSet } from './pamt.ts';
import type { TdMemory } from './tdMemory.ts';

/** TDH.PHYMEM.CACHE.WB's command in RCX: start a write-back, or resume an interrupted one. */
export const TDH_PHYMEM_CACHEWB_START_CMD = 0n;
export const TDH_PHYMEM_CACHEWB_RESUME_CMD = 1n;

/**
 * The KOT entry of the TD's HKID: ASSIGNED while the TD uses it; FLUSHED once VPFLUSHDONE guaranteed no
 * vCPU can load a TLB entry with it, with one write-back still owed per package (`wbinvdPending`; the
 * model has one package); FREE after TDH.MNG.KEY.FREEID.
 */
export interface KeyOwner {
  state: 'ASSIGNED' | 'FLUSHED' | 'FREE';
  wbinvdPending: boolean;
}

export interface TeardownResult<T> {
  /** What changed, or null if the call was refused. */
  next: T | null;
  regs: Gprs;
}

/**
 * The logical processor a SEAMCALL runs on. A vCPU thread runs on its vCPU's CPU (hw.cpuN, LP N); the
 * VMM's thread, which issues the VM-scope ioctls, on a CPU that runs no vCPU (-1 here).
 */
export function callerLp(from: string): number {
  const m = /^kvm\.vcpu(\d+)$/.exec(from);
  return m === null ? -1 : Number(m[1]);
}

/** TDH.VP.FLUSH: only on the LP the vCPU is associated with; that LP forgets it (§7.7). */
export function vpFlush(assocLp: number | null, lp: number): TeardownResult<{ assocLp: null }> {
  if (assocLp !== lp) return { next: null, regs: { RAX: TDX_VCPU_NOT_ASSOCIATED } };
  return { next: { assocLp: null }, regs: { RAX: TDX_SUCCESS } };
}

/**
 * TDH.MNG.VPFLUSHDONE: refused while any vCPU of an initialised TD is still associated with an LP;
 * otherwise the HKID's KOT entry is FLUSHED and owes a write-back on every package.
 */
export function vpFlushDone(associatedVcpus: number, tdcsComplete: boolean, opState: TdMemory['opState']): TeardownResult<KeyOwner> {
  if (tdcsComplete && opState !== 'UNINITIALIZED' && associatedVcpus !== 0) return { next: null, regs: { RAX: TDX_FLUSHVP_NOT_DONE } };
  return { next: { state: 'FLUSHED', wbinvdPending: true }, regs: { RAX: TDX_SUCCESS } };
}

/** TDH.PHYMEM.CACHE.WB (not per TD): writes back the caches for every FLUSHED HKID. */
export function cacheWb(kot: KeyOwner, cmd: bigint): TeardownResult<KeyOwner> {
  if (cmd > TDH_PHYMEM_CACHEWB_RESUME_CMD) return { next: null, regs: { RAX: tdxStatusWithOperand(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX) } };
  // The model's write-back is never interrupted, so there is never a session to resume.
  if (cmd === TDH_PHYMEM_CACHEWB_RESUME_CMD) return { next: null, regs: { RAX: TDX_WBCACHE_RESUME_ERROR } };
  if (kot.state !== 'FLUSHED') return { next: null, regs: { RAX: TDX_NO_HKID_READY_TO_WBCACHE } };
  return { next: { ...kot, wbinvdPending: false }, regs: { RAX: TDX_SUCCESS } };
}

/** TDH.MNG.KEY.FREEID (lifecycle BLOCKED): only after the write-back; then the HKID is free. */
export function keyFreeid(kot: KeyOwner): TeardownResult<KeyOwner> {
  if (kot.wbinvdPending) return { next: null, regs: { RAX: TDX_WBCACHE_NOT_COMPLETE } };
  return { next: { state: 'FREE', wbinvdPending: false }, regs: { RAX: TDX_SUCCESS } };
}

/**
 * TDH.PHYMEM.PAGE.RECLAIM: RCX must be an aligned PA without KeyID bits and a page the PAMT says the
 * module owns; RCX/RDX/R8 then report its type, owner and size even if the call goes on to fail. A TD
 * page other than the TDR needs the TD in TEARDOWN and lowers the TDR's child count; the TDR needs TEARDOWN
 * and a child count of 0. The page becomes PT_NDA: the host may use it again (after clearing it).
 */
export function reclaim(td: TdMemory, pa: bigint, hkidShift: number, inTeardown: boolean): TeardownResult<TdMemory> {
  if ((pa & (PAGE_SIZE - 1n)) !== 0n || pa >> BigInt(hkidShift) !== 0n) {
    return { next: null, regs: { RAX: tdxStatusWithOperand(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX), RCX: 0n, RDX: 0n, R8: 0n } };
  }
  const pfn = Number(pa >> BigInt(PAGE_SHIFT));
  const e = pamtEntryOf(td.pamt, pfn);
  if (e === undefined) return { next: null, regs: { RAX: tdxStatusWithOperand(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_RCX), RCX: 0n, RDX: 0n, R8: 0n } };
  const out = { RCX: BigInt(e.type), RDX: e.owner, R8: BigInt(e.tdxLevel) };
  // A large page is reclaimed through its first 4K frame only.
  if (pfn % 512 ** e.tdxLevel !== 0) return { next: null, regs: { RAX: tdxStatusWithOperand(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX), ...out } };
  if (!inTeardown) return { next: null, regs: { RAX: TDX_LIFECYCLE_STATE_INCORRECT, ...out } };
  if (e.type === PT_TDR) {
    if (td.childCount !== 0) return { next: null, regs: { RAX: TDX_TD_ASSOCIATED_PAGES_EXIST, ...out } };
    return { next: { ...td, pamt: pamtSet(td.pamt, pfn, null) }, regs: { RAX: TDX_SUCCESS, ...out } };
  }
  return { next: { ...td, pamt: pamtSet(td.pamt, pfn, null), childCount: td.childCount - 512 ** e.tdxLevel }, regs: { RAX: TDX_SUCCESS, ...out } };
}
