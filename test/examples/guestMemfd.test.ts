/**
 * guest_memfd as a file the VMM works on (machines/kvm/guestMemfd.ts) and KVM_PRE_FAULT_MEMORY
 * (machines/kvm/preFaultMemory.ts), as host steps: the hole punch's invalidation (zap of the private
 * mapping with the TDX remove hook, truncation, end) in its real order and its errnos; the fresh page a
 * later fault gets and what the guest sees of it with and without SEPT_VE_DISABLE; the pre-fault refused
 * before KVM_TDX_FINALIZE_VM and mapping PENDING pages by TDH.MEM.PAGE.AUG after it; both raced and explored.
 */
import { describe, expect, it } from 'vitest';
import { arrows, exampleFile, runExample, runScenario, type RecordedRun } from '../helpers.ts';
import { loadScenarioFile, parseScenarioObject, parseScenarioText } from '../../src/scenario/load.ts';
import type { ScenarioInput } from '../../src/scenario/schema.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import { modelFor } from '../../src/session/session.ts';
import { explore } from '../../src/explore/explore.ts';
import { defaultInvariants } from '../../src/explore/invariants/index.ts';
import type { Invariant } from '../../src/explore/invariants/invariant.ts';
import { septLeaves } from '../../machines/tdxModule/septTree.ts';
import type { TdxModuleContext } from '../../machines/tdxModule/tdxModule.ts';
import type { TdpMmuContext } from '../../machines/kvm/tdpMmu.ts';
import { fallocateError, gmemPfn } from '../../machines/kvm/guestMemfd.ts';
import { preFaultArgsError } from '../../machines/kvm/preFaultMemory.ts';

const UNBOUNDED = { maxDepth: 10_000, maxStates: 1_000_000, maxMillis: Number.POSITIVE_INFINITY };
const last = <T>(r: RecordedRun, actor: string) => actorView(r.deliveries.at(-1)!.world, r.model.indexOf.get(actor)!).context as T;
const regs = (r: RecordedRun, v = 0) => last<{ regs: Record<string, bigint> }>(r, `guest.vcpu${v}`).regs;
const leaves = (r: RecordedRun) => {
  const tdx = last<TdxModuleContext>(r, 'tdx');
  return septLeaves(tdx.mem.sept, tdx.mem.septRoot!, tdx.mem.topLevel);
};
const returns = (r: RecordedRun, name: string) => r.deliveries.filter((d) => d.message.to === 'vmm' && d.message.name === name).map((d) => d.message.payload);

