/**
 * tdx_vcpu_ioctl: the vCPU ioctls of the TD build (§5b.3). KVM_TDX_INIT_VCPU (tdx_vcpu_init) creates the
 * vCPU in the module: TDH.VP.CREATE, TDH.VP.ADDCX per TDCX page, TDH.VP.INIT, then three TDH.VP.WRs that
 * set up posted interrupts in the TD VMCS (the notification vector, the descriptor's address, the
 * pin-based control); it is the first
 * vcpu_load, so teardown later flushes the vCPU on its CPU (tdxVcpuFree.ts). KVM_TDX_INIT_MEM_REGION
 * (tdx_vcpu_init_mem_region → tdx_gmem_post_populate) maps each page of the initial image through the
 * fault path (mmuPageFault.ts) with TDH.MEM.PAGE.ADD as the leaf hook, then measures it with TDH.MR.EXTEND.
 *
 * A host thread may issue INIT_MEM_REGION itself (QEMU's concurrent build). Before any page is added the
 * kernel refuses it with -EINVAL on a vCPU not yet through INIT_VCPU, for flags other than
 * KVM_TDX_MEASURE_MEMORY_REGION, a source or GPA not page-aligned, a zero source or page count, a range
 * that wraps or is not private, and once the TD is RUNNABLE (tdx_vcpu_unlocked_ioctl after it holds the
 * VM-state locks); a source page the VMM has not mapped fails get_user_pages in kvm_gmem_populate (-EFAULT).
 * The RUNNABLE check asks kvm.vm (pre_fault_allowed is set with RUNNABLE) only for a host thread's call, so
 * the default build's messages stay as they were.
 */
import { out, payloadOf } from '../../src/protocol/messages.ts';
import { EPT_VIOLATION_ACC_WRITE } from '../../src/arch/vmx.ts';
import { KVM_TDX_MEASURE_MEMORY_REGION, EIO, EINVAL, EFAULT } from '../../src/arch/kvmApi.ts';
import { PAGE_SIZE } from '../../src/arch/gpa.ts';
import { TDX_EXTENDMR_CHUNKSIZE, TDVPS_CLASS_VMCS, buildTdxField } from '../../src/arch/tdxStatus.ts';
import { POSTED_INTR_VECTOR, VMCS_POSTED_INTR_NV, VMCS_POSTED_INTR_DESC_ADDR, VMCS_PIN_BASED_VM_EXEC_CONTROL, PIN_BASED_POSTED_INTR } from '../../src/arch/vmx.ts';
import { beginFault } from './kvmPageFault.ts';
import { assign, emit, type VcpuGuards } from './vcpuSetup.ts';

/** TDVPS_VMCS(field): a TD VMCS field as TDH.VP.RD/WR name it. */
const vmcsField = (encoding: number) => buildTdxField(TDVPS_CLASS_VMCS, BigInt(encoding));

export const tdxVcpuIoctlGuards = {
  moreTdcx: ({ context }) => context.build.tdcxAdded < context.tdcx.length,
  measuring: ({ context }) => (context.build.region!.flags & KVM_TDX_MEASURE_MEMORY_REGION) !== 0,
  moreChunks: ({ context }) => context.build.region!.chunk < Number(PAGE_SIZE) / TDX_EXTENDMR_CHUNKSIZE,
  morePages: ({ context }) => context.build.region!.page + 1 < context.build.region!.nrPages,
  /** The checks of tdx_vcpu_init_mem_region that need no other actor. */
  regionRefused: ({ context, event }) => {
    const r = payloadOf(event, 'ioctl', 'KVM_TDX_INIT_MEM_REGION');
    const end = r.gpa + BigInt(r.nr_pages) * PAGE_SIZE;
    const shared = (g: bigint) => ((g >> 12n) & context.gfnDirectBits) !== 0n;
    return (
      !context.loaded ||
      (r.flags & ~KVM_TDX_MEASURE_MEMORY_REGION) !== 0 ||
      r.source_addr === 0n ||
      r.source_addr % PAGE_SIZE !== 0n ||
      r.gpa % PAGE_SIZE !== 0n ||
      r.nr_pages === 0 ||
      end <= r.gpa ||
      shared(r.gpa) ||
      shared(end - 1n)
    );
  },
  /** A host thread's call: the default build's always comes before FINALIZE. */
  regionFromThread: ({ context }) => context.build.caller !== undefined,
  tdRunnable: ({ event }) => payloadOf(event, 'kvm-call-return', 'pre_fault_allowed').allowed,
  /** Every source page of the region lies in the VMM's mapped staging pages (absent: the build's own, always mapped). */
  sourceUnmapped: ({ context }) => {
    const r = context.build.region!;
    const m = context.build.sourcePages;
    return m !== undefined && (r.source < m.base || r.source + BigInt(r.nrPages) * PAGE_SIZE > m.end);
  },
} satisfies VcpuGuards;

