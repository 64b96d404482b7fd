/**
 * What the TDX module puts in a TD exit and in its own bookkeeping, checked against the module source:
 * the TD epoch after TDH.MNG.INIT, R9 of an external-interrupt exit, the zero-step logging of a PENDING
 * page's exit, the exit the stepping filter makes up, and the metadata SEAMCALLs of the TD build.
 */
import { describe, expect, it } from 'vitest';
import { enter, runnableTd, tdxModule, TDR, TDVPR0, type TdxDriver } from './tdxDriver.ts';
import { HOST_LAYOUT, TD_HKID } from '../../machines/registry.ts';
import { EXIT_REASON_EPT_VIOLATION, EXIT_REASON_EXTERNAL_INTERRUPT, externalInterruptInfo, CALL_FUNCTION_SINGLE_VECTOR, isExternalIntr } from '../../src/arch/vmx.ts';
import { TDX_SUCCESS, TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION, TDCS_EXEC_TSC_OFFSET, TDCS_EXEC_TSC_MULTIPLIER, decodeEeq } from '../../src/arch/tdxStatus.ts';
import type { Gprs } from '../../src/protocol/messages.ts';

const RIP = 0xffffffff81000000n;
const GPA = 0x200000n;
const PAGE = 0x200200000n;

/** The S-EPT levels above 0x200000 and the page itself, AUGed: PENDING (§5a.3). */
function augPage(m: TdxDriver) {
  // SEPT.ADD names the entry by its level and the GPA aligned to what that entry maps (512G, 1G, 2M).
  for (const [pageInfo, page] of [
    [0x0n | 3n, 0x190000000n],
    [0x0n | 2n, 0x190001000n],
    [GPA | 1n, 0x190002000n],
  ] as const) {
    expect(m.call('kvm.vcpu0', 'TDH.MEM.SEPT.ADD', { RCX: pageInfo, RDX: TDR, R8: page }).RAX).toBe(TDX_SUCCESS);
  }
  expect(m.call('kvm.vcpu0', 'TDH.MEM.PAGE.AUG', { RCX: GPA, RDX: TDR, R8: PAGE }).RAX).toBe(TDX_SUCCESS);
}

/** A hardware EPT violation of a load at RIP on `gpa` (exit qualification: read, GLA valid and translated). */
const loadViolation = (m: TdxDriver, gpa: bigint) =>
  m.deliver('hw.cpu0', 'vm-exit', 'EPT_VIOLATION', { vcpu: 0, exitReason: EXIT_REASON_EPT_VIOLATION, exitQualification: 0x181n, gpa, gla: 0xffff888000200000n, rip: RIP, insn: null });

describe('TDH.MNG.INIT (§5b.3 step 2, §7.4)', () => {
  it('starts the TD epoch at 1 with both refcounts 0; before it the TDCS epoch fields are zero', () => {
    const m = tdxModule();
    m.call('kvm.vm', 'TDH.MNG.CREATE', { RCX: TDR, RDX: BigInt(TD_HKID) });
    m.call('kvm.vm', 'TDH.MNG.KEY.CONFIG', { RCX: TDR });
    for (const i of [0, 1, 2, 3, 4, 5]) m.call('kvm.vm', 'TDH.MNG.ADDCX', { RCX: HOST_LAYOUT.tdcsPa(i), RDX: TDR });
    expect(m.ctx().mem.epoch).toEqual({ tdEpoch: 0, refcount: [0, 0] });
    m.call('kvm.vm', 'TDH.MNG.INIT', { RCX: TDR, RDX: HOST_LAYOUT.tdParamsPa, tdParams: { attributes: 0n, configFlags: 0x4n, eptpControls: 0x1en } });
    expect(m.ctx().mem.epoch).toEqual({ tdEpoch: 1, refcount: [0, 0] });
  });

  it('the first entry counts the vCPU into epoch 1 (refcount[1]); its vCPU epoch was 0', () => {
    const m = runnableTd();
    expect(m.ctx().vcpus[0]!.vcpuEpoch).toBe(0);
    enter(m);
    expect(m.ctx().mem.epoch).toEqual({ tdEpoch: 1, refcount: [0, 1] });
    expect(m.ctx().vcpus[0]!.vcpuEpoch).toBe(1);
  });
});

