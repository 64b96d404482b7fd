/**
 * The inspector in a real browser: Debian's Chromium (/usr/bin/chromium) driven by playwright-core, never a
 * downloaded browser. `.ci/run` installs chromium; elsewhere, without it, these tests are skipped with a
 * message (in CI, a missing chromium is a failure). Screenshots go to test-artifacts/.
 *
 * Step numbers are read from the log rather than written here (the #VE is step 27 of `npm start`'s run
 * today), so the tests follow the model as it grows.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestVcpuMachine } from '../../machines/guest/guestVcpu.ts';
import { hex16 } from '../../src/arch/hex.ts';
import { statePath } from '../../src/session/stateView.ts';
import { messageLabel } from '../../src/export/messageLabel.ts';
import { activeStateIds } from '../../src/export/statechart.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { inspectTarget } from '../../src/cli/inspect.ts';
import { liveRun } from '../../src/cli/liveRun.ts';
import type { Inspector } from '../../src/inspect/server.ts';
import { InspectSession } from '../../src/inspect/session.ts';
import { exampleLog, longMmioLog } from '../export/fixtures.ts';
import { BrowserHarness, poll, runBrowserTests, shot, stepOf, waitStep, waitVerified } from './browserHarness.ts';
import { logText } from './logText.ts';

describe.skipIf(!runBrowserTests)('inspector in Chromium', () => {
  const b = new BrowserHarness();
  const servers = b.servers;
  const { log, file, actors } = exampleLog('mmio-ve');
  const veStep = log.events.find((e) => e.name === '#VE')!.seq;
  // What the guest vCPU is in right after the #VE, as the model says (the page must light exactly that).
  const afterVe = (() => {
    const r = replayLog(log, file, { to: veStep });
    const value = r.world.snapshots[r.model.indexOf.get('guest.vcpu0')!]!.value;
    return { active: activeStateIds(guestVcpuMachine, value), state: statePath(value) };
  })();
  // The MMIO SPTE: the last SPTE_CMPXCHG before the #VE installs it (step 19 of `npm start` today).
  const install = log.events.filter((e) => e.name === 'SPTE_CMPXCHG' && e.seq < veStep).at(-1)!;
  const mmioSpte = hex16(BigInt(install.payload['newSpte'] as string));

  const serve = (target: Parameters<BrowserHarness['serve']>[0]) => b.serve(target);
  const open = (url: string) => b.open(url);

  beforeAll(() => b.start());
  afterAll(() => b.stop());

  it('opens the mmio-ve example: every actor, the sequence and the initial state', async () => {
    const page = await open(await serve(inspectTarget('mmio-ve')));
    await waitStep(page, 0);
    await poll(() => page.locator('#actor-tabs .tab').count()).toBe(actors.length);
    await poll(() => page.locator('#steps').textContent()).toBe(String(log.events.length));
    await page.locator('#statechart svg.statechart').waitFor();
    await page.locator('svg.rows .arrow[data-step="1"] .label').waitFor();
    expect(await page.locator('svg.rows .arrow[data-step="1"] .label').textContent()).toBe(messageLabel(log.events[0]!));
    await shot(page, 'open');
    expect(page.errors).toEqual([]);
    await page.close();
  });

  it('the filter jumps to the #VE; the statechart lights the guest\'s #VE handler state and marks the #VE transition', async () => {
    const page = await open(await serve(inspectTarget('mmio-ve')));
    await waitStep(page, 0);
    await page.locator('#filter').fill('#VE');
    await page.locator('#filter').press('Enter');
    await waitStep(page, veStep);
    expect(page.url()).toContain(`#step=${veStep}`);
    expect(await page.locator('#event-name').textContent()).toBe('#VE');
    await poll(() => page.locator('#find-status').textContent()).toMatch(/^\d+ matching steps?$/);
    // Following the receiver, the chart is the guest vCPU's.
    const active = page.locator('#statechart g.state.active');
    await poll(() => active.evaluateAll((els) => els.map((e) => e.getAttribute('data-state')))).toEqual(afterVe.active);
    expect(afterVe.active.some((id) => /VeHandler|VeInfo/.test(id)), afterVe.active.join()).toBe(true);
    expect(await page.locator('#statechart g.edge.taken').first().textContent()).toContain('#VE');
    expect(await page.locator('#actor-tabs .tab.selected .tab-state').textContent()).toBe(afterVe.state);
    expect(await page.locator('svg.rows .row.current').getAttribute('data-step')).toBe(String(veStep));
    await shot(page, 've');

    // The next match, then none after the last.
    await page.locator('#find-next').click();
    await poll(() => stepOf(page)).toBeGreaterThan(veStep);
    expect(await page.locator('#event-name').textContent()).toBe('#VE');
    await page.close();
  });

  it('the keyboard steps through time and the URL follows', async () => {
    const page = await open(await serve(inspectTarget('mmio-ve')) + `#step=${veStep}`);
    await waitStep(page, veStep);
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('ArrowLeft');
    await waitStep(page, veStep - 1);
    expect(await page.locator('#event-name').textContent()).toBe(messageLabel(log.events[veStep - 2]!));
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await waitStep(page, veStep + 1);
    expect(page.url()).toContain(`#step=${veStep + 1}`);
    await page.keyboard.press('End');
    await waitStep(page, log.events.length);
    await page.keyboard.press('Home');
    await waitStep(page, 0);
    // `n` repeats the filter from the URL.
    await page.goto(page.url().replace(/#.*/, '#step=0&q=%23VE'));
    // A hash-only goto resolves before the page's hashchange handler has run: wait for the filter it sets.
    await poll(() => page.locator('#filter').inputValue()).toBe('#VE');
    await page.keyboard.press('n');
    await waitStep(page, veStep);
    await page.close();
  });

  it('the state panel decodes the MMIO SPTE in kvm.mmu\'s page table, marked where it was installed', async () => {
    const page = await open(await serve(inspectTarget('mmio-ve')) + `#step=${veStep}`);
    await waitStep(page, veStep);
    await page.locator('#actor-tabs .tab[data-actor="kvm.mmu"]').click();
    const row = page.locator(`#state-panel table.spte tr[data-spte="${mmioSpte}"]`);
    await row.waitFor();
    expect(await row.locator('td.kind').textContent()).toBe('mmio');
    expect(await row.locator('td.decoded').textContent()).toMatch(/^mmio gen=\d+ gpa=0x8000fe000000 --- SVE=0$/);
    expect(await row.getAttribute('class')).not.toContain('changed');
    expect(page.url()).toContain('actor=kvm.mmu');

    // At the step that installed it, the row is highlighted as the change.
    await page.locator('#step-input').fill(String(install.seq));
    await page.locator('#step-input').press('Enter');
    await waitStep(page, install.seq);
    await poll(() => row.getAttribute('class')).toContain('changed');
    expect(await page.locator('#actor-tabs .tab.selected').getAttribute('data-actor')).toBe('kvm.mmu');
    await row.scrollIntoViewIfNeeded();
    await shot(page, 'mmio-spte');
    if (mmioSpte !== '0x00008000fe000008') console.warn(`note: the MMIO SPTE is now ${mmioSpte} (README shows 0x00008000fe000008)`);
    await page.close();
  });

  it('renders only the rows on screen for a long log, and jumps to its end', async () => {
    const long = longMmioLog(300);
    const page = await open(await serve({ session: InspectSession.open(long.log, long.file) }));
    await waitStep(page, 0);
    await page.keyboard.press('End');
    await waitStep(page, long.log.events.length);
    await page.locator(`svg.rows .arrow.current[data-step="${long.log.events.length}"] .label`).waitFor();
    const rows = await page.locator('svg.rows .row').count();
    expect(long.log.events.length).toBeGreaterThan(3000);
    expect(rows).toBeLessThan(120);
    await shot(page, 'long-log-end');
    await page.close();
  });

  it('a counterexample opens on its failing step and names the failure', async () => {
    const failed = exampleLog('mmio-ve', { maxSteps: 12 });
    const page = await open(await serve({ session: InspectSession.open(failed.log, failed.file) }));
    await waitStep(page, 12);
    expect(await waitVerified(page)).toBe('verified: 12 steps, hashes and outcome re-derived');
    expect(await page.locator('#banner').textContent()).toMatch(/^Counterexample: failure at step 12 — step bound 12 reached/);
    expect(await page.locator('#outcome').textContent()).toBe('failure');
    expect(await page.locator('#claim').isVisible()).toBe(false);
    await shot(page, 'counterexample');
    await page.close();
  });

  it('run --inspect streams a live run to the open page, which follows it to the end', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-live-'));
    let insp: Inspector | undefined;
    const printed: string[] = [];
    const listening = new Promise<string>((resolve) => {
      void liveRun('mmio-ve', { inspect: true, port: 0, pace: 15, log: path.join(dir, 'live.log.jsonl'), onInspector: (i) => {
        insp = i;
        servers.push(i);
        resolve(i.url);
      } }, (l) => printed.push(l)).then((code) => printed.push(`exit ${code}`));
    });
    const page = await open(await listening);
    await page.locator('#live').waitFor();
    // The run waits for the page, then delivers while the page watches: the step count grows.
    await poll(() => page.locator('#steps').textContent().then(Number)).toBeGreaterThan(0);
    await poll(() => page.locator('#outcome').textContent()).toBe('ok');
    await waitStep(page, log.events.length);
    expect(await page.locator('#live').count()).toBe(0);
    expect(printed).toContain('exit 0');
    // The same log as `tdxsim run` writes.
    expect(printed.filter((l) => /^ +\d+ {2}/.test(l))).toHaveLength(log.events.length);
    await shot(page, 'live-end');
    expect(insp).toBeDefined();
    await page.close();
  });

  it('a torn log opens on its intact steps, with the tear named, and no outcome claimed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-torn-'));
    const file = path.join(dir, 'torn.log.jsonl');
    const text = logText(log);
    // The end record goes, and the last event is cut in the middle.
    const lastEvent = text.lastIndexOf('\n', text.lastIndexOf('\n', text.length - 2) - 1);
    writeFileSync(file, text.slice(0, lastEvent + 50));
    const intact = log.events.length - 1;
    const page = await open(await serve(inspectTarget(file, {}, () => {})));
    await waitStep(page, 0);
    expect(await page.locator('#torn-banner').textContent()).toBe(`Torn log: ${file}:${intact + 2}: torn last line (the writer stopped mid-line); showing the ${intact} intact steps before it. The run's end was not recorded, so there is no outcome.`);
    expect(await page.locator('#steps').textContent()).toBe(String(intact));
    expect(await page.locator('#outcome').textContent()).toBe('torn: no outcome');
    expect(await waitVerified(page)).toBe(`hashes verified for ${intact} steps; the outcome cannot be: the log is torn at line ${intact + 2}`);
    await page.keyboard.press('End');
    await waitStep(page, intact);
    await shot(page, 'torn-log');
    expect(page.errors).toEqual([]);
    await page.close();
  });
});
