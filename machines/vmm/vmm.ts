/**
 * The userspace VMM (QEMU's role). Its main thread runs a host program (hostProgram.ts); more threads,
 * each its own actor, run theirs (hostThread.ts), and then the main thread's ioctls take KVM's mutexes
 * as steps too (kvmLocks.ts). For a TD the
 * program first builds it (§5b.3): marks the guest_memfd ranges private (KVM_SET_MEMORY_ATTRIBUTES),
 * KVM_TDX_INIT_VM, KVM_TDX_INIT_VCPU per vCPU, writes each page of the initial image into a staging page
 * of its own memory and hands it to KVM_TDX_INIT_MEM_REGION with KVM_TDX_MEASURE_MEMORY_REGION, then
 * KVM_TDX_FINALIZE_VM. Then it starts every vCPU thread with KVM_RUN, and the scenario's host steps run
 * while the VMM handles the exits that leave the kernel (an exit a later `waitExit` names is the
 * program's). For KVM_EXIT_MMIO it performs the access on its device model and re-enters with
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
import { setup, assign, emit, enqueueActions, and } from 'xstate';
import { hex } from '../../src/arch/hex.ts';
import { out, payloadOf, type MachineEvent, type Outgoing } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { deviceRead, deviceWrite, findDevice, type MmioDevice } from './mmioDevice.ts';
import { TDVMCALL_GET_TD_VM_CALL_INFO, TDVMCALL_STATUS_SUCCESS, TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT } from '../../src/arch/tdcall.ts';
import { KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_MEMORY_EXIT_FLAG_PRIVATE, HYPERCALL_RET_EAGAIN, HYPERCALL_RET_EINVAL } from '../../src/arch/kvmApi.ts';
import { PAGE_SIZE } from '../../src/arch/gpa.ts';
import { portRead, portWriteEffect } from './acpiPm.ts';
import { SLOTS_LOCK } from '../kvm/kvmLocks.ts';
import { describeStep, exitMismatch, isBuildStep, parkedOf, programAwaits, type BuildStep, type HostStep, type ParkedExit, type PreFaultStep } from './hostProgram.ts';

/** A file the VMM holds, by its anon-inode name. */
export type KvmFile = { name: 'kvm-vm' } | { name: 'kvm-gmem'; slot: number } | { name: 'kvm-vcpu'; vcpu: number };

/** A conversion the VMM performs for a vCPU's exit. */
export interface Conversion {
  vcpu: number;
  address: bigint;
  size: bigint;
  attributes: bigint;
  /** MapGPA completes with run->hypercall.ret; an implicit conversion just re-runs; a host step goes on. */
  exit: 'hypercall' | 'memoryFault' | 'host' | 'gmem';
  /** With host threads: what the ioctl returned, kept while kvm->slots_lock is being dropped. */
  ret?: number;
  /**
   * exit 'gmem': not a conversion but a host step's fallocate/ftruncate on a guest_memfd, queued with the
   * conversions because kvm.vm runs one of them at a time (the kernel lets a hole punch and an attribute
   * change overlap, each taking mmu_lock for its own sections; the model serialises them).
   */
  syscall?: { name: 'fallocate'; slot: number; mode: number; offset: bigint; len: bigint } | { name: 'ftruncate'; slot: number; length: bigint };
}

export interface VmmInput {
  vcpus: number;
  devices: readonly MmioDevice[];
  /** The main thread's host program: the TD build, starting the vCPUs, then the scenario's `host:` steps. */
  program: readonly HostStep[];
  /** Values MMIO reads return, one per read exit in order, before the device models answer (`vmm.mmioReads`). */
  mmioReads: readonly bigint[];
  /** `vmm.mapGpa` and `vmm.memoryFault`: how those exits are answered when no waitExit takes them. */
  mapGpaAnswer: 'convert' | 'fail';
  memoryFaultAnswer: 'convert' | 'stop';
  /** Answer this many MapGPA exits with EAGAIN first (scenario `vmm.mapGpaEagain`). */
  mapGpaEagain: number;
  /** Memslots backed by a guest_memfd (one file each). */
  gmemSlots: readonly number[];
  /** MSIs a device raises with KVM_SIGNAL_MSI once the vCPUs run (scenario `vmm.msi`). */
  msi: readonly { vcpu: number; vector: number }[];
  /** vCPUs the VMM sends an NMI with KVM_NMI once they run (scenario `vmm.nmi`). */
  nmi: readonly number[];
  /** Playground kthreads (host.kthreadN) to start once the TD is built. */
  kthreads?: readonly number[];
  /**
   * Only with host threads (`hostThreads:`): the threads to start with the vCPU threads, the vCPUs such a
   * thread creates (no vCPU thread runs them), and `locked` — the VMM's own KVM_SET_MEMORY_ATTRIBUTES take
   * kvm->slots_lock (kvmLocks.ts) as the threads' do.
   */
  threads?: { runnable: readonly number[]; unrun: readonly number[]; locked: boolean };
  /** `vmm.inReads`: what port INs return, one value per KVM_EXIT_IO IN in order, before the device models answer. */
  inReads?: readonly bigint[];
}

