/**
 * A host-kernel test thread (a playground kthread, `host.kthreadN`): once the VMM has built the TD it
 * issues raw SEAMCALLs, one at a time and exactly as written, against the TD's module state — so a user
 * can walk one S-EPT entry through its states and see what each memory leaf answers, in a run that is
 * logged and replayable like any other. Nothing checks the registers before the module does; KVM's own
 * threads keep running meanwhile (the TD's vCPUs, its MMU), as they would beside a test module.
 *
 * A thread may instead start during the build, while the TD is INITIALIZED (`start: initialized`): the
 * VMM starts it after the image is added and waits for it before KVM_TDX_FINALIZE_VM, so the build-time
 * leaves (TDH.MEM.PAGE.ADD, TDH.MR.EXTEND) can be tried too.
 *
 * A step may say what it expects back (RAX, and RCX/RDX where the module reports the entry): a different
 * answer fails the run, naming the step, the leaf and both values (statuses by name, §4.7).
 */
import { setup, assign, emit, enqueueActions } from 'xstate';
import { out, type Gprs, type HostSeamcall, type MachineEvent, type Outgoing } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { tdxStatusName } from '../../src/arch/tdxStatus.ts';
import { hex } from '../../src/arch/hex.ts';

/** The leaves a kthread may issue: the module's memory-management SEAMCALLs (tdMemory.ts), RELOCATE included, which no KVM issues. */
export const PLAYGROUND_SEAMCALLS = [
  'TDH.MEM.SEPT.ADD',
  'TDH.MEM.PAGE.ADD',
  'TDH.MR.EXTEND',
  'TDH.MEM.PAGE.AUG',
  'TDH.MEM.RANGE.BLOCK',
  'TDH.MEM.RANGE.UNBLOCK',
  'TDH.MEM.TRACK',
  'TDH.MEM.PAGE.REMOVE',
  'TDH.MEM.SEPT.REMOVE',
  'TDH.MEM.PAGE.DEMOTE',
  'TDH.MEM.PAGE.PROMOTE',
  'TDH.MEM.SEPT.RD',
  'TDH.MEM.PAGE.RELOCATE',
] as const satisfies readonly HostSeamcall[];
export type PlaygroundSeamcall = (typeof PLAYGROUND_SEAMCALLS)[number];

export interface SeamcallStep {
  seamcall: PlaygroundSeamcall;
  regs: { RCX: bigint; RDX: bigint; R8: bigint; R9: bigint };
  /** What the module must answer; absent registers are not compared. */
  expect: { RAX?: bigint; RCX?: bigint; RDX?: bigint };
}

export interface KthreadInput {
  thread: number;
  program: readonly SeamcallStep[];
  /** Started during the build: tell the VMM when done, so that it finalizes the TD only then. */
  duringBuild: boolean;
}

export interface KthreadContext extends KthreadInput {
  /** Index of the step in flight or next. */
  pc: number;
  /** What each step got back, in order (the log shows them too; kept for views and tests). */
  answers: readonly Gprs[];
  /** Why the run failed here, when an expectation did not hold. */
  mismatch: string | null;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

const REGS = ['RAX', 'RCX', 'RDX'] as const;
const show = (reg: string, v: bigint) => (reg === 'RAX' ? tdxStatusName(v) : hex(v));

function mismatchOf(c: KthreadContext, got: Gprs): string | null {
  const step = c.program[c.pc]!;
  for (const reg of REGS) {
    const want = step.expect[reg];
    if (want === undefined) continue;
    const have = got[reg] ?? 0n;
    if (have !== want) return `step ${c.pc} ${step.seamcall}: ${reg} = ${show(reg, have)}, expected ${show(reg, want)}`;
  }
  return null;
}

export const kthreadMachine = setup({
  types: {
    context: {} as KthreadContext,
    events: {} as MachineEvent,
    input: {} as KthreadInput,
    emitted: {} as Emitted,
  },
  guards: {
    programEmpty: ({ context }) => context.program.length === 0,
    mismatch: ({ context, event }) => mismatchOf(context, event.msg.payload as Gprs) !== null,
    lastStep: ({ context }) => context.pc + 1 >= context.program.length,
  },
  actions: {
    issue: emit(({ context }) => {
      const s = context.program[context.pc]!;
      return out('tdx', 'seamcall', s.seamcall, { ...s.regs });
    }),
    record: assign({ answers: ({ context, event }) => [...context.answers, event.msg.payload as Gprs], pc: ({ context }) => context.pc + 1 }),
    noteMismatch: assign({ mismatch: ({ context, event }) => mismatchOf(context, event.msg.payload as Gprs) }),
    /** A thread started during the build lets the VMM go on to KVM_TDX_FINALIZE_VM. */
    reportDone: enqueueActions(({ context, enqueue }) => {
      if (context.duringBuild) enqueue.emit(out('vmm', 'kthread', 'KTHREAD_DONE', { thread: context.thread }));
    }),
    reportMismatch: emit(({ context }): Emitted => ({ type: 'tdxsim.failure', reason: 'playground expectation', detail: `host.kthread${context.thread}: ${context.mismatch}` })),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'kthread',
  context: ({ input }) => ({ ...input, pc: 0, answers: [], mismatch: null }),
  initial: 'waiting',
  on: { '*': { actions: 'unexpected' } },
  states: {
    /** Until the VMM starts the thread (the model's stand-in for userspace triggering the test module once the TD runs). */
    waiting: {
      on: { KTHREAD_START: [{ guard: 'programEmpty', target: 'done' }, { target: 'calling' }] },
    },
    /** One SEAMCALL in flight; its return (whatever the leaf) ends the step. */
    calling: {
      entry: 'issue',
      on: Object.fromEntries(
        PLAYGROUND_SEAMCALLS.map((name) => [
          name,
          [
            { guard: 'mismatch', target: 'failed', actions: ['noteMismatch', 'record'] },
            { guard: 'lastStep', target: 'done', actions: 'record' },
            { target: 'calling', reenter: true, actions: 'record' },
          ],
        ]),
      ),
    },
    failed: { entry: ['reportMismatch', 'reportDone'], type: 'final' },
    done: { type: 'final', entry: 'reportDone' },
  },
});
