/**
 * The TDP MMU fault path as the vCPU thread runs it against the kvm.mmu actor: tdx_handle_ept_violation /
 * handle_ept_violation → kvm_mmu_page_fault → kvm_tdp_page_fault → kvm_mmu_faultin_pfn → kvm_tdp_mmu_map,
 * the S-EPT hooks of the mirror root, and VMX's handle_ept_misconfig and x86_emulate_instruction.
 *
 * Private faults (§6.ii A.3–A.6, §7.6) go to the mirror root: each missing level is frozen with a
 * cmpxchg to FROZEN_SPTE, linked in the S-EPT with TDH.MEM.SEPT.ADD, then written with its final value;
 * the leaf likewise with TDH.MEM.PAGE.AUG (or TDH.MEM.PAGE.ADD while INIT_MEM_REGION populates the image).
 * TDX_OPERAND_BUSY restores the old SPTE and ends the attempt with RET_PF_RETRY, which a private fault
 * retries locally instead of re-entering the guest (§7.3, §7.5); any other error is a KVM_BUG_ON.
 *
 * The fault path follows kvm_tdp_mmu_map (§6.i step 4, §7.6): take mmu_lock for read, walk, link every
 * missing page-table level with a cmpxchg of a fresh page from this vCPU's cache, install the leaf with a
 * cmpxchg; a lost cmpxchg or a frozen SPTE ends the attempt with RET_PF_RETRY. A GPA without a memslot
 * gets an MMIO SPTE (per-VM value | generation | GPA, §3.3–§3.5) and RET_PF_EMULATE; for a TD the
 * emulator answers X86EMUL_RETRY_INSTR and KVM re-enters so the guest takes the #VE (§6.i step 5), for VMX
 * KVM emulates the instruction itself. With the privateHugePages policy the leaf goes in at the level
 * kvm.mmu allows; an ACCEPT-type exit may first split a huge leaf (tdxCheckAcceptLevel.ts). A mirror huge
 * leaf met by the fault path above its goal level is a KVM_BUG_ON, as upstream, where mirror roots have
 * no huge pages.
 */
import { and, not } from 'xstate';
import { out, payloadOf, type WalkStep } from '../../src/protocol/messages.ts';
import { EPT_VIOLATION_PROT_MASK } from '../../src/arch/vmx.ts';
import {
  KVM_EXIT_MEMORY_FAULT,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
  RET_PF_FIXED,
  RET_PF_SPURIOUS,
  PFERR_RSVD_MASK,
  RET_PF_RETRY,
  RET_PF_EMULATE,
  RET_PF_NAMES,
  PG_LEVEL_4K,
  PG_LEVEL_2M,
} from '../../src/arch/kvmApi.ts';
import {
  SHADOW_NONPRESENT_VALUE,
  FROZEN_SPTE,
  MMIO_SPTE_GEN_MASK,
  makeNonLeafSpte,
  isFrozenSpte,
  isShadowPresentPte,
  isMmioSpte,
  isLargePte,
  getMmioSpteGeneration,
} from '../../src/arch/spte.ts';
import { sharedBit, gpaToGfn, gfnToGpa, pgLevelIndex, pgLevelToTdxLevel, makePageInfo, pageSizeOfPgLevel, pagesOfPgLevel, PAGE_SIZE } from '../../src/arch/gpa.ts';
import { TDX_EXT_EXIT_QUAL_TYPE_MASK, TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION } from '../../src/arch/tdxStatus.ts';
import { hex } from '../../src/arch/hex.ts';
import { sizeMask } from '../guest/program.ts';
import { lpageKey } from './tdpMmu.ts';
import { MMU, fault, stepAt, beginFault, leafSpte, mmioSpte } from './kvmPageFault.ts';
import { sharedNonPresentSpte } from './tdpIter.ts';
import { tdxCheckAcceptLevelStates } from './tdxCheckAcceptLevel.ts';
import { assign, emit, enqueueActions, type VcpuGuards } from './vcpuSetup.ts';

/** The leaf hook's SEAMCALL (AUG or PAGE.ADD) returns: final SPTE, or restore and retry on BUSY, else KVM_BUG_ON (§7.3). */
const LEAF_HOOK_RESULT = [
  { guard: 'seamcallOk', target: 'unlocking', actions: ['writeFinal', 'clearFrozen', 'retFixed'] },
  { guard: 'seamcallBusy', target: 'unlocking', actions: ['restoreFrozen', 'clearFrozen', 'retRetry'] },
  { target: '#kvmVcpu.vmDead', actions: 'kvmBugSeamcall' },
] as const;