/** The guest accepts and writes a page and reports in; the VMM punches a hole over it, then lets the guest go on. */
const afterHole = (attributes: 'SEPT_VE_DISABLE'[], rest: NonNullable<ScenarioInput['vcpus']>[number]['program'], host: ScenarioInput['host'] = [{ op: 'punchHole', gpa: 0x200000, size: 0x1000, expectRet: 0 }]): ScenarioInput => ({
  name: 'after-hole',
  vm: { type: 'tdx', attributes },
  memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
  vcpus: [
    {
      program: [
        { op: 'accept', gpa: 0x200000, size: 0x1000 },
        { op: 'store', gpa: 0x200000, size: 8, value: 0x1234 },
        { op: 'out', port: 0x50, size: 1, value: 0x1 },
        ...rest,
      ],
    },
  ],
  host: [{ op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_IO', port: 0x50 }, ...(host ?? []), { op: 'run', vcpu: 0 }],
});

describe('gmem-punch-hole-fault: fallocate(PUNCH_HOLE) against a vCPU accepting and using the page', () => {
  it('in order: write mmu_lock, invalidation begun over the range, unlock; the pages truncated; write mmu_lock, invalidation ended; fallocate returns 0', () => {
    const r = runExample('gmem-punch-hole-fault');
    expect(r.outcome.status).toBe('ok');
    const vm = arrows(r).filter((a) => a.startsWith('kvm.vm →') || a.endsWith('→ kvm.vm fallocate'));
    const from = vm.indexOf('vmm → kvm.vm fallocate');
    expect(vm.slice(from)).toEqual([
      'vmm → kvm.vm fallocate',
      'kvm.vm → kvm.mmu MMU_LOCK_WRITE',
      'kvm.vm → kvm.mmu TDP_LEAF_SCAN',
      'kvm.vm → kvm.mmu MMU_UNLOCK',
      'kvm.vm → kvm.mmu GMEM_TRUNCATE_RANGE',
      'kvm.vm → kvm.mmu MMU_LOCK_WRITE',
      'kvm.vm → kvm.mmu MMU_INVALIDATE_END',
      'kvm.vm → kvm.mmu MMU_UNLOCK',
      'kvm.vm → vmm fallocate',
    ]);
    const call = r.deliveries.find((d) => d.message.name === 'fallocate')!.message.payload;
    expect(call).toEqual({ slot: 0, mode: 3, offset: 0x200000n, len: 0x1000n });
    const at = r.deliveries.findIndex((d) => d.message.name === 'fallocate');
    expect(r.deliveries.slice(at).find((d) => d.message.name === 'TDP_LEAF_SCAN')!.message.payload).toMatchObject({ root: 'mirror', gfnStart: 0x200n, gfnEnd: 0x201n });
    expect(returns(r, 'fallocate')).toEqual([{ ret: 0 }]);
    // The guest's ACCEPT faulted inside the window: its walk under mmu_lock found the fault stale and it retried.
    const walks = r.deliveries.filter((d) => d.message.name === 'TDP_WALK_RESULT' && d.message.to === 'kvm.vcpu0').map((d) => (d.message.payload as { stale?: boolean }).stale);
    expect(walks).toEqual([true, false]);
    // The hole came before the guest's first fault: it wrote and read its own value in the fresh page.
    expect(regs(r).rax).toBe(0x1234n);
    expect(leaves(r)).toEqual([{ gpa: 0x200000n, tdxLevel: 0, state: 'MAPPED', hpa: 0x1200200000n }]);
  });

  it('explores clean and exhaustive: 14243 states, 10 end states', () => {
    const r = explore(modelFor(loadScenarioFile(exampleFile('gmem-punch-hole-fault')).scenario), defaultInvariants(), UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 14243, terminals: 10 });
  });

  it('some schedule puts the hole between the store and the load: the load takes the #VE, accepts, and reads 0', () => {
    // A probe, not a property: "the load (program[2]) retired with rax = 0" is reachable.
    const readsZero: Invariant = {
      name: 'load-reads-zero',
      description: 'the probe',
      check: (m, _before, after, d) => {
        if (d.name !== 'RETIRE' || d.to !== 'guest.vcpu0') return null;
        const g = actorView(after, m.indexOf.get('guest.vcpu0')!).context as { regs: Record<string, bigint>; pc: number };
        return g.pc === 3 && g.regs.rax === 0n ? 'the load read 0' : null;
      },
    };
    const r = explore(modelFor(loadScenarioFile(exampleFile('gmem-punch-hole-fault')).scenario), [readsZero], UNBOUNDED);
    expect(r.status).toBe('violation');
    expect(r.violation).toMatchObject({ invariant: 'load-reads-zero', detail: 'the load read 0' });
  });
});

describe('a hole punch next to the guest\'s own conversion', () => {
  it('kvm.vm runs one at a time: a MapGPA conversion that arrives during the punch waits its turn; explored clean', () => {
    const input: ScenarioInput = {
      name: 'punch-vs-mapgpa',
      vm: { type: 'tdx', attributes: ['SEPT_VE_DISABLE'] },
      memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
      vcpus: [{ program: [{ op: 'accept', gpa: 0x200000, size: 0x1000 }, { op: 'mapGpa', gpa: 0x200000, size: 0x1000, to: 'shared' }, { op: 'hlt' }] }],
      host: [{ op: 'punchHole', gpa: 0x200000, size: 0x1000, expectRet: 0 }],
    };
    const r = explore(modelFor(parseScenarioObject(input)), defaultInvariants(), UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 6136 });
    // A probe: the punch is issued as the vCPUs start, so it is always first; the guest's MapGPA can arrive while it runs and waits.
    const queued = (first: string): Invariant => ({
      name: `queued-behind-${first}`,
      description: 'the probe',
      check: (m, _before, after) => {
        const q = (actorView(after, m.indexOf.get('vmm')!).context as { conversions: { exit: string }[] }).conversions;
        return q.length === 2 && q[0]!.exit === first ? `${q[1]!.exit} waits behind ${first}` : null;
      },
    });
    expect(explore(modelFor(parseScenarioObject(input)), [queued('gmem')], UNBOUNDED).violation).toMatchObject({ detail: 'hypercall waits behind gmem' });
  });
});

