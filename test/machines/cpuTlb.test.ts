/**
 * The CPU's TLB (machines/hw/tlb.ts, §1.2): a translated access is cached per (EPT, page) and the next
 * access it allows uses it without walking; an INVEPT empties it — the TDX module's single-context one at
 * TDH.VP.ENTER goes on to the VM entry on that LP (§5c.2 steps 3 and 6), KVM's global one
 * (tdx_flush_tlb_all) returns to the vCPU thread.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { cpuMachine, type CpuContext } from '../../machines/hw/cpu.ts';
import { tlbFill, tlbLookup } from '../../machines/hw/tlb.ts';
import { makeNonLeafSpte, PT_PAGE_SIZE_MASK } from '../../src/arch/spte.ts';
import type { Message, MessageKind } from '../../src/protocol/messages.ts';

const SHARED = 1n << 47n;
const nonLeaf = (pgLevel: number) => ({ pgLevel, tablePfn: 1, index: 0, spte: makeNonLeafSpte({ childPfn: 0x181000n, adEnabled: true }) });
/** A 4K leaf mapping `hpa` with permissions `rwx` (bits 2:0). */
const leaf4k = (hpa: bigint, rwx = 0x7n) => ({ pgLevel: 1, tablePfn: 2, index: 0, spte: hpa | rwx });
const walkTo = (last: { pgLevel: number; tablePfn: number; index: number; spte: bigint }) => [4, 3, 2].filter((l) => l > last.pgLevel).map(nonLeaf).concat(last);

function cpu() {
  const actor = createActor(cpuMachine, { input: { vcpu: 0, vmType: 'tdx', gpaw: 48 } });
  const sent: string[] = [];
  const payloads: Record<string, unknown>[] = [];
  actor.on('tdxsim.send', (e) => {
    sent.push(`${e.to} ${e.name}`);
    payloads.push(e.payload as Record<string, unknown>);
  });
  actor.start();
  let id = 0;
  const deliver = (from: string, kind: MessageKind, name: string, payload: Record<string, unknown>) =>
    actor.send({ type: name, msg: { id: id++, from, to: 'hw.cpu0', kind, name, payload, cause: null } as unknown as Message } as never);
  const load = (gpa: bigint) => deliver('guest.vcpu0', 'insn', 'LOAD', { vcpu: 0, rip: 0xffffffff81000000n, gla: 0n, gpa, size: 8, length: 3, reg: 'rax' });
  const store = (gpa: bigint) => deliver('guest.vcpu0', 'insn', 'STORE', { vcpu: 0, rip: 0xffffffff81000000n, gla: 0n, gpa, size: 8, length: 3, value: 1n });
  /** The walk's answer from the table's owner, then memory's. */
  const walked = (owner: string, ept: string, gpa: bigint, last: ReturnType<typeof leaf4k>, keyid: number) =>
    deliver(owner, 'ept-walk', 'EPT_WALK_RESULT', { vcpu: 0, ept, gpa, path: walkTo(last), keyid });
  const memDone = (name: 'MEM_DATA' | 'MEM_DONE') => deliver('hw.mem', 'mem', name, { pa: 0n, value: 0n, integrity: true, tag: 'hw.cpu0' });
  const tlb = () => (actor.getSnapshot().context as CpuContext).tlb;
  return { sent, payloads, deliver, load, store, walked, memDone, tlb };
}