export const mmuPageFaultGuards = {
  faultIsPrivate: ({ context }) => fault(context).isPrivate,
  isMirror: ({ context }) => fault(context).root === 'mirror',
  isPopulate: ({ context }) => fault(context).populateSource !== null,
  /**
   * tdx_is_sept_violation_unexpected_pending: EEQ type PENDING_EPT_VIOLATION and no PROT bits — the
   * guest touched a page it never accepted while SEPT_VE_DISABLE is set (§6.ii B.3, [KX]).
   */
  unexpectedPending: ({ context }) => {
    const x = context.exit!;
    return (
      context.policies.unexpectedPendingCheck &&
      context.vmType === 'tdx' &&
      (x.gpa & sharedBit(context.gpaw)) === 0n &&
      (x.eeq & TDX_EXT_EXIT_QUAL_TYPE_MASK) === BigInt(TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION) &&
      (x.exitQualification & BigInt(EPT_VIOLATION_PROT_MASK)) === 0n
    );
  },
  /**
   * kvm_mmu_faultin_pfn: a private fault on a shared GFN or the other way round, or a private fault
   * without guest_memfd, goes to userspace as KVM_EXIT_MEMORY_FAULT (§6.ii A.4). Decided on what the
   * fault read, once it has both its snapshot and its attribute.
   */
  faultinMismatch: ({ context }) => {
    const f = fault(context);
    if (context.vmType !== 'tdx' || f.slot === null || f.slot === 'none') return false;
    // An invalid slot's kind is not looked at: the attribute check comes first, then the retry.
    return f.isPrivate !== f.attrPrivate || (f.isPrivate && f.slot !== 'gmem' && f.slot !== 'invalid');
  },
  /** kvm_mmu_faultin_pfn: the memslot is being deleted or moved (KVM_MEMSLOT_INVALID) → RET_PF_RETRY. */
  faultinSlotInvalid: ({ context }) => fault(context).slot === 'invalid',
  /**
   * A private fault with no memslot at all (deleted, or never there) cannot be emulated as MMIO: KVM
   * exits to userspace with KVM_EXIT_MEMORY_FAULT, flags PRIVATE.
   */
  privateNoSlot: ({ context }) => context.vmType === 'tdx' && fault(context).isPrivate && fault(context).slot === 'none',
  invalidMemslotEndsLocalRetry: ({ context }) => context.policies.invalidMemslotEndsLocalRetry,
  snapshotBeforeAttributes: ({ context }) => context.policies.snapshotBeforeAttributes,
  memoryFaultExit: ({ context }) => context.policies.memoryFaultExit,
  retFixed: ({ context }) => fault(context).ret === RET_PF_FIXED,
  retRetry: ({ context }) => fault(context).ret === RET_PF_RETRY,
  stepFrozen: ({ context }) => isFrozenSpte(stepAt(context).spte),
  atTargetLevel: ({ context }) => stepAt(context).pgLevel === fault(context).goalLevel,
  /** A huge leaf above the goal level: kvm_tdp_mmu_map would split it, which mirror roots do not support. */
  stepHugeLeaf: ({ context }) => isShadowPresentPte(stepAt(context).spte) && isLargePte(stepAt(context).spte),
  faultStale: ({ event }) => payloadOf(event, 'mmu', 'TDP_WALK_RESULT').stale === true,
  stepPresent: ({ context }) => isShadowPresentPte(stepAt(context).spte),
  leafAlreadyMmio: ({ context }) => fault(context).pfn === null && stepAt(context).spte === mmioSpte(context),
  leafUnchanged: ({ context }) => stepAt(context).spte === leafSpte(context),
  cmpxchgOk: ({ event }) => payloadOf(event, 'mmu', 'SPTE_CMPXCHG_RESULT').ret === 0,
  retEmulate: ({ context }) => fault(context).ret === RET_PF_EMULATE,
  faultIsMmio: ({ context }) => fault(context).pfn === null,
  /** handle_mmio_page_fault: an MMIO SPTE whose generation matches the memslots (§6.i contrast). */
  mmioSpteCurrent: ({ context, event }) => {
    const leaf = payloadOf(event, 'mmu', 'TDP_WALK_RESULT').path.at(-1)!.spte;
    return isMmioSpte(leaf, context.mmioValue) && BigInt(getMmioSpteGeneration(leaf)) === (BigInt(context.memslotsGeneration) & MMIO_SPTE_GEN_MASK);
  },
  localRetry: ({ context }) => context.policies.localRetry,
  staleFaultCheck: ({ context }) => context.policies.staleFaultCheck,
} satisfies VcpuGuards;

