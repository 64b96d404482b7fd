/**
 * TD teardown (§5b.4) after an ACPI power-off: the guest's `out` to PM1a_CNT is a #VE, the handler sends
 * TDG.VP.VMCALL<Instruction.IO>, KVM exits to the VMM with KVM_EXIT_IO; the VMM signals every vCPU thread
 * still in KVM_RUN (SIG_IPI → IPI → EXTERNAL_INTERRUPT → KVM_EXIT_INTR) and closes its files; guest_memfd
 * release zaps the private leaves with the HKID still assigned; the last reference destroys the VM:
 * TDH.VP.FLUSH per vCPU on its own CPU, VPFLUSHDONE, CACHE.WB, KEY.FREEID, then RECLAIM of TDCX/TDVPR,
 * S-EPT pages (children first), TDCS pages and the TDR, whose lines are written back with the global KeyID.
 * Variants: one vCPU, a halted vCPU, after a MapGPA round trip, a POST-code write, a 2M private page, and
 * the random scheduler.
 */
import { describe, expect, it } from 'vitest';
import { arrows, payload, runExample, runScenario, type RecordedRun } from '../helpers.ts';
import { parseScenarioObject } from '../../src/scenario/load.ts';
import type { ScenarioInput, Scenario } from '../../src/scenario/schema.ts';
import { actorView, worldHash } from '../../src/runtime/worldHash.ts';
import { runModel, type Delivery } from '../../src/runtime/runner.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';
import type { Scheduler } from '../../src/runtime/scheduler/scheduler.ts';
import type { Message } from '../../src/protocol/messages.ts';
import { modelFor } from '../../src/session/session.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { hex } from '../../src/arch/hex.ts';
import { TDX_SUCCESS, PT_TDR, PT_TDCX, PT_TDVPR, PT_EPT } from '../../src/arch/tdxStatus.ts';
import { KVM_EXIT_IO, KVM_EXIT_INTR, KVM_EXIT_IO_OUT, EINTR } from '../../src/arch/kvmApi.ts';
import { EXIT_REASON_EXTERNAL_INTERRUPT, EXIT_REASON_IO_INSTRUCTION, EXIT_REASON_TDCALL, VE_VECTOR } from '../../src/arch/vmx.ts';
import { TDVMCALL_INSTRUCTION_IO } from '../../src/arch/tdcall.ts';
import { ACPI_PM1A_CNT_PORT, ACPI_PM1_CNT_POWEROFF } from '../../machines/vmm/acpiPm.ts';
import { HOST_LAYOUT, TD_HKID, TDX_GLOBAL_KEYID } from '../../machines/registry.ts';
import { septLeaves } from '../../machines/tdxModule/septTree.ts';
import type { TdxModuleContext } from '../../machines/tdxModule/tdxModule.ts';
import type { KvmVmContext } from '../../machines/kvm/kvmVm.ts';
import type { TdpMmuContext } from '../../machines/kvm/tdpMmu.ts';
import type { VmmContext } from '../../machines/vmm/vmm.ts';
import type { MemoryContext } from '../../machines/hw/memory.ts';
import { runChecked } from '../properties/invariants.ts';

type Gprs = Record<string, bigint>;

const TDR = HOST_LAYOUT.tdrPa;
const SECRET = 0x5ec2e75ec2e7n;
/** set_hkid_to_hpa: a KeyID-tagged PA for TDH.PHYMEM.PAGE.WBINVD. */
const tagged = (pa: bigint, keyid: number) => pa | (BigInt(keyid) << BigInt(HOST_LAYOUT.hkidShift));
const tdcx = (v: number) => [0, 1, 2, 3, 4].map((i) => HOST_LAYOUT.tdcxPa(v, i));
const tdcs = [0, 1, 2, 3, 4, 5].map(HOST_LAYOUT.tdcsPa);
/** S-EPT pages come from vCPU 0's external page cache in the order the fault path linked them. */
const septPage = (i: number) => BigInt(HOST_LAYOUT.externalCachePfnBase(0) + i) << 12n;

/** An actor's context (and state value) right after delivery `step` (1-based; default: the end of the run). */
const view = (run: RecordedRun, actor: string, step = run.deliveries.length) => actorView(run.deliveries[step - 1]!.world, run.model.indexOf.get(actor)!);
const ctx = <T>(run: RecordedRun, actor: string, step?: number): T => view(run, actor, step).context as T;
const stateOf = (run: RecordedRun, actor: string, step?: number) => view(run, actor, step).value;

/** The first step (1-based) at or after step `from` whose `from → to NAME` is `arrow`. */
const stepOf = (seq: readonly string[], arrow: string, from = 1) => {
  const i = seq.indexOf(arrow, from - 1);
  if (i < 0) throw new Error(`no "${arrow}" at or after step ${from}`);
  return i + 1;
};

/** Every SEAMCALL (host → tdx) from step `from` on, with its caller, RCX, and the return that answered it. */
function seamcalls(run: RecordedRun, from = 1) {
  const returns = new Map<number, Gprs>();
  for (const d of run.deliveries) {
    if (d.message.kind !== 'seamcall-return' || d.message.cause === null) continue;
    // A call the module finished in a step of its own (TRACK_EPOCH) was answered from that step.
    let call = d.message.cause;
    while (run.deliveries[call - 1]!.message.kind === 'seam-step') call = run.deliveries[call - 1]!.message.cause!;
    returns.set(call, d.message.payload as Gprs);
  }
  return run.deliveries
    .filter((d) => d.seq >= from && d.message.kind === 'seamcall')
    .map((d) => ({ step: d.seq, from: d.message.from, name: d.message.name, regs: d.message.payload as Gprs, ret: returns.get(d.seq) }));
}
const callText = (c: { from: string; name: string; regs: Gprs }) => `${c.from} ${c.name} RCX=${hex(c.regs.RCX!)}`;

/** Every PFN the module ever owned (PAMT) or that was written with the TD's HKID during the run. */
function tdPages(run: RecordedRun): Set<number> {
  const pfns = new Set<number>();
  for (const d of run.deliveries) {
    const t = actorView(d.world, run.model.indexOf.get('tdx')!).context as TdxModuleContext;
    for (const k of Object.keys(t.mem.pamt)) {
      const e = t.mem.pamt[Number(k)]!;
      for (let i = 0; i < 512 ** e.tdxLevel; i++) pfns.add(Number(k) + i);
    }
    const m = d.message;
    if (m.kind !== 'mem') continue;
    const p = m.payload as { pa?: bigint; dst?: bigint; keyid?: number; dstKeyid?: number; bytes?: bigint };
    const pa = p.pa ?? p.dst;
    const keyid = p.keyid ?? p.dstKeyid;
    if (pa === undefined || keyid !== TD_HKID) continue;
    const pages = p.bytes === undefined ? 1 : Number(p.bytes >> 12n);
    for (let i = 0; i < pages; i++) pfns.add(Number(pa >> 12n) + i);
  }
  return pfns;
}