describe('TDH.MNG.RD and TDH.VP.WR (§5b.3 steps 2–3)', () => {
  it('TDH.MNG.RD answers the TSC offset and multiplier by their field ids', () => {
    const m = runnableTd();
    expect(TDCS_EXEC_TSC_OFFSET).toBe(0x110000000000000an);
    expect(TDCS_EXEC_TSC_MULTIPLIER).toBe(0x110000000000000bn);
    expect(m.call('kvm.vm', 'TDH.MNG.RD', { RCX: TDR, RDX: TDCS_EXEC_TSC_OFFSET })).toEqual({ RAX: TDX_SUCCESS, R8: 0n });
    expect(m.call('kvm.vm', 'TDH.MNG.RD', { RCX: TDR, RDX: TDCS_EXEC_TSC_MULTIPLIER })).toEqual({ RAX: TDX_SUCCESS, R8: 1n << 48n });
  });

  it('TDH.VP.WR writes the masked value into the TD VMCS field; an unknown TDVPR is OPERAND_INVALID|RCX', () => {
    const m = runnableTd();
    expect(m.call('kvm.vcpu0', 'TDH.VP.WR', { RCX: TDVPR0, RDX: 0x4000n, R8: 0xffn, R9: 0x80n })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.ctx().vcpus[0]!.vmcsWrites).toEqual({ '0x4000': 0x80n });
    expect(m.call('kvm.vcpu0', 'TDH.VP.WR', { RCX: 0x100030000n, RDX: 0x2n, R8: 0xf2n, R9: 0xffffn })).toEqual({ RAX: 0xc000010000000001n });
  });
});

describe('TD exits', () => {
  it('EXTERNAL_INTERRUPT: R9 is the VM-exit interruption information, valid bit 31 and the vector — never 0, which KVM takes for a bug', () => {
    const m = runnableTd();
    enter(m);
    const info = externalInterruptInfo(CALL_FUNCTION_SINGLE_VECTOR);
    expect(info).toBe(0x800000fb);
    expect(isExternalIntr(info)).toBe(true);
    expect(isExternalIntr(0)).toBe(false);
    const out = m.deliver('hw.cpu0', 'vm-exit', 'EXTERNAL_INTERRUPT', { vcpu: 0, exitReason: EXIT_REASON_EXTERNAL_INTERRUPT, rip: RIP, interruptionInfo: info });
    expect(out).toEqual([{ to: 'kvm.vcpu0', kind: 'td-exit', name: 'EXTERNAL_INTERRUPT', payload: { vcpu: 0, RAX: 1n, RCX: 0n, RDX: 0n, R8: 0n, R9: 0x800000fbn } }]);
  });

  it('a PENDING page touched with PENDING_VE_DISABLE: EEQ type 6, and logged for zero-step like any private TD exit (td_ept_violation.c)', () => {
    const m = runnableTd();
    augPage(m);
    for (const expected of [0, 1, 2]) {
      enter(m);
      const [exit] = loadViolation(m, GPA);
      expect(exit).toMatchObject({ to: 'kvm.vcpu0', name: 'EPT_VIOLATION' });
      expect(decodeEeq((exit!.payload as Gprs).RDX!).type).toBe(TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION);
      // The same RIP each time: the count goes up (the module's count less one, zeroStep.ts).
      expect(m.ctx().vcpus[0]!.stepping).toMatchObject({ rip: RIP, count: expected, lastGpa: GPA });
    }
  });

  it('a PENDING page with #VE enabled: the #VE is injected and nothing is logged', () => {
    const m = runnableTd({ attributes: 0n });
    augPage(m);
    enter(m);
    expect(loadViolation(m, GPA).map((s) => `${s.to} ${s.name}`)).toEqual(['hw.cpu0 VE_INJECT']);
    expect(m.ctx().vcpus[0]!.stepping).toMatchObject({ rip: null, count: 0, lastGpa: null });
  });

  it('the stepping filter refusing an entry makes up the exit as the module does: qualification "write" (0x2), no EEQ, R9 0', () => {
    const m = runnableTd({ zeroStepThreshold: 2 });
    // Three faults at one RIP on an absent page: the third records the GPA (threshold 2).
    for (let i = 0; i < 3; i++) {
      enter(m);
      loadViolation(m, GPA);
    }
    expect(m.ctx().vcpus[0]!.stepping.gpas).toEqual([GPA]);
    const out = enter(m);
    expect(out).toEqual([{ to: 'kvm.vcpu0', kind: 'td-exit', name: 'EPT_VIOLATION', payload: { vcpu: 0, RAX: 48n, RCX: 0x2n, RDX: 0n, R8: GPA, R9: 0n } }]);
  });
});

