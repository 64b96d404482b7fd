// KVM's EPT SPTE format (v6.16), bit for bit: the hardware EPT bits, KVM's software bits, the MMIO and
// frozen encodings, and the constructors and predicates the TDP MMU uses (§3.1–§3.5, §3.7)
// [L616:arch/x86/kvm/mmu/spte.h, spte.c] [L616:arch/x86/include/asm/vmx.h].

import { hex, hex16, parseHex, U64_MASK } from './hex.ts';
import { PG_LEVEL_1G, PG_LEVEL_4K } from './kvmApi.ts';

const genmask = (hi: bigint, lo: bigint): bigint => ((1n << (hi - lo + 1n)) - 1n) << lo;
const SPTE_PAGE_SHIFT = 12n;

// Hardware EPT bits (§3.1).
export const VMX_EPT_READABLE_MASK = 0x1n;
export const VMX_EPT_WRITABLE_MASK = 0x2n;
export const VMX_EPT_EXECUTABLE_MASK = 0x4n;
export const VMX_EPT_RWX_MASK = VMX_EPT_READABLE_MASK | VMX_EPT_WRITABLE_MASK | VMX_EPT_EXECUTABLE_MASK;
// Leaf memory type, bits 5:3. TD leaves get WB without IPAT because TDX turns off the ignore-guest-PAT
// quirk; host MMIO pfns get UC (§3.3).
export const VMX_EPT_MT_EPTE_SHIFT = 3n;
export const VMX_EPT_MT_MASK = 0x7n << VMX_EPT_MT_EPTE_SHIFT;
export const MTRR_TYPE_UNCACHABLE = 0n;
export const MTRR_TYPE_WRBACK = 6n;
export const VMX_EPT_IPAT_BIT = 1n << 6n;
export const PT_PAGE_SIZE_MASK = 1n << 7n;
export const VMX_EPT_ACCESS_BIT = 1n << 8n;
export const VMX_EPT_DIRTY_BIT = 1n << 9n;
export const SPTE_BASE_ADDR_MASK = genmask(51n, 12n);
// With EPT-violation #VE enabled (the TDX module always enables it, §6.vii), a violation at an entry
// with this bit clear becomes a #VE in the guest instead of a VM exit (§1.2).
export const VMX_EPT_SUPPRESS_VE_BIT = 1n << 63n;

// KVM software bits (§3.2). is_shadow_present_pte tests only bit 11, so presence does not depend on
// RWX: the VMX MMIO SPTE has RWX = 110b yet is not present, and MMIO and frozen SPTEs never have it.
export const SPTE_MMU_PRESENT_MASK = 1n << 11n;
// A/D tracking type, bits 53:52.
export const SPTE_TDP_AD_SHIFT = 52n;
export const SPTE_TDP_AD_MASK = 0x3n << SPTE_TDP_AD_SHIFT;
export const SPTE_TDP_AD_ENABLED = 0n << SPTE_TDP_AD_SHIFT;
export const SPTE_TDP_AD_DISABLED = 1n << SPTE_TDP_AD_SHIFT;
export const SPTE_TDP_AD_WRPROT_ONLY = 2n << SPTE_TDP_AD_SHIFT;
// Access tracking parks the R and X bits of a tracked SPTE at bits 54 and 56.
export const SHADOW_ACC_TRACK_SAVED_BITS_MASK = VMX_EPT_READABLE_MASK | VMX_EPT_EXECUTABLE_MASK;
// KVM's own access bits (ACC_EXEC_MASK 1, ACC_WRITE_MASK 2, ACC_USER_MASK 4) [L616:arch/x86/kvm/mmu/spte.h];
// mark_mmio_spte traces `spte & ACC_ALL`.
export const ACC_ALL = 7n;
export const SHADOW_ACC_TRACK_SAVED_BITS_SHIFT = 54n;
export const SHADOW_ACC_TRACK_SAVED_MASK = SHADOW_ACC_TRACK_SAVED_BITS_MASK << SHADOW_ACC_TRACK_SAVED_BITS_SHIFT;
// High ignored bits, because the low ignored bits of an EPT entry are scarce.
export const EPT_SPTE_HOST_WRITABLE = 1n << 57n;
export const EPT_SPTE_MMU_WRITABLE = 1n << 58n;