export const tdxVcpuIoctlActions = {
  // ---- KVM_TDX_INIT_VCPU (§5b.3 step 3) ----
  markLoaded: assign({ loaded: () => true }),
  /** The ioctl returns to the thread that issued it; noted only for a host thread other than the VMM's main one. */
  noteCaller: assign({
    build: ({ context, event }) => {
      const { caller, ...build } = context.build;
      return event.msg.from === 'vmm' ? (caller === undefined ? context.build : build) : { ...build, caller: event.msg.from };
    },
  }),
  vpCreate: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.CREATE', { RCX: context.tdvpr, RDX: context.tdr })),
  vpAddcx: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.ADDCX', { RCX: context.tdcx[context.build.tdcxAdded]!, RDX: context.tdvpr })),
  countTdcx: assign({ build: ({ context }) => ({ ...context.build, tdcxAdded: context.build.tdcxAdded + 1 }) }),
  /** TDH.VP.INIT(TDVPR, initial RCX, x2APIC id): the model uses the vCPU number as the APIC id. */
  vpInit: emit(({ context }) => out('tdx', 'seamcall', 'TDH.VP.INIT', { RCX: context.tdvpr, RDX: 0n, R8: BigInt(context.vcpu) })),
  /** TDH.VP.WR(TDVPR, TDVPS_VMCS(field), value, mask): the posted-interrupt notification vector, 16 bits. */
  writePiVector: emit(({ context }) =>
    out('tdx', 'seamcall', 'TDH.VP.WR', { RCX: context.tdvpr, RDX: vmcsField(VMCS_POSTED_INTR_NV), R8: BigInt(POSTED_INTR_VECTOR), R9: 0xffffn }),
  ),
  /** __pa(&tdx->vt.pi_desc), 64 bits. */
  writePiDesc: emit(({ context }) =>
    out('tdx', 'seamcall', 'TDH.VP.WR', { RCX: context.tdvpr, RDX: vmcsField(VMCS_POSTED_INTR_DESC_ADDR), R8: context.piDescPa, R9: 0xffffffffffffffffn }),
  ),
  /** td_vmcs_setbit32: value and mask are both the bit. */
  setPinBasedPostedIntr: emit(({ context }) =>
    out('tdx', 'seamcall', 'TDH.VP.WR', { RCX: context.tdvpr, RDX: vmcsField(VMCS_PIN_BASED_VM_EXEC_CONTROL), R8: BigInt(PIN_BASED_POSTED_INTR), R9: BigInt(PIN_BASED_POSTED_INTR) }),
  ),
  initVcpuDone: emit(({ context }) => out(context.build.caller ?? 'vmm', 'ioctl-return', 'KVM_TDX_INIT_VCPU', { vcpu: context.vcpu, ret: 0 })),
  initVcpuInvalid: emit(({ context, event }) => out(event.msg.from, 'ioctl-return', 'KVM_TDX_INIT_VCPU', { vcpu: context.vcpu, ret: EINVAL })),
  initVcpuFailed: emit(({ context }) => out(context.build.caller ?? 'vmm', 'ioctl-return', 'KVM_TDX_INIT_VCPU', { vcpu: context.vcpu, ret: EIO })),
  // ---- KVM_TDX_INIT_MEM_REGION (§5b.3 step 4) ----
  beginRegion: assign({
    build: ({ context, event }) => {
      const r = payloadOf(event, 'ioctl', 'KVM_TDX_INIT_MEM_REGION');
      return { ...context.build, region: { source: r.source_addr, gpa: r.gpa, nrPages: r.nr_pages, flags: r.flags, page: 0, chunk: 0 } };
    },
  }),
  /** KVM_TDX_INIT_MEM_REGION maps each page through the same fault path, with PAGE.ADD as the leaf hook. */
  beginPopulateFault: assign({
    fault: ({ context }) => {
      const r = context.build.region!;
      const off = BigInt(r.page) * PAGE_SIZE;
      return beginFault(context, r.gpa + off, BigInt(EPT_VIOLATION_ACC_WRITE), 0n, r.source + off);
    },
  }),
  /** TDH.MR.EXTEND for each 256-byte chunk of the page just added. */
  mrExtend: emit(({ context }) => {
    const r = context.build.region!;
    return out('tdx', 'seamcall', 'TDH.MR.EXTEND', { RCX: r.gpa + BigInt(r.page) * PAGE_SIZE + BigInt(r.chunk * TDX_EXTENDMR_CHUNKSIZE), RDX: context.tdr });
  }),
  nextChunk: assign({ build: ({ context }) => ({ ...context.build, region: { ...context.build.region!, chunk: context.build.region!.chunk + 1 } }) }),
  nextPage: assign({ build: ({ context }) => ({ ...context.build, region: { ...context.build.region!, page: context.build.region!.page + 1, chunk: 0 } }) }),
  regionInvalid: emit(({ context, event }) => out(event.msg.from, 'ioctl-return', 'KVM_TDX_INIT_MEM_REGION', { vcpu: context.vcpu, ret: EINVAL })),
  regionRunnable: emit(({ context }) => out(context.build.caller ?? 'vmm', 'ioctl-return', 'KVM_TDX_INIT_MEM_REGION', { vcpu: context.vcpu, ret: EINVAL })),
  regionFault: emit(({ context }) => out(context.build.caller ?? 'vmm', 'ioctl-return', 'KVM_TDX_INIT_MEM_REGION', { vcpu: context.vcpu, ret: EFAULT })),
  askTdRunnable: emit(({ context }) => out('kvm.vm', 'kvm-call', 'pre_fault_allowed', { vcpu: context.vcpu })),
  regionDone: emit(({ context }) => out(context.build.caller ?? 'vmm', 'ioctl-return', 'KVM_TDX_INIT_MEM_REGION', { vcpu: context.vcpu, ret: 0 })),
  regionFailed: emit(({ context }) => out(context.build.caller ?? 'vmm', 'ioctl-return', 'KVM_TDX_INIT_MEM_REGION', { vcpu: context.vcpu, ret: EIO })),
  endRegion: assign({ build: ({ context }) => ({ ...context.build, region: null }), fault: () => null, frozen: () => null }),
};

