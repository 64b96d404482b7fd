/**
 * The vCPU's part of VM destruction (§5b.4), done when kvm.vm asks: tdx_flush_vp (TDH.VP.FLUSH on the
 * vCPU's own CPU, if it was ever loaded there), then tdx_vcpu_free, which reclaims the TDCX and TDVPR
 * pages with TDH.PHYMEM.PAGE.RECLAIM, each cleared (KeyID 0) before it goes back to the kernel.
 */
import { out, type Gprs } from '../../src/protocol/messages.ts';
import { PAGE_SIZE } from '../../src/arch/gpa.ts';
import { TDX_SUCCESS, TDX_VCPU_NOT_ASSOCIATED } from '../../src/arch/tdxStatus.ts';
import { assign, emit, enqueueActions, type VcpuGuards } from './vcpuSetup.ts';

export const tdxVcpuFreeGuards = {
  loaded: ({ context }) => context.loaded,
  morePagesToFree: ({ context }) => context.freeing!.at < context.freeing!.pages.length,
} satisfies VcpuGuards;

export const tdxVcpuFreeActions = {
  vpFlush: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.FLUSH', { RCX: context.tdvpr })),
  /** tdx_flush_vp: TDX_VCPU_NOT_ASSOCIATED is fine (the vCPU never entered on this CPU); a vCPU never loaded needs no SEAMCALL. */
  flushDone: enqueueActions(({ context, event, enqueue }) => {
    const rax = event.msg.kind === 'seamcall-return' ? (event.msg.payload as Gprs).RAX! : TDX_SUCCESS;
    const err = rax === TDX_VCPU_NOT_ASSOCIATED ? TDX_SUCCESS : rax;
    // tdx_disassociate_vp: the vCPU is on no CPU's list any more.
    enqueue.assign({ loaded: false });
    enqueue.emit(out('kvm.vm', 'kvm-call-return', 'tdx_flush_vp', { vcpu: context.vcpu, err }));
  }),
  beginFree: assign({ freeing: ({ context }) => ({ pages: [...context.tdcx, context.tdvpr], at: 0, err: TDX_SUCCESS }) }),
  reclaimControlPage: emit(({ context }) => out('tdx', 'seamcall', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: context.freeing!.pages[context.freeing!.at]! })),
  /** tdx_reclaim_page: a reclaimed page is cleared (MOVDIR64B, KeyID 0) before the kernel frees it. */
  clearControlPage: emit(({ context }) => out('hw.mem', 'mem', 'MEM_ZERO', { pa: context.freeing!.pages[context.freeing!.at]!, bytes: PAGE_SIZE, keyid: 0, tag: `kvm.vcpu${context.vcpu}` })),
  /** A page the module would not give back is leaked (tdx_reclaim_control_page), and freeing goes on. */
  leakControlPage: assign({
    freeing: ({ context, event }) => {
      const f = context.freeing!;
      return { ...f, at: f.at + 1, err: f.err === TDX_SUCCESS ? (event.msg.payload as Gprs).RAX! : f.err };
    },
  }),
  nextControlPage: assign({ freeing: ({ context }) => ({ ...context.freeing!, at: context.freeing!.at + 1 }) }),
  freeDone: enqueueActions(({ context, enqueue }) => {
    enqueue.emit(out('kvm.vm', 'kvm-call-return', 'tdx_vcpu_free', { vcpu: context.vcpu, err: context.freeing!.err }));
    enqueue.assign({ freeing: null });
  }),
};

export const tdxVcpuFreeStates = {
  /** tdx_flush_vp, run on the CPU the vCPU is associated with (§5b.4 step 2, §7.7). */
  flushingVp: {
    entry: 'vpFlush',
    on: { 'TDH.VP.FLUSH': { target: 'inUserspace', actions: 'flushDone' } },
  },
  /** tdx_vcpu_free: TDH.PHYMEM.PAGE.RECLAIM of each TDCX page, then of the TDVPR (§5b.4 step 3). */
  freeing: {
    initial: 'next',
    states: {
      next: { always: [{ guard: 'morePagesToFree', target: 'reclaiming' }, { target: '#kvmVcpu.freed', actions: 'freeDone' }] },
      reclaiming: {
        entry: 'reclaimControlPage',
        on: { 'TDH.PHYMEM.PAGE.RECLAIM': [{ guard: 'seamcallOk', target: 'clearing' }, { target: 'next', actions: 'leakControlPage' }] },
      },
      clearing: { entry: 'clearControlPage', on: { MEM_DONE: { target: 'next', actions: 'nextControlPage' } } },
    },
  },
  /** The vCPU object is gone with its VM. */
  freed: { type: 'final' },
} as const;