describe('a hole over a mapped private page', () => {
  const r = runScenario(parseScenarioObject(afterHole(['SEPT_VE_DISABLE'], [{ op: 'accept', gpa: 0x200000, size: 0x1000 }, { op: 'load', gpa: 0x200000, size: 8, reg: 'rax' }, { op: 'hlt' }])));

  it('the zap is the remove hook under write mmu_lock: BLOCK, TRACK, REMOVE, WBINVD, clear; the flush before the unlock; then the truncation', () => {
    expect(r.outcome.status).toBe('ok');
    const seq = arrows(r);
    const from = seq.indexOf('vmm → kvm.vm fallocate');
    const to = seq.indexOf('kvm.vm → vmm fallocate');
    const vm = seq.slice(from, to + 1).filter((a) => a.startsWith('kvm.vm →'));
    expect(vm.filter((a) => !a.includes('KVM_REQ'))).toEqual([
      'kvm.vm → kvm.mmu MMU_LOCK_WRITE',
      'kvm.vm → kvm.mmu TDP_LEAF_SCAN',
      'kvm.vm → kvm.mmu SPTE_WRITE',
      'kvm.vm → tdx TDH.MEM.RANGE.BLOCK',
      'kvm.vm → tdx TDH.MEM.TRACK',
      'kvm.vm → tdx TDH.MEM.PAGE.REMOVE',
      'kvm.vm → tdx TDH.PHYMEM.PAGE.WBINVD',
      'kvm.vm → hw.mem MEM_ZERO',
      'kvm.vm → kvm.mmu MMU_UNLOCK',
      'kvm.vm → kvm.mmu GMEM_TRUNCATE_RANGE',
      'kvm.vm → kvm.mmu MMU_LOCK_WRITE',
      'kvm.vm → kvm.mmu MMU_INVALIDATE_END',
      'kvm.vm → kvm.mmu MMU_UNLOCK',
      'kvm.vm → vmm fallocate',
    ]);
    // The remote TLB flush of kvm_gmem_invalidate_begin comes after the clear and before the unlock.
    const flush = vm.findIndex((a) => a.includes('KVM_REQ_TLB_FLUSH'));
    expect(flush).toBeGreaterThan(vm.indexOf('kvm.vm → hw.mem MEM_ZERO'));
    expect(flush).toBeLessThan(vm.indexOf('kvm.vm → kvm.mmu MMU_UNLOCK'));
  });

  it('the guest\'s next ACCEPT faults again: AUG of a fresh page (generation 1, PFN 0x1200200), PENDING until the ACCEPT, which zeroes it', () => {
    const seq = arrows(r);
    const after = seq.slice(seq.indexOf('kvm.vm → vmm fallocate'));
    expect(after).toContain('tdx → kvm.vcpu0 EPT_VIOLATION');
    const aug = r.deliveries.filter((d) => d.message.name === 'TDH.MEM.PAGE.AUG' && d.message.to === 'tdx').map((d) => (d.message.payload as { R8: bigint }).R8);
    expect(aug).toEqual([0x200200000n, 0x1200200000n]);
    expect(gmemPfn([{ start: 0x200n, end: 0x201n }], 0x200n)).toBe(0x1200200n);
    expect(last<TdpMmuContext>(r, 'kvm.mmu').gmemHoles).toEqual([{ start: 0x200n, end: 0x201n }]);
    expect(leaves(r)).toEqual([{ gpa: 0x200000n, tdxLevel: 0, state: 'MAPPED', hpa: 0x1200200000n }]);
    // What the guest wrote went with the old page.
    expect(regs(r).rax).toBe(0n);
  });

  it('the VM torn down after the hole: guest_memfd release removes the fresh page like any other, explored clean', () => {
    const input = afterHole(['SEPT_VE_DISABLE'], [{ op: 'accept', gpa: 0x200000, size: 0x1000 }, { op: 'store', gpa: 0x200000, size: 8, value: 0x77 }, { op: 'out', port: 0x604, size: 2, value: 0x2000 }]);
    const t = runScenario(parseScenarioObject(input));
    expect(t.outcome.status).toBe('ok');
    const removes = t.deliveries.filter((d) => d.message.name === 'TDH.MEM.PAGE.REMOVE' && d.message.to === 'tdx').length;
    expect(removes).toBe(2);
    const clears = t.deliveries.filter((d) => d.message.name === 'MEM_ZERO' && d.message.from === 'kvm.vm').map((d) => (d.message.payload as { pa: bigint }).pa);
    expect(clears.slice(0, 2)).toEqual([0x200200000n, 0x1200200000n]);
    expect(actorView(t.deliveries.at(-1)!.world, t.model.indexOf.get('kvm.vm')!).value).toBe('destroyed');
    const r = explore(modelFor(parseScenarioObject(input)), defaultInvariants(), UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 739 });
  });

  it('with SEPT_VE_DISABLE, a touch of the new PENDING page without an ACCEPT kills the VM (tdx_is_sept_violation_unexpected_pending)', () => {
    const t = runScenario(parseScenarioObject(afterHole(['SEPT_VE_DISABLE'], [{ op: 'load', gpa: 0x200000, size: 8, reg: 'rax' }, { op: 'hlt' }])));
    expect(t.outcome.status).toBe('failure');
    expect(t.outcome.failures.map((f) => `${f.reason}: ${f.detail}`)).toEqual(['VM dead: kvm.vcpu0: Guest access before accepting 0x200000 on vCPU 0: VM marked dead, KVM_RUN returns -EIO (§6.ii B.3)']);
  });

  it('without SEPT_VE_DISABLE the module injects a #VE for the PENDING page; a guest that accepts in its handler goes on and reads 0', () => {
    const input = afterHole([], [{ op: 'load', gpa: 0x200000, size: 8, reg: 'rax' }, { op: 'hlt' }]);
    input.vcpus[0]!.privateVe = 'accept';
    const t = runScenario(parseScenarioObject(input));
    expect(t.outcome.status).toBe('ok');
    expect(arrows(t)).toContain('hw.cpu0 → guest.vcpu0 #VE');
    expect(regs(t).rax).toBe(0n);
  });
});