// Masks kvm_mmu_set_ept_masks programs (§3.3). shadow_present_mask is SUPPRESS_VE alone: the model
// assumes EPT execute-only support (otherwise KVM adds R). Setting SVE in every present SPTE keeps
// W/X permission violations on shared memory as exits to KVM rather than #VEs.
const SHADOW_PRESENT_MASK = VMX_EPT_SUPPRESS_VE_BIT;
const SHADOW_USER_MASK = VMX_EPT_READABLE_MASK;
const SHADOW_X_MASK = VMX_EPT_EXECUTABLE_MASK;
const SHADOW_ACCESSED_MASK = VMX_EPT_ACCESS_BIT;
const SHADOW_DIRTY_MASK = VMX_EPT_DIRTY_BIT;

/** shadow_mmio_mask for EPT: an SPTE is MMIO iff (spte & this) equals the VM's MMIO value (§3.3). */
export const SHADOW_MMIO_MASK = VMX_EPT_RWX_MASK | VMX_EPT_SUPPRESS_VE_BIT;
/** MMIO value of a plain VMX guest: W|X without R is an EPT misconfiguration, so KVM gets exit 49 (§3.3, §6.i). */
export const VMX_EPT_MISCONFIG_WX_VALUE = VMX_EPT_WRITABLE_MASK | VMX_EPT_EXECUTABLE_MASK;
/** A TD's MMIO value: RWX = 000 and SVE = 0 make the access a convertible violation, i.e. a #VE (§3.3, §6.vii). */
export const TDX_SHADOW_MMIO_VALUE = 0n;

// Special values (§3.4). Every non-present SPTE is bit 63 so that a TD touching an unpopulated shared
// GPA exits to KVM instead of taking a #VE; AMD NPT and VMX without EPT-violation #VE ignore the bit.
export const SHADOW_NONPRESENT_VALUE = 1n << 63n;
// Keeping bit 63 means a frozen shared entry can neither raise a #VE nor match the TD MMIO value.
export const FROZEN_SPTE = SHADOW_NONPRESENT_VALUE | 0x5a0n;

// MMIO generation (§3.5): 19 bits of the memslot generation, split around the PFN field so an MMIO
// SPTE can carry both the GPA and the generation that validates its cached lookup.
export const MMIO_SPTE_GEN_LOW_START = 3n;
export const MMIO_SPTE_GEN_LOW_END = 10n;
export const MMIO_SPTE_GEN_HIGH_START = 52n;
export const MMIO_SPTE_GEN_HIGH_END = 62n;
export const MMIO_SPTE_GEN_LOW_BITS = MMIO_SPTE_GEN_LOW_END - MMIO_SPTE_GEN_LOW_START + 1n;
export const MMIO_SPTE_GEN_HIGH_BITS = MMIO_SPTE_GEN_HIGH_END - MMIO_SPTE_GEN_HIGH_START + 1n;
export const MMIO_SPTE_GEN_LOW_MASK = genmask(MMIO_SPTE_GEN_LOW_END, MMIO_SPTE_GEN_LOW_START);
export const MMIO_SPTE_GEN_HIGH_MASK = genmask(MMIO_SPTE_GEN_HIGH_END, MMIO_SPTE_GEN_HIGH_START);
/** The generation bits themselves (not SPTE positions): 19 bits. */
export const MMIO_SPTE_GEN_MASK = genmask(MMIO_SPTE_GEN_LOW_BITS + MMIO_SPTE_GEN_HIGH_BITS - 1n, 0n);
const MMIO_SPTE_GEN_LOW_SHIFT = MMIO_SPTE_GEN_LOW_START;
const MMIO_SPTE_GEN_HIGH_SHIFT = MMIO_SPTE_GEN_HIGH_START - MMIO_SPTE_GEN_LOW_BITS;
/** Bits an MMIO mask/value may use; the generation bits must stay outside it (§3.5). */
export const SPTE_MMIO_ALLOWED_MASK = (1n << 63n) | genmask(51n, 12n) | genmask(2n, 0n);

export function isShadowPresentPte(spte: bigint): boolean {
  return (spte & SPTE_MMU_PRESENT_MASK) !== 0n;
}

export function isFrozenSpte(spte: bigint): boolean {
  return spte === FROZEN_SPTE;
}

export function isLargePte(spte: bigint): boolean {
  return (spte & PT_PAGE_SIZE_MASK) !== 0n;
}

