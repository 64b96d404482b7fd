import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  EPT_SPTE_HOST_WRITABLE,
  EPT_SPTE_MMU_WRITABLE,
  FROZEN_SPTE,
  MMIO_SPTE_GEN_HIGH_MASK,
  MMIO_SPTE_GEN_LOW_MASK,
  MMIO_SPTE_GEN_MASK,
  MTRR_TYPE_UNCACHABLE,
  MTRR_TYPE_WRBACK,
  SHADOW_ACC_TRACK_SAVED_MASK,
  SHADOW_MMIO_MASK,
  SHADOW_NONPRESENT_VALUE,
  SPTE_MMIO_ALLOWED_MASK,
  SPTE_MMU_PRESENT_MASK,
  SPTE_TDP_AD_MASK,
  TDX_SHADOW_MMIO_VALUE,
  VMX_EPT_IPAT_BIT,
  VMX_EPT_MISCONFIG_WX_VALUE,
  VMX_EPT_MT_EPTE_SHIFT,
  VMX_EPT_RWX_MASK,
  VMX_EPT_SUPPRESS_VE_BIT,
  decodeSpte,
  encodeSpteFields,
  getMmioSpteGeneration,
  isFrozenSpte,
  isMmioSpte,
  isShadowPresentPte,
  makeMmioSpte,
  makeNonLeafSpte,
  makeSpte,
  spteToPfn,
} from '../../src/arch/spte.ts';
import { PG_LEVEL_1G, PG_LEVEL_2M, PG_LEVEL_4K } from '../../src/arch/kvmApi.ts';

const gen = fc.integer({ min: 0, max: Number(MMIO_SPTE_GEN_MASK) });
const pfn40 = fc.bigInt({ min: 0n, max: (1n << 40n) - 1n });
const pgLevel = fc.constantFrom(PG_LEVEL_4K, PG_LEVEL_2M, PG_LEVEL_1G);
const memtypeBits = fc.constantFrom(
  MTRR_TYPE_WRBACK << VMX_EPT_MT_EPTE_SHIFT,
  (MTRR_TYPE_WRBACK << VMX_EPT_MT_EPTE_SHIFT) | VMX_EPT_IPAT_BIT,
  MTRR_TYPE_UNCACHABLE << VMX_EPT_MT_EPTE_SHIFT,
);
const mmioValue = fc.constantFrom(TDX_SHADOW_MMIO_VALUE, VMX_EPT_MISCONFIG_WX_VALUE);

describe('SPTE layout invariants (the static_asserts of spte.h, §3.2–§3.5)', () => {
  it('keeps the A/D type, saved access bits and host/MMU-writable bits apart', () => {
    const masks = [SPTE_TDP_AD_MASK, SHADOW_ACC_TRACK_SAVED_MASK, EPT_SPTE_HOST_WRITABLE, EPT_SPTE_MMU_WRITABLE];
    for (const [i, a] of masks.entries()) {
      for (const b of masks.slice(i + 1)) expect(a & b).toBe(0n);
    }
  });

  it('keeps the MMIO generation out of the MMIO-allowed bits and out of MMU-present', () => {
    const genBits = MMIO_SPTE_GEN_LOW_MASK | MMIO_SPTE_GEN_HIGH_MASK;
    expect(genBits & SPTE_MMIO_ALLOWED_MASK).toBe(0n);
    expect(genBits & SPTE_MMU_PRESENT_MASK).toBe(0n);
    expect(SHADOW_MMIO_MASK & ~SPTE_MMIO_ALLOWED_MASK).toBe(0n);
  });

  it('FROZEN_SPTE is 0x80000000000005a0, never MMU-present, never a TD or VMX MMIO SPTE', () => {
    expect(FROZEN_SPTE).toBe(0x80000000000005a0n);
    expect(isShadowPresentPte(FROZEN_SPTE)).toBe(false);
    expect(isFrozenSpte(FROZEN_SPTE)).toBe(true);
    expect(SHADOW_MMIO_MASK).toBe(VMX_EPT_RWX_MASK | (1n << 63n));
    expect(isMmioSpte(FROZEN_SPTE, TDX_SHADOW_MMIO_VALUE)).toBe(false);
    expect(isMmioSpte(FROZEN_SPTE, VMX_EPT_MISCONFIG_WX_VALUE)).toBe(false);
  });

  it('SHADOW_NONPRESENT_VALUE is bit 63 only, not present and not a TD MMIO SPTE', () => {
    expect(SHADOW_NONPRESENT_VALUE).toBe(0x8000000000000000n);
    expect(isShadowPresentPte(SHADOW_NONPRESENT_VALUE)).toBe(false);
    expect(isMmioSpte(SHADOW_NONPRESENT_VALUE, TDX_SHADOW_MMIO_VALUE)).toBe(false);
  });
});