describe('hw.cpu: the TLB', () => {
  it('a second access to the same private page goes to memory without a walk, with the KeyID of the first', () => {
    const c = cpu();
    c.load(0x200008n);
    expect(c.sent).toEqual(['tdx EPT_WALK']);
    c.walked('tdx', 'secure', 0x200008n, leaf4k(0x200200000n), 17);
    expect(c.sent.slice(1)).toEqual(['hw.mem MEM_READ']);
    c.memDone('MEM_DATA');
    expect(c.tlb()).toHaveLength(1);
    c.store(0x200ff0n);
    expect(c.sent.slice(3)).toEqual(['hw.mem MEM_WRITE']);
    expect(c.payloads[3]).toMatchObject({ pa: 0x200200ff0n, keyid: 17 });
    c.memDone('MEM_DONE');
    // Another page, or the same GFN through the shared EPT, is a miss.
    c.load(0x201000n);
    expect(c.sent.at(-1)).toBe('tdx EPT_WALK');
    c.walked('tdx', 'secure', 0x201000n, leaf4k(0x200201000n), 17);
    c.memDone('MEM_DATA');
    c.load(0x200000n | SHARED);
    expect(c.sent.at(-1)).toBe('kvm.mmu EPT_WALK');
  });

  it('an entry that does not allow the access (read-only leaf, store) is a miss: the walk decides', () => {
    const c = cpu();
    c.load(0x200000n);
    c.walked('tdx', 'secure', 0x200000n, leaf4k(0x200200000n, 0x1n), 17);
    c.memDone('MEM_DATA');
    c.store(0x200000n);
    expect(c.sent.at(-1)).toBe('tdx EPT_WALK');
  });

  it('the module\'s INVEPT (single context, the TD\'s EPTP) empties the TLB and the LP goes on to the entry', () => {
    const c = cpu();
    c.load(0x200000n);
    c.walked('tdx', 'secure', 0x200000n, leaf4k(0x200200000n), 17);
    c.memDone('MEM_DATA');
    c.load(0x300000n | SHARED);
    c.walked('kvm.mmu', 'shared', 0x300000n | SHARED, leaf4k(0x400300000n), 0);
    c.memDone('MEM_DATA');
    expect(c.tlb().map((e) => e.ept)).toEqual(['secure', 'shared']);
    const entry = { name: 'VMRESUME', payload: { vcpu: 0, tdcallReturn: null, emulated: null } };
    c.deliver('tdx', 'tlb', 'INVEPT', { vcpu: 0, type: 1, eptp: 0x10000401en, then: entry });
    expect(c.tlb()).toEqual([]);
    expect(c.sent.at(-1)).toBe('guest.vcpu0 VMRESUME');
    expect(c.payloads.at(-1)).toEqual(entry.payload);
    c.load(0x200000n);
    expect(c.sent.at(-1)).toBe('tdx EPT_WALK');
  });

  it("KVM's global INVEPT (KVM_REQ_TLB_FLUSH) empties the TLB and returns to the vCPU thread", () => {
    const c = cpu();
    c.load(0x300000n | SHARED);
    c.walked('kvm.mmu', 'shared', 0x300000n | SHARED, leaf4k(0x400300000n), 0);
    c.memDone('MEM_DATA');
    c.deliver('kvm.vcpu0', 'tlb', 'INVEPT', { vcpu: 0, type: 2, eptp: null, then: null });
    expect(c.tlb()).toEqual([]);
    expect(c.sent.at(-1)).toBe('kvm.vcpu0 INVEPT');
  });
});

describe('tlb.ts', () => {
  it('a 2M leaf covers its whole range and replaces the 4K entries it overlaps; entries stay in (EPT, page) order', () => {
    const big = { pgLevel: 2, tablePfn: 3, index: 1, spte: 0x200000000n | PT_PAGE_SIZE_MASK | 0x7n };
    let t = tlbFill([], 'secure', 0x201000n, leaf4k(0x200201000n), 17);
    t = tlbFill(t, 'shared', 0x200000n | SHARED, leaf4k(0x400200000n), 0);
    t = tlbFill(t, 'secure', 0x3ff000n, big, 17);
    expect(t.map((e) => [e.ept, e.page])).toEqual([
      ['secure', 0x200000n],
      ['shared', 0x200000n | SHARED],
    ]);
    expect(tlbLookup(t, 'secure', 0x3fffffn, 'write')?.leaf).toBe(big);
    expect(tlbLookup(t, 'secure', 0x400000n, 'read')).toBeNull();
  });
});
