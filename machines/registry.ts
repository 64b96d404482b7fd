/**
 * Scenario → actors. Actor ids are stable scenario names (`guest.vcpu0`, `guest.kernel`, `hw.cpu0`, `hw.mem`, `tdx`,
 * `kvm.vcpu0`, `kvm.vm`, `kvm.mmu`, `vmm`), listed top-down as the layers sit: guest, hardware, TDX module,
 * KVM, userspace. That order is also the order of `enabledChoices`, so it is part of the log format.
 */
import type { ActorSpec } from '../src/runtime/world.ts';
import type { Scenario } from '../src/scenario/schema.ts';
import { sharedBit, eptLevels, gpaToGfn, PAGE_SIZE } from '../src/arch/gpa.ts';
import { TD_ATTR_SEPT_VE_DISABLE, TDX_CONFIG_FLAGS_MAX_GPAW, TDX_CONFIG_FLAGS_NO_RBP_MOD } from '../src/arch/tdxStatus.ts';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_TDX_MEASURE_MEMORY_REGION } from '../src/arch/kvmApi.ts';
import { MTRR_TYPE_WRBACK } from '../src/arch/spte.ts';
import { memoryMachine, type PhysPage } from './hw/memory.ts';
import { TDX_GLOBAL_KEYID, TD_HKID } from './hw/keyIds.ts';
import { kvmVmMachine } from './kvm/kvmVm.ts';
import { TDCS_PAGES, TDVPS_PAGES } from './tdxModule/tdxModule.ts';
import type { BuildStep, HostStep } from './vmm/hostProgram.ts';
import { buildPreFaults, hostSteps } from './vmm/hostSteps.ts';
import { guestVcpuMachine } from './guest/guestVcpu.ts';
import { guestKernelMachine, guestPte, vaKey, type GuestKernelInput, type GuestPte } from './guest/guestKernel.ts';
import { placeProgram, type GuestOp, type GuestReg } from './guest/program.ts';
import { cpuMachine } from './hw/cpu.ts';
import { tdxModuleMachine } from './tdxModule/tdxModule.ts';
import { kvmVcpuMachine } from './kvm/kvmVcpu.ts';
import { tdpMmuMachine } from './kvm/tdpMmu.ts';
import { vmmMachine } from './vmm/vmm.ts';
import { kthreadMachine } from './host/kthread.ts';
import { hostThreadMachine, type ThreadIoctl, type ThreadStep } from './vmm/hostThread.ts';
import { exitExpectation, hostPa } from './vmm/hostSteps.ts';
import { ioctlLocks, kvmLocksMachine, type LockedIoctl } from './kvm/kvmLocks.ts';

/**
 * Host physical pages the model hands out. The values are arbitrary but fixed, so logs are comparable:
 * the TD's TDR and TDVPR pages, the two TDP MMU roots and each vCPU's page-table page cache.
 */
export const HOST_LAYOUT = {
  tdrPa: 0x100000000n,
  /** TDCS page i (§1.3): right after the TDR. */
  tdcsPa: (i: number) => 0x100000000n + BigInt((i + 1) * 0x1000),
  /** The TD_PARAMS page TDH.MNG.INIT reads. */
  tdParamsPa: 0x10000f000n,
  tdvprPa: (vcpu: number) => 0x100010000n + BigInt(vcpu * 0x10000),
  tdcxPa: (vcpu: number, i: number) => 0x100010000n + BigInt(vcpu * 0x10000 + (i + 1) * 0x1000),
  /** The posted-interrupt descriptor inside each vCPU's struct vcpu_tdx (64-byte aligned; a kernel allocation). */
  piDescPa: (vcpu: number) => 0x10001f000n + BigInt(vcpu * 0x10000),
  /** The VMM's staging pages for the initial image (source of TDH.MEM.PAGE.ADD). */
  stagingPa: (page: number) => 0x140000000n + BigInt(page * 0x1000),
  mirrorRootPfn: 0x180000,
  directRootPfn: 0x180001,
  cachePfnBase: (vcpu: number) => 0x181000 + vcpu * 0x100,
  externalCachePfnBase: (vcpu: number) => 0x190000 + vcpu * 0x100,
  /**
   * boot_cpu_data.x86_phys_bits with MKTME/TDX KeyID bits carved out of a 52-bit MAXPHYADDR: 6 KeyID bits
   * (KeyIDs up to 63, the kernel's "[16, 64)" TDX range) leave 46; a KeyID-tagged PA is pa | keyid << 46.
   */
  hkidShift: 46,
} as const;

