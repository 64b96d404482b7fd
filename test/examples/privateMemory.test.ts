/**
 * Private memory flows (§5b.3, §6.ii, §5a.5, §5a.6): the TD build as SEAMCALLs, accept-first, both
 * touch-first outcomes, and #VE while VE_INFO is valid → #DF. Assertions are on the message sequence,
 * the S-EPT entry states, the mirror SPTEs, page contents and statuses a kernel developer would check.
 */
import { describe, expect, it } from 'vitest';
import { arrows, exampleFile, payload, runExample, runScenario, type RecordedRun } from '../helpers.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import { decodeEeq, decodeAcceptEeqInfo, PT_REG, PT_EPT, PT_TDR, PT_TDCX, PT_TDVPR } from '../../src/arch/tdxStatus.ts';
import { septLeaves } from '../../machines/tdxModule/septTree.ts';
import type { TdxModuleContext } from '../../machines/tdxModule/tdxModule.ts';
import type { MemoryContext } from '../../machines/hw/memory.ts';
import { TD_HKID } from '../../machines/registry.ts';

const ctx = <T>(run: RecordedRun, actor: string, step = run.deliveries.length): T =>
  actorView(run.deliveries[step - 1]!.world, run.model.indexOf.get(actor)!).context as T;
const toTdx = (run: RecordedRun) => run.deliveries.filter((d) => d.message.to === 'tdx' && d.message.kind === 'seamcall').map((d) => d.message.name);

