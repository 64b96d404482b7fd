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
  beforeAll(() => buildCli(), 120_000);

  it('exits 1 on a violation, writes a counterexample log that replay --verify accepts', () => {
    const dir = scratchDir();
    writeFileSync(path.join(dir, 'race.yaml'), RACE);
    const r = tdxsim(dir, 'explore', 'race.yaml');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/# \d+ states, \d+ transitions, max depth \d+, .* — violation found/);
    expect(r.stdout).toMatch(/# minimised: 103 steps, 1 preemptions .*; as found: \d+ steps, \d+ preemptions/);
    expect(r.stdout).toContain('# violation of no-failure at step 103');
    // The whole minimised schedule is printed, one delivery a line, ending with the fatal exit.
    expect(r.stdout).toMatch(/\n {4}1 {2}vmm +→ kvm\.vm +KVM_SET_MEMORY_ATTRIBUTES/);
    expect(r.stdout).toContain('Guest access before accepting 0x200000 on vCPU 1');
    expect(existsSync(path.join(dir, 'accept-race.counterexample.log.jsonl'))).toBe(true);
    const v = tdxsim(dir, 'replay', 'accept-race.counterexample.log.jsonl', '--verify');
    expect(v.status).toBe(0);
    expect(v.stdout).toContain('outcome failure');
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
});