export { TDX_GLOBAL_KEYID, TD_HKID };

/** ioremap() hands out vmalloc addresses; VMALLOC_START with 4-level paging. */
const VMALLOC_START = 0xffffc90000000000n;
/** The kernel's direct map of physical memory, PAGE_OFFSET with 4-level paging and no KASLR. */
export const PAGE_OFFSET = 0xffff888000000000n;
/** Where the model places the #VE handler's own instructions (after the program's text). */
const VE_HANDLER_TEXT = 0xffffffff81100000n;

const ATTRIBUTE_BITS: Record<string, bigint> = { SEPT_VE_DISABLE: TD_ATTR_SEPT_VE_DISABLE };

/**
 * The actors a scenario describes, in the model's fixed order (guest vCPUs, the guest kernel's memory data
 * when the scenario has a guestKernel section, CPUs, the TDX module, KVM's threads, the TDP MMU, the VMM,
 * memory), each with its machine and initial input.
 */
export function actorsFor(s: Scenario): ActorSpec[] {
  const td = s.vm.type === 'tdx';
  const gpaw = s.vm.gpaw as 48 | 52;
  const shared = td ? sharedBit(gpaw) : 0n;
  const nv = s.vcpus.length;
  const vcpus = [...Array(nv).keys()];
  const memslots = s.memslots.map((m) => ({ baseGfn: gpaToGfn(m.gpa), npages: m.size / PAGE_SIZE, guestMemfd: m.guestMemfd }));
  // Each memslot update advances the generation by the number of memslot address spaces: 2 (normal and
  // SMM) for a VMX guest, 1 for a VM with private memory, which cannot use SMM.
  const memslotsGeneration = memslots.length * (td ? 1 : 2);

  const actors: ActorSpec[] = [];
  const isDevice = (gpa: bigint) => s.devices.some((d) => (gpa & ~shared) >= d.gpa && (gpa & ~shared) < d.gpa + d.size);
  // MMIO goes through ioremap()'s vmalloc addresses, memory through the kernel's direct map.
  const glaOf = (gpa: bigint) => (isDevice(gpa) ? VMALLOC_START + ((gpa & ~shared) & 0xfffffffn) : PAGE_OFFSET + (gpa & ~shared));
  const place = (ops: readonly Scenario['vcpus'][number]['program'][number][]): GuestOp[] =>
    ops.map((op): GuestOp => {
      switch (op.op) {
        case 'load':
        case 'store':
        case 'spinUntil': {
          // A va is translated through the guest page tables at run time; the GPA comes from its PTE.
          if (op.va !== undefined) return { ...op, gla: op.va, gpa: 0n, paged: true } as GuestOp;
          return { ...op, gla: op.gla ?? glaOf(op.gpa!), gpa: op.gpa! } as GuestOp;
        }
        case 'loadUnalignedZeropad':
          return { op: op.op, gla: op.va, reg: op.reg as GuestReg };
        case 'setMemoryEncrypted':
        case 'setMemoryDecrypted':
          return { op: op.op, gla: op.va, pages: op.pages };
        default:
          return op as GuestOp;
      }
    });
  for (const v of vcpus) {
    const prologue = placeProgram(place(s.vcpus[v]!.veHandlerPrologue), VE_HANDLER_TEXT);
    actors.push({
      id: `guest.vcpu${v}`,
      machine: guestVcpuMachine,
      input: { vcpu: v, vmType: s.vm.type, gpaw, program: placeProgram(place(s.vcpus[v]!.program)), veHandlerPrologue: prologue, veHandlerText: VE_HANDLER_TEXT, privateVe: s.vcpus[v]!.privateVe, encPrepareFirst: s.policies.tdxEncStatusChangePrepare, mmioRejectsPageCross: s.policies.mmioRejectsPageCross, stiBeforeHaltTdcall: !s.policies.safeHaltStiAfterTdcall },
    });
  }
  if (td && s.guestKernel !== undefined) actors.push({ id: 'guest.kernel', machine: guestKernelMachine, input: guestKernelInput(s.guestKernel, shared, s.policies) });
  for (const v of vcpus) actors.push({ id: `hw.cpu${v}`, machine: cpuMachine, input: { vcpu: v, vmType: s.vm.type, gpaw } });
  const staging: Record<number, PhysPage> = {};
  actors.push({ id: 'hw.mem', machine: memoryMachine, input: { pages: staging } });
  if (td) {
    actors.push({ id: 'tdx', machine: tdxModuleMachine, input: { gpaw, tdvpr: vcpus.map(HOST_LAYOUT.tdvprPa), hkidShift: HOST_LAYOUT.hkidShift, zeroStepThreshold: s.policies.zeroStepThreshold } });
  }
  for (const v of vcpus) {
    actors.push({
      id: `kvm.vcpu${v}`,
      machine: kvmVcpuMachine,
      input: {
        vcpu: v,
        vmType: s.vm.type,
        gpaw,
        tdvpr: td ? HOST_LAYOUT.tdvprPa(v) : 0n,
        memslots,
        memslotsGeneration,
        cachePfnBase: HOST_LAYOUT.cachePfnBase(v),
        externalCachePfnBase: HOST_LAYOUT.externalCachePfnBase(v),
        topLevel: eptLevels(gpaw),
        tdr: td ? HOST_LAYOUT.tdrPa : 0n,
        tdcx: td ? [...Array(TDVPS_PAGES - 1).keys()].map((i) => HOST_LAYOUT.tdcxPa(v, i)) : [],
        ...(s.hostThreads.length > 0 ? { lockRun: true } : {}),
        // Only when a host thread adds image pages: the VMM's mapped staging pages its source must lie in.
        ...(s.hostThreads.some((h) => h.program.some((st) => st.op === 'initMemRegion'))
          ? { sourcePages: { base: HOST_LAYOUT.stagingPa(0), end: HOST_LAYOUT.stagingPa(s.image.length) } }
          : {}),
        piDescPa: td ? HOST_LAYOUT.piDescPa(v) : 0n,
        mapGpaExit: s.vmm.mapGpaExit,
        ...(runOwner(s, v) !== undefined ? { runOwner: runOwner(s, v) } : {}),
        lapicTimerVector: s.vcpus[v]!.lapicTimer?.vector ?? null,
        policies: s.policies,
        vcpus: nv,
      },
    });
  }
  const attributes = s.vm.attributes.reduce((a, n) => a | ATTRIBUTE_BITS[n]!, 0n);
  if (td) {
    actors.push({
      id: 'kvm.vm',
      machine: kvmVmMachine,
      input: {
        tdr: HOST_LAYOUT.tdrPa,
        hkid: TD_HKID,
        tdcs: [...Array(TDCS_PAGES).keys()].map(HOST_LAYOUT.tdcsPa),
        tdParamsPa: HOST_LAYOUT.tdParamsPa,
        vcpus: nv,
        hkidShift: HOST_LAYOUT.hkidShift,
        globalKeyid: TDX_GLOBAL_KEYID,
        // One guest_memfd per memslot that has one (QEMU creates one per RAM block).
        gmem: memslots.flatMap((m, slot) => (m.guestMemfd ? [{ slot, gfnStart: m.baseGfn, gfnEnd: m.baseGfn + BigInt(m.npages) }] : [])),
        policies: s.policies,
        ...(threadCreated(s).length > 0 ? { createdVcpus: nv - threadCreated(s).length } : {}),
        memslots,
        memslotsGeneration,
        // §2: GPAW 52 → MAX_GPAW and 5-level EPT; KVM always sets NO_RBP_MOD (§4.11). EPTP: WB | (levels − 1) << 3.
        tdParams: {
          attributes,
          configFlags: (gpaw === 52 ? TDX_CONFIG_FLAGS_MAX_GPAW : 0n) | TDX_CONFIG_FLAGS_NO_RBP_MOD,
          eptpControls: MTRR_TYPE_WRBACK | (BigInt(eptLevels(gpaw) - 1) << 3n),
          // QEMU's KVM_CAP_MAX_VCPUS = its vCPU count, which KVM passes on as TD_PARAMS.max_vcpus.
          maxVcpus: nv,
        },
      },
    });
  }
  actors.push({
    id: 'kvm.mmu',
    machine: tdpMmuMachine,
    input: { vmType: s.vm.type, gpaw, directRootPfn: HOST_LAYOUT.directRootPfn, mirrorRootPfn: td ? HOST_LAYOUT.mirrorRootPfn : null, memslots, privateHugePages: s.policies.privateHugePages, sharedSuppressVe: s.policies.sharedSuppressVe },
  });
  actors.push({
    id: 'vmm',
    machine: vmmMachine,
    input: {
      vcpus: nv,
      devices: s.devices.map((d) => ({ name: d.name, base: d.gpa, size: d.size, regs: Object.fromEntries(Object.entries(d.registers).map(([k, v]) => ['0x' + BigInt(k).toString(16), v])) })),
      program: [...(td ? tdBuild(s, attributes) : []), { op: 'startVcpus' }, ...hostSteps(s, memslots, shared)] satisfies HostStep[],
      mmioReads: s.vmm.mmioReads ?? [],
      mapGpaAnswer: s.vmm.mapGpa ?? 'convert',
      memoryFaultAnswer: s.vmm.memoryFault ?? 'convert',
      mapGpaEagain: s.vmm.mapGpaEagain,
      msi: s.vmm.msi,
      nmi: s.vmm.nmi,
      gmemSlots: memslots.flatMap((m, slot) => (m.guestMemfd ? [slot] : [])),
      kthreads: s.kthreads.flatMap((k, t) => (k.start === 'runnable' ? [t] : [])),
      ...(s.hostThreads.length > 0
        ? {
            threads: {
              runnable: s.hostThreads.flatMap((h, t) => (h.start === 'runnable' ? [t] : [])),
              unrun: [...new Set(s.hostThreads.flatMap((h) => h.program.flatMap((st) => (st.op === 'createVcpu' && h.start === 'runnable') || st.op === 'run' ? [st.vcpu] : [])))].sort((a, b) => a - b),
              locked: true,
            },
          }
        : {}),
      ...(s.vmm.inReads !== undefined ? { inReads: s.vmm.inReads } : {}),
    },
  });
  // Playground threads come last, and only when a scenario has them, so other logs keep their actor order.
  s.kthreads.forEach((k, t) => {
    const program = k.program.map((st) => ({
      seamcall: st.seamcall,
      regs: { RCX: st.rcx, RDX: st.rdx ?? HOST_LAYOUT.tdrPa, R8: st.r8, R9: st.r9 },
      expect: Object.fromEntries(Object.entries({ RAX: st.expect?.rax, RCX: st.expect?.rcx, RDX: st.expect?.rdx }).filter(([, v]) => v !== undefined)),
    }));
    actors.push({ id: `host.kthread${t}`, machine: kthreadMachine, input: { thread: t, program, duringBuild: k.start === 'initialized' } });
  });
  // Host threads and the lock words they contend on, likewise only when a scenario has them.
  if (s.hostThreads.length > 0) {
    actors.push({ id: 'kvm.locks', machine: kvmLocksMachine, input: { vcpus: nv } });
    const pre = preCreated(s);
    s.hostThreads.forEach((h, t) => {
      const vcpus = [...pre];
      const program: ThreadStep[] = [];
      h.program.forEach((st, k) => {
        const label = `hostThreads[${t}].program[${k}]`;
        switch (st.op) {
          case 'createVcpu':
          case 'initVcpu':
          case 'setAttributes': {
            const call: ThreadIoctl =
              st.op === 'setAttributes'
                ? { call: 'setAttributes', address: st.gpa, size: st.size, attributes: st.to === 'private' ? BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE) : 0n }
                : { call: st.op, vcpu: st.vcpu };
            const ioctl: ThreadStep = { op: 'ioctl', label, expectRet: st.expectRet ?? 0, ...call };
            // A thread started with the vCPUs finds every vCPU the build made (and those it created itself).
            // An ioctl on a vCPU fd takes its mutexes only once the fd is found: `fd` lets the thread skip them
            // (and return -EBADF) when its KVM_CREATE_VCPU failed. A thread started with the vCPUs finds every
            // vCPU the build made.
            const fd = st.op === 'initVcpu' ? st.vcpu : undefined;
            const held = h.start === 'runnable' ? [...new Set([...vcpus, ...preCreated(s), ...threadCreated(s).filter((v) => !runnableCreated(s).includes(v))])] : vcpus;
            program.push(...locked(st.op, held, ioctl).map((m) => (fd !== undefined && m.op !== 'ioctl' ? { ...m, fd } : m)));
            if (st.op === 'createVcpu') vcpus.push(st.vcpu);
            break;
          }
          case 'initMemRegion': {
            const img = s.image[st.page]!;
            const flags = st.flags !== undefined ? Number(st.flags) : st.measure ? KVM_TDX_MEASURE_MEMORY_REGION : 0;
            const call: ThreadIoctl = { call: 'initMemRegion', vcpu: st.vcpu, source: st.source ?? HOST_LAYOUT.stagingPa(st.page), gpa: st.gpa ?? img.gpa, nrPages: st.nrPages, flags };
            const held = h.start === 'runnable' ? [...new Set([...vcpus, ...preCreated(s), ...threadCreated(s).filter((v) => !runnableCreated(s).includes(v))])] : vcpus;
            program.push(...locked('initMemRegion', held, { op: 'ioctl', label, expectRet: st.expectRet ?? 0, ...call } as ThreadStep).map((m) => (m.op !== 'ioctl' ? { ...m, fd: st.vcpu } : m)));
            break;
          }
          case 'finalize': {
            const held = h.start === 'runnable' ? [...new Set([...vcpus, ...preCreated(s), ...threadCreated(s).filter((v) => !runnableCreated(s).includes(v))])] : vcpus;
            program.push(...locked('finalize', held, { op: 'ioctl', label, expectRet: st.expectRet ?? 0, call: 'finalize' } as ThreadStep));
            break;
          }
          case 'write':
            program.push({ op: 'write', label, gpa: st.gpa, pa: hostPa(memslots, st.gpa, shared)!, size: st.size, value: st.value });
            break;
          case 'read':
            program.push({ op: 'read', label, gpa: st.gpa, pa: hostPa(memslots, st.gpa, shared)!, size: st.size, expect: st.expect ?? null });
            break;
          case 'waitMemory':
            program.push({ op: 'waitMemory', label, gpa: st.gpa, pa: hostPa(memslots, st.gpa, shared)!, size: st.size, value: st.value });
            break;
          case 'waitExit':
            program.push({ op: 'waitExit', label, vcpu: st.vcpu, exit: st.exit, expect: exitExpectation(st) });
            break;
          case 'run':
            program.push({ op: 'run', label, vcpu: st.vcpu, data: st.data ?? null, ret: st.ret ?? 0 });
            break;
        }
      });
      actors.push({ id: `vmm.thread${t}`, machine: hostThreadMachine, input: { thread: t, program } });
    });
  }
  return actors;
}

