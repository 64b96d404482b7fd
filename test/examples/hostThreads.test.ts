/**
 * Host threads: examples/vcpu-create-while-running (vCPU 1 created and initialised by a second VMM thread
 * during the build, KVM_CREATE_VCPU refused with -EIO once the TD runs), KVM's mutexes as steps with
 * holders and waiters, a lock-order inversion between two host threads found as a named wait cycle,
 * `vmm.inReads`, and the loader's errors for `hostThreads`.
 */
import { describe, expect, it } from 'vitest';
import { setup, emit } from 'xstate';
import { arrows, runExample, runScenario } from '../helpers.ts';
import { parseScenarioObject, parseScenarioText, ScenarioError } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { explore } from '../../src/explore/explore.ts';
import { defaultInvariants, noDeadlock } from '../../src/explore/invariants/index.ts';
import { createModel } from '../../src/runtime/world.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import { out, type MachineEvent, type Outgoing } from '../../src/protocol/messages.ts';
import { KVM_LOCK, SLOTS_LOCK, vcpuMutex, initialLocks, ioctlLocks, lockWaits, mutexLock, mutexUnlock, kvmLocksMachine, type KvmLocksContext } from '../../machines/kvm/kvmLocks.ts';
import { hostThreadMachine, type ThreadStep } from '../../machines/vmm/hostThread.ts';
import type { GuestVcpuContext } from '../../machines/guest/guestVcpu.ts';
import { memoryMachine } from '../../machines/hw/memory.ts';
import { exampleFile } from '../helpers.ts';

const BOUNDS = { maxDepth: 10_000, maxStates: 100_000, maxMillis: Number.POSITIVE_INFINITY };

describe('kvmLocks: mutexes with a holder and FIFO waiters', () => {
  it('a held mutex queues its callers and hands itself to the first on unlock', () => {
    let locks = initialLocks(2);
    let r = mutexLock(locks, SLOTS_LOCK, 'vmm');
    expect(r.granted).toBe(true);
    r = mutexLock(r.locks, SLOTS_LOCK, 'vmm.thread0');
    expect(r.granted).toBe(false);
    r = mutexLock(r.locks, SLOTS_LOCK, 'vmm.thread1');
    locks = r.locks;
    expect(lockWaits(locks)).toEqual([
      { thread: 'vmm.thread0', on: SLOTS_LOCK, holder: 'vmm' },
      { thread: 'vmm.thread1', on: SLOTS_LOCK, holder: 'vmm' },
    ]);
    const u = mutexUnlock(locks, SLOTS_LOCK, 'vmm');
    expect(u.next).toBe('vmm.thread0');
    expect(u.locks[SLOTS_LOCK]).toEqual({ holder: 'vmm.thread0', waiters: ['vmm.thread1'] });
    expect(() => mutexUnlock(u.locks, SLOTS_LOCK, 'vmm')).toThrow('vmm unlocks kvm->slots_lock held by vmm.thread0');
  });
  it("the TD's state-transition ioctls take kvm->lock, every vCPU's mutex, then kvm->slots_lock", () => {
    expect(ioctlLocks('finalize', [1, 0])).toEqual([KVM_LOCK, 'vcpu0->mutex', 'vcpu1->mutex', SLOTS_LOCK]);
    expect(ioctlLocks('initVcpu', [0])).toEqual([KVM_LOCK, 'vcpu0->mutex', SLOTS_LOCK]);
    expect(ioctlLocks('setAttributes', [0, 1])).toEqual([SLOTS_LOCK]);
    expect(ioctlLocks('createVcpu', [0])).toEqual([KVM_LOCK]);
  });
});

