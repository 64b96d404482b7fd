/**
 * The guest kernel's memory side (machines/guest/guestKernel.ts): page tables whose PTE carries the shared
 * bit, accept_memory with the unaccepted bitmap and accepting_list, set_memory_encrypted/decrypted in
 * Linux's order, load_unaligned_zeropad and its fixup, unsafe contexts. Each example's message sequence and
 * the state after it, the search under each policy (clean and exhaustive with upstream's, a minimised
 * counterexample that replays with --verify with the switch off), and the scenario errors.
 */
import { describe, expect, it } from 'vitest';
import { arrows, exampleFile, payload, runScenario, type RecordedRun } from '../helpers.ts';
import { loadScenarioFile, parseScenarioText, ScenarioError } from '../../src/scenario/load.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { modelFor, headerFor } from '../../src/session/session.ts';
import { runModelEvents } from '../../src/session/run.ts';
import { explore } from '../../src/explore/explore.ts';
import { invariantsOf, defaultInvariants, noVeInUnsafeContext } from '../../src/explore/invariants/index.ts';
import { minimise } from '../../src/explore/minimise.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import type { GuestKernelContext } from '../../machines/guest/guestKernel.ts';
import type { GuestVcpuContext } from '../../machines/guest/guestVcpu.ts';
import type { PolicyOverrides } from '../../src/policies.ts';

const UNBOUNDED = { maxDepth: 10_000, maxStates: 1_000_000, maxMillis: Number.POSITIVE_INFINITY };

const scenarioOf = (name: string, policy: PolicyOverrides = {}) => withPolicies(loadScenarioFile(exampleFile(name)).scenario, policy);
const run = (name: string, policy: PolicyOverrides = {}) => runScenario(scenarioOf(name, policy));
const ctx = <T>(r: RecordedRun, actor: string, step = r.deliveries.length): T => actorView(r.deliveries[step - 1]!.world, r.model.indexOf.get(actor)!).context as T;
const seqOf = (r: RecordedRun, from: string, names: readonly string[]) =>
  r.deliveries.filter((d) => (d.message.from === from || d.message.to === from) && names.includes(d.message.name)).map((d) => `${d.message.from} → ${d.message.to} ${d.message.name}`);

function cleanSearch(name: string) {
  const s = scenarioOf(name);
  return explore(modelFor(s), invariantsOf(s.invariants), UNBOUNDED);
}

/** With `policy`: the violation, minimised, written as an explore log and replayed with --verify. */
function counterexample(name: string, policy: PolicyOverrides) {
  const scenario = scenarioOf(name, policy);
  const model = modelFor(scenario);
  const invariants = invariantsOf(scenario.invariants);
  const found = explore(model, invariants, UNBOUNDED).violation!;
  const inv = invariants.find((i) => i.name === found.invariant)!;
  const m = minimise(model, inv, { maxStates: 1_000_000, maxDepth: found.choices.length });
  if (m.status !== 'minimal') throw new Error(`not minimised: ${m.status}`);
  const { choices, preemptions, detail } = m.counterexample;
  const file = `${name}.counterexample.log.jsonl`;
  const writer = MemoryLogWriter.open(headerFor(scenario, `examples/${name}/scenario.yaml`, { kind: 'explore' }), file);
  runModelEvents(model, scenario, { choices, maxSteps: choices.length, log: writer, violation: { invariant: inv.name, detail } }).subscribe(() => {});
  writer.close();
  const replay = replayLog(parseLogText(writer.text(), file), file, { verify: true });
  return { invariant: found.invariant, steps: choices.length, preemptions, detail, replay };
}

