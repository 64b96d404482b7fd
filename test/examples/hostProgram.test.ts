/**
 * The VMM's host program (machines/vmm/hostProgram.ts): the TD build as its first part, then the scenario's
 * `host:` steps next to the vCPU threads — a selftest-style round trip through shared memory (wait for the
 * guest's OUT, check its fields, read and write the page, re-enter), scripted MMIO answers, a failed
 * expectation as a failure naming the step, bad host steps as errors naming file, line and field, and a
 * host conversion racing the guest's own, explored to the end.
 */
import { describe, expect, it } from 'vitest';
import { arrows, payload, runExample, runScenario } from '../helpers.ts';
import { loadScenarioFile, parseScenarioObject, parseScenarioText } from '../../src/scenario/load.ts';
import type { ScenarioInput } from '../../src/scenario/schema.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import { modelFor } from '../../src/session/session.ts';
import { explore } from '../../src/explore/explore.ts';
import { defaultInvariants } from '../../src/explore/invariants/index.ts';
import { KVM_EXIT_IO, KVM_EXIT_IO_OUT, KVM_EXIT_MMIO, HYPERCALL_RET_EINVAL } from '../../src/arch/kvmApi.ts';
import { exampleFile, type RecordedRun } from '../helpers.ts';

const UNBOUNDED = { maxDepth: 10_000, maxStates: 1_000_000, maxMillis: Number.POSITIVE_INFINITY };
const regs = (run: RecordedRun, v = 0) => (actorView(run.deliveries.at(-1)!.world, run.model.indexOf.get(`guest.vcpu${v}`)!).context as { regs: Record<string, bigint> }).regs;

/** The upstream selftests' shared-memory test, host side scripted. */
const SHARED: ScenarioInput = {
  name: 'shared',
  vm: { type: 'tdx', attributes: ['SEPT_VE_DISABLE'] },
  memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
  vcpus: [
    {
      program: [
        { op: 'mapGpa', gpa: 0x200000, size: 0x1000, to: 'shared' },
        { op: 'store', gpa: '0x800000200000', size: 4, value: 0xabcd1234 },
        { op: 'out', port: 0x50, size: 1, value: 0xab },
        { op: 'load', gpa: '0x800000200000', size: 4, reg: 'rax' },
        { op: 'hlt' },
      ],
    },
  ],
  host: [
    { op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_IO', port: 0x50, size: 1, direction: 'out', data: 0xab },
    { op: 'read', gpa: 0x200000, size: 4, expect: 0xabcd1234 },
    { op: 'write', gpa: 0x200000, size: 4, value: 0x5a5a0011 },
    { op: 'run', vcpu: 0 },
  ],
};
const withHost = (host: ScenarioInput['host'], base: ScenarioInput = SHARED) => parseScenarioObject({ ...base, host });

describe('shared-memory-host: the selftest round trip, host side scripted', () => {
  const run = runExample('shared-memory-host');
  const seq = arrows(run);

  it('the build is the program\'s first part; the vCPU starts after KVM_TDX_FINALIZE_VM', () => {
    const finalize = seq.indexOf('kvm.vm → vmm KVM_TDX_FINALIZE_VM');
    expect(finalize).toBeGreaterThan(0);
    expect(seq[finalize + 1]).toBe('vmm → kvm.vcpu0 KVM_RUN');
  });

  it('the OUT to port 0x50 stays with the program: checked, the page read and written through the VMM\'s mapping, then KVM_RUN', () => {
    const exit = seq.indexOf('kvm.vcpu0 → vmm KVM_EXIT_IO');
    expect(seq.slice(exit, exit + 6)).toEqual([
      'kvm.vcpu0 → vmm KVM_EXIT_IO',
      'vmm → hw.mem MEM_READ',
      'hw.mem → vmm MEM_DATA',
      'vmm → hw.mem MEM_WRITE',
      'hw.mem → vmm MEM_DONE',
      'vmm → kvm.vcpu0 KVM_RUN',
    ]);
    expect(payload(run, exit + 1)).toMatchObject({ vcpu: 0, exit_reason: KVM_EXIT_IO, direction: KVM_EXIT_IO_OUT, size: 1, port: 0x50, count: 1, data: 0xabn });
    // GFN 0x200's shared backing (memslots.ts USER_PFN_BASE + GFN), KeyID 0: the guest's value is there.
    expect(payload(run, exit + 2)).toEqual({ pa: 0x400200000n, size: 4, keyid: 0, tag: 'vmm.host' });
    expect(payload(run, exit + 3)).toMatchObject({ value: 0xabcd1234n, integrity: true });
    expect(payload(run, exit + 4)).toEqual({ pa: 0x400200000n, size: 4, keyid: 0, value: 0x5a5a0011n, tag: 'vmm.host' });
    expect(payload(run, exit + 6)).toEqual({ vcpu: 0, mmioData: null });
  });

  it('the guest loads the host\'s value, and the run ends ok, under any schedule', () => {
    expect(run.outcome.status).toBe('ok');
    expect(regs(run).rax).toBe(0x5a5a0011n);
    for (let seed = 0; seed < 8; seed++) {
      const r = runExample('shared-memory-host', seed);
      expect(r.outcome.status).toBe('ok');
      expect(regs(r).rax).toBe(0x5a5a0011n);
    }
  });

  it('explores clean and exhaustive with the default invariants (383 states)', () => {
    const r = explore(modelFor(loadScenarioFile(exampleFile('shared-memory-host')).scenario), defaultInvariants(), UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 383 });
  });
});

