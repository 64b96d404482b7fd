import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decideWalk } from '../../machines/hw/eptWalk.ts';
import { SHADOW_NONPRESENT_VALUE, FROZEN_SPTE, makeMmioSpte, makeNonLeafSpte, VMX_EPT_MISCONFIG_WX_VALUE, TDX_SHADOW_MMIO_VALUE } from '../../src/arch/spte.ts';

const nonLeaf = (pgLevel: number) => ({ pgLevel, tablePfn: 1, index: 0, spte: makeNonLeafSpte({ childPfn: 0x181000n, adEnabled: true }) });
const leafStep = (spte: bigint) => ({ pgLevel: 1, tablePfn: 2, index: 0, spte });
const path = (leaf: bigint) => [nonLeaf(4), nonLeaf(3), nonLeaf(2), leafStep(leaf)];

describe('what the CPU makes of the entry where its EPT walk stops (§1.2, §6.vii, [S000], [S001])', () => {
  it('SHADOW_NONPRESENT_VALUE: an EPT violation that is not convertible, so a TD exits to KVM instead of taking a #VE', () => {
    const o = decideWalk(path(SHADOW_NONPRESENT_VALUE), 'read');
    expect(o).toMatchObject({ kind: 'violation', convertible: false, exitQualification: 0x181n });
  });

  it('a non-present entry of 0 (what KVM wrote before bit 63 joined the non-present value) would be convertible: a #VE the guest cannot handle', () => {
    expect(decideWalk(path(0n), 'read')).toMatchObject({ kind: 'violation', convertible: true });
  });

  it('the TD MMIO SPTE (value 0 | generation | GPA) is convertible: the #VE path', () => {
    const spte = makeMmioSpte({ gfn: 0x8000fe000n, generation: 1, mmioValue: TDX_SHADOW_MMIO_VALUE });
    expect(decideWalk(path(spte), 'write')).toMatchObject({ kind: 'violation', convertible: true, exitQualification: 0x182n });
  });

  it('the VMX MMIO SPTE (0x6: W|X without R) is an EPT misconfiguration', () => {
    const spte = makeMmioSpte({ gfn: 0xfe000n, generation: 2, mmioValue: VMX_EPT_MISCONFIG_WX_VALUE });
    expect(decideWalk(path(spte), 'read').kind).toBe('misconfig');
  });

  it('FROZEN_SPTE carries bit 63, so a transiently frozen shared entry never becomes a #VE', () => {
    expect(decideWalk(path(FROZEN_SPTE), 'read')).toMatchObject({ kind: 'violation', convertible: false });
  });

  it('a walk stopping at any level decides by that entry alone, and the qualification reports no permissions', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.boolean(), fc.constantFrom<'read' | 'write'>('read', 'write'), (stopLevel, sve, access) => {
        const steps = [4, 3, 2, 1].filter((l) => l > stopLevel).map(nonLeaf);
        const stop = { pgLevel: stopLevel, tablePfn: 9, index: 0, spte: sve ? SHADOW_NONPRESENT_VALUE : 0n };
        const o = decideWalk([...steps, stop], access);
        expect(o).toMatchObject({ kind: 'violation', convertible: !sve, at: stop });
        if (o.kind === 'violation') expect(o.exitQualification & 0x38n).toBe(0n);
      }),
    );
  });
});