describe('lazy-accept-same-unit: accept_memory with accepting_list (policy acceptingListUnitGranular)', () => {
  const r = run('lazy-accept-same-unit');

  it('vCPU 1 waits on the accepting_list entry of vCPU 0, which accepts the whole 16K unit; vCPU 1 then finds nothing to accept', () => {
    const k = seqOf(r, 'guest.kernel', ['ACCEPT_MEMORY_BEGIN', 'ACCEPT_MEMORY_CLEAR', 'ACCEPT_MEMORY_RANGE']);
    expect(k).toEqual([
      'guest.vcpu0 → guest.kernel ACCEPT_MEMORY_BEGIN',
      'guest.vcpu1 → guest.kernel ACCEPT_MEMORY_BEGIN',
      'guest.kernel → guest.vcpu0 ACCEPT_MEMORY_RANGE',
      'guest.vcpu0 → guest.kernel ACCEPT_MEMORY_CLEAR',
      'guest.kernel → guest.vcpu0 ACCEPT_MEMORY_RANGE',
      'guest.kernel → guest.vcpu1 ACCEPT_MEMORY_RANGE',
    ]);
    const ranges = r.deliveries.filter((d) => d.message.name === 'ACCEPT_MEMORY_RANGE').map((d) => d.message.payload);
    expect(ranges).toEqual([
      { vcpu: 0, physStart: 0x200000n, physEnd: 0x204000n },
      { vcpu: 0, physStart: null, physEnd: null },
      { vcpu: 1, physStart: null, physEnd: null },
    ]);
    const accepts = r.deliveries.filter((d) => d.message.name === 'TDG.MEM.PAGE.ACCEPT' && d.message.to === 'tdx').map((d) => `${d.message.from} ${(d.message.payload as { RCX: bigint }).RCX.toString(16)}`);
    // Each page's first ACCEPT exits for KVM to AUG it; the TDCALL runs again after the entry.
    expect([...new Set(accepts)]).toEqual(['hw.cpu0 200000', 'hw.cpu0 201000', 'hw.cpu0 202000', 'hw.cpu0 203000']);
    expect(r.outcome.status).toBe('ok');
  });

  it('state: while vCPU 1 waits, the list holds vCPU 0\'s unit range and vCPU 1 runs with interrupts off; at the end the bitmap is clear', () => {
    const waiting = arrows(r).indexOf('guest.vcpu1 → guest.kernel ACCEPT_MEMORY_BEGIN') + 2;
    const k = ctx<GuestKernelContext>(r, 'guest.kernel', waiting);
    expect(k.acceptingList).toEqual([{ vcpu: 0, start: 0n, end: 1n, physStart: 0n, physEnd: 0x1000n }]);
    expect(k.retrying).toEqual([{ vcpu: 1, start: 0x202000n, end: 0x203000n }]);
    expect(k.unaccepted).toEqual({ physBase: 0x200000n, unitSize: 0x4000n, bitmap: '1' });
    expect(ctx<GuestVcpuContext>(r, 'guest.vcpu1', waiting).irqsDisabled).toBe(true);
    const end = ctx<GuestKernelContext>(r, 'guest.kernel');
    expect([end.unaccepted!.bitmap, end.acceptingList, end.retrying]).toEqual(['0', [], []]);
    expect(ctx<GuestVcpuContext>(r, 'guest.vcpu1').irqsDisabled).toBe(false);
  });

  it('the page tables map the direct map with PAGE_KERNEL and no shared bit; the store goes to the GPA its PTE names', () => {
    const k = ctx<GuestKernelContext>(r, 'guest.kernel');
    expect(k.pageTables['0xffff888000202000']).toEqual({ pte: 0x8000000000202063n, gpa: 0x202000n, shared: false });
    const store = arrows(r).indexOf('guest.vcpu0 → hw.cpu0 STORE') + 1;
    expect(payload(r, store)).toMatchObject({ gla: 0xffff888000200000n, gpa: 0x200000n, value: 0x1111n });
  });

  it('upstream: clean and exhaustive (4790 states)', () => {
    expect(cleanSearch('lazy-accept-same-unit')).toMatchObject({ status: 'clean', exhaustive: true, states: 4790 });
  });

  it('v1 posting (byte ranges on the list): both vCPUs accept the unit and one panics (137 steps, 1 preemption)', () => {
    const c = counterexample('lazy-accept-same-unit', { acceptingListUnitGranular: false });
    expect(c).toMatchObject({ invariant: 'no-failure', steps: 137, preemptions: 1 });
    expect(c.detail).toBe('guest panic: guest.vcpu1: TDX: Failed to accept memory (at 0x200000)');
    expect(c.replay.verified).toBe(true);
  });
});

