/**
 * The state panel's tables in Chromium (browserHarness.ts): for a run where vCPU 1 decrypts a page and then
 * wakes vCPU 0 with an IPI, the interrupt state per vCPU on vCPU 0's actors and the guest kernel's page
 * tables on guest.kernel, as tables with changed cells marked. Screenshots go to
 * test-artifacts/inspector-interrupts.png and inspector-guest-page-tables.png. Step numbers come from the log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InspectSession } from '../../src/inspect/session.ts';
import { BrowserHarness, poll, runBrowserTests, shot, waitStep } from './browserHarness.ts';
import { ipiAfterDecryptLog } from './irqFixture.ts';

describe.skipIf(!runBrowserTests)('state tables in Chromium', () => {
  const b = new BrowserHarness();
  beforeAll(() => b.start());
  afterAll(() => b.stop());
  const { log, file } = ipiAfterDecryptLog();
  const delivered = log.events.find((e) => e.name === 'VIRTUAL_INTERRUPT')!.seq;
  const last = log.events.at(-1)!.seq;

  it('interrupt state per vCPU: PIR, ON, RVI, vIRR, SVI, ISR, IF, PEND_NMI as a table, vCPU 0 with 0xfd in service', async () => {
    const page = await b.open(`${await b.serve({ session: InspectSession.open(log, file) })}#step=${delivered}&actor=hw.cpu0`);
    await waitStep(page, delivered);
    const table = page.locator('#state-panel table.state-table[data-table="interrupts"]');
    await poll(() => table.count()).toBe(1);
    expect(await table.locator('thead th').allTextContents()).toEqual(['vCPU', 'PIR', 'ON', 'RVI', 'vIRR', 'SVI', 'ISR', 'IF', 'PEND_NMI', 'in NMI', 'handled']);
    expect(await table.locator('tbody tr[data-key="0"] td').allTextContents()).toEqual(['0', '—', '0', '—', '—', '0xfd', '0xfd', '0', '0', '0', '0xfd']);
    expect(await table.locator('tbody tr[data-key="1"] td').count()).toBe(11);
    // What this step changed is marked: the handler's record of the vector.
    expect(await table.locator('tbody tr[data-key="0"] td.changed').allTextContents()).toEqual(['0xfd']);
    await shot(page, 'interrupts');
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('guest page tables: GVA, PTE, flags, shared, GPA as a table; the decrypted page shared, the tree naming the field', async () => {
    const page = await b.open(`${await b.serve({ session: InspectSession.open(log, file) })}#step=${last}&actor=guest.kernel`);
    await waitStep(page, last);
    const table = page.locator('#state-panel table.state-table[data-table="guest-page-tables"]');
    await poll(() => table.count()).toBe(1);
    expect(await table.locator('thead th').allTextContents()).toEqual(['GVA', 'PTE', 'flags', 'shared', 'GPA']);
    expect(await table.locator('tbody tr[data-key="0xffff888000301000"] td').allTextContents()).toEqual(['0xffff888000301000', '0x8000800000301063', 'P RW A D NX', 'yes', '0x301000']);
    expect(await table.locator('tbody tr[data-key="0xffff888000300000"] td').allTextContents()).toEqual(['0xffff888000300000', '0x8000000000300063', 'P RW A D NX', 'no', '0x300000']);
    expect(await page.locator('#state-panel ul.tree li[data-key="pageTables"] .value').textContent()).toBe('2 PTEs (table above)');
    await shot(page, 'guest-page-tables');
    expect(page.errors).toEqual([]);
    await page.close();
  });
});
