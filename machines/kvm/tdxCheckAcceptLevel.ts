/**
 * tdx_check_accept_level (§6.iii steps 3–4), from the huge-page series: with the privateHugePages policy a
 * private fault maps at the level kvm.mmu allows (2M: AUG at TDX level 1). With splitOnAcceptLevel too,
 * an ACCEPT-type EPT violation whose level is below the mapping runs this before the fault path: unless
 * the range is already guest-inhibited, take mmu_lock for write, split a huge mirror leaf covering the
 * GFN (BLOCK → TRACK + kick → DEMOTE, each through tdh_do_no_vcpus (noVcpus.ts), then the mirror page of
 * 512 leaves), set the one-way guest-inhibit flag, and go on with the normal fault path (mmuPageFault.ts).
 * The actions and guards noVcpus.ts asks of its user (kickAll, countAck, markRetried …) live here too.
 */
import { enqueueActions as xstateEnqueueActions } from 'xstate';
import { out, payloadOf, type Gprs, type HostSeamcall, type MachineEvent } from '../../src/protocol/messages.ts';
import { PG_LEVEL_4K } from '../../src/arch/kvmApi.ts';
import { makeNonLeafSpte, isShadowPresentPte, isLargePte, spteToPfn } from '../../src/arch/spte.ts';
import { gfnToGpa, pgLevelToTdxLevel, makePageInfo, pagesOfPgLevel, PAGE_SIZE } from '../../src/arch/gpa.ts';
import { TDX_EXT_EXIT_QUAL_TYPE_ACCEPT, decodeEeq, decodeAcceptEeqInfo } from '../../src/arch/tdxStatus.ts';
import { noVcpus, kicking, allCpusRequest, blindRetryable } from './noVcpus.ts';
import { lpageKey } from './tdpMmu.ts';
import { MMU, fault, ramLeaf } from './kvmPageFault.ts';
import { assign, emit, enqueueActions, type Emitted, type VcpuGuards } from './vcpuSetup.ts';
import type { KvmVcpuContext } from './kvmVcpu.ts';

/** The EEQ of an ACCEPT-type exit: the level the guest asked for, as a KVM page level (info & 7) + 1 (§6.iii step 3). */
function acceptPgLevel(eeq: bigint): number | null {
  const d = decodeEeq(eeq);
  return d.type === TDX_EXT_EXIT_QUAL_TYPE_ACCEPT ? decodeAcceptEeqInfo(d.info).reqLevel + 1 : null;
}

/** The huge leaf being split, as BLOCK and DEMOTE name it: its aligned private GPA | TDX level (§0.2). */
function hugePageInfo(c: KvmVcpuContext): bigint {
  const h = c.split!.huge!;
  const gpa = gfnToGpa(fault(c).gfn) & ~(pagesOfPgLevel(h.pgLevel) * PAGE_SIZE - 1n);
  return makePageInfo(gpa, pgLevelToTdxLevel(h.pgLevel));
}

export const tdxCheckAcceptLevelGuards = {
  /** The huge-page series' tdx_check_accept_level runs for ACCEPT-type exits on private GPAs (§6.iii step 3). */
  acceptLevelExit: ({ context }) =>
    context.policies.privateHugePages && context.policies.splitOnAcceptLevel && context.vmType === 'tdx' && fault(context).isPrivate && acceptPgLevel(context.exit!.eeq) !== null,
  guestInhibited: ({ event }) => payloadOf(event, 'mmu', 'LPAGE_INFO').guestInhibit,
  /** kvm_split_cross_boundary_leafs: a huge mirror leaf covers the GFN above the level the guest accepts. */
  hugeLeafCrossing: ({ context, event }) => {
    const leaf = payloadOf(event, 'mmu', 'TDP_WALK_RESULT').path.at(-1)!;
    return isShadowPresentPte(leaf.spte) && isLargePte(leaf.spte) && leaf.pgLevel > context.split!.reqPgLevel;
  },
  retried: ({ context }) => context.split!.retried,
  kickRetryOnBusy: ({ context }) => context.policies.zapBusyKickRetry,
  blindRetry: ({ context, event }, params: { call: HostSeamcall }) => blindRetryable(params.call, (event.msg.payload as Gprs).RAX!, context.split!.blindRetries),
  /** Policy splitChecksBlock off: BLOCK's status goes unread, as in the 2022 large-page code's void hook. */
  splitBlockUnchecked: ({ context }) => !context.policies.splitChecksBlock,
  kickAfterTrack: ({ context }) => context.policies.kickAfterTrack,
  acksDone: ({ context }) => context.kickWaiting === 0,
  globalGuestInhibit: ({ context }) => context.policies.globalGuestInhibit,
  ownInhibited: ({ context }) => context.ownInhibit.includes(lpageKey(fault(context).gfn, acceptPgLevel(context.exit!.eeq)! + 1)),
} satisfies VcpuGuards;

