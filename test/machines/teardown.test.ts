/**
 * TD teardown in the TDX module (§5b.1, §5b.4, §7.7): the pure checks of machines/tdxModule/teardown.ts —
 * every refusal with its exact status — then the module's statechart driven with SEAMCALLs one at a time
 * (the lifecycle KEYS_CONFIGURED → BLOCKED → TEARDOWN → no TD, and what each state refuses), and the
 * scenario errors for the `out` guest op.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { callerLp, vpFlush, vpFlushDone, cacheWb, keyFreeid, reclaim, TDH_PHYMEM_CACHEWB_START_CMD, TDH_PHYMEM_CACHEWB_RESUME_CMD, type KeyOwner } from '../../machines/tdxModule/teardown.ts';
import { tdxModuleMachine, type TdxModuleContext } from '../../machines/tdxModule/tdxModule.ts';
import { MRTD_INITIAL, type TdMemory } from '../../machines/tdxModule/tdMemory.ts';
import { INITIAL_EPOCH } from '../../machines/tdxModule/tlbTracking.ts';
import type { Pamt } from '../../machines/tdxModule/pamt.ts';
import { HOST_LAYOUT, TD_HKID } from '../../machines/registry.ts';
import {
  TDX_SUCCESS,
  TDX_VCPU_NOT_ASSOCIATED,
  TDX_FLUSHVP_NOT_DONE,
  TDX_WBCACHE_NOT_COMPLETE,
  TDX_NO_HKID_READY_TO_WBCACHE,
  TDX_WBCACHE_RESUME_ERROR,
  TDX_LIFECYCLE_STATE_INCORRECT,
  TDX_TD_ASSOCIATED_PAGES_EXIST,
  TDX_TD_KEYS_NOT_CONFIGURED,
  TDX_PAGE_METADATA_INCORRECT,
  TDX_OPERAND_INVALID,
  TD_ATTR_SEPT_VE_DISABLE,
  PT_REG,
  PT_TDR,
  PT_TDCX,
  PT_TDVPR,
  PT_EPT,
  isTdxError,
  tdxStatusName,
  STEPPING_EPF_THRESHOLD,
} from '../../src/arch/tdxStatus.ts';
import { parseScenarioObject, parseScenarioText, ScenarioError } from '../../src/scenario/load.ts';
import { portWriteEffect } from '../../machines/vmm/acpiPm.ts';
import type { Gprs, Message, MessageKind } from '../../src/protocol/messages.ts';

const TDR = HOST_LAYOUT.tdrPa; // 0x100000000
const HKID_SHIFT = HOST_LAYOUT.hkidShift; // 46
const pfn = (pa: bigint) => Number(pa >> 12n);

// ---- The status values themselves (§4.7): each refusal below is asserted against these literals too ----

describe('teardown status codes (§4.7)', () => {
  it('have the module’s values; only NO_HKID_READY_TO_WBCACHE lacks the error bit (KVM treats it as success)', () => {
    expect(TDX_VCPU_NOT_ASSOCIATED).toBe(0x8000070200000000n);
    expect(TDX_FLUSHVP_NOT_DONE).toBe(0x8000082400000000n);
    expect(TDX_WBCACHE_NOT_COMPLETE).toBe(0x8000081700000000n);
    expect(TDX_NO_HKID_READY_TO_WBCACHE).toBe(0x0000082100000000n);
    expect(TDX_WBCACHE_RESUME_ERROR).toBe(0xc000082300000000n);
    expect(TDX_LIFECYCLE_STATE_INCORRECT).toBe(0xc000060700000000n);
    expect(TDX_TD_ASSOCIATED_PAGES_EXIST).toBe(0xc000040000000000n);
    expect(TDX_TD_KEYS_NOT_CONFIGURED).toBe(0x8000081000000000n);
    expect(isTdxError(TDX_NO_HKID_READY_TO_WBCACHE)).toBe(false);
    for (const s of [TDX_VCPU_NOT_ASSOCIATED, TDX_FLUSHVP_NOT_DONE, TDX_WBCACHE_NOT_COMPLETE, TDX_WBCACHE_RESUME_ERROR, TDX_LIFECYCLE_STATE_INCORRECT, TDX_TD_ASSOCIATED_PAGES_EXIST, TDX_TD_KEYS_NOT_CONFIGURED]) {
      expect(isTdxError(s), tdxStatusName(s)).toBe(true);
    }
    expect(tdxStatusName(TDX_PAGE_METADATA_INCORRECT | 1n)).toBe('TDX_PAGE_METADATA_INCORRECT|RCX');
    expect(tdxStatusName(TDX_OPERAND_INVALID | 1n)).toBe('TDX_OPERAND_INVALID|RCX');
  });
});

// ---- Pure functions ----

describe('callerLp: the logical processor a SEAMCALL runs on', () => {
  it('a vCPU thread runs on its own CPU; the VMM thread (VM-scope ioctls) on none of them', () => {
    expect(callerLp('kvm.vcpu0')).toBe(0);
    expect(callerLp('kvm.vcpu1')).toBe(1);
    expect(callerLp('kvm.vcpu12')).toBe(12);
    expect(callerLp('kvm.vm')).toBe(-1);
    expect(callerLp('vmm')).toBe(-1);
    expect(callerLp('kvm.mmu')).toBe(-1);
    expect(callerLp('kvm.vcpu')).toBe(-1);
    expect(callerLp('kvm.vcpu1x')).toBe(-1);
    expect(callerLp('guest.vcpu0')).toBe(-1);
  });
});

describe('vpFlush (TDH.VP.FLUSH, §7.7)', () => {
  it('on the associated LP: SUCCESS and the vCPU is associated with no LP any more', () => {
    expect(vpFlush(0, 0)).toEqual({ next: { assocLp: null }, regs: { RAX: TDX_SUCCESS } });
    expect(vpFlush(3, 3)).toEqual({ next: { assocLp: null }, regs: { RAX: TDX_SUCCESS } });
  });

  it('on another LP, from the VMM thread, or when already flushed: TDX_VCPU_NOT_ASSOCIATED 0x8000070200000000, nothing changes', () => {
    for (const [assoc, lp] of [
      [0, 1],
      [1, 0],
      [0, -1],
      [null, 0],
      [null, -1],
    ] as const) {
      expect(vpFlush(assoc, lp), `assocLp ${assoc} on LP ${lp}`).toEqual({ next: null, regs: { RAX: 0x8000070200000000n } });
    }
  });
});

describe('vpFlushDone (TDH.MNG.VPFLUSHDONE, §5b.4 step 2)', () => {
  it('no vCPU associated: SUCCESS, the HKID is FLUSHED and owes a cache write-back', () => {
    expect(vpFlushDone(0, true, 'RUNNABLE')).toEqual({ next: { state: 'FLUSHED', wbinvdPending: true }, regs: { RAX: TDX_SUCCESS } });
    expect(vpFlushDone(0, true, 'INITIALIZED')).toEqual({ next: { state: 'FLUSHED', wbinvdPending: true }, regs: { RAX: TDX_SUCCESS } });
  });

  it('a vCPU of an initialised TD still associated: TDX_FLUSHVP_NOT_DONE 0x8000082400000000', () => {
    expect(vpFlushDone(1, true, 'RUNNABLE')).toEqual({ next: null, regs: { RAX: 0x8000082400000000n } });
    expect(vpFlushDone(2, true, 'INITIALIZED')).toEqual({ next: null, regs: { RAX: 0x8000082400000000n } });
  });

  it('a TD whose TDCS is incomplete or not yet initialised has no vCPU to wait for (KVM’s INIT_VM error path)', () => {
    expect(vpFlushDone(1, false, 'UNINITIALIZED').regs.RAX).toBe(TDX_SUCCESS);
    expect(vpFlushDone(1, true, 'UNINITIALIZED').regs.RAX).toBe(TDX_SUCCESS);
    expect(vpFlushDone(1, false, 'RUNNABLE').regs.RAX).toBe(TDX_SUCCESS);
  });
});

describe('cacheWb (TDH.PHYMEM.CACHE.WB, §5b.4 step 2)', () => {
  const flushed: KeyOwner = { state: 'FLUSHED', wbinvdPending: true };

  it('START with a FLUSHED HKID: SUCCESS, the write-back is no longer owed, the HKID stays FLUSHED', () => {
    expect(TDH_PHYMEM_CACHEWB_START_CMD).toBe(0n);
    expect(cacheWb(flushed, 0n)).toEqual({ next: { state: 'FLUSHED', wbinvdPending: false }, regs: { RAX: TDX_SUCCESS } });
  });

  it('no HKID FLUSHED (ASSIGNED or FREE): TDX_NO_HKID_READY_TO_WBCACHE 0x0000082100000000', () => {
    expect(cacheWb({ state: 'ASSIGNED', wbinvdPending: false }, 0n)).toEqual({ next: null, regs: { RAX: 0x0000082100000000n } });
    expect(cacheWb({ state: 'FREE', wbinvdPending: false }, 0n)).toEqual({ next: null, regs: { RAX: 0x0000082100000000n } });
  });

  it('RESUME with no interrupted write-back: TDX_WBCACHE_RESUME_ERROR 0xc000082300000000', () => {
    expect(TDH_PHYMEM_CACHEWB_RESUME_CMD).toBe(1n);
    expect(cacheWb(flushed, 1n)).toEqual({ next: null, regs: { RAX: 0xc000082300000000n } });
    expect(cacheWb({ state: 'ASSIGNED', wbinvdPending: false }, 1n)).toEqual({ next: null, regs: { RAX: 0xc000082300000000n } });
  });

  it('an unknown command in RCX: TDX_OPERAND_INVALID|RCX 0xc000010000000001, checked first', () => {
    expect(cacheWb(flushed, 2n)).toEqual({ next: null, regs: { RAX: 0xc000010000000001n } });
    expect(cacheWb({ state: 'FREE', wbinvdPending: false }, 0xffn)).toEqual({ next: null, regs: { RAX: 0xc000010000000001n } });
  });
});

describe('keyFreeid (TDH.MNG.KEY.FREEID, §5b.4 step 2)', () => {
  it('before the cache write-back: TDX_WBCACHE_NOT_COMPLETE 0x8000081700000000', () => {
    expect(keyFreeid({ state: 'FLUSHED', wbinvdPending: true })).toEqual({ next: null, regs: { RAX: 0x8000081700000000n } });
  });

  it('after it: SUCCESS and the HKID is FREE', () => {
    expect(keyFreeid({ state: 'FLUSHED', wbinvdPending: false })).toEqual({ next: { state: 'FREE', wbinvdPending: false }, regs: { RAX: TDX_SUCCESS } });
  });
});

describe('reclaim (TDH.PHYMEM.PAGE.RECLAIM, §5b.4 steps 3–5)', () => {
  const tdcx = 0x100011000n;
  const tdvpr = 0x100010000n;
  const sept = 0x190000000n;
  const huge = 0x200200000n; // a 2M private page, one PAMT entry at its first 4K frame
  const pamt: Pamt = {
    [pfn(TDR)]: { type: PT_TDR, owner: TDR, bepoch: 0, tdxLevel: 0 },
    [pfn(tdcx)]: { type: PT_TDCX, owner: TDR, bepoch: 0, tdxLevel: 0 },
    [pfn(tdvpr)]: { type: PT_TDVPR, owner: TDR, bepoch: 0, tdxLevel: 0 },
    [pfn(sept)]: { type: PT_EPT, owner: TDR, bepoch: 3, tdxLevel: 0 },
    [pfn(huge)]: { type: PT_REG, owner: TDR, bepoch: 0, tdxLevel: 1 },
  };
  const td: TdMemory = {
    tdr: TDR,
    hkid: TD_HKID,
    sharedMask: 1n << 47n,
    topLevel: 3,
    septRoot: null,
    sept: {},
    pamt,
    epoch: INITIAL_EPOCH,
    opState: 'RUNNABLE',
    childCount: 3 + 512,
    mrtd: MRTD_INITIAL,
  };
  const zeros = { RCX: 0n, RDX: 0n, R8: 0n };

  it('in TEARDOWN: SUCCESS, RCX = PAMT type, RDX = owner TDR, R8 = size; the page is PT_NDA and the TDR’s child count drops', () => {
    const cases = [
      [tdcx, PT_TDCX, 5n],
      [tdvpr, PT_TDVPR, 6n],
      [sept, PT_EPT, 8n],
    ] as const;
    for (const [pa, type, literal] of cases) {
      const r = reclaim(td, pa, HKID_SHIFT, true);
      expect(BigInt(type)).toBe(literal);
      expect(r.regs, `RECLAIM ${pa.toString(16)}`).toEqual({ RAX: TDX_SUCCESS, RCX: literal, RDX: TDR, R8: 0n });
      expect(r.next!.pamt[pfn(pa)]).toBeUndefined();
      expect(r.next!.childCount).toBe(td.childCount - 1);
      // Nothing else of the PAMT changes.
      expect(Object.keys(r.next!.pamt)).toHaveLength(Object.keys(pamt).length - 1);
    }
  });

  it('a 2M page through its first frame: R8 = 1, the child count drops by 512', () => {
    const r = reclaim(td, huge, HKID_SHIFT, true);
    expect(r.regs).toEqual({ RAX: TDX_SUCCESS, RCX: BigInt(PT_REG), RDX: TDR, R8: 1n });
    expect(r.next!.childCount).toBe(3);
    expect(r.next!.pamt[pfn(huge)]).toBeUndefined();
  });

  it('a 4K frame inside that 2M page: TDX_OPERAND_INVALID|RCX, but RCX/RDX/R8 already describe the page', () => {
    const r = reclaim(td, huge + 0x5000n, HKID_SHIFT, true);
    expect(r).toEqual({ next: null, regs: { RAX: 0xc000010000000001n, RCX: BigInt(PT_REG), RDX: TDR, R8: 1n } });
  });

  it('the TDR while the TD owns other pages: TDX_TD_ASSOCIATED_PAGES_EXIST 0xc000040000000000 with RCX = PT_TDR (4)', () => {
    expect(reclaim(td, TDR, HKID_SHIFT, true)).toEqual({ next: null, regs: { RAX: 0xc000040000000000n, RCX: 4n, RDX: TDR, R8: 0n } });
  });

  it('the TDR once it owns nothing: SUCCESS, RCX = 4, the PAMT forgets it', () => {
    const last: TdMemory = { ...td, childCount: 0, pamt: { [pfn(TDR)]: pamt[pfn(TDR)]! } };
    const r = reclaim(last, TDR, HKID_SHIFT, true);
    expect(r.regs).toEqual({ RAX: TDX_SUCCESS, RCX: 4n, RDX: TDR, R8: 0n });
    expect(r.next!.pamt).toEqual({});
    expect(r.next!.childCount).toBe(0);
  });

  it('outside TEARDOWN: TDX_LIFECYCLE_STATE_INCORRECT 0xc000060700000000, with the page’s type in RCX, for every TD page', () => {
    for (const [pa, type] of [
      [tdcx, 5n],
      [tdvpr, 6n],
      [sept, 8n],
      [TDR, 4n],
    ] as const) {
      expect(reclaim(td, pa, HKID_SHIFT, false)).toEqual({ next: null, regs: { RAX: 0xc000060700000000n, RCX: type, RDX: TDR, R8: 0n } });
    }
    // Lifecycle is checked before the TDR's children.
    expect(reclaim({ ...td, childCount: 7 }, TDR, HKID_SHIFT, false).regs.RAX).toBe(TDX_LIFECYCLE_STATE_INCORRECT);
  });

  it('a page the module does not own: TDX_PAGE_METADATA_INCORRECT|RCX 0xc000030000000001, RCX/RDX/R8 = 0', () => {
    expect(reclaim(td, 0x100009000n, HKID_SHIFT, true)).toEqual({ next: null, regs: { RAX: 0xc000030000000001n, ...zeros } });
    expect(reclaim(td, 0x100009000n, HKID_SHIFT, false)).toEqual({ next: null, regs: { RAX: 0xc000030000000001n, ...zeros } });
  });

  it('RCX not 4K-aligned, or carrying KeyID bits (≥ bit 46): TDX_OPERAND_INVALID|RCX 0xc000010000000001, RCX/RDX/R8 = 0', () => {
    expect(reclaim(td, tdcx + 0x800n, HKID_SHIFT, true)).toEqual({ next: null, regs: { RAX: 0xc000010000000001n, ...zeros } });
    expect(reclaim(td, tdcx | (BigInt(TD_HKID) << 46n), HKID_SHIFT, true)).toEqual({ next: null, regs: { RAX: 0xc000010000000001n, ...zeros } });
    expect(reclaim(td, TDR | (16n << 46n), HKID_SHIFT, true)).toEqual({ next: null, regs: { RAX: 0xc000010000000001n, ...zeros } });
    // The operand check comes before the PAMT and lifecycle checks.
    expect(reclaim(td, 0x100009800n, HKID_SHIFT, false).regs.RAX).toBe(0xc000010000000001n);
  });
});

// ---- The module's statechart, driven one SEAMCALL at a time ----

type Sent = { to: string; kind: string; name: string; payload: Gprs };

const TDVPR0 = HOST_LAYOUT.tdvprPa(0);
const TDVPR1 = HOST_LAYOUT.tdvprPa(1);
const tdcsPages = [0, 1, 2, 3, 4, 5].map(HOST_LAYOUT.tdcsPa);
const tdcx0 = [0, 1, 2, 3, 4].map((i) => HOST_LAYOUT.tdcxPa(0, i));

function tdxModule() {
  const actor = createActor(tdxModuleMachine, { input: { gpaw: 48, tdvpr: [TDVPR0, TDVPR1], hkidShift: HKID_SHIFT, zeroStepThreshold: STEPPING_EPF_THRESHOLD } });
  const sent: Sent[] = [];
  const other: unknown[] = [];
  actor.on('*', (e) => {
    if (e.type === 'tdxsim.send') sent.push({ to: e.to, kind: e.kind, name: e.name, payload: e.payload as Gprs });
    else other.push(e);
  });
  actor.start();
  let id = 0;
  /** Deliver one SEAMCALL and return the module's answer (exactly one seamcall-return to the caller). */
  const call = (from: string, name: string, regs: Record<string, unknown>): Gprs => {
    const before = sent.length;
    actor.send({ type: name, msg: { id: id++, from, to: 'tdx', kind: 'seamcall' as MessageKind, name, payload: regs, cause: null } as unknown as Message } as never);
    const out = sent.slice(before);
    expect(out, `${from} ${name}`).toHaveLength(1);
    expect(out[0]).toMatchObject({ to: from, kind: 'seamcall-return', name });
    return out[0]!.payload;
  };
  const state = () => actor.getSnapshot().value as string;
  const ctx = () => actor.getSnapshot().context as TdxModuleContext;
  return { call, state, ctx, other };
}

