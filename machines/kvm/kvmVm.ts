/**
 * KVM's VM-scope ioctls, run on the VMM's thread against the VM file descriptor: KVM_TDX_INIT_VM and
 * KVM_TDX_FINALIZE_VM as their SEAMCALL sequences (§5b.3 steps 2 and 5), and KVM_SET_MEMORY_ATTRIBUTES
 * (§1.4, §6.iv step 4), which takes mmu_lock for write around the attribute update.
 *
 * KVM_SET_MEMORY_ATTRIBUTES here updates the attributes only; zapping what is mapped on the side that
 * loses the range (BLOCK → TRACK → REMOVE for private leaves) belongs to the MapGPA flow and is not in
 * this actor yet, so the VMM issues it only while the TD is being built, before anything is mapped.
 */
import { setup, assign, emit } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing, type Gprs, type TdParams } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { TDX_SUCCESS, tdxStatusName } from '../../src/arch/tdxStatus.ts';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, EIO } from '../../src/arch/kvmApi.ts';
import { gpaToGfn } from '../../src/arch/gpa.ts';

export interface KvmVmInput {
  tdr: bigint;
  hkid: number;
  tdcs: readonly bigint[];
  tdParamsPa: bigint;
  tdParams: TdParams;
}

export interface KvmVmContext extends KvmVmInput {
  /** struct kvm_tdx's TD state (§1.4, §5b.2). */
  tdState: 'TD_STATE_UNINITIALIZED' | 'TD_STATE_INITIALIZED' | 'TD_STATE_RUNNABLE';
  tdcsAdded: number;
  /** The KVM_SET_MEMORY_ATTRIBUTES in progress. */
  attrs: { address: bigint; size: bigint; attributes: bigint } | null;
  error: string | null;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;
const TDX = 'tdx';
const MMU = 'kvm.mmu';

export const kvmVmMachine = setup({
  types: {
    context: {} as KvmVmContext,
    events: {} as MachineEvent,
    input: {} as KvmVmInput,
    emitted: {} as Emitted,
  },
  guards: {
    ok: ({ event }) => (event.msg.payload as Gprs).RAX === TDX_SUCCESS,
    moreTdcs: ({ context }) => context.tdcsAdded < context.tdcs.length,
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
  context: ({ input }) => ({ ...input, tdState: 'TD_STATE_UNINITIALIZED', tdcsAdded: 0, attrs: null, error: null }),
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
        creating: { entry: 'mngCreate', on: { 'TDH.MNG.CREATE': [{ guard: 'ok', target: 'configuringKey' }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] } },
        configuringKey: { entry: 'keyConfig', on: { 'TDH.MNG.KEY.CONFIG': [{ guard: 'ok', target: 'nextTdcs' }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] } },
        nextTdcs: { always: [{ guard: 'moreTdcs', target: 'addingTdcs' }, { target: 'initializing' }] },
        addingTdcs: { entry: 'mngAddcx', on: { 'TDH.MNG.ADDCX': [{ guard: 'ok', target: 'nextTdcs', actions: 'countTdcs' }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] } },
        initializing: {
          entry: 'mngInit',
          on: { 'TDH.MNG.INIT': [{ guard: 'ok', target: '#kvmVm.idle', actions: ['initialized', 'initVmDone'] }, { target: '#kvmVm.initVmFailed', actions: 'recordError' }] },
        },
      },
    },
    initVmFailed: { always: { target: 'idle', actions: 'initVmFailed' } },
    /** tdx_td_finalize: TDH.MR.FINALIZE → TD_STATE_RUNNABLE (§5b.3 step 5). */
    finalizing: {
      entry: 'mrFinalize',
      on: { 'TDH.MR.FINALIZE': [{ guard: 'ok', target: 'idle', actions: ['runnable', 'finalizeDone'] }, { target: 'idle', actions: ['recordError', 'finalizeFailed'] }] },
    },
    settingAttributes: {
      initial: 'locking',
      states: {
        locking: { entry: 'lockWrite', on: { MMU_LOCK_ACQUIRED: 'updating' } },
        updating: { entry: 'setAttributes', on: { SET_ATTRIBUTES_DONE: { target: '#kvmVm.idle', actions: ['unlockWrite', 'attrsDone', 'endAttrs'] } } },
      },
    },
  },
});