/** The host thread whose program runs vCPU `v` (it has a `run` step for it), if any. */
function runOwner(s: Scenario, v: number): string | undefined {
  const t = s.hostThreads.findIndex((h) => h.program.some((st) => st.op === 'run' && st.vcpu === v));
  return t < 0 ? undefined : `vmm.thread${t}`;
}

/** vCPUs a host thread creates with KVM_CREATE_VCPU; the others exist before the build. */
function threadCreated(s: Scenario): number[] {
  return s.hostThreads.flatMap((h) => h.program.flatMap((st) => (st.op === 'createVcpu' ? [st.vcpu] : [])));
}

/** vCPUs a thread started with the vCPUs tries to create (a TD refuses: they never exist). */
function runnableCreated(s: Scenario): number[] {
  return s.hostThreads.flatMap((h) => (h.start === 'runnable' ? h.program.flatMap((st) => (st.op === 'createVcpu' ? [st.vcpu] : [])) : []));
}

function preCreated(s: Scenario): number[] {
  const late = threadCreated(s);
  return s.vcpus.flatMap((_, v) => (late.includes(v) ? [] : [v]));
}

/** An ioctl step between the mutexes it takes (in order) and drops (in reverse), each a step of its own. */
function locked<T>(op: LockedIoctl, vcpus: readonly number[], body: T): (T | { op: 'mutexLock'; lock: string } | { op: 'mutexUnlock'; lock: string })[] {
  const locks = ioctlLocks(op, vcpus);
  return [...locks.map((lock) => ({ op: 'mutexLock' as const, lock })), body, ...[...locks].reverse().map((lock) => ({ op: 'mutexUnlock' as const, lock }))];
}

