/**
 * What "progress" means to the explorer's non-progress check (liveness/nonProgress.ts), and who wants it.
 *
 * A *progress thread* is something a user waits on. Each is tied to one actor, and only a delivery to that
 * actor can be its progress:
 * - a guest vCPU (`guest.vcpuN`) makes progress when its program moves on: an instruction retires (the
 *   program counter advances, which is also how an `accept`, `mapGpa`, `out` or `hlt` op completes), or a
 *   multi-call op advances through its range (tdx_accept_memory's next page, tdx_map_gpa resuming past the
 *   GPA the VMM returned). The #VE handler's own TDCALLs are not progress: a handler that runs again and
 *   again for the same faulting instruction is exactly the loop to find. It wants progress until its
 *   program has ended (spinning on `jmp .` or past a VMX HLT), its thread is blocked in HLT, its vCPU is
 *   freed or the VM dead;
 * - the VMM (`vmm`) makes progress whenever an ioctl, a close or KVM_RUN returns to it (every message it
 *   receives is one of those). It wants progress while it waits for one that it needs: during the TD build,
 *   while a conversion is in flight, while it stops the vCPUs and closes its files. While it merely waits
 *   in its main loop for exits, progress is its guests' business;
 * - a host program (a VMM thread actor, a test's program) declares it in its statechart, as Spin's progress
 *   labels do: entering a state tagged `progress` is progress, and it wants progress while its machine is
 *   active and not in a state tagged `rest`. No bundled actor has such tags yet; tiny test models do.
 * Once any actor has reached a failure the run is over, and nobody wants anything.
 *
 * KVM's own threads (kvm.vcpuN, kvm.vm) are not progress threads: they exist to serve the guest and the
 * VMM, and a kvm.vcpuN that re-enters, faults and retries for ever shows up as its guest never retiring.
 *
 * Fairness is a separate notion, over channels (liveness/nonProgress.ts explains why).
 */
import type { AnyMachineSnapshot } from 'xstate';
import { hex } from '../arch/hex.ts';
import type { Message } from '../protocol/messages.ts';
import type { Model, World } from '../runtime/world.ts';
import type { GuestVcpuContext } from '../../machines/guest/guestVcpu.ts';
import { describeStep } from '../../machines/vmm/hostProgram.ts';
import type { VmmContext } from '../../machines/vmm/vmm.ts';
import { snapshotOf, stateName } from './invariants/invariant.ts';
import { pendingWakeup } from './invariants/noLostWakeup.ts';

export interface ProgressThread {
  /** The actor whose deliveries can be this thread's progress; also the thread's name in reports. */
  id: string;
  actor: number;
  /** The thread has something left to do in this world. */
  wants(model: Model, world: World): boolean;
  /** The delivery `m` to the thread's actor, which took it from `before` to `after`, moved it on. */
  progressed(before: AnyMachineSnapshot, after: AnyMachineSnapshot, m: Message): boolean;
  /** What it waits for in this world, as the rest of a sentence that starts with its id: "never retires TDG.MEM.PAGE.ACCEPT of 0x200000 at 4K (RIP 0x…)". */
  stuckOn(model: Model, world: World): string;
}

/** Tags a host program's statechart uses for its progress labels. */
export const PROGRESS_TAG = 'progress';
export const REST_TAG = 'rest';

/** The top-level state: what the progress rules are written against. */
const top = (s: AnyMachineSnapshot): string => (typeof s.value === 'string' ? s.value : Object.keys(s.value as object)[0]!);

/** A KVM vCPU thread that will not run its guest again without an event the model has none of. */
const VCPU_THREAD_GONE = new Set(['halted', 'freed', 'vmDead']);
const GUEST_DONE = new Set(['programEnded', 'spinning', 'panicked']);

function guestThread(model: Model, actor: number): ProgressThread {
  const id = model.actors[actor]!.id;
  const kvmThread = id.replace(/^guest\./, 'kvm.');
  return {
    id,
    actor,
    wants(m, world) {
      if (world.failures.length > 0 || GUEST_DONE.has(top(world.snapshots[actor]!))) return false;
      const k = snapshotOf(m, world, kvmThread);
      // Blocked in HLT with a wake-up pending (a lost wake-up) still owes its guest progress.
      return k === undefined || !VCPU_THREAD_GONE.has(top(k)) || pendingWakeup(m, world, kvmThread) !== null;
    },
    progressed(before, after) {
      const b = before.context as GuestVcpuContext;
      const a = after.context as GuestVcpuContext;
      if (a.pc !== b.pc) return a.pc > b.pc;
      if (a.accept !== null && b.accept !== null && a.accept.start > b.accept.start) return true;
      return a.mapGpa !== null && b.mapGpa !== null && a.mapGpa.start !== b.mapGpa.start;
    },
    stuckOn(_m, world) {
      const s = world.snapshots[actor]!;
      return `never retires ${guestAttempt(s.context as GuestVcpuContext, top(s))}`;
    },
  };
}

const PAGE_LEVEL = ['4K', '2M', '1G'];

