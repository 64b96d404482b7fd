/**
 * KVM's VM-scope ioctls, run on the VMM's thread against the VM file descriptor: KVM_TDX_INIT_VM and
 * KVM_TDX_FINALIZE_VM as their SEAMCALL sequences (§5b.3 steps 2 and 5), and KVM_SET_MEMORY_ATTRIBUTES
 * (§1.4, §6.iv step 4).
 *
 * KVM_SET_MEMORY_ATTRIBUTES takes mmu_lock for write and first zaps what is mapped on the side that loses
 * the range. Becoming shared zaps the mirror root's private leaves: each SPTE goes non-present, then the
 * remove hook runs TDH.MEM.RANGE.BLOCK → TDH.MEM.TRACK → kick every vCPU out of guest mode →
 * TDH.MEM.PAGE.REMOVE → TDH.PHYMEM.PAGE.WBINVD → the page is cleared with KeyID 0. BLOCK, TRACK and
 * REMOVE go through tdh_do_no_vcpus: on TDX_OPERAND_BUSY, kick every vCPU and try once more; a second
 * failure, or any other error, is a KVM_BUG_ON (§7.3). Becoming private zaps the direct root's shared
 * leaves and flushes remote TLBs. Then the attributes are stored and the lock dropped.
 */
import { setup, assign, emit, enqueueActions, and } from 'xstate';
import { noVcpus, kicking, allCpusRequest } from './noVcpus.ts';
import { out, payloadOf, type MachineEvent, type Outgoing, type Gprs, type TdParams, type HostSeamcall } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { TDX_SUCCESS, tdxStatusName } from '../../src/arch/tdxStatus.ts';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, EIO } from '../../src/arch/kvmApi.ts';
import { gpaToGfn, gfnToGpa, pgLevelToTdxLevel, makePageInfo, PAGE_SIZE } from '../../src/arch/gpa.ts';
import { isOperandBusy } from '../../src/arch/tdxStatus.ts';
import { SHADOW_NONPRESENT_VALUE, spteToPfn } from '../../src/arch/spte.ts';
import { hex } from '../../src/arch/hex.ts';
import type { LeafAt } from './tdpIter.ts';

export interface KvmVmInput {
  tdr: bigint;
  hkid: number;
  tdcs: readonly bigint[];
  tdParamsPa: bigint;
  tdParams: TdParams;
  vcpus: number;
  /** set_hkid_to_hpa: the HKID sits above the CPU's physical-address bits (boot_cpu_data.x86_phys_bits). */
  hkidShift: number;
}

/** The leaf being zapped and how far its remove hook has gone. */
export interface ZapState {
  root: 'mirror' | 'direct';
  leaves: readonly LeafAt[];
  at: number;
  /** tdh_do_no_vcpus already kicked the vCPUs and retried the current SEAMCALL once. */
  retried: boolean;
}