describe('the TLB flush at TDH.VP.ENTER (§5c.2 steps 3 and 6, §7.4)', () => {
  const names = (out: { to: string; name: string }[]) => out.map((s) => `${s.to} ${s.name}`);
  /** A TDH.MEM.TRACK by kvm.vm through its epoch step: the TD epoch moves on. */
  const track = (m: TdxDriver) => {
    const out = m.step(m.deliver('kvm.vm', 'seamcall', 'TDH.MEM.TRACK', { RCX: TDR }));
    expect(out).toMatchObject([{ to: 'kvm.vm', name: 'TDH.MEM.TRACK', payload: { RAX: TDX_SUCCESS } }]);
  };

  it("the first entry finds the vCPU's epoch (0) stale: an INVEPT of the TD's EPTP on the LP, which then enters", () => {
    const m = runnableTd();
    // EPTP: the S-EPT root's PA (the fourth TDCS page) with TD_PARAMS' EPTP controls (4 levels, write-back).
    expect(m.ctx().eptp).toBe(HOST_LAYOUT.tdcsPa(3) | 0x1en);
    const out = enter(m);
    expect(out).toEqual([
      { to: 'hw.cpu0', kind: 'tlb', name: 'INVEPT', payload: { vcpu: 0, type: 1, eptp: HOST_LAYOUT.tdcsPa(3) | 0x1en, then: { name: 'VMLAUNCH', payload: { vcpu: 0, tdcallReturn: null, emulated: null } } } },
    ]);
    expect(m.ctx().vcpus[0]!.flushTlb).toBe(false);
  });

  it('an entry in the epoch the vCPU last entered in does not flush; after a TRACK the next one does', () => {
    const m = runnableTd();
    enter(m);
    loadViolation(m, GPA);
    expect(names(enter(m))).toEqual(['guest.vcpu0 VMRESUME']);
    loadViolation(m, GPA);
    track(m);
    expect(m.ctx().mem.epoch.tdEpoch).toBe(2);
    expect(names(enter(m))).toEqual(['hw.cpu0 INVEPT']);
  });

  it('an entry the stepping filter refuses leaves the flush owed, also across a second refusal in the same epoch', () => {
    const m = runnableTd({ zeroStepThreshold: 2 });
    for (let i = 0; i < 3; i++) {
      enter(m);
      loadViolation(m, GPA);
    }
    track(m);
    // The recorded GPA is still unmapped: td_entry_stepping_filter makes up the exit, the guest does not run.
    expect(names(enter(m))).toEqual(['kvm.vcpu0 EPT_VIOLATION']);
    expect(m.ctx().vcpus[0]).toMatchObject({ vcpuEpoch: 2, flushTlb: true });
    // The vCPU's epoch is the TD's now, but the guest has not run on the LP since the TRACK: the flush stays owed.
    expect(names(enter(m))).toEqual(['kvm.vcpu0 EPT_VIOLATION']);
    expect(m.ctx().vcpus[0]).toMatchObject({ vcpuEpoch: 2, flushTlb: true });
  });
});