describe('MMIO SPTEs (§3.4, §6.i, §6.vii)', () => {
  it('a TD MMIO SPTE has SVE clear and RWX = 000, so the access becomes a #VE', () => {
    const spte = makeMmioSpte({ gfn: 0xfeb00n, generation: 0x7ffff, mmioValue: TDX_SHADOW_MMIO_VALUE });
    expect(spte & VMX_EPT_SUPPRESS_VE_BIT).toBe(0n);
    expect(spte & VMX_EPT_RWX_MASK).toBe(0n);
    expect(isShadowPresentPte(spte)).toBe(false);
    expect(spteToPfn(spte)).toBe(0xfeb00n);
  });

  it('a VMX MMIO SPTE has RWX = 110b, the EPT-misconfiguration pattern', () => {
    const spte = makeMmioSpte({ gfn: 0xfeb00n, generation: 5, mmioValue: VMX_EPT_MISCONFIG_WX_VALUE });
    expect(spte & VMX_EPT_RWX_MASK).toBe(0b110n);
    expect(spte & VMX_EPT_SUPPRESS_VE_BIT).toBe(0n);
  });

  it('rejects a generation wider than 19 bits and a GFN beyond bit 51 of the GPA', () => {
    expect(() => makeMmioSpte({ gfn: 1n, generation: 1 << 19, mmioValue: 0n })).toThrow(RangeError);
    expect(() => makeMmioSpte({ gfn: 1n << 40n, generation: 0, mmioValue: 0n })).toThrow(RangeError);
  });

  it('round-trips any generation and GFN, and is recognised as MMIO by its own VM', () => {
    fc.assert(
      fc.property(gen, pfn40, mmioValue, (generation, gfn, value) => {
        const spte = makeMmioSpte({ gfn, generation, mmioValue: value });
        expect(getMmioSpteGeneration(spte)).toBe(generation);
        expect(spteToPfn(spte)).toBe(gfn);
        expect(isMmioSpte(spte, value)).toBe(true);
        expect(isShadowPresentPte(spte)).toBe(false);
      }),
    );
  });
});

describe('SPTE construction (§3.7)', () => {
  it('a writable 4K WB leaf carries MMU-present, SVE, RWX, A, D, host- and MMU-writable', () => {
    const spte = makeSpte({
      pfn: 0x1234n,
      pgLevel: PG_LEVEL_4K,
      writable: true,
      memtypeBits: MTRR_TYPE_WRBACK << VMX_EPT_MT_EPTE_SHIFT,
      accessed: true,
      adEnabled: true,
    });
    expect(spte).toBe(0x8600000001234b37n);
  });

  it('a non-leaf SPTE has full RWX, SVE and A', () => {
    expect(makeNonLeafSpte({ childPfn: 0x42n, adEnabled: true })).toBe(0x8000000000042907n);
  });
});

describe('decodeSpte / encodeSpteFields', () => {
  it('round-trips leaves built by makeSpte', () => {
    fc.assert(
      fc.property(pfn40, pgLevel, fc.boolean(), memtypeBits, fc.boolean(), fc.boolean(), (pfn, level, writable, mt, accessed, ad) => {
        const spte = makeSpte({ pfn, pgLevel: level, writable, memtypeBits: mt, accessed, adEnabled: ad });
        const fields = decodeSpte(spte, { pgLevel: level, mmioValue: TDX_SHADOW_MMIO_VALUE });
        expect(fields.kind).toBe('leaf');
        expect(fields.otherBits).toBe('0x0');
        expect(fields.w).toBe(writable);
        expect(BigInt(fields.pfn)).toBe(pfn);
        expect(encodeSpteFields(fields)).toBe(spte);
      }),
    );
  });

  it('round-trips non-leaves built by makeNonLeafSpte', () => {
    fc.assert(
      fc.property(pfn40, fc.constantFrom(PG_LEVEL_2M, PG_LEVEL_1G), fc.boolean(), (childPfn, level, ad) => {
        const spte = makeNonLeafSpte({ childPfn, adEnabled: ad });
        const fields = decodeSpte(spte, { pgLevel: level, mmioValue: TDX_SHADOW_MMIO_VALUE });
        expect(fields.kind).toBe('nonleaf');
        expect(fields.otherBits).toBe('0x0');
        expect(encodeSpteFields(fields)).toBe(spte);
      }),
    );
  });

  it('round-trips MMIO SPTEs built by makeMmioSpte', () => {
    fc.assert(
      fc.property(gen, pfn40, mmioValue, (generation, gfn, value) => {
        const spte = makeMmioSpte({ gfn, generation, mmioValue: value });
        const fields = decodeSpte(spte, { mmioValue: value });
        expect(fields.kind).toBe('mmio');
        expect(fields.mmioGen).toBe(generation);
        expect(BigInt(fields.mmioGpa ?? '')).toBe(gfn << 12n);
        expect(encodeSpteFields(fields)).toBe(spte);
      }),
    );
  });

  it('round-trips any 64-bit value, whatever its kind', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), mmioValue, pgLevel, (spte, value, level) => {
        expect(encodeSpteFields(decodeSpte(spte, { mmioValue: value, pgLevel: level }))).toBe(spte);
      }),
    );
  });

  it('names the special values', () => {
    expect(decodeSpte(FROZEN_SPTE, { mmioValue: 0n }).kind).toBe('frozen');
    expect(decodeSpte(SHADOW_NONPRESENT_VALUE, { mmioValue: 0n }).kind).toBe('nonpresent');
    // Without the level a present 4K leaf cannot be told from a non-leaf entry.
    expect(decodeSpte(makeNonLeafSpte({ childPfn: 1n, adEnabled: true })).kind).toBe('other');
  });
});