/** A 4K entry is always a leaf; above 4K only the page-size bit makes it one. */
export function isLastSpte(spte: bigint, pgLevel: number): boolean {
  return pgLevel === PG_LEVEL_4K || isLargePte(spte);
}

export function spteToPfn(spte: bigint): bigint {
  return (spte & SPTE_BASE_ADDR_MASK) >> SPTE_PAGE_SHIFT;
}

function checkMmioValue(mmioValue: bigint): void {
  if ((mmioValue & ~SHADOW_MMIO_MASK) !== 0n) {
    throw new RangeError(`MMIO value ${hex(mmioValue)} has bits outside the EPT MMIO mask ${hex16(SHADOW_MMIO_MASK)} (§3.3)`);
  }
}

/**
 * `is_mmio_spte`: the masked bits equal the VM's MMIO value (0x6 for VMX, 0 for a TD). MMIO caching is
 * taken as enabled, which TDX requires (§5b.2).
 */
export function isMmioSpte(spte: bigint, mmioValue: bigint): boolean {
  checkMmioValue(mmioValue);
  return (spte & SHADOW_MMIO_MASK) === mmioValue;
}

export function generationMmioSpteMask(gen: number): bigint {
  const g = BigInt(gen);
  if (!Number.isInteger(gen) || g < 0n || g > MMIO_SPTE_GEN_MASK) {
    throw new RangeError(`MMIO generation ${gen} does not fit in ${MMIO_SPTE_GEN_LOW_BITS + MMIO_SPTE_GEN_HIGH_BITS} bits (§3.5)`);
  }
  return ((g << MMIO_SPTE_GEN_LOW_SHIFT) & MMIO_SPTE_GEN_LOW_MASK) | ((g << MMIO_SPTE_GEN_HIGH_SHIFT) & MMIO_SPTE_GEN_HIGH_MASK);
}

export function getMmioSpteGeneration(spte: bigint): number {
  return Number(
    ((spte & MMIO_SPTE_GEN_LOW_MASK) >> MMIO_SPTE_GEN_LOW_SHIFT) | ((spte & MMIO_SPTE_GEN_HIGH_MASK) >> MMIO_SPTE_GEN_HIGH_SHIFT),
  );
}

function pfnBits(what: string, pfn: bigint): bigint {
  const addr = pfn << SPTE_PAGE_SHIFT;
  if (pfn < 0n || (addr & ~SPTE_BASE_ADDR_MASK) !== 0n) throw new RangeError(`${what} ${pfn < 0n ? String(pfn) : hex(pfn)} does not fit in SPTE bits 51:12`);
  return addr;
}

/**
 * `make_mmio_spte` (§3.4): MMIO value | generation | GPA. The MMIO access mask is 0 for EPT, and the
 * L1TF bits (shadow_nonpresent_or_rsvd_mask) are 0 because CPUs that support TDX are not affected by
 * L1TF; that last point is not in the reference document.
 */
export function makeMmioSpte({ gfn, generation, mmioValue }: { gfn: bigint; generation: number; mmioValue: bigint }): bigint {
  checkMmioValue(mmioValue);
  return mmioValue | generationMmioSpteMask(generation) | pfnBits('MMIO gfn', gfn);
}

/** `make_nonleaf_spte` (§3.7): child table PA with full RWX so that permissions are decided at the leaf. */
export function makeNonLeafSpte({ childPfn, adEnabled }: { childPfn: bigint; adEnabled: boolean }): bigint {
  return (
    SPTE_MMU_PRESENT_MASK |
    pfnBits('child pfn', childPfn) |
    SHADOW_PRESENT_MASK |
    VMX_EPT_WRITABLE_MASK |
    SHADOW_USER_MASK |
    SHADOW_X_MASK |
    (adEnabled ? SHADOW_ACCESSED_MASK : SPTE_TDP_AD_DISABLED)
  );
}

export interface MakeSpteArgs {
  pfn: bigint;
  /** KVM pg_level of the leaf: 4K, 2M or 1G. */
  pgLevel: number;
  writable: boolean;
  /** What vmx_get_mt_mask returns: memtype << VMX_EPT_MT_EPTE_SHIFT, optionally | VMX_EPT_IPAT_BIT. */
  memtypeBits: bigint;
  /** False for a prefetched SPTE. */
  accessed: boolean;
  adEnabled: boolean;
}