export interface KvmVmContext extends KvmVmInput {
  /** struct kvm_tdx's TD state (§1.4, §5b.2). */
  tdState: 'TD_STATE_UNINITIALIZED' | 'TD_STATE_INITIALIZED' | 'TD_STATE_RUNNABLE';
  tdcsAdded: number;
  /** The KVM_SET_MEMORY_ATTRIBUTES in progress. */
  attrs: { address: bigint; size: bigint; attributes: bigint } | null;
  zap: ZapState | null;
  /** vCPUs that have not yet acknowledged the kvm_make_all_cpus_request in progress. */
  kickWaiting: number;
  error: string | null;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;
const TDX = 'tdx';
const MMU = 'kvm.mmu';
const leaf = (c: KvmVmContext) => c.zap!.leaves[c.zap!.at]!;
/** The zapped leaf's private GPA | TDX level, as the remove hook passes it (RCX, §0.2). */
const leafPageInfo = (c: KvmVmContext) => makePageInfo(gfnToGpa(leaf(c).gfn), pgLevelToTdxLevel(leaf(c).pgLevel));
const leafPa = (c: KvmVmContext) => spteToPfn(leaf(c).spte) << 12n;

export const kvmVmMachine = setup({
  types: {
    context: {} as KvmVmContext,
    events: {} as MachineEvent,
    input: {} as KvmVmInput,
    emitted: {} as Emitted,
  },
  guards: {
    seamcallOk: ({ event }) => (event.msg.payload as Gprs).RAX === TDX_SUCCESS,
    moreTdcs: ({ context }) => context.tdcsAdded < context.tdcs.length,
    seamcallBusy: ({ event }) => isOperandBusy((event.msg.payload as Gprs).RAX!),
    retried: ({ context }) => context.zap!.retried,
    acksDone: ({ context }) => context.kickWaiting === 0,
    moreLeaves: ({ context }) => context.zap!.at < context.zap!.leaves.length,
    zappingMirror: ({ context }) => context.zap!.root === 'mirror',
    zappedShared: ({ context }) => context.zap!.root === 'direct' && context.zap!.leaves.length > 0,
    hugeLeaf: ({ context }) => leaf(context).pgLevel > 1,
  },
  actions: {
    mngCreate: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.CREATE', { RCX: context.tdr, RDX: BigInt(context.hkid) })),
    /** One online CPU per package; the model has one package (§5b.3 step 2). */
    keyConfig: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.KEY.CONFIG', { RCX: context.tdr })),
    mngAddcx: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.ADDCX', { RCX: context.tdcs[context.tdcsAdded]!, RDX: context.tdr })),
    countTdcs: assign({ tdcsAdded: ({ context }) => context.tdcsAdded + 1 }),
    mngInit: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MNG.INIT', { RCX: context.tdr, RDX: context.tdParamsPa, tdParams: context.tdParams })),
    initialized: assign({ tdState: () => 'TD_STATE_INITIALIZED' as const }),
    initVmDone: emit(() => out('vmm', 'ioctl-return', 'KVM_TDX_INIT_VM', { ret: 0 })),
    mrFinalize: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MR.FINALIZE', { RCX: context.tdr })),
    runnable: assign({ tdState: () => 'TD_STATE_RUNNABLE' as const }),
    finalizeDone: emit(() => out('vmm', 'ioctl-return', 'KVM_TDX_FINALIZE_VM', { ret: 0 })),
    recordError: assign({ error: ({ event }) => `${event.type} returned ${tdxStatusName((event.msg.payload as Gprs).RAX!)}` }),
    initVmFailed: emit(() => out('vmm', 'ioctl-return', 'KVM_TDX_INIT_VM', { ret: EIO })),
    finalizeFailed: emit(() => out('vmm', 'ioctl-return', 'KVM_TDX_FINALIZE_VM', { ret: EIO })),
    beginAttrs: assign({ attrs: ({ event }) => payloadOf(event, 'ioctl', 'KVM_SET_MEMORY_ATTRIBUTES') }),
    /** kvm_unmap_gfn_range with the filter of the side that loses the range: the mirror root if it becomes shared. */
    leafScan: emit(({ context }) => {
      const a = context.attrs!;
      const toPrivate = (a.attributes & BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE)) !== 0n;
      return out(MMU, 'mmu', 'TDP_LEAF_SCAN', { vcpu: -1, root: toPrivate ? 'direct' : 'mirror', gfnStart: gpaToGfn(a.address), gfnEnd: gpaToGfn(a.address + a.size) });
    }),
    recordLeaves: assign({
      zap: ({ event }) => {
        const r = payloadOf(event, 'mmu', 'TDP_LEAF_SCAN_RESULT');
        return { root: r.root, leaves: r.leaves, at: 0, retried: false };
      },
    }),
    /** tdp_mmu_set_spte under write mmu_lock: the leaf becomes SHADOW_NONPRESENT_VALUE before any hook runs. */
    zapSpte: emit(({ context }) => {
      const l = leaf(context);
      return out(MMU, 'mmu', 'SPTE_WRITE', { vcpu: -1, root: context.zap!.root, gfn: l.gfn, pgLevel: l.pgLevel, tablePfn: l.tablePfn, index: l.index, oldSpte: l.spte, newSpte: SHADOW_NONPRESENT_VALUE, childPfn: null });
    }),
    nextLeaf: assign({ zap: ({ context }) => ({ ...context.zap!, at: context.zap!.at + 1, retried: false }) }),
    block: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MEM.RANGE.BLOCK', { RCX: leafPageInfo(context), RDX: context.tdr })),
    track: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MEM.TRACK', { RCX: context.tdr })),
    remove: emit(({ context }) => out(TDX, 'seamcall', 'TDH.MEM.PAGE.REMOVE', { RCX: leafPageInfo(context), RDX: context.tdr })),
    wbinvd: emit(({ context }) => out(TDX, 'seamcall', 'TDH.PHYMEM.PAGE.WBINVD', { RCX: leafPa(context) | (BigInt(context.hkid) << BigInt(context.hkidShift)) })),
    /** The page goes back to the host: cleared with KeyID 0 (MOVDIR64B), so no TD-key line survives. */
    clearPage: emit(({ context }) => out('hw.mem', 'mem', 'MEM_ZERO', { pa: leafPa(context), bytes: PAGE_SIZE, keyid: 0, tag: 'kvm.vm' })),
    markRetried: assign({ zap: ({ context }) => ({ ...context.zap!, retried: true }) }),
    clearRetried: assign({ zap: ({ context }) => ({ ...context.zap!, retried: false }) }),
    /** kvm_make_all_cpus_request: every vCPU, each acknowledging when it is (or has been forced) out of guest mode. */
    kickAll: enqueueActions(({ context, enqueue }) => {
      const msgs = allCpusRequest('KVM_REQ_OUTSIDE_GUEST_MODE', context.vcpus);
      enqueue.assign({ kickWaiting: msgs.length });
      for (const m of msgs) enqueue.emit(m);
    }),
    /** kvm_flush_remote_tlbs after shared SPTEs were zapped (TDX: each vCPU flushes on its next entry). */
    flushRemoteTlbs: enqueueActions(({ context, enqueue }) => {
      const msgs = allCpusRequest('KVM_REQ_TLB_FLUSH', context.vcpus);
      enqueue.assign({ kickWaiting: msgs.length });
      for (const m of msgs) enqueue.emit(m);
    }),
    countAck: assign({ kickWaiting: ({ context }) => context.kickWaiting - 1 }),
    kvmBugSeamcall: assign({
      error: ({ context, event }) =>
        `KVM_BUG_ON: ${event.type} for GPA ${hex(gfnToGpa(leaf(context).gfn))} returned ${tdxStatusName((event.msg.payload as Gprs).RAX!)}${context.zap!.retried ? ' after all vCPUs were kicked' : ''} (§7.3)`,
    }),
    reportDeath: emit(({ context }): Emitted => ({ type: 'tdxsim.failure', reason: 'KVM bug', detail: `kvm.vm: ${context.error}` })),
    endZap: assign({ zap: () => null }),
    reportModelLimit: emit(({ context }): Emitted => ({
      type: 'tdxsim.failure',
      reason: 'model limit',
      detail: `kvm.vm: converting part of the 2M private mapping at ${hex(gfnToGpa(leaf(context).gfn))} needs the huge-page series' split before the zap, which is not modelled yet`,
    })),
    lockWrite: emit(() => out(MMU, 'mmu', 'MMU_LOCK_WRITE', { vcpu: -1 })),
    setAttributes: emit(({ context }) => {
      const a = context.attrs!;
      return out(MMU, 'mmu', 'SET_ATTRIBUTES', { vcpu: -1, gfnStart: gpaToGfn(a.address), gfnEnd: gpaToGfn(a.address + a.size), private: (a.attributes & BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE)) !== 0n });
    }),
    unlockWrite: emit(() => out(MMU, 'mmu', 'MMU_UNLOCK', { vcpu: -1, mode: 'write' })),
    attrsDone: emit(() => out('vmm', 'ioctl-return', 'KVM_SET_MEMORY_ATTRIBUTES', { ret: 0 })),
    endAttrs: assign({ attrs: () => null }),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'kvmVm',
  context: ({ input }) => ({ ...input, tdState: 'TD_STATE_UNINITIALIZED', tdcsAdded: 0, attrs: null, zap: null, kickWaiting: 0, error: null }),
  initial: 'idle',
  on: { '*': { actions: 'unexpected' } },
  states: {
    idle: {
      on: {
        KVM_TDX_INIT_VM: 'initVm',
        KVM_TDX_FINALIZE_VM: 'finalizing',
        KVM_SET_MEMORY_ATTRIBUTES: { target: 'settingAttributes', actions: 'beginAttrs' },
      },
    },
    /** __tdx_td_init: MNG.CREATE, KEY.CONFIG, MNG.ADDCX per TDCS page, MNG.INIT (§5b.3 step 2). */
    initVm: {
      initial: 'creating',
      states: {
        creating: { entry: 'mngCreate', on: { 'TDH.MNG.CREATE': [{ guard: 'seamcallOk', target: 'configuringKey' }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] } },
        configuringKey: { entry: 'keyConfig', on: { 'TDH.MNG.KEY.CONFIG': [{ guard: 'seamcallOk', target: 'nextTdcs' }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] } },
        nextTdcs: { always: [{ guard: 'moreTdcs', target: 'addingTdcs' }, { target: 'initializing' }] },
        addingTdcs: { entry: 'mngAddcx', on: { 'TDH.MNG.ADDCX': [{ guard: 'seamcallOk', target: 'nextTdcs', actions: 'countTdcs' }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] } },
        initializing: {
          entry: 'mngInit',
          on: { 'TDH.MNG.INIT': [{ guard: 'seamcallOk', target: '#kvmVm.idle', actions: ['initialized', 'initVmDone'] }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] },
        },
      },
    },
    initVmFailed: { always: { target: 'idle', actions: 'initVmFailed' } },
    /** tdx_td_finalize: TDH.MR.FINALIZE → TD_STATE_RUNNABLE (§5b.3 step 5). */
    finalizing: {
      entry: 'mrFinalize',
      on: { 'TDH.MR.FINALIZE': [{ guard: 'seamcallOk', target: 'idle', actions: ['runnable', 'finalizeDone'] }, { target: 'idle', actions: ['recordError', 'finalizeFailed'] }] },
    },
    /** kvm_vm_set_mem_attributes: pre-set zap, store, post-set, all under write mmu_lock (§6.iv step 4). */
    settingAttributes: {
      initial: 'locking',
      states: {
        locking: { entry: 'lockWrite', on: { MMU_LOCK_ACQUIRED: 'scanning' } },
        scanning: { entry: 'leafScan', on: { TDP_LEAF_SCAN_RESULT: { target: 'nextLeaf', actions: 'recordLeaves' } } },
        nextLeaf: {
          always: [
            // The huge-page series splits a huge leaf crossing the range before zapping (§6.v); not modelled yet.
            { guard: and(['moreLeaves', 'zappingMirror', 'hugeLeaf']), target: '#kvmVm.modelLimit' },
            { guard: and(['moreLeaves', 'zappingMirror']), target: 'zappingPrivate' },
            { guard: 'moreLeaves', target: 'nextLeaf', reenter: true, actions: ['zapSpte', 'nextLeaf'] },
            { guard: 'zappedShared', target: 'flushing' },
            { target: 'updating' },
          ],
        },
        flushing: {
          entry: 'flushRemoteTlbs',
          always: { guard: 'acksDone', target: 'updating' },
          on: { KVM_REQ_ACK: { actions: 'countAck' } },
        },
        /** The remove hook for one private leaf (tdx_sept_remove_private_spte, §6.iv step 4, §7.4). */
        zappingPrivate: {
          initial: 'writingSpte',
          states: {
            writingSpte: { entry: 'zapSpte', always: 'blocking' },
            ...noVcpus('kvmVm', 'blocking', 'TDH.MEM.RANGE.BLOCK', 'block', 'tracking'),
            ...noVcpus('kvmVm', 'tracking', 'TDH.MEM.TRACK', 'track', 'kicking'),
            /** tdx_track: after TRACK, wait until every vCPU has left the epoch it entered in. */
            kicking: kicking('removing'),
            ...noVcpus('kvmVm', 'removing', 'TDH.MEM.PAGE.REMOVE', 'remove', 'writingBack'),
            writingBack: {
              entry: 'wbinvd',
              on: { 'TDH.PHYMEM.PAGE.WBINVD': [{ guard: 'seamcallOk', target: 'clearing' }, { target: '#kvmVm.vmDead', actions: 'kvmBugSeamcall' }] },
            },
            clearing: {
              entry: 'clearPage',
              on: { MEM_DONE: { target: '#kvmVm.settingAttributes.nextLeaf', actions: 'nextLeaf' } },
            },
          },
        },
        updating: { entry: 'setAttributes', on: { SET_ATTRIBUTES_DONE: { target: '#kvmVm.idle', actions: ['unlockWrite', 'attrsDone', 'endAttrs', 'endZap'] } } },
      },
    },
    /** KVM_BUG_ON: the VM is unusable. */
    vmDead: { entry: 'reportDeath', type: 'final' },
    modelLimit: { entry: 'reportModelLimit', type: 'final' },
  },
});