export const tdxCheckAcceptLevelActions = {
  beginSplit: assign({ split: ({ context }) => ({ reqPgLevel: acceptPgLevel(context.exit!.eeq)!, huge: null, retried: false, blindRetries: 0 }) }),
  readGuestInhibit: emit(({ context }) => out(MMU, 'mmu', 'LPAGE_INFO_READ', { vcpu: context.vcpu, gfn: fault(context).gfn, pgLevel: context.split!.reqPgLevel + 1 })),
  lockWrite: emit(({ context }) => out(MMU, 'mmu', 'MMU_LOCK_WRITE', { vcpu: context.vcpu })),
  unlockWrite: emit(({ context }) => out(MMU, 'mmu', 'MMU_UNLOCK', { vcpu: context.vcpu, mode: 'write' })),
  splitWalk: emit(({ context }) => out(MMU, 'mmu', 'TDP_WALK', { vcpu: context.vcpu, root: 'mirror', gfn: fault(context).gfn })),
  recordHuge: assign({ split: ({ context, event }) => ({ ...context.split!, huge: payloadOf(event, 'mmu', 'TDP_WALK_RESULT').path.at(-1)! }) }),
  splitBlock: emit(({ context }) => out('tdx', 'seamcall', 'TDH.MEM.RANGE.BLOCK', { RCX: hugePageInfo(context), RDX: context.tdr })),
  splitTrack: emit(({ context }) => out('tdx', 'seamcall', 'TDH.MEM.TRACK', { RCX: context.tdr })),
  /** TDH.MEM.PAGE.DEMOTE with a fresh S-EPT page from this vCPU's external cache. */
  splitDemote: emit(({ context }) => out('tdx', 'seamcall', 'TDH.MEM.PAGE.DEMOTE', { RCX: hugePageInfo(context), RDX: context.tdr, R8: BigInt(context.nextExternalPfn) << 12n })),
  /** The mirror follows: a page of 512 leaves from this vCPU's cache replaces the huge leaf. */
  splitMirror: enqueueActions(({ context, enqueue }) => {
    const h = context.split!.huge!;
    const gfn = fault(context).gfn & ~(pagesOfPgLevel(h.pgLevel) - 1n);
    enqueue.emit(
      out(MMU, 'mmu', 'SPLIT_HUGE_PAGE', {
        vcpu: context.vcpu,
        root: 'mirror',
        gfn,
        pgLevel: h.pgLevel,
        tablePfn: h.tablePfn,
        index: h.index,
        oldSpte: h.spte,
        newSpte: makeNonLeafSpte({ childPfn: BigInt(context.nextCachePfn), adEnabled: true }),
        childPfn: context.nextCachePfn,
        childSpte: ramLeaf(spteToPfn(h.spte), h.pgLevel - 1),
        externalPfn: context.nextExternalPfn,
      }),
    );
    enqueue.assign({ nextCachePfn: context.nextCachePfn + 1, nextExternalPfn: context.nextExternalPfn + 1 });
  }),
  /** hugepage_set_guest_inhibit at level + 1, and level + 2 when the guest accepted 4K. */
  setGuestInhibit: enqueueActions(({ context, enqueue }) => {
    const req = context.split!.reqPgLevel;
    if (!context.policies.globalGuestInhibit) {
      const levels = req === PG_LEVEL_4K ? [req + 1, req + 2] : [req + 1];
      enqueue.assign({ ownInhibit: [...context.ownInhibit, ...levels.map((l) => lpageKey(fault(context).gfn, l)).filter((k) => !context.ownInhibit.includes(k))] });
      return;
    }
    enqueue.emit(out(MMU, 'mmu', 'LPAGE_GUEST_INHIBIT', { vcpu: context.vcpu, gfn: fault(context).gfn, pgLevel: req + 1 }));
    if (req === PG_LEVEL_4K) enqueue.emit(out(MMU, 'mmu', 'LPAGE_GUEST_INHIBIT', { vcpu: context.vcpu, gfn: fault(context).gfn, pgLevel: req + 2 }));
  }),
  endSplit: assign({ split: () => null }),
  markRetried: assign({ split: ({ context }) => ({ ...context.split!, retried: true }) }),
  clearRetried: assign({ split: ({ context }) => ({ ...context.split!, retried: false, blindRetries: 0 }) }),
  countBlindRetry: assign({ split: ({ context, event }) => (event.type === 'TDH.MEM.RANGE.BLOCK' ? { ...context.split!, blindRetries: context.split!.blindRetries + 1 } : context.split!) }),
  /**
   * kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE): this thread is outside guest mode itself.
   * XState's own enqueueActions: this action takes params, which the one typed in vcpuSetup.ts cannot.
   */
  kickAll: xstateEnqueueActions<KvmVcpuContext, MachineEvent, { waitForSeptZap: boolean }, MachineEvent, never, never, never, never, Emitted>(({ context, enqueue }, params) => {
    const msgs = allCpusRequest('KVM_REQ_OUTSIDE_GUEST_MODE', context.vcpus, context.vcpu, params.waitForSeptZap);
    enqueue.assign({ kickWaiting: msgs.length });
    for (const m of msgs) enqueue.emit(m);
  }),
  countAck: assign({ kickWaiting: ({ context }) => context.kickWaiting - 1 }),
  endSeptZapWait: enqueueActions(({ context, enqueue }) => {
    if (context.split!.retried) for (const m of allCpusRequest('SEPT_ZAP_DONE', context.vcpus, context.vcpu)) enqueue.emit(m);
  }),
};