/**
 * `make_spte` for a TDP fault (§3.7): full guest access (R via the user mask, X), host-writable, and W
 * plus MMU-writable plus D when writable. With A/D disabled, A and D are never set (KVM's
 * spte_shadow_*_mask return 0 for such SPTEs).
 */
export function makeSpte({ pfn, pgLevel, writable, memtypeBits, accessed, adEnabled }: MakeSpteArgs): bigint {
  if (!Number.isInteger(pgLevel) || pgLevel < PG_LEVEL_4K || pgLevel > PG_LEVEL_1G) {
    throw new RangeError(`leaf pgLevel ${pgLevel} is not 4K, 2M or 1G (§0.2)`);
  }
  if ((memtypeBits & ~(VMX_EPT_MT_MASK | VMX_EPT_IPAT_BIT)) !== 0n) {
    throw new RangeError(`memtype bits ${hex(memtypeBits)} outside bits 6:3`);
  }
  let spte = SPTE_MMU_PRESENT_MASK | (adEnabled ? SPTE_TDP_AD_ENABLED : SPTE_TDP_AD_DISABLED) | SHADOW_PRESENT_MASK;
  if (accessed && adEnabled) spte |= SHADOW_ACCESSED_MASK;
  spte |= SHADOW_X_MASK | SHADOW_USER_MASK;
  if (pgLevel > PG_LEVEL_4K) spte |= PT_PAGE_SIZE_MASK;
  spte |= memtypeBits | EPT_SPTE_HOST_WRITABLE | pfnBits('pfn', pfn);
  if (writable) {
    spte |= VMX_EPT_WRITABLE_MASK | EPT_SPTE_MMU_WRITABLE;
    if (adEnabled) spte |= SHADOW_DIRTY_MASK;
  }
  return spte;
}

export type SpteKind = 'nonpresent' | 'frozen' | 'mmio' | 'leaf' | 'nonleaf' | 'other';

/**
 * An SPTE split into fields, for logs and the inspector. The bit fields are always read straight from
 * the bits; for kind 'mmio' bits 3–10 and 52–62 hold the generation, so memtype … mmuWritable are then
 * meaningless and mmioGen / mmioGpa are the fields to read. `otherBits` holds whatever no field covers
 * (bits 10, 54–56, 59–62 outside MMIO SPTEs), which makes the decoding lossless.
 */
export interface SpteFields {
  /** Display only; encodeSpteFields ignores it. */
  raw: string;
  kind: SpteKind;
  present: boolean;
  r: boolean;
  w: boolean;
  x: boolean;
  memtype: number;
  ipat: boolean;
  large: boolean;
  accessed: boolean;
  dirty: boolean;
  pfn: string;
  adType: number;
  hostWritable: boolean;
  mmuWritable: boolean;
  suppressVe: boolean;
  otherBits: string;
  mmioGen?: number;
  mmioGpa?: string;
}

const COMMON_FIELD_BITS = VMX_EPT_RWX_MASK | SPTE_MMU_PRESENT_MASK | SPTE_BASE_ADDR_MASK | VMX_EPT_SUPPRESS_VE_BIT;
const MMIO_FIELD_BITS = COMMON_FIELD_BITS | MMIO_SPTE_GEN_LOW_MASK | MMIO_SPTE_GEN_HIGH_MASK;
const PTE_FIELD_BITS =
  COMMON_FIELD_BITS |
  VMX_EPT_MT_MASK |
  VMX_EPT_IPAT_BIT |
  PT_PAGE_SIZE_MASK |
  VMX_EPT_ACCESS_BIT |
  VMX_EPT_DIRTY_BIT |
  SPTE_TDP_AD_MASK |
  EPT_SPTE_HOST_WRITABLE |
  EPT_SPTE_MMU_WRITABLE;

function spteKind(spte: bigint, opts: { mmioValue?: bigint; pgLevel?: number }): SpteKind {
  if (isFrozenSpte(spte)) return 'frozen';
  if (spte === SHADOW_NONPRESENT_VALUE) return 'nonpresent';
  if (opts.mmioValue !== undefined && isMmioSpte(spte, opts.mmioValue)) return 'mmio';
  if (!isShadowPresentPte(spte)) return 'other';
  if (isLargePte(spte)) return 'leaf';
  // A 4K leaf and a non-leaf entry differ only by level, which the kernel's is_last_spte needs too.
  if (opts.pgLevel === undefined) return 'other';
  return isLastSpte(spte, opts.pgLevel) ? 'leaf' : 'nonleaf';
}