/** The instruction at the guest's PC in its own terms, and what its #VE handler is doing about it. */
function guestAttempt(c: GuestVcpuContext, state: string): string {
  const i = c.program[c.pc];
  if (i === undefined) return 'anything (its program has ended)';
  const at = `(RIP ${hex(i.rip)})`;
  let what: string;
  switch (i.op) {
    case 'load':
      what = `the ${i.size}-byte load from ${hex(i.gpa)} ${at}`;
      break;
    case 'store':
      what = `the ${i.size}-byte store to ${hex(i.gpa)} ${at}`;
      break;
    case 'accept':
      what = `TDG.MEM.PAGE.ACCEPT of ${hex(c.accept?.start ?? i.gpa)}${c.accept !== null && c.accept.level >= 0 ? ` at ${PAGE_LEVEL[c.accept.level]}` : ''} ${at}`;
      break;
    case 'mapGpa':
      what = `TDG.VP.VMCALL<MapGPA> of ${hex(c.mapGpa?.start ?? i.gpa)} ${at}`;
      break;
    case 'hlt':
      what = `HLT ${at}`;
      break;
    case 'out':
      what = `the OUT to port ${hex(BigInt(i.port))} ${at}`;
      break;
    case 'spinUntil':
      what = `the spin on ${hex(i.paged ? i.gla : i.gpa)} until it reads ${hex(i.value)} ${at}`;
      break;
    case 'loadUnalignedZeropad':
      what = `load_unaligned_zeropad(${hex(i.gla)}) ${at}`;
      break;
    case 'acceptMemory':
      what = `accept_memory(${hex(i.gpa)}, ${hex(i.gpa + i.size)}) ${at}`;
      break;
    case 'setMemoryEncrypted':
    case 'setMemoryDecrypted':
      what = `${i.op === 'setMemoryEncrypted' ? 'set_memory_encrypted' : 'set_memory_decrypted'}(${hex(i.gla)}, ${i.pages}) ${at}`;
      break;
    case 'enterContext':
    case 'leaveContext':
      what = `the ${i.op} marker ${at}`;
      break;
    case 'sti':
    case 'cli':
      what = `${i.op.toUpperCase()} ${at}`;
      break;
    case 'in':
      what = `the IN from port ${hex(BigInt(i.port))} ${at}`;
      break;
    case 'tdvmcall':
      what = `the TDVMCALL with R11 ${hex(BigInt(i.subfunction))} ${at}`;
      break;
    case 'ipi':
      what = `the IPI (x2APIC ICR write) of vector ${hex(BigInt(i.vector))} to vCPU ${i.to} ${at}`;
      break;
    case 'vpInfo':
      what = `TDG.VP.INFO ${at}`;
      break;
    case 'loop':
    case 'check':
      what = `the ${i.op} ${at}`;
      break;
  }
  if (state === 'notEntered') return `${what}, its first instruction: the vCPU never enters the guest`;
  if (state === 'acceptingOnVe' && c.accept !== null) return `${what}: its #VE handler's TDG.MEM.PAGE.ACCEPT of ${hex(c.accept.start)} at 4K never completes`;
  return what;
}

function vmmThread(actor: number): ProgressThread {
  return {
    id: 'vmm',
    actor,
    wants(_m, world) {
      if (world.failures.length > 0) return false;
      const s = world.snapshots[actor]!;
      const state = top(s);
      const c = s.context as VmmContext;
      return state === 'building' || state === 'stopping' || state === 'closing' || (state === 'running' && (c.conversions.length > 0 || c.pc < c.program.length));
    },
    progressed: () => true,
    stuckOn(_m, world) {
      const s = world.snapshots[actor]!;
      const c = s.context as VmmContext;
      switch (top(s)) {
        case 'building':
          return `waits for build step ${c.pc + 1} of ${c.program.findIndex((x) => x.op === 'startVcpus')} (${c.program[c.pc]?.op}) to return`;
        case 'running':
          if (c.pc < c.program.length && c.conversions.length === 0) return `waits at host step ${describeStep(c.program[c.pc])}`;
          return `waits for KVM_SET_MEMORY_ATTRIBUTES of vCPU ${c.conversions[0]!.vcpu}'s conversion at ${hex(c.conversions[0]!.address)} to return`;
        case 'stopping':
          return 'waits for every vCPU thread to leave KVM_RUN';
        default:
          return `waits for close(${c.closing[0]?.name}) to return`;
      }
    },
  };
}

function hostProgram(model: Model, actor: number): ProgressThread {
  return {
    id: model.actors[actor]!.id,
    actor,
    wants: (_m, world) => {
      const s = world.snapshots[actor]!;
      return world.failures.length === 0 && s.status === 'active' && !s.hasTag(REST_TAG);
    },
    progressed: (_before, after) => after.hasTag(PROGRESS_TAG),
    stuckOn: (_m, world) => `never reaches a state tagged ${PROGRESS_TAG} (it is in ${stateName(world.snapshots[actor]!.value)})`,
  };
}

/** Does the machine declare progress labels anywhere? */
function hasProgressLabels(node: { tags: readonly string[] | Set<string>; states: Record<string, unknown> }): boolean {
  if ([...node.tags].includes(PROGRESS_TAG)) return true;
  return Object.values(node.states).some((s) => hasProgressLabels(s as typeof node));
}

/** The model's progress threads, in actor order. */
export function progressThreadsOf(model: Model): ProgressThread[] {
  const out: ProgressThread[] = [];
  model.actors.forEach((a, i) => {
    if (/^guest\.vcpu\d+$/.test(a.id)) out.push(guestThread(model, i));
    else if (a.id === 'vmm') out.push(vmmThread(i));
    else if (hasProgressLabels(a.machine.root as unknown as Parameters<typeof hasProgressLabels>[0])) out.push(hostProgram(model, i));
  });
  return out;
}