/**
 * The guest kernel's page tables (4K PTEs of the direct map, PAGE_OFFSET + gpa → gpa) and its unaccepted-
 * memory table with every unit unaccepted, as firmware hands them over.
 */
function guestKernelInput(g: NonNullable<Scenario['guestKernel']>, sharedMask: bigint, policies: Scenario['policies']): GuestKernelInput {
  const pageTables: Record<string, GuestPte> = {};
  for (const r of g.directMap) {
    for (let off = 0n; off < r.size; off += PAGE_SIZE) pageTables[vaKey(PAGE_OFFSET + r.gpa + off)] = guestPte(r.gpa + off, r.shared, sharedMask);
  }
  const u = g.unaccepted;
  const unaccepted = u === undefined ? null : { physBase: u.gpa, unitSize: u.unitSize, bitmap: '1'.repeat(Number((u.size + u.unitSize - 1n) / u.unitSize)) };
  return { sharedMask, pageTables, unaccepted, unitGranularCheck: policies.acceptingListUnitGranular, acceptPastEnd: policies.acceptMemoryPastEnd };
}

/** The first part of the VMM's default host program, the TD build (§5b.3) in QEMU's order: attributes, INIT_VM, INIT_VCPU, image, FINALIZE. */
function tdBuild(s: Scenario, attributes: bigint): BuildStep[] {
  const steps: BuildStep[] = [];
  // With host threads, each ioctl takes KVM's mutexes as steps of its own (kvmLocks.ts); without, nothing competes for them.
  const threaded = s.hostThreads.length > 0;
  const pre = preCreated(s);
  const add = (op: LockedIoctl, vcpus: readonly number[], step: BuildStep) => steps.push(...(threaded ? locked(op, vcpus, step) : [step]));
  for (const m of s.memslots) {
    // QEMU makes guest_memfd RAM private when it registers it.
    if (m.guestMemfd) add('setAttributes', pre, { op: 'setAttributes', address: m.gpa, size: m.size, attributes: BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE) });
  }
  add('initVm', pre, { op: 'initVm', attributes });
  // A vCPU the build created whose INIT_VCPU a thread started with the build issues is the thread's (QEMU's
  // vCPU threads initialise their own vCPUs); vCPU 0, the boot vCPU, is always the build's.
  const takenInits = threadInitVcpus(s);
  pre.forEach((v) => {
    if (!takenInits.includes(v)) add('initVcpu', pre, { op: 'initVcpu', vcpu: v });
  });
  // Image pages a thread adds with its own KVM_TDX_INIT_MEM_REGION: staged before the threads start (the
  // thread copies from them), and not added by the build.
  const threadPages = threadImagePages(s);
  const stage = (page: number) => {
    const src = HOST_LAYOUT.stagingPa(page);
    for (const [off, value] of Object.entries(s.image[page]!.words).sort(([a], [b]) => Number(BigInt(a) - BigInt(b)))) {
      if (value !== 0n) steps.push({ op: 'stageWord', pa: src + BigInt(off), value });
    }
  };
  if (threadPages.length > 0) s.image.forEach((_, page) => stage(page));
  // Threads that create and initialise vCPUs start now, as QEMU's vCPU threads do while its main thread
  // loads the image into its own memory. The main thread's next TD-state ioctl waits for them (the join):
  // one that took kvm->lock while a KVM_CREATE_VCPU is between its two kvm->lock sections would fail with
  // -EBUSY (tdx_acquire_vm_state_locks), as QEMU avoids by waiting for its vCPU threads.
  s.hostThreads.forEach((h, t) => {
    if (h.start === 'initialized') steps.push({ op: 'spawn', thread: t });
  });
  const all = [...pre, ...s.hostThreads.flatMap((h) => (h.start === 'initialized' ? h.program.flatMap((st) => (st.op === 'createVcpu' ? [st.vcpu] : [])) : []))];
  const addRegion = (page: number) =>
    add('initMemRegion', all, { op: 'initMemRegion', vcpu: 0, source: HOST_LAYOUT.stagingPa(page), gpa: s.image[page]!.gpa, nrPages: 1, flags: KVM_TDX_MEASURE_MEMORY_REGION });
  if (!threaded) {
    s.image.forEach((_, page) => {
      stage(page);
      addRegion(page);
    });
  } else {
    // Every page is staged beside the threads (before them when a thread adds pages); the build adds the
    // others once the threads are joined.
    if (threadPages.length === 0) s.image.forEach((_, page) => stage(page));
    s.hostThreads.forEach((h, t) => {
      if (h.start === 'initialized') steps.push({ op: 'join', thread: t });
    });
    s.image.forEach((_, page) => {
      if (!threadPages.includes(page)) addRegion(page);
    });
  }
  // Playground threads that want the TD INITIALIZED run here, one after the other, before FINALIZE.
  s.kthreads.forEach((k, t) => {
    if (k.start === 'initialized') steps.push({ op: 'kthread', thread: t });
  });
  // By now every vCPU the joined threads created exists: FINALIZE takes each one's mutex.
  steps.push(...buildPreFaults(s));
  // A thread started with the build that finalizes the TD does it instead; the join above waits for it.
  if (!s.hostThreads.some((h) => h.start === 'initialized' && h.program.some((st) => st.op === 'finalize'))) add('finalize', all, { op: 'finalize' });
  return steps;
}

/** Build-created vCPUs (not the boot vCPU) whose KVM_TDX_INIT_VCPU a thread started with the build issues. */
export function threadInitVcpus(s: Scenario): number[] {
  const made = threadCreated(s);
  return s.hostThreads.flatMap((h) => (h.start === 'initialized' ? h.program.flatMap((st) => (st.op === 'initVcpu' && st.vcpu !== 0 && !made.includes(st.vcpu) ? [st.vcpu] : [])) : []));
}

/** Image pages a thread started with the build adds itself (KVM_TDX_INIT_MEM_REGION). */
export function threadImagePages(s: Scenario): number[] {
  return s.hostThreads.flatMap((h) => (h.start === 'initialized' ? h.program.flatMap((st) => (st.op === 'initMemRegion' ? [st.page] : [])) : []));
}
