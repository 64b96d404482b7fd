/**
 * The state panel's tables (src/inspect/stateTables.ts) as the step API serves them: the interrupt state of
 * every TD vCPU on any of its actors, the guest kernel's page tables on guest.kernel, and the generic tree
 * naming the page-table field instead of expanding it.
 */
import { describe, expect, it } from 'vitest';
import { InspectSession } from '../../src/inspect/session.ts';
import { stepView } from '../../src/inspect/stepView.ts';
import { vectorList } from '../../src/inspect/stateTables.ts';
import { ipiAfterDecryptLog } from './irqFixture.ts';

describe('state tables', () => {
  const { log, file } = ipiAfterDecryptLog();
  const session = InspectSession.open(log, file);
  const delivered = log.events.find((e) => e.name === 'VIRTUAL_INTERRUPT')!.seq;
  const views = (step: number, actor: string) => stepView(session, step, actor).actors.find((a) => a.id === actor)!.views;

  it('vector sets read as vectors in hex', () => {
    expect(vectorList(0n)).toBe('—');
    expect(vectorList((1n << 0x30n) | (1n << 0xfdn))).toBe('0x30 0xfd');
  });

  it('the interrupt table: one row per vCPU; at the delivery vCPU 0 has 0xfd in service, IF 0, and its handler took it', () => {
    const [t] = views(delivered, 'hw.cpu0');
    expect(t!.id).toBe('interrupts');
    expect(t!.columns).toEqual(['vCPU', 'PIR', 'ON', 'RVI', 'vIRR', 'SVI', 'ISR', 'IF', 'PEND_NMI', 'in NMI', 'handled']);
    expect(t!.rows.map((r) => r.cells)).toEqual([
      ['0', '—', '0', '—', '—', '0xfd', '0xfd', '0', '0', '0', '0xfd'],
      ['1', '—', '0', '—', '—', '—', '—', '0', '0', '0', '—'],
    ]);
    // The CPU moved 0xfd into ISR when it sent the interrupt (the step before); this step is the handler's.
    expect(t!.rows[0]!.changed).toEqual([false, false, false, false, false, false, false, false, false, false, true]);
    const before = views(delivered - 1, 'hw.cpu0')[0]!.rows[0]!;
    expect(before.cells.slice(3, 8)).toEqual(['—', '—', '0xfd', '0xfd', '0']);
    // The same table on vCPU 0's other actors; none on an actor of no vCPU.
    expect(views(delivered, 'kvm.vcpu0')[0]!.rows).toEqual(t!.rows);
    expect(views(delivered, 'tdx')).toEqual([]);
  });

  it('the guest page table: one row per GVA of the direct map; after set_memory_decrypted the second page is shared', () => {
    const last = log.events.at(-1)!.seq;
    const [t] = views(last, 'guest.kernel');
    expect(t!.id).toBe('guest-page-tables');
    expect(t!.columns).toEqual(['GVA', 'PTE', 'flags', 'shared', 'GPA']);
    expect(t!.rows.map((r) => r.cells)).toEqual([
      ['0xffff888000300000', '0x8000000000300063', 'P RW A D NX', 'no', '0x300000'],
      ['0xffff888000301000', '0x8000800000301063', 'P RW A D NX', 'yes', '0x301000'],
    ]);
    const tree = stepView(session, last, 'guest.kernel').actors.find((a) => a.id === 'guest.kernel')!.context;
    expect(tree.find((n) => n.key === 'pageTables')).toMatchObject({ text: '2 PTEs (table above)', table: true });
  });
});
