/**
 * One more userspace thread of the VMM process (`vmm.threadN` for the scenario's `hostThreads[N]`), running
 * its own host program next to the main thread (`vmm`) and the vCPU threads. It is its own actor, not a
 * channel of `vmm`: each of its syscalls is a message from it and each return a message to it, so the
 * scheduler interleaves its steps with every other thread's as it interleaves vCPUs, a wait (a mutex, a
 * poll of guest memory) blocks this thread only, the kernel returns each ioctl to the thread that issued
 * it, and the wait-for graph names it.
 *
 * The main thread starts it (pthread_create: THREAD_START) — during the TD build right after
 * KVM_TDX_INIT_VM (`start: initialized`, QEMU's vCPU threads being created while the main thread loads the
 * image; the build joins it before KVM_TDX_FINALIZE_VM) or with the vCPU threads (`start: runnable`). It
 * ends with THREAD_EXIT. Each ioctl takes KVM's mutexes (kvmLocks.ts) as separate steps before its body and
 * drops them after it returns; each has an expected return value (0 unless the scenario says otherwise).
 * The TD build's own ioctls are steps too (KVM_TDX_INIT_VCPU, KVM_TDX_INIT_MEM_REGION, KVM_TDX_FINALIZE_VM),
 * so a scenario can split the build over threads as QEMU does (examples/concurrent-build).
 */
import { setup, assign, emit, enqueueActions } from 'xstate';
import { hex } from '../../src/arch/hex.ts';
import { out, type MachineEvent, type Outgoing } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { exitMismatch, parkedOf, HOST_EXITS, type ExitExpectation, type HostExitName, type ParkedExit } from './hostProgram.ts';
import { portRead } from './acpiPm.ts';

/** An ioctl a host thread issues, with its arguments. */
export type ThreadIoctl =
  | { call: 'createVcpu'; vcpu: number }
  | { call: 'initVcpu'; vcpu: number }
  | { call: 'setAttributes'; address: bigint; size: bigint; attributes: bigint }
  | { call: 'initMemRegion'; vcpu: number; source: bigint; gpa: bigint; nrPages: number; flags: number }
  | { call: 'finalize' };

/** -EBADF: an ioctl on a vCPU fd KVM_CREATE_VCPU never returned. */
export const EBADF = -9;

export type ThreadStep =
  /** `fd`: the lock belongs to an ioctl on that vCPU's fd, skipped with it when the fd does not exist. */
  | { op: 'mutexLock'; lock: string; fd?: number }
  | { op: 'mutexUnlock'; lock: string; fd?: number }
  | ({ op: 'ioctl'; label: string; expectRet: number } & ThreadIoctl)
  | { op: 'write'; label: string; gpa: bigint; pa: bigint; size: number; value: bigint }
  | { op: 'read'; label: string; gpa: bigint; pa: bigint; size: number; expect: bigint | null }
  | { op: 'waitMemory'; label: string; gpa: bigint; pa: bigint; size: number; value: bigint }
  /** Wait for the next exit of a vCPU this thread runs, and check it (a selftest's TEST_ASSERT_KVM_EXIT_REASON). */
  | { op: 'waitExit'; label: string; vcpu: number; exit: HostExitName; expect: ExitExpectation }
  /** KVM_RUN from this thread; it returns with the vCPU's next exit, which comes back to this thread. */
  | { op: 'run'; label: string; vcpu: number; data: bigint | null; ret: number };

export interface HostThreadInput {
  thread: number;
  program: readonly ThreadStep[];
}