describe('zeropad-past-accepted: load_unaligned_zeropad after accept_memory (policy acceptMemoryPastEnd)', () => {
  it('accept_memory of a whole unit accepts the next one too; both halves of the load read accepted pages', () => {
    const r = run('zeropad-past-accepted');
    const range = r.deliveries.find((d) => d.message.name === 'ACCEPT_MEMORY_RANGE')!.message.payload;
    expect(range).toEqual({ vcpu: 0, physStart: 0x200000n, physEnd: 0x208000n });
    const loads = r.deliveries.filter((d) => d.message.name === 'LOAD').map((d) => d.message.payload);
    expect(loads).toMatchObject([
      { gla: 0xffff888000203ffcn, gpa: 0x203ffcn, size: 4, length: 3 },
      { gla: 0xffff888000204000n, gpa: 0x204000n, size: 4, length: 3 },
    ]);
    expect(ctx<GuestKernelContext>(r, 'guest.kernel').unaccepted!.bitmap).toBe('00');
    expect(r.outcome.status).toBe('ok');
  });

  it('upstream: clean and exhaustive (662 states)', () => {
    expect(cleanSearch('zeropad-past-accepted')).toMatchObject({ status: 'clean', exhaustive: true, states: 662 });
  });

  it('before c211c19e80d0: the stray half touches unaccepted 0x204000 and KVM kills the TD (230 steps)', () => {
    const r = run('zeropad-past-accepted', { acceptMemoryPastEnd: false });
    expect(r.deliveries.find((d) => d.message.name === 'ACCEPT_MEMORY_RANGE')!.message.payload).toEqual({ vcpu: 0, physStart: 0x200000n, physEnd: 0x204000n });
    const c = counterexample('zeropad-past-accepted', { acceptMemoryPastEnd: false });
    expect(c).toMatchObject({ invariant: 'no-failure', steps: 230, preemptions: 0 });
    expect(c.detail).toBe('VM dead: kvm.vcpu0: Guest access before accepting 0x204000 on vCPU 0: VM marked dead, KVM_RUN returns -EIO (§6.ii B.3)');
    expect(c.replay.verified).toBe(true);
  });
});

describe('set-memory-encrypted-order: __set_memory_enc_pgtable and TDX (policy tdxEncStatusChangePrepare)', () => {
  const CONVERSION = ['GUEST_PTE_WRITE', 'TDG.VP.VMCALL<MapGPA>', 'TDG.MEM.PAGE.ACCEPT'];
  const order = (r: RecordedRun) => {
    const seen = r.deliveries.filter((d) => d.message.from === 'guest.vcpu0' && CONVERSION.includes(d.message.name)).map((d) => {
      const p = d.message.payload as { pte?: bigint; R12?: bigint; RCX?: bigint };
      return `${d.message.name} ${(p.pte ?? p.R12 ?? p.RCX)!.toString(16)}`;
    });
    return seen.filter((s, i) => s !== seen[i - 1]); // a TDCALL that exits runs again: count it once
  };

  it('private → shared: PTE gets the shared bit, then MapGPA; shared → private: MapGPA, ACCEPT, then the PTE loses it', () => {
    const r = run('set-memory-encrypted-order');
    expect(order(r)).toEqual([
      'TDG.MEM.PAGE.ACCEPT 301000',
      'GUEST_PTE_WRITE 8000800000301063',
      'TDG.VP.VMCALL<MapGPA> 800000301000',
      'TDG.VP.VMCALL<MapGPA> 301000',
      'TDG.MEM.PAGE.ACCEPT 301000',
      'GUEST_PTE_WRITE 8000000000301063',
    ]);
    const k = ctx<GuestKernelContext>(r, 'guest.kernel');
    expect(k.pageTables['0xffff888000301000']).toEqual({ pte: 0x8000000000301063n, gpa: 0x301000n, shared: false });
    // The store between the conversions went to the shared alias; the page came back zeroed (a new AUG).
    expect(r.deliveries.filter((d) => d.message.name === 'STORE').map((d) => (d.message.payload as { gpa: bigint }).gpa)).toEqual([0x301000n, 0x800000301000n, 0x800000301000n]);
    expect(ctx<GuestVcpuContext>(r, 'guest.vcpu0').regs.rax).toBe(0n);
    expect(r.outcome.status).toBe('ok');
  });

  it('upstream: clean and exhaustive (666 states)', () => {
    expect(cleanSearch('set-memory-encrypted-order')).toMatchObject({ status: 'clean', exhaustive: true, states: 666 });
  });

  it('before 195edce08b63: the PTE turns private before MapGPA, a private mapping of a shared page (197 steps)', () => {
    const r = run('set-memory-encrypted-order', { tdxEncStatusChangePrepare: false });
    expect(order(r).slice(3)).toEqual(['GUEST_PTE_WRITE 8000000000301063', 'TDG.VP.VMCALL<MapGPA> 301000', 'TDG.MEM.PAGE.ACCEPT 301000']);
    const c = counterexample('set-memory-encrypted-order', { tdxEncStatusChangePrepare: false });
    expect(c).toMatchObject({ invariant: 'guest-pte-matches-attribute', steps: 197, preemptions: 0 });
    expect(c.detail).toBe(
      "guest PTE for va 0xffff888000301000 = 0x8000000000301063 maps GPA 0x301000 private, but KVM's attribute for GFN 0x301 is shared (after guest.vcpu0 → guest.kernel GUEST_PTE_WRITE)",
    );
    expect(c.replay.verified).toBe(true);
  });
});

