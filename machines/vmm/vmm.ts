/**
 * The userspace VMM (QEMU's role). For a TD it first builds it (§5b.3): marks the guest_memfd ranges
 * private (KVM_SET_MEMORY_ATTRIBUTES), KVM_TDX_INIT_VM, KVM_TDX_INIT_VCPU per vCPU, writes each page of
 * the initial image into a staging page of its own memory and hands it to KVM_TDX_INIT_MEM_REGION with
 * KVM_TDX_MEASURE_MEMORY_REGION, then KVM_TDX_FINALIZE_VM. Then it starts every vCPU thread with KVM_RUN
 * and handles the exits that leave the kernel. For KVM_EXIT_MMIO it performs the access on its device model and re-enters with
 * run->mmio.data filled for reads (§6.i step 12). An access no device claims reads as 0, as QEMU's
 * unassigned-memory handler does, and is counted.
 */
import { setup, assign, emit, enqueueActions } from 'xstate';
import { hex } from '../../src/arch/hex.ts';
import { out, payloadOf, type MachineEvent, type Outgoing } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { deviceRead, deviceWrite, findDevice, type MmioDevice } from './mmioDevice.ts';

/** One step of the TD build, issued in order; each waits for its return. */
export type BuildStep =
  | { kind: 'setAttributes'; address: bigint; size: bigint; attributes: bigint }
  | { kind: 'initVm'; attributes: bigint }
  | { kind: 'initVcpu'; vcpu: number }
  /** Write one word of the image into the VMM's staging page (its own memory, KeyID 0). */
  | { kind: 'stageWord'; pa: bigint; value: bigint }
  | { kind: 'initMemRegion'; vcpu: number; source: bigint; gpa: bigint; nrPages: number; flags: number }
  | { kind: 'finalize' };

export interface VmmInput {
  vcpus: number;
  devices: readonly MmioDevice[];
  build: readonly BuildStep[];
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
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

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
      }
    }),
    nextBuildStep: assign({ buildAt: ({ context }) => context.buildAt + 1 }),
    buildFailed: emit(({ event }): Emitted => ({
      type: 'tdxsim.failure',
      reason: 'VMM error',
      detail: `${event.type} failed with ${(event.msg.payload as { ret: number }).ret}: the TD was not built`,
    })),
    memoryFault: emit(({ event }): Emitted => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_MEMORY_FAULT');
      return {
        type: 'tdxsim.failure',
        reason: 'model limit',
        detail: `vmm: KVM_EXIT_MEMORY_FAULT at ${hex(e.gpa)} flags=${hex(e.flags)}; implicit conversion by the VMM is not modelled yet`,
      };
    }),
    startVcpus: enqueueActions(({ context, enqueue }) => {
      for (let v = 0; v < context.vcpus; v++) enqueue.emit(out(`kvm.vcpu${v}`, 'ioctl', 'KVM_RUN', { vcpu: v, mmioData: null }));
    }),
    handleMmio: assign(({ context, event }) => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_MMIO');
      const dev = findDevice(context.devices, e.phys_addr);
      if (dev === undefined) return { unassignedAccesses: context.unassignedAccesses + 1, reply: e.is_write ? null : 0n };
      if (e.is_write) {
        return { devices: context.devices.map((d) => (d === dev ? deviceWrite(d, e.phys_addr, e.len, e.data) : d)), reply: null };
      }
      return { reply: deviceRead(dev, e.phys_addr, e.len) };
    }),
    resume: emit(({ context, event }) => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_MMIO');
      return out(event.msg.from, 'ioctl', 'KVM_RUN', { vcpu: e.vcpu, mmioData: context.reply });
    }),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'vmm',
  context: ({ input }) => ({ vcpus: input.vcpus, devices: input.devices, build: input.build, buildAt: 0, unassignedAccesses: 0, reply: null }),
  initial: 'starting',
  on: { '*': { actions: 'unexpected' } },
  states: {
    starting: { always: [{ guard: 'hasBuild', target: 'building' }, { target: 'running' }] },
    /** The TD build, one ioctl (or staging write) at a time (§5b.3). */
    building: {
      entry: 'issueBuildStep',
      on: Object.fromEntries(
        ['KVM_SET_MEMORY_ATTRIBUTES', 'KVM_TDX_INIT_VM', 'KVM_TDX_INIT_VCPU', 'KVM_TDX_INIT_MEM_REGION', 'KVM_TDX_FINALIZE_VM', 'MEM_DONE'].map((name) => [
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
        KVM_EXIT_MMIO: { actions: ['handleMmio', 'resume'] },
        KVM_EXIT_MEMORY_FAULT: { actions: 'memoryFault' },
      },
    },
  },
});