/** Substates of handlingEptViolation (mmuPageFault.ts), entered from its `checking` state. */
export const tdxCheckAcceptLevelStates = {
  /** tdx_check_accept_level: the unlocked pre-check is safe because the flag is only ever set (§6.iii step 3). */
  checkingAcceptLevel: {
    entry: 'readGuestInhibit',
    on: { LPAGE_INFO: [{ guard: 'guestInhibited', target: 'faultin', actions: 'endSplit' }, { target: 'splitting' }] },
  },
  splitting: {
    initial: 'locking',
    states: {
      locking: { entry: 'lockWrite', on: { MMU_LOCK_ACQUIRED: 'walking' } },
      walking: {
        entry: 'splitWalk',
        on: { TDP_WALK_RESULT: [{ guard: 'hugeLeafCrossing', target: 'blocking', actions: 'recordHuge' }, { target: 'inhibiting' }] },
      },
      // tdx_sept_split_private_spte (§6.iii step 4): the children come back unblocked, no UNBLOCK.
      ...noVcpus('kvmVcpu', 'blocking', 'TDH.MEM.RANGE.BLOCK', 'splitBlock', 'tracking', 'splitBlockUnchecked'),
      ...noVcpus('kvmVcpu', 'tracking', 'TDH.MEM.TRACK', 'splitTrack', 'tracked'),
      tracked: { always: [{ guard: 'kickAfterTrack', target: 'kicking' }, { target: 'demoting' }] },
      kicking: kicking('demoting'),
      ...noVcpus('kvmVcpu', 'demoting', 'TDH.MEM.PAGE.DEMOTE', 'splitDemote', 'linking'),
      linking: { entry: 'splitMirror', always: 'inhibiting' },
      inhibiting: {
        entry: ['setGuestInhibit', 'unlockWrite'],
        always: { target: '#kvmVcpu.handlingEptViolation.faultin', actions: 'endSplit' },
      },
    },
  },
} as const;