/** KVM_TDX_INIT_VM, KVM_TDX_INIT_VCPU for vCPU 0 (on CPU 0), KVM_TDX_FINALIZE_VM (§5b.3), without memory. */
function runnableTd() {
  const m = tdxModule();
  const ok = (from: string, name: string, regs: Record<string, unknown>) => expect(m.call(from, name, regs), name).toEqual({ RAX: TDX_SUCCESS });
  ok('kvm.vm', 'TDH.MNG.CREATE', { RCX: TDR, RDX: BigInt(TD_HKID) });
  ok('kvm.vm', 'TDH.MNG.KEY.CONFIG', { RCX: TDR });
  for (const pa of tdcsPages) ok('kvm.vm', 'TDH.MNG.ADDCX', { RCX: pa, RDX: TDR });
  ok('kvm.vm', 'TDH.MNG.INIT', { RCX: TDR, RDX: HOST_LAYOUT.tdParamsPa, tdParams: { attributes: TD_ATTR_SEPT_VE_DISABLE, configFlags: 0x4n, eptpControls: 0x1en } });
  ok('kvm.vcpu0', 'TDH.VP.CREATE', { RCX: TDVPR0, RDX: TDR });
  for (const pa of tdcx0) ok('kvm.vcpu0', 'TDH.VP.ADDCX', { RCX: pa, RDX: TDVPR0 });
  ok('kvm.vcpu0', 'TDH.VP.INIT', { RCX: TDVPR0, RDX: 0n, R8: 0n });
  ok('kvm.vm', 'TDH.MR.FINALIZE', { RCX: TDR });
  return m;
}

