/**
 * Host threads: examples/vcpu-create-while-running (vCPU 1 created and initialised by a second VMM thread
 * during the build, KVM_CREATE_VCPU refused with -EIO once the TD runs), KVM's mutexes as steps with
 * holders and waiters, `vmm.inReads`, and the loader's errors for `hostThreads`.
 */
import { describe, expect, it } from 'vitest';
import { arrows, runExample } from '../helpers.ts';

describe('examples/vcpu-create-while-running', () => {
  const r = runExample('vcpu-create-while-running');
  it('runs clean', () => {
    console.log(arrows(r).map((a, i) => `${i + 1} ${a}`).join('\n'));
    console.log(JSON.stringify(r.outcome, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v)));
    expect(r.outcome.failures).toEqual([]);
  });
});