/** What the end of every successful power-off looks like. */
function expectTornDown(run: RecordedRun, what = run.scenario.name) {
  expect(run.outcome, what).toMatchObject({ status: 'ok', failures: [] });
  expect(stateOf(run, 'vmm'), what).toBe('exited');
  expect(stateOf(run, 'kvm.vm'), what).toBe('destroyed');
  expect(stateOf(run, 'tdx'), what).toBe('noTd');
  run.scenario.vcpus.forEach((_, v) => expect(stateOf(run, `kvm.vcpu${v}`), what).toBe('freed'));
  const t = ctx<TdxModuleContext>(run, 'tdx');
  expect(t.mem.pamt, what).toEqual({});
  expect(t.mem.childCount, what).toBe(0);
  expect(t.kot, what).toEqual({ state: 'FREE', wbinvdPending: false });
  expect(t.vcpus.every((v) => v.assocLp === null && v.state === 'NONE'), what).toBe(true);
  const vm = ctx<KvmVmContext>(run, 'kvm.vm');
  expect(vm, what).toMatchObject({ tdState: 'TD_STATE_UNINITIALIZED', hkid: -1, error: null, zap: null, destroy: null });
  expect(ctx<TdpMmuContext>(run, 'kvm.mmu')).toMatchObject({ pages: {}, freed: true });
  // Every teardown SEAMCALL (from the first close on) succeeded.
  const close = stepOf(arrows(run), 'vmm → kvm.vm kvm-vm');
  const failed = seamcalls(run, close).filter((c) => c.ret?.RAX !== TDX_SUCCESS);
  expect(failed.map((c) => `${callText(c)} → ${c.ret === undefined ? 'no return' : hex(c.ret.RAX!)}`), what).toEqual([]);
  // Every page the TD used is zero and back under KeyID 0; nothing is left under any other KeyID.
  const mem = ctx<MemoryContext>(run, 'hw.mem').pages;
  for (const pfn of tdPages(run)) {
    const page = mem[pfn];
    if (page !== undefined) expect(page, `${what}: page ${hex(BigInt(pfn) << 12n)}`).toEqual({ keyid: 0, words: {} });
  }
  expect(Object.entries(mem).filter(([, p]) => p.keyid !== 0).map(([pfn]) => hex(BigInt(pfn) << 12n)), what).toEqual([]);
}

// ---------------------------------------------------------------------------------------------------------

describe('td-poweroff: the power-off (§5c.3 port I/O → #VE → TDG.VP.VMCALL<Instruction.IO> → KVM_EXIT_IO)', () => {
  const run = runExample('td-poweroff');
  const seq = arrows(run);
  const outStep = stepOf(seq, 'guest.vcpu0 → hw.cpu0 OUT');

  it('OUT → IO_INSTRUCTION exit (qualification 0x6040001) → #VE with VE_INFO holding reason 30 and instruction length 2', () => {
    expect(seq.slice(outStep - 1, outStep + 8)).toEqual([
      'guest.vcpu0 → hw.cpu0 OUT',
      'hw.cpu0 → tdx IO_INSTRUCTION',
      'tdx → hw.cpu0 VE_INJECT',
      'hw.cpu0 → guest.vcpu0 #VE',
      'guest.vcpu0 → hw.cpu0 TDG.VP.VEINFO.GET',
      'hw.cpu0 → tdx TDG.VP.VEINFO.GET',
      'tdx → hw.cpu0 VE_INFO_GET',
      'hw.cpu0 → tdx VE_INFO',
      'tdx → guest.vcpu0 TDG.VP.VEINFO.GET',
    ]);
    // accept (4 bytes) at +0, store (3) at +4, OUT DX, AX (66 EF, 2 bytes) at +7.
    expect(payload(run, outStep)).toEqual({ vcpu: 0, rip: 0xffffffff81000007n, port: 0x604, size: 2, value: 0x2000n, length: 2 });
    expect(payload(run, outStep + 1)).toEqual({ vcpu: 0, exitReason: EXIT_REASON_IO_INSTRUCTION, exitQualification: 0x6040001n, rip: 0xffffffff81000007n, insnLength: 2 });
    expect(EXIT_REASON_IO_INSTRUCTION).toBe(30);
    expect(payload(run, outStep + 2)).toEqual({ vcpu: 0, exitReason: 30, exitQualification: 0x6040001n, gla: 0n, gpa: 0n, instrLength: 2 });
    expect(payload(run, outStep + 3)).toEqual({ vcpu: 0, vector: VE_VECTOR });
    expect(payload<Gprs>(run, outStep + 4)).toMatchObject({ RAX: 3n });
    // TDG.VP.VEINFO.GET: RCX = exit reason, RDX = qualification, R10 = instruction length.
    expect(payload(run, outStep + 8)).toEqual({ vcpu: 0, RAX: TDX_SUCCESS, RCX: 0x1en, RDX: 0x6040001n, R8: 0n, R9: 0n, R10: 2n });
  });

  it('handle_io: TDG.VP.VMCALL<Instruction.IO> R11=30 R12=2 R13=1 R14=0x604 R15=0x2000 → TD exit 77 → KVM_EXIT_IO out 2 bytes at 0x604', () => {
    const call = stepOf(seq, 'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<Instruction.IO>');
    expect(call).toBe(outStep + 9);
    expect(seq.slice(call - 1, call + 3)).toEqual([
      'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<Instruction.IO>',
      'hw.cpu0 → tdx TDG.VP.VMCALL<Instruction.IO>',
      'tdx → kvm.vcpu0 TDCALL',
      'kvm.vcpu0 → vmm KVM_EXIT_IO',
    ]);
    expect(TDVMCALL_INSTRUCTION_IO).toBe(30);
    const gprs = { R10: 0n, R11: 30n, R12: 2n, R13: 1n, R14: 0x604n, R15: 0x2000n };
    // The #VE handler's TDCALL, at its own address: the prologue-less handler's VEINFO.GET is at its entry, this one 4 bytes on.
    const handlerRip = 0xffffffff81100004n;
    expect(payload(run, call)).toEqual({ vcpu: 0, rip: handlerRip, RAX: 0n, RCX: 0xffccn, ...gprs });
    expect(payload(run, call + 1)).toEqual({ vcpu: 0, rip: handlerRip, RAX: 0n, RCX: 0xffccn, ...gprs });
    expect(payload<Gprs>(run, call + 2)).toMatchObject({ RAX: BigInt(EXIT_REASON_TDCALL), RCX: 0xffccn, ...gprs });
    // run->io: direction OUT, the data one page after struct kvm_run (KVM_PIO_PAGE_OFFSET).
    expect(payload(run, call + 3)).toEqual({ vcpu: 0, exit_reason: KVM_EXIT_IO, direction: KVM_EXIT_IO_OUT, size: 2, port: 0x604, count: 1, data_offset: 4096, data: 0x2000n });
    expect([KVM_EXIT_IO, KVM_EXIT_IO_OUT, ACPI_PM1A_CNT_PORT, ACPI_PM1_CNT_POWEROFF]).toEqual([2, 1, 0x604, 0x2000]);
    // The power-off vCPU never re-enters.
    expect(seq.slice(call + 3).filter((a) => a === 'vmm → kvm.vcpu0 KVM_RUN' || a === 'kvm.vcpu0 → tdx TDH.VP.ENTER')).toEqual([]);
  });

  it('vCPU 1, spinning in the guest: SIG_IPI → IPI (no requester waits) → EXTERNAL_INTERRUPT exit → handler → KVM_EXIT_INTR ret −4', () => {
    const io = stepOf(seq, 'kvm.vcpu0 → vmm KVM_EXIT_IO');
    expect(seq.slice(io, io + 7)).toEqual([
      'vmm → kvm.vcpu1 SIG_IPI',
      'kvm.vcpu1 → hw.cpu1 IPI',
      'hw.cpu1 → tdx EXTERNAL_INTERRUPT',
      'tdx → kvm.vcpu1 EXTERNAL_INTERRUPT',
      'kvm.vcpu1 → hw.cpu1 LOCAL_IRQ_ENABLE',
      'hw.cpu1 → kvm.vcpu1 IRQ_HANDLED',
      'kvm.vcpu1 → vmm KVM_EXIT_INTR',
    ]);
    expect(payload(run, io + 1)).toEqual({ vcpu: 1 });
    // kick_process: a reschedule IPI (RESCHEDULE_VECTOR 0xfd); the exit reports it as a valid external interrupt in R9.
    expect(payload(run, io + 2)).toEqual({ vcpu: 1, requester: null, vector: 0xfd });
    expect(payload(run, io + 3)).toMatchObject({ vcpu: 1, exitReason: EXIT_REASON_EXTERNAL_INTERRUPT, interruptionInfo: 0x800000fd });
    expect(payload(run, io + 4)).toEqual({ vcpu: 1, RAX: 0x1n, RCX: 0n, RDX: 0n, R8: 0n, R9: 0x800000fdn });
    expect(payload(run, io + 7)).toEqual({ vcpu: 1, exit_reason: KVM_EXIT_INTR, ret: EINTR });
    expect([KVM_EXIT_INTR, EINTR]).toEqual([10, -4]);
    // vCPU 0 gets no signal: its thread is already in userspace with the KVM_EXIT_IO.
    expect(seq).not.toContain('vmm → kvm.vcpu0 SIG_IPI');
    // Nobody waits on a signal's IPI: no KVM_REQ_ACK.
    expect(seq.slice(io, io + 7).some((a) => a.endsWith('KVM_REQ_ACK'))).toBe(false);
    // Both vCPU threads are out of KVM_RUN before the first close.
    const close = stepOf(seq, 'vmm → kvm.vm kvm-vm');
    expect(close).toBe(io + 8);
    expect(ctx<VmmContext>(run, 'vmm', close - 1).inKernel).toEqual([false, false]);
    expect(ctx<{ regs: Record<string, bigint> }>(run, 'guest.vcpu1').regs.rax).toBe(0x1122334455667788n);
  });
});