describe('examples/vcpu-create-while-running', () => {
  const r = runExample('vcpu-create-while-running');
  const steps = arrows(r);
  const at = (a: string, from = 0) => steps.indexOf(a, from) + 1;

  it('runs to the end with both guests seeing NUM_VCPUS 2 of MAX_VCPUS 3', () => {
    expect(r.outcome).toMatchObject({ status: 'ok', failures: [], steps: 323 });
    for (const v of [0, 1]) expect((actorView(r.deliveries.at(-1)!.world, r.model.indexOf.get(`guest.vcpu${v}`)!).context as GuestVcpuContext).regs.rcx).toBe(0x300000002n);
  });

  it("threads 0 and 1 start after the main thread's INIT_VM and INIT_VCPU; thread 0 creates vCPU 1 and sleeps on kvm->slots_lock while thread 1 converts", () => {
    const initVcpu0 = at('kvm.vcpu0 → vmm KVM_TDX_INIT_VCPU');
    const start = at('vmm → vmm.thread0 THREAD_START');
    expect(start).toBeGreaterThan(initVcpu0);
    const create = at('vmm.thread0 → kvm.vm KVM_CREATE_VCPU');
    expect(create).toBeGreaterThan(start);
    expect(r.deliveries[at('kvm.vm → vmm.thread0 KVM_CREATE_VCPU') - 1]!.message.payload).toEqual({ vcpu: 1, ret: 0 });
    // KVM_CREATE_VCPU runs beside thread 1's KVM_SET_MEMORY_ATTRIBUTES, which holds kvm->slots_lock.
    expect(create).toBeLessThan(at('kvm.vm → vmm.thread1 KVM_SET_MEMORY_ATTRIBUTES'));
    const locks = r.model.indexOf.get('kvm.locks')!;
    const waits = r.deliveries.flatMap((d) => lockWaits((actorView(d.world, locks).context as KvmLocksContext).kvmLocks));
    expect(waits).toContainEqual({ thread: 'vmm.thread0', on: SLOTS_LOCK, holder: 'vmm.thread1' });
    // Thread 1's mutex_unlock hands slots_lock to thread 0.
    expect(steps.slice(at('vmm.thread1 → kvm.locks MUTEX_UNLOCK') - 1, at('vmm.thread1 → kvm.locks MUTEX_UNLOCK') + 2)).toEqual([
      'vmm.thread1 → kvm.locks MUTEX_UNLOCK',
      'kvm.locks → vmm.thread1 MUTEX_UNLOCKED',
      'kvm.locks → vmm.thread0 MUTEX_ACQUIRED',
    ]);
  });

  it("thread 0's KVM_TDX_INIT_VCPU holds kvm->lock, vcpu0->mutex, vcpu1->mutex and kvm->slots_lock and returns to thread 0", () => {
    const init = at('vmm.thread0 → kvm.vcpu1 KVM_TDX_INIT_VCPU');
    const lockNames = r.deliveries.slice(0, init).flatMap((d) => (d.message.from === 'vmm.thread0' && d.message.name === 'MUTEX_LOCK' ? [(d.message.payload as { lock: string }).lock] : []));
    expect(lockNames).toEqual([KVM_LOCK, KVM_LOCK, 'vcpu0->mutex', 'vcpu1->mutex', SLOTS_LOCK]);
    expect(steps.slice(init, init + 2)).toEqual(['kvm.vcpu1 → tdx TDH.VP.CREATE', 'tdx → kvm.vcpu1 TDH.VP.CREATE']);
    expect(r.deliveries[at('kvm.vcpu1 → vmm.thread0 KVM_TDX_INIT_VCPU') - 1]!.message.payload).toEqual({ vcpu: 1, ret: 0 });
  });

  it('the image is staged beside the threads; INIT_MEM_REGION and FINALIZE wait for the join and hold both vCPU mutexes', () => {
    expect(at('vmm → hw.mem MEM_WRITE')).toBeLessThan(at('vmm.thread0 → vmm THREAD_EXIT'));
    const exit = at('vmm.thread0 → vmm THREAD_EXIT');
    const region = at('vmm → kvm.vcpu0 KVM_TDX_INIT_MEM_REGION');
    const finalize = at('vmm → kvm.vm KVM_TDX_FINALIZE_VM');
    expect(region).toBeGreaterThan(exit);
    const locked = r.deliveries.slice(exit, finalize).flatMap((d) => (d.message.name === 'MUTEX_LOCK' ? [(d.message.payload as { lock: string }).lock] : []));
    expect(locked).toEqual([KVM_LOCK, vcpuMutex(0), vcpuMutex(1), SLOTS_LOCK, KVM_LOCK, vcpuMutex(0), vcpuMutex(1), SLOTS_LOCK]);
  });

  it('once the vCPUs run, thread 2 creates vCPU 2 and KVM refuses with -EIO; vCPU 2 never gets KVM_RUN', () => {
    const run = at('vmm → kvm.vcpu0 KVM_RUN');
    const ret = at('kvm.vm → vmm.thread2 KVM_CREATE_VCPU');
    expect(ret).toBeGreaterThan(run);
    expect(r.deliveries[ret - 1]!.message.payload).toEqual({ vcpu: 2, ret: -5 });
    expect(steps).not.toContain('vmm → kvm.vcpu2 KVM_RUN');
  });

  it('explores clean and exhaustive: 17,153 states', () => {
    const e = explore(modelFor(loadScenarioFile(exampleFile('vcpu-create-while-running')).scenario), defaultInvariants(), BOUNDS);
    expect(e).toMatchObject({ status: 'clean', exhaustive: true });
    expect(e.states).toBe(17153);
  });

  it('a different expected return is a failure naming the thread and the step', () => {
    const s = loadScenarioFile(exampleFile('vcpu-create-while-running')).scenario;
    const wrong = { ...s, hostThreads: [...s.hostThreads.slice(0, 2), { start: 'runnable' as const, program: [{ op: 'createVcpu' as const, vcpu: 2, expectRet: 0 }] }] };
    expect(runScenario(wrong).outcome.failures.map((f) => f.detail)).toEqual(['vmm.thread2: hostThreads[2].program[0] (KVM_CREATE_VCPU vCPU 2): returned -5, expected 0']);
  });
});