describe('tdx statechart: the lifecycle of §5b.1 and each state’s refusals', () => {
  it('built: runnable, HKID ASSIGNED, vCPU 0 associated with LP 0 by TDH.VP.INIT on CPU 0, TDR child count 12', () => {
    const m = runnableTd();
    expect(m.state()).toBe('runnable');
    expect(m.ctx().kot).toEqual({ state: 'ASSIGNED', wbinvdPending: false });
    expect(m.ctx().vcpus.map((v) => v.assocLp)).toEqual([0, null]);
    expect(m.ctx().mem.childCount).toBe(6 + 1 + 5);
  });

  it('while RUNNABLE: KEY.FREEID and RECLAIM are LIFECYCLE_STATE_INCORRECT, CACHE.WB has no HKID to write back, VPFLUSHDONE waits for VP.FLUSH', () => {
    const m = runnableTd();
    expect(m.call('kvm.vm', 'TDH.MNG.KEY.FREEID', { RCX: TDR })).toEqual({ RAX: 0xc000060700000000n });
    expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: tdcsPages[0] })).toEqual({ RAX: 0xc000060700000000n, RCX: 5n, RDX: TDR, R8: 0n });
    expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: TDR })).toEqual({ RAX: 0xc000060700000000n, RCX: 4n, RDX: TDR, R8: 0n });
    expect(m.call('kvm.vm', 'TDH.PHYMEM.CACHE.WB', { RCX: 0n })).toEqual({ RAX: 0x0000082100000000n });
    expect(m.call('kvm.vm', 'TDH.MNG.VPFLUSHDONE', { RCX: TDR })).toEqual({ RAX: 0x8000082400000000n });
    expect(m.state()).toBe('runnable');
    expect(m.ctx().kot).toEqual({ state: 'ASSIGNED', wbinvdPending: false });
    expect(m.ctx().mem.pamt[pfn(tdcsPages[0]!)]).toMatchObject({ type: PT_TDCX });
  });

  it('TDH.VP.FLUSH only on the vCPU’s own LP (§7.7): from the VMM thread or CPU 1 NOT_ASSOCIATED, an unknown TDVPR PAGE_METADATA_INCORRECT|RCX', () => {
    const m = runnableTd();
    expect(m.call('kvm.vm', 'TDH.VP.FLUSH', { RCX: TDVPR0 })).toEqual({ RAX: 0x8000070200000000n });
    expect(m.call('kvm.vcpu1', 'TDH.VP.FLUSH', { RCX: TDVPR0 })).toEqual({ RAX: 0x8000070200000000n });
    expect(m.call('kvm.vcpu0', 'TDH.VP.FLUSH', { RCX: 0x100030000n })).toEqual({ RAX: 0xc000030000000001n });
    // vCPU 1 was never created: never associated.
    expect(m.call('kvm.vcpu1', 'TDH.VP.FLUSH', { RCX: TDVPR1 })).toEqual({ RAX: 0x8000070200000000n });
    expect(m.ctx().vcpus[0]!.assocLp).toBe(0);
    expect(m.call('kvm.vcpu0', 'TDH.VP.FLUSH', { RCX: TDVPR0 })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.ctx().vcpus[0]!.assocLp).toBeNull();
    // Flushed once: a second flush finds it associated nowhere.
    expect(m.call('kvm.vcpu0', 'TDH.VP.FLUSH', { RCX: TDVPR0 })).toEqual({ RAX: 0x8000070200000000n });
    expect(m.state()).toBe('runnable');
  });

  it('the whole teardown in KVM’s order, with every out-of-order call refused on the way; the TDR reclaim ends in noTd', () => {
    const m = runnableTd();
    expect(m.call('kvm.vcpu0', 'TDH.VP.FLUSH', { RCX: TDVPR0 })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.call('kvm.vm', 'TDH.MNG.VPFLUSHDONE', { RCX: TDR })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.state()).toBe('blocked');
    expect(m.ctx().kot).toEqual({ state: 'FLUSHED', wbinvdPending: true });

    // BLOCKED: the keys are no longer usable: entries and memory SEAMCALLs are TDX_TD_KEYS_NOT_CONFIGURED.
    expect(m.call('kvm.vcpu0', 'TDH.VP.ENTER', { vcpu: 0, RCX: TDVPR0 })).toEqual({ RAX: 0x8000081000000000n });
    expect(m.call('kvm.vm', 'TDH.MEM.TRACK', { RCX: TDR })).toEqual({ RAX: 0x8000081000000000n });
    expect(m.call('kvm.vm', 'TDH.MEM.RANGE.BLOCK', { RCX: 0x200000n, RDX: TDR })).toEqual({ RAX: 0x8000081000000000n });
    expect(m.call('kvm.vm', 'TDH.MEM.PAGE.REMOVE', { RCX: 0x200000n, RDX: TDR })).toEqual({ RAX: 0x8000081000000000n });
    expect(m.call('kvm.vcpu0', 'TDH.VP.FLUSH', { RCX: TDVPR0 })).toEqual({ RAX: 0x8000081000000000n });
    // Nor may VPFLUSHDONE run twice, or pages come back before TEARDOWN.
    expect(m.call('kvm.vm', 'TDH.MNG.VPFLUSHDONE', { RCX: TDR })).toEqual({ RAX: 0xc000060700000000n });
    expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: tdcx0[0] })).toEqual({ RAX: 0xc000060700000000n, RCX: 5n, RDX: TDR, R8: 0n });
    // KEY.FREEID before the write-back.
    expect(m.call('kvm.vm', 'TDH.MNG.KEY.FREEID', { RCX: TDR })).toEqual({ RAX: 0x8000081700000000n });
    expect(m.state()).toBe('blocked');
    // CACHE.WB: RESUME with nothing to resume, a bad command, then START.
    expect(m.call('kvm.vm', 'TDH.PHYMEM.CACHE.WB', { RCX: 1n })).toEqual({ RAX: 0xc000082300000000n });
    expect(m.call('kvm.vm', 'TDH.PHYMEM.CACHE.WB', { RCX: 2n })).toEqual({ RAX: 0xc000010000000001n });
    expect(m.ctx().kot.wbinvdPending).toBe(true);
    expect(m.call('kvm.vm', 'TDH.PHYMEM.CACHE.WB', { RCX: 0n })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.ctx().kot).toEqual({ state: 'FLUSHED', wbinvdPending: false });
    expect(m.call('kvm.vm', 'TDH.MNG.KEY.FREEID', { RCX: TDR })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.state()).toBe('teardown');
    expect(m.ctx().kot).toEqual({ state: 'FREE', wbinvdPending: false });
    // TEARDOWN: no HKID left to write back; still no memory SEAMCALLs.
    expect(m.call('kvm.vm', 'TDH.PHYMEM.CACHE.WB', { RCX: 0n })).toEqual({ RAX: 0x0000082100000000n });
    expect(m.call('kvm.vm', 'TDH.MEM.TRACK', { RCX: TDR })).toEqual({ RAX: 0x8000081000000000n });
    expect(m.call('kvm.vm', 'TDH.MNG.KEY.FREEID', { RCX: TDR })).toEqual({ RAX: 0xc000060700000000n });

    // The TDR first: it still owns 12 pages.
    expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: TDR })).toEqual({ RAX: 0xc000040000000000n, RCX: 4n, RDX: TDR, R8: 0n });
    expect(m.state()).toBe('teardown');
    // Bad operands.
    expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: TDR | (16n << 46n) })).toEqual({ RAX: 0xc000010000000001n, RCX: 0n, RDX: 0n, R8: 0n });
    expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: tdcsPages[0]! + 8n })).toEqual({ RAX: 0xc000010000000001n, RCX: 0n, RDX: 0n, R8: 0n });
    expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: HOST_LAYOUT.tdParamsPa })).toEqual({ RAX: 0xc000030000000001n, RCX: 0n, RDX: 0n, R8: 0n });

    // tdx_vcpu_free: TDCX pages, then the TDVPR, on the vCPU's thread.
    for (const pa of tdcx0) expect(m.call('kvm.vcpu0', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: pa })).toEqual({ RAX: TDX_SUCCESS, RCX: 5n, RDX: TDR, R8: 0n });
    expect(m.call('kvm.vcpu0', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: TDVPR0 })).toEqual({ RAX: TDX_SUCCESS, RCX: 6n, RDX: TDR, R8: 0n });
    // A page already given back is the host's: PAGE_METADATA_INCORRECT.
    expect(m.call('kvm.vcpu0', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: TDVPR0 })).toEqual({ RAX: 0xc000030000000001n, RCX: 0n, RDX: 0n, R8: 0n });
    expect(m.ctx().mem.childCount).toBe(6);
    // tdx_reclaim_td_control_pages: the TDCS pages (the S-EPT root among them), then the TDR.
    for (const pa of tdcsPages) expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: pa })).toEqual({ RAX: TDX_SUCCESS, RCX: 5n, RDX: TDR, R8: 0n });
    expect(m.ctx().mem.childCount).toBe(0);
    expect(m.state()).toBe('teardown');
    expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: TDR })).toEqual({ RAX: TDX_SUCCESS, RCX: 4n, RDX: TDR, R8: 0n });

    // Nothing of the TD is left.
    expect(m.state()).toBe('noTd');
    const c = m.ctx();
    expect(c.kot).toEqual({ state: 'FREE', wbinvdPending: false });
    expect(c.mem.pamt).toEqual({});
    expect(c.mem.childCount).toBe(0);
    expect(c.mem.septRoot).toBeNull();
    expect(c.tdcsPages).toEqual([]);
    expect(c.vcpus.map((v) => [v.state, v.assocLp])).toEqual([
      ['NONE', null],
      ['NONE', null],
    ]);
    // In noTd there is no lifecycle to move: VPFLUSHDONE / FREEID are LIFECYCLE_STATE_INCORRECT, VP.FLUSH KEYS_NOT_CONFIGURED.
    expect(m.call('kvm.vm', 'TDH.MNG.VPFLUSHDONE', { RCX: TDR })).toEqual({ RAX: 0xc000060700000000n });
    expect(m.call('kvm.vm', 'TDH.MNG.KEY.FREEID', { RCX: TDR })).toEqual({ RAX: 0xc000060700000000n });
    expect(m.call('kvm.vcpu0', 'TDH.VP.FLUSH', { RCX: TDVPR0 })).toEqual({ RAX: 0x8000081000000000n });
    expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: TDR })).toEqual({ RAX: 0xc000030000000001n, RCX: 0n, RDX: 0n, R8: 0n });
    // The TDR page is the host's again: a new TD can be created on it.
    expect(m.call('kvm.vm', 'TDH.MNG.CREATE', { RCX: TDR, RDX: BigInt(TD_HKID) })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.state()).toBe('hkidAssigned');
    expect(m.other).toEqual([]); // no failure or unexpected-message signal on the way
  });

  it('KVM_TDX_INIT_VM failing after TDH.MNG.CREATE: VPFLUSHDONE from HKID_ASSIGNED, CACHE.WB, FREEID, then the TDR alone', () => {
    const m = tdxModule();
    expect(m.call('kvm.vm', 'TDH.MNG.CREATE', { RCX: TDR, RDX: BigInt(TD_HKID) })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.state()).toBe('hkidAssigned');
    expect(m.call('kvm.vm', 'TDH.MNG.VPFLUSHDONE', { RCX: TDR })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.state()).toBe('blocked');
    expect(m.call('kvm.vm', 'TDH.PHYMEM.CACHE.WB', { RCX: 0n })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.call('kvm.vm', 'TDH.MNG.KEY.FREEID', { RCX: TDR })).toEqual({ RAX: TDX_SUCCESS });
    expect(m.call('kvm.vm', 'TDH.PHYMEM.PAGE.RECLAIM', { RCX: TDR })).toEqual({ RAX: TDX_SUCCESS, RCX: 4n, RDX: TDR, R8: 0n });
    expect(m.state()).toBe('noTd');
  });
});

