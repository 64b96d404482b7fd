/**
 * Named policy switches: the kernel and module variants a user can pick to ask "what if this were
 * different". Each is defined once here — name, type, default (upstream behaviour unless it says
 * otherwise), what it changes and where the reference describes it — and read by the actors through the
 * scenario's `policies` section. `tdxsim policies` prints this table.
 */
import { z } from 'zod';
import { STEPPING_EPF_THRESHOLD, EPF_GPA_LIST_SIZE } from './arch/tdxStatus.ts';

/**
 * One policy switch: default, range (thresholds), effect, the other behaviour, and its § in docs/tdx-
 * semantics.md.
 */
export interface PolicySpec {
  /** A switch (on/off) or, for a threshold, a number within `range`. */
  default: boolean | number;
  range?: readonly [number, number];
  /** What the switch changes, in a sentence a kernel developer can check against the code. */
  effect: string;
  /** Behaviour with the switch the other way. */
  otherwise: string;
  /** Where docs/tdx-semantics.md describes it (its § sections). */
  section: string;
}

/**
 * The policy switches (kernel and TDX-module variants, `tdxsim policies`): default, what they do, what the
 * other setting does, and where the domain reference describes it.
 */
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
    otherwise: 'the fault path finds the 2M leaf already there, re-enters, and the guest\'s ACCEPT exits again, forever (an ACCEPT\'s exit is not counted by the module\'s zero-step mitigation, so nothing stops the loop)',
    section: '§6.iii steps 3–6',
  },
  globalGuestInhibit: {
    default: true,
    effect:
      'with splitOnAcceptLevel: the guest-inhibit flag goes into the memslot\'s lpage_info (KVM_LPAGE_GUEST_INHIBIT_FLAG), one-way, so every vCPU\'s later fault in the range maps 4K (kvm_mmu_hugepage_adjust reads it under mmu_lock)',
    otherwise:
      'the accept level is kept by the vCPU that took the exit (in the spirit of RFC v1\'s per-vCPU violation_request_level): another vCPU whose fault in the range was already under way, or comes later, maps 2M over the split page table (TDH.MEM.PAGE.AUG at 2M on an NL_MAPPED entry, KVM_BUG_ON)',
    section: '§6.iii steps 3 and 7',
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
  kickAfterTrack: {
    default: true,
    effect:
      'tdx_track: after TDH.MEM.TRACK, kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE) waits until every vCPU has left guest mode, so no vCPU is still in the epoch of the block when REMOVE or DEMOTE comes',
    otherwise:
      'TRACK alone: a vCPU that entered before it may still be running in the old epoch, and the module refuses REMOVE/DEMOTE with TDX_TLB_TRACKING_NOT_DONE (a KVM_BUG_ON; remove-after-track names it)',
    section: '§7.4',
  },
  localRetry: {
    default: true,
    effect:
      'an EPT violation on a private GPA whose fault ends in RET_PF_RETRY (TDX_OPERAND_BUSY from SEPT.ADD/AUG, a frozen SPTE, a lost cmpxchg, a stale fault) is retried inside tdx_handle_ept_violation without re-entering the guest, unless a signal is pending',
    otherwise:
      'before the local retry: KVM re-enters the guest, which faults again at the same RIP; each fruitless entry whose fault is a hardware EPT violation (a load or store, not an ACCEPT\'s TDCALL exit) counts towards the TDX module\'s zero-step threshold, after which that vCPU\'s every TDH.VP.ENTER takes the S-EPT tree lock exclusively (other vCPUs\' SEPT.ADD/AUG/BLOCK see TDX_OPERAND_BUSY | SEPT_TREE) and is refused while a recorded GPA is unmapped',
    section: '§7.3, §7.5',
  },
  busyLeavesFastpath: {
    default: true,
    effect:
      'TDX_OPERAND_BUSY from TDH.VP.ENTER (SEPT_TREE from a zero-step filter, TD_EPOCH from a TRACK) counts as a handled exit: the vCPU thread leaves the fastpath, enables interrupts so a pending KVM_REQ_OUTSIDE_GUEST_MODE IPI is acknowledged, and only then enters again (tdx_exit_handlers_fastpath)',
    otherwise:
      'BUSY re-enters the TD from the fastpath with interrupts still off (EXIT_FASTPATH_REENTER_GUEST with no exit-request check): a vCPU kicked while its entry was under way calls TDH.VP.ENTER again before the requester\'s IPI is handled, so the kick after a TRACK waits on a vCPU that is back in the guest (kick-completes names it); tdh_do_no_vcpus\'s kick is not delayed, as wait_for_sept_zap makes tdx_vcpu_run return without entering',
    section: '§5c.1 step 5, §7.3, §7.4',
  },
  staleFaultCheck: {
    default: true,
    effect:
      'a fault snapshots mmu_invalidate_seq before it reads the GFN\'s attribute and backing, and under mmu_lock gives up with RET_PF_RETRY if an invalidation (an attribute change\'s zap) ran since (is_page_fault_stale)',
    otherwise:
      'the fault maps what it read before the invalidation: a private fault racing a conversion to shared installs a private page in a GFN that is now shared (and the page the zap just removed)',
    section: '§6.ii A.5, §6.iv',
  },
  zeroStepThreshold: {
    default: STEPPING_EPF_THRESHOLD,
    range: [1, EPF_GPA_LIST_SIZE],
    effect:
      'fruitless TDH.VP.ENTERs at one guest RIP (each ending in an EPT violation on a private GPA) before the TDX module records the faulting GPAs and filters later entries under the exclusive S-EPT tree lock (STEPPING_EPF_THRESHOLD)',
    otherwise: 'a lower value shows the mitigation within a short schedule; in the module it is a build constant, not a setting',
    section: '§4.14, §7.5',
  },
} as const satisfies Record<string, PolicySpec>;

/** The name of a policy switch. */
export type PolicyName = keyof typeof POLICIES;
export type Policies = { [K in PolicyName]: (typeof POLICIES)[K]['default'] extends boolean ? boolean : number };
/** Per-run overrides (`--policy name=value`) on top of the scenario's. */
export type PolicyOverrides = Partial<Policies>;

export const DEFAULT_POLICIES: Policies = Object.fromEntries(Object.entries(POLICIES).map(([k, p]) => [k, p.default])) as Policies;

/** An editor shows the description on hover (the scenario's JSON Schema carries it). */
function policySchema(p: PolicySpec): z.ZodDefault<z.ZodBoolean> | z.ZodDefault<z.ZodNumber> {
  const description = typeof p.default === 'boolean' ? `on: ${p.effect}. Off: ${p.otherwise} (${p.section})` : `${p.effect}. ${p.otherwise} (${p.section})`;
  if (typeof p.default === 'boolean') return z.boolean().default(p.default).describe(description);
  const [min, max] = p.range!;
  return z.number().int().min(min).max(max).default(p.default).describe(description);
}

/** The scenario's `policies` section: every switch optional, defaults from the table. */
export const policiesSchema = z
  .strictObject(Object.fromEntries(Object.entries(POLICIES).map(([k, p]) => [k, policySchema(p)])) as { [K in PolicyName]: Policies[K] extends boolean ? z.ZodDefault<z.ZodBoolean> : z.ZodDefault<z.ZodNumber> })
  .default(DEFAULT_POLICIES);