/**
 * A lock-order inversion between two host threads, written with the lock steps directly (no ioctl takes
 * these in this order upstream): thread 0 takes kvm->lock, kvm->slots_lock, then vcpu0->mutex — the order
 * of the first version of tdx_acquire_vm_state_locks, changed before merging because vcpu->mutex is taken
 * outside kvm->slots_lock — while thread 1 holds vcpu0->mutex and takes kvm->slots_lock, as a vCPU ioctl
 * reaching kvm_inhibit_apic_access_page does.
 */
describe('a lock-order inversion between two host threads is a deadlock with the cycle named', () => {
  const lock = (l: string): ThreadStep[] => [{ op: 'mutexLock', lock: l }];
  const unlock = (l: string): ThreadStep[] => [{ op: 'mutexUnlock', lock: l }];
  const starter = setup({ types: { events: {} as MachineEvent, emitted: {} as Outgoing } }).createMachine({
    id: 'starter',
    // A main thread with an empty host program, as the invariants read the VMM's.
    context: { program: [], pc: 0, awaiting: false, inKernel: [], stopped: [], held: [] },
    entry: [
      emit(() => out('vmm.thread0', 'thread', 'THREAD_START', { thread: 0 })),
      emit(() => out('vmm.thread1', 'thread', 'THREAD_START', { thread: 1 })),
      emit(() => out('vmm.thread2', 'thread', 'THREAD_START', { thread: 2 })),
    ],
    initial: 'running',
    states: { running: { on: { THREAD_EXIT: {} } } },
  });
  const modelOf = (first: readonly string[]) =>
    createModel([
      { id: 'vmm', machine: starter, input: {} },
      { id: 'kvm.locks', machine: kvmLocksMachine, input: { vcpus: 1 } },
      { id: 'vmm.thread0', machine: hostThreadMachine, input: { thread: 0, program: [...first.flatMap(lock), ...[...first].reverse().flatMap(unlock)] } },
      { id: 'vmm.thread1', machine: hostThreadMachine, input: { thread: 1, program: [...lock(vcpuMutex(0)), ...lock(SLOTS_LOCK), ...unlock(SLOTS_LOCK), ...unlock(vcpuMutex(0))] } },
      // A third thread polls a flag nobody sets, so a message is always in flight while the other two deadlock.
      { id: 'vmm.thread2', machine: hostThreadMachine, input: { thread: 2, program: [{ op: 'waitMemory', label: 'poll', gpa: 0n, pa: 0x1000n, size: 8, value: 1n }] } },
      { id: 'hw.mem', machine: memoryMachine, input: { pages: {} } },
    ]);

  it('slots_lock before the vCPU mutexes: the search ends in a wait cycle naming both threads and both mutexes', () => {
    const e = explore(modelOf([KVM_LOCK, SLOTS_LOCK, vcpuMutex(0)]), [noDeadlock], BOUNDS);
    expect(e.violation?.invariant).toBe('no-deadlock');
    expect(e.violation?.detail).toMatch(/^deadlock: a wait cycle: /);
    expect(e.violation?.detail).toContain('vmm.thread0 (waits for vcpu0->mutex held by vmm.thread1) → vmm.thread1 (waits for kvm->slots_lock held by vmm.thread0) → vmm.thread0');
  });

  it("upstream's order (the vCPU mutexes, then slots_lock): no wait cycle in any schedule", () => {
    // Thread 2 polls for ever, which no-deadlock does not call a cycle; the search ends when every state is seen.
    expect(explore(modelOf([KVM_LOCK, vcpuMutex(0), SLOTS_LOCK]), [noDeadlock], BOUNDS)).toMatchObject({ status: 'clean', exhaustive: true });
  });
});

