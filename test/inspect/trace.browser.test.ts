/**
 * An imported trace beside the model's run, in Chromium (browserHarness.ts): the trace column with each
 * event on its step's row or between rows, the first divergence opened on load with both ends marked,
 * the livelock signature, selection both ways, the filter over trace fields, divergence stepping, labels
 * at 1024 px, and trace text that tries to be markup. Screenshots go to test-artifacts/inspector-trace-*.png.
 *
 * Line numbers come from the fixtures (examples/traces/), steps from the import: never written here.
 */
import path from 'node:path';
import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importedTarget } from '../../src/cli/import.ts';
import { importTraces } from '../../src/import/importTrace.ts';
import type { TraceInput } from '../../src/import/parseTrace.ts';
import { TraceView } from '../../src/inspect/traceView.ts';
import { traceCmdReport } from '../../src/export/traceCmd.ts';
import { fixture } from '../import/helpers.ts';
import { threeVcpuLog } from './fixtures.ts';
import { ARTIFACTS, BrowserHarness, poll, runBrowserTests, shot, stepOf, waitStep } from './browserHarness.ts';

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
    await page.locator('#sequence .lanes').screenshot({ path: path.join(ARTIFACTS, 'inspector-trace-lanes-header-1024.png') });
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('a click on a trace event selects its model step, a step selects its trace partner; rows between steps select their event', async () => {
    const { view, target } = imported([fixture('ept-retry-loop.perf.txt')]);
    const rows = view.rows;
    const page = await b.open(await b.serve(target), { width: 1280, height: 900 });
    await waitStep(page, view.info.divergences[0]!.seq!);
    // Line 14, the first fault of vcpu1 (aligned): its step, and the card names it.
    const fault = rows.find((e) => e.line === 14)!;
    await page.locator('#filter').fill('');
    await page.locator(`#trace-card`).waitFor();
    await page.evaluate((id) => (location.hash = `#trace=${id}&step=0`), fault.id);
    await waitStep(page, 0);
    await page.locator('#next').click();
    await waitStep(page, 1);
    // From the step: the partner of a step that has one is selected with it.
    const exit = rows.find((e) => e.line === 13)!;
    await page.locator('#step-input').fill(String(exit.seq));
    await page.locator('#step-input').press('Enter');
    await waitStep(page, exit.seq!);
    await poll(() => page.locator('#trace-where').textContent()).toBe('ept-retry-loop.perf.txt:13');
    await poll(() => page.locator(`svg.rows .trace-cell[data-trace="${exit.id}"]`).getAttribute('class')).toMatch(/\bselected\b/);
    // Its second trace event (the fault on the row under it) is a partner too.
    expect(await page.locator(`svg.rows .trace-cell[data-trace="${fault.id}"]`).getAttribute('class')).toMatch(/\bpartner\b/);
    expect(await page.locator(`svg.rows .row.more[data-step="${exit.seq}"]`).count()).toBe(1);
    // From the trace: a click on the fault's cell keeps the step and selects the fault.
    await page.locator(`svg.rows .trace-cell[data-trace="${fault.id}"]`).click();
    await poll(() => page.locator('#trace-where').textContent()).toBe('ept-retry-loop.perf.txt:14');
    expect(await page.locator('#trace-align').textContent()).toBe(`aligned with step ${fault.seq}`);
    expect(await page.locator('#trace-payload').textContent()).toBe('vcpu 1 rip 0x0 address 0x0000000000201000 error_code 0x2');
    expect(page.url()).toMatch(new RegExp(`#step=${fault.seq}&trace=${fault.id}$`));
    // An aligned event of another step: the step follows.
    const spte = rows.find((e) => e.line === 15)!;
    expect(spte.seq).not.toBe(fault.seq);
    await page.locator(`svg.rows .trace-cell[data-trace="${spte.id}"]`).click();
    await waitStep(page, spte.seq!);
    await poll(() => page.locator('#trace-where').textContent()).toBe('ept-retry-loop.perf.txt:15');
    // A row between steps (line 16, trace only): anywhere on it selects the event, the step is the one it follows.
    const entry = rows.find((e) => e.line === 16)!;
    const after = view.info.placement[entry.id]![1];
    await page.locator(`svg.rows .between-band[data-row-trace="${entry.id}"]`).click({ position: { x: 30, y: 10 } });
    await waitStep(page, after);
    await poll(() => page.locator('#trace-where').textContent()).toBe('ept-retry-loop.perf.txt:16');
    expect(await page.locator('#trace-align').textContent()).toBe(`no model partner: the model does not do this here — shown after step ${after}`);
    expect(await page.locator(`svg.rows .row.between[data-row-trace="${entry.id}"] .between-tag`).textContent()).toBe('trace');
    expect(await page.locator(`svg.rows .trace-cell[data-trace="${entry.id}"] .badge-trace-only`).textContent()).toBe('trace only');
    // The model's tracepoints at a step link back to their trace partners.
    await page.locator('#step-input').fill(String(exit.seq));
    await page.locator('#step-input').press('Enter');
    await waitStep(page, exit.seq!);
    await page.locator('#model-trace button[data-trace-link]', { hasText: 'ept-retry-loop.perf.txt:14' }).click();
    await poll(() => page.locator('#trace-where').textContent()).toBe('ept-retry-loop.perf.txt:14');
    await shot(page, 'trace-selection');
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('the filter matches trace fields: matching cells marked, only-matches keeps them, Enter walks steps and trace events', async () => {
    const { view, target } = imported([fixture('ept-retry-loop.perf.txt')]);
    const page = await b.open(await b.serve(target), { width: 1280, height: 900 });
    await waitStep(page, view.info.divergences[0]!.seq!);
    const faults = view.rows.filter((e) => e.event === 'kvm_page_fault' && e.fields.includes('address=0x201000'));
    expect(faults).toHaveLength(7);
    await page.locator('#filter').fill('name:kvm_page_fault 0x201000');
    await page.locator('#filter-hide').check();
    // Only the matching rows: the seven faults on 0x201000, the model's steps that name the GPA with that event name (none).
    await poll(() => page.locator('svg.rows .trace-cell').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-trace'))))).toEqual(faults.map((e) => e.id));
    expect(await page.locator('svg.rows .trace-cell.match').count()).toBe(7);
    await page.locator('#filter').press('Enter');
    await poll(() => page.locator('#find-status').textContent()).toMatch(/^(wrapped: .* · )?0 matching steps, 7 trace events$/);
    const first = Number(new URLSearchParams(new URL(page.url()).hash.slice(1)).get('trace'));
    expect(faults.map((e) => e.id)).toContain(first);
    expect(await page.locator('#trace-event').textContent()).toBe('kvm_page_fault');
    await shot(page, 'trace-filter');
    await page.locator('#filter-hide').uncheck();
    await page.locator('#filter').fill('~TDX_OPERAND_BUSY');
    await poll(() => page.locator('svg.rows .trace-cell.match').count()).toBe(0);
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('trace text is text: a line with <script>, markup and HTML entities shows as written, and nothing runs', async () => {
    const mmio = fixture('td-mmio.trace-cmd.txt');
    const evil = '  CPU 0/KVM-7741 [005]  2875.331095: sched_switch:        prev_comm=<script>alert("x")</script> &amp; &lt;b&gt;bold&lt;/b&gt; ==> next_comm=<img src=x onerror=alert(1)>\n <b>evil</b>-77 [005]  2875.331096: kvm_fpu:             load <i>&#x3c;script&#x3e;</i>\n';
    const { view, target } = imported([{ file: 'evil<img src=x onerror=alert(2)>&amp;.txt', text: mmio.text + evil }]);
    const sched = view.rows.find((e) => e.event === 'sched_switch' && e.payload.includes('<script>'))!;
    const fpu = view.rows.find((e) => e.comm === '<b>evil</b>')!;
    expect(fpu.payload).toBe('load <i>&#x3c;script&#x3e;</i>');
    const page = await b.open(await b.serve(target), { width: 1280, height: 900 });
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await waitStep(page, 0);
    await page.evaluate((id) => (location.hash = `#trace=${id}&step=${0}`), sched.id);
    await page.evaluate(() => window.dispatchEvent(new HashChangeEvent('hashchange')));
    await page.locator(`svg.rows .trace-cell[data-trace="${sched.id}"]`).click();
    await poll(() => page.locator('#trace-payload').textContent()).toBe(sched.payload);
    expect(await page.locator('#trace-event').textContent()).toBe('sched_switch');
    expect(await page.locator('#trace-where').textContent()).toBe(`evil<img src=x onerror=alert(2)>&amp;.txt:${sched.line}`);
    expect(await page.locator('#trace-status').textContent()).toBe('not compared');
    const cell = page.locator(`svg.rows .trace-cell[data-trace="${sched.id}"]`);
    expect(await cell.locator('title').textContent()).toContain(`sched_switch: ${sched.payload}`);
    expect(await cell.locator('.trace-fields').textContent()).toMatch(/^prev_comm=<script>alert\("x"\)<\/script> &a/);
    expect(await page.locator('#trace-files').textContent()).toBe('evil<img src=x onerror=alert(2)>&amp;.txt');
    await page.locator(`svg.rows .trace-cell[data-trace="${fpu.id}"]`).click();
    await poll(() => page.locator('#trace-payload').textContent()).toBe('load <i>&#x3c;script&#x3e;</i>');
    expect(await page.locator('.trace-frame').textContent()).toBe('<b>evil</b>-77 [005] 2875.331096  vm');
    // No element came out of the trace: the app's one script, no <b>, <i> or <img> anywhere.
    expect(await page.evaluate(() => document.querySelectorAll('script').length)).toBe(1);
    expect(await page.evaluate(() => document.querySelectorAll('b, i, img').length)).toBe(0);
    // The scenario's YAML (with the trace's file names in its comments) is text too.
    await page.locator('#trace-scenario summary').click();
    expect(await page.locator('#trace-scenario .scenario-yaml').textContent()).toBe(view.info.scenario.yaml);
    await shot(page, 'trace-untrusted-text');
    expect(dialogs).toEqual([]);
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('a SEAMCALL failure in dmesg beside its trace: opens on seamcall-status; ] and [ step through the divergences', async () => {
    const { view, target } = imported([fixture('demote-split.trace-cmd.txt'), fixture('demote-tlb-tracking.dmesg')]);
    const divs = view.info.divergences.filter((d) => d.divergence);
    expect(divs.map((d) => d.kind)).toEqual(['seamcall-status', 'event-differs']);
    const page = await b.open(await b.serve(target), { width: 1024, height: 768 });
    await waitStep(page, divs[0]!.seq!);
    await poll(() => page.locator('#trace-where').textContent()).toBe('demote-tlb-tracking.dmesg:1');
    expect(await page.locator('#trace-fields').textContent()).toBe('TDH.MEM.PAGE.DEMOTE TDX_TLB_TRACKING_NOT_DONE status=0xc0000b0800000000 rcx=0x80000002a7e000f0 rdx=0x101');
    expect(await page.locator('#trace-divergence .divergence-hint').textContent()).toMatch(/^hint: the blocked entry's TLB epoch was not retired.*--policy kickAfterTrack=off$/);
    // The dmesg line sits between rows right after the model's own DEMOTE, with the model end on that step.
    const err = page.locator(`svg.rows .trace-cell[data-trace="${divs[0]!.trace!.id}"]`);
    expect(await err.locator('.trace-line').textContent()).toMatch(/^…[\w.-]*dmesg:1$/);
    expect(await err.locator('.badge-divergence').textContent()).toBe('⚑ seamcall-status');
    await shot(page, 'trace-seamcall-status');
    await page.keyboard.press(']');
    await waitStep(page, divs[1]!.seq!);
    await poll(() => page.locator('#divergences .divergence-item[open]').getAttribute('data-divergence')).toBe(String(divs[1]!.index));
    await poll(() => page.locator('#trace-where').textContent()).toBe(`demote-split.trace-cmd.txt:${divs[1]!.trace!.line}`);
    await page.keyboard.press('[');
    await waitStep(page, divs[0]!.seq!);
    await poll(() => page.locator('#trace-where').textContent()).toBe('demote-tlb-tracking.dmesg:1');
    // A divergence's entry in the banner opens it, at both ends.
    await page.locator(`#divergences .divergence-item[data-divergence="${divs[1]!.index}"] summary`).click();
    await waitStep(page, divs[1]!.seq!);
    expect(await page.locator('#divergences .divergence-item[open]').count()).toBe(1);
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('a trace the model agrees with: the banner says so, and the page opens on the initial state', async () => {
    const { target } = imported([fixture('td-mmio.trace-cmd.txt')]);
    const page = await b.open(await b.serve(target), { width: 1024, height: 768 });
    await waitStep(page, 0);
    expect(await page.locator('#divergences').textContent()).toMatch(/^Trace and model agree: every compared trace event has its counterpart in the model's run, in order\. compared: kvm_entry, kvm_exit, /);
    expect(await page.locator('#trace-badge').textContent()).toBe('trace: no divergence');
    await page.keyboard.press('End');
    await waitStep(page, await stepOf(page));
    await shot(page, 'trace-agree');
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('three vCPUs (14 lanes) with the trace column at 1024 px, fields shown: labels whole and apart, rows tall enough', async () => {
    // A model run exported as a trace imports back with no divergence: its own trace beside it.
    const three = threeVcpuLog();
    const { view, target } = imported([{ file: 'parallel-faults-3.trace-cmd.txt', text: traceCmdReport(three.log, three.file) }]);
    expect(view.summary.divergenceCount).toBe(0);
    const page = await b.open(await b.serve(target), { width: 1024, height: 768 });
    await waitStep(page, 0);
    await page.locator('svg.rows .trace-cell').first().waitFor();
    const header = await boxOf(page.locator('#sequence .lanes'));
    const labels = await page.locator('#sequence .lane-name').all();
    expect(labels).toHaveLength(14);
    const boxes = [...(await Promise.all(labels.map(boxOf))), await boxOf(page.locator('#trace-head'))];
    for (let i = 0; i < boxes.length; i++) {
      expect(inside(boxes[i]!, header)).toBe(true);
      for (let j = i + 1; j < boxes.length; j++) expect(overlap(boxes[i]!, boxes[j]!)).toBe(false);
    }
    expect(Number.parseFloat(await labels[0]!.evaluate((e) => getComputedStyle(e).fontSize))).toBeGreaterThanOrEqual(11);
    // With fields: a trace row holds both its lines and the arrow's fields line, nothing spills into the next row.
    await page.keyboard.press('f');
    const cell = page.locator('svg.rows .trace-cell').first();
    await poll(() => cell.locator('.cell-bg').getAttribute('height')).toBe('38');
    const bg = await boxOf(cell.locator('.cell-bg'));
    for (const t of await cell.locator('text').all()) expect(inside(await boxOf(t), bg, 1)).toBe(true);
    await shot(page, 'trace-three-vcpus-fields-1024');
    expect(page.errors).toEqual([]);
    await page.close();
  });
});
