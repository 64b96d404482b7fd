/**
 * The TD build as host-thread steps: examples/concurrent-build (vCPU 1's KVM_TDX_INIT_VCPU on one thread,
 * the image's KVM_TDX_INIT_MEM_REGION on another, FINALIZE by the main thread after both), the errors KVM
 * gives those ioctls in the wrong order or with bad arguments (tdx_vcpu_unlocked_ioctl,
 * tdx_vcpu_init_mem_region, tdx_td_finalize), a thread's FINALIZE replacing the build's, and the loader's
 * errors for the new steps.
 */
import { describe, expect, it } from 'vitest';
import { arrows, runExample, runScenario } from '../helpers.ts';
import { parseScenarioObject, parseScenarioText, ScenarioError } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { explore } from '../../src/explore/explore.ts';
import { defaultInvariants } from '../../src/explore/invariants/index.ts';
import { exampleFile } from '../helpers.ts';
import { lockWaits, type KvmLocksContext } from '../../machines/kvm/kvmLocks.ts';
import { actorView } from '../../src/runtime/worldHash.ts';

const BOUNDS = { maxDepth: 10_000, maxStates: 100_000, maxMillis: Number.POSITIVE_INFINITY };

describe('examples/concurrent-build', () => {
  const r = runExample('concurrent-build');
  const steps = arrows(r);
  const at = (a: string, from = 0) => steps.indexOf(a, from) + 1;

  it('runs to the end: both vCPUs see two vCPUs and their own VCPU_INDEX, vCPU 1 reads the measured image', () => {
    expect(r.outcome).toMatchObject({ status: 'ok', failures: [] });
    expect(r.outcome.steps).toBe(410);
  });

  it("the build initialises only vCPU 0 and adds no page itself: thread 0 issues vCPU 1's INIT_VCPU, thread 1 both INIT_MEM_REGIONs", () => {
    expect(steps.filter((a) => a.endsWith(' KVM_TDX_INIT_VCPU') && !a.startsWith('kvm.')).sort()).toEqual(['vmm → kvm.vcpu0 KVM_TDX_INIT_VCPU', 'vmm.thread0 → kvm.vcpu1 KVM_TDX_INIT_VCPU']);
    const regions = r.deliveries.filter((d) => d.message.name === 'KVM_TDX_INIT_MEM_REGION' && d.message.kind === 'ioctl');
    expect(regions.map((d) => [d.message.from, (d.message.payload as { gpa: bigint }).gpa])).toEqual([
      ['vmm.thread1', 0x100000n],
      ['vmm.thread1', 0x101000n],
    ]);
    // The image is staged before the threads start: the thread copies from those pages.
    expect(at('vmm → hw.mem MEM_WRITE')).toBeLessThan(at('vmm → vmm.thread1 THREAD_START'));
  });

  it('a thread’s INIT_MEM_REGION asks whether the TD is RUNNABLE (pre_fault_allowed) after it holds every lock, then adds the page', () => {
    const ioctl = at('vmm.thread1 → kvm.vcpu0 KVM_TDX_INIT_MEM_REGION');
    expect(steps.slice(ioctl, ioctl + 2)).toEqual(['kvm.vcpu0 → kvm.vm pre_fault_allowed', 'kvm.vm → kvm.vcpu0 pre_fault_allowed']);
    expect(steps[ioctl - 2]).toBe('kvm.locks → vmm.thread1 MUTEX_ACQUIRED');
  });

  it('FINALIZE comes from the main thread after it joined both threads, and KVM_RUN after FINALIZE', () => {
    const fin = at('vmm → kvm.vm KVM_TDX_FINALIZE_VM');
    expect(fin).toBeGreaterThan(at('vmm.thread0 → vmm THREAD_EXIT'));
    expect(fin).toBeGreaterThan(at('vmm.thread1 → vmm THREAD_EXIT'));
    expect(at('vmm → kvm.vcpu0 KVM_RUN')).toBeGreaterThan(at('kvm.vm → vmm KVM_TDX_FINALIZE_VM'));
  });

  it('explores clean and exhaustive (either thread first)', () => {
    const { scenario } = loadScenarioFile(exampleFile('concurrent-build'));
    expect(explore(modelFor(scenario), defaultInvariants(), BOUNDS)).toMatchObject({ status: 'clean', exhaustive: true, states: 6753 });
  });
});

