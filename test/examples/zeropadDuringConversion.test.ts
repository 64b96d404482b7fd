/**
 * zeropad-during-conversion: vCPU 1's load_unaligned_zeropad() spills into the page vCPU 0 shares and takes
 * back; the stray half's KVM_EXIT_MEMORY_FAULT makes QEMU convert the page to shared after vCPU 0 has made
 * it private again. The FIFO run (no race), the search's finding, the committed minimal counterexample
 * replayed with --verify, and the two variants that explore clean: a VMM that does not convert on a memory
 * fault, and set_memory_decrypted alone.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exampleFile, runScenario } from '../helpers.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { explore } from '../../src/explore/explore.ts';
import { defaultInvariants } from '../../src/explore/invariants/index.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import type { Scenario } from '../../src/scenario/schema.ts';
import type { GuestVcpuContext } from '../../machines/guest/guestVcpu.ts';

const NAME = 'zeropad-during-conversion';
const scenario = loadScenarioFile(exampleFile(NAME)).scenario;
const BOUNDS = { maxDepth: 10_000, maxStates: 200_000, maxMillis: Number.POSITIVE_INFINITY };
const search = (s: Scenario) => explore(modelFor(s), defaultInvariants(), BOUNDS);
const DETAIL = "guest PTE for va 0xffff888000301000 = 0x8000000000301063 maps GPA 0x301000 private, but KVM's attribute for GFN 0x301 is shared (after kvm.vm → kvm.mmu SET_ATTRIBUTES)";

describe('zeropad-during-conversion', () => {
  it('FIFO: vCPU 1 reads before the conversion starts — both halves private, rax = 0xbbaa998888776655 — and vCPU 0 converts undisturbed', () => {
    const r = runScenario(scenario);
    expect(r.outcome.status).toBe('ok');
    expect(r.deliveries.some((d) => d.message.name === 'KVM_EXIT_MEMORY_FAULT')).toBe(false);
    const last = r.deliveries[r.deliveries.length - 1]!.world;
    expect((actorView(last, r.model.indexOf.get('guest.vcpu1')!).context as GuestVcpuContext).regs.rax).toBe(0xbbaa998888776655n);
    const attrs = r.deliveries.filter((d) => d.message.name === 'KVM_SET_MEMORY_ATTRIBUTES' && d.message.to === 'kvm.vm').map((d) => (d.message.payload as { attributes: bigint }).attributes);
    expect(attrs).toEqual([0x8n, 0x0n, 0x8n]); // all private at build; MapGPA shared; MapGPA private
  });

  it('the search finds the page shared again under vCPU 0\'s private PTE (518 states)', () => {
    const r = search(scenario);
    expect(r.status).toBe('violation');
    expect(r.states).toBe(518);
    expect(r.violation).toMatchObject({ invariant: 'guest-pte-matches-attribute', detail: DETAIL });
  });

  it('the committed minimal counterexample (436 steps, 1 preemption) replays with --verify: a stale shared KVM_EXIT_MEMORY_FAULT converts after MapGPA(private)', () => {
    const file = path.join(path.dirname(exampleFile(NAME)), 'counterexample.log.jsonl');
    const log = parseLogText(readFileSync(file), file);
    const replay = replayLog(log, file, { verify: true });
    expect(replay.verified).toBe(true);
    expect(log.events).toHaveLength(436);
    expect(log.end?.outcome).toMatchObject({ status: 'failure', reason: `violation of guest-pte-matches-attribute: ${DETAIL}` });
    // KVM read the attribute private (313), the conversion to shared landed, then the exit left (371)
    // after vCPU 0's MapGPA(private) conversion (360); QEMU converts to shared (373) for it.
    const built = log.events.find((e) => e.name === 'KVM_TDX_FINALIZE_VM')!.seq;
    const named = log.events.filter((e) => e.seq > built).filter((e) => e.name === 'KVM_EXIT_MEMORY_FAULT' || (['FAULTIN_RESULT', 'KVM_SET_MEMORY_ATTRIBUTES'].includes(e.name) && e.to !== 'vmm'));
    expect(named.map((e) => `${e.seq} ${e.from} → ${e.to} ${e.name}`)).toEqual([
      '288 vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES',
      '313 kvm.mmu → kvm.vcpu1 FAULTIN_RESULT',
      '360 vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES',
      '371 kvm.vcpu1 → vmm KVM_EXIT_MEMORY_FAULT',
      '373 vmm → kvm.vm KVM_SET_MEMORY_ATTRIBUTES',
      '385 kvm.mmu → kvm.vcpu0 FAULTIN_RESULT',
    ]);
    expect(named.map((e) => e.payload)).toMatchObject([
      { address: '0x301000', attributes: '0x0' },
      { vcpu: 1, gfn: '0x301', attrPrivate: true },
      { address: '0x301000', attributes: '0x8' },
      { vcpu: 1, gpa: '0x301000', flags: 0 },
      { address: '0x301000', attributes: '0x0' },
      { vcpu: 0, gfn: '0x301', attrPrivate: true },
    ]);
  });

  it('a VMM that stops the vCPU on KVM_EXIT_MEMORY_FAULT instead of converting: clean and exhaustive (102,965 states)', () => {
    const r = search({ ...scenario, vmm: { ...scenario.vmm!, memoryFault: 'stop' } });
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 102_965 });
  });

  it('set_memory_decrypted alone: a late conversion to shared of a page that is shared anyway — clean and exhaustive (43,624 states)', () => {
    const [v0, v1] = scenario.vcpus;
    const r = search({ ...scenario, vcpus: [{ ...v0!, program: v0!.program.slice(0, 2) }, v1!] });
    expect(r).toMatchObject({ status: 'clean', exhaustive: true, states: 43_624 });
  });
});