describe('td-poweroff: the teardown (§5b.4)', () => {
  const run = runExample('td-poweroff');
  const seq = arrows(run);
  const closeVm = stepOf(seq, 'vmm → kvm.vm kvm-vm');
  const calls = seamcalls(run, closeVm);

  it('files close in descriptor order — VM, guest_memfd, vCPU 0, vCPU 1 — and only the last close waits for the destruction', () => {
    const closes = run.deliveries.filter((d) => d.message.kind === 'close' || d.message.kind === 'close-return').map((d) => `${d.message.from} → ${d.message.to} ${d.message.kind} ${d.message.name} ${JSON.stringify(d.message.payload)}`);
    expect(closes).toEqual([
      'vmm → kvm.vm close kvm-vm {}',
      'kvm.vm → vmm close-return kvm-vm {"ret":0}',
      'vmm → kvm.vm close kvm-gmem {"slot":0}',
      'kvm.vm → vmm close-return kvm-gmem {"ret":0}',
      'vmm → kvm.vm close kvm-vcpu {"vcpu":0}',
      'kvm.vm → vmm close-return kvm-vcpu {"ret":0}',
      'vmm → kvm.vm close kvm-vcpu {"vcpu":1}',
      'kvm.vm → vmm close-return kvm-vcpu {"ret":0}',
    ]);
    // The last close returns as the very last message.
    expect(seq.at(-1)).toBe('kvm.vm → vmm kvm-vcpu');
    // The guest_memfd release runs under write mmu_lock.
    const gmem = stepOf(seq, 'vmm → kvm.vm kvm-gmem');
    expect(seq.slice(gmem, gmem + 4)).toEqual(['kvm.vm → kvm.mmu MMU_LOCK_WRITE', 'kvm.mmu → kvm.vm MMU_LOCK_ACQUIRED', 'kvm.vm → kvm.mmu TDP_LEAF_SCAN', 'kvm.mmu → kvm.vm TDP_LEAF_SCAN_RESULT']);
    expect(payload(run, gmem + 3)).toMatchObject({ root: 'mirror', gfnStart: 0x0n, gfnEnd: 0x80000n });
    expect((payload(run, gmem + 4) as { leaves: { gfn: bigint; pgLevel: number }[] }).leaves.map((l) => [l.gfn, l.pgLevel])).toEqual([
      [0x100n, 1],
      [0x200n, 1],
    ]);
  });

  it('the exact SEAMCALL sequence of the teardown, with RCX', () => {
    const vcpuFree = (v: number) => [...tdcx(v), HOST_LAYOUT.tdvprPa(v)].map((pa) => `kvm.vcpu${v} TDH.PHYMEM.PAGE.RECLAIM RCX=${hex(pa)}`);
    const zap = (gpa: bigint, hpa: bigint) => [
      `kvm.vm TDH.MEM.RANGE.BLOCK RCX=${hex(gpa)}`,
      `kvm.vm TDH.MEM.TRACK RCX=${hex(TDR)}`,
      `kvm.vm TDH.MEM.PAGE.REMOVE RCX=${hex(gpa)}`,
      `kvm.vm TDH.PHYMEM.PAGE.WBINVD RCX=${hex(tagged(hpa, TD_HKID))}`,
    ];
    expect(calls.map(callText)).toEqual([
      // guest_memfd release: the image page and the accepted page, HKID still assigned (§5b.4 step 1).
      ...zap(0x100000n, 0x200100000n),
      ...zap(0x200000n, 0x200200000n),
      // tdx_mmu_release_hkid (step 2).
      'kvm.vcpu0 TDH.VP.FLUSH RCX=0x100010000',
      'kvm.vcpu1 TDH.VP.FLUSH RCX=0x100020000',
      'kvm.vm TDH.MNG.VPFLUSHDONE RCX=0x100000000',
      'kvm.vm TDH.PHYMEM.CACHE.WB RCX=0x0',
      'kvm.vm TDH.MNG.KEY.FREEID RCX=0x100000000',
      // tdx_vcpu_free (step 3): TDCX pages, then the TDVPR, per vCPU.
      ...vcpuFree(0),
      ...vcpuFree(1),
      // MMU teardown (step 4): the S-EPT pages, children first.
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x190002000',
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x190003000',
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x190001000',
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x190000000',
      // tdx_vm_destroy (step 5): TDCS pages, the TDR, its cache lines with the global KeyID.
      ...tdcs.map((pa) => `kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=${hex(pa)}`),
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x100000000',
      'kvm.vm TDH.PHYMEM.PAGE.WBINVD RCX=0x4000100000000',
    ]);
    expect(tagged(TDR, TDX_GLOBAL_KEYID)).toBe(0x100000000n | (16n << 46n));
    expect(tagged(0x200200000n, TD_HKID)).toBe(0x4400200200000n);
    // The other registers of the calls that take more than RCX.
    for (const c of calls.filter((c) => ['TDH.MEM.RANGE.BLOCK', 'TDH.MEM.PAGE.REMOVE'].includes(c.name))) expect(c.regs).toEqual({ RCX: c.regs.RCX, RDX: TDR });
    // Every one of them succeeded.
    expect(calls.map((c) => c.ret?.RAX)).toEqual(calls.map(() => TDX_SUCCESS));
  });

  it('TDH.MEM.PAGE.REMOVE returns the freed HPA; TDH.PHYMEM.PAGE.RECLAIM returns RCX = PAMT type, RDX = owner TDR, R8 = 0 (4K)', () => {
    expect(calls.filter((c) => c.name === 'TDH.MEM.PAGE.REMOVE').map((c) => c.ret)).toEqual([
      { RAX: TDX_SUCCESS, RCX: 0x200100000n, RDX: 0n },
      { RAX: TDX_SUCCESS, RCX: 0x200200000n, RDX: 0n },
    ]);
    const reclaims = calls.filter((c) => c.name === 'TDH.PHYMEM.PAGE.RECLAIM');
    expect(reclaims).toHaveLength(6 + 6 + 4 + 6 + 1);
    const type = (pa: bigint) => (pa === TDR ? PT_TDR : pa === HOST_LAYOUT.tdvprPa(0) || pa === HOST_LAYOUT.tdvprPa(1) ? PT_TDVPR : pa >= septPage(0) && pa < septPage(4) ? PT_EPT : PT_TDCX);
    for (const c of reclaims) expect(c.ret, hex(c.regs.RCX!)).toEqual({ RAX: TDX_SUCCESS, RCX: BigInt(type(c.regs.RCX!)), RDX: TDR, R8: 0n });
    expect([PT_TDR, PT_TDCX, PT_TDVPR, PT_EPT]).toEqual([4, 5, 6, 8]);
    expect(reclaims.map((c) => Number(c.ret!.RCX))).toEqual([5, 5, 5, 5, 5, 6, 5, 5, 5, 5, 5, 6, 8, 8, 8, 8, 5, 5, 5, 5, 5, 5, 4]);
  });

  it('children first: each S-EPT page is reclaimed after every S-EPT page it points to (the walks of 0x200000 and 0x100000)', () => {
    // The module's S-EPT walks for the guest's accesses name each table page on the way down: root (TDCS page 3) → PDPT → PD → PT.
    const tablesOf = (gpa: bigint) => {
      const walk = run.deliveries.find((d) => d.message.name === 'EPT_WALK_RESULT' && d.message.from === 'tdx' && (d.message.payload as { gpa: bigint }).gpa === gpa)!;
      return (walk.message.payload as { path: { tablePfn: number }[] }).path.map((s) => BigInt(s.tablePfn) << 12n);
    };
    expect(tablesOf(0x200000n)).toEqual([HOST_LAYOUT.tdcsPa(3), septPage(0), septPage(1), septPage(3)]);
    expect(tablesOf(0x100000n)).toEqual([HOST_LAYOUT.tdcsPa(3), septPage(0), septPage(1), septPage(2)]);
    const order = calls.filter((c) => c.name === 'TDH.PHYMEM.PAGE.RECLAIM').map((c) => c.regs.RCX!);
    for (const path of [tablesOf(0x200000n), tablesOf(0x100000n)]) {
      for (let i = 0; i + 1 < path.length; i++) {
        expect(order.indexOf(path[i + 1]!), `${hex(path[i + 1]!)} before its parent ${hex(path[i]!)}`).toBeLessThan(order.indexOf(path[i]!));
      }
    }
    // The levels KVM's free hook saw, in that order.
    const freed = run.deliveries.find((d) => d.message.name === 'TDP_FREE_ROOTS_RESULT')!.message.payload as { externalPages: { gfn: bigint; pgLevel: number }[]; mirrorLeaves: number };
    expect(freed.externalPages.map((p) => [p.gfn, p.pgLevel])).toEqual([
      [0x0n, 1],
      [0x200n, 1],
      [0x0n, 2],
      [0x0n, 3],
    ]);
    expect(freed.mirrorLeaves).toBe(0);
  });

  it('the guest_memfd release ran with the HKID assigned: every REMOVE in state runnable, KOT ASSIGNED, before VPFLUSHDONE', () => {
    const removes = calls.filter((c) => c.name === 'TDH.MEM.PAGE.REMOVE');
    const flushDone = calls.find((c) => c.name === 'TDH.MNG.VPFLUSHDONE')!;
    for (const r of removes) {
      expect(r.step).toBeLessThan(flushDone.step);
      expect(stateOf(run, 'tdx', r.step)).toBe('runnable');
      expect(ctx<TdxModuleContext>(run, 'tdx', r.step).kot.state).toBe('ASSIGNED');
      expect(ctx<KvmVmContext>(run, 'kvm.vm', r.step).hkid).toBe(TD_HKID);
    }
    // After the release nothing private is mapped: the S-EPT has no leaf, the mirror none either.
    const released = stepOf(seq, 'kvm.vm → vmm kvm-gmem');
    const t = ctx<TdxModuleContext>(run, 'tdx', released);
    expect(septLeaves(t.mem.sept, t.mem.septRoot!, t.mem.topLevel)).toEqual([]);
    // 6 TDCS + 2 × (TDVPR + 5 TDCX) + 4 S-EPT pages are left for RECLAIM.
    expect(t.mem.childCount).toBe(22);
  });

  it('the module’s lifecycle: runnable → blocked (VPFLUSHDONE) → teardown (KEY.FREEID) → noTd (RECLAIM of the TDR); KVM forgets the HKID', () => {
    const at = (name: string) => calls.find((c) => c.name === name)!.step;
    expect(stateOf(run, 'tdx', at('TDH.VP.FLUSH'))).toBe('runnable');
    expect(ctx<TdxModuleContext>(run, 'tdx', at('TDH.VP.FLUSH')).vcpus.map((v) => v.assocLp)).toEqual([null, 1]);
    expect(stateOf(run, 'tdx', at('TDH.MNG.VPFLUSHDONE'))).toBe('blocked');
    expect(ctx<TdxModuleContext>(run, 'tdx', at('TDH.MNG.VPFLUSHDONE')).kot).toEqual({ state: 'FLUSHED', wbinvdPending: true });
    expect(ctx<TdxModuleContext>(run, 'tdx', at('TDH.PHYMEM.CACHE.WB')).kot).toEqual({ state: 'FLUSHED', wbinvdPending: false });
    expect(stateOf(run, 'tdx', at('TDH.MNG.KEY.FREEID'))).toBe('teardown');
    expect(ctx<KvmVmContext>(run, 'kvm.vm', at('TDH.MNG.KEY.FREEID') + 1).hkid).toBe(-1);
    const tdrReclaim = calls.find((c) => c.name === 'TDH.PHYMEM.PAGE.RECLAIM' && c.regs.RCX === TDR)!.step;
    expect(stateOf(run, 'tdx', tdrReclaim - 1)).toBe('teardown');
    expect(ctx<TdxModuleContext>(run, 'tdx', tdrReclaim - 1).mem.childCount).toBe(0);
    expect(stateOf(run, 'tdx', tdrReclaim)).toBe('noTd');
    // tdx_flush_vp runs on each vCPU's own thread, as a kvm-call from kvm.vm.
    const kvmCalls = run.deliveries.filter((d) => d.message.kind === 'kvm-call' || d.message.kind === 'kvm-call-return').map((d) => `${d.message.from} → ${d.message.to} ${d.message.name} ${JSON.stringify(d.message.payload, (_, x) => (typeof x === 'bigint' ? hex(x) : x))}`);
    expect(kvmCalls).toEqual([
      'kvm.vm → kvm.vcpu0 tdx_flush_vp {"vcpu":0}',
      'kvm.vcpu0 → kvm.vm tdx_flush_vp {"vcpu":0,"err":"0x0"}',
      'kvm.vm → kvm.vcpu1 tdx_flush_vp {"vcpu":1}',
      'kvm.vcpu1 → kvm.vm tdx_flush_vp {"vcpu":1,"err":"0x0"}',
      'kvm.vm → kvm.vcpu0 tdx_vcpu_free {"vcpu":0}',
      'kvm.vcpu0 → kvm.vm tdx_vcpu_free {"vcpu":0,"err":"0x0"}',
      'kvm.vm → kvm.vcpu1 tdx_vcpu_free {"vcpu":1}',
      'kvm.vcpu1 → kvm.vm tdx_vcpu_free {"vcpu":1,"err":"0x0"}',
    ]);
  });

  it('each page given back is cleared with KeyID 0 right after its RECLAIM (after the WBINVD for the TDR)', () => {
    for (const c of calls.filter((c) => c.name === 'TDH.PHYMEM.PAGE.RECLAIM')) {
      const i = c.step; // the call; the return is i + 1
      const isTdr = c.regs.RCX === TDR;
      const zero = run.deliveries[i + (isTdr ? 3 : 1)]!.message; // TDR: return, WBINVD, WBINVD return, then the clear
      expect(`${zero.from} → ${zero.to} ${zero.name}`).toBe(`${c.from} → hw.mem MEM_ZERO`);
      expect(zero.payload).toEqual({ pa: c.regs.RCX, bytes: 0x1000n, keyid: 0, tag: c.from });
    }
  });

  it('end state: module noTd with an empty PAMT, kvm.vm destroyed, every page the TD used is zero under KeyID 0', () => {
    expectTornDown(run);
    const pfns = [...tdPages(run)].sort((a, b) => a - b).map((p) => hex(BigInt(p) << 12n));
    expect(pfns).toEqual([
      '0x100000000',
      ...tdcs.map(hex),
      ...[HOST_LAYOUT.tdvprPa(0), ...tdcx(0)].map(hex),
      ...[HOST_LAYOUT.tdvprPa(1), ...tdcx(1)].map(hex),
      '0x190000000',
      '0x190001000',
      '0x190002000',
      '0x190003000',
      '0x200100000',
      '0x200200000',
    ]);
    // The VMM's staging page for the image is its own memory: still there, under KeyID 0.
    expect(ctx<MemoryContext>(run, 'hw.mem').pages[Number(HOST_LAYOUT.stagingPa(0) >> 12n)]).toEqual({ keyid: 0, words: { 0: 0x1122334455667788n } });
  });

  it('the secret 0x5ec2e75ec2e7 stays under the TD’s HKID until kvm.vm clears the page; the host never reads or carries it', () => {
    const pfn = 0x200200;
    const stored = run.deliveries.find((d) => d.message.name === 'MEM_WRITE' && (d.message.payload as { value: bigint }).value === SECRET)!;
    expect(stored.message.payload).toMatchObject({ pa: 0x200200000n, keyid: TD_HKID, tag: 'hw.cpu0' });
    const clear = run.deliveries.find((d) => d.message.from === 'kvm.vm' && d.message.name === 'MEM_ZERO' && (d.message.payload as { pa: bigint }).pa === 0x200200000n)!;
    expect(clear.message.payload).toEqual({ pa: 0x200200000n, bytes: 0x1000n, keyid: 0, tag: 'kvm.vm' });
    expect(ctx<MemoryContext>(run, 'hw.mem', clear.seq - 1).pages[pfn]).toEqual({ keyid: TD_HKID, words: { 0: SECRET } });
    expect(ctx<MemoryContext>(run, 'hw.mem', clear.seq).pages[pfn]).toEqual({ keyid: 0, words: {} });
    // No MEM_READ other than with the TD's HKID is ever answered with the secret.
    for (const d of run.deliveries.filter((d) => d.message.name === 'MEM_DATA')) {
      const read = run.deliveries[d.message.cause! - 1]!.message.payload as { keyid: number };
      if (read.keyid !== TD_HKID) expect((d.message.payload as { value: bigint }).value).not.toBe(SECRET);
    }
    // No message to or from KVM or the VMM carries it.
    const hostText = run.deliveries
      .filter((d) => /^(kvm\.|vmm)/.test(d.message.from) || /^(kvm\.|vmm)/.test(d.message.to))
      .map((d) => JSON.stringify(d.message.payload, (_, x) => (typeof x === 'bigint' ? hex(x) : x)))
      .join('\n');
    expect(hostText).not.toContain(hex(SECRET));
  });

  it('deterministic (the same log twice), and replay --verify re-derives every step’s world', () => {
    const again = runExample('td-poweroff');
    expect(again.text).toBe(run.text);
    const r = replayLog(parseLogText(run.text, 'td-poweroff.log.jsonl'), 'td-poweroff.log.jsonl', { verify: true, keepAll: true });
    expect(r.verified).toBe(true);
    expect(r.history).toHaveLength(run.deliveries.length + 1);
    for (const step of [1, closeVm, run.deliveries.length]) expect(worldHash(r.model, r.history![step]!)).toBe(worldHash(run.model, run.deliveries[step - 1]!.world));
  });
});