describe('private-accept: build, accept-first, contents (§5b.3, §6.ii A)', () => {
  const run = runExample('private-accept');
  const seq = arrows(run);

  it('builds the TD with the documented SEAMCALL sequence before the first TDH.VP.ENTER', () => {
    const calls = toTdx(run);
    const firstEnter = calls.indexOf('TDH.VP.ENTER');
    expect(calls.slice(0, firstEnter)).toEqual([
      'TDH.MNG.CREATE',
      'TDH.MNG.KEY.CONFIG',
      ...Array(6).fill('TDH.MNG.ADDCX'),
      'TDH.MNG.INIT',
      // tdx_td_init reads back the TSC offset and multiplier the module computed.
      'TDH.MNG.RD',
      'TDH.MNG.RD',
      'TDH.VP.CREATE',
      ...Array(5).fill('TDH.VP.ADDCX'),
      'TDH.VP.INIT',
      // tdx_vcpu_init: posted-interrupt vector, descriptor, pin-based control.
      ...Array(3).fill('TDH.VP.WR'),
      ...Array(3).fill('TDH.MEM.SEPT.ADD'),
      'TDH.MEM.PAGE.ADD',
      ...Array(16).fill('TDH.MR.EXTEND'),
      'TDH.MR.FINALIZE',
    ]);
    const tdx = ctx<TdxModuleContext>(run, 'tdx', seq.indexOf('vmm → kvm.vcpu0 KVM_RUN') + 1);
    expect(tdx.mem.opState).toBe('RUNNABLE');
    expect(tdx.mem.mrtd.updates).toBe(18); // PAGE.ADD + 16 × MR.EXTEND + FINALIZE
    expect(tdx.mem.pamt[0x100000]!.type).toBe(PT_TDR);
    expect(tdx.mem.pamt[0x100004]!.type).toBe(PT_TDCX); // TDCS page index 3 = the S-EPT root
    expect(tdx.mem.septRoot).toBe(0x100004);
    expect(tdx.mem.pamt[0x100010]!.type).toBe(PT_TDVPR);
  });

  it('TDH.MNG.RD after TDH.MNG.INIT and TDH.VP.WR after TDH.VP.INIT carry the real field ids and values (§5b.3 steps 2–3)', () => {
    const sent = run.deliveries.filter((d) => d.message.to === 'tdx' && (d.message.name === 'TDH.MNG.RD' || d.message.name === 'TDH.VP.WR')).map((d) => d.message.payload);
    expect(sent).toEqual([
      // TDCS_EXEC(TSC_OFFSET), TDCS_EXEC(TSC_MULTIPLIER): class 17 << 56 | field 10, 11.
      { RCX: 0x100000000n, RDX: 0x110000000000000an },
      { RCX: 0x100000000n, RDX: 0x110000000000000bn },
      // TDVPS_VMCS(POSTED_INTR_NV) = POSTED_INTR_VECTOR 0xf2, 16-bit mask.
      { RCX: 0x100010000n, RDX: 0x2n, R8: 0xf2n, R9: 0xffffn },
      // TDVPS_VMCS(POSTED_INTR_DESC_ADDR) = the descriptor's PA, all 64 bits.
      { RCX: 0x100010000n, RDX: 0x2016n, R8: 0x10001f000n, R9: 0xffffffffffffffffn },
      // TDVPS_VMCS(PIN_BASED_VM_EXEC_CONTROL) |= PIN_BASED_POSTED_INTR (bit 7).
      { RCX: 0x100010000n, RDX: 0x4000n, R8: 0x80n, R9: 0x80n },
    ]);
    const vm = ctx<{ tscOffset: bigint; tscMultiplier: bigint }>(run, 'kvm.vm', seq.indexOf('vmm → kvm.vcpu0 KVM_RUN') + 1);
    // The model's virtual TSC runs at the native rate (multiplier 1.0 in 16.48 fixed point) and reads 0 at TDH.MNG.INIT.
    expect([vm.tscOffset, vm.tscMultiplier]).toEqual([0n, 0x1000000000000n]);
    const tdx = ctx<TdxModuleContext>(run, 'tdx', seq.indexOf('vmm → kvm.vcpu0 KVM_RUN') + 1);
    expect(tdx.vcpus[0]!.vmcsWrites).toEqual({ '0x2': 0xf2n, '0x2016': 0x10001f000n, '0x4000': 0x80n });
  });

  it('the image page reads back through the S-EPT with the TD key', () => {
    const guest = ctx<{ regs: Record<string, bigint> }>(run, 'guest.vcpu0');
    expect(guest.regs.rax).toBe(0x1122334455667788n);
  });

  it('ACCEPT of a page the host never added exits with EEQ ACCEPT (req 4K, stopped at the FREE 2M entry)', () => {
    const i = seq.indexOf('tdx → kvm.vcpu0 EPT_VIOLATION');
    const exit = payload<{ RAX: bigint; RCX: bigint; RDX: bigint; R8: bigint }>(run, i + 1);
    expect(exit.RAX).toBe(48n);
    expect(exit.RCX).toBe(0x2n); // write, R/W/X of the entry found = 000
    expect(exit.R8).toBe(0x200000n);
    const eeq = decodeEeq(exit.RDX);
    expect(eeq.typeName).toBe('ACCEPT');
    expect(decodeAcceptEeqInfo(eeq.info)).toEqual({ reqLevel: 0, errLevel: 1, state: 0, leaf: false });
    // KVM: freeze → SEPT.ADD(2M level) → write, freeze → AUG → write, all under read mmu_lock, then re-enter.
    const after = seq.slice(i + 1, seq.indexOf('kvm.vcpu0 → tdx TDH.VP.ENTER', i));
    expect(after.filter((s) => s.startsWith('kvm.vcpu0 → tdx'))).toEqual(['kvm.vcpu0 → tdx TDH.MEM.SEPT.ADD', 'kvm.vcpu0 → tdx TDH.MEM.PAGE.AUG']);
    expect(after.filter((s) => s.includes('MMU_LOCK_READ'))).toHaveLength(1);
  });

  it('ends with both pages MAPPED, the mirror leaf in hex, the page zeroed by ACCEPT and then written', () => {
    const tdx = ctx<TdxModuleContext>(run, 'tdx');
    expect(septLeaves(tdx.mem.sept, tdx.mem.septRoot!, tdx.mem.topLevel)).toEqual([
      { gpa: 0x100000n, tdxLevel: 0, state: 'MAPPED', hpa: 0x200100000n },
      { gpa: 0x200000n, tdxLevel: 0, state: 'MAPPED', hpa: 0x200200000n },
    ]);
    expect(tdx.mem.pamt[0x200200]).toMatchObject({ type: PT_REG, tdxLevel: 0 });
    expect(tdx.mem.pamt[0x190003]).toMatchObject({ type: PT_EPT });
    // TDH.MNG.INIT started the epoch at 1; nothing was blocked, so no TRACK advanced it.
    expect(tdx.mem.epoch).toEqual({ tdEpoch: 1, refcount: [0, 0] });
    const mmu = ctx<{ pages: Record<number, Record<number, bigint>> }>(run, 'kvm.mmu');
    expect(mmu.pages[0x181003]![0]).toBe(0x8600000200200b37n);
    const guest = ctx<{ regs: Record<string, bigint> }>(run, 'guest.vcpu0');
    expect(guest.regs.rbx).toBe(0n);
    expect(guest.regs.rcx).toBe(0xfeedf00dn);
    const mem = ctx<MemoryContext>(run, 'hw.mem');
    expect(mem.pages[0x200200]).toEqual({ keyid: TD_HKID, words: { 1: 0xfeedf00dn } });
  });

  it('the guest’s private data never appears in a message to KVM or the VMM', () => {
    const leaks = run.deliveries.filter((d) => /^(kvm\.|vmm)/.test(d.message.to) && JSON.stringify(d.message.payload, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v)).includes('feedf00d'));
    expect(leaks).toEqual([]);
    expect(run.outcome.status).toBe('ok');
  });
});

