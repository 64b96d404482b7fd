/**
 * The bits of one Secure-EPT entry as the TDX module keeps it (§3.6), and the conversion between an entry
 * and its S-EPT state (§5a.1). The module owns these entries; KVM never sees them except as the
 * "architectural" view a failed SEAMCALL returns in RCX (§5a.4).
 */
import { SEPT_STATE_ENCODING, SEPT_STATE_PUBLIC, SEPT_STATES, type SeptState } from './sept.ts';
import { VMX_EPT_RWX_MASK, VMX_EPT_SUPPRESS_VE_BIT, VMX_EPT_IPAT_BIT, PT_PAGE_SIZE_MASK, VMX_EPT_DIRTY_BIT, VMX_EPT_MT_EPTE_SHIFT, MTRR_TYPE_WRBACK, SPTE_BASE_ADDR_MASK } from './spte.ts';

/** Bits 5:3 of a leaf: memory type WB (110b), always for S-EPT leaves (§3.6). */
export const SEPT_MT_WB = MTRR_TYPE_WRBACK << VMX_EPT_MT_EPTE_SHIFT;
/** Bit 11: TDEL, the entry's host/guest try-lock (§3.6, §7.2). Outside the state encoding. */
export const SEPT_TDEL = 1n << 11n;
/** Bit 52: TDHP, host priority, set by a host SEAMCALL that failed to take TDEL (§7.3). */
export const SEPT_TDHP = 1n << 52n;
export const SEPT_TDEX = 1n << 53n;
export const SEPT_TDBW = 1n << 54n;
/** Bit 55: blocked. */
export const SEPT_TDB = 1n << 55n;
/** Bit 56: pending (AUGed, not yet accepted). */
export const SEPT_TDP = 1n << 56n;
/** Bit 63: suppress #VE, written as 1 in every S-EPT entry (§3.6, §6.vii). */
export const SEPT_SVE = VMX_EPT_SUPPRESS_VE_BIT;
export const SEPT_HPA_MASK = SPTE_BASE_ADDR_MASK;

/**
 * Where each bit of the 7-bit state encoding lives in the entry: {bit0 D(9), bit1 TDEX(53), bit2 TDBW(54),
 * bit3 TDB(55), bit4 TDP(56), bit5 IPAT(6), bit6 PS(7)} (§5a.1).
 */
const ENCODING_BITS: readonly bigint[] = [VMX_EPT_DIRTY_BIT, SEPT_TDEX, SEPT_TDBW, SEPT_TDB, SEPT_TDP, VMX_EPT_IPAT_BIT, PT_PAGE_SIZE_MASK];
const STATE_BITS_MASK = ENCODING_BITS.reduce((m, b) => m | b, 0n);

/** The entry bits that carry state `s`. */
export function septStateBits(s: SeptState): bigint {
  const enc = SEPT_STATE_ENCODING[s];
  return ENCODING_BITS.reduce((bits, b, i) => ((enc >> i) & 1 ? bits | b : bits), 0n);
}

const STATE_BY_ENCODING = new Map<number, SeptState>(SEPT_STATES.map((s) => [SEPT_STATE_ENCODING[s], s]));

/** Decode an entry's state; an encoding that is no state is a model bug, never a guess. */
export function septStateOf(entry: bigint): SeptState {
  let enc = 0;
  ENCODING_BITS.forEach((b, i) => {
    if (entry & b) enc |= 1 << i;
  });
  const s = STATE_BY_ENCODING.get(enc);
  if (s === undefined) throw new RangeError(`S-EPT entry 0x${entry.toString(16)} has state encoding 0x${enc.toString(16)}, which is no state (§5a.1)`);
  return s;
}

/** A fresh S-EPT page holds FREE | SVE in all 512 entries (§3.6). */
export const SEPT_FREE_ENTRY = SEPT_SVE | septStateBits('FREE');

/** States whose entry the CPU may walk through or use: RWX = 111 (§5a.1 hardware view). */
function presentRwx(s: SeptState): boolean {
  return s === 'NL_MAPPED' || s === 'MAPPED';
}

/**
 * Build the entry the module writes for state `s` pointing at `hpa`: SVE always; leaves carry WB memtype
 * (IPAT and PS are part of the state); RWX = 111 only for NL_MAPPED and MAPPED, 000 while pending or
 * blocked (§3.6, §5a.1, §5a.3).
 */
export function makeSeptEntry(s: SeptState, hpa = 0n): bigint {
  if (s === 'FREE') return SEPT_FREE_ENTRY;
  const leaf = (SEPT_STATE_ENCODING[s] & 0x40) !== 0;
  let e = SEPT_SVE | septStateBits(s) | (hpa & SEPT_HPA_MASK);
  if (leaf) e |= SEPT_MT_WB;
  if (presentRwx(s)) e |= VMX_EPT_RWX_MASK;
  return e;
}

export function septHpa(entry: bigint): bigint {
  return entry & SEPT_HPA_MASK;
}

/**
 * The entry as a failed SEAMCALL reports it in RCX: without the module's software bits (lock, host
 * priority, state flags), so a FREE entry reads as just the SVE bit (§5a.4). Which software bits the
 * module masks is not spelled out in docs/tdx-semantics.md beyond the FREE case; the model masks bits 11 and
 * 52–56.
 */
export function septArchView(entry: bigint): bigint {
  return entry & ~(SEPT_TDEL | SEPT_TDHP | SEPT_TDEX | SEPT_TDBW | SEPT_TDB | SEPT_TDP);
}

/** RDX on S-EPT errors: level in bits 2:0, public state in bits 15:8 (§5a.1, §5a.4). */
export function septLevelState(tdxLevel: number, s: SeptState): bigint {
  return BigInt(tdxLevel) | (BigInt(SEPT_STATE_PUBLIC[s]) << 8n);
}

/** Replace the state bits of an entry, keeping HPA, lock and host-priority bits (sept_update_state). */
export function withSeptState(entry: bigint, s: SeptState): bigint {
  return makeSeptEntry(s, s === 'FREE' ? 0n : entry & SEPT_HPA_MASK) | (entry & (SEPT_TDEL | SEPT_TDHP));
}

export { STATE_BITS_MASK as SEPT_STATE_BITS_MASK };
