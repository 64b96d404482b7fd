/**
 * KVM_SET_USER_MEMORY_REGION2 as a host step (machines/kvm/setMemoryRegion.ts) and the memslot update
 * protocol in kvm.vm: kvm_set_memory_region's errno table, the DELETE of memslot-delete-during-fault as a
 * message sequence (the ioctl, the KVM_MEMSLOT_INVALID copy published, synchronize_srcu over the vCPU
 * threads' kvm->srcu read sides, the zap's SEAMCALLs, the final swap), the search under policy
 * invalidMemslotEndsLocalRetry (clean and exhaustive on, a non-progress lasso that replays off), MOVE
 * and CREATE through the same path, and the loader's errors.
 */
import { describe, expect, it } from 'vitest';
import { arrows, exampleFile, payload, runScenario, type RecordedRun } from '../helpers.ts';
import { loadScenarioFile, parseScenarioObject, parseScenarioText, ScenarioError } from '../../src/scenario/load.ts';
import type { ScenarioInput } from '../../src/scenario/schema.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { modelFor, headerFor } from '../../src/session/session.ts';
import { runModelEvents } from '../../src/session/run.ts';
import { explore } from '../../src/explore/explore.ts';
import { invariantsOf } from '../../src/explore/invariants/index.ts';
import { waitCycle } from '../../src/explore/invariants/waitFor.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { initialWorld, step } from '../../src/runtime/step.ts';
import { decideMemoryRegion, type MemoryRegionRequest } from '../../machines/kvm/setMemoryRegion.ts';
import type { Memslot } from '../../machines/kvm/memslots.ts';
import { EEXIST, EINVAL, KVM_EXIT_MEMORY_FAULT, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY } from '../../src/arch/kvmApi.ts';
import { gfnDirectBits } from '../../src/arch/gpa.ts';
import type { PolicyOverrides } from '../../src/policies.ts';

const UNBOUNDED = { maxDepth: 10_000, maxStates: 1_000_000, maxMillis: Number.POSITIVE_INFINITY };
const NAME = 'memslot-delete-during-fault';
const scenarioOf = (policy: PolicyOverrides = {}) => withPolicies(loadScenarioFile(exampleFile(NAME)).scenario, policy);