describe('vmm.inReads: scripted answers to port INs', () => {
  const io = (inReads?: bigint[]) =>
    parseScenarioObject({
      name: 'in-reads',
      vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
      memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
      ...(inReads ? { vmm: { inReads } } : {}),
      vcpus: [
        {
          program: [
            { op: 'in', port: 0x50, size: 1, reg: 'rax' },
            { op: 'in', port: 0x50, size: 2, reg: 'rbx' },
            { op: 'in', port: 0x50, size: 1, reg: 'rcx' },
            { op: 'hlt' },
          ],
        },
      ],
    });
  const regs = (inReads?: bigint[]) => {
    const r = runScenario(io(inReads));
    expect(r.outcome.failures).toEqual([]);
    return (actorView(r.deliveries.at(-1)!.world, r.model.indexOf.get('guest.vcpu0')!).context as GuestVcpuContext).regs;
  };
  it('each IN takes the next value, cut to its size; then the unassigned port answers all ones', () => {
    expect(regs([0xacn, 0x12345n])).toMatchObject({ rax: 0xacn, rbx: 0x2345n, rcx: 0xffn });
  });
  it('without them every IN reads all ones', () => {
    expect(regs()).toMatchObject({ rax: 0xffn, rbx: 0xffffn, rcx: 0xffn });
  });
});

describe('hostThreads errors name file, line and field', () => {
  const text = (thread: string) =>
    ['name: s', 'vm: { type: tdx, gpaw: 48 }', 'memslots:', '  - { gpa: 0, size: 0x80000000, guestMemfd: true }', 'hostThreads:', '  - program:', thread, 'vcpus:', '  - program: [{ op: hlt }]', '  - program: [{ op: hlt }]', '  - program: [{ op: hlt }]', ''].join('\n');
  const message = (thread: string) => {
    try {
      parseScenarioText(text(thread), 's.yaml');
    } catch (e) {
      if (e instanceof ScenarioError) return e.message;
      throw e;
    }
    throw new Error('expected a ScenarioError');
  };
  it('a vCPU that does not exist', () => {
    expect(message('      - { op: createVcpu, vcpu: 5 }')).toBe('s.yaml:7:33: hostThreads[0].program[0].vcpu: vCPU 5 does not exist (3 vCPU(s)); every vCPU a thread creates has its entry in vcpus');
  });
  it('the boot vCPU', () => {
    expect(message('      - { op: createVcpu, vcpu: 0 }')).toMatch(/^s\.yaml:7:\d+: hostThreads\[0\]\.program\[0\]\.vcpu: vCPU 0 is the boot vCPU/);
  });
  it('initialising a vCPU the thread did not create', () => {
    expect(message(['      - { op: initVcpu, vcpu: 1 }', '      - { op: createVcpu, vcpu: 1 }'].join('\n'))).toMatch(
      /^s\.yaml:7:\d+: hostThreads\[0\]\.program\[0\]\.vcpu: a host thread initialises a vCPU it created earlier in its program, or one the build created; vCPU 1 is not/,
    );
  });
  it('vCPUs created by two threads during the build', () => {
    expect(message(['      - { op: createVcpu, vcpu: 1 }', '  - program:', '      - { op: createVcpu, vcpu: 2 }'].join('\n'))).toMatch(
      /^s\.yaml:9:\d+: hostThreads\[1\]\.program\[0\]\.op: vCPUs are created by one host thread \(hostThreads\[0\] creates them too\)/,
    );
  });
  it('an unknown op', () => {
    expect(message('      - { op: terminateVm }')).toMatch(/^s\.yaml:7:\d+: hostThreads\[0\]\.program\[0\]\.op: /);
  });
});

