/**
 * The page of a 1M-event log opened paged, in Chromium: scrolled to the very end (the scroll position is
 * scaled onto the rows past what a browser lays out), a jump to a step in the middle, and a filter over
 * the whole log that reports its progress and then finds the next match.
 */
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
  /** Records the page shows, read back through the index. */
  let label: (seq: number) => string;
  let mmio: number[] = [];

  beforeAll(async () => {
    await b.start();
    const big = writeBigLog();
    steps = big.steps;
    const h = openIndexed(big.file);
    label = (seq) => messageLabel([...h.events(seq, seq)][0]!);
    // The first few steps to kvm.mmu after the middle, for the filter.
    for (const ev of h.events(500_001, 500_200)) if (ev.to === 'kvm.mmu') mmio.push(ev.seq);
    url = await b.serve(inspectTarget(big.file));
  });
  afterAll(() => b.stop());

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
    expect(await last.textContent()).toBe(label(steps));
    await shot(page, 'paged-end');

    await page.locator('#step-input').fill('500000');
    await page.locator('#step-input').press('Enter');
    await waitStep(page, 500_000);
    const row = page.locator('svg.rows .arrow[data-step="500000"] .label');
    await row.waitFor();
    expect(await row.textContent()).toBe(label(500_000));
    expect(await page.locator('svg.rows .row.current').getAttribute('data-step')).toBe('500000');

    await page.locator('#filter').fill('to:kvm.mmu');
    // The pass over the log reports its progress, then its count.
    await poll(() => page.locator('#find-status').textContent()).toMatch(/^[\d,]+ matching steps$/);
    await page.locator('#filter').press('Enter');
    await waitStep(page, mmio[0]!);
    await poll(() => page.locator(`svg.rows .arrow[data-step="${mmio[0]}"] .label`).count()).toBe(1);
    await shot(page, 'paged-match');
    expect(page.errors).toEqual([]);
    await page.close();
  });
});
