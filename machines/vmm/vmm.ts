/**
 * The userspace VMM (QEMU's role). For a TD it first builds it (§5b.3): marks the guest_memfd ranges
 * private (KVM_SET_MEMORY_ATTRIBUTES), KVM_TDX_INIT_VM, KVM_TDX_INIT_VCPU per vCPU, writes each page of
 * the initial image into a staging page of its own memory and hands it to KVM_TDX_INIT_MEM_REGION with
 * KVM_TDX_MEASURE_MEMORY_REGION, then KVM_TDX_FINALIZE_VM. Then it starts every vCPU thread with KVM_RUN
 * and handles the exits that leave the kernel. For KVM_EXIT_MMIO it performs the access on its device model and re-enters with
 * run->mmio.data filled for reads (§6.i step 12). An access no device claims reads as 0, as QEMU's
 * unassigned-memory handler does, and is counted.
 *
 * Conversions (§6.iv): a KVM_EXIT_HYPERCALL for KVM_HC_MAP_GPA_RANGE becomes KVM_SET_MEMORY_ATTRIBUTES on
 * its chunk (PRIVATE for ENCRYPTED, 0 for DECRYPTED) and the vCPU re-enters with run->hypercall.ret = 0,
 * or EINVAL if the ioctl failed. A KVM_EXIT_MEMORY_FAULT is converted implicitly to what the access wanted
 * (QEMU's kvm_convert_memory) and the vCPU re-enters. The VMM does one conversion at a time, in the order
 * the exits arrived. QEMU also discards the backing of the side the range leaves (guest_memfd punch-hole
 * or madvise); the model keeps both backings.
 *
 * Port I/O (KVM_EXIT_IO) goes to the ACPI PM block of a q35 machine (acpiPm.ts); a write no device claims
 * is dropped and a read answers all ones, as QEMU's unassigned I/O does.
 *
 * A TDX fatal error (KVM_EXIT_SYSTEM_EVENT type TDX_FATAL) is QEMU's guest-panicked event, whose default
 * action shuts the VM down the way a power-off does. A KVM_EXIT_TDX for GetTdVmCallInfo leaf 1 is answered
 * as QEMU's tdx_handle_get_tdvmcall_info does (R11 = SetupEventNotifyInterrupt, which KVM lets userspace
 * offer); any other KVM_EXIT_TDX (GetQuote without a quote service) re-enters with KVM's pre-filled status. The guest's ACPI power-off shuts the VM down the way QEMU's
 * exit path does (§5b.4): every vCPU thread still inside KVM_RUN is signalled (SIG_IPI) and answers with
 * KVM_EXIT_INTR; conversions not yet started are dropped, one in progress finishes; then the process's
 * files close in the order they were opened — the VM fd, each guest_memfd, each vCPU fd — and the last
 * close destroys the VM.
 */
import { setup, assign, emit, enqueueActions } from 'xstate';
import { hex } from '../../src/arch/hex.ts';
import { out, payloadOf, type MachineEvent, type Outgoing } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { deviceRead, deviceWrite, findDevice, type MmioDevice } from './mmioDevice.ts';
import { TDVMCALL_GET_TD_VM_CALL_INFO, TDVMCALL_STATUS_SUCCESS, TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT } from '../../src/arch/tdcall.ts';
import { KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_MEMORY_EXIT_FLAG_PRIVATE, HYPERCALL_RET_EAGAIN, HYPERCALL_RET_EINVAL } from '../../src/arch/kvmApi.ts';
import { PAGE_SIZE } from '../../src/arch/gpa.ts';
import { portRead, portWriteEffect } from './acpiPm.ts';

/** A file the VMM holds, by its anon-inode name. */
export type KvmFile = { name: 'kvm-vm' } | { name: 'kvm-gmem'; slot: number } | { name: 'kvm-vcpu'; vcpu: number };

/** A conversion the VMM performs for a vCPU's exit. */
export interface Conversion {
  vcpu: number;
  address: bigint;
  size: bigint;
  attributes: bigint;
  /** MapGPA completes with run->hypercall.ret; an implicit conversion just re-runs. */
  exit: 'hypercall' | 'memoryFault';
}

