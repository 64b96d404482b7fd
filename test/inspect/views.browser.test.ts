/**
 * The inspector's views for debugging interleavings, in Chromium (browserHarness.ts): lane labels with
 * 14 actors, a counterexample's preemptions, a lasso's loop, KVM's vCPU statechart zoomed, panned and
 * collapsed, field lists in the rows, the wrapping filter that can hide other rows, the diff between two
 * steps, steering, and the outcome shown as a claim until the log is verified. Screenshots go to
 * test-artifacts/inspector-*.png.
 *
 * Step numbers are found in the logs, never written here, so the tests follow the model as it grows.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorsFor } from '../../machines/registry.ts';
import type { EventRow } from '../../src/inspect/api.ts';
import { inspectTarget } from '../../src/cli/inspect.ts';
import { hex16 } from '../../src/arch/hex.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { enabledChoices } from '../../src/runtime/step.ts';
import { statePath } from '../../src/session/stateView.ts';
import { InspectSession } from '../../src/inspect/session.ts';
import { exampleLog } from '../export/fixtures.ts';
import { ARTIFACTS, BrowserHarness, poll, runBrowserTests, shot, waitStep, waitVerified } from './browserHarness.ts';
import { counterexampleLog, lassoLog, threeVcpuLog } from './fixtures.ts';
import { logText } from './logText.ts';

type Box = { x: number; y: number; width: number; height: number };
const overlap = (a: Box, b: Box) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
const inside = (a: Box, outer: Box, slack = 0.5) => a.x >= outer.x - slack && a.y >= outer.y - slack && a.x + a.width <= outer.x + outer.width + slack && a.y + a.height <= outer.y + outer.height + slack;
const boxOf = async (l: Locator): Promise<Box> => (await l.boundingBox())!;

describe.skipIf(!runBrowserTests)('inspector views in Chromium', () => {
  const b = new BrowserHarness();
  beforeAll(() => b.start());
  afterAll(() => b.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-views-'));
  const mmio = exampleLog('mmio-ve');
  const veSteps = mmio.log.events.filter((e) => e.name === '#VE').map((e) => e.seq);

  it('14 actors in a 1024 px window: every lane label whole, none overlapping another', async () => {
    const three = threeVcpuLog();
    const page = await b.open(await b.serve({ session: InspectSession.open(three.log, three.file) }), { width: 1024, height: 768 });
    await waitStep(page, 0);
    const labels = page.locator('#sequence .lane-name');
    const actors = actorsFor(three.scenario).map((a) => a.id);
    expect(actors).toHaveLength(14);
    await poll(() => labels.count()).toBe(14);
    expect(await labels.allTextContents()).toEqual(actors);
    await page.locator('svg.rows .arrow[data-step="1"]').waitFor();
    const header = await boxOf(page.locator('#sequence .lanes'));
    const boxes = await Promise.all(actors.map((a) => boxOf(page.locator(`#sequence .lane-name[data-actor="${a}"]`))));
    for (let i = 0; i < boxes.length; i++) {
      expect(inside(boxes[i]!, header), `${actors[i]} inside the header`).toBe(true);
      expect(boxes[i]!.width * boxes[i]!.height, actors[i]).toBeGreaterThan(0);
      for (let j = i + 1; j < boxes.length; j++) expect(overlap(boxes[i]!, boxes[j]!), `${actors[i]} / ${actors[j]}`).toBe(false);
    }
    // Readable: the labels keep the sequence view's font size.
    expect(Number.parseFloat(await labels.first().evaluate((e) => getComputedStyle(e).fontSize))).toBeGreaterThanOrEqual(11);
    // Arrow labels stay inside the view too (the last lanes' would run off its right edge).
    const svgBox = await boxOf(page.locator('svg.rows'));
    for (const box of await Promise.all((await page.locator('svg.rows .arrow .label').all()).map(boxOf))) expect(box.x + box.width).toBeLessThanOrEqual(svgBox.x + svgBox.width + 0.5);
    await shot(page, 'lanes-14-actors');
    await page.locator('#sequence .lanes').screenshot({ path: path.join(ARTIFACTS, 'inspector-lanes-header.png') });
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('a counterexample: each preemption marked P in its row, counted in the banner, explained on its step', async () => {
    const cx = counterexampleLog();
    const session = InspectSession.open(cx.log, cx.file);
    const page = await b.open(await b.serve({ session }));
    const last = cx.log.events.length;
    await waitStep(page, last);
    expect(await page.locator('#preemptions').textContent()).toBe(`Schedule found by tdxsim explore: ${session.preemptions.size} preemptions, marked P beside the step (a delivery that leaves the thread the previous step started).`);
    await poll(() => page.locator(`svg.rows .row[data-step="${last}"]`).count()).toBe(1);
    await page.locator(`svg.rows .arrow[data-step="${last}"]`).waitFor();
    const drawn = (await page.locator('svg.rows .row').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-step'))))).filter((n) => n > 0);
    const expected = drawn.filter((n) => session.preemptions.has(n));
    expect(expected.length).toBeGreaterThan(0);
    await poll(() => page.locator('svg.rows .preemption').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-step'))))).toEqual(expected);
    const p = expected.at(-1)!;
    await page.locator(`svg.rows .row[data-step="${p}"]`).click({ position: { x: 20, y: 8 } });
    await waitStep(page, p);
    expect(await page.locator('#card-preemption').textContent()).toBe('preemption');
    expect(await page.locator('.preemption-note').textContent()).toBe(session.preemptions.get(p));
    expect(await waitVerified(page)).toBe(`verified: ${last} steps, hashes and outcome re-derived`);
    await shot(page, 'counterexample-preemptions');
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('a lasso: its loop bracketed and labelled in the gutter, its steps tinted, and a banner naming it', async () => {
    const l = lassoLog();
    const page = await b.open(await b.serve({ session: InspectSession.open(l.log, l.file) }));
    const last = l.log.events.length;
    await waitStep(page, last);
    await page.locator(`svg.rows .arrow[data-step="${l.loopStart + 1}"]`).waitFor();
    const loopRows = await page.locator('svg.rows .row.loop').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-step'))));
    expect(loopRows).toEqual(Array.from({ length: l.period }, (_, i) => l.loopStart + 1 + i));
    const bracket = await boxOf(page.locator('svg.rows .loop-bracket path'));
    const first = await boxOf(page.locator(`svg.rows .row[data-step="${l.loopStart + 1}"] .row-bg`));
    const end = await boxOf(page.locator(`svg.rows .row[data-step="${last}"] .row-bg`));
    // The bracket spans exactly the loop's rows (less its end caps' inset).
    expect(bracket.y).toBeGreaterThanOrEqual(first.y);
    expect(bracket.y).toBeLessThan(first.y + first.height / 2);
    expect(bracket.y + bracket.height).toBeLessThanOrEqual(end.y + end.height);
    expect(bracket.y + bracket.height).toBeGreaterThan(end.y + end.height / 2);
    expect(await page.locator('svg.rows .loop-label').textContent()).toMatch(/^loop/);
    expect(await page.locator('#card-loop').textContent()).toBe(`loop ${l.period}/${l.period}`);
    // Whatever the check says of this hand-made lasso, the banner calls the loop a claim until it passes.
    const verdict = await waitVerified(page);
    const claim = verdict?.startsWith('verified:') ? '' : ' (claimed by the log)';
    expect(await page.locator('#lasso-banner').textContent()).toBe(
      `loop Non-progress cycle${claim}: steps ${l.loopStart + 1}–${last} repeat forever (after step ${last} the world is as after step ${l.loopStart}); starving: guest.vcpu0; retries: TDG.MEM.PAGE.ACCEPT 0x200000 go to step ${l.loopStart + 1}`,
    );
    await shot(page, 'lasso');
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('KVM\'s vCPU statechart: collapsed to the active region, opened by a click, zoomed, panned, and the active state kept in view', async () => {
    const r = replayLog(mmio.log, mmio.file, { keepAll: true });
    const vcpu = r.model.indexOf.get('kvm.vcpu0')!;
    const stateAt = (n: number) => statePath(r.history![n]!.snapshots[vcpu]!.value);
    const inHandler = r.history!.findIndex((_, n) => stateAt(n).startsWith('handlingEptViolation.'));
    const entering = r.history!.findIndex((_, n) => n > inHandler && stateAt(n) === 'inTdhVpEnter');
    expect(inHandler).toBeGreaterThan(0);
    const page = await b.open(`${await b.serve({ session: InspectSession.open(mmio.log, mmio.file) })}#step=${entering}&actor=kvm.vcpu0`);
    await waitStep(page, entering);
    const chart = page.locator('#statechart svg.statechart');
    const canvas = page.locator('#chart-canvas');
    await poll(() => page.locator('#statechart g.state.active').count()).toBeGreaterThan(1);
    expect(await page.locator('#chart-collapse').isChecked()).toBe(true);
    const handler = page.locator('#statechart g.state[data-state="kvmVcpu.handlingEptViolation"]');
    await poll(() => handler.getAttribute('class')).toContain('collapsed');
    expect(await page.locator('#statechart g.state[data-state^="kvmVcpu.handlingEptViolation."]').count()).toBe(0);
    const collapsedStates = await page.locator('#statechart g.state').count();
    expect(collapsedStates).toBeLessThan(32);
    const active = page.locator('#statechart g.state[data-state="kvmVcpu.inTdhVpEnter"] > rect');
    expect(inside(await boxOf(active), await boxOf(canvas))).toBe(true);
    await shot(page, 'statechart-collapsed');

    // Fitted, the whole collapsed chart is in the pane; a click opens the collapsed handler, its states
    // come back, and a second click closes it.
    await page.locator('#chart-fit').click();
    expect(inside(await boxOf(page.locator('#statechart g.state.state-root > rect')), await boxOf(canvas), 2)).toBe(true);
    await handler.locator('text.state-title').click();
    await poll(() => page.locator('#statechart g.state[data-state^="kvmVcpu.handlingEptViolation."]').count()).toBeGreaterThan(5);
    expect(await page.locator('#statechart g.state[data-state="kvmVcpu.handlingEptViolation"]').getAttribute('class')).toContain('opened');
    await shot(page, 'statechart-opened');
    await page.locator('#chart-fit').click();
    await page.locator('#statechart g.state[data-state="kvmVcpu.handlingEptViolation"] > text.state-title').click();
    await poll(() => page.locator('#statechart g.state[data-state^="kvmVcpu.handlingEptViolation."]').count()).toBe(0);
    await page.locator('#chart-1to1').click();

    // Zoom by the button: the state's box grows by the step; by the wheel, around the cursor.
    const before = await boxOf(active);
    await page.locator('#chart-zoom-in').click();
    await poll(async () => Math.round(((await boxOf(active)).width / before.width) * 100)).toBe(125);
    expect(await page.locator('#chart-zoom').textContent()).toMatch(/^\d+%$/);
    const c = await boxOf(canvas);
    await page.mouse.move(c.x + c.width / 2, c.y + c.height / 2);
    const scaleBefore = Number(await chart.getAttribute('data-scale'));
    await page.mouse.wheel(0, 200);
    await poll(async () => Number(await chart.getAttribute('data-scale'))).toBeLessThan(scaleBefore);

    // Pan by dragging the background: the chart moves with the pointer.
    const at = await boxOf(active);
    await page.mouse.move(c.x + 10, c.y + 10);
    await page.mouse.down();
    await page.mouse.move(c.x + 70, c.y + 50, { steps: 5 });
    await page.mouse.up();
    const moved = await boxOf(active);
    expect(Math.round(moved.x - at.x)).toBe(60);
    expect(Math.round(moved.y - at.y)).toBe(40);

    // Step back into the EPT-violation handler: the chart opens the active region and shows the active state.
    await page.locator('#step-input').fill(String(inHandler));
    await page.locator('#step-input').press('Enter');
    await waitStep(page, inHandler);
    const innermost = `kvmVcpu.${stateAt(inHandler)}`;
    const activeBox = page.locator(`#statechart g.state[data-state="${innermost}"] > rect`);
    await poll(() => page.locator(`#statechart g.state[data-state="${innermost}"]`).getAttribute('class')).toContain('active');
    expect(inside(await boxOf(activeBox), await boxOf(canvas))).toBe(true);
    // And it stays in view as the steps go by, whatever the zoom.
    await page.locator('#chart-1to1').click();
    for (let n = inHandler + 1; n <= inHandler + 12; n++) {
      await page.locator('#step-input').fill(String(n));
      await page.locator('#step-input').press('Enter');
      await waitStep(page, n);
      const id = `kvmVcpu.${stateAt(n)}`;
      const box = page.locator(`#statechart g.state[data-state="${id}"]`);
      await poll(() => box.getAttribute('class')).toContain('active');
      expect(inside(await boxOf(box.locator('> rect')), await boxOf(canvas)), `step ${n}: ${id}`).toBe(true);
    }
    await shot(page, 'statechart-handler');
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('rows show their message\'s fields when asked, cut at a field boundary to the row\'s width', async () => {
    const page = await b.open(await b.serve({ session: InspectSession.open(mmio.log, mmio.file) }) + `#step=${veSteps[0]}`, );
    await waitStep(page, veSteps[0]!);
    expect(await page.locator('svg.rows .fields-line').count()).toBe(0);
    await page.locator('#show-fields').check();
    const lines = page.locator('svg.rows .arrow .fields-line');
    await poll(() => lines.count()).toBeGreaterThan(10);
    const svgBox = await boxOf(page.locator('svg.rows'));
    const drawn = await page.locator('svg.rows .arrow').evaluateAll((els) => els.map((e) => ({ step: Number(e.getAttribute('data-step')), text: e.querySelector('.fields-line')?.textContent ?? null })));
    const rows = (await (await fetch(`${b.servers.at(-1)!.url}api/events?from=1&count=1000`)).json()) as { rows: EventRow[] };
    const fieldsOf = new Map(rows.rows.map((r) => [r.seq, r.fields]));
    let cut = 0;
    for (const d of drawn) {
      const full = fieldsOf.get(d.step)!;
      if (!full) continue;
      expect(d.text, `step ${d.step}`).not.toBeNull();
      if (d.text === full) continue;
      cut++;
      const m = /^(.*) …\+(\d+)$/.exec(d.text!);
      expect(m, d.text!).not.toBeNull();
      expect(full.startsWith(m![1]!), `${d.text} / ${full}`).toBe(true);
    }
    for (const box of await Promise.all((await lines.all()).map(boxOf))) expect(box.x + box.width).toBeLessThanOrEqual(svgBox.x + svgBox.width);
    expect(cut).toBeGreaterThan(0);
    await shot(page, 'fields');
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('the filter wraps round with a notice, and can hide the rows that do not match', async () => {
    const page = await b.open(await b.serve({ session: InspectSession.open(mmio.log, mmio.file) }));
    await waitStep(page, 0);
    await page.locator('#filter').fill('#VE');
    for (const s of veSteps) {
      await page.locator('#filter').press('Enter');
      await waitStep(page, s);
      expect(await page.locator('#find-status').getAttribute('class')).not.toContain('wrapped');
    }
    await page.locator('#filter').press('Enter');
    await waitStep(page, veSteps[0]!);
    await poll(() => page.locator('#find-status').textContent()).toBe(`wrapped: past the last match, back to the first (step ${veSteps[0]}) · ${veSteps.length} matching steps`);
    expect(await page.locator('#find-status').getAttribute('class')).toContain('wrapped');
    await page.locator('#filter').press('Shift+Enter');
    await waitStep(page, veSteps.at(-1)!);
    await poll(() => page.locator('#find-status').textContent()).toMatch(/^wrapped: before the first match, on to the last/);

    await page.locator('#filter-hide').check();
    await poll(() => page.locator('svg.rows .row').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-step'))))).toEqual(veSteps);
    await poll(() => page.locator('svg.rows .arrow .label').allTextContents()).toEqual(veSteps.map(() => '#VE'));
    expect(await page.locator('svg.rows .gap').count()).toBe(veSteps.length - 1);
    await shot(page, 'filter-hidden');
    await page.locator('#filter-hide').uncheck();
    await poll(() => page.locator('svg.rows .row').count()).toBeGreaterThan(veSteps.length + 10);
    expect(await page.locator(`svg.rows .row.current[data-step="${veSteps.at(-1)}"]`).count()).toBe(1);
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('diff: the marked step against the current one, SPTEs decoded on both sides', async () => {
    const veStep = veSteps[0]!;
    const install = mmio.log.events.filter((e) => e.name === 'SPTE_CMPXCHG' && e.seq < veStep).at(-1)!;
    const spte = hex16(BigInt(install.payload['newSpte'] as string));
    const page = await b.open(await b.serve({ session: InspectSession.open(mmio.log, mmio.file) }) + `#step=${install.seq - 1}`);
    await waitStep(page, install.seq - 1);
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('m');
    expect(await page.locator('#mark-status').textContent()).toBe(`marked: step ${install.seq - 1}`);
    await page.keyboard.press('ArrowRight');
    await waitStep(page, install.seq);
    await page.keyboard.press('d');
    await poll(() => page.locator('#diff-summary').textContent()).toBe(`1 actor changed between step ${install.seq - 1} and step ${install.seq}`);
    const row = page.locator('#diff-result .diff-actor[data-actor="kvm.mmu"] tr.table-change');
    await row.first().waitFor();
    const texts = await row.allTextContents();
    expect(texts.some((t) => t.includes(spte) && /mmio gen=\d+ gpa=0x8000fe000000 --- SVE=0/.test(t)), texts.join('\n')).toBe(true);
    await page.locator('#diff').scrollIntoViewIfNeeded();
    await shot(page, 'diff');

    // Far apart: the guest's state path A → B, context paths old → new.
    await page.locator('#diff-a').fill('0');
    await page.locator('#diff-b').fill(String(veStep));
    await page.locator('#diff-run').click();
    await poll(() => page.locator('#diff-result .diff-actor[data-actor="guest.vcpu0"] .state-change').textContent()).toMatch(/^notEntered → /);
    expect(await page.locator('#diff-result table.diff-paths tr[data-path]').count()).toBeGreaterThan(0);
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('steering: pick another message after a step; the page shows the new log, marks the steered step, offers it as a download; the file is untouched', async () => {
    const cx = counterexampleLog();
    const file = path.join(dir, 'race.counterexample.log.jsonl');
    writeFileSync(file, cx.text);
    const target = inspectTarget(file, {}, () => {});
    const session = 'session' in target ? target.session : null;
    let n = cx.log.events.length - 1;
    while (enabledChoices(session!.model, session!.worldAt(n)).length < 2) n--;
    const page = await b.open(`${await b.serve(target)}#step=${n}`);
    await waitStep(page, n);
    await page.locator('#steer summary').click();
    const other = page.locator('#choices button.choice:not([disabled])').first();
    await other.waitFor();
    expect(await page.locator('#choices button.choice[disabled]').textContent()).toBe('this log’s choice');
    const picked = (await other.locator('xpath=..').textContent())!;
    await shot(page, 'steer-choices');
    await other.click();
    await page.waitForURL(/#log=s1&step=/);
    await waitStep(page, n + 1);
    await poll(() => page.locator('#steered-banner').isVisible()).toBe(true);
    const banner = (await page.locator('#steered-banner').textContent())!;
    expect(banner).toMatch(new RegExp(`^Steered at step ${n + 1}: this run delivers .+ instead of .+, then FIFO to the end\\. The log it came from is unchanged\\. download accept-race\\.steered-at-${n + 1}-choice-\\d\\.log\\.jsonl back to the log it came from$`));
    expect(picked).toContain((await page.locator('#event-name').textContent())!);
    expect(await page.locator('#steered-badge').textContent()).toBe(`steered at step ${n + 1}`);
    expect(await page.locator('#card-steered').isVisible()).toBe(true);
    await page.locator(`svg.rows .row.steered[data-step="${n + 1}"]`).waitFor();
    expect(await page.locator('svg.rows .steered-tag').textContent()).toBe('steered');
    expect(await waitVerified(page)).toMatch(/^verified: \d+ steps, hashes and outcome re-derived$/);
    await shot(page, 'steered');

    const href = (await page.locator('#download').getAttribute('href'))!;
    const text = await (await fetch(new URL(href, page.url()))).text();
    const steered = parseLogText(text, 'steered.log.jsonl');
    expect(steered.header.scheduler).toEqual({ kind: 'explore' });
    expect(steered.events[n]!.choice).not.toBe(cx.log.events[n]!.choice);
    expect(readFileSync(file, 'utf8')).toBe(cx.text);

    await page.locator('#back-to-parent').click();
    await page.waitForURL((u) => !u.hash.includes('log=s'));
    await waitStep(page, n);
    expect(await page.locator('#steered-banner').count()).toBe(0);
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('the outcome is a claim until verified, and stays one when the check fails', async () => {
    const end = mmio.log.events.length + 2;
    const file = path.join(dir, 'edited-outcome.log.jsonl');
    writeFileSync(file, logText(mmio.log, (r) => (r['type'] === 'end' ? { ...r, outcome: { status: 'failure', reason: 'made up', failures: [] } } : r)));
    const url = await b.serve(inspectTarget(file, {}, () => {}));
    const page = await b.browser.newPage({ viewport: { width: 1500, height: 1000 } });
    // Hold the check's answer back to see the page before it arrives.
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    await page.route('**/api/verify', async (route) => {
      await held;
      await route.continue();
    });
    await page.goto(url);
    await page.locator('#banner').waitFor();
    expect(await page.locator('#claim').isVisible()).toBe(true);
    expect(await page.locator('#claim').textContent()).toBe('claimed by the log');
    expect(await page.locator('#verify-status').textContent()).toBe('verifying…');
    expect(await page.locator('#banner').textContent()).toMatch(/^Counterexample \(claimed by the log\): failure at step \d+ — made up/);
    release();
    expect(await waitVerified(page)).toBe(`not verified: ${file}:${end}: replay diverged: outcome ok (null), the log says failure (made up)`);
    expect(await page.locator('#claim').isVisible()).toBe(true);
    expect(await page.locator('#verify-status').textContent()).toBe('not verified');
    expect(await page.locator('#verify-banner').textContent()).toBe(`The log did not verify: ${file}:${end}: replay diverged: outcome ok (null), the log says failure (made up) — what it says about its outcome is not confirmed by the model.`);
    expect(await page.locator('#banner').textContent()).toMatch(/^Counterexample \(claimed by the log\)/);
    await shot(page, 'claimed-outcome');
    await page.close();
  });
});