describe('kvm_set_memory_region: the errno table (a TD, GPAW 48)', () => {
  // The scenario's slots as kvm.vm starts with them: ids are their index.
  const slots: Memslot[] = [
    { baseGfn: 0x0n, npages: 0x100n, guestMemfd: true },
    { baseGfn: 0x100n, npages: 0x100n, guestMemfd: true },
    { baseGfn: 0x400n, npages: 0x10n, guestMemfd: false },
  ];
  const td = { td: true, gfnDirectBits: gfnDirectBits(48) };
  const req = (r: Partial<MemoryRegionRequest>): MemoryRegionRequest => ({ slot: 3, flags: 0, guestPhysAddr: 0x800000n, memorySize: 0x10000n, guestMemfdOffset: 0n, ...r });
  const decide = (r: Partial<MemoryRegionRequest>) => {
    const d = decideMemoryRegion(slots, req(r), td);
    return 'change' in d ? d.change : d.ret;
  };

  it.each([
    ['a new slot', {}, 'KVM_MR_CREATE'],
    ['a new guest_memfd slot', { flags: KVM_MEM_GUEST_MEMFD }, 'KVM_MR_CREATE'],
    ['a new slot with dirty logging', { flags: KVM_MEM_LOG_DIRTY_PAGES }, 'KVM_MR_CREATE'],
    ['KVM_MEM_READONLY on a TD (no read-only memory with protected state)', { flags: KVM_MEM_READONLY }, EINVAL],
    ['KVM_MEM_READONLY with KVM_MEM_GUEST_MEMFD', { flags: KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD }, EINVAL],
    ['dirty logging of a guest_memfd slot', { flags: KVM_MEM_GUEST_MEMFD | KVM_MEM_LOG_DIRTY_PAGES }, EINVAL],
    ['an unknown flag', { flags: 1 << 3 }, EINVAL],
    ['slot id KVM_USER_MEM_SLOTS (32764)', { slot: 32764 }, EINVAL],
    ['address space 1 (no SMM for a TD)', { slot: 0x10003 }, EINVAL],
    ['an unaligned guest_phys_addr', { guestPhysAddr: 0x800800n }, EINVAL],
    ['an unaligned memory_size', { memorySize: 0x10800n }, EINVAL],
    ['an unaligned guest_memfd_offset', { flags: KVM_MEM_GUEST_MEMFD, guestMemfdOffset: 0x200n }, EINVAL],
    ['a slot overlapping slot 1', { guestPhysAddr: 0x1ff000n }, EEXIST],
    ['a slot reaching the shared bit (kvm_is_gfn_alias)', { guestPhysAddr: 0x7ffffff00000n, memorySize: 0x200000n }, EINVAL],
    ['deleting a slot that does not exist', { memorySize: 0n }, EINVAL],
    ['deleting slot 1', { slot: 1, memorySize: 0n }, 'KVM_MR_DELETE'],
    ['moving slot 2 (no guest_memfd)', { slot: 2, guestPhysAddr: 0x500000n }, 'KVM_MR_MOVE'],
    ['moving slot 2 onto slot 1', { slot: 2, guestPhysAddr: 0x100000n }, EEXIST],
    ['dirty logging on slot 2', { slot: 2, guestPhysAddr: 0x400000n, flags: KVM_MEM_LOG_DIRTY_PAGES }, 'KVM_MR_FLAGS_ONLY'],
    ['slot 2 again as it is', { slot: 2, guestPhysAddr: 0x400000n }, 'none'],
    ['resizing slot 2', { slot: 2, guestPhysAddr: 0x400000n, memorySize: 0x20000n }, EINVAL],
    ['moving guest_memfd slot 1 (private memslots are immutable)', { slot: 1, guestPhysAddr: 0x900000n, memorySize: 0x100000n, flags: KVM_MEM_GUEST_MEMFD }, EINVAL],
    ['slot 1 without KVM_MEM_GUEST_MEMFD (toggling it)', { slot: 1, guestPhysAddr: 0x900000n, memorySize: 0x100000n }, EINVAL],
    ['KVM_MEM_GUEST_MEMFD added to slot 2', { slot: 2, guestPhysAddr: 0x400000n, flags: KVM_MEM_GUEST_MEMFD }, EINVAL],
  ] as const)('%s → %s', (_what, r, want) => {
    expect(decide(r)).toBe(want);
  });

  it('a VMX guest may have a read-only slot, and no guest_memfd', () => {
    const vmx = { td: false, gfnDirectBits: 0n };
    expect(decideMemoryRegion(slots, req({ flags: KVM_MEM_READONLY }), vmx)).toMatchObject({ ret: 0, change: 'KVM_MR_CREATE' });
    expect(decideMemoryRegion(slots, req({ flags: KVM_MEM_GUEST_MEMFD }), vmx)).toMatchObject({ ret: EINVAL });
  });
});

/** The example's host steps replaced by `host`; the guest halts at once. */
function hostOnly(host: ScenarioInput['host']) {
  return parseScenarioObject({
    name: 'slots',
    vm: { type: 'tdx', attributes: ['SEPT_VE_DISABLE'] },
    memslots: [
      { gpa: 0, size: 0x100000, guestMemfd: true },
      { gpa: 0x100000, size: 0x100000, guestMemfd: true },
    ],
    vcpus: [{ program: [{ op: 'hlt' }] }],
    host,
  });
}
const swaps = (r: RecordedRun) => r.deliveries.filter((d) => d.message.name === 'MEMSLOTS_SWAP').map((d) => (d.message.payload as { memslots: Memslot[] }).memslots.map((s) => `${s.id}:${s.baseGfn.toString(16)}${s.invalid ? '!' : ''}`).join(' '));