// ---- Variants ----------------------------------------------------------------------------------------------

const TD_VM = { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] } as const;
const GMEM = [{ gpa: '0x0', size: '0x80000000', guestMemfd: true }];
const IMAGE = [{ gpa: '0x100000', words: { '0x0': '0x1122334455667788' } }];
type Program = ScenarioInput['vcpus'][number]['program'];
const POWEROFF = { op: 'out', port: 0x604, size: 2, value: '0x2000' } as const;

function td(name: string, programs: Program[], extra: Partial<ScenarioInput> = {}): Scenario {
  return parseScenarioObject({ name, vm: TD_VM, memslots: GMEM, vcpus: programs.map((program) => ({ program })), ...extra });
}

describe('one vCPU that powers off at once: only the image page to zap, no signal to send', () => {
  const run = runScenario(td('poweroff-at-once', [[POWEROFF]], { image: IMAGE }));
  const seq = arrows(run);

  it('the OUT is the first instruction; the VMM stops at once and closes', () => {
    expect(payload(run, stepOf(seq, 'guest.vcpu0 → hw.cpu0 OUT'))).toMatchObject({ rip: 0xffffffff81000000n, port: 0x604, size: 2, value: 0x2000n });
    expect(seq.filter((a) => a.includes('SIG_IPI') || a.includes('KVM_EXIT_INTR'))).toEqual([]);
    const io = stepOf(seq, 'kvm.vcpu0 → vmm KVM_EXIT_IO');
    expect(seq[io]).toBe('vmm → kvm.vm kvm-vm');
  });

  it('SEAMCALLs: one zap (the image page), one VP.FLUSH, one vCPU’s pages, three S-EPT pages, six TDCS pages, the TDR', () => {
    const calls = seamcalls(run, stepOf(seq, 'vmm → kvm.vm kvm-vm'));
    expect(calls.map(callText)).toEqual([
      'kvm.vm TDH.MEM.RANGE.BLOCK RCX=0x100000',
      'kvm.vm TDH.MEM.TRACK RCX=0x100000000',
      'kvm.vm TDH.MEM.PAGE.REMOVE RCX=0x100000',
      'kvm.vm TDH.PHYMEM.PAGE.WBINVD RCX=0x4400200100000',
      'kvm.vcpu0 TDH.VP.FLUSH RCX=0x100010000',
      'kvm.vm TDH.MNG.VPFLUSHDONE RCX=0x100000000',
      'kvm.vm TDH.PHYMEM.CACHE.WB RCX=0x0',
      'kvm.vm TDH.MNG.KEY.FREEID RCX=0x100000000',
      ...[...tdcx(0), HOST_LAYOUT.tdvprPa(0)].map((pa) => `kvm.vcpu0 TDH.PHYMEM.PAGE.RECLAIM RCX=${hex(pa)}`),
      // PT of 0..2M, PD, PDPT: children first.
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x190002000',
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x190001000',
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x190000000',
      ...tdcs.map((pa) => `kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=${hex(pa)}`),
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x100000000',
      'kvm.vm TDH.PHYMEM.PAGE.WBINVD RCX=0x4000100000000',
    ]);
  });

  it('ends torn down', () => {
    expectTornDown(run);
    expect([...tdPages(run)].map((p) => hex(BigInt(p) << 12n))).toContain('0x200100000');
  });
});

