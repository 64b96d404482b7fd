/**
 * The page of a 1M-event log opened paged, in Chromium: scrolled to the very end (the scroll position is
 * scaled onto the rows past what a browser lays out), a jump to a step in the middle, a filter over the
 * whole log that reports its progress and then finds the next match and lists only the matches, and a
 * second filter cancelled midway.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectTarget } from '../../src/cli/inspect.ts';
import { messageLabel } from '../../src/export/messageLabel.ts';
import { openIndexed } from '../../src/replay/seek.ts';
import { MAX_SCROLL_PX } from '../../web/scrollScale.ts';
import { writeBigLog } from './bigLog.ts';
import { BrowserHarness, poll, runBrowserTests, shot, waitStep } from './browserHarness.ts';

describe.skipIf(!runBrowserTests)('a 1M-event log in Chromium', () => {
  const b = new BrowserHarness();
  let url = '';
  let steps = 0;
  /** The labels of the last step and of step 500,000, read back through the index. */
  const labels = new Map<number, string>();
  const mmio: number[] = [];
  let dir = '';

  beforeAll(async () => {
    await b.start();
    const big = writeBigLog();
    dir = path.dirname(big.file);
    steps = big.steps;
    const h = openIndexed(big.file);
    for (const seq of [steps, 500_000]) labels.set(seq, messageLabel([...h.events(seq, seq)][0]!));
    // The first few steps to kvm.mmu after the middle, for the filter.
    for (const ev of h.events(500_001, 500_200)) if (ev.to === 'kvm.mmu') mmio.push(ev.seq);
    h.close();
    url = await b.serve(inspectTarget(big.file));
  });
  afterAll(async () => {
    await b.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('scrolls to the last step, jumps to step 500,000, and finds the next match across the log', async () => {
    const page = await b.open(url);
    await waitStep(page, 0);
    expect(await page.locator('#steps').textContent()).toBe(String(steps));
    // A million rows of 24 px would be 24M px: the spacer stops at MAX_SCROLL_PX and the position is scaled.
    const spacer = await page.locator('#sequence .spacer').evaluate((e) => e.getBoundingClientRect().height);
    expect(spacer).toBe(MAX_SCROLL_PX);

    await page.locator('#sequence .scroller').evaluate((e) => (e.scrollTop = e.scrollHeight));
    const last = page.locator(`svg.rows .arrow[data-step="${steps}"] .label`);
    await last.waitFor();
    expect(await last.textContent()).toBe(labels.get(steps));
    await shot(page, 'paged-end');

    await page.locator('#step-input').fill('500000');
    await page.locator('#step-input').press('Enter');
    await waitStep(page, 500_000);
    const row = page.locator('svg.rows .arrow[data-step="500000"] .label');
    await row.waitFor();
    expect(await row.textContent()).toBe(labels.get(500_000));
    expect(await page.locator('svg.rows .row.current').getAttribute('data-step')).toBe('500000');

    await page.locator('#filter').fill('to:kvm.mmu');
    // The pass over the log reports its progress, then its count.
    await poll(() => page.locator('#find-status').textContent()).toMatch(/^[\d,]+ matching steps$/);
    await page.locator('#filter').press('Enter');
    await waitStep(page, mmio[0]!);
    await poll(() => page.locator(`svg.rows .arrow[data-step="${mmio[0]}"] .label`).count()).toBe(1);
    await shot(page, 'paged-match');

    // Only the matches: one row each (58k rows, under the scaling limit), the current step among them.
    const total = Number((await page.locator('#find-status').textContent())!.match(/^([\d,]+) matching/)![1]!.replace(/,/g, ''));
    await page.locator('#filter-hide').check();
    await poll(() => page.locator('#sequence .spacer').evaluate((e) => e.getBoundingClientRect().height)).toBe((total + 1) * 24);
    expect(await page.locator('svg.rows .row.current').getAttribute('data-step')).toBe(String(mmio[0]));
    expect(await page.locator('svg.rows line.gap').count()).toBeGreaterThan(0);

    // Another filter starts another pass, which the cancel button stops.
    await page.locator('#filter').fill('kind:td-exit');
    await poll(() => page.locator('#find-status').textContent()).toMatch(/^searching 1,000,\d{3} steps… \d+% · [\d,]+ match(es)? so far$/);
    await page.locator('#search-cancel').click();
    await poll(() => page.locator('#find-status').textContent()).toBe('search cancelled');
    expect(await page.locator('#search-cancel').isHidden()).toBe(true);
    expect(await page.locator('#paged').textContent()).toBe('paged');
    expect(page.errors).toEqual([]);
    await page.close();
  });
});
