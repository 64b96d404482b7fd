/**
 * Named policy switches: the kernel and module variants a user can pick to ask "what if this were
 * different". Each is defined once here — name, type, default (upstream behaviour unless it says
 * otherwise), what it changes and where the reference describes it — and read by the actors through the
 * scenario's `policies` section. `tdxsim policies` prints this table.
 */
import { z } from 'zod';

export interface PolicySpec {
  default: boolean;
  /** What the switch changes, in a sentence a kernel developer can check against the code. */
  effect: string;
  /** Behaviour with the switch the other way. */
  otherwise: string;
  /** Where tdx-semantics.md describes it. */
  section: string;
}

export const POLICIES = {
  privateHugePages: {
    default: false,
    effect:
      'KVM maps private memory at 2M when the 2M range is inside one guest_memfd memslot, all private, and not guest-inhibited (the TDX huge-page series: TDH.MEM.PAGE.AUG at level 1)',
    otherwise: 'upstream: tdx_gmem_max_mapping_level caps private mappings at 4K',
    section: '§6.iii, §6.v',
  },
  splitOnAcceptLevel: {
    default: true,
    effect:
      'with private huge pages: an EPT-violation exit of type ACCEPT carrying a lower level makes KVM split the huge leaf under write mmu_lock (BLOCK → TRACK + kick → DEMOTE) and set the one-way guest-inhibit flag before the fault path (tdx_check_accept_level)',
    otherwise: 'the fault path finds the 2M leaf already there, re-enters, and the guest\'s ACCEPT exits again, forever',
    section: '§6.iii steps 3–6',
  },
  freezeMirrorSpte: {
    default: true,
    effect:
      'the fault path makes a mirror SPTE present only as cmpxchg to FROZEN_SPTE → TDH.MEM.SEPT.ADD / PAGE.AUG → final value, or the old value back on BUSY (set_external_spte_present); another vCPU meeting the frozen SPTE retries',
    otherwise: 'the cmpxchg writes the final value before the SEAMCALL: another vCPU can walk into a mirror page table whose S-EPT page is not added yet and issue a SEAMCALL for the level below (TDX_EPT_WALK_FAILED, KVM_BUG_ON)',
    section: '§7.6',
  },
  zapBusyKickRetry: {
    default: true,
    effect:
      'a BLOCK, TRACK, REMOVE or DEMOTE under write mmu_lock that returns TDX_OPERAND_BUSY is retried once after forcing every vCPU out of guest mode (tdh_do_no_vcpus: KVM_REQ_OUTSIDE_GUEST_MODE and wait); only a second BUSY is a KVM bug',
    otherwise: 'the first BUSY is a KVM_BUG_ON, as before tdh_do_no_vcpus: a guest holding the entry lock in TDG.MEM.PAGE.ACCEPT, or a vCPU in TDH.VP.ENTER, kills the VM',
    section: '§7.3',
  },
} as const satisfies Record<string, PolicySpec>;

export type PolicyName = keyof typeof POLICIES;
export type Policies = { [K in PolicyName]: boolean };

export const DEFAULT_POLICIES: Policies = Object.fromEntries(Object.entries(POLICIES).map(([k, p]) => [k, p.default])) as Policies;

/** The scenario's `policies` section: every switch optional, defaults from the table. */
export const policiesSchema = z
  .strictObject(Object.fromEntries(Object.entries(POLICIES).map(([k, p]) => [k, z.boolean().default(p.default)])) as { [K in PolicyName]: z.ZodDefault<z.ZodBoolean> })
  .default(DEFAULT_POLICIES);