describe('vCPU 1 halted (TDG.VP.VMCALL<Instruction.HLT>) when vCPU 0 powers off: the signal wakes it with KVM_EXIT_INTR', () => {
  const halted = td('poweroff-halted-vcpu', [
    [{ op: 'accept', gpa: '0x200000', size: '0x1000' }, { op: 'store', gpa: '0x200000', size: 8, value: '0x5ec2e75ec2e7' }, POWEROFF],
    [{ op: 'load', gpa: '0x100000', size: 8, reg: 'rax' }, { op: 'hlt' }],
  ], { image: IMAGE });
  const run = runScenario(halted);
  const seq = arrows(run);

  it('FIFO: vCPU 1 is blocked in kvm_vcpu_halt at the signal; no IPI, straight to KVM_EXIT_INTR; then the full teardown', () => {
    const sig = stepOf(seq, 'vmm → kvm.vcpu1 SIG_IPI');
    expect(stepOf(seq, 'hw.cpu1 → tdx TDG.VP.VMCALL<Instruction.HLT>')).toBeLessThan(sig);
    expect(stateOf(run, 'kvm.vcpu1', sig - 1)).toBe('halted');
    expect(seq[sig]).toBe('kvm.vcpu1 → vmm KVM_EXIT_INTR');
    expect(payload(run, sig + 1)).toEqual({ vcpu: 1, exit_reason: KVM_EXIT_INTR, ret: EINTR });
    expect(seq.slice(sig - 1).filter((a) => a.includes('hw.cpu1'))).toEqual([]);
    const calls = seamcalls(run, stepOf(seq, 'vmm → kvm.vm kvm-vm'));
    expect(calls.filter((c) => c.name === 'TDH.VP.FLUSH').map(callText)).toEqual(['kvm.vcpu0 TDH.VP.FLUSH RCX=0x100010000', 'kvm.vcpu1 TDH.VP.FLUSH RCX=0x100020000']);
    expectTornDown(run);
  });

  /**
   * MODEL BUG (lost wake-up). The SIG_IPI reaches kvm.vcpu1 while it is inside TDH.VP.ENTER and the
   * guest's TDG.VP.VMCALL<Instruction.HLT> has already been taken by the CPU: kvm.vcpu1 sets signalPending
   * and sends the reschedule IPI; the TD exit is the TDCALL, the IPI's handler runs, and KVM emulates the
   * HLT — state `halted`, which only leaves on another SIG_IPI. Nobody sends one, so vCPU 1 never returns
   * from KVM_RUN, the VMM waits in `stopping` forever, no file is closed and the TD is never torn down —
   * and the run still ends "ok" (quiescent, no failure). Linux does not block here: kvm_vcpu_halt →
   * kvm_vcpu_block → kvm_vcpu_check_block returns -EINTR when signal_pending(current), so KVM_RUN returns
   * with KVM_EXIT_INTR. The same happens under the random scheduler (e.g. seeds 14, 24, 43 of this scenario
   * with vCPU 0 powering off at once).
   */
  function signalDuringHltTdcall(): Scheduler {
    const fifo = fifoScheduler();
    let hltTaken = false;
    let signalled = false;
    const isSignal = (m: Message) => m.to === 'kvm.vcpu1' && m.name === 'SIG_IPI';
    const isHltExit = (m: Message) => m.from === 'tdx' && m.to === 'kvm.vcpu1' && m.name === 'TDCALL';
    return {
      descriptor: { kind: 'fifo' },
      choose(enabled: readonly Message[]): number {
        const held = (m: Message) => (isSignal(m) && !hltTaken) || (isHltExit(m) && !signalled);
        const open = enabled.filter((m) => !held(m));
        const pick = open.length > 0 ? enabled.indexOf(open[fifo.choose(open)]!) : fifo.choose(enabled);
        const m = enabled[pick]!;
        if (m.from === 'hw.cpu1' && m.name === 'TDG.VP.VMCALL<Instruction.HLT>') hltTaken = true;
        if (isSignal(m)) signalled = true;
        return pick;
      },
    };
  }
  const racy = td('poweroff-signal-during-hlt', [[POWEROFF], [{ op: 'load', gpa: '0x100000', size: 8, reg: 'rax' }, { op: 'hlt' }]], { image: IMAGE });
  const model = modelFor(racy);
  const deliveries: Delivery[] = [];
  const { outcome } = runModel(model, { scheduler: signalDuringHltTdcall(), onDelivery: (d) => deliveries.push(d) });
  const raceSeq = deliveries.map((d) => `${d.message.from} → ${d.message.to} ${d.message.name}`);
  const value = (actor: string) => actorView(deliveries.at(-1)!.world, model.indexOf.get(actor)!).value;

  it('the race is set up: SIG_IPI is delivered after the CPU took the HLT TDCALL and before its TD exit reaches KVM', () => {
    const taken = raceSeq.indexOf('hw.cpu1 → tdx TDG.VP.VMCALL<Instruction.HLT>');
    const sig = raceSeq.indexOf('vmm → kvm.vcpu1 SIG_IPI');
    const exit = raceSeq.indexOf('tdx → kvm.vcpu1 TDCALL');
    expect(taken).toBeGreaterThan(0);
    expect(sig).toBeGreaterThan(taken);
    expect(exit).toBeGreaterThan(sig);
    expect(actorView(deliveries[sig - 1]!.world, model.indexOf.get('kvm.vcpu1')!).value).toBe('inTdhVpEnter');
    expect(outcome.status).toBe('ok');
  });

  it('a signal that arrives while the HLT TDCALL exits is not lost: the halt ends at once with KVM_EXIT_INTR (kvm_vcpu_check_block) and the VM is torn down', () => {
    expect(raceSeq).toContain('kvm.vcpu1 → vmm KVM_EXIT_INTR');
    expect(value('kvm.vcpu1')).toBe('freed');
    expect(value('vmm')).toBe('exited');
    expect(value('kvm.vm')).toBe('destroyed');
    expect(value('tdx')).toBe('noTd');
  });
});