export const mmuPageFaultActions = {
  beginEptViolation: assign({ fault: ({ context }) => beginFault(context, context.exit!.gpa, context.exit!.exitQualification, 0n) }),
  /** Local retry (§7.3): the same fault again from kvm_mmu_faultin_pfn, without re-entering the guest. */
  resetFault: assign({ fault: ({ context }) => ({ ...fault(context), path: [], at: 0, ret: null, mmuSeq: null, attrPrivate: null, slot: null }) }),
  faultinRequest: emit(({ context }) => out(MMU, 'mmu', 'FAULTIN', { vcpu: context.vcpu, gfn: fault(context).gfn, isPrivate: fault(context).isPrivate })),
  /**
   * The level comes from kvm.mmu's kvm_mmu_max_mapping_level, except for KVM_TDX_INIT_MEM_REGION: the
   * huge-page series' private_max_mapping_level hook answers 4K until the TD is RUNNABLE, because
   * TDH.MEM.PAGE.ADD adds 4K pages only (RFC "KVM: TDX: Enable 2MB mapping size after TD is RUNNABLE").
   */
  recordFaultin: assign({
    fault: ({ context, event }) => {
      const r = payloadOf(event, 'mmu', 'FAULTIN_RESULT');
      const f = fault(context);
      return { ...f, pfn: r.pfn, goalLevel: f.populateSource !== null ? PG_LEVEL_4K : r.maxLevel, attrPrivate: r.attrPrivate, slot: r.slot };
    },
  }),
  /** fault->mmu_seq = vcpu->kvm->mmu_invalidate_seq; smp_rmb() (§6.ii A.4). */
  mmuSeqRead: emit(({ context }) => out(MMU, 'mmu', 'MMU_INVALIDATE_SEQ_READ', { vcpu: context.vcpu })),
  recordMmuSeq: assign({ fault: ({ context, event }) => ({ ...fault(context), mmuSeq: payloadOf(event, 'mmu', 'MMU_INVALIDATE_SEQ').mmuSeq }) }),
  kvmBugHugeMirror: assign({
    deathReason: ({ context }) => `KVM_BUG_ON: the fault at ${hex(fault(context).gpa)} (goal ${fault(context).goalLevel}) met a huge mirror leaf at level ${stepAt(context).pgLevel}; mirror roots cannot split it in the fault path`,
  }),
  exitMemoryFault: emit(({ context }) =>
    out(context.runOwner ?? 'vmm', 'kvm-exit', 'KVM_EXIT_MEMORY_FAULT', {
      vcpu: context.vcpu,
      exit_reason: KVM_EXIT_MEMORY_FAULT,
      gpa: gfnToGpa(fault(context).gfn),
      size: PAGE_SIZE,
      flags: fault(context).isPrivate ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0,
    }),
  ),
  noteMemoryFaultSeq: assign({ memoryFaultSeq: ({ context }) => fault(context).mmuSeq }),
  /** Mirror SPTEs become present only as freeze → SEAMCALL → final value (§7.6). */
  prepareFreezeNonLeaf: assign({
    frozen: ({ context }) => ({ step: stepAt(context), finalSpte: makeNonLeafSpte({ childPfn: BigInt(context.nextCachePfn), adEnabled: true }), childPfn: context.nextCachePfn }),
  }),
  prepareFreezeLeaf: assign({ frozen: ({ context }) => ({ step: stepAt(context), finalSpte: leafSpte(context), childPfn: null }) }),
  freezeSpte: emit(({ context }) => {
    const fr = context.frozen!;
    const s = fr.step;
    const base = { vcpu: context.vcpu, root: fault(context).root, gfn: fault(context).iterGfn, pgLevel: s.pgLevel, tablePfn: s.tablePfn, index: s.index, oldSpte: s.spte };
    if (context.policies.freezeMirrorSpte) return out(MMU, 'mmu', 'SPTE_CMPXCHG', { ...base, newSpte: FROZEN_SPTE, childPfn: null });
    // Policy freezeMirrorSpte off: the final value is published before the SEAMCALL that backs it.
    return out(MMU, 'mmu', 'SPTE_CMPXCHG', { ...base, newSpte: fr.finalSpte, childPfn: fr.childPfn, ...(fr.childPfn !== null ? { externalPfn: context.nextExternalPfn } : {}) });
  }),
  /** tdx_sept_link_private_spt: TDH.MEM.SEPT.ADD(GPA | level, TDR, external page) for the frozen parent. */
  seamcallSeptAdd: emit(({ context }) => {
    const s = context.frozen!.step;
    const gpa = gfnToGpa(fault(context).gfn) & ~(pageSizeOfPgLevel(s.pgLevel) - 1n);
    return out('tdx', 'seamcall', 'TDH.MEM.SEPT.ADD', { RCX: makePageInfo(gpa, pgLevelToTdxLevel(s.pgLevel)), RDX: context.tdr, R8: BigInt(context.nextExternalPfn) << 12n });
  }),
  /** The leaf hook: TDH.MEM.PAGE.AUG in a running TD, TDH.MEM.PAGE.ADD while the image is populated ([KX] §5b.3 4). */
  seamcallSetLeaf: emit(({ context }) => {
    const f = fault(context);
    const gpa = gfnToGpa(f.gfn);
    if (f.populateSource !== null) return out('tdx', 'seamcall', 'TDH.MEM.PAGE.ADD', { RCX: gpa, RDX: context.tdr, R8: f.pfn! << 12n, R9: f.populateSource });
    const pages = pagesOfPgLevel(f.goalLevel);
    return out('tdx', 'seamcall', 'TDH.MEM.PAGE.AUG', { RCX: makePageInfo(gpa & ~(pages * PAGE_SIZE - 1n), pgLevelToTdxLevel(f.goalLevel)), RDX: context.tdr, R8: (f.pfn! & ~(pages - 1n)) << 12n });
  }),
  /** Unfrozen (policy freezeMirrorSpte off) the final value is already there: nothing to write. */
  writeFinal: enqueueActions(({ context, enqueue }) => {
    const fr = context.frozen!;
    if (!context.policies.freezeMirrorSpte) return;
    enqueue.emit(out(MMU, 'mmu', 'SPTE_WRITE', { vcpu: context.vcpu, root: fault(context).root, gfn: fault(context).iterGfn, pgLevel: fr.step.pgLevel, tablePfn: fr.step.tablePfn, index: fr.step.index, oldSpte: FROZEN_SPTE, newSpte: fr.finalSpte, childPfn: fr.childPfn, ...(fr.childPfn !== null && fault(context).root === 'mirror' ? { externalPfn: context.nextExternalPfn } : {}) }));
  }),
  /**
   * Back to the old value after BUSY. Unfrozen, the published page table is unlinked but its page stays
   * with kvm.mmu (another vCPU may be inside it), so this vCPU's caches move past it.
   */
  restoreFrozen: enqueueActions(({ context, enqueue }) => {
    const fr = context.frozen!;
    const published = !context.policies.freezeMirrorSpte;
    enqueue.emit(out(MMU, 'mmu', 'SPTE_WRITE', { vcpu: context.vcpu, root: fault(context).root, gfn: fault(context).iterGfn, pgLevel: fr.step.pgLevel, tablePfn: fr.step.tablePfn, index: fr.step.index, oldSpte: published ? fr.finalSpte : FROZEN_SPTE, newSpte: fr.step.spte, childPfn: null }));
    if (published && fr.childPfn !== null) enqueue.assign({ nextCachePfn: context.nextCachePfn + 1, nextExternalPfn: context.nextExternalPfn + 1 });
  }),
  clearFrozen: assign({ frozen: () => null }),
  /** The linked mirror page and its external page are used; the walk continues in the new, empty page. */
  linkedExternal: assign(({ context }) => {
    const f = fault(context);
    const s = stepAt(context);
    const childLevel = s.pgLevel - 1;
    const child: WalkStep = { pgLevel: childLevel, tablePfn: context.nextCachePfn, index: pgLevelIndex(gfnToGpa(f.iterGfn), childLevel), spte: SHADOW_NONPRESENT_VALUE };
    return { nextCachePfn: context.nextCachePfn + 1, nextExternalPfn: context.nextExternalPfn + 1, frozen: null, fault: { ...f, path: [...f.path.slice(0, f.at + 1), child], at: f.at + 1 } };
  }),
  retFixed: assign({ fault: ({ context }) => ({ ...fault(context), ret: RET_PF_FIXED }) }),
  retSpurious: assign({ fault: ({ context }) => ({ ...fault(context), ret: RET_PF_SPURIOUS }) }),
  deathUnexpectedPending: assign({
    deathReason: ({ context }) => `Guest access before accepting ${hex(context.exit!.gpa)} on vCPU ${context.vcpu}: VM marked dead, KVM_RUN returns -EIO (§6.ii B.3)`,
  }),
  /** handle_ept_misconfig's slow path: kvm_mmu_page_fault(gpa, PFERR_RSVD_MASK). */
  beginMisconfigFault: assign({ fault: ({ context }) => beginFault(context, context.exit!.gpa, 0n, PFERR_RSVD_MASK) }),
  lockRead: emit(({ context }) => out(MMU, 'mmu', 'MMU_LOCK_READ', { vcpu: context.vcpu })),
  unlockRead: emit(({ context }) => out(MMU, 'mmu', 'MMU_UNLOCK', { vcpu: context.vcpu, mode: 'read' })),
  tdpWalk: emit(({ context }) => out(MMU, 'mmu', 'TDP_WALK', { vcpu: context.vcpu, root: fault(context).root, gfn: fault(context).iterGfn, mmuSeq: fault(context).mmuSeq! })),
  /** walk_shadow_page_lockless: no mmu_lock, RCU only. */
  locklessWalk: emit(({ context }) => out(MMU, 'mmu', 'TDP_WALK', { vcpu: context.vcpu, root: 'direct', gfn: gpaToGfn(context.exit!.gpa) })),
  /** kvm_tdp_mmu_map starts with kvm_mmu_hugepage_adjust under mmu_lock: a guest inhibit set since faultin counts. */
  recordPath: assign({
    fault: ({ context, event }) => {
      const w = payloadOf(event, 'mmu', 'TDP_WALK_RESULT');
      const f = fault(context);
      const own = context.ownInhibit.includes(lpageKey(f.gfn, PG_LEVEL_2M)) ? PG_LEVEL_4K : f.goalLevel;
      return { ...f, path: w.path, at: 0, goalLevel: Math.min(f.goalLevel, w.maxLevel ?? f.goalLevel, own) };
    },
  }),
  descend: assign({ fault: ({ context }) => ({ ...fault(context), at: fault(context).at + 1 }) }),
  /** tdp_mmu_link_sp: cmpxchg a non-present SPTE to point at a fresh page from the cache. */
  linkSp: emit(({ context }) => {
    const s = stepAt(context);
    return out(MMU, 'mmu', 'SPTE_CMPXCHG', {
      vcpu: context.vcpu,
      root: fault(context).root,
      gfn: fault(context).iterGfn,
      pgLevel: s.pgLevel,
      tablePfn: s.tablePfn,
      index: s.index,
      oldSpte: s.spte,
      newSpte: makeNonLeafSpte({ childPfn: BigInt(context.nextCachePfn), adEnabled: true }),
      childPfn: context.nextCachePfn,
    });
  }),
  /** The linked page now sits one level down; the walk continues in it, where every entry is non-present. */
  linkedSp: assign(({ context }) => {
    const f = fault(context);
    const s = stepAt(context);
    const childLevel = s.pgLevel - 1;
    const fill = f.root === 'direct' ? sharedNonPresentSpte(context.policies.sharedSuppressVe) : SHADOW_NONPRESENT_VALUE;
    const child: WalkStep = { pgLevel: childLevel, tablePfn: context.nextCachePfn, index: pgLevelIndex(gfnToGpa(f.iterGfn), childLevel), spte: fill };
    return { nextCachePfn: context.nextCachePfn + 1, fault: { ...f, path: [...f.path.slice(0, f.at + 1), child], at: f.at + 1 } };
  }),
  installLeafSpte: emit(({ context }) => {
    const s = stepAt(context);
    return out(MMU, 'mmu', 'SPTE_CMPXCHG', {
      vcpu: context.vcpu,
      root: fault(context).root,
      gfn: fault(context).iterGfn,
      pgLevel: s.pgLevel,
      tablePfn: s.tablePfn,
      index: s.index,
      oldSpte: s.spte,
      newSpte: leafSpte(context),
      childPfn: null,
    });
  }),
  retEmulate: assign({ fault: ({ context }) => ({ ...fault(context), ret: RET_PF_EMULATE }) }),
  retRetry: assign({ fault: ({ context }) => ({ ...fault(context), ret: RET_PF_RETRY }) }),
  /** vt_check_emulate_instruction: a TD cannot be emulated; let the guest retry and take the #VE (§6.i 5). */
  noteRetryInstr: assign({
    lastFault: ({ context }) => ({ gpa: fault(context).gpa, errorCode: fault(context).errorCode, ret: RET_PF_NAMES[fault(context).ret!]!, emulation: 'X86EMUL_RETRY_INSTR' }),
    fault: () => null,
  }),
  noteFaultDone: assign({
    lastFault: ({ context }) => ({ gpa: fault(context).gpa, errorCode: fault(context).errorCode, ret: RET_PF_NAMES[fault(context).ret!]!, emulation: null }),
    fault: () => null,
  }),
  noteEmulate: assign({
    lastFault: ({ context }) => ({ gpa: context.exit!.gpa, errorCode: context.fault?.errorCode ?? PFERR_RSVD_MASK, ret: 'RET_PF_EMULATE', emulation: 'x86_emulate_instruction' }),
    fault: () => null,
  }),
  /** VMX: the emulated MOV reaches vcpu_mmio_read/write; no in-kernel device claims it → userspace. */
  vmxMmioExit: assign({
    mmio: ({ context }) => {
      const i = context.exit!.insn!;
      return { physAddr: context.exit!.gpa, len: i.size, isWrite: i.op === 'store', data: i.op === 'store' ? (i.value ?? 0n) & sizeMask(i.size) : 0n };
    },
  }),
};

