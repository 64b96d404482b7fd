/**
 * A TD's shared-EPT SPTEs keep suppress-#VE unless they are MMIO SPTEs (§6.vii, §3.3–§3.4). The TDX
 * module turns EPT-violation #VE on in every TD VMCS, for the shared EPT as well, so the CPU converts an
 * EPT violation into a #VE in the guest whenever the entry that decides it has bit 63 clear (§1.2). KVM
 * wants exactly that for MMIO — its TD MMIO SPTE is 0 | generation | GPA, so the guest's #VE handler asks for
 * emulation — and nowhere else: a non-present entry with bit 63 clear makes every access to a shared GPA
 * KVM has not mapped a #VE that KVM never sees, so it never maps the page and the guest takes RAM for MMIO.
 * Hence SHADOW_NONPRESENT_VALUE = bit 63, the pre-fill of new page-table pages and what zaps write ([S001]).
 *
 * Checked where a value enters or is read from the direct root: each SPTE KVM writes there (a cmpxchg or a
 * write under mmu_lock), the fill of each page-table page it links there, and the entry a CPU's walk of the
 * shared EPT stopped at — the one whose bit 63 decides (§1.2), which also covers the root page, filled
 * before anything the model delivers. An MMIO SPTE is one at the 4K level whose RWX and bit 63 are clear
 * and whose address bits are the GPA it maps (§3.4–§3.5). VMX guests run without EPT-violation #VE and are
 * not checked.
 */
import { VMX_EPT_SUPPRESS_VE_BIT, SPTE_BASE_ADDR_MASK, SHADOW_MMIO_MASK, TDX_SHADOW_MMIO_VALUE, MMIO_SPTE_GEN_LOW_MASK, MMIO_SPTE_GEN_HIGH_MASK, isShadowPresentPte, isLargePte } from '../../arch/spte.ts';
import { PG_LEVEL_4K } from '../../arch/kvmApi.ts';
import { gfnToGpa, pageSizeOfPgLevel } from '../../arch/gpa.ts';
import { hex } from '../../arch/hex.ts';
import type { TdpMmuContext } from '../../../machines/kvm/tdpMmu.ts';
import type { Message, WalkStep } from '../../protocol/messages.ts';
import { contextOf, type DeliveryView, type Invariant } from './invariant.ts';

/** make_mmio_spte for a TD, for the GPA the entry maps: MMIO value 0, a generation, that GPA, nothing else. */
export function isTdMmioSpteFor(spte: bigint, gpa: bigint, pgLevel: number): boolean {
  if (pgLevel !== PG_LEVEL_4K || (spte & SHADOW_MMIO_MASK) !== TDX_SHADOW_MMIO_VALUE) return false;
  if ((spte & SPTE_BASE_ADDR_MASK) !== (gpa & SPTE_BASE_ADDR_MASK)) return false;
  return (spte & ~(SPTE_BASE_ADDR_MASK | MMIO_SPTE_GEN_LOW_MASK | MMIO_SPTE_GEN_HIGH_MASK)) === 0n;
}

const sveClear = (spte: bigint) => (spte & VMX_EPT_SUPPRESS_VE_BIT) === 0n;

/** Why `spte`, at `level` for `gpa` in the shared EPT, breaks the rule; null if it keeps it. */
function problem(spte: bigint, gpa: bigint, pgLevel: number): string | null {
  if (!sveClear(spte) || isTdMmioSpteFor(spte, gpa, pgLevel)) return null;
  const kind = isShadowPresentPte(spte) ? (pgLevel === PG_LEVEL_4K || isLargePte(spte) ? 'a present leaf' : 'a present non-leaf entry') : 'non-present';
  return `${hex(spte)} (${kind}, level ${pgLevel}) has suppress-#VE clear but is not an MMIO SPTE`;
}

function walkProblem(m: Message): string | null {
  const w = m.payload as { ept: string; gpa: bigint; path: WalkStep[] };
  if (w.ept !== 'shared') return null;
  const end = w.path.at(-1)!;
  const p = problem(end.spte, w.gpa & ~(pageSizeOfPgLevel(end.pgLevel) - 1n), end.pgLevel);
  if (p === null) return null;
  return `${m.to}'s walk of the shared EPT for GPA ${hex(w.gpa)} stopped at ${hex(BigInt(end.tablePfn))}[${end.index}] = ${p}: the access is a #VE in the guest, which KVM never sees`;
}

function writeProblem(m: Message, mmu: TdpMmuContext): string | null {
  const w = m.payload as { root: string; gfn: bigint; pgLevel: number; tablePfn: number; index: number; newSpte: bigint; childPfn: number | null };
  if (w.root !== 'direct') return null;
  const p = problem(w.newSpte, gfnToGpa(w.gfn) & ~(pageSizeOfPgLevel(w.pgLevel) - 1n), w.pgLevel);
  if (p !== null) return `${m.from} writes ${hex(BigInt(w.tablePfn))}[${w.index}] of the shared EPT = ${p}`;
  if (w.childPfn !== null && sveClear(mmu.directFill)) {
    return `${m.from} links page ${hex(BigInt(w.childPfn))} into the shared EPT with every entry ${hex(mmu.directFill)}: non-present, suppress-#VE clear, not MMIO SPTEs`;
  }
  return null;
}

/** The check at a delivery to a CPU, from interned states: only a walk's result is looked at. */
function fast(v: DeliveryView): string | null {
  const m = v.delivered;
  if (m.name !== 'EPT_WALK_RESULT') return null;
  const mmu = v.model.indexOf.get('kvm.mmu');
  if (mmu === undefined || (v.snapshot(mmu).context as TdpMmuContext).vmType !== 'tdx') return null;
  return walkProblem(m);
}

export const sharedSpteSuppressVe: Invariant = {
  name: 'shared-spte-suppress-ve',
  description:
    "a TD's shared-EPT SPTE whose suppress-#VE bit is clear is an MMIO SPTE: none is written, none fills a linked page table, no CPU walk stops at one (a #VE KVM never sees)",
  check(model, _before, after, m) {
    if (m.name === 'EPT_WALK_RESULT') {
      if (contextOf<TdpMmuContext>(model, after, 'kvm.mmu').vmType !== 'tdx') return null;
      return walkProblem(m);
    }
    if (m.to === 'kvm.mmu' && (m.name === 'SPTE_CMPXCHG' || m.name === 'SPTE_WRITE')) {
      const mmu = contextOf<TdpMmuContext>(model, after, 'kvm.mmu');
      return mmu.vmType === 'tdx' ? writeProblem(m, mmu) : null;
    }
    return null;
  },
  // A walk's result reaches a CPU, whose verdict reads kvm.mmu's VM type; an SPTE write reaches kvm.mmu and
  // reads its own state; every other delivery is null.
  footprint: { on: (a) => a.startsWith('hw.cpu'), reads: (a) => a === 'kvm.mmu', fast },
};