describe('syscall-gap-no-ve: no #VE in an unsafe context', () => {
  it('the MMIO #VE comes after the gap: clean and exhaustive', () => {
    expect(cleanSearch('syscall-gap-no-ve')).toMatchObject({ status: 'clean', exhaustive: true });
    const r = run('syscall-gap-no-ve');
    const ve = arrows(r).indexOf('hw.cpu0 → guest.vcpu0 #VE') + 1;
    expect(ctx<GuestVcpuContext>(r, 'guest.vcpu0', ve).unsafeContext).toBeNull();
    expect(ctx<GuestVcpuContext>(r, 'guest.vcpu0').regs).toMatchObject({ rbx: 0x7cb0n, rax: 0x1af41000n });
  });

  it('the same MMIO load inside the gap: no-ve-in-unsafe-context names the vCPU, the context and the RIP', () => {
    const s = loadScenarioFile(exampleFile('syscall-gap-no-ve')).scenario;
    const [enter, priv, leave, mmio] = s.vcpus[0]!.program;
    const inGap = { ...s, vcpus: [{ ...s.vcpus[0]!, program: [enter!, priv!, mmio!, leave!] }] };
    const r = explore(modelFor(inGap), [...defaultInvariants(), noVeInUnsafeContext], UNBOUNDED);
    expect(r.violation).toMatchObject({ invariant: 'no-ve-in-unsafe-context', detail: 'guest.vcpu0 takes a #VE in the syscall-gap at RIP 0xffffffff81000003: the kernel cannot handle it there' });
  });
});

describe('load_unaligned_zeropad fixups', () => {
  const base = (va: string, extra = '') =>
    [
      'name: z',
      'vm: { type: tdx, gpaw: 48, attributes: [SEPT_VE_DISABLE] }',
      'memslots: [{ gpa: 0x0, size: 0x80000000, guestMemfd: true }]',
      'devices: [{ name: regs, kind: mmio-regs, gpa: 0xfe000000, size: 0x1000 }]',
      'image: [{ gpa: 0x300000, words: { 0xff8: 0x8877665544332211 } }]',
      'guestKernel:',
      '  directMap: [{ gpa: 0x300000, size: 0x1000 }' + extra + ']',
      'vcpus:',
      `  - program: [{ op: loadUnalignedZeropad, va: ${va}, reg: rax }]`,
      '',
    ].join('\n');

  it('the next page is not mapped: the #PF is fixed up with the first page\'s 4 bytes, the rest zero', () => {
    const r = runScenario(parseScenarioText(base('0xffff888000300ffc'), 'z.yaml'));
    expect(r.deliveries.filter((d) => d.message.name === 'LOAD')).toHaveLength(1);
    expect(ctx<GuestVcpuContext>(r, 'guest.vcpu0').regs.rax).toBe(0x88776655n);
    expect(r.outcome.status).toBe('ok');
  });

  // The next page mapped shared onto MMIO: examples/zeropad-into-mmio (below).
});

describe('scenario errors', () => {
  const td = (program: string, extra = '') =>
    ['name: s', 'vm: { type: tdx, gpaw: 48 }', 'memslots: [{ gpa: 0x0, size: 0x80000000, guestMemfd: true }]', extra, 'vcpus:', `  - program: [${program}]`, ''].filter((l) => l !== '').join('\n');
  const parseError = (text: string) => {
    try {
      parseScenarioText(text, 's.yaml');
    } catch (e) {
      if (e instanceof ScenarioError) return e.message;
      throw e;
    }
    throw new Error('expected a ScenarioError');
  };

  it('a load names gpa or va, not both', () => {
    expect(parseError(td('{ op: load, gpa: 0x1000, va: 0xffff888000001000, size: 8 }', 'guestKernel: {}'))).toBe(
      's.yaml:6:44: vcpus[0].program[0].va: give either gpa (the address as is) or va (through the guest page tables), not both',
    );
  });

  it('a va needs the guest kernel section; accept_memory needs its unaccepted table', () => {
    expect(parseError(td('{ op: load, va: 0xffff888000001000, size: 8 }'))).toBe(
      's.yaml:5:31: vcpus[0].program[0].va: load through a va needs the guest kernel\'s memory data: a TD (vm.type "tdx") with a guestKernel section',
    );
    expect(parseError(td('{ op: acceptMemory, gpa: 0x200000, size: 0x1000 }', 'guestKernel: {}'))).toBe(
      's.yaml:6:40: vcpus[0].program[0].gpa: accept_memory consults the unaccepted-memory table: add guestKernel.unaccepted',
    );
  });

  it('load_unaligned_zeropad is modelled 4 bytes before a page end', () => {
    expect(parseError(td('{ op: loadUnalignedZeropad, va: 0xffff888000300ff8 }', 'guestKernel: {}'))).toBe(
      's.yaml:6:47: vcpus[0].program[0].va: load_unaligned_zeropad is modelled 4 bytes before a page end: va must end in 0xffc',
    );
  });
});

