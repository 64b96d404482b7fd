/**
 * The module's TDR operand check (tdrOperand.ts) and the try-locks a SEAMCALL meets while another caller
 * holds them across the module's steps (moduleLocks.ts), driven one message at a time: the statuses are
 * written here from tdx-semantics.md §5a.4 / §7.2 and the 1.5.01 handlers, not from the model's code.
 */
import { describe, expect, it } from 'vitest';
import { tdxModule, runnableTd, enter, TDR, TDVPR0, type TdxDriver } from './tdxDriver.ts';
import { HOST_LAYOUT, TD_HKID } from '../../machines/registry.ts';
import { septLevelState } from '../../src/arch/septEntry.ts';
import { tdxStatusName, TDX_SUCCESS, TD_ATTR_SEPT_VE_DISABLE } from '../../src/arch/tdxStatus.ts';

const G = 0x80000000n;
const SEPT_PAGES = [0x1c0000000n, 0x1c0001000n, 0x1c0002000n];
const PAGE = 0x1c0100000n;
const NEW_PAGE = 0x1c0101000n;
const SOURCE = 0x140000000n;
const KT = 'host.kthread0';
const OTHER = 'host.kthread1';

const name = (regs: { RAX?: bigint }) => tdxStatusName(regs.RAX!);
const rd = (m: TdxDriver, regs: Record<string, bigint> = {}, from = OTHER) => m.call(from, 'TDH.MEM.SEPT.RD', { RCX: G, RDX: TDR, ...regs });

/** The S-EPT pages above G: levels 3, 2, 1. */
function septPath(m: TdxDriver): void {
  const infos = [0x3n, G | 2n, G | 1n];
  infos.forEach((rcx, i) => expect(name(m.call(KT, 'TDH.MEM.SEPT.ADD', { RCX: rcx, RDX: TDR, R8: SEPT_PAGES[i]! }))).toBe('TDX_SUCCESS'));
}

/** The build up to TDH.MNG.INIT, stopping after `stage`. */
function buildTo(stage: 'created' | 'keyed' | 'threeTdcs' | 'allTdcs' | 'initialized'): TdxDriver {
  const m = tdxModule();
  const ok = (n: string, regs: Record<string, unknown>) => expect(m.call('kvm.vm', n, regs).RAX, n).toBe(TDX_SUCCESS);
  ok('TDH.MNG.CREATE', { RCX: TDR, RDX: BigInt(TD_HKID) });
  if (stage === 'created') return m;
  ok('TDH.MNG.KEY.CONFIG', { RCX: TDR });
  if (stage === 'keyed') return m;
  for (const i of [0, 1, 2]) ok('TDH.MNG.ADDCX', { RCX: HOST_LAYOUT.tdcsPa(i), RDX: TDR });
  if (stage === 'threeTdcs') return m;
  for (const i of [3, 4, 5]) ok('TDH.MNG.ADDCX', { RCX: HOST_LAYOUT.tdcsPa(i), RDX: TDR });
  if (stage === 'allTdcs') return m;
  ok('TDH.MNG.INIT', { RCX: TDR, RDX: HOST_LAYOUT.tdParamsPa, tdParams: { attributes: TD_ATTR_SEPT_VE_DISABLE, configFlags: 0x4n, eptpControls: 0x1en } });
  return m;
}