export const mmuPageFaultStates = {
  /** tdx_handle_ept_violation / handle_ept_violation → kvm_mmu_page_fault → kvm_tdp_page_fault. */
  handlingEptViolation: {
    initial: 'checking',
    states: {
      checking: {
        always: [
          { guard: 'unexpectedPending', target: '#kvmVcpu.vmDead', actions: 'deathUnexpectedPending' },
          // Policy globalGuestInhibit off: this vCPU's own record decides, no lpage_info read.
          { guard: and(['acceptLevelExit', not('globalGuestInhibit'), 'ownInhibited']), target: 'faultin' },
          { guard: and(['acceptLevelExit', not('globalGuestInhibit')]), target: 'splitting', actions: 'beginSplit' },
          { guard: 'acceptLevelExit', target: 'checkingAcceptLevel', actions: 'beginSplit' },
          { target: 'faultin' },
        ],
      },
      ...tdxCheckAcceptLevelStates,
      /**
       * kvm_mmu_faultin_pfn: the mmu_invalidate_seq snapshot, then the attribute and backing (no memslot →
       * kvm_handle_noslot_fault maps an MMIO SPTE), each a step of its own; policy
       * snapshotBeforeAttributes off reads the attribute first.
       */
      faultin: {
        initial: 'ordering',
        states: {
          ordering: { always: [{ guard: 'snapshotBeforeAttributes', target: 'snapshotting' }, { target: 'readingAttributes' }] },
          snapshotting: {
            entry: 'mmuSeqRead',
            on: {
              MMU_INVALIDATE_SEQ: [
                { guard: 'snapshotBeforeAttributes', target: 'readingAttributes', actions: 'recordMmuSeq' },
                { target: '#kvmVcpu.handlingEptViolation.deciding', actions: 'recordMmuSeq' },
              ],
            },
          },
          readingAttributes: {
            entry: 'faultinRequest',
            on: {
              FAULTIN_RESULT: [
                { guard: 'snapshotBeforeAttributes', target: '#kvmVcpu.handlingEptViolation.deciding', actions: 'recordFaultin' },
                { target: 'snapshotting', actions: 'recordFaultin' },
              ],
            },
          },
        },
      },
      /**
       * The private/shared check on what faultin read. Policy memoryFaultExit off: RET_PF_RETRY and back
       * into the guest, as RFC v5 did (no local retry existed then).
       */
      deciding: {
        always: [
          { guard: and(['faultinMismatch', 'isPopulate']), target: '#kvmVcpu.initMemRegion.failed' },
          { guard: and(['faultinMismatch', 'isPreFault']), target: '#kvmVcpu.preFaulting.memoryFault' },
          { guard: and(['faultinMismatch', 'memoryFaultExit']), target: '#kvmVcpu.inUserspace', actions: ['exitMemoryFault', 'noteMemoryFaultSeq', 'noteFaultDone'] },
          { guard: 'faultinMismatch', target: '#kvmVcpu.entering', actions: ['retRetry', 'noteFaultDone'] },
          { guard: and(['privateNoSlot', 'isPopulate']), target: '#kvmVcpu.initMemRegion.failed' },
          { guard: 'privateNoSlot', target: '#kvmVcpu.inUserspace', actions: ['exitMemoryFault', 'noteMemoryFaultSeq', 'noteFaultDone'] },
          { guard: 'faultinSlotInvalid', target: 'retryingInvalidSlot', actions: 'retRetry' },
          { target: 'acquiringMmuLock' },
        ],
      },
      /**
       * RET_PF_RETRY for a KVM_MEMSLOT_INVALID slot, without mmu_lock. TDX's local retry loop goes round
       * again as for any private RET_PF_RETRY, unless (policy invalidMemslotEndsLocalRetry, v6.18) the
       * slot is invalid: then the vCPU heads for the entry, which drops kvm->srcu (srcu.ts).
       */
      retryingInvalidSlot: {
        always: [
          { guard: 'isPopulate', target: 'faultin', actions: 'resetFault' },
          { guard: and(['faultIsPrivate', 'isTd', 'localRetry', not('invalidMemslotEndsLocalRetry'), not('signalPending'), not('eventPending')]), target: 'faultin', actions: 'resetFault' },
          { target: '#kvmVcpu.entering', actions: 'noteFaultDone' },
        ],
      },
      acquiringMmuLock: { entry: 'lockRead', on: { MMU_LOCK_ACQUIRED: 'walking' } },
      // is_page_fault_stale: an attribute change (or other invalidation) since kvm_mmu_faultin_pfn → retry.
      walking: {
        entry: 'tdpWalk',
        on: { TDP_WALK_RESULT: [{ guard: and(['staleFaultCheck', 'faultStale']), target: 'unlocking', actions: 'retRetry' }, { target: 'mapping', actions: 'recordPath' }] },
      },
      /** kvm_tdp_mmu_map's loop over the iterator, one level per pass. */
      mapping: {
        always: [
          { guard: 'stepFrozen', target: 'unlocking', actions: 'retRetry' },
          { guard: 'atTargetLevel', target: 'checkingLeaf' },
          { guard: 'stepHugeLeaf', target: '#kvmVcpu.vmDead', actions: 'kvmBugHugeMirror' },
          { guard: 'stepPresent', target: 'mapping', reenter: true, actions: 'descend' },
          { guard: 'isMirror', target: 'freezingNonLeaf' },
          { target: 'linking' },
        ],
      },
      linking: {
        entry: 'linkSp',
        on: {
          SPTE_CMPXCHG_RESULT: [{ guard: 'cmpxchgOk', target: 'mapping', actions: 'linkedSp' }, { target: 'unlocking', actions: 'retRetry' }],
        },
      },
      /** set_external_spte_present for a page table: freeze the parent SPTE first (§7.6). */
      freezingNonLeaf: {
        entry: ['prepareFreezeNonLeaf', 'freezeSpte'],
        on: {
          SPTE_CMPXCHG_RESULT: [{ guard: 'cmpxchgOk', target: 'linkingExternal' }, { target: 'unlocking', actions: ['clearFrozen', 'retRetry'] }],
        },
      },
      linkingExternal: {
        entry: 'seamcallSeptAdd',
        on: {
          'TDH.MEM.SEPT.ADD': [
            { guard: 'seamcallOk', target: 'mapping', actions: ['writeFinal', 'linkedExternal'] },
            { guard: 'seamcallBusy', target: 'unlocking', actions: ['restoreFrozen', 'clearFrozen', 'retRetry'] },
            { target: '#kvmVcpu.vmDead', actions: 'kvmBugSeamcall' },
          ],
        },
      },
      /** tdp_mmu_map_handle_target_level: an MMIO SPTE still emulates; a present leaf is spurious. */
      checkingLeaf: {
        always: [
          { guard: 'leafAlreadyMmio', target: 'unlocking', actions: 'retEmulate' },
          // tdp_mmu_map_handle_target_level: spurious only if the SPTE it would build is already there.
          { guard: 'leafUnchanged', target: 'unlocking', actions: 'retSpurious' },
          { guard: 'isMirror', target: 'freezingLeaf' },
          { target: 'installingLeaf' },
        ],
      },
      freezingLeaf: {
        entry: ['prepareFreezeLeaf', 'freezeSpte'],
        on: {
          SPTE_CMPXCHG_RESULT: [{ guard: 'cmpxchgOk', target: 'settingExternal' }, { target: 'unlocking', actions: ['clearFrozen', 'retRetry'] }],
        },
      },
      settingExternal: {
        entry: 'seamcallSetLeaf',
        on: {
          'TDH.MEM.PAGE.AUG': LEAF_HOOK_RESULT,
          'TDH.MEM.PAGE.ADD': LEAF_HOOK_RESULT,
        },
      },
      installingLeaf: {
        entry: 'installLeafSpte',
        on: {
          SPTE_CMPXCHG_RESULT: [
            { guard: and(['cmpxchgOk', 'faultIsMmio']), target: 'unlocking', actions: 'retEmulate' },
            { guard: 'cmpxchgOk', target: 'unlocking', actions: 'retFixed' },
            { target: 'unlocking', actions: 'retRetry' },
          ],
        },
      },
      unlocking: {
        entry: 'unlockRead',
        always: [
          { guard: and(['isPopulate', 'retFixed']), target: '#kvmVcpu.initMemRegion.extending' },
          { guard: and(['isPopulate', 'retRetry']), target: 'faultin', actions: 'resetFault' },
          { guard: 'isPopulate', target: '#kvmVcpu.initMemRegion.failed' },
          // KVM_PRE_FAULT_MEMORY: kvm_tdp_map_page repeats RET_PF_RETRY itself (preFaultMemory.ts).
          { guard: and(['isPreFault', 'preFaultMapped']), target: '#kvmVcpu.preFaulting.pageDone' },
          { guard: and(['isPreFault', 'retRetry']), target: 'faultin', actions: 'resetFault' },
          { guard: and(['isPreFault', 'retEmulate']), target: '#kvmVcpu.preFaulting.noSlot' },
          { guard: 'isPreFault', target: '#kvmVcpu.preFaulting.notFixed' },
          { guard: and(['retEmulate', 'isTd']), target: '#kvmVcpu.entering', actions: 'noteRetryInstr' },
          { guard: 'retEmulate', target: '#kvmVcpu.emulating', actions: 'noteEmulate' },
          // RET_PF_RETRY on a private GPA is retried here, without TDH.VP.ENTER: every fruitless entry
          // would count towards the module's zero-step threshold (§7.3, §7.5). Shared faults re-enter.
          // A pending signal ends the loop (KVM_RUN must return to userspace), and so does a posted
          // interrupt (pi_has_pending_interrupt) or a queued NMI: the guest takes it after the re-entry, then faults again.
          { guard: and(['retRetry', 'faultIsPrivate', 'isTd', 'localRetry', not('signalPending'), not('eventPending')]), target: 'faultin', actions: 'resetFault' },
          { target: '#kvmVcpu.entering', actions: 'noteFaultDone' },
        ],
      },
    },
  },
  /** VMX handle_ept_misconfig → handle_mmio_page_fault: a lockless walk to the MMIO SPTE. */
  handlingEptMisconfig: {
    entry: 'locklessWalk',
    on: {
      TDP_WALK_RESULT: [{ guard: 'mmioSpteCurrent', target: 'emulating', actions: 'noteEmulate' }, { target: 'handlingMisconfigSlowPath', actions: 'beginMisconfigFault' }],
    },
  },
  /** A stale MMIO generation: the regular fault path rebuilds the SPTE. */
  handlingMisconfigSlowPath: {
    always: { target: 'handlingEptViolation.faultin' },
  },
  /** x86_emulate_instruction (VMX only): the MMIO access goes to userspace. */
  emulating: {
    entry: 'vmxMmioExit',
    always: { target: 'inUserspace', actions: 'exitMmio' },
  },
} as const;