describe('host steps: KVM_SET_USER_MEMORY_REGION2 with its return checked', () => {
  it('the errors come back as the ioctl\'s return, and nothing is published for them', () => {
    const r = runScenario(
      hostOnly([
        { op: 'setMemoryRegion', slot: 1, gpa: 0x100000, size: 0x100000, flags: ['KVM_MEM_GUEST_MEMFD'], expectRet: -22 },
        { op: 'setMemoryRegion', slot: 5, gpa: 0x80000, size: 0x10000, expectRet: -17 },
        { op: 'setMemoryRegion', slot: 5, gpa: 0x300000, size: 0x10000, flags: ['KVM_MEM_READONLY'], expectRet: -22 },
        { op: 'setMemoryRegion', slot: 7, gpa: 0, size: 0, expectRet: -22 },
      ]),
    );
    expect(r.outcome.status).toBe('ok');
    const rets = r.deliveries.filter((d) => d.message.name === 'KVM_SET_USER_MEMORY_REGION2' && d.message.to === 'vmm').map((d) => (d.message.payload as { ret: number }).ret);
    expect(rets).toEqual([EINVAL, EEXIST, EINVAL, EINVAL]);
    expect(swaps(r)).toEqual([]);
  });

  it('CREATE publishes once, MOVE publishes the INVALID copy then the moved slot, each followed by synchronize_srcu', () => {
    const r = runScenario(
      hostOnly([
        { op: 'setMemoryRegion', slot: 2, gpa: 0x300000, size: 0x10000, expectRet: 0 },
        { op: 'setMemoryRegion', slot: 2, gpa: 0x400000, size: 0x10000, expectRet: 0 },
        { op: 'setMemoryRegion', slot: 2, gpa: 0x400000, size: 0x10000, flags: ['KVM_MEM_LOG_DIRTY_PAGES'], expectRet: 0 },
        { op: 'setMemoryRegion', slot: 2, gpa: 0x400000, size: 0, expectRet: 0 },
      ]),
    );
    expect(r.outcome.status).toBe('ok');
    expect(swaps(r)).toEqual(['0:0 1:100 2:300', '0:0 1:100 2:300!', '0:0 1:100 2:400', '0:0 1:100 2:400', '0:0 1:100 2:400!', '0:0 1:100']);
    expect(r.deliveries.filter((d) => d.message.name === 'SYNCHRONIZE_SRCU')).toHaveLength(6);
  });

  it('a return other than the one expected is a failure naming the step', () => {
    const r = runScenario(hostOnly([{ op: 'setMemoryRegion', slot: 1, gpa: 0x100000, size: 0, expectRet: -22 }]));
    expect(r.outcome.status).toBe('failure');
    expect(r.text).toContain('vmm: host[0] (KVM_SET_USER_MEMORY_REGION2 slot 1 delete): returned 0, expected -22');
  });
});

describe('a memslot update and a conversion for a vCPU\'s exit: one ioctl at a time, as slots_lock serialises them', () => {
  const s = parseScenarioObject({
    name: 'region-vs-conversion',
    vm: { type: 'tdx', attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x100000, guestMemfd: true }],
    // The shared alias of a private page: KVM_EXIT_MEMORY_FAULT, which the VMM converts (kvm_convert_memory).
    vcpus: [{ program: [{ op: 'load', gpa: '0x800000001000', size: 8, reg: 'rax' }, { op: 'hlt' }] }],
    host: [
      { op: 'setMemoryRegion', slot: 1, gpa: 0x200000, size: 0x10000, expectRet: 0 },
      { op: 'setMemoryRegion', slot: 1, gpa: 0x200000, size: 0, expectRet: 0 },
    ],
  });

  it('explores clean and exhaustive: 2241 states; kvm.vm never gets one ioctl while it runs the other', () => {
    expect(explore(modelFor(s), invariantsOf(s.invariants), UNBOUNDED)).toMatchObject({ status: 'clean', exhaustive: true, states: 2241 });
  });
});