describe('power-off after a MapGPA round trip (§6.iv): the re-accepted page is zapped again at release', () => {
  const run = runScenario(
    td('poweroff-after-mapgpa', [
      [
        { op: 'accept', gpa: '0x200000', size: '0x1000' },
        { op: 'store', gpa: '0x200000', size: 8, value: '0x5ec2e75ec2e7' },
        { op: 'mapGpa', gpa: '0x200000', size: '0x1000', to: 'shared' },
        { op: 'store', gpa: '0x800000200000', size: 8, value: '0x77' },
        { op: 'mapGpa', gpa: '0x200000', size: '0x1000', to: 'private' },
        { op: 'accept', gpa: '0x200000', size: '0x1000' },
        { op: 'load', gpa: '0x200000', size: 8, reg: 'rbx' },
        POWEROFF,
      ],
    ]),
  );
  const seq = arrows(run);

  it('two REMOVEs of 0x200000 — the conversion to shared, then the guest_memfd release — each with WBINVD and a KeyID-0 clear of 0x200200000', () => {
    const close = stepOf(seq, 'vmm → kvm.vm kvm-vm');
    const removes = seamcalls(run).filter((c) => c.name === 'TDH.MEM.PAGE.REMOVE');
    expect(removes.map((c) => [c.step < close, hex(c.regs.RCX!), hex(c.ret!.RCX!)])).toEqual([
      [true, '0x200000', '0x200200000'],
      [false, '0x200000', '0x200200000'],
    ]);
    expect(ctx<{ regs: Record<string, bigint> }>(run, 'guest.vcpu0').regs.rbx).toBe(0n); // re-accepted: zeroed
    // Release: exactly the one private leaf; the shared alias lived in the direct root and was zapped at the conversion back.
    const scan = run.deliveries.find((d) => d.seq > close && d.message.name === 'TDP_LEAF_SCAN_RESULT')!;
    expect((scan.message.payload as { root: string; leaves: { gfn: bigint }[] }).root).toBe('mirror');
    expect((scan.message.payload as { leaves: { gfn: bigint }[] }).leaves.map((l) => l.gfn)).toEqual([0x200n]);
    const released = seamcalls(run, close);
    expect(released.slice(0, 4).map(callText)).toEqual([
      'kvm.vm TDH.MEM.RANGE.BLOCK RCX=0x200000',
      'kvm.vm TDH.MEM.TRACK RCX=0x100000000',
      'kvm.vm TDH.MEM.PAGE.REMOVE RCX=0x200000',
      'kvm.vm TDH.PHYMEM.PAGE.WBINVD RCX=0x4400200200000',
    ]);
    expect(released[4]!.name).toBe('TDH.VP.FLUSH');
  });

  it('ends torn down; the shared alias’s backing (0x400200000) was only ever written under KeyID 0 and the module never owned it', () => {
    expectTornDown(run);
    expect(tdPages(run).has(0x400200)).toBe(false);
    expect(ctx<MemoryContext>(run, 'hw.mem').pages[0x400200]?.keyid ?? 0).toBe(0);
  });
});