describe('the TDR operand (RDX; RCX for TRACK), before op_state', () => {
  it('with no TD, no page is a TDR: PAGE_METADATA_INCORRECT|RDX', () => {
    expect(name(rd(tdxModule()))).toBe('TDX_PAGE_METADATA_INCORRECT|RDX');
  });
  it('HKID_ASSIGNED: TD_KEYS_NOT_CONFIGURED, but a misaligned RDX is refused first', () => {
    const m = buildTo('created');
    expect(name(rd(m))).toBe('TDX_TD_KEYS_NOT_CONFIGURED');
    expect(name(rd(m, { RDX: TDR + 8n }))).toBe('TDX_OPERAND_INVALID|RDX');
    expect(name(m.call(OTHER, 'TDH.MEM.TRACK', { RCX: TDR }))).toBe('TDX_TD_KEYS_NOT_CONFIGURED');
  });
  it('KEYS_CONFIGURED with 3 of 6 TDCS pages: TDCS_NOT_ALLOCATED; with all six but before TDH.MNG.INIT: OP_STATE_INCORRECT', () => {
    expect(name(rd(buildTo('threeTdcs')))).toBe('TDX_TDCS_NOT_ALLOCATED');
    expect(name(rd(buildTo('allTdcs')))).toBe('TDX_OP_STATE_INCORRECT');
  });
  it('an address with KeyID bits or above MAX_PA is OPERAND_INVALID; a page of another type is PAGE_METADATA_INCORRECT', () => {
    const m = buildTo('initialized');
    expect(name(rd(m, { RDX: TDR | (1n << 46n) }))).toBe('TDX_OPERAND_INVALID|RDX');
    expect(name(rd(m, { RDX: TDR | (1n << 52n) }))).toBe('TDX_OPERAND_INVALID|RDX');
    expect(name(rd(m, { RDX: HOST_LAYOUT.tdcsPa(0) }))).toBe('TDX_PAGE_METADATA_INCORRECT|RDX');
    expect(name(rd(m, { RDX: 0x1c0000000n }))).toBe('TDX_PAGE_METADATA_INCORRECT|RDX'); // PT_NDA
    expect(name(m.call(OTHER, 'TDH.MEM.TRACK', { RCX: HOST_LAYOUT.tdcsPa(1) }))).toBe('TDX_PAGE_METADATA_INCORRECT|RCX');
    expect(name(m.call(OTHER, 'TDH.MEM.PAGE.AUG', { RCX: G, RDX: TDR + 0x800n, R8: PAGE }))).toBe('TDX_OPERAND_INVALID|RDX');
  });
  it('SEPT.ADD reads flags from RDX bits 11:0, so the same RDX that SEPT.RD refuses passes there', () => {
    const m = buildTo('initialized');
    expect(name(rd(m, { RDX: TDR | 1n }))).toBe('TDX_OPERAND_INVALID|RDX');
    expect(name(m.call(KT, 'TDH.MEM.SEPT.ADD', { RCX: 0x3n, RDX: TDR | 1n, R8: SEPT_PAGES[0]! }))).toBe('TDX_SUCCESS');
  });
  it('BLOCKED (after VPFLUSHDONE): a bad RDX is still refused as such before TD_KEYS_NOT_CONFIGURED', () => {
    const m = runnableTd();
    m.call('kvm.vcpu0', 'TDH.VP.FLUSH', { RCX: TDVPR0 });
    expect(name(m.call('kvm.vm', 'TDH.MNG.VPFLUSHDONE', { RCX: TDR }))).toBe('TDX_SUCCESS');
    expect(name(rd(m))).toBe('TDX_TD_KEYS_NOT_CONFIGURED');
    expect(name(rd(m, { RDX: HOST_LAYOUT.tdvprPa(0) }))).toBe('TDX_PAGE_METADATA_INCORRECT|RDX');
  });
});