describe(`${NAME}: the DELETE while the guest accepts and reads a page of the slot`, () => {
  const r = runScenario(scenarioOf());
  const seq = arrows(r);
  const KVM_VM = ['KVM_SET_USER_MEMORY_REGION2', 'MEMSLOTS_SWAP', 'SYNCHRONIZE_SRCU', 'SRCU_QUIESCENT', 'MMU_LOCK_WRITE', 'TDP_LEAF_SCAN', 'TDH.MEM.RANGE.BLOCK', 'TDH.MEM.TRACK', 'KVM_REQ_OUTSIDE_GUEST_MODE', 'TDH.MEM.PAGE.REMOVE', 'KVM_REQ_TLB_FLUSH', 'MMU_UNLOCK'];

  it('in order: the ioctl, the INVALID copy, synchronize_srcu, the zap\'s SEAMCALLs under write mmu_lock, the final swap, synchronize_srcu, the return', () => {
    const start = seq.indexOf('vmm → kvm.vm KVM_SET_USER_MEMORY_REGION2');
    const end = seq.indexOf('kvm.vm → vmm KVM_SET_USER_MEMORY_REGION2');
    expect([start, end]).toEqual([176, 245]);
    const vm = r.deliveries.slice(start, end + 1).filter((d) => d.message.from === 'kvm.vm' && KVM_VM.includes(d.message.name)).map((d) => `${d.message.to} ${d.message.name}`);
    expect(vm).toEqual([
      'kvm.mmu MEMSLOTS_SWAP',
      'kvm.vcpu0 SYNCHRONIZE_SRCU',
      'kvm.mmu MMU_LOCK_WRITE',
      'kvm.mmu TDP_LEAF_SCAN',
      'tdx TDH.MEM.RANGE.BLOCK',
      'tdx TDH.MEM.TRACK',
      'kvm.vcpu0 KVM_REQ_OUTSIDE_GUEST_MODE',
      'tdx TDH.MEM.PAGE.REMOVE',
      'kvm.mmu TDP_LEAF_SCAN',
      'kvm.vcpu0 KVM_REQ_TLB_FLUSH',
      'kvm.mmu MMU_UNLOCK',
      'kvm.mmu MEMSLOTS_SWAP',
      'kvm.vcpu0 SYNCHRONIZE_SRCU',
      'vmm KVM_SET_USER_MEMORY_REGION2',
    ]);
    // payload() counts steps from 1: the ioctl is step 177, the INVALID copy step 179.
    expect(payload(r, start + 3)).toMatchObject({ vcpu: -1, generation: 3, memslots: [{ baseGfn: 0n, id: 0 }, { baseGfn: 0x100n, id: 1, invalid: true }] });
    // The zap without an invalidation (kvm_mmu_zap_memslot), mirror root first, then the direct root.
    const scans = r.deliveries.filter((d, i) => i > start && i < end && d.message.name === 'TDP_LEAF_SCAN').map((d) => d.message.payload);
    expect(scans).toEqual([
      { vcpu: -1, root: 'mirror', gfnStart: 0x100n, gfnEnd: 0x200n, invalidate: false },
      { vcpu: -1, root: 'direct', gfnStart: 0x100n, gfnEnd: 0x200n, invalidate: false },
    ]);
    expect(r.deliveries.find((d, i) => i > start && d.message.name === 'TDH.MEM.RANGE.BLOCK')!.message.payload).toMatchObject({ RCX: 0x100000n });
    expect(payload(r, end + 1)).toEqual({ ret: 0 });
  });

  it('the vCPU reports its quiescent state from the guest; its fault meanwhile finds the slot invalid and re-enters', () => {
    const faultins = r.deliveries.filter((d) => d.message.name === 'FAULTIN_RESULT' && (d.message.payload as { gfn: bigint }).gfn === 0x101n).map((d) => (d.message.payload as { slot: string }).slot);
    expect(faultins).toEqual(['invalid', 'invalid', 'none']);
    expect(seq.filter((s) => s === 'kvm.vcpu0 → kvm.vm SRCU_QUIESCENT')).toHaveLength(2);
  });

  it('the private access without a slot exits with KVM_EXIT_MEMORY_FAULT, which the host program expects; the run ends ok', () => {
    const exit = r.deliveries.find((d) => d.message.name === 'KVM_EXIT_MEMORY_FAULT')!;
    expect(exit.message.payload).toEqual({ vcpu: 0, exit_reason: KVM_EXIT_MEMORY_FAULT, gpa: 0x101000n, size: 0x1000n, flags: KVM_MEMORY_EXIT_FLAG_PRIVATE });
    expect(r.outcome.status).toBe('ok');
    expect(r.deliveries).toHaveLength(361);
  });

  it('upstream (v6.18): clean and exhaustive, 54907 states, 12 end states', () => {
    const s = scenarioOf();
    expect(explore(modelFor(s), invariantsOf(s.invariants), UNBOUNDED)).toMatchObject({ status: 'clean', exhaustive: true, states: 54907, terminals: 12 });
  });

  it('switch off: the local retry spins on the invalid slot with kvm->srcu held; non-progress, as a lasso that replays', () => {
    const scenario = scenarioOf({ invalidMemslotEndsLocalRetry: false });
    const model = modelFor(scenario);
    const v = explore(model, invariantsOf(scenario.invariants), UNBOUNDED).violation!;
    expect(v.invariant).toBe('non-progress');
    expect(v.choices).toHaveLength(195);
    expect(v.lasso).toMatchObject({ loopStart: 191, starving: 'guest.vcpu0' });
    expect(v.detail).toBe(
      'kvm.vcpu0 repeats MMU_INVALIDATE_SEQ_READ, FAULTIN forever (4 steps a turn); guest.vcpu0 never retires TDG.MEM.PAGE.ACCEPT of 0x101000 at 4K (RIP 0xffffffff81000000)',
    );
    // Along the loop kvm.vm waits in synchronize_srcu for a thread that is running: no wait-for cycle.
    let w = initialWorld(model);
    for (const ch of v.choices) w = step(model, w, ch).world;
    expect((w.snapshots[model.indexOf.get('kvm.vm')!]!.context as { srcuWaiting: number[] }).srcuWaiting).toEqual([0]);
    expect(waitCycle(model, w)).toBeNull();
    // The graph does know the wait: were the reader itself blocked behind the updater (here, queued on an
    // mmu_lock that kvm.vm would hold), the cycle is named with synchronize_srcu in it.
    const mmu = model.indexOf.get('kvm.mmu')!;
    const blocked = {
      ...w,
      pending: w.pending.filter((m) => m.to !== 'kvm.vcpu0' && m.to !== 'kvm.vm' && m.to !== 'kvm.mmu'),
      snapshots: w.snapshots.map((sn, i) => (i === mmu ? ({ ...sn, context: { ...(sn.context as object), lock: { writer: 'kvm.vm', readers: [], waiters: [{ actor: 'kvm.vcpu0', mode: 'read' }] } } } as typeof sn) : sn)),
    };
    expect(waitCycle(model, blocked)).toBe('kvm.vcpu0 (waits for mmu_lock for read) → kvm.vm (waits for synchronize_srcu(&kvm->srcu)) → kvm.vcpu0');
    const file = `${NAME}.counterexample.log.jsonl`;
    const writer = MemoryLogWriter.open(headerFor(scenario, `examples/${NAME}/scenario.yaml`, { kind: 'explore' }), file);
    runModelEvents(model, scenario, { choices: v.choices, maxSteps: v.choices.length, log: writer, violation: { invariant: v.invariant, detail: v.detail }, lasso: v.lasso! }).subscribe(() => {});
    writer.close();
    expect(replayLog(parseLogText(writer.text(), file), file, { verify: true }).verified).toBe(true);
  });
});