describe('fallocate and ftruncate errnos on a guest_memfd', () => {
  const withHost = (host: ScenarioInput['host']) => runScenario(parseScenarioObject(afterHole(['SEPT_VE_DISABLE'], [{ op: 'hlt' }], host)));

  it('the checks of vfs_fallocate and kvm_gmem_fallocate, in their order', () => {
    expect(fallocateError(3, 0n, 0n, 0x80000000n)).toBe(-22); // len 0: the VFS
    expect(fallocateError(2, 0n, 0x1000n, 0x80000000n)).toBe(-95); // no KEEP_SIZE
    expect(fallocateError(3 | 0x10, 0n, 0x1000n, 0x80000000n)).toBe(-95); // a bit guest_memfd does not take
    expect(fallocateError(3, 0x800n, 0x1000n, 0x80000000n)).toBe(-22); // misaligned offset
    expect(fallocateError(3, 0n, 0x1800n, 0x80000000n)).toBe(-22); // misaligned length
    expect(fallocateError(1, 0x7ffff000n, 0x2000n, 0x80000000n)).toBe(-22); // preallocation past the end
    expect(fallocateError(3, 0x7ffff000n, 0x2000n, 0x80000000n)).toBeNull(); // a hole past the end is fine
    expect(fallocateError(1, 0n, 0x1000n, 0x80000000n)).toBeNull();
  });

  it('refused calls return at once and zap nothing; ftruncate is always EINVAL; a preallocation changes nothing', () => {
    const r = withHost([
      { op: 'punchHole', gpa: 0x200000, size: 0x1800, expectRet: -22 },
      { op: 'punchHole', gpa: 0x200000, size: 0x1000, mode: 2, expectRet: -95 },
      { op: 'punchHole', gpa: 0x200000, size: 0x1000, mode: 1, expectRet: 0 },
      { op: 'truncate', gpa: 0x200000, length: 0x1000, expectRet: -22 },
    ]);
    expect(r.outcome.status).toBe('ok');
    expect(returns(r, 'fallocate')).toEqual([{ ret: -22 }, { ret: -95 }, { ret: 0 }]);
    expect(returns(r, 'ftruncate')).toEqual([{ ret: -22 }]);
    expect(arrows(r)).not.toContain('kvm.vm → tdx TDH.MEM.PAGE.REMOVE');
    expect(leaves(r)).toEqual([{ gpa: 0x200000n, tdxLevel: 0, state: 'MAPPED', hpa: 0x200200000n }]);
  });

  it('a return other than the one expected fails the run, naming the step', () => {
    const r = withHost([{ op: 'punchHole', gpa: 0x200000, size: 0x1800, expectRet: 0 }]);
    expect(r.outcome.failures.map((f) => `${f.reason}: ${f.detail}`)).toEqual(['expectation failed: vmm: host[1] (fallocate guest_memfd of memslot 0, mode 0x3, offset 0x200000, len 0x1800): returned -22, expected 0']);
  });

  it('bad steps are errors naming file, line and field', () => {
    const yaml = (vm: string, step: string) => `name: x\nvm: { type: ${vm} }\nmemslots:\n  - { gpa: 0x0, size: 0x80000000, guestMemfd: ${vm === 'tdx'} }\nvcpus:\n  - program: [{ op: hlt }]\nhost:\n  - ${step}\n`;
    expect(() => parseScenarioText(yaml('tdx', '{ op: punchHole, gpa: 0x90000000, size: 0x1000 }'), 'g.yaml')).toThrow(/g\.yaml:8.*host\[0\]\.gpa.*0x90000000 is not inside a memslot with a guest_memfd/s);
    expect(() => parseScenarioText(yaml('tdx', '{ op: punchHole, gpa: 0x7ffff000, size: 0x2000 }'), 'g.yaml')).toThrow(/g\.yaml:8.*host\[0\]\.size.*runs past the end of its memslot \(0x80000000\)/s);
    expect(() => parseScenarioText(yaml('vmx', '{ op: truncate, gpa: 0x0, length: 0 }'), 'g.yaml')).toThrow(/g\.yaml:8.*host\[0\]\.op.*only a TD has/s);
    expect(() => parseScenarioText(yaml('tdx', '{ op: punchHole, gpa: 0x0, size: 0x1000, mode: lots }'), 'g.yaml')).toThrow(/g\.yaml:8.*host\[0\]\.mode/s);
  });
});