describe('KVM_TDX_INIT_MEM_REGION and KVM_TDX_FINALIZE_VM in the wrong state or with bad arguments answer as KVM does', () => {
  const s = parseScenarioObject({
    name: 'build-errors',
    vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    image: [{ gpa: 0x100000, words: { 0: 1 } }, { gpa: 0x101000, words: { 0: 2 } }],
    hostThreads: [
      {
        start: 'initialized',
        program: [
          { op: 'initMemRegion', vcpu: 1, page: 0, expectRet: -22 }, // vCPU 1 not through INIT_VCPU yet
          { op: 'initVcpu', vcpu: 1 },
          { op: 'initMemRegion', page: 0, source: 0x140000010, expectRet: -22 }, // source not page-aligned
          { op: 'initMemRegion', page: 0, source: 0, expectRet: -22 }, // no source
          { op: 'initMemRegion', page: 0, gpa: 0x100800, expectRet: -22 }, // GPA not page-aligned
          { op: 'initMemRegion', page: 0, gpa: 0x800000100000, expectRet: -22 }, // the shared alias
          { op: 'initMemRegion', page: 0, flags: 2, expectRet: -22 }, // a flag other than MEASURE
          { op: 'initMemRegion', page: 0, nrPages: 0, expectRet: -22 }, // nothing to add
          { op: 'initMemRegion', page: 0, source: 0x150000000, expectRet: -14 }, // a page the VMM never mapped
          { op: 'initMemRegion', vcpu: 1, page: 0 },
          { op: 'initMemRegion', page: 1, measure: false },
        ],
      },
      {
        start: 'runnable',
        program: [
          { op: 'initMemRegion', page: 1, expectRet: -22 }, // the TD is RUNNABLE
          { op: 'finalize', expectRet: -22 }, // finalized already
          { op: 'initVcpu', vcpu: 0, expectRet: -22 }, // the TD is RUNNABLE
        ],
      },
    ],
    // Each vCPU leaves KVM_RUN once (a port write the main thread takes and never answers): until then its
    // KVM_RUN holds vcpu->mutex and thread 1's ioctls wait for it.
    vcpus: [{ program: [{ op: 'out', port: 0x50, size: 1, value: 0 }, { op: 'hlt' }] }, { program: [{ op: 'out', port: 0x50, size: 1, value: 1 }, { op: 'hlt' }] }],
    host: [
      { op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_IO' },
      { op: 'waitExit', vcpu: 1, exit: 'KVM_EXIT_IO' },
    ],
  });
  const r = runScenario(s);
  const rets = (name: string, to: string) => r.deliveries.filter((d) => d.message.name === name && d.message.to === to && d.message.kind === 'ioctl-return').map((d) => (d.message.payload as { ret: number }).ret);

  it('every return is the expected one, and the TD runs', () => {
    expect(r.outcome).toMatchObject({ status: 'ok', failures: [] });
    expect(rets('KVM_TDX_INIT_MEM_REGION', 'vmm.thread0')).toEqual([-22, -22, -22, -22, -22, -22, -22, -14, 0, 0]);
    expect(rets('KVM_TDX_INIT_MEM_REGION', 'vmm.thread1')).toEqual([-22]);
    expect(rets('KVM_TDX_FINALIZE_VM', 'vmm.thread1')).toEqual([-22]);
    expect(rets('KVM_TDX_FINALIZE_VM', 'vmm')).toEqual([0]);
    expect(rets('KVM_TDX_INIT_VCPU', 'vmm.thread1')).toEqual([-22]);
  });
  it('a refused INIT_MEM_REGION reaches no SEAMCALL: one TDH.MEM.PAGE.ADD per page added, TDH.MR.EXTEND only for the measured one', () => {
    expect(r.deliveries.filter((d) => d.message.name === 'TDH.MEM.PAGE.ADD' && d.message.to === 'tdx').length).toBe(2);
    expect(r.deliveries.filter((d) => d.message.name === 'TDH.MR.EXTEND' && d.message.to === 'tdx').length).toBe(16);
  });
  it("thread 1's INIT_MEM_REGION after FINALIZE sleeps on a vCPU mutex KVM_RUN holds, and gets it when that KVM_RUN returns", () => {
    const locks = r.model.indexOf.get('kvm.locks')!;
    const waits = r.deliveries.flatMap((d) => lockWaits((actorView(d.world, locks).context as KvmLocksContext).kvmLocks));
    expect(waits.filter((w) => w.thread === 'vmm.thread1' && w.holder.startsWith('kvm.vcpu')).length).toBeGreaterThan(0);
    const steps = arrows(r);
    const grant = steps.findIndex((a, i) => a === 'kvm.locks → vmm.thread1 MUTEX_ACQUIRED' && steps.slice(0, i).includes('vmm → kvm.vcpu0 KVM_RUN') && i > steps.indexOf('kvm.vcpu1 → kvm.locks MUTEX_UNLOCK'));
    expect(grant).toBeGreaterThan(steps.indexOf('kvm.vcpu0 → kvm.locks MUTEX_UNLOCK'));
    expect(steps.indexOf('vmm.thread1 → kvm.vcpu0 KVM_TDX_INIT_MEM_REGION')).toBeGreaterThan(steps.indexOf('kvm.vcpu1 → kvm.locks MUTEX_UNLOCK'));
  });
  it('a wrong expectation fails the run naming the thread step', () => {
    const bad = parseScenarioObject({ ...s, hostThreads: [{ start: 'runnable', program: [{ op: 'finalize' }] }], image: [] });
    expect(runScenario(bad).outcome.failures.map((f) => f.detail)).toEqual(['vmm.thread0: hostThreads[0].program[0] (KVM_TDX_FINALIZE_VM): returned -22, expected 0']);
  });
});

describe("a thread's KVM_TDX_FINALIZE_VM against a running vCPU sleeps on its mutex until KVM_RUN returns", () => {
  const s = parseScenarioObject({
    name: 'finalize-vs-run',
    vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    hostThreads: [{ start: 'runnable', program: [{ op: 'finalize', expectRet: -22 }] }],
    vcpus: [{ program: [{ op: 'out', port: 0x50, size: 1, value: 0 }, { op: 'hlt' }] }],
    host: [{ op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_IO' }],
  });
  const r = runScenario(s);
  it('the wait is a lock wait on vcpu0->mutex held by kvm.vcpu0, and FINALIZE answers -EINVAL only after the KVM_RUN returned', () => {
    expect(r.outcome).toMatchObject({ status: 'ok', failures: [] });
    const locks = r.model.indexOf.get('kvm.locks')!;
    const waits = r.deliveries.flatMap((d) => lockWaits((actorView(d.world, locks).context as KvmLocksContext).kvmLocks));
    expect(waits).toContainEqual({ thread: 'vmm.thread0', on: 'vcpu0->mutex', holder: 'kvm.vcpu0' });
    const steps = arrows(r);
    expect(steps.indexOf('vmm.thread0 → kvm.vm KVM_TDX_FINALIZE_VM')).toBeGreaterThan(steps.indexOf('kvm.vcpu0 → vmm KVM_EXIT_IO'));
    expect(steps.indexOf('kvm.vcpu0 → kvm.locks MUTEX_UNLOCK')).toBeGreaterThan(steps.indexOf('kvm.vcpu0 → vmm KVM_EXIT_IO'));
  });
  it('explores clean and exhaustive: in every order the thread gets the mutex only while the vCPU is out of KVM_RUN', () => {
    expect(explore(modelFor(s), defaultInvariants(), BOUNDS)).toMatchObject({ status: 'clean', exhaustive: true });
  });
});

describe("a thread's KVM_TDX_FINALIZE_VM replaces the build's", () => {
  const s = parseScenarioObject({
    name: 'thread-finalize',
    vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    hostThreads: [{ start: 'initialized', program: [{ op: 'finalize' }] }],
    vcpus: [{ program: [{ op: 'hlt' }] }],
  });
  const r = runScenario(s);
  it('with nothing added FINALIZE succeeds (tdx_td_finalize checks no page count; TDH.MR.FINALIZE needs none); the vCPU runs after the join', () => {
    expect(r.outcome).toMatchObject({ status: 'ok', failures: [] });
    const steps = arrows(r);
    expect(steps).not.toContain('vmm → kvm.vm KVM_TDX_FINALIZE_VM');
    expect(steps.indexOf('kvm.vm → vmm.thread0 KVM_TDX_FINALIZE_VM')).toBeLessThan(steps.indexOf('vmm → kvm.vcpu0 KVM_RUN'));
    expect(r.deliveries.find((d) => d.message.name === 'KVM_TDX_FINALIZE_VM' && d.message.kind === 'ioctl-return')!.message.payload).toEqual({ ret: 0 });
  });
});

describe('loader errors for initMemRegion and a thread-side FINALIZE name file, line and field', () => {
  const text = (image: string, thread: string) =>
    ['name: s', 'vm: { type: tdx, gpaw: 48 }', 'memslots:', '  - { gpa: 0, size: 0x80000000, guestMemfd: true }', image, 'hostThreads:', '  - program:', thread, 'vcpus:', '  - program: [{ op: hlt }]', ''].join('\n');
  const message = (image: string, thread: string) => {
    try {
      parseScenarioText(text(image, thread), 's.yaml');
    } catch (e) {
      if (e instanceof ScenarioError) return e.message;
      throw e;
    }
    throw new Error('expected a ScenarioError');
  };
  it('an image page that does not exist', () => {
    expect(message('image: []', '      - { op: initMemRegion, page: 2 }')).toMatch(/^s\.yaml:8:\d+: hostThreads\[0\]\.program\[0\]\.page: image page 2 does not exist \(0 page\(s\) in image\)$/);
  });
  it('a thread that finalizes during the build while the build would still add a page', () => {
    expect(message('image: [{ gpa: 0x100000 }]', '      - { op: finalize }')).toMatch(
      /^s\.yaml:8:\d+: hostThreads\[0\]\.program\[0\]\.op: hostThreads\[0\] finalizes the TD during the build, so the threads add the whole image; image page 0 is added by none/,
    );
  });
  it('a bad nrPages type', () => {
    expect(message('image: [{ gpa: 0x100000 }]', '      - { op: initMemRegion, page: 0, nrPages: x }')).toMatch(/^s\.yaml:8:\d+: hostThreads\[0\]\.program\[0\]\.nrPages: /);
  });
});

describe("the main thread's reads and writes resolve GPAs in its current memslots, not the build's", () => {
  const scenario = (host: unknown[]) =>
    parseScenarioObject({
      name: 'slot-view',
      vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
      memslots: [
        { gpa: 0, size: 0x100000, guestMemfd: true },
        { gpa: 0x100000, size: 0x100000 },
      ],
      vcpus: [{ program: [{ op: 'hlt' }] }],
      host,
    });
  it('a read of a deleted slot fails naming the step and the delete, and touches no memory', () => {
    const r = runScenario(
      scenario([
        { op: 'write', gpa: 0x100008, size: 8, value: 0x5a },
        { op: 'setMemoryRegion', slot: 1, gpa: 0x100000, size: 0 },
        { op: 'read', gpa: 0x100008, size: 8, expect: 0x5a },
      ]),
    );
    expect(r.outcome.failures.map((f) => f.detail)).toEqual(['vmm: host[2] (read 0x100008): 0x100008 is in no memslot (host[1] deleted or moved it): the VMM has no mapping of it']);
    expect(r.deliveries.filter((d) => d.message.from === 'vmm' && d.message.name === 'MEM_READ')).toEqual([]);
  });
  it('after a move the new GPA reads through the moved slot; the old one has no mapping', () => {
    const moved = [
      { op: 'setMemoryRegion', slot: 1, gpa: 0x100000, size: 0 },
      { op: 'setMemoryRegion', slot: 1, gpa: 0x400000, size: 0x100000 },
      { op: 'write', gpa: 0x400010, size: 8, value: 0x77 },
      { op: 'read', gpa: 0x400010, size: 8, expect: 0x77 },
    ];
    expect(runScenario(scenario(moved)).outcome).toMatchObject({ status: 'ok', failures: [] });
    const r = runScenario(scenario([...moved, { op: 'write', gpa: 0x100010, size: 8, value: 1 }]));
    expect(r.outcome.failures.map((f) => f.detail)).toEqual(['vmm: host[4] (write 0x100010): 0x100010 is in no memslot (host[0] deleted or moved it): the VMM has no mapping of it']);
  });
  it('a GPA no memslot ever covers is still the loader’s error', () => {
    expect(() => scenario([{ op: 'read', gpa: 0x900000, size: 8 }])).toThrow('host[0].gpa: 0x900000 is not inside a memslot: the VMM has no mapping of it');
  });
});
