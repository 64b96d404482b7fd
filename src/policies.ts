/**
 * Named policy switches: the kernel and module variants a user can pick to ask "what if this were
 * different". Each is defined once here — name, type, default (upstream behaviour unless it says
 * otherwise), what it changes and where the reference describes it — and read by the actors through the
 * scenario's `policies` section. `tdxsim policies` prints this table.
 */
import { z } from 'zod';
import { STEPPING_EPF_THRESHOLD, EPF_GPA_LIST_SIZE } from './arch/tdxStatus.ts';
import { KVM_HALT_POLL_NS_DEFAULT } from './arch/kvmApi.ts';

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
  /**
   * For a switch whose other setting is an earlier KVM: the upstream patch, thread or commit that
   * behaved that way and the one that changed it (facts in the project's words, not quotations).
   */
  history?: string;
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
      'a BLOCK, TRACK, REMOVE or DEMOTE under write mmu_lock that returns TDX_OPERAND_BUSY is retried once after forcing every vCPU out of guest mode and keeping it out (wait_for_sept_zap, KVM_REQ_OUTSIDE_GUEST_MODE and wait: tdx_no_vcpus_enter_start/stop in v6.16, the tdh_do_no_vcpus macro in [KX]); only a second BUSY is a KVM bug',
    otherwise:
      'the blind retries that came before any kick (TDX MMU part 2, Nov 2024): TRACK is issued again while it returns BUSY; REMOVE (and the split\'s DEMOTE) again while it returns BUSY with operand SEPT_TREE; BLOCK up to 16 more times on BUSY|SEPT_TREE, then a KVM_BUG_ON; a BUSY with any other operand — the S-EPT entry lock a guest TDG.MEM.PAGE.ACCEPT holds, TDX_OPERAND_BUSY|RCX — is a KVM_BUG_ON at once',
    section: '§7.3, §9',
    history:
      'TDX MMU part 2 v2 (Nov 2024) carried "[HACK] KVM: TDX: Retry seamcall when TDX_OPERAND_BUSY with operand SEPT": the SEAMCALL wrappers repeated a call up to 16 times while it returned BUSY|SEPT and left other BUSYs to their callers; KVM looped on REMOVE\'s SEPT BUSY and on any BUSY of TRACK, and turned BLOCK\'s SEPT BUSY into -EAGAIN, which the TDP MMU\'s remove path takes as a KVM_BUG_ON. Yan Zhao\'s "KVM: TDX: Kick off vCPUs when SEAMCALL is busy during TD page removal" (patch 4/7 of "KVM: TDX SEPT SEAMCALL retry", Jan 2025, suggested by Sean Christopherson) replaced those loops with one retry after tdx_no_vcpus_enter_start(), which v6.16 has; [KX] folds it into tdh_do_no_vcpus',
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
  splitChecksBlock: {
    default: true,
    effect:
      'with privateHugePages and splitOnAcceptLevel: the split goes on to TDH.MEM.TRACK and TDH.MEM.PAGE.DEMOTE only once TDH.MEM.RANGE.BLOCK has blocked the huge leaf; a BLOCK that returns TDX_OPERAND_BUSY goes through the kick and retry of zapBusyKickRetry like any other zap SEAMCALL',
    otherwise:
      'nobody looks at BLOCK\'s status: the split issues TRACK and DEMOTE whatever BLOCK returned, so a BLOCK that met TDX_OPERAND_BUSY (a guest TDG.MEM.PAGE.ACCEPT holding the 2M entry lock, a zero-step TDH.VP.ENTER holding the S-EPT tree) leaves the leaf unblocked and the module refuses DEMOTE with TDX_GPA_RANGE_NOT_BLOCKED (remove-after-track names the call, no-failure the KVM_BUG_ON that follows)',
    section: '§6.iii step 4, §6.v',
    history:
      'the 2022 intel/tdx large-page code: its BLOCK hook (tdx_sept_zap_private_spte) returned void, so the TDP MMU split went on to the remote TLB flush and to tdx_sept_split_private_spte\'s DEMOTE whatever BLOCK had returned (a failed BLOCK only tripped a KVM_BUG_ON inside the hook, which the model does not take, to show the DEMOTE it leads to); v6 of that series (Xiaoyao Li, Isaku Yamahata, "KVM: x86/tdp_mmu, TDX: Split a large page when 4KB page within it converted to shared", Nov 2023) returned -EAGAIN for a BUSY BLOCK and demoted only after a successful one, and Yan Zhao\'s huge-page RFC v1 (Apr 2025) onwards kicks the vCPUs and retries BLOCK before TRACK and DEMOTE',
  },
  memoryFaultExit: {
    default: true,
    effect:
      'a fault whose private/shared access does not match the GFN\'s attribute (or a private fault outside guest_memfd) exits to userspace with KVM_EXIT_MEMORY_FAULT (gpa, size 4K, KVM_MEMORY_EXIT_FLAG_PRIVATE for a private access), and the VMM converts the page as QEMU does',
    otherwise:
      'the fault ends RET_PF_RETRY and KVM re-enters the guest (there was no local retry then), which faults again at the same RIP until some other vCPU converts the GFN; a guest that touches the private alias of a page it made shared loops for good, and the TDX module\'s zero-step count climbs (ept-violation-progress)',
    section: '§6.ii A.4, §6.iv',
    history:
      'RFC v5 of the TDX series ("KVM: x86/tdp_mmu: prevent private/shared map based on PRIVATE_PROHIBIT", Isaku Yamahata, Mar 2022) kept the side a GFN may be mapped on in an SPTE software bit, MapGPA being handled in the kernel, and answered a disallowed mapping with RET_PF_RETRY so that the vCPU would loop in the fault until another vCPU changed it; with guest_memfd, "KVM: x86/mmu: Handle page fault for private memory" (8dd2eee9d526, v6.8) turns the mismatch into KVM_EXIT_MEMORY_FAULT for userspace to resolve (implicit conversion)',
  },
  unexpectedPendingCheck: {
    default: true,
    effect:
      'tdx_is_sept_violation_unexpected_pending: an EPT-violation exit on a private GPA with EEQ type PENDING_EPT_VIOLATION and no PROT bits — the guest touched a page it never accepted, with SEPT_VE_DISABLE set — marks the VM dead and KVM_RUN returns -EIO',
    otherwise:
      'the exit goes down the ordinary fault path: the mirror leaf is already there, so the fault is spurious (RET_PF_SPURIOUS), KVM re-enters, and the guest takes the same exit again, for good: the TDX module counts these exits for zero-step (ept-violation-progress), and past its threshold its stepping filter refuses every entry while the page is PENDING (non-progress finds the loop)',
    section: '§6.ii B.3, §5a.6, §9',
    history:
      'Yan Zhao\'s "KVM: TDX: Detect unexpected SEPT violations due to pending SPTEs" was new in the first posting of TDX "the rest" (v2 posted by Binbin Wu, Feb 2025) and is in v6.16; the TDX patches before it had no test for the exit type, and the EPT-violation handler treated the exit as a write fault like any other. v6.16 also requires bit 6 of the exit qualification clear, [KX] only the type and the PROT bits (§9)',
  },
  sharedSuppressVe: {
    default: true,
    effect:
      'the shared EPT\'s (direct root\'s) non-present SPTEs hold SHADOW_NONPRESENT_VALUE (bit 63, suppress-#VE): a new page-table page is filled with it and a zap writes it, so a guest access to a shared GPA KVM has not mapped is an EPT-violation exit that KVM handles',
    otherwise:
      'the value before TDX: a non-present SPTE is 0 (a frozen one 0x5a0, REMOVED_SPTE), suppress-#VE clear. The CPU converts an access to an unmapped shared GPA into a #VE, the guest\'s handler takes it for MMIO (TDG.VP.VMCALL<#VE.RequestMMIO>), and KVM never maps the page (shared-spte-suppress-ve names the entry the walk stopped at). The model never freezes a direct-root SPTE (it has no read-lock zap of that root), so only non-present and freshly linked entries change',
    section: '§3.4, §6.vii, §9',
    history:
      '"KVM: x86/mmu: Allow non-zero value for non-present SPTE and removed SPTE" (v14 032/113, Sean Christopherson, posted by Isaku Yamahata, May 2023, [S001]; mainline 7f01cab84928) made bit 63 the non-present value for every VM; before it mainline KVM wrote 0, and the 2021–2022 TDX patches used a per-VM shadow_init_value that was the suppress-#VE bit only for TDX ([S000])',
  },
  snapshotBeforeAttributes: {
    default: true,
    effect:
      'kvm_mmu_faultin_pfn snapshots mmu_invalidate_seq first, then reads the GFN\'s attribute and backing and decides a private/shared mismatch, in a later step: every attribute change after the snapshot is seen by is_page_fault_stale, and no exit to userspace is decided on an attribute older than the snapshot',
    otherwise:
      'the attribute is read first and the sequence snapshotted in a later step: a conversion that completes in between is invisible, so the fault exits with KVM_EXIT_MEMORY_FAULT for an access that matches the attribute by then (no-spurious-memory-fault), or maps a page on the side the attribute just left',
    section: '§6.ii A.4–A.5, §6.iv',
    history:
      '"KVM: x86/mmu: Handle page fault for private memory" (8dd2eee9d526, v6.8) set fault->is_private from the attributes in kvm_mmu_do_page_fault, before kvm_faultin_pfn\'s snapshot, and compared it with a second read made after it; Isaku Yamahata\'s RFC "KVM: x86: Introduce fault type to indicate kvm page fault is private" (v2, Jun 2023) pointed out that another thread can change the attributes between the two reads. Sean Christopherson\'s "KVM: x86/mmu: Use synthetic page fault error code to indicate private faults" (b3d5dc629c32) and "Move private vs. shared check above slot validity checks" (44f42ef37deb), both v6.10, leave a single attribute read, after the snapshot. A TD\'s access is private or shared by its GPA, so the model moves the one read',
  },
  trackBeforeRemove: {
    default: true,
    effect:
      'the remove hook runs tdx_track between TDH.MEM.RANGE.BLOCK and TDH.MEM.PAGE.REMOVE (TRACK, then the kick of kickAfterTrack), so the block is tracked when REMOVE comes',
    otherwise:
      'REMOVE follows BLOCK at once: nothing has advanced the TD epoch since the block, so in a running TD the module refuses REMOVE with TDX_TLB_TRACKING_NOT_DONE in every schedule (remove-after-track names it, no-failure the KVM_BUG_ON); unlike kickAfterTrack off, not even TRACK is issued. The split path keeps its TRACK (it came later)',
    section: '§7.4, §6.iv step 4',
    history:
      'v9 of the TDX series ("KVM: TDX: TDP MMU TDX support", Isaku Yamahata, Sep 2022): for a zapped private leaf the TDP MMU called the BLOCK hook and the REMOVE hook back to back and left TDH.MEM.TRACK to the remote-TLB-flush hook, which runs after the zap; later revisions issue it in the remove hook before REMOVE (kvm_flush_remote_tlbs, then tdx_track)',
  },
  acceptingListUnitGranular: {
    default: true,
    effect:
      'accept_memory registers its range on accepting_list in bitmap units and waits for any entry that touches the same unit, so two vCPUs never accept the same unit at once',
    otherwise:
      'the list holds byte ranges and only byte overlap collides: two calls for different pages of one unit both pass, both find the unit\'s bit set and both accept the whole unit; the second TDG.MEM.PAGE.ACCEPT of a page fails (already accepted, or busy) at every size and arch_accept_memory panics',
    section: '§6.ii A.1',
    history:
      'Kirill Shutemov\'s "efi/unaccepted: Fix soft lockups caused by parallel memory acceptance" (v1 on LKML, Oct 2023, reported by Michael Roth) dropped unaccepted_memory_lock during arch_accept_memory and added accepting_list with physical start/end; v2 (50e782a86c98, v6.6, Fixes 2053bc57f367) stores units and checks at unit granularity, so that requests for the same unit collide even when their bytes do not overlap; Michael Roth\'s "efi/unaccepted: Fix off-by-one when checking for overlapping ranges" (Nov 2023) then let ranges that only touch go on in parallel, as the model does',
  },
  acceptMemoryPastEnd: {
    default: true,
    effect: 'accept_memory accepts one more unit when the range ends on a unit boundary, so load_unaligned_zeropad reading past the last page never meets unaccepted memory',
    otherwise: 'exactly the units of the range are accepted: a load_unaligned_zeropad that spills over the end lands in an unaccepted page, a #VE on private memory (or, with SEPT_VE_DISABLE, a TD exit KVM kills the VM for)',
    section: '§6.ii B.3',
    history:
      '"efi/unaccepted: Avoid load_unaligned_zeropad() stepping into unaccepted memory" (c211c19e80d0, v6.5; earlier revisions of the series as "x86/mm: Avoid load_unaligned_zeropad() stepping into unaccepted memory") came after the bitmap code of 2053bc57f367 in the same series; the series notes it as a problem hit in TDX testing',
  },
  tdxEncStatusChangePrepare: {
    default: true,
    effect:
      'set_memory_encrypted converts the range in enc_status_change_prepare — MapGPA to private and tdx_accept_memory — before __change_page_attr makes the PTEs private; set_memory_decrypted makes the PTEs shared first and converts in enc_status_change_finish: there is never a private mapping of a shared page',
    otherwise:
      'both directions convert in enc_status_change_finish, after the PTEs changed: during set_memory_encrypted a private PTE maps a page still shared (guest-pte-matches-attribute), and a load_unaligned_zeropad from the page before it is a private access to a page the TD does not own',
    section: '§6.iv',
    history:
      '"x86/tdx: Fix race between set_memory_encrypted() and load_unaligned_zeropad()" (195edce08b63, v6.5, Fixes 7dbde7631629 "x86/mm/cpa: Add support for TDX shared memory"), with "x86/mm: Allow guest.enc_status_change_prepare() to fail" (3f6819dd192e): before them TDX had only enc_status_change_finish',
  },
  mmioRejectsPageCross: {
    default: true,
    effect:
      'the #VE handler\'s handle_mmio refuses an access that crosses a page boundary, so a load_unaligned_zeropad whose second half lands on a shared page the VMM does not back (an MMIO #VE) goes to the exception fixup and reads zeros there',
    otherwise:
      'handle_mmio decodes the 8-byte mov and asks the VMM to emulate it at the GPA VE_INFO gave (the second page): the register gets what the VMM answers for bytes the load never meant to read, and the VMM sees an MMIO access the guest never made (mmio-within-page)',
    section: '§6.i',
    history:
      '"x86/tdx: Handle load_unaligned_zeropad() page-cross to a shared page" (1e7769653b06, v5.19, Kirill Shutemov, Jun 2022): before it the #VE handler took every #VE on a shared page for MMIO and emulated it; the commit says the problem was found by analysis and reproduced artificially',
  },
  hltChecksVmxip: {
    default: true,
    effect:
      "a TD vCPU halted by TDG.VP.VMCALL<Instruction.HLT> with R12 = 0 (interrupts not blocked) and no ON bit in its posted-interrupt descriptor reads TD_VCPU_STATE_DETAILS_NON_ARCH with TDH.VP.RD before it blocks, and stays runnable if VMXIP (bit 0) says the CPU already holds a deliverable virtual interrupt (tdx_protected_apic_has_interrupt)",
    otherwise:
      'the wake-up check reads the posted-interrupt descriptor alone: an interrupt the CPU took into vIRR while the guest had interrupts off, just before its HLT TDVMCALL, is invisible, and the vCPU blocks with it pending until something else wakes it (a lost wake-up; example hlt-lost-wakeup)',
    section: '§4.3 Instruction.HLT, §5c.1 step 8',
    history:
      "Isaku Yamahata's TDX series before v9 returned pi_has_pending_interrupt() from tdx_protected_apic_has_interrupt; v9 (\"KVM: TDX: Handle TDX PV HLT hypercall\", Sep 2022) to v17 papered over it by reporting a pending interrupt after any delivery since the last halt (buggy_hlt_workaround), which Sean Christopherson rejected in review of v17 (Jan 2024) asking for a TDX-module fix; the module's VMXIP bit in TD_VCPU_STATE_DETAILS_NON_ARCH is what the merged version (v6.16) reads",
  },
  mapGpaEventCheck: {
    default: true,
    effect:
      'between the 2 MiB chunks of a TDG.VP.VMCALL<MapGPA>, KVM stops if the vCPU has an event pending (kvm_vcpu_has_events: ON in its posted-interrupt descriptor) and returns RETRY with R11 = the next GPA, so the guest takes the interrupt and calls again from there (tdx_complete_vmcall_map_gpa)',
    otherwise:
      'every chunk of the range goes to userspace before the guest runs again: an interrupt posted during a large conversion waits for all of it (interrupt-latency names the chunks; example mapgpa-interrupt)',
    section: '§6.iv steps 3–6',
    history:
      "earlier revisions of \"KVM: TDX: Handle TDG.VP.VMCALL<MapGPA>\" (Isaku Yamahata's TDX series up to v19, 2024) handed the whole range to userspace in one KVM_EXIT_HYPERCALL; Binbin Wu's rework for the TDX hypercall series (late 2024, merged for v6.16) splits it into 2 MiB chunks and checks for pending events between them, as review asked, so a long conversion does not hold off the guest's interrupts",
  },
  invalidMemslotEndsLocalRetry: {
    default: true,
    effect:
      'TDX\'s local retry of a private fault (tdx_handle_ept_violation) stops when the fault\'s memslot is KVM_MEMSLOT_INVALID (being deleted or moved): the vCPU goes back towards TDH.VP.ENTER, dropping kvm->srcu around the entry, so the memslot update\'s synchronize_srcu completes; once the slot is gone the private fault exits to userspace with KVM_EXIT_MEMORY_FAULT',
    otherwise:
      'the loop retries a fault on an invalid memslot like any other RET_PF_RETRY, holding kvm->srcu all the while: the thread deleting or moving the slot waits in synchronize_srcu for a reader that never leaves, and neither makes progress (example memslot-delete-during-fault)',
    section: '§7.3, §7.5',
    history:
      'Sean Christopherson\'s "KVM: TDX: Do not retry locally when the retry is caused by invalid memslot" (2bc2694fe20b, kvm-x86 mmu-6.18, merged for v6.18), patch 2/3 of Yan Zhao\'s "[PATCH v2 0/3] KVM: Fix deadlock for invalid memslots" (22 Aug 2025; v1 in May 2025), next to "KVM: x86/mmu: Return -EAGAIN if userspace deletes/moves memslot during prefault" (3ccbf6f47098) and the selftest "KVM: selftests: Test prefault memory during concurrent memslot removal"; before it, the anti-zero-step local retry added with the TDX MMU in v6.16 kept retrying while the slot was being deleted',
  },
  safeHaltStiAfterTdcall: {
    default: true,
    effect:
      "tdx_safe_halt issues TDG.VP.VMCALL<Instruction.HLT> with R12 = 0 while the guest's interrupts are still off and enables them (STI) once the TDCALL returns, so the interrupt that ended the halt is taken after it",
    otherwise:
      'Linux before v6.3 (TDX_HCALL_ISSUE_STI): STI immediately before the TDCALL, which runs in the STI shadow — a virtual interrupt pending then is held back until the TD exit, and KVM finds it with VMXIP (GHCI: R12 = 0 because the TDCALL follows STI); the TDCALL returns with interrupts on',
    section: '§4.3 Instruction.HLT',
    history:
      "\"x86/tdx: Remove TDX_HCALL_ISSUE_STI\" (Peter Zijlstra, in the cpuidle rework merged for v6.3) dropped the STI;TDCALL form once arch_cpu_idle() returns with interrupts disabled; TDX guests outside Linux (td-shim's tdvmcall_sti_halt) still use it",
  },
  haltPollNs: {
    default: KVM_HALT_POLL_NS_DEFAULT,
    range: [0, 1_000_000_000],
    effect:
      "KVM's halt_poll_ns module parameter, the most a vCPU's adaptive poll window may grow to (x86 default KVM_HALT_POLL_NS_DEFAULT, 200000 ns): a vCPU's window (vcpu->halt_poll_ns) starts at 0, so its first HLT blocks at once; after a halt that blocked it grows to halt_poll_ns_grow_start (10000 ns), then doubles (halt_poll_ns_grow 2) up to this value, and the next HLT repeats the wake-up check (for a TD with R12 = 0 a TDH.VP.RD of VMXIP each time) until an event arrives or the window ends (kvm_vcpu_can_poll, on the logical clock) before it blocks (kvm_vcpu_halt)",
    otherwise:
      '0: no polling, every HLT that finds no event blocks at once (kvm_vcpu_halt with vcpu->halt_poll_ns 0); the model has no durations, so every halt counts as shorter than the window (KVM grows it then) and none as longer than halt_poll_ns (KVM would halve it, halt_poll_ns_shrink 2)',
    section: '§4.3 Instruction.HLT, §5c.1 step 8',
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
  const history = p.history === undefined ? '' : `. History: ${p.history}`;
  const description = typeof p.default === 'boolean' ? `on: ${p.effect}. Off: ${p.otherwise} (${p.section})${history}` : `${p.effect}. ${p.otherwise} (${p.section})`;
  if (typeof p.default === 'boolean') return z.boolean().default(p.default).describe(description);
  const [min, max] = p.range!;
  return z.number().int().min(min).max(max).default(p.default).describe(description);
}

/** The scenario's `policies` section: every switch optional, defaults from the table. */
export const policiesSchema = z
  .strictObject(Object.fromEntries(Object.entries(POLICIES).map(([k, p]) => [k, policySchema(p)])) as { [K in PolicyName]: Policies[K] extends boolean ? z.ZodDefault<z.ZodBoolean> : z.ZodDefault<z.ZodNumber> })
  .default(DEFAULT_POLICIES);