/** vCPU 0 reports in and waits; the VMM pre-faults while it holds it. */
const preFaultInput = (host: NonNullable<ScenarioInput['host']>, attributes: 'SEPT_VE_DISABLE'[] = ['SEPT_VE_DISABLE']): ScenarioInput => ({
  name: 'pre-fault',
  vm: { type: 'tdx', attributes },
  memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
  vcpus: [{ program: [{ op: 'out', port: 0x50, size: 1, value: 0x1 }, { op: 'hlt' }] }],
  host: [{ op: 'waitExit', vcpu: 0, exit: 'KVM_EXIT_IO', port: 0x50 }, ...host, { op: 'run', vcpu: 0 }],
});

describe('pre-fault-memory: KVM_PRE_FAULT_MEMORY before and after KVM_TDX_FINALIZE_VM', () => {
  const r = runExample('pre-fault-memory');
  const seq = arrows(r);

  it('before the finalize: one read of pre_fault_allowed, EOPNOTSUPP, the whole range left; the build goes on', () => {
    const first = seq.indexOf('vmm → kvm.vcpu0 KVM_PRE_FAULT_MEMORY');
    expect(seq.slice(first, first + 5)).toEqual([
      'vmm → kvm.vcpu0 KVM_PRE_FAULT_MEMORY',
      'kvm.vcpu0 → kvm.vm pre_fault_allowed',
      'kvm.vm → kvm.vcpu0 pre_fault_allowed',
      'kvm.vcpu0 → vmm KVM_PRE_FAULT_MEMORY',
      'vmm → kvm.vm KVM_TDX_FINALIZE_VM',
    ]);
    expect(returns(r, 'KVM_PRE_FAULT_MEMORY')[0]).toEqual({ vcpu: 0, ret: -95, gpa: 0x200000n, size: 0x2000n });
  });

  it('after it, on the held vCPU: each page by the private fault path, TDH.MEM.PAGE.AUG, PENDING; 0 and nothing left', () => {
    expect(r.outcome.status).toBe('ok');
    const from = seq.indexOf('kvm.vcpu0 → vmm KVM_EXIT_IO');
    const upTo = seq.indexOf('kvm.vcpu0 → vmm KVM_PRE_FAULT_MEMORY', from);
    const calls = seq.slice(from, upTo).filter((a) => a.startsWith('kvm.vcpu0 → tdx'));
    expect(calls).toEqual(['kvm.vcpu0 → tdx TDH.MEM.SEPT.ADD', 'kvm.vcpu0 → tdx TDH.MEM.SEPT.ADD', 'kvm.vcpu0 → tdx TDH.MEM.SEPT.ADD', 'kvm.vcpu0 → tdx TDH.MEM.PAGE.AUG', 'kvm.vcpu0 → tdx TDH.MEM.PAGE.AUG']);
    const augs = r.deliveries.filter((d) => d.message.name === 'TDH.MEM.PAGE.AUG' && d.message.to === 'tdx').map((d) => d.message.payload);
    expect(augs).toMatchObject([
      { RCX: 0x200000n, R8: 0x200200000n },
      { RCX: 0x201000n, R8: 0x200201000n },
    ]);
    expect(returns(r, 'KVM_PRE_FAULT_MEMORY')[1]).toEqual({ vcpu: 0, ret: 0, gpa: 0x202000n, size: 0n });
  });

  it('the guest\'s ACCEPTs find the entries PENDING and take no EPT violation; both pages end MAPPED', () => {
    const from = seq.indexOf('vmm → kvm.vcpu0 KVM_RUN', seq.indexOf('kvm.vcpu0 → vmm KVM_EXIT_IO'));
    expect(seq.slice(from)).not.toContain('tdx → kvm.vcpu0 EPT_VIOLATION');
    expect(leaves(r)).toEqual([
      { gpa: 0x200000n, tdxLevel: 0, state: 'MAPPED', hpa: 0x200200000n },
      { gpa: 0x201000n, tdxLevel: 0, state: 'MAPPED', hpa: 0x200201000n },
    ]);
    expect(regs(r).rax).toBe(0x5an);
  });
});

