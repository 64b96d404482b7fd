/**
 * An imported trace beside the model's run, in Chromium (browserHarness.ts): the trace column with each
 * event on its step's row or between rows, the first divergence opened on load with both ends marked,
 * the livelock signature, selection both ways, the filter over trace fields, divergence stepping, labels
 * at 1024 px, and trace text that tries to be markup. Screenshots go to test-artifacts/inspector-trace-*.png.
 *
 * Line numbers come from the fixtures (examples/traces/), steps from the import: never written here.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importedTarget } from '../../src/cli/import.ts';
import { importTraces } from '../../src/import/importTrace.ts';
import type { TraceInput } from '../../src/import/parseTrace.ts';
import { TraceView } from '../../src/inspect/traceView.ts';
import { fixture, TRACES } from '../import/helpers.ts';
import { BrowserHarness, poll, runBrowserTests, shot, stepOf, waitStep } from './browserHarness.ts';

type Box = { x: number; y: number; width: number; height: number };
const overlap = (a: Box, b: Box) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
const inside = (a: Box, outer: Box, slack = 0.5) => a.x >= outer.x - slack && a.y >= outer.y - slack && a.x + a.width <= outer.x + outer.width + slack && a.y + a.height <= outer.y + outer.height + slack;
const boxOf = async (l: Locator): Promise<Box> => (await l.boundingBox())!;

function imported(inputs: TraceInput[]) {
  const r = importTraces(inputs, { keepLog: true });
  const target = importedTarget(r, { scenario: null, log: null });
  return { r, target, view: target.trace as TraceView };
}

describe.skipIf(!runBrowserTests)('an imported trace in the inspector (Chromium)', () => {
  const b = new BrowserHarness();
  beforeAll(() => b.start());
  afterAll(() => b.stop());

  it('opens on the first divergence with both ends marked, the livelock named, labels readable at 1024 px', async () => {
    const { view, target } = imported([fixture('ept-retry-loop.perf.txt')]);
    const d = view.info.divergences[view.summary.first!]!;
    const page = await b.open(await b.serve(target), { width: 1024, height: 768 });
    await waitStep(page, d.seq!);
    // The trace end: its card, its cell selected and flagged with the kind.
    await poll(() => page.locator('#trace-where').textContent()).toBe('ept-retry-loop.perf.txt:17');
    expect(await page.locator('#trace-status').textContent()).toBe('trace only');
    expect(await page.locator('#trace-divergence .divergence-message').textContent()).toBe(d.message);
    expect(await page.locator('#trace-divergence .divergence-hint').textContent()).toBe(`hint: ${d.hint}`);
    const anchor = page.locator(`svg.rows .trace-cell[data-trace="${d.trace!.id}"]`);
    await poll(() => anchor.getAttribute('class')).toMatch(/\banchor\b.*\bselected\b/);
    expect(await anchor.locator('.trace-sub .badge-divergence').textContent()).toBe('⚑ fault-retried');
    expect(await anchor.locator('.trace-line').textContent()).toMatch(/:17$/);
    await shot(page, 'trace-first-divergence-1024');
    // The model end (the card's link): its row tagged with the kind, and the hunk's model steps barred.
    await page.locator(`#trace-divergence button[data-goto="${d.seq}"]`).click();
    await poll(() => page.locator('#trace-none').count()).toBe(1);
    expect(await page.locator('#trace-divergence .divergence-message').textContent()).toBe(d.message);
    expect(await page.locator('#model-trace li.model-model-only').first().textContent()).toMatch(/^kvm_tdp_mmu_spte_changed: as id 0 gfn 201 level 1 .* model only · fault-retried$/);
    expect(await page.locator(`svg.rows .divergence-tag[data-divergence="${d.index}"]`).evaluate((e) => e.lastChild?.textContent)).toBe('⚑ fault-retried · model end · trace :17');
    expect(await page.locator(`svg.rows .row[data-step="${d.seq}"]`).getAttribute('class')).toMatch(/\bdiverged\b/);
    // The banner: the first divergence opened; the livelock signature with its text.
    expect(await page.locator('#divergences .divergence-item[open]').getAttribute('data-divergence')).toBe(String(d.index));
    expect(await page.locator('#divergences .divergence-item[open] .divergence-message').textContent()).toBe(d.message);
    expect(await page.locator('#trace-banners .banner.livelock').textContent()).toBe(`livelock In the trace: ${view.info.livelocks[0]!.text}; the model does not loop there go to the first fault`);
    expect(await page.locator('#trace-badge').textContent()).toBe('trace: 1 divergence');
    // Labels: every lane label whole, inside the header and clear of the others and of the trace column's title.
    const header = await boxOf(page.locator('#sequence .lanes'));
    const labels = await page.locator('#sequence .lane-name').all();
    expect(labels).toHaveLength(11);
    const boxes = await Promise.all(labels.map(boxOf));
    const head = await boxOf(page.locator('#trace-head'));
    expect(inside(head, header)).toBe(true);
    for (const line of await page.locator('#trace-head > div').all()) expect(await line.evaluate((e) => e.scrollWidth <= e.clientWidth)).toBe(true);
    expect(await page.locator('#trace-head').textContent()).toBe('trace 41 events · perfept-retry-loop.perf.txt');
    for (let i = 0; i < boxes.length; i++) {
      expect(inside(boxes[i]!, header)).toBe(true);
      expect(overlap(boxes[i]!, head)).toBe(false);
      for (let j = i + 1; j < boxes.length; j++) expect(overlap(boxes[i]!, boxes[j]!)).toBe(false);
    }
    expect(await page.locator('#sequence .lanes').evaluate((e) => e.classList.contains('vertical'))).toBe(false);
    // Trace text stays in its column: no cell text past the view's right edge or into the lanes.
    const svg = await boxOf(page.locator('svg.rows'));
    const rule = await boxOf(page.locator('svg.rows .trace-rule'));
    for (const t of await page.locator('svg.rows .trace-cell text, svg.rows .divergence-tag').all()) {
      const box = await boxOf(t);
      expect(box.x + box.width).toBeLessThanOrEqual(svg.x + svg.width + 0.5);
      expect(box.x).toBeGreaterThan(rule.x);
    }
    await shot(page, 'trace-model-end-1024');
    await page.locator('#sequence .lanes').screenshot({ path: path.join(path.dirname(path.resolve('test-artifacts/x')), 'inspector-trace-lanes-header-1024.png') });
    expect(page.errors).toEqual([]);
    await page.close();
  });
});
