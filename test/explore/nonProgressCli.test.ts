/**
 * The non-progress check as a user meets it: `tdxsim explore accept-level-split --policy
 * splitOnAcceptLevel=off` names the ACCEPT loop, writes it as a lasso log that `replay --verify` accepts;
 * the default example is clean and says how big the graph was; the check can be turned off, and says when
 * a search mode cannot do it; a lasso log edited (and re-sealed) to claim another loop start is refused.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GENESIS, sealRecord, unsealLine } from '../../src/log/hashChain.ts';
import { buildCli, logLines, scratchDir, tdxsim } from '../e2e/helpers.ts';

const DETAIL =
  "kvm.vcpu0 re-enters TDH.VP.ENTER into EPT_VIOLATION (TD exit) at GPA 0x200000 forever (15 steps a turn); guest.vcpu0 never retires the 8-byte store to 0x200000 (RIP 0xffffffff81000000): its #VE handler's TDG.MEM.PAGE.ACCEPT of 0x200000 at 4K never completes";

describe('tdxsim explore: non-progress (CLI)', () => {
  beforeAll(() => buildCli());

  it('accept-level-split without the split: exit 1, the ACCEPT loop as a lasso log that replay --verify accepts', () => {
    const dir = scratchDir();
    const r = tdxsim(dir, 'explore', 'accept-level-split', '--policy', 'splitOnAcceptLevel=off');
    expect(r.status).toBe(1);
    expect(r.lines[0]).toMatch(/^# exploring accept-level-split \(depth-first\): invariants no-failure, .*, kick-completes, shared-spte-suppress-ve, no-spurious-memory-fault, no-lost-wakeup, no-interrupt-left-pending, interrupt-latency, no-ve-in-unsafe-context, guest-pte-matches-attribute, mmio-within-page, non-progress; bounds/);
    expect(r.stdout).toContain('# 326 states, 338 transitions, max depth 136, 0 end states,');
    expect(r.stdout).toMatch(/\n# non-progress: state graph of 326 states, 502 edges \(164 of them pruned from the search by the sleep sets\), [\d.]+ MiB, searched in [\d.]+ s — exhaustive, 1 component with a fair loop\n/);
    expect(r.stdout).toContain('# lasso: 122 steps to the loop, then 15 steps a turn (prefix: shortest path over the state graph; loop: shortest cycle through its end, extended until fair; 0 preemptions)');
    expect(r.stdout).toContain(`# violation of non-progress: a loop from step 123 to step 137 returns to the state after step 122: ${DETAIL}`);
    // The loop, as printed: marked, then the entry, the guest's ACCEPT, its exit, and KVM's fault path back to the entry.
    expect(r.stdout).toMatch(/\n# loop: steps 123–137, back to the state after step 122\n +123 {2}kvm\.vcpu0 +→ tdx +TDH\.VP\.ENTER .*\n +124 .*\n +125 {2}tdx +→ guest\.vcpu0 +VMRESUME\n +126 {2}guest\.vcpu0 → hw\.cpu0 +TDG\.MEM\.PAGE\.ACCEPT .*\n(.*\n)+ +137 {2}kvm\.mmu +→ kvm\.vcpu0 +TDP_WALK_RESULT /);
    const log = 'accept-level-split.counterexample.log.jsonl';
    const end = JSON.parse(unsealLine(logLines(path.join(dir, log)).at(-1)!)!.body) as { steps: number; outcome: Record<string, unknown> };
    expect(end.steps).toBe(137);
    expect(end.outcome).toMatchObject({
      status: 'failure',
      reason: `violation of non-progress: ${DETAIL}`,
      violation: { invariant: 'non-progress', detail: DETAIL },
      lasso: { loopStart: 122, starving: 'guest.vcpu0', retries: 'kvm.vcpu0 re-enters TDH.VP.ENTER into EPT_VIOLATION (TD exit) at GPA 0x200000' },
    });
    const v = tdxsim(dir, 'replay', log, '--verify');
    expect(v.status).toBe(0);
    expect(v.stdout).toContain(`outcome failure (violation of non-progress: ${DETAIL})`);

    // Edited to claim the loop starts one step earlier, and re-sealed: only re-execution can tell.
    const lines = readFileSync(path.join(dir, log), 'utf8').trimEnd().split('\n');
    let prev = GENESIS;
    const edited = lines.map((line, i) => {
      const rec = JSON.parse(unsealLine(line)!.body) as Record<string, unknown>;
      if (i === lines.length - 1) ((rec.outcome as { lasso: { loopStart: number } }).lasso.loopStart = 121);
      const sealed = sealRecord(prev, rec);
      prev = sealed.hash;
      return sealed.line;
    });
    writeFileSync(path.join(dir, 'edited.jsonl'), edited.join('\n') + '\n');
    const bad = tdxsim(dir, 'replay', 'edited.jsonl', '--verify');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('edited.jsonl:139: replay diverged: the loop does not return to the state after step 121: kvm.vcpu0 differs at context.fault');
  });

  it('with --no-non-progress the same search is clean, as before the check existed', () => {
    const r = tdxsim(scratchDir(), 'explore', 'accept-level-split', '--policy', 'splitOnAcceptLevel=off', '--no-non-progress');
    expect(r.status).toBe(0);
    expect(r.lines[0]).not.toContain('non-progress');
    expect(r.stdout).toContain('0 end states');
    expect(r.stdout).toContain('exhaustive: every reachable state checked, no violation');
    expect(r.stdout).not.toContain('# non-progress');
  });

  it('the default accept-level-split is clean for non-progress too, and says the check was exhaustive', () => {
    const r = tdxsim(scratchDir(), 'explore', 'accept-level-split');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\n# non-progress: state graph of 368 states, 559 edges \(180 of them pruned from the search by the sleep sets\), [\d.]+ MiB, searched in [\d.]+ s — exhaustive\n/);
  });

  it('walks and worker threads cannot check it, and say so; tdxsim invariants lists it', () => {
    const r = tdxsim(scratchDir(), 'explore', 'accept-level-split', '--mode', 'random', '--walks', '5');
    expect(r.lines[1]).toBe('# non-progress not checked: it needs the state graph of a depth-first search on one thread (--mode dfs, --workers 1)');
    const list = tdxsim(scratchDir(), 'invariants');
    expect(list.stdout).toContain('non-progress  (checked by default)');
  });
});
