/**
 * A host program: what a VMM thread does, one syscall (or one access to guest memory through its own
 * mapping) per step, as guest programs are what a vCPU does. The TD build is the first part of the VMM's
 * default program (registry.ts writes it from the scenario); `startVcpus` then starts every vCPU thread's
 * KVM_RUN loop, and the scenario's `host:` steps follow, running next to those loops: they wait for a
 * vCPU's exit (and check its fields, as a selftest asserts them), re-enter the vCPU with an answer,
 * read and write shared guest memory, or change memory attributes.
 *
 * An exit whose reason a later `waitExit` step of its vCPU names stays with the program: its vCPU thread
 * stays in userspace until a `run` step re-enters it, as the selftests' own vcpu_run loops do, and the
 * waitExit checks it is the exit the test expects next. Exits of other reasons (a MapGPA the test does
 * not script, say) go to the VMM's device models and conversions (vmm.ts) as without a program.
 */
import { hex } from '../../src/arch/hex.ts';
import type { MachineEvent } from '../../src/protocol/messages.ts';

/** The exits a host program can wait for. */
export const HOST_EXITS = ['KVM_EXIT_IO', 'KVM_EXIT_MMIO', 'KVM_EXIT_HYPERCALL', 'KVM_EXIT_MEMORY_FAULT'] as const;
export type HostExitName = (typeof HOST_EXITS)[number];

/**
 * Fields of an exit a test asserts; absent ones are not checked. `direction` and `write` are the
 * userspace view (KVM_EXIT_IO_IN/OUT, mmio.is_write); `address` is io.port, mmio.phys_addr or
 * memory_fault.gpa; `size` is io.size, mmio.len or memory_fault.size.
 */
export interface ExitExpectation {
  address?: bigint;
  size?: bigint;
  /** KVM_EXIT_IO: 0 in, 1 out. KVM_EXIT_MMIO: is_write. */
  direction?: number;
  data?: bigint;
  /** KVM_EXIT_HYPERCALL: nr. KVM_EXIT_MEMORY_FAULT: flags. */
  code?: bigint;
}

/** Steps of the TD build (§5b.3), issued in order while no vCPU runs yet. */
export type BuildStep =
  | { op: 'setAttributes'; address: bigint; size: bigint; attributes: bigint }
  | { op: 'initVm'; attributes: bigint }
  | { op: 'initVcpu'; vcpu: number }
  /** Write one word of the image into the VMM's staging page (its own memory, KeyID 0). */
  | { op: 'stageWord'; pa: bigint; value: bigint }
  | { op: 'initMemRegion'; vcpu: number; source: bigint; gpa: bigint; nrPages: number; flags: number }
  | { op: 'finalize' }
  /** Start a playground kthread while the TD is INITIALIZED and wait until it is done. */
  | { op: 'kthread'; thread: number }
  /** KVM's sleeping locks around an ioctl (kvmLocks.ts), only in scenarios with host threads. */
  | { op: 'mutexLock'; lock: string }
  | { op: 'mutexUnlock'; lock: string }
  /** pthread_create of host thread `thread` (vmm.threadN); the main thread goes on at once. */
  | { op: 'spawn'; thread: number }
  /** pthread_join: wait until host thread `thread` has ended. */
  | { op: 'join'; thread: number }
  /** A scenario's KVM_PRE_FAULT_MEMORY issued before KVM_TDX_FINALIZE_VM (its `beforeFinalize`). */
  | (PreFaultStep & { op: 'preFaultBuild' });

/** KVM_PRE_FAULT_MEMORY on a vCPU fd; `expectRet` / `expectSize`: the return and the range left that a test checks. */
export interface PreFaultStep {
  label: string;
  vcpu: number;
  gpa: bigint;
  size: bigint;
  flags: bigint;
  expectRet: number | null;
  expectSize: bigint | null;
}