describe('expectations', () => {
  it('an exit other than the one expected is a failure naming the host step and the field', () => {
    const r = runScenario(withHost([{ op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_IO', port: 0x50, size: 1, direction: 'out', data: 0xac }, { op: 'run', vcpu: 0 }]));
    expect(r.outcome.status).toBe('failure');
    expect(r.text).toContain('vmm: host[0] (waitExit KVM_EXIT_IO on vCPU 0): KVM_EXIT_IO on vCPU 0 has data 0xab (expected 0xac)');
    const wrongKind = runScenario(withHost([{ op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_IO', direction: 'in' }, { op: 'run', vcpu: 0 }]));
    expect(wrongKind.text).toContain('KVM_EXIT_IO on vCPU 0 has direction 0x1 (expected 0x0)');
  });

  it('a read that differs is a failure naming the step; the explorer reports it as no-failure with the same detail', () => {
    const s = withHost([{ op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_IO' }, { op: 'read', gpa: 0x200000, size: 4, expect: 0x1 }, { op: 'run', vcpu: 0 }]);
    const r = runScenario(s);
    expect(r.outcome.status).toBe('failure');
    expect(r.text).toContain('expectation failed');
    expect(r.text).toContain('vmm: host[1] (read 0x200000): read 0xabcd1234, expected 0x1');
    const e = explore(modelFor(s), defaultInvariants(), UNBOUNDED);
    expect(e.violation).toMatchObject({ invariant: 'no-failure' });
    expect(e.violation!.detail).toContain('host[1] (read 0x200000): read 0xabcd1234, expected 0x1');
  });

  it('a program left waiting for an exit that never comes is a deadlock naming the step', () => {
    const s = parseScenarioObject({ ...SHARED, vcpus: [{ program: [{ op: 'hlt' }] }], host: [{ op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_MMIO' }] });
    const e = explore(modelFor(s), defaultInvariants(), UNBOUNDED);
    expect(e.violation).toMatchObject({ invariant: 'no-deadlock' });
    expect(e.violation!.detail).toContain('vmm waits at host[0] (waitExit KVM_EXIT_MMIO on vCPU 0)');
  });
});

describe('MMIO answers', () => {
  const MMIO: ScenarioInput = {
    name: 'mmio',
    vm: { type: 'tdx', attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    devices: [{ name: 'regs', kind: 'mmio-regs', gpa: 0xfe000000, size: 0x1000, registers: { '0x0': 0x1af41000 } }],
    vcpus: [
      {
        program: [
          { op: 'load', gpa: '0x8000fe000000', size: 4, reg: 'rax' },
          { op: 'load', gpa: '0x8000fe000000', size: 4, reg: 'rbx' },
          { op: 'load', gpa: '0x8000fe000000', size: 4, reg: 'rcx' },
          { op: 'hlt' },
        ],
      },
    ],
  };

  it('vmm.mmioReads answers the reads in order, then the device model does', () => {
    const r = runScenario(parseScenarioObject({ ...MMIO, vmm: { mmioReads: [0x11, 0x22] } }));
    expect(r.outcome.status).toBe('ok');
    expect(regs(r)).toMatchObject({ rax: 0x11n, rbx: 0x22n, rcx: 0x1af41000n });
  });

  it('a waitExit checks the read, and run answers it with data (or the device model without)', () => {
    const r = runScenario(
      parseScenarioObject({
        ...MMIO,
        host: [
          { op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_MMIO', gpa: 0xfe000000, size: 4, write: false },
          { op: 'run', vcpu: 0, data: 0xfeed },
          { op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_MMIO', gpa: 0xfe000000, size: 4, write: false },
          { op: 'run', vcpu: 0 },
        ],
      }),
    );
    expect(r.outcome.status).toBe('ok');
    const exits = r.deliveries.filter((d) => d.message.name === 'KVM_EXIT_MMIO').map((d) => d.message.payload);
    expect(exits[0]).toMatchObject({ exit_reason: KVM_EXIT_MMIO, phys_addr: 0xfe000000n, len: 4, is_write: 0 });
    // The third read is no longer awaited: the device model answers it as without a program.
    expect(regs(r)).toMatchObject({ rax: 0xfeedn, rbx: 0x1af41000n, rcx: 0x1af41000n });
  });
});

describe('bad host steps are errors naming file, line and field', () => {
  const yaml = (step: string) =>
    `name: x\nvm: { type: tdx }\nmemslots:\n  - { gpa: 0x0, size: 0x80000000, guestMemfd: true }\nvcpus:\n  - program: [{ op: hlt }]\nhost:\n  - ${step}\n`;

  it('a vCPU that does not exist, a field the exit does not have, memory the VMM has not mapped', () => {
    expect(() => parseScenarioText(yaml('{ op: run, vcpu: 1 }'), 'h.yaml')).toThrow(/h\.yaml:8.*host\[0\]\.vcpu.*vCPU 1 does not exist \(1 vCPU\(s\)\)/s);
    expect(() => parseScenarioText(yaml('{ op: waitExit, vcpu: 0, exit: KVM_EXIT_MMIO, port: 0x50 }'), 'h.yaml')).toThrow(/h\.yaml:8.*host\[0\]\.port.*KVM_EXIT_MMIO has no field "port"; it checks gpa, size, write, data/s);
    expect(() => parseScenarioText(yaml('{ op: write, gpa: 0x90000000, size: 8, value: 1 }'), 'h.yaml')).toThrow(/h\.yaml:8.*host\[0\]\.gpa.*0x90000000 is not inside a memslot/s);
    expect(() => parseScenarioText(yaml('{ op: read, gpa: 0x1004, size: 8 }'), 'h.yaml')).toThrow(/host\[0\]\.gpa.*not naturally aligned/s);
    expect(() => parseScenarioText(yaml('{ op: waitExit, vcpu: 0, exit: KVM_EXIT_DEBUG }'), 'h.yaml')).toThrow(/h\.yaml:8.*host\[0\]\.exit/s);
  });

  it('a run with no waitExit holding its vCPU, and a second waitExit before the vCPU ran again', () => {
    expect(() => parseScenarioText(yaml('{ op: run, vcpu: 0 }'), 'h.yaml')).toThrow(/h\.yaml:8.*host\[0\].*no waitExit before it holds vCPU 0/s);
    const twice = `${yaml('{ op: waitExit, vcpu: 0, exit: KVM_EXIT_IO }')}  - { op: waitExit, vcpu: 0, exit: KVM_EXIT_IO }\n`;
    expect(() => parseScenarioText(twice, 'h.yaml')).toThrow(/h\.yaml:9.*host\[1\].*vCPU 0 is still in userspace after the exit an earlier waitExit took: run it first/s);
  });
});

describe('host-convert-race: the host\'s KVM_SET_MEMORY_ATTRIBUTES against the guest\'s MapGPA and loads', () => {
  it('first in order: the host polls the flag, makes the page private, the guest\'s next load exits and the VMM converts it back', () => {
    const r = runExample('host-convert-race');
    expect(r.outcome.status).toBe('ok');
    expect(regs(r)).toMatchObject({ rax: 1n, rbx: 1n });
    const names = r.deliveries.map((d) => `${d.message.from} → ${d.message.to} ${d.message.name}`);
    expect(names.filter((n) => n === 'vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES').length).toBeGreaterThanOrEqual(2);
  });

  it('explores clean and exhaustive: 2179 states, 4 end states; the shared leaf\'s store lands before the flush', () => {
    const r = explore(modelFor(loadScenarioFile(exampleFile('host-convert-race')).scenario), defaultInvariants(), UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 2179, terminals: 4 });
  });
});

describe('host-exit-race: the VMM exits while the guest accepts and writes a secret', () => {
  it('in order: the flag read, SIG_IPI, KVM_EXIT_INTR, then the files close and the last close destroys the VM', () => {
    const r = runExample('host-exit-race');
    expect(r.outcome.status).toBe('ok');
    const names = arrows(r);
    const flag = r.deliveries.findIndex((d) => d.message.name === 'MEM_DATA' && d.message.to === 'vmm' && (d.message.payload as { value: bigint }).value === 1n);
    expect(flag).toBeGreaterThan(0);
    const tail = names.slice(flag + 1).filter((n) => n.startsWith('vmm →') || n.endsWith('→ vmm KVM_EXIT_INTR') || n.includes('TDH.MNG.KEY.FREEID'));
    expect(tail).toEqual([
      'vmm → kvm.vcpu0 SIG_IPI',
      'kvm.vcpu0 → vmm KVM_EXIT_INTR',
      'vmm → kvm.vm kvm-vm',
      'vmm → kvm.vm kvm-gmem',
      'vmm → kvm.vm kvm-vcpu',
      'kvm.vm → tdx TDH.MNG.KEY.FREEID',
      'tdx → kvm.vm TDH.MNG.KEY.FREEID',
    ]);
    expect(actorView(r.deliveries.at(-1)!.world, r.model.indexOf.get('kvm.vm')!).value).toBe('destroyed');
  });

  it('explores clean and exhaustive: 2303 states, 6 end states', () => {
    const r = explore(modelFor(loadScenarioFile(exampleFile('host-exit-race')).scenario), defaultInvariants(), UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 2303, terminals: 6 });
  });
});

describe('answers per exit kind (vmm.mapGpa, vmm.memoryFault) and an exit the program takes and never answers', () => {
  const TOUCH: ScenarioInput = {
    name: 'touch',
    vm: { type: 'tdx', attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    vcpus: [{ program: [{ op: 'load', gpa: '0x800000200000', size: 8, reg: 'rax' }, { op: 'hlt' }] }],
  };

  it('memoryFault: stop — the shared touch of a private page exits and the vCPU thread stays in userspace; no deadlock', () => {
    const s = parseScenarioObject({ ...TOUCH, vmm: { memoryFault: 'stop' } });
    const r = runScenario(s);
    expect(r.outcome.status).toBe('ok');
    expect(arrows(r).at(-1)).toBe('kvm.vcpu0 → vmm KVM_EXIT_MEMORY_FAULT');
    expect(r.deliveries.filter((d) => d.message.name === 'KVM_SET_MEMORY_ATTRIBUTES' && d.message.from === 'vmm').length).toBe(1);
    expect(explore(modelFor(s), defaultInvariants(), UNBOUNDED)).toMatchObject({ status: 'clean', exhaustive: true });
  });

  it('the selftest way: waitExit checks the KVM_EXIT_MEMORY_FAULT (gpa, size, shared) and the program ends holding the vCPU', () => {
    const s = parseScenarioObject({ ...TOUCH, host: [{ op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_MEMORY_FAULT', gpa: 0x200000, size: 0x1000, private: false }] });
    const r = runScenario(s);
    expect(r.outcome.status).toBe('ok');
    expect(explore(modelFor(s), defaultInvariants(), UNBOUNDED)).toMatchObject({ status: 'clean', exhaustive: true });
    const wrong = runScenario(parseScenarioObject({ ...TOUCH, host: [{ op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_MEMORY_FAULT', private: true }] }));
    expect(wrong.outcome.status).toBe('failure');
    expect(wrong.text).toContain('KVM_EXIT_MEMORY_FAULT on vCPU 0 has flags 0x0 (expected 0x8)');
  });

  it('mapGpa: fail — hypercall.ret = -EINVAL, the guest sees INVALID_OPERAND with R11 = the GPA and Linux\'s set_memory_decrypted fails', () => {
    const s = parseScenarioObject({ ...TOUCH, vmm: { mapGpa: 'fail' }, vcpus: [{ program: [{ op: 'mapGpa', gpa: 0x200000, size: 0x1000, to: 'shared' }, { op: 'hlt' }] }] });
    const r = runScenario(s);
    const run = r.deliveries.find((d) => d.message.name === 'KVM_RUN' && (d.message.payload as { hypercallRet?: number }).hypercallRet !== undefined)!;
    expect(run.message.payload).toEqual({ vcpu: 0, mmioData: null, hypercallRet: HYPERCALL_RET_EINVAL });
    expect(r.outcome.status).toBe('failure');
    expect(r.text).toContain('R10=0x8000000000000000 R11=0x800000200000');
  });

  it('a hypercall the program takes is answered with run\'s ret', () => {
    const s = parseScenarioObject({
      ...TOUCH,
      vcpus: [{ program: [{ op: 'mapGpa', gpa: 0x200000, size: 0x1000, to: 'shared' }, { op: 'hlt' }] }],
      host: [
        { op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_HYPERCALL', nr: 12, gpa: 0x200000, size: 1, data: 0 },
        { op: 'setAttributes', gpa: 0x200000, size: 0x1000, to: 'shared', expectRet: 0 },
        { op: 'run', vcpu: 0, ret: 0 },
      ],
    });
    const r = runScenario(s);
    expect(r.outcome.status).toBe('ok');
    const seq = arrows(r);
    const exit = seq.indexOf('kvm.vcpu0 → vmm KVM_EXIT_HYPERCALL');
    expect(seq[exit + 1]).toBe('vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES');
    expect(payload(r, exit + 2)).toEqual({ address: 0x200000n, size: 0x1000n, attributes: 0n });
  });
});
