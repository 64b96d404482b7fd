/**
 * kvm.mmu's MMU-invalidation bookkeeping (§6.ii A.5, §6.iv step 4): KVM_SET_MEMORY_ATTRIBUTES holds
 * mmu_lock only around its zap and around its end and stores the attributes in between without it, so a
 * fault can take the read lock in the window; mmu_invalidate_retry_gfn must call it stale there.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { actorsFor } from '../../machines/registry.ts';
import { parseScenarioObject } from '../../src/scenario/load.ts';
import type { Message, MessageKind } from '../../src/protocol/messages.ts';
import type { TdpMmuContext } from '../../machines/kvm/tdpMmu.ts';

const scenario = parseScenarioObject({
  name: 'one',
  vm: { type: 'tdx' },
  memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
  vcpus: [{ program: [{ op: 'hlt' }] }],
});

function mmu() {
  const spec = actorsFor(scenario).find((a) => a.id === 'kvm.mmu')!;
  const actor = createActor(spec.machine, { input: spec.input } as never);
  const sent: { to: string; name: string; payload: Record<string, unknown> }[] = [];
  actor.on('tdxsim.send', (e: { to: string; name: string; payload: unknown }) => sent.push({ to: e.to, name: e.name, payload: e.payload as Record<string, unknown> }));
  actor.start();
  let id = 0;
  const deliver = (from: string, name: string, payload: Record<string, unknown>) => {
    const before = sent.length;
    actor.send({ type: name, msg: { id: id++, from, to: 'kvm.mmu', kind: 'mmu' as MessageKind, name, payload, cause: null } as unknown as Message } as never);
    return sent.slice(before);
  };
  const ctx = () => actor.getSnapshot().context as TdpMmuContext;
  /** A fault's walk under the read lock with the mmu_invalidate_seq it snapshotted: is it stale? */
  const stale = (gfn: bigint, mmuSeq: number) => deliver('kvm.vcpu0', 'TDP_WALK', { vcpu: 0, root: 'mirror', gfn, mmuSeq })[0]!.payload.stale;
  return { deliver, ctx, stale };
}

describe('kvm.mmu: an attribute change as two locked sections', () => {
  it('begun by the zap, the invalidation covers its range until kvm_mmu_invalidate_end, which moves the sequence on', () => {
    const m = mmu();
    expect(m.ctx().invalidation).toEqual({ inProgress: 0, gfnStart: 0n, gfnEnd: 0n });
    m.deliver('kvm.vm', 'TDP_LEAF_SCAN', { vcpu: -1, root: 'mirror', gfnStart: 0x200n, gfnEnd: 0x201n });
    expect(m.ctx().invalidation).toEqual({ inProgress: 1, gfnStart: 0x200n, gfnEnd: 0x201n });
    // Between the sections (the attributes stored without mmu_lock): a fault on the GFN is stale even with
    // the current sequence; one on another GFN is not.
    m.deliver('kvm.vm', 'SET_ATTRIBUTES', { vcpu: -1, gfnStart: 0x200n, gfnEnd: 0x201n, private: false });
    expect(m.ctx().mmuInvalidateSeq).toBe(0);
    expect(m.stale(0x200n, 0)).toBe(true);
    expect(m.stale(0x300n, 0)).toBe(false);
    m.deliver('kvm.vm', 'MMU_INVALIDATE_END', { vcpu: -1 });
    expect(m.ctx()).toMatchObject({ mmuInvalidateSeq: 1, invalidation: { inProgress: 0 } });
    // After the end only the sequence decides: a fault that snapshotted 0 retries, one that snapshotted 1 does not.
    expect(m.stale(0x300n, 0)).toBe(true);
    expect(m.stale(0x200n, 1)).toBe(false);
  });
});
