// Guest-physical addresses: the shared bit, GFNs, page-table indexes and the one place where a KVM
// pg_level becomes a TDX level and back (§0.2, §2).

import { PG_LEVEL_4K } from './kvmApi.ts';
import { hex } from './hex.ts';

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096n;

const PAGE_SHIFT_N = BigInt(PAGE_SHIFT);
// Each EPT table has 512 entries, so every level above 4K adds 9 address bits.
const PT_INDEX_BITS = 9n;

/** GPA width of a TD: 48 with 4-level EPT, 52 with 5-level EPT; KVM accepts nothing else (§2). */
export type Gpaw = 48 | 52;

function checkGpaw(gpaw: number): asserts gpaw is Gpaw {
  if (gpaw !== 48 && gpaw !== 52) throw new RangeError(`GPAW must be 48 or 52, got ${gpaw} (§2)`);
}

/** The top GPA bit (47 or 51) decides shared (set) vs private (clear) (§2). */
export function sharedBit(gpaw: Gpaw): bigint {
  checkGpaw(gpaw);
  return 1n << BigInt(gpaw - 1);
}

export function isSharedGpa(gpa: bigint, gpaw: Gpaw): boolean {
  return (gpa & sharedBit(gpaw)) !== 0n;
}

export function gpaToGfn(gpa: bigint): bigint {
  return gpa >> PAGE_SHIFT_N;
}

export function gfnToGpa(gfn: bigint): bigint {
  return gfn << PAGE_SHIFT_N;
}

/** KVM's `gfn_direct_bits`: the shared bit as a GFN bit (35 for GPAW 48, 39 for GPAW 52) (§2). */
export function gfnDirectBits(gpaw: Gpaw): bigint {
  return gpaToGfn(sharedBit(gpaw));
}

/** EPT paging levels the TD runs with: 4 for GPAW 48, 5 for GPAW 52 (§2). */
export function eptLevels(gpaw: Gpaw): 4 | 5 {
  checkGpaw(gpaw);
  return gpaw === 48 ? 4 : 5;
}

// Level conventions (§0.2): KVM pg_level 4K = 1, TDX (S-EPT) level 4K = 0 … PML5 = 4, and KVM
// converts with tdx_level = pg_level - 1 (`pg_level_to_tdx_sept_level`).
const MAX_TDX_LEVEL = 4;

/** KVM pg_level → TDX S-EPT level (pg − 1); pg levels 1..5 (4K … PML5). */
export function pgLevelToTdxLevel(pgLevel: number): number {
  if (!Number.isInteger(pgLevel) || pgLevel < PG_LEVEL_4K || pgLevel > MAX_TDX_LEVEL + 1) {
    throw new RangeError(`pgLevel ${pgLevel} outside 1..5 (§0.2)`);
  }
  return pgLevel - 1;
}

/** TDX S-EPT level → KVM pg_level (tdx + 1); TDX levels 0..4 (4K … PML5). */
export function tdxLevelToPgLevel(tdxLevel: number): number {
  if (!Number.isInteger(tdxLevel) || tdxLevel < 0 || tdxLevel > MAX_TDX_LEVEL) {
    throw new RangeError(`tdxLevel ${tdxLevel} outside 0..4 (§0.2)`);
  }
  return tdxLevel + 1;
}

// Guest ACCEPT page-size code in RCX bits 2:0 (§0.2) [L616:arch/x86/include/asm/shared/tdx.h];
// numerically a TDX level.
export const TDX_PS_4K = 0;
export const TDX_PS_2M = 1;
export const TDX_PS_1G = 2;

// page_info operand (§0.2): level in bits 2:0, bits 11:3 and 63:52 reserved (zero), GPA[51:12].
const PAGE_INFO_RESERVED_HIGH = ~((1n << 52n) - 1n);

/** The SEAMCALL/TDCALL "page info" operand, built as KVM does: `gpa | tdx_level` (§0.2). */
export function makePageInfo(gpa: bigint, tdxLevel: number): bigint {
  tdxLevelToPgLevel(tdxLevel);
  if (gpa < 0n) throw new RangeError(`page info GPA ${gpa} is negative`);
  if ((gpa & (PAGE_SIZE - 1n)) !== 0n || (gpa & PAGE_INFO_RESERVED_HIGH) !== 0n) {
    throw new RangeError(`page info GPA ${hex(gpa)} must be 4K-aligned and below 2^52 (§0.2)`);
  }
  return gpa | BigInt(tdxLevel);
}

/** Bytes one entry maps at a KVM pg_level: 4K, 2M, 1G (and 512G, 256T for the upper levels). */
export function pageSizeOfPgLevel(pgLevel: number): bigint {
  pgLevelToTdxLevel(pgLevel);
  return PAGE_SIZE << (PT_INDEX_BITS * BigInt(pgLevel - PG_LEVEL_4K));
}

/** 4K pages one entry maps at a KVM pg_level (1, 512, 512²…). */
export function pagesOfPgLevel(pgLevel: number): bigint {
  return pageSizeOfPgLevel(pgLevel) >> BigInt(PAGE_SHIFT);
}

/** The 9-bit index into the page table at `pgLevel` that the walk uses for `gpa`. */
export function pgLevelIndex(gpa: bigint, pgLevel: number): number {
  pgLevelToTdxLevel(pgLevel);
  const shift = PAGE_SHIFT_N + PT_INDEX_BITS * BigInt(pgLevel - PG_LEVEL_4K);
  return Number((gpa >> shift) & ((1n << PT_INDEX_BITS) - 1n));
}

/** Round down to a power-of-two `size` (a page or huge-page boundary). */
export function alignDown(v: bigint, size: bigint): bigint {
  if (size <= 0n || (size & (size - 1n)) !== 0n) throw new RangeError(`alignDown: size ${size} is not a power of two`);
  return v & ~(size - 1n);
}
