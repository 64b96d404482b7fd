/** `tdxsim explore` as a user runs it: exit codes, the summary, the counterexample file and its replay. */
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildCli, scratchDir, tdxsim } from '../e2e/helpers.ts';

const RACE = `name: accept-race
vm: { type: tdx, gpaw: 48, attributes: [SEPT_VE_DISABLE] }
memslots:
  - { gpa: 0x0, size: 0x80000000, guestMemfd: true }
vcpus:
  - program:
      - { op: accept, gpa: 0x200000, size: 0x1000 }
  - program:
      - { op: load, gpa: 0x200000, size: 8, reg: rax }
`;

describe('tdxsim explore (CLI)', () => {
  beforeAll(() => buildCli());

  it('exits 1 on a violation, writes a counterexample log that replay --verify accepts', () => {
    const dir = scratchDir();
    writeFileSync(path.join(dir, 'race.yaml'), RACE);
    const r = tdxsim(dir, 'explore', 'race.yaml');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/# \d+ states, \d+ transitions, max depth \d+, .* — violation found/);
    expect(r.stdout).toMatch(/# minimised: 129 steps, 1 preemptions .*; as found: \d+ steps, \d+ preemptions/);
    expect(r.stdout).toContain('# violation of no-failure at step 129');
    // The whole minimised schedule is printed, one delivery a line, ending with the fatal exit.
    expect(r.stdout).toMatch(/\n {4}1 {2}vmm +→ kvm\.vm +KVM_SET_MEMORY_ATTRIBUTES/);
    expect(r.stdout).toContain('Guest access before accepting 0x200000 on vCPU 1');
    expect(existsSync(path.join(dir, 'accept-race.counterexample.log.jsonl'))).toBe(true);
    const v = tdxsim(dir, 'replay', 'accept-race.counterexample.log.jsonl', '--verify');
    expect(v.status).toBe(0);
    expect(v.stdout).toContain('outcome failure (violation of no-failure: VM dead: kvm.vcpu1: Guest access before accepting 0x200000 on vCPU 1');
  });

  it('a bounded monitor: the kick counterexample names kick-completes with its bound, and replay --verify re-checks it', () => {
    const dir = scratchDir();
    const r = tdxsim(dir, 'explore', 'zap-during-accept', '--policy', 'busyLeavesFastpath=off', '--log', 'kick.jsonl');
    expect(r.status).toBe(1);
    expect(r.stdout).toContain("# violation of kick-completes at step 144: vCPU 0 called TDH.VP.ENTER 1 time while kvm.vm waited for it to leave guest mode (its CPU's IPI not yet handled), more than the bound of 0");
    // The last two deliveries: the kick reaches vCPU 0's thread inside TDH.VP.ENTER, then the entry's BUSY.
    expect(r.stdout).toMatch(/\n +143 {2}kvm\.vm +→ kvm\.vcpu0 +KVM_REQ_OUTSIDE_GUEST_MODE\n +144 {2}tdx +→ kvm\.vcpu0 +BUSY \(TD exit\) +RAX=0x80000200000000a9 \(TDX_OPERAND_BUSY\|TD_EPOCH\)/);
    const v = tdxsim(dir, 'replay', 'kick.jsonl', '--verify');
    expect(v.status).toBe(0);
    expect(v.stdout).toContain('outcome failure (violation of kick-completes: vCPU 0 called TDH.VP.ENTER 1 time');
  });

  it('exits 0 with an exhaustive summary when nothing breaks, and 2 for an unknown invariant', () => {
    const dir = scratchDir();
    const r = tdxsim(dir, 'explore', 'private-accept');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('exhaustive: every reachable state checked, no violation');
    const bad = tdxsim(dir, 'explore', 'private-accept', '--invariant', 'no-such-thing');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown invariant "no-such-thing"; known: no-failure');
    const list = tdxsim(dir, 'invariants');
    expect(list.status).toBe(0);
    expect(list.stdout).toContain('mirror-sept-agree  (checked by default)');
  });

  it('--mode random|pct --seed --walks: the summary names mode and seed, a seed reproduces the run, and a sampled violation is minimised like a searched one', () => {
    const dir = scratchDir();
    const a = tdxsim(dir, 'explore', 'zap-during-accept', '--mode', 'random', '--seed', '9', '--walks', '20');
    // Walks never prove anything: nothing found is exit 3, not 0.
    expect(a.status).toBe(3);
    expect(a.stdout).toMatch(/# \d+ states, \d+ transitions, .*, 20 walks — no violation, not exhaustive \(sampling never is; every walk run\); mode random, seed 9\n/);
    expect(tdxsim(dir, 'explore', 'zap-during-accept', '--mode', 'random', '--seed', '9', '--walks', '20').stdout.replace(/[\d.]+ s, \d+ states\/s/, '')).toBe(a.stdout.replace(/[\d.]+ s, \d+ states\/s/, ''));
    const pct = tdxsim(dir, 'explore', 'zap-during-accept', '--policy', 'zapBusyKickRetry=off', '--mode', 'pct', '--seed', '1', '--walks', '100', '--pct-depth', '2', '--log', 'pct.jsonl');
    expect(pct.status).toBe(1);
    expect(pct.stdout).toMatch(/— violation found in walk \d+; mode pct \(k = \d+ steps\), seed 1\n/);
    expect(pct.stdout).toContain('# minimised: 143 steps, 1 preemptions');
    expect(tdxsim(dir, 'replay', 'pct.jsonl', '--verify').status).toBe(0);
  });

  it('bad sampling flags: exit 2 with an error naming the flag', () => {
    const dir = scratchDir();
    const cases: [string[], string][] = [
      [['--mode', 'bfs'], "option '--mode <mode>' argument 'bfs' is invalid. Allowed choices are dfs, random, pct."],
      [['--mode', 'random', '--walks', '-3'], '--walks needs a positive integer, got "-3"'],
      [['--mode', 'pct', '--pct-depth', '0'], '--pct-depth needs a positive integer, got "0"'],
      [['--mode', 'random', '--seed', '-1'], '--seed needs an integer from 0 to 4294967295, got "-1"'],
      [['--seed', '4'], '--seed applies to --mode random or pct, not dfs'],
      [['--mode', 'random', '--pct-depth', '2'], '--pct-depth applies to --mode pct, not random'],
    ];
    for (const [args, error] of cases) {
      const r = tdxsim(dir, 'explore', 'private-accept', ...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(error);
    }
  });

  it('a search stopped by a bound exits 3 and says what it did not cover; --json gives the summary as data', () => {
    const dir = scratchDir();
    const r = tdxsim(dir, 'explore', 'parallel-faults', '--max-states', '5000', '--quiet');
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(/# 5000 states, \d+ transitions, .* — no violation, not exhaustive \(states bound reached: 5,000 distinct states checked, the rest of the state space was not\)\n/);
    expect(r.stderr).toBe('');
    const d = tdxsim(dir, 'explore', 'parallel-faults', '--max-depth', '40', '--quiet');
    expect(d.status).toBe(3);
    expect(d.stdout).toContain('depth bound reached: schedules longer than 40 deliveries were cut there, what lies beyond was not checked');

    const j = tdxsim(dir, 'explore', 'parallel-faults', '--max-states', '5000', '--json', '--quiet');
    expect(j.status).toBe(3);
    const summary = JSON.parse(j.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ scenario: 'parallel-faults', mode: 'dfs', verdict: 'incomplete', exhaustive: false, bound: 'states', states: 5000, violation: null, exitCode: 3 });
    expect(summary.bounds).toEqual({ maxDepth: 5000, maxStates: 5000, timeSeconds: 300 });

    const clean = tdxsim(dir, 'explore', 'private-accept', '--json');
    expect(clean.status).toBe(0);
    expect(JSON.parse(clean.stdout)).toMatchObject({ verdict: 'clean', exhaustive: true, bound: null, notCovered: null, exitCode: 0 });
  });

  it('--json with a violation: the finding and the counterexample log it wrote', () => {
    const dir = scratchDir();
    writeFileSync(path.join(dir, 'race.yaml'), RACE);
    const r = tdxsim(dir, 'explore', 'race.yaml', '--json', '--quiet');
    expect(r.status).toBe(1);
    const summary = JSON.parse(r.stdout) as { verdict: string; violation: Record<string, unknown> };
    expect(summary.verdict).toBe('violation');
    expect(summary.violation).toMatchObject({ invariant: 'no-failure', steps: 129, preemptions: 1, minimised: 'minimal', log: 'accept-race.counterexample.log.jsonl' });
    expect(tdxsim(dir, 'replay', 'accept-race.counterexample.log.jsonl', '--verify').status).toBe(0);
  });
});