describe('a write to another port (0x80, POST code) is dropped by the VMM and the guest goes on', () => {
  const run = runScenario(
    td('post-code-then-poweroff', [
      [{ op: 'out', port: 0x80, size: 1, value: '0x42' }, { op: 'accept', gpa: '0x200000', size: '0x1000' }, { op: 'store', gpa: '0x200000', size: 8, value: '0x5ec2e75ec2e7' }, POWEROFF],
    ]),
  );
  const seq = arrows(run);
  const io = stepOf(seq, 'kvm.vcpu0 → vmm KVM_EXIT_IO');

  it('OUT DX, AL: qualification 0x800000, instruction length 1, TDVMCALL R12=1 R14=0x80 R15=0x42, KVM_EXIT_IO size 1', () => {
    const exit = stepOf(seq, 'hw.cpu0 → tdx IO_INSTRUCTION');
    expect(payload(run, exit)).toEqual({ vcpu: 0, exitReason: 30, exitQualification: 0x800000n, rip: 0xffffffff81000000n, insnLength: 1 });
    expect(payload<Gprs>(run, stepOf(seq, 'tdx → guest.vcpu0 TDG.VP.VEINFO.GET'))).toMatchObject({ RCX: 30n, RDX: 0x800000n, R10: 1n });
    expect(payload<Gprs>(run, stepOf(seq, 'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<Instruction.IO>'))).toMatchObject({ R10: 0n, R11: 30n, R12: 1n, R13: 1n, R14: 0x80n, R15: 0x42n });
    expect(payload(run, io)).toEqual({ vcpu: 0, exit_reason: KVM_EXIT_IO, direction: KVM_EXIT_IO_OUT, size: 1, port: 0x80, count: 1, data_offset: 4096, data: 0x42n });
  });

  it('the VMM re-runs the vCPU at once, KVM completes the TDVMCALL with R10 = SUCCESS, RIP moves past the 1-byte OUT', () => {
    expect(seq.slice(io, io + 4)).toEqual(['vmm → kvm.vcpu0 KVM_RUN', 'kvm.vcpu0 → tdx TDH.VP.ENTER', 'tdx → tdx ENTER_EPOCH', 'tdx → guest.vcpu0 VMRESUME']);
    expect(payload(run, io + 1)).toEqual({ vcpu: 0, mmioData: null });
    expect(payload<Gprs>(run, io + 2)).toMatchObject({ R10: 0n });
    expect(ctx<VmmContext>(run, 'vmm', io + 1).unassignedPortWrites).toBe(1);
    expect(stateOf(run, 'vmm', io + 1)).toBe('running');
    // The next instruction is the ACCEPT right after the OUT.
    expect(payload<Gprs & { rip?: bigint }>(run, stepOf(seq, 'guest.vcpu0 → hw.cpu0 TDG.MEM.PAGE.ACCEPT', io))).toMatchObject({ RCX: 0x200000n });
    const out2 = stepOf(seq, 'guest.vcpu0 → hw.cpu0 OUT', io);
    expect(payload(run, out2)).toMatchObject({ rip: 0xffffffff81000001n + 4n + 3n, port: 0x604 });
  });

  it('the power-off that follows still tears everything down; the POST write stays counted once', () => {
    expect(seq.filter((a) => a === 'kvm.vcpu0 → vmm KVM_EXIT_IO')).toHaveLength(2);
    expect(ctx<VmmContext>(run, 'vmm').unassignedPortWrites).toBe(1);
    expectTornDown(run);
  });
});

