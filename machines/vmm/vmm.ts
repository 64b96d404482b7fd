/**
 * The userspace VMM (QEMU's role): starts every vCPU thread with KVM_RUN and handles the exits that leave
 * the kernel. For KVM_EXIT_MMIO it performs the access on its device model and re-enters with
 * run->mmio.data filled for reads (§6.i step 12). An access no device claims reads as 0, as QEMU's
 * unassigned-memory handler does, and is counted.
 */
import { setup, assign, emit, enqueueActions } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { deviceRead, deviceWrite, findDevice, type MmioDevice } from './mmioDevice.ts';

export interface VmmInput {
  vcpus: number;
  devices: readonly MmioDevice[];
}

export interface VmmContext {
  vcpus: number;
  devices: readonly MmioDevice[];
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
  actions: {
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
  context: ({ input }) => ({ vcpus: input.vcpus, devices: input.devices, unassignedAccesses: 0, reply: null }),
  initial: 'running',
  on: { '*': { actions: 'unexpected' } },
  states: {
    running: {
      entry: 'startVcpus',
      on: { KVM_EXIT_MMIO: { actions: ['handleMmio', 'resume'] } },
    },
  },
});