export const tdxVcpuIoctlStates = {
  /** tdx_td_vcpu_init: TDH.VP.CREATE, TDH.VP.ADDCX for each TDCX page, TDH.VP.INIT (§5b.3 step 3). */
  initVcpu: {
    initial: 'creating',
    states: {
      creating: {
        entry: 'vpCreate',
        on: { 'TDH.VP.CREATE': [{ guard: 'seamcallOk', target: 'addingCx' }, { target: '#kvmVcpu.inUserspace', actions: 'initVcpuFailed' }] },
      },
      addingCx: {
        entry: 'vpAddcx',
        on: {
          'TDH.VP.ADDCX': [
            { guard: 'seamcallOk', target: 'nextCx', actions: 'countTdcx' },
            { target: '#kvmVcpu.inUserspace', actions: 'initVcpuFailed' },
          ],
        },
      },
      nextCx: { always: [{ guard: 'moreTdcx', target: 'addingCx' }, { target: 'initializing' }] },
      initializing: {
        entry: 'vpInit',
        on: { 'TDH.VP.INIT': [{ guard: 'seamcallOk', target: 'writingPiVector' }, { target: '#kvmVcpu.inUserspace', actions: 'initVcpuFailed' }] },
      },
      // tdx_vcpu_init after tdx_td_vcpu_init: td_vmcs_write16/write64/setbit32, whose failures are only logged.
      writingPiVector: { entry: 'writePiVector', on: { 'TDH.VP.WR': 'writingPiDesc' } },
      writingPiDesc: { entry: 'writePiDesc', on: { 'TDH.VP.WR': 'settingPinBased' } },
      settingPinBased: { entry: 'setPinBasedPostedIntr', on: { 'TDH.VP.WR': { target: '#kvmVcpu.inUserspace', actions: 'initVcpuDone' } } },
    },
  },
  /**
   * tdx_gmem_post_populate per page: map the GPA in the mirror root (SEPT.ADD for missing levels, PAGE.ADD
   * for the leaf), then TDH.MR.EXTEND the 16 chunks of 256 bytes if the VMM asked for a measurement.
   */
  initMemRegion: {
    initial: 'checking',
    states: {
      checking: { always: [{ guard: 'regionFromThread', target: 'checkingTdState' }, { target: 'mappingPage' }] },
      /** kvm_tdx->state == TD_STATE_RUNNABLE → -EINVAL; then the source pages (get_user_pages). */
      checkingTdState: {
        entry: 'askTdRunnable',
        on: {
          pre_fault_allowed: [
            { guard: 'tdRunnable', target: '#kvmVcpu.inUserspace', actions: ['regionRunnable', 'endRegion'] },
            { guard: 'sourceUnmapped', target: '#kvmVcpu.inUserspace', actions: ['regionFault', 'endRegion'] },
            { target: 'mappingPage' },
          ],
        },
      },
      mappingPage: { always: { target: '#kvmVcpu.handlingEptViolation.faultin', actions: 'beginPopulateFault' } },
      extending: { always: [{ guard: 'measuring', target: 'extendingChunk' }, { target: 'pageDone' }] },
      extendingChunk: {
        entry: 'mrExtend',
        on: { 'TDH.MR.EXTEND': [{ guard: 'seamcallOk', target: 'chunkDone', actions: 'nextChunk' }, { target: 'failed' }] },
      },
      chunkDone: { always: [{ guard: 'moreChunks', target: 'extendingChunk' }, { target: 'pageDone' }] },
      pageDone: { always: [{ guard: 'morePages', target: 'mappingPage', actions: 'nextPage' }, { target: '#kvmVcpu.inUserspace', actions: ['regionDone', 'endRegion'] }] },
      failed: { always: { target: '#kvmVcpu.inUserspace', actions: ['regionFailed', 'endRegion'] } },
    },
  },
} as const;