/** One step of the TD build, issued in order; each waits for its return. */
export type BuildStep =
  | { kind: 'setAttributes'; address: bigint; size: bigint; attributes: bigint }
  | { kind: 'initVm'; attributes: bigint }
  | { kind: 'initVcpu'; vcpu: number }
  /** Write one word of the image into the VMM's staging page (its own memory, KeyID 0). */
  | { kind: 'stageWord'; pa: bigint; value: bigint }
  | { kind: 'initMemRegion'; vcpu: number; source: bigint; gpa: bigint; nrPages: number; flags: number }
  | { kind: 'finalize' }
  /** Start a playground kthread while the TD is INITIALIZED and wait until it is done. */
  | { kind: 'kthread'; thread: number };

export interface VmmInput {
  vcpus: number;
  devices: readonly MmioDevice[];
  build: readonly BuildStep[];
  /** Answer this many MapGPA exits with EAGAIN first (scenario `vmm.mapGpaEagain`). */
  mapGpaEagain: number;
  /** Memslots backed by a guest_memfd (one file each). */
  gmemSlots: readonly number[];
  /** Playground kthreads (host.kthreadN) to start once the TD is built. */
  kthreads?: readonly number[];
}

export interface VmmContext {
  vcpus: number;
  devices: readonly MmioDevice[];
  build: readonly BuildStep[];
  /** Index of the build step in progress. */
  buildAt: number;
  unassignedAccesses: number;
  /** Data for the KVM_RUN that completes the current KVM_EXIT_MMIO. */
  reply: bigint | null;
  mapGpaEagain: number;
  /** Conversions waiting, the first one in progress. */
  conversions: readonly Conversion[];
  /** Which vCPU threads are inside KVM_RUN (sent KVM_RUN, no exit back yet). */
  inKernel: readonly boolean[];
  gmemSlots: readonly number[];
  /** Files still to close at exit, in the order they were opened. */
  closing: readonly KvmFile[];
  /** Port writes nothing claimed (QEMU's unassigned I/O drops them). */
  unassignedPortWrites: number;
  kthreads: readonly number[];
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

function withFlag(flags: readonly boolean[], i: number, value: boolean): boolean[] {
  const next = flags.slice();
  next[i] = value;
  return next;
}

export const vmmMachine = setup({
  types: {
    context: {} as VmmContext,
    events: {} as MachineEvent,
    input: {} as VmmInput,
    emitted: {} as Emitted,
  },
  guards: {
    hasBuild: ({ context }) => context.build.length > 0,
    stepFailed: ({ event }) => event.msg.kind === 'ioctl-return' && (event.msg.payload as { ret: number }).ret !== 0,
    buildDone: ({ context }) => context.buildAt + 1 >= context.build.length,
    eagainLeft: ({ context }) => context.mapGpaEagain > 0,
    idleConverting: ({ context }) => context.conversions.length === 0,
    moreConversions: ({ context }) => context.conversions.length > 1,
    poweroff: ({ event }) => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_IO');
      return e.direction === KVM_EXIT_IO_OUT && portWriteEffect(e.port, e.size, e.data) === 'poweroff';
    },
    portIn: ({ event }) => payloadOf(event, 'kvm-exit', 'KVM_EXIT_IO').direction === KVM_EXIT_IO_IN,
    allStopped: ({ context }) => context.inKernel.every((k) => !k) && context.conversions.length === 0,
    moreFiles: ({ context }) => context.closing.length > 1,
  },
  actions: {
    issueBuildStep: emit(({ context }) => {
      const b = context.build[context.buildAt]!;
      switch (b.kind) {
        case 'setAttributes':
          return out('kvm.vm', 'ioctl', 'KVM_SET_MEMORY_ATTRIBUTES', { address: b.address, size: b.size, attributes: b.attributes });
        case 'initVm':
          return out('kvm.vm', 'ioctl', 'KVM_TDX_INIT_VM', { attributes: b.attributes });
        case 'initVcpu':
          return out(`kvm.vcpu${b.vcpu}`, 'ioctl', 'KVM_TDX_INIT_VCPU', { vcpu: b.vcpu });
        case 'stageWord':
          return out('hw.mem', 'mem', 'MEM_WRITE', { pa: b.pa, size: 8, keyid: 0, value: b.value, tag: 'vmm' });
        case 'initMemRegion':
          return out(`kvm.vcpu${b.vcpu}`, 'ioctl', 'KVM_TDX_INIT_MEM_REGION', { vcpu: b.vcpu, source_addr: b.source, gpa: b.gpa, nr_pages: b.nrPages, flags: b.flags });
        case 'finalize':
          return out('kvm.vm', 'ioctl', 'KVM_TDX_FINALIZE_VM', {});
        case 'kthread':
          return out(`host.kthread${b.thread}`, 'kthread', 'KTHREAD_START', { thread: b.thread });
      }
    }),
    nextBuildStep: assign({ buildAt: ({ context }) => context.buildAt + 1 }),
    buildFailed: emit(({ event }): Emitted => ({
      type: 'tdxsim.failure',
      reason: 'VMM error',
      detail: `${event.type} failed with ${(event.msg.payload as { ret: number }).ret}: the TD was not built`,
    })),
    /** KVM_HC_MAP_GPA_RANGE: args[0] GPA, args[1] 4K pages, args[2] ENCRYPTED or DECRYPTED (§6.iv step 3). */
    queueMapGpa: assign({
      conversions: ({ context, event }) => {
        const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_HYPERCALL');
        const [address, pages, attrs] = e.args;
        const attributes = (attrs & BigInt(KVM_MAP_GPA_RANGE_ENCRYPTED)) !== 0n ? BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE) : 0n;
        return [...context.conversions, { vcpu: e.vcpu, address, size: pages * PAGE_SIZE, attributes, exit: 'hypercall' as const }];
      },
    }),
    /** kvm_convert_memory on a memory fault: make the page what the access wanted. */
    queueImplicit: assign({
      conversions: ({ context, event }) => {
        const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_MEMORY_FAULT');
        const attributes = (e.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) !== 0 ? BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE) : 0n;
        return [...context.conversions, { vcpu: e.vcpu, address: e.gpa, size: e.size, attributes, exit: 'memoryFault' as const }];
      },
    }),
    convert: emit(({ context }) => {
      const c = context.conversions[0]!;
      return out('kvm.vm', 'ioctl', 'KVM_SET_MEMORY_ATTRIBUTES', { address: c.address, size: c.size, attributes: c.attributes });
    }),
    /** The converted vCPU re-enters; a MapGPA learns whether the ioctl worked. */
    converted: enqueueActions(({ context, event, enqueue }) => {
      const c = context.conversions[0]!;
      const ok = payloadOf(event, 'ioctl-return', 'KVM_SET_MEMORY_ATTRIBUTES').ret === 0;
      const run = c.exit === 'hypercall' ? { vcpu: c.vcpu, mmioData: null, hypercallRet: ok ? 0 : HYPERCALL_RET_EINVAL } : { vcpu: c.vcpu, mmioData: null };
      if (c.exit === 'memoryFault' && !ok) {
        enqueue.emit({ type: 'tdxsim.failure', reason: 'VMM error', detail: `vmm: converting ${hex(c.address)} for a KVM_EXIT_MEMORY_FAULT failed; QEMU stops the vCPU` });
      } else {
        enqueue.emit(out(`kvm.vcpu${c.vcpu}`, 'ioctl', 'KVM_RUN', run));
        enqueue.assign({ inKernel: withFlag(context.inKernel, c.vcpu, true) });
      }
      enqueue.assign({ conversions: context.conversions.slice(1) });
    }),
    /** The scenario asked the VMM to refuse this MapGPA chunk for now. */
    answerEagain: enqueueActions(({ context, event, enqueue }) => {
      const v = payloadOf(event, 'kvm-exit', 'KVM_EXIT_HYPERCALL').vcpu;
      enqueue.assign({ mapGpaEagain: context.mapGpaEagain - 1, inKernel: withFlag(context.inKernel, v, true) });
      enqueue.emit(out(event.msg.from, 'ioctl', 'KVM_RUN', { vcpu: v, mmioData: null, hypercallRet: HYPERCALL_RET_EAGAIN }));
    }),
    startVcpus: enqueueActions(({ context, enqueue }) => {
      for (const t of context.kthreads) enqueue.emit(out(`host.kthread${t}`, 'kthread', 'KTHREAD_START', { thread: t }));
      for (let v = 0; v < context.vcpus; v++) enqueue.emit(out(`kvm.vcpu${v}`, 'ioctl', 'KVM_RUN', { vcpu: v, mmioData: null }));
      enqueue.assign({ inKernel: context.inKernel.map(() => true) });
    }),
    /** Every exit returns the vCPU thread to userspace. */
    markExited: assign({ inKernel: ({ context, event }) => withFlag(context.inKernel, (event.msg.payload as { vcpu: number }).vcpu, false) }),
    /** A write to a port nothing claims is dropped (and counted); a PM write that is no power-off changes nothing here. The vCPU goes on. */
    ignorePortWrite: enqueueActions(({ context, event, enqueue }) => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_IO');
      const v = e.vcpu;
      const unassigned = portWriteEffect(e.port, e.size, e.data) === 'unassigned' ? 1 : 0;
      enqueue.assign({ unassignedPortWrites: context.unassignedPortWrites + unassigned, inKernel: withFlag(context.inKernel, v, true) });
      enqueue.emit(out(event.msg.from, 'ioctl', 'KVM_RUN', { vcpu: v, mmioData: null }));
    }),
    /** An IN: the device model's (or the unassigned handler's) bytes at data_offset, then KVM_RUN again. */
    answerPortRead: enqueueActions(({ context, event, enqueue }) => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_IO');
      enqueue.assign({ inKernel: withFlag(context.inKernel, e.vcpu, true) });
      enqueue.emit(out(event.msg.from, 'ioctl', 'KVM_RUN', { vcpu: e.vcpu, mmioData: null, ioData: portRead(e.port, e.size) }));
    }),
    /** tdx_handle_get_tdvmcall_info for leaf 1; other KVM_EXIT_TDX keep what KVM pre-filled. */
    answerTdx: enqueueActions(({ context, event, enqueue }) => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_TDX');
      const tdx =
        e.nr === TDVMCALL_GET_TD_VM_CALL_INFO && e.get_tdvmcall_info?.leaf === 1n
          ? { ret: TDVMCALL_STATUS_SUCCESS, r11: TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT, r12: 0n, r13: 0n, r14: 0n }
          : e.get_tdvmcall_info !== undefined
            ? { ret: e.get_tdvmcall_info.ret, r11: e.get_tdvmcall_info.r11, r12: e.get_tdvmcall_info.r12, r13: e.get_tdvmcall_info.r13, r14: e.get_tdvmcall_info.r14 }
            : { ret: e.get_quote!.ret };
      enqueue.assign({ inKernel: withFlag(context.inKernel, e.vcpu, true) });
      enqueue.emit(out(event.msg.from, 'ioctl', 'KVM_RUN', { vcpu: e.vcpu, mmioData: null, tdx }));
    }),
    /** pause_all_vcpus: qemu_cpu_kick on each thread still in KVM_RUN; conversions not started are dropped. */
    stopVcpus: enqueueActions(({ context, enqueue }) => {
      for (const [v, k] of context.inKernel.entries()) if (k) enqueue.emit(out(`kvm.vcpu${v}`, 'signal', 'SIG_IPI', { vcpu: v }));
      enqueue.assign({ conversions: context.conversions.slice(0, 1) });
    }),
    conversionAbandoned: assign({ conversions: () => [] }),
    /** exit(): the kernel closes the process's files in descriptor order. */
    planCloses: assign({
      closing: ({ context }) => [
        { name: 'kvm-vm' as const },
        ...context.gmemSlots.map((slot) => ({ name: 'kvm-gmem' as const, slot })),
        ...context.inKernel.map((_, vcpu) => ({ name: 'kvm-vcpu' as const, vcpu })),
      ],
    }),
    closeFile: emit(({ context }) => {
      const f = context.closing[0]!;
      if (f.name === 'kvm-gmem') return out('kvm.vm', 'close', 'kvm-gmem', { slot: f.slot });
      if (f.name === 'kvm-vcpu') return out('kvm.vm', 'close', 'kvm-vcpu', { vcpu: f.vcpu });
      return out('kvm.vm', 'close', 'kvm-vm', {});
    }),
    nextFile: assign({ closing: ({ context }) => context.closing.slice(1) }),
    handleMmio: assign(({ context, event }) => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_MMIO');
      const dev = findDevice(context.devices, e.phys_addr);
      if (dev === undefined) return { unassignedAccesses: context.unassignedAccesses + 1, reply: e.is_write ? null : 0n };
      if (e.is_write) {
        return { devices: context.devices.map((d) => (d === dev ? deviceWrite(d, e.phys_addr, e.len, e.data) : d)), reply: null };
      }
      return { reply: deviceRead(dev, e.phys_addr, e.len) };
    }),
    resume: enqueueActions(({ context, event, enqueue }) => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_MMIO');
      enqueue.assign({ inKernel: withFlag(context.inKernel, e.vcpu, true) });
      enqueue.emit(out(event.msg.from, 'ioctl', 'KVM_RUN', { vcpu: e.vcpu, mmioData: context.reply }));
    }),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'vmm',
  context: ({ input }) => ({
    vcpus: input.vcpus,
    devices: input.devices,
    build: input.build,
    buildAt: 0,
    unassignedAccesses: 0,
    reply: null,
    mapGpaEagain: input.mapGpaEagain,
    conversions: [],
    inKernel: Array.from({ length: input.vcpus }, () => false),
    gmemSlots: input.gmemSlots,
    closing: [],
    unassignedPortWrites: 0,
    kthreads: input.kthreads ?? [],
  }),
  initial: 'starting',
  on: { '*': { actions: 'unexpected' } },
  states: {
    starting: { always: [{ guard: 'hasBuild', target: 'building' }, { target: 'running' }] },
    /** The TD build, one ioctl (or staging write) at a time (§5b.3). */
    building: {
      entry: 'issueBuildStep',
      on: Object.fromEntries(
        ['KVM_SET_MEMORY_ATTRIBUTES', 'KVM_TDX_INIT_VM', 'KVM_TDX_INIT_VCPU', 'KVM_TDX_INIT_MEM_REGION', 'KVM_TDX_FINALIZE_VM', 'MEM_DONE', 'KTHREAD_DONE'].map((name) => [
          name,
          [
            { guard: 'stepFailed', target: 'buildFailed', actions: 'buildFailed' },
            { guard: 'buildDone', target: 'running' },
            { target: 'building', reenter: true, actions: 'nextBuildStep' },
          ],
        ]),
      ),
    },
    buildFailed: { type: 'final' },
    running: {
      entry: 'startVcpus',
      on: {
        KVM_EXIT_MMIO: { actions: ['markExited', 'handleMmio', 'resume'] },
        KVM_EXIT_HYPERCALL: [
          { guard: 'eagainLeft', actions: ['markExited', 'answerEagain'] },
          { guard: 'idleConverting', actions: ['markExited', 'queueMapGpa', 'convert'] },
          { actions: ['markExited', 'queueMapGpa'] },
        ],
        KVM_EXIT_MEMORY_FAULT: [{ guard: 'idleConverting', actions: ['markExited', 'queueImplicit', 'convert'] }, { actions: ['markExited', 'queueImplicit'] }],
        KVM_SET_MEMORY_ATTRIBUTES: [{ guard: 'moreConversions', actions: ['converted', 'convert'] }, { actions: 'converted' }],
        KVM_EXIT_IO: [
          { guard: 'portIn', actions: ['markExited', 'answerPortRead'] },
          { guard: 'poweroff', target: 'stopping', actions: 'markExited' },
          { actions: ['markExited', 'ignorePortWrite'] },
        ],
        // QEMU: guest panicked → the default panic action shuts the VM down.
        KVM_EXIT_SYSTEM_EVENT: { target: 'stopping', actions: 'markExited' },
        KVM_EXIT_TDX: { actions: ['markExited', 'answerTdx'] },
      },
    },
    /** qemu_system_shutdown_request → pause_all_vcpus: wait until no vCPU thread is inside KVM_RUN. */
    stopping: {
      entry: 'stopVcpus',
      always: { guard: 'allStopped', target: 'closing', actions: 'planCloses' },
      on: {
        KVM_EXIT_INTR: { actions: 'markExited' },
        KVM_EXIT_MMIO: { actions: 'markExited' },
        KVM_EXIT_HYPERCALL: { actions: 'markExited' },
        KVM_EXIT_MEMORY_FAULT: { actions: 'markExited' },
        KVM_EXIT_IO: { actions: 'markExited' },
        KVM_EXIT_SYSTEM_EVENT: { actions: 'markExited' },
        KVM_EXIT_TDX: { actions: 'markExited' },
        KVM_SET_MEMORY_ATTRIBUTES: { actions: 'conversionAbandoned' },
      },
    },
    /** The process exits: close(2) of each file, each returning once its release has run. */
    closing: {
      entry: 'closeFile',
      on: Object.fromEntries(
        (['kvm-vm', 'kvm-gmem', 'kvm-vcpu'] as const).map((name) => [name, [{ guard: 'moreFiles', target: 'closing', reenter: true, actions: 'nextFile' }, { target: 'exited', actions: 'nextFile' }]]),
      ),
    },
    exited: { type: 'final' },
  },
});