describe('KVM_PRE_FAULT_MEMORY errnos', () => {
  const ret = (step: Record<string, unknown>) => {
    const t = runScenario(parseScenarioObject(preFaultInput([{ op: 'preFaultMemory', vcpu: 0, ...step } as NonNullable<ScenarioInput['host']>[number]])));
    expect(t.outcome.status).toBe('ok');
    return returns(t, 'KVM_PRE_FAULT_MEMORY')[0];
  };

  it('the argument checks of kvm_vcpu_pre_fault_memory', () => {
    expect(preFaultArgsError(0x200000n, 0x1000n, 1n)).toBe(-22);
    expect(preFaultArgsError(0x200800n, 0x1000n, 0n)).toBe(-22);
    expect(preFaultArgsError(0x200000n, 0n, 0n)).toBe(-22);
    expect(preFaultArgsError(0xfffffffffffff000n, 0x2000n, 0n)).toBe(-22);
    expect(preFaultArgsError(0x200000n, 0x1000n, 0n)).toBeNull();
  });

  it('refused at once (flags, alignment); the shared alias is EINVAL; no memslot is ENOENT; a partial success is 0 with the rest left', () => {
    expect(ret({ gpa: 0x200000, size: 0x1000, flags: 1 })).toEqual({ vcpu: 0, ret: -22, gpa: 0x200000n, size: 0x1000n });
    expect(ret({ gpa: 0x200800, size: 0x1000 })).toMatchObject({ ret: -22 });
    expect(ret({ gpa: 0x800000200000, size: 0x1000 })).toEqual({ vcpu: 0, ret: -22, gpa: 0x800000200000n, size: 0x1000n });
    expect(ret({ gpa: 0x90000000, size: 0x1000 })).toEqual({ vcpu: 0, ret: -2, gpa: 0x90000000n, size: 0x1000n });
    expect(ret({ gpa: 0x7ffff000, size: 0x2000 })).toEqual({ vcpu: 0, ret: 0, gpa: 0x80000000n, size: 0x1000n });
  });

  it('a shared GFN is mapped in the direct root from the VMM\'s memory, no SEAMCALL', () => {
    const t = runScenario(parseScenarioObject(preFaultInput([{ op: 'setAttributes', gpa: 0x300000, size: 0x1000, to: 'shared', expectRet: 0 }, { op: 'preFaultMemory', vcpu: 0, gpa: 0x300000, size: 0x1000, expectRet: 0 }])));
    expect(t.outcome.status).toBe('ok');
    const seq = arrows(t);
    const from = seq.indexOf('vmm → kvm.vcpu0 KVM_PRE_FAULT_MEMORY');
    expect(seq.slice(from, seq.indexOf('kvm.vcpu0 → vmm KVM_PRE_FAULT_MEMORY')).filter((a) => a.startsWith('kvm.vcpu0 → tdx'))).toEqual([]);
    const walk = t.deliveries.filter((d) => d.message.name === 'TDP_WALK' && d.message.from === 'kvm.vcpu0').at(-1)!.message.payload;
    expect(walk).toMatchObject({ root: 'direct', gfn: 0x800000300n });
  });

  it('a page already mapped is RET_PF_SPURIOUS: counted as done, no SEAMCALL the second time', () => {
    const step = { op: 'preFaultMemory' as const, vcpu: 0, gpa: 0x200000, size: 0x1000, expectRet: 0, expectSize: 0 };
    const t = runScenario(parseScenarioObject(preFaultInput([step, step])));
    expect(t.outcome.status).toBe('ok');
    const seq = arrows(t);
    const second = seq.lastIndexOf('vmm → kvm.vcpu0 KVM_PRE_FAULT_MEMORY');
    expect(seq.slice(second, seq.indexOf('kvm.vcpu0 → vmm KVM_PRE_FAULT_MEMORY', second)).filter((a) => a.startsWith('kvm.vcpu0 → tdx'))).toEqual([]);
    expect(returns(t, 'KVM_PRE_FAULT_MEMORY')).toEqual([
      { vcpu: 0, ret: 0, gpa: 0x201000n, size: 0n },
      { vcpu: 0, ret: 0, gpa: 0x201000n, size: 0n },
    ]);
  });

  it('during the build, a return other than the one expected fails the run naming the step, and the build goes on', () => {
    const t = runScenario(parseScenarioObject(preFaultInput([{ op: 'preFaultMemory', vcpu: 0, gpa: 0x200000, size: 0x1000, beforeFinalize: true, expectRet: 0 }])));
    expect(t.outcome.failures.map((f) => `${f.reason}: ${f.detail}`)).toEqual(['expectation failed: vmm: host[1] (KVM_PRE_FAULT_MEMORY vCPU 0 0x200000+0x1000): returned -95, expected 0 (range left 0x200000+0x1000)']);
    expect(arrows(t)).toContain('vmm → kvm.vm KVM_TDX_FINALIZE_VM');
  });

  it('a pre-fault needs the vCPU out of KVM_RUN: without a waitExit before it, the loader says so', () => {
    const yaml = `name: x\nvm: { type: tdx }\nmemslots:\n  - { gpa: 0x0, size: 0x80000000, guestMemfd: true }\nvcpus:\n  - program: [{ op: hlt }]\nhost:\n  - { op: preFaultMemory, vcpu: 0, gpa: 0x200000, size: 0x1000 }\n`;
    expect(() => parseScenarioText(yaml, 'p.yaml')).toThrow(/p\.yaml:8.*host\[0\]\.vcpu.*KVM_PRE_FAULT_MEMORY takes vcpu->mutex, which KVM_RUN holds/s);
  });

  it('racing another vCPU\'s MapGPA of a page in its range, it waits out the conversion\'s invalidation: explored clean', () => {
    const input = preFaultInput([{ op: 'preFaultMemory', vcpu: 0, gpa: 0x200000, size: 0x2000, expectRet: 0 }]);
    input.vcpus.push({ program: [{ op: 'mapGpa', gpa: 0x201000, size: 0x1000, to: 'shared' }, { op: 'hlt' }] });
    const r = explore(modelFor(parseScenarioObject(input)), defaultInvariants(), UNBOUNDED);
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 10554, terminals: 5 });
    // A probe: some schedule has the pre-fault's walk find the conversion's invalidation and retry.
    const retried: Invariant = {
      name: 'pre-fault-retried',
      description: 'the probe',
      check: (m, _before, after, d) => {
        if (d.name !== 'TDP_WALK_RESULT' || d.to !== 'kvm.vcpu0' || (d.payload as { stale?: boolean }).stale !== true) return null;
        return (actorView(after, m.indexOf.get('kvm.vcpu0')!).context as { preFault?: unknown }).preFault !== undefined ? 'the pre-fault retried' : null;
      },
    };
    expect(explore(modelFor(parseScenarioObject(input)), [retried], UNBOUNDED).violation).toMatchObject({ invariant: 'pre-fault-retried' });
  });
});