describe('locks held across the module steps, as the next caller meets them (§7.2)', () => {
  it('PAGE.ADD holds the TDR exclusively while memory copies the page: SEPT.RD and TRACK see BUSY on their TDR operand', () => {
    const m = buildTo('initialized');
    septPath(m);
    const sent = m.deliver(KT, 'seamcall', 'TDH.MEM.PAGE.ADD', { RCX: G, RDX: TDR, R8: PAGE, R9: SOURCE });
    expect(sent).toMatchObject([{ to: 'hw.mem', name: 'MEM_COPY' }]);
    expect(name(rd(m))).toBe('TDX_OPERAND_BUSY|RDX');
    expect(name(m.call(OTHER, 'TDH.MEM.TRACK', { RCX: TDR }))).toBe('TDX_OPERAND_BUSY|RCX');
    // The lock is the given page's PAMT entry: a page that is not the TDR is free to lock, and then wrong.
    expect(name(rd(m, { RDX: HOST_LAYOUT.tdcsPa(0) }))).toBe('TDX_PAGE_METADATA_INCORRECT|RDX');
    expect(m.deliver('hw.mem', 'mem', 'MEM_DONE', { tag: KT })).toMatchObject([{ to: KT, name: 'TDH.MEM.PAGE.ADD', payload: { RAX: TDX_SUCCESS } }]);
    expect(rd(m)).toMatchObject({ RAX: TDX_SUCCESS, RDX: septLevelState(0, 'MAPPED') });
  });
  it('a vCPU in the TD holds the TDR shared until its TD exit: MR.EXTEND and PAGE.ADD meet it before op_state', () => {
    const m = runnableTd();
    expect(name(m.call(OTHER, 'TDH.MR.EXTEND', { RCX: G, RDX: TDR }))).toBe('TDX_OP_STATE_INCORRECT');
    enter(m);
    expect(m.ctx().vcpus[0]!.state).toBe('ACTIVE');
    expect(name(m.call(OTHER, 'TDH.MR.EXTEND', { RCX: G, RDX: TDR }))).toBe('TDX_OPERAND_BUSY|RDX');
    expect(name(m.call(OTHER, 'TDH.MEM.PAGE.ADD', { RCX: G, RDX: TDR, R8: PAGE, R9: SOURCE }))).toBe('TDX_OPERAND_BUSY|RDX');
    // Shared with shared: the memory leaves go on.
    expect(name(rd(m))).toBe('TDX_EPT_WALK_FAILED|RCX');
  });

  describe('RELOCATE of an accepted page: the copy keeps the tree shared, the entry, the TDR and both pages locked', () => {
    /** INITIALIZED, G MAPPED by PAGE.ADD (no TRACK needed before the TD runs), RELOCATE's copy in flight. */
    function relocating(): TdxDriver {
      const m = buildTo('initialized');
      septPath(m);
      m.deliver(KT, 'seamcall', 'TDH.MEM.PAGE.ADD', { RCX: G, RDX: TDR, R8: PAGE, R9: SOURCE });
      m.deliver('hw.mem', 'mem', 'MEM_DONE', { tag: KT });
      expect(m.deliver(KT, 'seamcall', 'TDH.MEM.PAGE.RELOCATE', { RCX: G, RDX: TDR, R8: NEW_PAGE })).toMatchObject([
        { to: 'hw.mem', name: 'MEM_COPY', payload: { src: PAGE, dst: NEW_PAGE, srcKeyid: TD_HKID, dstKeyid: TD_HKID, bytes: 0x1000n } },
      ]);
      return m;
    }
    it('BLOCK wants the tree exclusively: BUSY|SEPT_TREE', () => {
      expect(name(relocating().call(OTHER, 'TDH.MEM.RANGE.BLOCK', { RCX: G, RDX: TDR }))).toBe('TDX_OPERAND_BUSY|SEPT_TREE');
    });
    it('SEPT.RD of the entry meets its lock: BUSY|RCX with the entry, still MAPPED on the old page', () => {
      const r = rd(relocating());
      expect(name(r)).toBe('TDX_OPERAND_BUSY|RCX');
      expect(r.RDX).toBe(septLevelState(0, 'MAPPED'));
      expect(r.RCX! & 0xffffffffff000n).toBe(PAGE);
    });
    it('the new page is locked in the PAMT: an AUG handing it over is BUSY|R8; MR.EXTEND (TDR exclusive) is BUSY|RDX', () => {
      const m = relocating();
      expect(name(m.call(OTHER, 'TDH.MEM.PAGE.AUG', { RCX: G + 0x1000n, RDX: TDR, R8: NEW_PAGE }))).toBe('TDX_OPERAND_BUSY|R8');
      expect(name(m.call(OTHER, 'TDH.MR.EXTEND', { RCX: G, RDX: TDR }))).toBe('TDX_OPERAND_BUSY|RDX');
    });
    it('when the copy is done: RCX = the old page, the entry MAPPED on the new one, the old page free for AUG', () => {
      const m = relocating();
      expect(m.deliver('hw.mem', 'mem', 'MEM_DONE', { tag: KT })).toMatchObject([{ to: KT, name: 'TDH.MEM.PAGE.RELOCATE', payload: { RAX: TDX_SUCCESS, RCX: PAGE, RDX: 0n } }]);
      const r = rd(m);
      expect([r.RAX, r.RDX, r.RCX! & 0xffffffffff000n]).toEqual([TDX_SUCCESS, septLevelState(0, 'MAPPED'), NEW_PAGE]);
      expect(name(m.call(OTHER, 'TDH.MEM.PAGE.AUG', { RCX: G + 0x1000n, RDX: TDR, R8: PAGE }))).toBe('TDX_SUCCESS');
    });
    it('onto the page it already has: OPERAND_INVALID|R8; onto a page the TD owns: PAGE_METADATA_INCORRECT|R8', () => {
      const m = buildTo('initialized');
      septPath(m);
      m.deliver(KT, 'seamcall', 'TDH.MEM.PAGE.ADD', { RCX: G, RDX: TDR, R8: PAGE, R9: SOURCE });
      m.deliver('hw.mem', 'mem', 'MEM_DONE', { tag: KT });
      expect(name(m.call(KT, 'TDH.MEM.PAGE.RELOCATE', { RCX: G, RDX: TDR, R8: PAGE }))).toBe('TDX_OPERAND_INVALID|R8');
      expect(name(m.call(KT, 'TDH.MEM.PAGE.RELOCATE', { RCX: G, RDX: TDR, R8: SEPT_PAGES[2]! }))).toBe('TDX_PAGE_METADATA_INCORRECT|R8');
    });
  });
});