describe('privateHugePages: a 2M private page accepted at 2M is zapped as one 2M leaf at release', () => {
  const run = runScenario(
    td('poweroff-2m', [[{ op: 'accept', gpa: '0x200000', size: '0x200000' }, { op: 'store', gpa: '0x3ff000', size: 8, value: '0x5ec2e75ec2e7' }, POWEROFF]], {
      policies: { privateHugePages: true },
    }),
  );
  const seq = arrows(run);
  const close = stepOf(seq, 'vmm → kvm.vm kvm-vm');
  const calls = seamcalls(run, close);

  it('the page was AUGed and accepted at 2M (TDX level 1)', () => {
    const aug = seamcalls(run).find((c) => c.name === 'TDH.MEM.PAGE.AUG')!;
    expect(aug.regs).toMatchObject({ RCX: 0x200001n, R8: 0x200200000n });
    const t = ctx<TdxModuleContext>(run, 'tdx', close);
    expect(septLeaves(t.mem.sept, t.mem.septRoot!, t.mem.topLevel)).toEqual([{ gpa: 0x200000n, tdxLevel: 1, state: 'MAPPED', hpa: 0x200200000n }]);
    expect(t.mem.pamt[0x200200]).toMatchObject({ tdxLevel: 1 });
  });

  it('one BLOCK and one REMOVE at 2M (RCX low bits 1), 512 TDH.PHYMEM.PAGE.WBINVD one per 4K page, then one 2M MEM_ZERO', () => {
    const zapEnd = calls.findIndex((c) => c.name === 'TDH.VP.FLUSH');
    const zap = calls.slice(0, zapEnd);
    expect(zap.slice(0, 3).map(callText)).toEqual(['kvm.vm TDH.MEM.RANGE.BLOCK RCX=0x200001', 'kvm.vm TDH.MEM.TRACK RCX=0x100000000', 'kvm.vm TDH.MEM.PAGE.REMOVE RCX=0x200001']);
    expect(zap.filter((c) => c.name === 'TDH.MEM.RANGE.BLOCK')).toHaveLength(1);
    expect(zap.filter((c) => c.name === 'TDH.MEM.PAGE.REMOVE')).toHaveLength(1);
    // REMOVE: RCX = HPA, RDX = level 1 | FREE.
    expect(zap[2]!.ret).toEqual({ RAX: TDX_SUCCESS, RCX: 0x200200000n, RDX: 0x1n });
    const wbinvd = zap.slice(3);
    expect(wbinvd).toHaveLength(512);
    expect(wbinvd.every((c) => c.name === 'TDH.PHYMEM.PAGE.WBINVD' && c.ret!.RAX === TDX_SUCCESS)).toBe(true);
    expect(wbinvd.map((c) => c.regs.RCX)).toEqual(Array.from({ length: 512 }, (_, i) => tagged(0x200200000n + BigInt(i) * 0x1000n, TD_HKID)));
    const lastWbinvd = wbinvd.at(-1)!.step;
    const clear = run.deliveries[lastWbinvd + 1]!.message; // after the last WBINVD's return
    expect(`${clear.from} → ${clear.to} ${clear.name}`).toBe('kvm.vm → hw.mem MEM_ZERO');
    expect(clear.payload).toEqual({ pa: 0x200200000n, bytes: 0x200000n, keyid: 0, tag: 'kvm.vm' });
    expect(run.deliveries.filter((d) => d.seq > close && d.message.from === 'kvm.vm' && d.message.name === 'MEM_ZERO' && (d.message.payload as { pa: bigint }).pa >= 0x200000000n)).toHaveLength(1);
  });

  it('only the PD and PDPT are S-EPT pages to reclaim (the 2M leaf sits in the PD); the child count came back to 0', () => {
    expect(calls.filter((c) => c.name === 'TDH.PHYMEM.PAGE.RECLAIM' && c.ret!.RCX === BigInt(PT_EPT)).map(callText)).toEqual([
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x190001000',
      'kvm.vm TDH.PHYMEM.PAGE.RECLAIM RCX=0x190000000',
    ]);
    expectTornDown(run);
    // The secret was in the last 4K page of the 2M page; all 512 frames are zero now.
    const mem = ctx<MemoryContext>(run, 'hw.mem').pages;
    for (let p = 0x200200; p < 0x200400; p++) expect(mem[p] ?? { keyid: 0, words: {} }).toEqual({ keyid: 0, words: {} });
  });
});

describe('random scheduler: two vCPUs power off over 20 seeds each', () => {
  const busy = td(
    'poweroff-while-busy',
    [
      [{ op: 'accept', gpa: '0x200000', size: '0x1000' }, { op: 'store', gpa: '0x200000', size: 8, value: '0x5ec0e75ec2e75ec2' }, POWEROFF],
      // vCPU 1 works on its own page, converts another, then spins (no hlt: see the lost wake-up above).
      [
        { op: 'accept', gpa: '0x300000', size: '0x1000' },
        { op: 'store', gpa: '0x300000', size: 8, value: '0x5ec0000000000077' },
        { op: 'load', gpa: '0x300000', size: 8, reg: 'rbx' },
        { op: 'load', gpa: '0x100000', size: 8, reg: 'rcx' },
        { op: 'mapGpa', gpa: '0x400000', size: '0x1000', to: 'shared' },
        { op: 'load', gpa: '0x800000400000', size: 8, reg: 'rdx' },
      ],
    ],
    { image: IMAGE },
  );
  const example = runExample('td-poweroff').scenario;

  const check = (run: RecordedRun, seed: number) => {
    const what = `${run.scenario.name} seed ${seed}`;
    expectTornDown(run, what);
    const calls = seamcalls(run, stepOf(arrows(run), 'vmm → kvm.vm kvm-vm'));
    // §5b.4's order holds under every schedule: zaps, flushes (each on its own vCPU thread), VPFLUSHDONE, CACHE.WB, FREEID, reclaims.
    const names = calls.map((c) => c.name);
    const flushDone = names.indexOf('TDH.MNG.VPFLUSHDONE');
    expect(names.lastIndexOf('TDH.MEM.PAGE.REMOVE'), what).toBeLessThan(flushDone);
    expect(names.slice(flushDone, flushDone + 3), what).toEqual(['TDH.MNG.VPFLUSHDONE', 'TDH.PHYMEM.CACHE.WB', 'TDH.MNG.KEY.FREEID']);
    expect(calls.filter((c) => c.name === 'TDH.VP.FLUSH').map(callText), what).toEqual(['kvm.vcpu0 TDH.VP.FLUSH RCX=0x100010000', 'kvm.vcpu1 TDH.VP.FLUSH RCX=0x100020000']);
    expect(names.indexOf('TDH.PHYMEM.PAGE.RECLAIM'), what).toBeGreaterThan(flushDone);
    expect(calls.at(-1)!.regs.RCX, what).toBe(tagged(TDR, TDX_GLOBAL_KEYID));
  };

  it('td-poweroff, seeds 1–20: ok, every teardown SEAMCALL succeeds, the module ends in noTd', () => {
    for (let seed = 1; seed <= 20; seed++) check(runScenario(example, seed), seed);
  });

  it('vCPU 1 busy (accept, loads, MapGPA) when the power-off comes, seeds 0–19: the same, with the private-memory invariants after every delivery', () => {
    const signalled = new Set<string>();
    for (let seed = 0; seed < 20; seed++) {
      const run = runScenario(busy, seed);
      check(run, seed);
      // Where vCPU 1's thread was when the VMM stopped it: guest mode (IPI), in the kernel, or already out.
      const seq = arrows(run);
      const sig = seq.indexOf('vmm → kvm.vcpu1 SIG_IPI');
      signalled.add(sig < 0 ? 'not in KVM_RUN' : seq.slice(sig, sig + 8).includes('kvm.vcpu1 → hw.cpu1 IPI') ? 'in TDH.VP.ENTER' : 'in the kernel');
      expect(runChecked(busy, seed).outcome.status, `seed ${seed}`).toBe('ok');
    }
    // The seeds cover vCPU 1 being stopped in guest mode and outside it.
    expect(signalled.has('in TDH.VP.ENTER')).toBe(true);
    expect(signalled.size).toBeGreaterThan(1);
  });
});