// ---- Scenario validation of `out` ----

const TD_VM = { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] };
const GMEM = [{ gpa: '0x0', size: '0x80000000', guestMemfd: true }];
const withOut = (vm: { type: string; gpaw?: number; attributes?: string[] }, op: Record<string, unknown>) => ({
  name: 'bad-out',
  vm,
  memslots: vm.type === 'tdx' ? GMEM : [{ gpa: '0x0', size: '0x80000000' }],
  vcpus: [{ program: [{ op: 'hlt' }, op] }],
});

function scenarioError(f: () => unknown): ScenarioError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    return e as ScenarioError;
  }
  throw new Error('expected a ScenarioError');
}

describe('scenario: the out op', () => {
  it('a valid out parses: port and size as numbers, value as bigint', () => {
    const s = parseScenarioObject(withOut(TD_VM, { op: 'out', port: 0x604, size: 2, value: '0x2000' }));
    expect(s.vcpus[0]!.program[1]).toEqual({ op: 'out', port: 0x604, size: 2, value: 0x2000n });
    const edge = parseScenarioObject(withOut(TD_VM, { op: 'out', port: 0xffff, size: 4, value: '0xffffffff' }));
    // Ports may be written as hex strings, like every other number in a scenario.
    expect(parseScenarioObject(withOut(TD_VM, { op: 'out', port: '0x604', size: 2, value: '0x2000' })).vcpus[0]!.program[1]).toMatchObject({ port: 0x604 });
    expect(edge.vcpus[0]!.program[1]).toEqual({ op: 'out', port: 0xffff, size: 4, value: 0xffffffffn });
  });

  it('in a vmx scenario: SEMANTIC error on vcpus[0].program[1].port saying port I/O is TD-only', () => {
    const e = scenarioError(() => parseScenarioObject(withOut({ type: 'vmx', gpaw: 48 }, { op: 'out', port: 0x604, size: 2, value: '0x2000' })));
    expect(e.code).toBe('SEMANTIC');
    expect(e.fieldPath).toEqual(['vcpus', 0, 'program', 1, 'port']);
    expect(e.message).toBe('<scenario object>: vcpus[0].program[1].port: port I/O is modelled for a TD guest only (vm.type "tdx"), where it becomes a #VE and TDG.VP.VMCALL<Instruction.IO>');
  });

  it('a value too large for its size: SEMANTIC error naming the value field and the size', () => {
    const e1 = scenarioError(() => parseScenarioObject(withOut(TD_VM, { op: 'out', port: 0x80, size: 1, value: '0x100' })));
    expect(e1.code).toBe('SEMANTIC');
    expect(e1.fieldPath).toEqual(['vcpus', 0, 'program', 1, 'value']);
    expect(e1.message).toBe('<scenario object>: vcpus[0].program[1].value: 0x100 does not fit in 1 byte(s)');
    const e2 = scenarioError(() => parseScenarioObject(withOut(TD_VM, { op: 'out', port: 0x604, size: 2, value: '0x12000' })));
    expect(e2.message).toBe('<scenario object>: vcpus[0].program[1].value: 0x12000 does not fit in 2 byte(s)');
    const e4 = scenarioError(() => parseScenarioObject(withOut(TD_VM, { op: 'out', port: 0x604, size: 4, value: '0x100000000' })));
    expect(e4.fieldPath).toEqual(['vcpus', 0, 'program', 1, 'value']);
  });

  it('a port above 0xffff or a size of 8: SCHEMA errors naming port / size', () => {
    const port = scenarioError(() => parseScenarioObject(withOut(TD_VM, { op: 'out', port: 0x10000, size: 1, value: 0 })));
    expect(port.code).toBe('SCHEMA');
    expect(port.fieldPath).toEqual(['vcpus', 0, 'program', 1, 'port']);
    expect(port.detail).toBe('an I/O port is 0..0xffff');
    const size = scenarioError(() => parseScenarioObject(withOut(TD_VM, { op: 'out', port: 0x80, size: 8, value: 0 })));
    expect(size.code).toBe('SCHEMA');
    expect(size.fieldPath).toEqual(['vcpus', 0, 'program', 1, 'size']);
    expect(size.detail).toBe('port I/O is 1, 2 or 4 bytes');
  });

  it('from YAML the errors carry file:line:col of the field', () => {
    const yaml = (type: string, op: string) =>
      ['name: bad', `vm: { type: ${type}, gpaw: 48 }`, 'vcpus:', '  - program:', '      - { op: hlt }', op, ''].join('\n');
    const vmx = scenarioError(() => parseScenarioText(yaml('vmx', '      - { op: out, port: 0x604, size: 2, value: 0x2000 }'), 'bad.yaml'));
    expect(vmx.message).toMatch(/^bad\.yaml:6:\d+: vcpus\[0\]\.program\[1\]\.port: port I\/O is modelled for a TD guest only/);
    const big = scenarioError(() => parseScenarioText(yaml('tdx', ['      - op: out', '        port: 0x80', '        size: 1', '        value: 0x1ff'].join('\n')), 'bad.yaml'));
    expect(big.message).toBe('bad.yaml:9:16: vcpus[0].program[1].value: 0x1ff does not fit in 1 byte(s)');
  });
});

describe('the q35 ACPI PM control register (machines/vmm/acpiPm.ts)', () => {
  it('SLP_EN with SLP_TYP 0 at 0x604 is the soft power-off; other PM writes are the device\'s; other ports are unassigned', () => {
    expect(portWriteEffect(0x604, 2, 0x2000n)).toBe('poweroff');
    expect(portWriteEffect(0x604, 2, 0x2400n)).toBe('pm'); // SLP_TYP 1: suspend, not modelled
    expect(portWriteEffect(0x604, 2, 0x0n)).toBe('pm'); // no SLP_EN
    expect(portWriteEffect(0x604, 1, 0x0n)).toBe('pm');
    expect(portWriteEffect(0x80, 1, 0x2000n)).toBe('unassigned');
  });
});