describe('scenario errors', () => {
  const parseError = (text: string) => {
    try {
      parseScenarioText(text, 's.yaml');
    } catch (e) {
      if (e instanceof ScenarioError) return e.message;
      throw e;
    }
    throw new Error('expected a ScenarioError');
  };
  const with_ = (vm: string, step: string) =>
    ['name: s', `vm: { type: ${vm} }`, 'memslots: [{ gpa: 0x0, size: 0x100000 }]', 'vcpus:', '  - program: [{ op: hlt }]', 'host:', `  - ${step}`, ''].join('\n');

  it('a flag KVM_SET_USER_MEMORY_REGION2 does not have', () => {
    expect(parseError(with_('tdx', '{ op: setMemoryRegion, slot: 0, gpa: 0x0, size: 0x0, flags: [KVM_MEM_EXEC] }'))).toMatch(/^s\.yaml:7:\d+: host\[0\]\.flags\[0\]: /);
  });

  it('the host step is modelled for a TD only', () => {
    expect(parseError(with_('vmx', '{ op: setMemoryRegion, slot: 0, gpa: 0x0, size: 0x0 }'))).toBe('s.yaml:7:11: host[0].op: KVM_SET_USER_MEMORY_REGION2 as a host step is modelled for a TD (vm.type "tdx")');
  });
});