describe('a host thread that runs a vCPU: its exits come back to it and its waitExit blocks only it', () => {
  const scenario = (thread: unknown[]) =>
    parseScenarioObject({
      name: 'thread-runs-vcpu',
      vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
      memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
      hostThreads: [{ start: 'runnable', program: thread }],
      vcpus: [
        { program: [{ op: 'out', port: 0x50, size: 1, value: 0x11 }, { op: 'hlt' }] },
        {
          program: [
            { op: 'out', port: 0x50, size: 1, value: 0xab },
            { op: 'in', port: 0x50, size: 1, reg: 'rax' },
            { op: 'check', reg: 'rax', equals: 0xac },
            { op: 'hlt' },
          ],
        },
      ],
    });
  const selftest = [
    { op: 'run', vcpu: 1 },
    { op: 'waitExit', vcpu: 1, exit: 'KVM_EXIT_IO', port: 0x50, size: 1, direction: 'out', data: 0xab },
    { op: 'run', vcpu: 1 },
    { op: 'waitExit', vcpu: 1, exit: 'KVM_EXIT_IO', port: 0x50, size: 1, direction: 'in' },
    { op: 'run', vcpu: 1, data: 0xac },
  ];

  it("vCPU 1's KVM_RUN comes from the thread, its exits go back to it, the IN reads the thread's 0xac", () => {
    const r = runScenario(scenario(selftest));
    expect(r.outcome.failures).toEqual([]);
    const steps = arrows(r);
    expect(steps).not.toContain('vmm → kvm.vcpu1 KVM_RUN');
    expect(steps.filter((a) => a.startsWith('vmm') && a.includes('kvm.vcpu1 KVM_RUN'))).toEqual(['vmm.thread0 → kvm.vcpu1 KVM_RUN', 'vmm.thread0 → kvm.vcpu1 KVM_RUN', 'vmm.thread0 → kvm.vcpu1 KVM_RUN']);
    expect(steps.filter((a) => a.includes('KVM_EXIT_IO'))).toEqual(expect.arrayContaining(['kvm.vcpu1 → vmm.thread0 KVM_EXIT_IO', 'kvm.vcpu0 → vmm KVM_EXIT_IO']));
    expect(steps).not.toContain('kvm.vcpu1 → vmm KVM_EXIT_IO');
    expect((actorView(r.deliveries.at(-1)!.world, r.model.indexOf.get('guest.vcpu1')!).context as GuestVcpuContext).regs.rax).toBe(0xacn);
  });

  it('explores clean and exhaustive', () => {
    expect(explore(modelFor(scenario(selftest)), defaultInvariants(), BOUNDS)).toMatchObject({ status: 'clean', exhaustive: true });
  });

  it('an exit other than the one expected is a failure naming the thread and the step', () => {
    const wrong = [{ op: 'run', vcpu: 1 }, { op: 'waitExit', vcpu: 1, exit: 'KVM_EXIT_IO', data: 0xac }];
    expect(runScenario(scenario(wrong)).outcome.failures.map((f) => f.detail)).toEqual([
      'vmm.thread0: hostThreads[0].program[1] (waitExit KVM_EXIT_IO on vCPU 1): KVM_EXIT_IO on vCPU 1 has data 0xab (expected 0xac)',
    ]);
  });

  it('a waitExit for an exit that never comes is a deadlock naming the thread', () => {
    const forever = [...selftest, { op: 'waitExit', vcpu: 1, exit: 'KVM_EXIT_MMIO' }];
    const e = explore(modelFor(scenario(forever)), [noDeadlock], BOUNDS);
    expect(e.violation?.detail).toMatch(/^deadlock: nothing in flight, but .*vmm\.thread0 in waitingExit \(waits for hostThreads\[0\]\.program\[\d+\] \(waitExit KVM_EXIT_MMIO on vCPU 1\)\)/);
  });

  it('the loader refuses a thread-run vCPU the main thread also waits for, and a waitExit before a run', () => {
    const refuse = (thread: unknown[], host?: unknown[]) => {
      try {
        parseScenarioObject({ ...scenario(thread), hostThreads: [{ start: 'runnable', program: thread }], ...(host ? { host } : {}) } as never);
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    expect(refuse([{ op: 'waitExit', vcpu: 1, exit: 'KVM_EXIT_IO' }])).toContain('hostThreads[0].program[0]: waitExit on vCPU 1, which this thread has not run');
    expect(refuse(selftest, [{ op: 'waitExit', vcpu: 1, exit: 'KVM_EXIT_IO' }, { op: 'run', vcpu: 1 }])).toContain('the main thread\'s host: steps cannot wait for its exits too');
  });
});

describe("with host threads the main thread's conversions take kvm->slots_lock too", () => {
  const s = parseScenarioObject({
    name: 'two-converters',
    vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    hostThreads: [{ start: 'runnable', program: [{ op: 'setAttributes', gpa: 0x400000, size: 0x1000, to: 'shared' }] }],
    vcpus: [{ program: [{ op: 'mapGpa', gpa: 0x200000, size: 0x1000, to: 'shared' }, { op: 'store', gpa: 0x800000200000, size: 8, value: 0x5a }, { op: 'hlt' }] }],
  });
  it("the guest's MapGPA conversion waits for slots_lock around its ioctl, then the vCPU re-enters", () => {
    const r = runScenario(s);
    expect(r.outcome.failures).toEqual([]);
    const steps = arrows(r);
    const exit = steps.indexOf('kvm.vcpu0 → vmm KVM_EXIT_HYPERCALL');
    const mine = steps.slice(exit).filter((a) => a.startsWith('vmm → ') || a.endsWith('→ vmm MUTEX_ACQUIRED') || a.endsWith('→ vmm KVM_SET_MEMORY_ATTRIBUTES'));
    expect(mine.slice(0, 5)).toEqual([
      'vmm → kvm.locks MUTEX_LOCK',
      'kvm.locks → vmm MUTEX_ACQUIRED',
      'vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES',
      'kvm.vm → vmm KVM_SET_MEMORY_ATTRIBUTES',
      'vmm → kvm.locks MUTEX_UNLOCK',
    ]);
    expect(mine[5]).toBe('vmm → kvm.vcpu0 KVM_RUN');
  });
  it('explores clean and exhaustive: the two KVM_SET_MEMORY_ATTRIBUTES never overlap in kvm.vm', () => {
    expect(explore(modelFor(s), defaultInvariants(), BOUNDS)).toMatchObject({ status: 'clean', exhaustive: true });
  });
});

describe('the TD build ioctls in the wrong order answer as KVM does', () => {
  const s = parseScenarioObject({
    name: 'wrong-order',
    vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    hostThreads: [
      { start: 'initialized', program: [{ op: 'initVcpu', vcpu: 0, expectRet: -22 }] },
      {
        start: 'runnable',
        program: [
          { op: 'createVcpu', vcpu: 1, expectRet: -5 },
          { op: 'initVcpu', vcpu: 1, expectRet: -9 },
        ],
      },
    ],
    vcpus: [{ program: [{ op: 'hlt' }] }, { program: [{ op: 'hlt' }] }],
  });
  const r = runScenario(s);
  const ret = (name: string, to: string) => r.deliveries.filter((d) => d.message.name === name && d.message.to === to && d.message.kind === 'ioctl-return').map((d) => (d.message.payload as { ret: number }).ret);

  it('INIT_VCPU of a vCPU the build initialised: -EINVAL, after taking the state-transition locks, without a SEAMCALL', () => {
    expect(r.outcome.failures).toEqual([]);
    expect(ret('KVM_TDX_INIT_VCPU', 'vmm.thread0')).toEqual([-22]);
    expect(r.deliveries.filter((d) => d.message.name === 'TDH.VP.CREATE').map((d) => d.message.from)).toEqual(['kvm.vcpu0', 'tdx']);
  });
  it('once the TD runs, KVM_CREATE_VCPU: -EIO; INIT_VCPU on the vCPU never created: -EBADF before any lock or KVM', () => {
    expect(ret('KVM_CREATE_VCPU', 'vmm.thread1')).toEqual([-5]);
    expect(arrows(r)).not.toContain('vmm.thread1 → kvm.vcpu1 KVM_TDX_INIT_VCPU');
    // Only KVM_CREATE_VCPU's kvm->lock: the INIT_VCPU's mutexes are never taken.
    expect(r.deliveries.filter((d) => d.message.from === 'vmm.thread1' && d.message.name === 'MUTEX_LOCK').map((d) => (d.message.payload as { lock: string }).lock)).toEqual([KVM_LOCK]);
    expect(r.outcome.failures).toEqual([]);
  });
  it('explores clean and exhaustive', () => {
    expect(explore(modelFor(s), defaultInvariants(), BOUNDS)).toMatchObject({ status: 'clean', exhaustive: true });
  });
});
