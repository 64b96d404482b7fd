/**
 * The vCPU thread's XState setup, typed once: every part of the thread (vcpuRun.ts, mmuPageFault.ts,
 * tdxCheckAcceptLevel.ts, tdvmcall.ts, tdxVcpuIoctl.ts, tdxVcpuFree.ts) writes its named actions and
 * guards against it, and kvmVcpu.ts joins them with `extend` into one machine. The statechart, its state
 * names and its action and guard names are those of a single setup(); only the source is spread out.
 */
import { setup, type GuardArgs } from 'xstate';
import type { MachineEvent, Outgoing } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import type { KvmVcpuContext, KvmVcpuInput } from './kvmVcpu.ts';

export type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

export const vcpuSetup = setup({
  types: {
    context: {} as KvmVcpuContext,
    events: {} as MachineEvent,
    input: {} as KvmVcpuInput,
    emitted: {} as Emitted,
  },
});

/**
 * XState's assign, emit and enqueueActions, typed for the thread's context, events and emitted messages.
 * Typed through `vcpuSetup`, so the package's declaration files can name them.
 */
export const assign: typeof vcpuSetup.assign = vcpuSetup.assign;
export const emit: typeof vcpuSetup.emit = vcpuSetup.emit;
export const enqueueActions: typeof vcpuSetup.enqueueActions = vcpuSetup.enqueueActions;

/** A record of the thread's guards; a guard that takes params declares their type itself. */
export type VcpuGuards = Record<string, (args: GuardArgs<KvmVcpuContext, MachineEvent>, params: never) => boolean>;