/** Steps of the running VMM; `label` names the scenario field a step came from (`host[3]`). */
export type RunStep =
  | { op: 'startVcpus' }
  | { op: 'waitExit'; label: string; vcpu: number; exit: HostExitName; expect: ExitExpectation }
  /** KVM_RUN again; `data` is run->mmio.data for an MMIO read, `ret` run->hypercall.ret for a hypercall. */
  | { op: 'run'; label: string; vcpu: number; data: bigint | null; ret: number }
  /**
   * The VMM's own mapping of shared guest memory: host physical `pa`, KeyID 0. `gone`: the GPA is in no
   * memslot of the VMM's view by this step (a KVM_SET_USER_MEMORY_REGION2 of the program deleted or moved
   * it), so the step fails with that reason instead of touching memory.
   */
  | { op: 'write'; label: string; gpa: bigint; pa: bigint; gone?: string; size: number; value: bigint }
  | { op: 'read'; label: string; gpa: bigint; pa: bigint; gone?: string; size: number; expect: bigint | null }
  /** Read again until the value is there: a host thread polling a flag the guest sets. */
  | { op: 'waitMemory'; label: string; gpa: bigint; pa: bigint; gone?: string; size: number; value: bigint }
  | { op: 'convert'; label: string; address: bigint; size: bigint; attributes: bigint; expectRet: number | null }
  /** fallocate(2) on the guest_memfd bound to memslot `slot` (file offset, FALLOC_FL_* mode). */
  | { op: 'fallocate'; label: string; slot: number; mode: number; offset: bigint; len: bigint; expectRet: number | null }
  /** ftruncate(2) on the guest_memfd bound to memslot `slot`. */
  | { op: 'ftruncate'; label: string; slot: number; length: bigint; expectRet: number | null }
  | (PreFaultStep & { op: 'preFault' })
  /** KVM_SET_USER_MEMORY_REGION2 on the VM fd; the step waits for its return. */
  | { op: 'setMemoryRegion'; label: string; slot: number; flags: number; gpa: bigint; size: bigint; guestMemfdOffset: bigint; expectRet: number | null };
/** The VMM process exits (qemu_system_shutdown_request): pause_all_vcpus, then every file closed. */
type ExitStep = { op: 'exit'; label: string };

export type HostStep = BuildStep | RunStep | ExitStep;

const BUILD_OPS: ReadonlySet<string> = new Set(['setAttributes', 'initVm', 'initVcpu', 'stageWord', 'initMemRegion', 'finalize', 'kthread', 'mutexLock', 'mutexUnlock', 'spawn', 'join', 'preFaultBuild']);
export const isBuildStep = (s: HostStep | undefined): s is BuildStep => s !== undefined && BUILD_OPS.has(s.op);

/** An exit the program has claimed, waiting for its `waitExit` step. */
export interface ParkedExit {
  vcpu: number;
  exit: string;
  payload: Record<string, unknown>;
}

export function parkedOf(event: MachineEvent): ParkedExit {
  const p = event.msg.payload as Record<string, unknown> & { vcpu: number };
  return { vcpu: p.vcpu, exit: event.msg.name, payload: p };
}

/** Does a step from `pc` on wait for an exit of `vcpu` with this reason? */
export function programAwaits(program: readonly HostStep[], pc: number, vcpu: number, exit: string): boolean {
  for (let i = pc; i < program.length; i++) {
    const s = program[i]!;
    if (s.op === 'waitExit' && s.vcpu === vcpu && s.exit === exit) return true;
  }
  return false;
}