export interface VmmContext {
  vcpus: number;
  devices: readonly MmioDevice[];
  program: readonly HostStep[];
  /** Index of the host step in progress (or waited on). */
  pc: number;
  /** The step at `pc` has been issued and waits for its return (a write, a read, a conversion). */
  awaiting: boolean;
  /** vCPU threads the VMM left in userspace for good (`vmm.memoryFault: stop`). */
  stopped: readonly boolean[];
  /** Exits a later `waitExit` step claims, their vCPU threads held in userspace. */
  parked: readonly ParkedExit[];
  /** The program's `exit` step ran: the VMM shuts the VM down as after a guest power-off. */
  exiting: boolean;
  /** Per vCPU: the exit a `waitExit` took, until a `run` step re-enters the vCPU. */
  held: readonly (ParkedExit | null)[];
  mmioReads: readonly bigint[];
  mapGpaAnswer: 'convert' | 'fail';
  memoryFaultAnswer: 'convert' | 'stop';
  unassignedAccesses: number;
  /** Data for the KVM_RUN that completes the current KVM_EXIT_MMIO. */
  reply: bigint | null;
  mapGpaEagain: number;
  /** Conversions waiting, the first one in progress. */
  conversions: readonly Conversion[];
  /** Which vCPU threads are inside KVM_RUN (sent KVM_RUN, no exit back yet). */
  inKernel: readonly boolean[];
  gmemSlots: readonly number[];
  msi: readonly { vcpu: number; vector: number }[];
  nmi: readonly number[];
  /** Files still to close at exit, in the order they were opened. */
  closing: readonly KvmFile[];
  /** Port writes nothing claimed (QEMU's unassigned I/O drops them). */
  unassignedPortWrites: number;
  kthreads: readonly number[];
  threads?: { runnable: readonly number[]; unrun: readonly number[]; locked: boolean };
  /** Host threads that have ended (THREAD_EXIT), for `join`. */
  exitedThreads?: readonly number[];
  inReads?: readonly bigint[];
  /**
   * The program's KVM_SET_USER_MEMORY_REGION2: issued, or waiting for the conversion in progress. In the
   * kernel kvm->slots_lock serialises it with KVM_SET_MEMORY_ATTRIBUTES; the VMM issues one at a time.
   */
  region?: 'issued' | 'waiting';
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

function withFlag(flags: readonly boolean[], i: number, value: boolean): boolean[] {
  const next = flags.slice();
  next[i] = value;
  return next;
}

function expectationFailed(s: HostStep, what: string): Emitted {
  return { type: 'tdxsim.failure', reason: 'expectation failed', detail: `vmm: ${describeStep(s)}: ${what}` };
}

/**
 * Run the main thread's program from `pc` until a step waits: for its return (memory access, conversion)
 * or for an exit no vCPU has delivered yet. KVM_RUN returns only with the next exit, so `run` and
 * `startVcpus` never wait here.
 */
function runProgram(c: VmmContext, emitOut: (e: Emitted) => void): Pick<VmmContext, 'pc' | 'awaiting' | 'parked' | 'inKernel' | 'conversions' | 'held' | 'exiting' | 'region'> {
  let { pc, awaiting, parked, inKernel, conversions, held, exiting, region } = c;
  while (!awaiting && pc < c.program.length) {
    const s = c.program[pc]!;
    if (s.op === 'startVcpus') {
      // Playground kthreads that run next to the TD start first, as the vCPU threads do.
      for (const t of c.kthreads) emitOut(out(`host.kthread${t}`, 'kthread', 'KTHREAD_START', { thread: t }));
      for (const t of c.threads?.runnable ?? []) emitOut(out(`vmm.thread${t}`, 'thread', 'THREAD_START', { thread: t }));
      const unrun = c.threads?.unrun ?? [];
      for (let v = 0; v < c.vcpus; v++) if (!unrun.includes(v)) emitOut(out(`kvm.vcpu${v}`, 'ioctl', 'KVM_RUN', { vcpu: v, mmioData: null }));
      // The scenario's NMIs (KVM_NMI) and a device's MSIs (struct kvm_msi: address 0xfee00000 | destination
      // APIC id << 12, data = fixed-delivery vector), sent once the vCPUs run.
      for (const v of c.nmi) emitOut(out(`kvm.vcpu${v}`, 'ioctl', 'KVM_NMI', { vcpu: v }));
      for (const m of c.msi) emitOut(out(`kvm.vcpu${m.vcpu}`, 'ioctl', 'KVM_SIGNAL_MSI', { vcpu: m.vcpu, address_lo: (0xfee00000 | (m.vcpu << 12)) >>> 0, address_hi: 0, data: m.vector, flags: 0 }));
      inKernel = inKernel.map((_, v) => !unrun.includes(v));
    } else if (s.op === 'waitExit') {
      const i = parked.findIndex((p) => p.vcpu === s.vcpu);
      if (i < 0) break;
      const got = parked[i]!;
      parked = parked.filter((_, j) => j !== i);
      held = held.map((h, v) => (v === s.vcpu ? got : h));
      const wrong = exitMismatch(s, got);
      if (wrong !== null) {
        emitOut(expectationFailed(s, wrong));
        pc = c.program.length;
        break;
      }
    } else if (s.op === 'run') {
      const h = held[s.vcpu] ?? null;
      if (h === null) {
        emitOut(expectationFailed(s, `vCPU ${s.vcpu} has no exit the program holds (it is inside KVM_RUN or its exit went to the device models)`));
        pc = c.program.length;
        break;
      }
      const p = h.payload as { is_write?: number; phys_addr?: bigint; len?: number; direction?: number; port?: number; size?: number };
      const mmioData = s.data ?? (h.exit === 'KVM_EXIT_MMIO' && p.is_write === 0 ? mmioDefault(c, p.phys_addr!, p.len!) : null);
      const portIn = h.exit === 'KVM_EXIT_IO' && p.direction === KVM_EXIT_IO_IN;
      // A port IN the program took: its data, else what the device models answer, at run->io.data_offset.
      const ioData = portIn ? (s.data ?? portRead(p.port!, p.size!)) & ((1n << BigInt(8 * p.size!)) - 1n) : undefined;
      emitOut(
        out(
          `kvm.vcpu${s.vcpu}`,
          'ioctl',
          'KVM_RUN',
          h.exit === 'KVM_EXIT_HYPERCALL' ? { vcpu: s.vcpu, mmioData: null, hypercallRet: s.ret } : portIn ? { vcpu: s.vcpu, mmioData: null, ioData } : { vcpu: s.vcpu, mmioData },
        ),
      );
      inKernel = withFlag(inKernel, s.vcpu, true);
      held = held.map((x, v) => (v === s.vcpu ? null : x));
    } else if ((s.op === 'write' || s.op === 'read' || s.op === 'waitMemory') && s.gone !== undefined) {
      // A userspace bug the program made itself: it dropped the mapping (memslot) this access goes through.
      emitOut(expectationFailed(s, s.gone));
      pc = c.program.length;
      break;
    } else if (s.op === 'write') {
      emitOut(out('hw.mem', 'mem', 'MEM_WRITE', { pa: s.pa, size: s.size, keyid: 0, value: s.value, tag: 'vmm.host' }));
      awaiting = true;
      break;
    } else if (s.op === 'read' || s.op === 'waitMemory') {
      emitOut(out('hw.mem', 'mem', 'MEM_READ', { pa: s.pa, size: s.size, keyid: 0, tag: 'vmm.host' }));
      awaiting = true;
      break;
    } else if (s.op === 'convert') {
      // The main thread's own conversions go one at a time, in the order their exits came.
      const conv: Conversion = { vcpu: -1, address: s.address, size: s.size, attributes: s.attributes, exit: 'host' };
      if (conversions.length === 0) emitOut(startConversion(c, conv));
      conversions = [...conversions, conv];
      awaiting = true;
      break;
    } else if (s.op === 'fallocate' || s.op === 'ftruncate') {
      const syscall = s.op === 'fallocate' ? { name: s.op, slot: s.slot, mode: s.mode, offset: s.offset, len: s.len } : { name: s.op, slot: s.slot, length: s.length };
      const gmemCall: Conversion = { vcpu: -1, address: 0n, size: 0n, attributes: 0n, exit: 'gmem', syscall };
      if (conversions.length === 0) emitOut(startConversion(c, gmemCall));
      conversions = [...conversions, gmemCall];
      awaiting = true;
      break;
    } else if (s.op === 'preFault') {
      // The ioctl takes vcpu->mutex: the loader only accepts it on a vCPU a waitExit holds in userspace.
      emitOut(preFaultMessage(s));
      awaiting = true;
      break;
    } else if (s.op === 'setMemoryRegion') {
      // This thread holds no other KVM lock; kvm->slots_lock, which the ioctl takes in the kernel, serialises it with KVM_SET_MEMORY_ATTRIBUTES.
      if (conversions.length === 0) emitOut(regionIoctl(s));
      region = conversions.length === 0 ? 'issued' : 'waiting';
      awaiting = true;
      break;
    } else if (s.op === 'exit') {
      // The program ends here; `running` sees the request and stops the vCPUs (`stopping`).
      exiting = true;
      pc++;
      break;
    } else {
      throw new Error(`vmm: build step ${s.op} after the vCPUs started`);
    }
    pc++;
  }
  return { pc, awaiting, parked, inKernel, conversions, held, exiting, ...(region === undefined ? {} : { region }) };
}

function regionIoctl(s: Extract<HostStep, { op: 'setMemoryRegion' }>): Outgoing {
  return out('kvm.vm', 'ioctl', 'KVM_SET_USER_MEMORY_REGION2', { slot: s.slot, flags: s.flags, guest_phys_addr: s.gpa, memory_size: s.size, guest_memfd_offset: s.guestMemfdOffset });
}

/** The message a build step sends (a join sends none: it waits for THREAD_EXIT). */
function buildStepMessage(b: BuildStep): Outgoing | null {
  switch (b.op) {
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
    case 'preFaultBuild':
      return preFaultMessage(b);
    case 'mutexLock':
      return out('kvm.locks', 'mutex', 'MUTEX_LOCK', { lock: b.lock });
    case 'mutexUnlock':
      return out('kvm.locks', 'mutex', 'MUTEX_UNLOCK', { lock: b.lock });
    case 'spawn':
      return out(`vmm.thread${b.thread}`, 'thread', 'THREAD_START', { thread: b.thread });
    case 'join':
      // Waits for THREAD_EXIT; nothing is sent.
      return null;
  }
}

/**
 * KVM_SET_MEMORY_ATTRIBUTES for a conversion; with host threads it first takes kvm->slots_lock
 * (kvm_vm_set_mem_attributes), which another thread's ioctl may hold.
 */
function startConversion(c: Pick<VmmContext, 'threads'>, conv: Conversion): Outgoing {
  // fallocate on a guest_memfd takes the file's invalidate lock and mmu_lock, not kvm->slots_lock.
  if (conv.exit === 'gmem') return syscallMessage(conv);
  if (c.threads?.locked === true) return out('kvm.locks', 'mutex', 'MUTEX_LOCK', { lock: SLOTS_LOCK });
  return out('kvm.vm', 'ioctl', 'KVM_SET_MEMORY_ATTRIBUTES', { address: conv.address, size: conv.size, attributes: conv.attributes });
}

/** A queued guest_memfd syscall as the message kvm.vm runs it. */
function syscallMessage(c: Conversion): Outgoing {
  const sc = c.syscall!;
  return sc.name === 'fallocate'
    ? out('kvm.vm', 'syscall', 'fallocate', { slot: sc.slot, mode: sc.mode, offset: sc.offset, len: sc.len })
    : out('kvm.vm', 'syscall', 'ftruncate', { slot: sc.slot, length: sc.length });
}

function preFaultMessage(s: PreFaultStep): Outgoing {
  return out(`kvm.vcpu${s.vcpu}`, 'ioctl', 'KVM_PRE_FAULT_MEMORY', { vcpu: s.vcpu, gpa: s.gpa, size: s.size, flags: s.flags });
}

/** What a KVM_PRE_FAULT_MEMORY step expected and did not get, or null. */
function preFaultMismatch(s: PreFaultStep, r: { ret: number; gpa: bigint; size: bigint }): string | null {
  if (s.expectRet !== null && r.ret !== s.expectRet) return `returned ${r.ret}, expected ${s.expectRet} (range left ${hex(r.gpa)}+${hex(r.size)})`;
  if (s.expectSize !== null && r.size !== s.expectSize) return `left ${hex(r.size)} bytes of the range, expected ${hex(s.expectSize)}`;
  return null;
}

/** What an MMIO read returns when the program answers it without a value: the scripted reads, then the devices. */
function mmioDefault(c: VmmContext, addr: bigint, len: number): bigint {
  const dev = findDevice(c.devices, addr);
  return dev === undefined ? 0n : deviceRead(dev, addr, len);
}

export const vmmMachine = setup({
  types: {
    context: {} as VmmContext,
    events: {} as MachineEvent,
    input: {} as VmmInput,
    emitted: {} as Emitted,
  },
  guards: {
    hasBuild: ({ context }) => isBuildStep(context.program[0]),
    // A pre-fault's return is the step's to check (preFaultDone): a refusal is what a scenario may want to see.
    stepFailed: ({ event }) => event.msg.kind === 'ioctl-return' && event.type !== 'KVM_PRE_FAULT_MEMORY' && (event.msg.payload as { ret: number }).ret !== 0,
    buildDone: ({ context }) => !isBuildStep(context.program[context.pc + 1]),
    /** pthread_create returns at once; a join of a thread that has already ended too. */
    noReplyStep: ({ context }) => {
      const b = context.program[context.pc];
      return b?.op === 'spawn' || (b?.op === 'join' && (context.exitedThreads ?? []).includes(b.thread));
    },
    joiningThis: ({ context, event }) => {
      const b = context.program[context.pc];
      return b?.op === 'join' && b.thread === (event.msg.payload as { thread: number }).thread;
    },
    scriptedIn: ({ context }) => (context.inReads ?? []).length > 0,
    locked: ({ context }) => context.threads?.locked === true,
    /** A later `waitExit` step claims this vCPU's exit. */
    programAwaits: ({ context, event }) => programAwaits(context.program, context.pc, (event.msg.payload as { vcpu: number }).vcpu, event.msg.name),
    eagainLeft: ({ context }) => context.mapGpaEagain > 0,
    failMapGpa: ({ context }) => context.mapGpaAnswer === 'fail',
    stopOnMemoryFault: ({ context }) => context.memoryFaultAnswer === 'stop',
    idleConverting: ({ context }) => context.conversions.length === 0 && context.region !== 'issued',
    moreConversions: ({ context }) => context.conversions.length > 1,
    poweroff: ({ event }) => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_IO');
      return e.direction === KVM_EXIT_IO_OUT && portWriteEffect(e.port, e.size, e.data) === 'poweroff';
    },
    exitRequested: ({ context }) => context.exiting,
    portIn: ({ event }) => payloadOf(event, 'kvm-exit', 'KVM_EXIT_IO').direction === KVM_EXIT_IO_IN,
    allStopped: ({ context }) => context.inKernel.every((k) => !k) && context.conversions.length === 0,
    moreFiles: ({ context }) => context.closing.length > 1,
  },
  actions: {
    issueBuildStep: enqueueActions(({ context, enqueue }) => {
      const b = context.program[context.pc]!;
      if (!isBuildStep(b)) throw new Error(`vmm: ${b.op} is not a build step`);
      const m = buildStepMessage(b);
      if (m !== null) enqueue.emit(m);
    }),
    noteThreadExit: assign({ exitedThreads: ({ context, event }) => [...(context.exitedThreads ?? []), (event.msg.payload as { thread: number }).thread] }),
    nextBuildStep: enqueueActions(({ context, event, enqueue }) => {
      const s = context.program[context.pc]!;
      if (s.op === 'preFaultBuild') {
        const wrong = preFaultMismatch(s, payloadOf(event, 'ioctl-return', 'KVM_PRE_FAULT_MEMORY'));
        if (wrong !== null) enqueue.emit(expectationFailed(s, wrong));
      }
      enqueue.assign({ pc: context.pc + 1 });
    }),
    /** The main thread goes on with its program until a step has to wait. */
    runProgram: enqueueActions(({ context, enqueue }) => {
      enqueue.assign(runProgram(context, (e) => enqueue.emit(e)));
    }),
    /** The exit stays with the program; its vCPU thread stays in userspace. */
    parkExit: enqueueActions(({ context, event, enqueue }) => {
      const parked = parkedOf(event);
      const c = { ...context, parked: [...context.parked, parked], inKernel: withFlag(context.inKernel, parked.vcpu, false) };
      enqueue.assign(runProgram(c, (e) => enqueue.emit(e)));
    }),
    /** KVM_SET_USER_MEMORY_REGION2 returned: check it as the step expects, then go on. */
    memoryRegionSet: enqueueActions(({ context, event, enqueue }) => {
      const s = context.program[context.pc]!;
      const ret = payloadOf(event, 'ioctl-return', 'KVM_SET_USER_MEMORY_REGION2').ret;
      if (s.op === 'setMemoryRegion' && s.expectRet !== null && ret !== s.expectRet) enqueue.emit(expectationFailed(s, `returned ${ret}, expected ${s.expectRet}`));
      // A conversion a vCPU's exit queued meanwhile starts now.
      const first = context.conversions[0];
      if (first !== undefined) enqueue.emit(out('kvm.vm', 'ioctl', 'KVM_SET_MEMORY_ATTRIBUTES', { address: first.address, size: first.size, attributes: first.attributes }));
      const c = { ...context, pc: context.pc + 1, awaiting: false, region: undefined };
      enqueue.assign({ region: undefined, ...runProgram(c, (e) => enqueue.emit(e)) });
    }),
    /** A host write or read of guest memory returned. */
    hostAccessDone: enqueueActions(({ context, event, enqueue }) => {
      const s = context.program[context.pc];
      if (s?.op === 'read' && s.expect !== null && event.type === 'MEM_DATA') {
        const got = payloadOf(event, 'mem', 'MEM_DATA').value;
        if (got !== s.expect) enqueue.emit(expectationFailed(s, `read ${hex(got)}, expected ${hex(s.expect)}`));
      }
      if (s?.op === 'waitMemory' && payloadOf(event, 'mem', 'MEM_DATA').value !== s.value) {
        enqueue.emit(out('hw.mem', 'mem', 'MEM_READ', { pa: s.pa, size: s.size, keyid: 0, tag: 'vmm.host' }));
        return;
      }
      const c = { ...context, pc: context.pc + 1, awaiting: false };
      enqueue.assign(runProgram(c, (e) => enqueue.emit(e)));
    }),
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
    convert: emit(({ context }) => startConversion(context, context.conversions[0]!)),
    /** kvm->slots_lock is ours: the conversion's ioctl body runs. */
    convertLocked: emit(({ context }) => {
      const c = context.conversions[0]!;
      if (c.exit === 'gmem') return syscallMessage(c);
      return out('kvm.vm', 'ioctl', 'KVM_SET_MEMORY_ATTRIBUTES', { address: c.address, size: c.size, attributes: c.attributes });
    }),
    /**
     * With host threads the ioctl returns only after dropping kvm->slots_lock, a step of its own: the
     * return value waits for MUTEX_UNLOCKED, which completes the conversion.
     */
    unlockSlots: enqueueActions(({ context, event, enqueue }) => {
      if (context.threads?.locked !== true) return;
      enqueue.emit(out('kvm.locks', 'mutex', 'MUTEX_UNLOCK', { lock: SLOTS_LOCK }));
      const [c, ...rest] = context.conversions;
      if (c !== undefined) enqueue.assign({ conversions: [{ ...c, ret: payloadOf(event, 'ioctl-return', 'KVM_SET_MEMORY_ATTRIBUTES').ret }, ...rest] });
    }),
    /** Shutting down: a conversion that only now got kvm->slots_lock is not started. */
    dropSlots: enqueueActions(({ context, enqueue }) => {
      enqueue.emit(out('kvm.locks', 'mutex', 'MUTEX_UNLOCK', { lock: SLOTS_LOCK }));
      enqueue.assign({ conversions: context.conversions.slice(1) });
    }),
    /** The converted vCPU re-enters; a MapGPA learns whether the ioctl worked. */
    converted: enqueueActions(({ context, event, enqueue }) => {
      const c = context.conversions[0]!;
      const ioctlRet = event.type === 'KVM_SET_MEMORY_ATTRIBUTES' ? payloadOf(event, 'ioctl-return', 'KVM_SET_MEMORY_ATTRIBUTES').ret : c.ret!;
      const ok = ioctlRet === 0;
      const run = c.exit === 'hypercall' ? { vcpu: c.vcpu, mmioData: null, hypercallRet: ok ? 0 : HYPERCALL_RET_EINVAL } : { vcpu: c.vcpu, mmioData: null };
      if (c.exit === 'host') {
        const s = context.program[context.pc]!;
        const ret = ioctlRet;
        if (s.op === 'convert' && s.expectRet !== null && ret !== s.expectRet) enqueue.emit(expectationFailed(s, `returned ${ret}, expected ${s.expectRet}`));
        const next = { ...context, conversions: context.conversions.slice(1), pc: context.pc + 1, awaiting: false };
        enqueue.assign(runProgram(next, (e) => enqueue.emit(e)));
        return;
      } else if (c.exit === 'memoryFault' && !ok) {
        enqueue.emit({ type: 'tdxsim.failure', reason: 'VMM error', detail: `vmm: converting ${hex(c.address)} for a KVM_EXIT_MEMORY_FAULT failed; QEMU stops the vCPU` });
      } else {
        enqueue.emit(out(`kvm.vcpu${c.vcpu}`, 'ioctl', 'KVM_RUN', run));
        enqueue.assign({ inKernel: withFlag(context.inKernel, c.vcpu, true) });
      }
      enqueue.assign({ conversions: context.conversions.slice(1) });
      const s = context.program[context.pc];
      if (context.conversions.length === 1 && context.region === 'waiting' && s?.op === 'setMemoryRegion') {
        enqueue.emit(regionIoctl(s));
        enqueue.assign({ region: 'issued' });
      }
    }),
    /** A guest_memfd syscall returned: check it, go on with the program, and let the next queued request run. */
    syscallDone: enqueueActions(({ context, event, enqueue }) => {
      const s = context.program[context.pc]!;
      const ret = (event.msg.payload as { ret: number }).ret;
      if ((s.op === 'fallocate' || s.op === 'ftruncate') && s.expectRet !== null && ret !== s.expectRet) enqueue.emit(expectationFailed(s, `returned ${ret}, expected ${s.expectRet}`));
      const next = { ...context, conversions: context.conversions.slice(1), pc: context.pc + 1, awaiting: false };
      // Requests queued behind this one start now; runProgram starts one itself only on an empty queue.
      const head = next.conversions[0];
      if (head !== undefined) enqueue.emit(startConversion(context, head));
      enqueue.assign(runProgram(next, (e) => enqueue.emit(e)));
    }),
    /** KVM_PRE_FAULT_MEMORY returned to the program after the vCPUs started (during the build, nextBuildStep checks it). */
    preFaultDone: enqueueActions(({ context, event, enqueue }) => {
      const s = context.program[context.pc]!;
      const r = payloadOf(event, 'ioctl-return', 'KVM_PRE_FAULT_MEMORY');
      const wrong = s.op === 'preFault' ? preFaultMismatch(s, r) : null;
      if (wrong !== null) enqueue.emit(expectationFailed(s, wrong));
      enqueue.assign(runProgram({ ...context, pc: context.pc + 1, awaiting: false }, (e) => enqueue.emit(e)));
    }),
    /** The scenario asked the VMM to refuse this MapGPA chunk for now. */
    /** vmm.mapGpa: fail — the chunk is refused with -EINVAL without a conversion. */
    answerEinval: enqueueActions(({ context, event, enqueue }) => {
      const v = payloadOf(event, 'kvm-exit', 'KVM_EXIT_HYPERCALL').vcpu;
      enqueue.assign({ inKernel: withFlag(context.inKernel, v, true) });
      enqueue.emit(out(event.msg.from, 'ioctl', 'KVM_RUN', { vcpu: v, mmioData: null, hypercallRet: HYPERCALL_RET_EINVAL }));
    }),
    /** vmm.memoryFault: stop — the vCPU thread never calls KVM_RUN again. */
    stopVcpu: assign({ stopped: ({ context, event }) => withFlag(context.stopped, payloadOf(event, 'kvm-exit', 'KVM_EXIT_MEMORY_FAULT').vcpu, true) }),
    answerEagain: enqueueActions(({ context, event, enqueue }) => {
      const v = payloadOf(event, 'kvm-exit', 'KVM_EXIT_HYPERCALL').vcpu;
      enqueue.assign({ mapGpaEagain: context.mapGpaEagain - 1, inKernel: withFlag(context.inKernel, v, true) });
      enqueue.emit(out(event.msg.from, 'ioctl', 'KVM_RUN', { vcpu: v, mmioData: null, hypercallRet: HYPERCALL_RET_EAGAIN }));
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
    /** `vmm.inReads`: the next scripted value, cut to the access size, answers the IN. */
    answerScriptedIn: enqueueActions(({ context, event, enqueue }) => {
      const e = payloadOf(event, 'kvm-exit', 'KVM_EXIT_IO');
      const [value, ...rest] = context.inReads!;
      const mask = (1n << BigInt(8 * e.size)) - 1n;
      enqueue.assign({ inKernel: withFlag(context.inKernel, e.vcpu, true), inReads: rest });
      enqueue.emit(out(event.msg.from, 'ioctl', 'KVM_RUN', { vcpu: e.vcpu, mmioData: null, ioData: value! & mask }));
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
      if (!e.is_write && context.mmioReads.length > 0) return { reply: context.mmioReads[0]!, mmioReads: context.mmioReads.slice(1) };
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
    program: input.program,
    pc: 0,
    awaiting: false,
    parked: [],
    held: Array.from({ length: input.vcpus }, () => null),
    exiting: false,
    mmioReads: input.mmioReads,
    mapGpaAnswer: input.mapGpaAnswer,
    memoryFaultAnswer: input.memoryFaultAnswer,
    stopped: Array.from({ length: input.vcpus }, () => false),
    unassignedAccesses: 0,
    reply: null,
    mapGpaEagain: input.mapGpaEagain,
    conversions: [],
    inKernel: Array.from({ length: input.vcpus }, () => false),
    gmemSlots: input.gmemSlots,
    msi: input.msi,
    nmi: input.nmi,
    closing: [],
    unassignedPortWrites: 0,
    kthreads: input.kthreads ?? [],
    // Present only when the scenario uses them, so other runs keep their states as they were.
    ...(input.threads === undefined ? {} : { threads: input.threads, exitedThreads: [] }),
    ...(input.inReads === undefined || input.inReads.length === 0 ? {} : { inReads: input.inReads }),
  }),
  initial: 'starting',
  // A device's KVM_SIGNAL_MSI returns whenever its delivery ran; the device does not wait for it.
  on: { KVM_SIGNAL_MSI: {}, KVM_NMI: {}, '*': { actions: 'unexpected' } },
  states: {
    starting: { always: [{ guard: 'hasBuild', target: 'building' }, { target: 'running' }] },
    /** The TD build, one ioctl (or staging write) at a time (§5b.3). */
    building: {
      entry: 'issueBuildStep',
      always: [
        // A join of a thread that already ended can be the build's last step (a thread finalized the TD).
        { guard: and(['noReplyStep', 'buildDone']), target: 'running', actions: 'nextBuildStep' },
        { guard: 'noReplyStep', target: 'building', reenter: true, actions: 'nextBuildStep' },
      ],
      on: {
        THREAD_EXIT: [
          { guard: and(['joiningThis', 'buildDone']), target: 'running', actions: ['noteThreadExit', 'nextBuildStep'] },
          { guard: 'joiningThis', target: 'building', reenter: true, actions: ['noteThreadExit', 'nextBuildStep'] },
          { actions: 'noteThreadExit' },
        ],
        ...Object.fromEntries(
        ['KVM_SET_MEMORY_ATTRIBUTES', 'KVM_TDX_INIT_VM', 'KVM_TDX_INIT_VCPU', 'KVM_TDX_INIT_MEM_REGION', 'KVM_TDX_FINALIZE_VM', 'MEM_DONE', 'KTHREAD_DONE', 'MUTEX_ACQUIRED', 'MUTEX_UNLOCKED', 'KVM_PRE_FAULT_MEMORY'].map((name) => [
          name,
          [
            { guard: 'stepFailed', target: 'buildFailed', actions: 'buildFailed' },
            { guard: 'buildDone', target: 'running', actions: 'nextBuildStep' },
            { target: 'building', reenter: true, actions: 'nextBuildStep' },
          ],
        ]),
      ),
      },
    },
    buildFailed: { type: 'final' },
    running: {
      entry: 'runProgram',
      always: { guard: 'exitRequested', target: 'stopping' },
      on: {
        KVM_EXIT_MMIO: [{ guard: 'programAwaits', actions: 'parkExit' }, { actions: ['markExited', 'handleMmio', 'resume'] }],
        KVM_EXIT_HYPERCALL: [
          { guard: 'programAwaits', actions: 'parkExit' },
          { guard: 'eagainLeft', actions: ['markExited', 'answerEagain'] },
          { guard: 'failMapGpa', actions: ['markExited', 'answerEinval'] },
          { guard: 'idleConverting', actions: ['markExited', 'queueMapGpa', 'convert'] },
          { actions: ['markExited', 'queueMapGpa'] },
        ],
        KVM_EXIT_MEMORY_FAULT: [{ guard: 'programAwaits', actions: 'parkExit' }, { guard: 'stopOnMemoryFault', actions: ['markExited', 'stopVcpu'] }, { guard: 'idleConverting', actions: ['markExited', 'queueImplicit', 'convert'] }, { actions: ['markExited', 'queueImplicit'] }],
        KVM_SET_MEMORY_ATTRIBUTES: [{ guard: 'locked', actions: 'unlockSlots' }, { guard: 'moreConversions', actions: ['converted', 'convert'] }, { actions: 'converted' }],
        MUTEX_ACQUIRED: { actions: 'convertLocked' },
        MUTEX_UNLOCKED: [{ guard: 'moreConversions', actions: ['converted', 'convert'] }, { actions: 'converted' }],
        THREAD_EXIT: { actions: 'noteThreadExit' },
        MEM_DONE: { actions: 'hostAccessDone' },
        MEM_DATA: { actions: 'hostAccessDone' },
        KVM_SET_USER_MEMORY_REGION2: { actions: 'memoryRegionSet' },
        KVM_EXIT_IO: [
          { guard: 'programAwaits', actions: 'parkExit' },
          { guard: and(['portIn', 'scriptedIn']), actions: ['markExited', 'answerScriptedIn'] },
          { guard: 'portIn', actions: ['markExited', 'answerPortRead'] },
          { guard: 'poweroff', target: 'stopping', actions: 'markExited' },
          { actions: ['markExited', 'ignorePortWrite'] },
        ],
        // QEMU: guest panicked → the default panic action shuts the VM down.
        KVM_EXIT_SYSTEM_EVENT: { target: 'stopping', actions: 'markExited' },
        KVM_EXIT_TDX: { actions: ['markExited', 'answerTdx'] },
        fallocate: { actions: 'syscallDone' },
        ftruncate: { actions: 'syscallDone' },
        KVM_PRE_FAULT_MEMORY: { actions: 'preFaultDone' },
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
        KVM_SET_MEMORY_ATTRIBUTES: { actions: ['unlockSlots', 'conversionAbandoned'] },
        MUTEX_ACQUIRED: { actions: 'dropSlots' },
        MUTEX_UNLOCKED: {},
        THREAD_EXIT: { actions: 'noteThreadExit' },
        fallocate: { actions: 'conversionAbandoned' },
        ftruncate: { actions: 'conversionAbandoned' },
        KVM_PRE_FAULT_MEMORY: {},
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
