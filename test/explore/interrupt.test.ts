/** Ctrl-C ends `tdxsim explore` with the summary so far and exit 130, with one thread or several. */
import { spawn } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, buildCli, scratchDir } from '../e2e/helpers.ts';

/** Starts a long search, sends SIGINT once its header is printed, and collects what it says. */
function interrupted(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'explore', 'accept-level-two-vcpus', '--quiet', ...args], { cwd: scratchDir() });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!sent && stdout.includes('# exploring ')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('tdxsim explore and Ctrl-C', () => {
  beforeAll(() => buildCli());

  it.each([[[] as string[]], [['--workers', '2']]])('%j: the summary so far, what was not covered, exit 130', async (args) => {
    const r = await interrupted(...args);
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('# interrupted: finishing with the summary so far (Ctrl-C again to quit at once)');
    expect(r.stdout).toMatch(/# \d+ states, \d+ transitions, .* — no violation, not exhaustive \(interrupted: the states not yet visited were not checked\)/);
  });
});