describe('flag-handoff-shared-page: two vCPUs synchronise through a guest memory word', () => {
  it('vCPU 1 spins on the flag through the S-EPT, then reads the message through the shared PTE vCPU 0 wrote', () => {
    const r = run('flag-handoff-shared-page');
    const loads = r.deliveries.filter((d) => d.message.name === 'LOAD' && d.message.from === 'guest.vcpu1').map((d) => d.message.payload as { gpa: bigint; rip: bigint; length: number });
    expect(loads.at(-1)).toMatchObject({ gpa: 0x800000301000n, rip: 0xffffffff81000009n });
    // Every spin is the loop's mov at the loop's RIP: `mov ecx, [rdi]` (2 bytes) + `cmp ecx, 1` (3D id, 5) + `jne` (2) = 9.
    expect(loads.slice(0, -1).every((l) => l.gpa === 0x300000n && l.rip === 0xffffffff81000000n && l.length === 2)).toBe(true);
    expect(ctx<GuestVcpuContext>(r, 'guest.vcpu1').regs).toMatchObject({ rcx: 1n, rax: 0x4d5347n });
  });

  it('in every interleaving the message read after the flag is the one written before it: clean and exhaustive (31948 states)', () => {
    const s = scenarioOf('flag-handoff-shared-page');
    const model = modelFor(s);
    const handoff = {
      name: 'message-after-flag',
      description: "vCPU 1's read of the page after the flag returns vCPU 0's message",
      check(_m: unknown, _b: unknown, _a: unknown, d: { name: string; to: string; payload: unknown }) {
        const p = d.payload as { rip?: bigint; value?: bigint };
        return d.name === 'RETIRE' && d.to === 'guest.vcpu1' && p.rip === 0xffffffff81000009n && p.value !== 0x4d5347n ? `read ${p.value}` : null;
      },
    };
    expect(explore(model, [...invariantsOf(s.invariants), handoff as never], UNBOUNDED)).toMatchObject({ status: 'clean', exhaustive: true, states: 31948 });
  });
});

describe('zeropad-into-mmio: the page-cross check in handle_mmio (policy mmioRejectsPageCross)', () => {
  it('upstream: the MMIO #VE of the second half goes to the fixup; rax = the first page\'s 4 bytes; clean and exhaustive (547 states)', () => {
    const r = run('zeropad-into-mmio');
    expect(arrows(r).some((a) => a.includes('RequestMMIO') || a.includes('KVM_EXIT_MMIO'))).toBe(false);
    expect(ctx<GuestVcpuContext>(r, 'guest.vcpu0').regs.rax).toBe(0x88776655n);
    expect(cleanSearch('zeropad-into-mmio')).toMatchObject({ status: 'clean', exhaustive: true, states: 547 });
  });

  it('before 1e7769653b06: handle_mmio emulates the 8-byte mov at the second page; the VMM answers its register (219 steps)', () => {
    const r = run('zeropad-into-mmio', { mmioRejectsPageCross: false });
    const exit = r.deliveries.find((d) => d.message.name === 'KVM_EXIT_MMIO')!.message.payload;
    expect(exit).toMatchObject({ phys_addr: 0x301000n, len: 8, is_write: 0 });
    expect(ctx<GuestVcpuContext>(r, 'guest.vcpu0').regs.rax).toBe(0x1af41000n);
    const c = counterexample('zeropad-into-mmio', { mmioRejectsPageCross: false });
    expect(c).toMatchObject({ invariant: 'mmio-within-page', steps: 219, preemptions: 0 });
    expect(c.detail).toBe(
      'guest.vcpu0 asks the VMM to emulate a 8-byte MMIO access for the instruction at RIP 0xffffffff81000000, whose access at 0xffff888000300ffc crosses into the next page: memory taken for MMIO',
    );
    expect(c.replay.verified).toBe(true);
  });
});