/** The exit's fields in the expectation's terms. */
function fieldsOf(e: ParkedExit): Required<ExitExpectation> {
  const p = e.payload as Record<string, number | bigint>;
  const big = (v: number | bigint | undefined) => BigInt(v ?? 0);
  switch (e.exit) {
    case 'KVM_EXIT_IO':
      return { address: big(p.port), size: big(p.size), direction: Number(p.direction), data: big(p.data), code: 0n };
    case 'KVM_EXIT_MMIO':
      return { address: big(p.phys_addr), size: big(p.len), direction: Number(p.is_write), data: big(p.data), code: 0n };
    case 'KVM_EXIT_HYPERCALL':
      return { address: big((p.args as unknown as bigint[])[0]), size: big((p.args as unknown as bigint[])[1]), direction: 0, data: big((p.args as unknown as bigint[])[2]), code: big(p.nr) };
    default:
      return { address: big(p.gpa), size: big(p.size), direction: 0, data: 0n, code: big(p.flags) };
  }
}

const FIELD_NAMES: Record<string, Record<keyof ExitExpectation, string>> = {
  KVM_EXIT_IO: { address: 'port', size: 'size', direction: 'direction', data: 'data', code: 'code' },
  KVM_EXIT_MMIO: { address: 'phys_addr', size: 'len', direction: 'is_write', data: 'data', code: 'code' },
  KVM_EXIT_HYPERCALL: { address: 'args[0]', size: 'args[1]', direction: 'direction', data: 'args[2]', code: 'nr' },
  KVM_EXIT_MEMORY_FAULT: { address: 'gpa', size: 'size', direction: 'direction', data: 'data', code: 'flags' },
};

/** null when the exit is the one expected; otherwise what differs, in the exit's own field names. */
export function exitMismatch(step: Extract<RunStep, { op: 'waitExit' }>, got: ParkedExit): string | null {
  if (got.exit !== step.exit) return `expected ${step.exit} on vCPU ${step.vcpu}, got ${got.exit}`;
  const have = fieldsOf(got);
  const names = FIELD_NAMES[step.exit]!;
  const wrong: string[] = [];
  for (const k of Object.keys(step.expect) as (keyof ExitExpectation)[]) {
    const want = step.expect[k];
    if (want === undefined) continue;
    if (BigInt(want) !== BigInt(have[k])) wrong.push(`${names[k]} ${hex(BigInt(have[k]))} (expected ${hex(BigInt(want))})`);
  }
  return wrong.length === 0 ? null : `${step.exit} on vCPU ${step.vcpu} has ${wrong.join(', ')}`;
}

/** How a step reads in a failure or a progress report. */
export function describeStep(s: HostStep | undefined): string {
  if (s === undefined) return 'the end of the program';
  switch (s.op) {
    case 'waitExit':
      return `${s.label} (waitExit ${s.exit} on vCPU ${s.vcpu})`;
    case 'run':
      return `${s.label} (KVM_RUN vCPU ${s.vcpu})`;
    case 'write':
      return `${s.label} (write ${hex(s.gpa)})`;
    case 'read':
      return `${s.label} (read ${hex(s.gpa)})`;
    case 'waitMemory':
      return `${s.label} (waitMemory ${hex(s.gpa)} == ${hex(s.value)})`;
    case 'convert':
      return `${s.label} (KVM_SET_MEMORY_ATTRIBUTES ${hex(s.address)})`;
    case 'setMemoryRegion':
      return `${s.label} (KVM_SET_USER_MEMORY_REGION2 slot ${s.slot}${s.size === 0n ? ' delete' : ` ${hex(s.gpa)} +${hex(s.size)}`})`;
    case 'exit':
      return `${s.label} (exit)`;
    case 'fallocate':
      return `${s.label} (fallocate guest_memfd of memslot ${s.slot}, mode ${hex(BigInt(s.mode))}, offset ${hex(s.offset)}, len ${hex(s.len)})`;
    case 'ftruncate':
      return `${s.label} (ftruncate guest_memfd of memslot ${s.slot} to ${hex(s.length)})`;
    case 'preFault':
    case 'preFaultBuild':
      return `${s.label} (KVM_PRE_FAULT_MEMORY vCPU ${s.vcpu} ${hex(s.gpa)}+${hex(s.size)})`;
    default:
      return s.op;
  }
}
