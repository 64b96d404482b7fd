/**
 * What the CPU concludes from an EPT walk (§1.2, SDM §25.5.6.1 and §28.2.3.1). Pure: the page-table
 * contents come from the walk result sent by the table's owner.
 */
import type { WalkStep } from '../../src/protocol/messages.ts';
import { VMX_EPT_RWX_MASK, VMX_EPT_READABLE_MASK, VMX_EPT_WRITABLE_MASK, VMX_EPT_SUPPRESS_VE_BIT, PT_PAGE_SIZE_MASK } from '../../src/arch/spte.ts';
import { EPT_VIOLATION_ACC_READ, EPT_VIOLATION_ACC_WRITE, EPT_VIOLATION_GVA_IS_VALID, EPT_VIOLATION_GVA_TRANSLATED } from '../../src/arch/vmx.ts';

export type WalkOutcome =
  /** `cached`: the translation came from the TLB (tlb.ts), not from this walk. */
  | { kind: 'translated'; leaf: WalkStep; cached?: true }
  /** `convertible`: the deciding entry has suppress-#VE clear, so with EPT-violation #VE enabled it may become a #VE. */
  | { kind: 'violation'; convertible: boolean; exitQualification: bigint; at: WalkStep }
  | { kind: 'misconfig'; at: WalkStep };

/** Bits 2:0 = 010b or 110b: write without read, an EPT misconfiguration (§1.2). */
function isMisconfigured(rwx: bigint): boolean {
  return rwx === 0b010n || rwx === 0b110n;
}

export function decideWalk(path: readonly WalkStep[], access: 'read' | 'write'): WalkOutcome {
  // Exit-qualification bits 3–5 are the AND of R/W/X along the walk (§4.10).
  let perms = VMX_EPT_RWX_MASK;
  const accBit = BigInt(access === 'read' ? EPT_VIOLATION_ACC_READ : EPT_VIOLATION_ACC_WRITE);
  const linear = BigInt(EPT_VIOLATION_GVA_IS_VALID | EPT_VIOLATION_GVA_TRANSLATED);
  for (const step of path) {
    const rwx = step.spte & VMX_EPT_RWX_MASK;
    if (rwx === 0n) {
      // Only the entry where the walk stopped decides suppress-#VE (§1.2).
      return { kind: 'violation', convertible: (step.spte & VMX_EPT_SUPPRESS_VE_BIT) === 0n, exitQualification: accBit | linear, at: step };
    }
    if (isMisconfigured(rwx)) return { kind: 'misconfig', at: step };
    perms &= rwx;
    const leaf = step.pgLevel === 1 || (step.spte & PT_PAGE_SIZE_MASK) !== 0n;
    if (!leaf) continue;
    const need = access === 'read' ? VMX_EPT_READABLE_MASK : VMX_EPT_WRITABLE_MASK;
    if ((perms & need) !== 0n) return { kind: 'translated', leaf: step };
    return { kind: 'violation', convertible: (step.spte & VMX_EPT_SUPPRESS_VE_BIT) === 0n, exitQualification: accBit | linear | (perms << 3n), at: step };
  }
  throw new Error(`EPT walk result ends at a present non-leaf entry (level ${path.at(-1)?.pgLevel}): the owner must walk to a leaf or a non-present entry`);
}