/** Pass `mmioValue` (the VM's) to recognise MMIO SPTEs and `pgLevel` to tell 4K leaves from non-leaves. */
export function decodeSpte(spte: bigint, opts: { mmioValue?: bigint; pgLevel?: number } = {}): SpteFields {
  const raw = hex16(spte);
  const kind = spteKind(spte, opts);
  const has = (bit: bigint): boolean => (spte & bit) !== 0n;
  const fields: SpteFields = {
    raw,
    kind,
    present: has(SPTE_MMU_PRESENT_MASK),
    r: has(VMX_EPT_READABLE_MASK),
    w: has(VMX_EPT_WRITABLE_MASK),
    x: has(VMX_EPT_EXECUTABLE_MASK),
    memtype: Number((spte & VMX_EPT_MT_MASK) >> VMX_EPT_MT_EPTE_SHIFT),
    ipat: has(VMX_EPT_IPAT_BIT),
    large: has(PT_PAGE_SIZE_MASK),
    accessed: has(VMX_EPT_ACCESS_BIT),
    dirty: has(VMX_EPT_DIRTY_BIT),
    pfn: hex(spteToPfn(spte)),
    adType: Number((spte & SPTE_TDP_AD_MASK) >> SPTE_TDP_AD_SHIFT),
    hostWritable: has(EPT_SPTE_HOST_WRITABLE),
    mmuWritable: has(EPT_SPTE_MMU_WRITABLE),
    suppressVe: has(VMX_EPT_SUPPRESS_VE_BIT),
    otherBits: hex(spte & ~(kind === 'mmio' ? MMIO_FIELD_BITS : PTE_FIELD_BITS) & U64_MASK),
  };
  if (kind === 'mmio') {
    fields.mmioGen = getMmioSpteGeneration(spte);
    fields.mmioGpa = hex(spte & SPTE_BASE_ADDR_MASK);
  }
  return fields;
}

function smallField(what: string, v: number, max: number): bigint {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${what} ${v} outside 0..${max}`);
  return BigInt(v);
}

/** Inverse of decodeSpte: encodeSpteFields(decodeSpte(x, opts)) === x. */
export function encodeSpteFields(f: SpteFields): bigint {
  const bit = (on: boolean, mask: bigint): bigint => (on ? mask : 0n);
  let spte =
    parseHex(f.otherBits) |
    bit(f.r, VMX_EPT_READABLE_MASK) |
    bit(f.w, VMX_EPT_WRITABLE_MASK) |
    bit(f.x, VMX_EPT_EXECUTABLE_MASK) |
    bit(f.present, SPTE_MMU_PRESENT_MASK) |
    bit(f.suppressVe, VMX_EPT_SUPPRESS_VE_BIT);
  if (f.kind === 'mmio') {
    if (f.mmioGen === undefined || f.mmioGpa === undefined) throw new RangeError('an MMIO SPTE needs mmioGen and mmioGpa');
    const gpa = parseHex(f.mmioGpa);
    if ((gpa & ~SPTE_BASE_ADDR_MASK) !== 0n) throw new RangeError(`MMIO GPA ${f.mmioGpa} is not a page address below 2^52`);
    return spte | generationMmioSpteMask(f.mmioGen) | gpa;
  }
  spte |=
    (smallField('memtype', f.memtype, 7) << VMX_EPT_MT_EPTE_SHIFT) |
    bit(f.ipat, VMX_EPT_IPAT_BIT) |
    bit(f.large, PT_PAGE_SIZE_MASK) |
    bit(f.accessed, VMX_EPT_ACCESS_BIT) |
    bit(f.dirty, VMX_EPT_DIRTY_BIT) |
    pfnBits('pfn', parseHex(f.pfn)) |
    (smallField('adType', f.adType, 3) << SPTE_TDP_AD_SHIFT) |
    bit(f.hostWritable, EPT_SPTE_HOST_WRITABLE) |
    bit(f.mmuWritable, EPT_SPTE_MMU_WRITABLE);
  return spte;
}