describe('touch before accept (§6.ii B, §5a.6)', () => {
  it('SEPT_VE_DISABLE: the PENDING page exits with EEQ PENDING_EPT_VIOLATION and KVM kills the VM', () => {
    const run = runExample('private-touch-sept-ve-disable');
    const exits = run.deliveries.filter((d) => d.message.name === 'EPT_VIOLATION' && d.message.to === 'kvm.vcpu0').map((d) => decodeEeq((d.message.payload as { RDX: bigint }).RDX).typeName);
    expect(exits).toEqual(['NONE', 'PENDING_EPT_VIOLATION']);
    expect(run.outcome.status).toBe('failure');
    expect(run.outcome.failures[0]).toMatchObject({ actor: 'kvm.vcpu0', reason: 'VM dead' });
    expect(run.outcome.failures[0]!.detail).toContain('Guest access before accepting 0x300000 on vCPU 0');
    const tdx = ctx<TdxModuleContext>(run, 'tdx');
    expect(septLeaves(tdx.mem.sept, tdx.mem.septRoot!, tdx.mem.topLevel)).toEqual([{ gpa: 0x300000n, tdxLevel: 0, state: 'PENDING', hpa: 0x200300000n }]);
  });

  it('#VE enabled: the module injects #VE for the PENDING page and the Linux handler panics', () => {
    const run = runExample('private-touch-ve');
    const seq = arrows(run);
    expect(seq.slice(-8)).toEqual([
      'hw.cpu0 → tdx EPT_VIOLATION',
      'tdx → hw.cpu0 VE_INJECT',
      'hw.cpu0 → guest.vcpu0 #VE',
      'guest.vcpu0 → hw.cpu0 TDG.VP.VEINFO.GET',
      'hw.cpu0 → tdx TDG.VP.VEINFO.GET',
      'tdx → hw.cpu0 VE_INFO_GET',
      'hw.cpu0 → tdx VE_INFO',
      'tdx → guest.vcpu0 TDG.VP.VEINFO.GET',
    ]);
    expect(seq.filter((s) => s === 'tdx → kvm.vcpu0 EPT_VIOLATION')).toHaveLength(1);
    expect(run.outcome.status).toBe('failure');
    expect(run.outcome.failures[0]).toMatchObject({ actor: 'guest.vcpu0', reason: 'guest panic' });
    expect(run.outcome.failures[0]!.detail).toContain('Unexpected EPT-violation on private memory.');
  });

  it('a second #VE while VE_INFO is valid is a #DF', () => {
    const run = runExample('ve-double-fault');
    const seq = arrows(run);
    expect(seq.filter((s) => s.endsWith(' #VE'))).toEqual(['hw.cpu0 → guest.vcpu0 #VE']);
    expect(seq.at(-2)).toBe('tdx → hw.cpu0 VE_INJECT');
    expect(seq.at(-1)).toBe('hw.cpu0 → guest.vcpu0 #DF');
    expect(payload(run, seq.length)).toMatchObject({ vector: 8 });
    const hw = ctx<{ veInfo: { valid: number; gpa: bigint } }>(run, 'hw.cpu0');
    expect(hw.veInfo).toMatchObject({ valid: 0xffffffff, gpa: 0x300000n }); // the first #VE, never read
    expect(run.outcome.status).toBe('failure');
    expect(run.outcome.failures[0]).toMatchObject({ actor: 'guest.vcpu0', reason: 'guest panic' });
  });
});

describe('private-accept with privateHugePages (the huge-page series)', () => {
  it('KVM_TDX_INIT_MEM_REGION maps the image page at 4K (private_max_mapping_level is 4K until RUNNABLE), so the measured TD builds and runs', () => {
    const { scenario } = loadScenarioFile(exampleFile('private-accept'));
    const run = runScenario(withPolicies(scenario, { privateHugePages: true }));
    const add = run.deliveries.find((d) => d.message.name === 'TDH.MEM.PAGE.ADD' && d.message.to === 'tdx')!;
    // PAGE.ADD takes a 4K GPA; the mirror leaf before it is a 4K leaf, under three SEPT.ADDs (levels 3, 2 and 1).
    expect(add.message.payload).toMatchObject({ RCX: 0x100000n });
    const build = run.deliveries.filter((d) => d.seq < add.seq && d.message.name === 'TDH.MEM.SEPT.ADD' && d.message.to === 'tdx').map((d) => (d.message.payload as { RCX: bigint }).RCX & 7n);
    expect(build).toEqual([3n, 2n, 1n]);
    expect(run.outcome.status).toBe('ok');
    const tdx = ctx<TdxModuleContext>(run, 'tdx');
    expect(septLeaves(tdx.mem.sept, tdx.mem.septRoot!, tdx.mem.topLevel).find((l) => l.gpa === 0x100000n)).toEqual({ gpa: 0x100000n, tdxLevel: 0, state: 'MAPPED', hpa: 0x200100000n });
  });
});