export interface HostThreadContext extends HostThreadInput {
  pc: number;
  /** vCPU fds this thread's KVM_CREATE_VCPU failed to create: later ioctls on them return -EBADF. */
  noFd: readonly number[];
  /** Exits of the vCPUs this thread runs, arrived before a waitExit took them. */
  parked: readonly ParkedExit[];
  /** Per vCPU (by number): the exit a waitExit took, which the next run completes. */
  held: Readonly<Record<number, ParkedExit>>;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

const ioctlName = {
  createVcpu: 'KVM_CREATE_VCPU',
  initVcpu: 'KVM_TDX_INIT_VCPU',
  setAttributes: 'KVM_SET_MEMORY_ATTRIBUTES',
  initMemRegion: 'KVM_TDX_INIT_MEM_REGION',
  finalize: 'KVM_TDX_FINALIZE_VM',
} as const;

function ioctlTarget(s: ThreadIoctl): string {
  switch (s.call) {
    case 'setAttributes':
      return ` ${hex(s.address)}`;
    case 'initMemRegion':
      return ` vCPU ${s.vcpu} ${hex(s.gpa)}`;
    case 'finalize':
      return '';
    default:
      return ` vCPU ${s.vcpu}`;
  }
}

/** How a step reads in a failure. */
export function describeThreadStep(s: ThreadStep): string {
  switch (s.op) {
    case 'mutexLock':
      return `mutex_lock(${s.lock})`;
    case 'mutexUnlock':
      return `mutex_unlock(${s.lock})`;
    case 'ioctl':
      return `${s.label} (${ioctlName[s.call]}${ioctlTarget(s)})`;
    case 'write':
      return `${s.label} (write ${hex(s.gpa)})`;
    case 'read':
      return `${s.label} (read ${hex(s.gpa)})`;
    case 'waitMemory':
      return `${s.label} (waitMemory ${hex(s.gpa)} == ${hex(s.value)})`;
    case 'waitExit':
      return `${s.label} (waitExit ${s.exit} on vCPU ${s.vcpu})`;
    case 'run':
      return `${s.label} (KVM_RUN vCPU ${s.vcpu})`;
  }
}

/**
 * The KVM_RUN that completes a held exit: run->mmio.data for an MMIO read, the bytes at run->io.data_offset
 * for a port IN (the step's data, else what the device models answer), run->hypercall.ret for a hypercall.
 */
function runPayload(s: Extract<ThreadStep, { op: 'run' }>, held: ParkedExit | undefined) {
  const p = (held?.payload ?? {}) as { is_write?: number; direction?: number; port?: number; size?: number };
  if (held?.exit === 'KVM_EXIT_HYPERCALL') return { vcpu: s.vcpu, mmioData: null, hypercallRet: s.ret };
  if (held?.exit === 'KVM_EXIT_MMIO' && p.is_write === 0) return { vcpu: s.vcpu, mmioData: s.data ?? 0n };
  if (held?.exit === 'KVM_EXIT_IO' && p.direction === 0) {
    const mask = (1n << BigInt(8 * p.size!)) - 1n;
    return { vcpu: s.vcpu, mmioData: null, ioData: s.data !== null ? s.data & mask : portRead(p.port!, p.size!) };
  }
  return { vcpu: s.vcpu, mmioData: null };
}

const failure = (c: HostThreadContext, s: ThreadStep, what: string): Emitted => ({ type: 'tdxsim.failure', reason: 'expectation failed', detail: `vmm.thread${c.thread}: ${describeThreadStep(s)}: ${what}` });

const step = (c: HostThreadContext) => c.program[c.pc]!;
const fdGone = (c: HostThreadContext, s: ThreadStep) =>
  (s.op === 'ioctl' && (s.call === 'initVcpu' || s.call === 'initMemRegion') && c.noFd.includes(s.vcpu)) || ((s.op === 'mutexLock' || s.op === 'mutexUnlock') && s.fd !== undefined && c.noFd.includes(s.fd));

export const hostThreadMachine = setup({
  types: { context: {} as HostThreadContext, events: {} as MachineEvent, input: {} as HostThreadInput, emitted: {} as Emitted },
  guards: {
    finished: ({ context }) => context.pc >= context.program.length,
    /** An ioctl on a vCPU fd that does not exist fails in the file lookup, before KVM sees it. */
    noFile: ({ context }) => context.pc < context.program.length && fdGone(context, step(context)),
    /** A step that returns at once: KVM_RUN (it returns with the exit, which is awaited by waitExit). */
    noReply: ({ context }) => context.pc < context.program.length && step(context).op === 'run',
    /** The exit a waitExit wants is already here. */
    exitParked: ({ context }) => {
      if (context.pc >= context.program.length) return false;
      const s = step(context);
      return s.op === 'waitExit' && context.parked.some((p) => p.vcpu === s.vcpu);
    },
    awaitsExit: ({ context }) => context.pc < context.program.length && step(context).op === 'waitExit',
    exitForThisStep: ({ context, event }) => {
      const s = step(context);
      return s.op === 'waitExit' && (event.msg.payload as { vcpu: number }).vcpu === s.vcpu;
    },
    stillWaiting: ({ context, event }) => {
      const s = step(context);
      return s.op === 'waitMemory' && event.type === 'MEM_DATA' && (event.msg.payload as { value: bigint }).value !== s.value;
    },
  },
  actions: {
    issue: emit(({ context }): Emitted => {
      // (waitExit and run never get here: the stepping state handles them.)
      const s = step(context);
      switch (s.op) {
        case 'mutexLock':
          return out('kvm.locks', 'mutex', 'MUTEX_LOCK', { lock: s.lock });
        case 'mutexUnlock':
          return out('kvm.locks', 'mutex', 'MUTEX_UNLOCK', { lock: s.lock });
        case 'write':
          return out('hw.mem', 'mem', 'MEM_WRITE', { pa: s.pa, size: s.size, keyid: 0, value: s.value, tag: `vmm.thread${context.thread}` });
        case 'read':
        case 'waitMemory':
          return out('hw.mem', 'mem', 'MEM_READ', { pa: s.pa, size: s.size, keyid: 0, tag: `vmm.thread${context.thread}` });
        case 'waitExit':
        case 'run':
          throw new Error(`vmm.thread${context.thread}: ${s.op} is not issued`);
        case 'ioctl':
          switch (s.call) {
            case 'createVcpu':
              return out('kvm.vm', 'ioctl', 'KVM_CREATE_VCPU', { vcpu: s.vcpu });
            case 'initVcpu':
              return out(`kvm.vcpu${s.vcpu}`, 'ioctl', 'KVM_TDX_INIT_VCPU', { vcpu: s.vcpu });
            case 'setAttributes':
              return out('kvm.vm', 'ioctl', 'KVM_SET_MEMORY_ATTRIBUTES', { address: s.address, size: s.size, attributes: s.attributes });
            case 'initMemRegion':
              return out(`kvm.vcpu${s.vcpu}`, 'ioctl', 'KVM_TDX_INIT_MEM_REGION', { vcpu: s.vcpu, source_addr: s.source, gpa: s.gpa, nr_pages: s.nrPages, flags: s.flags });
            case 'finalize':
              return out('kvm.vm', 'ioctl', 'KVM_TDX_FINALIZE_VM', {});
          }
      }
    }),
    /** The step returned: check what a test expects of it, then go on. */
    returned: enqueueActions(({ context, event, enqueue }) => {
      const s = step(context);
      let noFd = context.noFd;
      if (s.op === 'ioctl') {
        const ret = fdGone(context, s) ? EBADF : (event.msg.payload as { ret: number }).ret;
        if (ret !== s.expectRet) enqueue.emit(failure(context, s, `returned ${ret}, expected ${s.expectRet}`));
        if (s.call === 'createVcpu' && ret !== 0) noFd = [...noFd, s.vcpu];
      }
      if (s.op === 'read' && s.expect !== null) {
        const got = (event.msg.payload as { value: bigint }).value;
        if (got !== s.expect) enqueue.emit(failure(context, s, `read ${hex(got)}, expected ${hex(s.expect)}`));
      }
      enqueue.assign({ pc: context.pc + 1, noFd });
    }),
    park: assign({ parked: ({ context, event }) => [...context.parked, parkedOf(event)] }),
    /** waitExit: take the vCPU's oldest parked exit and check it. */
    takeExit: enqueueActions(({ context, enqueue }) => {
      const s = step(context) as Extract<ThreadStep, { op: 'waitExit' }>;
      const i = context.parked.findIndex((p) => p.vcpu === s.vcpu);
      const got = context.parked[i]!;
      const wrong = exitMismatch({ op: 'waitExit', label: s.label, vcpu: s.vcpu, exit: s.exit, expect: s.expect }, got);
      if (wrong !== null) enqueue.emit(failure(context, s, wrong));
      enqueue.assign({ parked: context.parked.filter((_, j) => j !== i), held: { ...context.held, [s.vcpu]: got }, pc: context.pc + 1 });
    }),
    runVcpu: enqueueActions(({ context, enqueue }) => {
      const s = step(context) as Extract<ThreadStep, { op: 'run' }>;
      const { [s.vcpu]: h, ...held } = context.held;
      enqueue.emit(out(`kvm.vcpu${s.vcpu}`, 'ioctl', 'KVM_RUN', runPayload(s, h)));
      enqueue.assign({ held, pc: context.pc + 1 });
    }),
    pollAgain: emit(({ context }) => {
      const s = step(context) as Extract<ThreadStep, { op: 'waitMemory' }>;
      return out('hw.mem', 'mem', 'MEM_READ', { pa: s.pa, size: s.size, keyid: 0, tag: `vmm.thread${context.thread}` });
    }),
    exit: emit(({ context }) => out('vmm', 'thread', 'THREAD_EXIT', { thread: context.thread })),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'hostThread',
  context: ({ input }) => ({ ...input, pc: 0, noFd: [], parked: [], held: {} }),
  initial: 'idle',
  // An exit of a vCPU this thread runs may come back while the thread does something else: it waits here.
  on: { ...Object.fromEntries(HOST_EXITS.map((n) => [n, { actions: 'park' }])), KVM_EXIT_SYSTEM_EVENT: { actions: 'park' }, KVM_EXIT_TDX: { actions: 'park' }, '*': { actions: 'unexpected' } },
  states: {
    idle: { on: { THREAD_START: 'stepping' } },
    /** Between steps: the next one is issued, or the thread ends. */
    stepping: {
      always: [
        { guard: 'finished', target: 'done' },
        { guard: 'noFile', target: 'stepping', reenter: true, actions: 'returned' },
        { guard: 'noReply', target: 'stepping', reenter: true, actions: 'runVcpu' },
        { guard: 'exitParked', target: 'stepping', reenter: true, actions: 'takeExit' },
        { guard: 'awaitsExit', target: 'waitingExit' },
        { target: 'waiting', actions: 'issue' },
      ],
    },
    /** At a waitExit: the thread blocks until its vCPU's next exit comes back (other vCPUs' exits wait). */
    waitingExit: {
      on: Object.fromEntries(
        [...HOST_EXITS, 'KVM_EXIT_SYSTEM_EVENT', 'KVM_EXIT_TDX'].map((n) => [n, [{ guard: 'exitForThisStep', target: 'stepping', actions: ['park', 'takeExit'] }, { actions: 'park' }]]),
      ),
    },
    /** In a syscall, or asleep on a mutex. */
    waiting: {
      on: {
        ...Object.fromEntries(['MUTEX_ACQUIRED', 'MUTEX_UNLOCKED', 'KVM_CREATE_VCPU', 'KVM_TDX_INIT_VCPU', 'KVM_SET_MEMORY_ATTRIBUTES', 'KVM_TDX_INIT_MEM_REGION', 'KVM_TDX_FINALIZE_VM', 'MEM_DONE'].map((n) => [n, { target: 'stepping', actions: 'returned' }])),
        MEM_DATA: [{ guard: 'stillWaiting', actions: 'pollAgain' }, { target: 'stepping', actions: 'returned' }],
      },
    },
    done: { type: 'final', entry: 'exit' },
  },
});
