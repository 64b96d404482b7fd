/**
 * Property: the host-program mix (hostProgram.property.test.ts) with a second VMM thread (`hostThreads`)
 * that reads, writes and converts the same page beside the main thread and the guest — every conversion,
 * the main thread's, the thread's and the ones the VMM makes for exits, under kvm->slots_lock as steps —
 * runs under the random scheduler to an ok end, holds every default per-delivery invariant after every
 * delivery, leaves no mutex held, and writes a log that replays to the same end (verified).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { runScenario } from '../helpers.ts';
import { parseScenarioObject } from '../../src/scenario/load.ts';
import type { ScenarioInput } from '../../src/scenario/schema.ts';
import { defaultInvariants } from '../../src/explore/invariants/index.ts';
import { initialWorld } from '../../src/runtime/step.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { actorView } from '../../src/runtime/worldHash.ts';
import type { KvmLocksContext } from '../../machines/kvm/kvmLocks.ts';

const GPA = 0x200000;
const SHARED_ALIAS = '0x800000200000';

type GuestStep = NonNullable<ScenarioInput['vcpus'][number]['program']>[number];
type HostStep = NonNullable<ScenarioInput['host']>[number];
type ThreadStep = NonNullable<ScenarioInput['hostThreads']>[number]['program'][number];

const value = fc.bigInt({ min: 1n, max: 0xffffffffn });
const guestStep: fc.Arbitrary<GuestStep> = fc.oneof(
  value.map((v) => ({ op: 'store' as const, gpa: SHARED_ALIAS, size: 8 as const, value: v })),
  fc.constant({ op: 'load' as const, gpa: SHARED_ALIAS, size: 8 as const, reg: 'rax' }),
  fc.constant({ op: 'mapGpa' as const, gpa: GPA, size: 0x1000, to: 'shared' as const }),
);
const hostStep: fc.Arbitrary<HostStep> = fc.oneof(
  value.map((v) => ({ op: 'write' as const, gpa: GPA, size: 8 as const, value: v })),
  fc.constant({ op: 'read' as const, gpa: GPA, size: 8 as const }),
  fc.constantFrom('shared' as const, 'private' as const).map((to) => ({ op: 'setAttributes' as const, gpa: GPA, size: 0x1000, to, expectRet: 0 })),
);

const threadStep = hostStep as unknown as fc.Arbitrary<ThreadStep>;

const scenarioOf = (guest: GuestStep[], host: HostStep[], thread: ThreadStep[]) =>
  parseScenarioObject({
    name: 'host-threads-mix',
    vm: { type: 'tdx', attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    vcpus: [{ program: [{ op: 'mapGpa', gpa: GPA, size: 0x1000, to: 'shared' }, ...guest, { op: 'hlt' }] }],
    host,
    hostThreads: [{ start: 'runnable', program: thread }],
  });

describe('host threads and guest programs mixed', () => {
  it('end ok, keep the default invariants after every delivery, drop every mutex, and replay', () => {
    const invariants = defaultInvariants().filter((i) => !i.liveness);
    fc.assert(
      fc.property(
        fc.array(guestStep, { maxLength: 3 }),
        fc.array(hostStep, { maxLength: 3 }),
        fc.array(threadStep, { minLength: 1, maxLength: 3 }),
        fc.nat(1000),
        (guest, host, thread, seed) => {
          const run = runScenario(scenarioOf(guest, host, thread), seed);
          expect(run.outcome.status).toBe('ok');
          let before = initialWorld(run.model);
          for (const d of run.deliveries) {
            for (const inv of invariants) {
              const broke = inv.check(run.model, before, d.world, d.message);
              if (broke !== null) throw new Error(`seed ${seed}, step ${d.seq} (${d.message.from} → ${d.message.to} ${d.message.name}): ${inv.name}: ${broke}`);
            }
            before = d.world;
          }
          const locks = (actorView(run.deliveries.at(-1)!.world, run.model.indexOf.get('kvm.locks')!).context as KvmLocksContext).kvmLocks;
          // Only a vCPU still inside KVM_RUN (halted for good) keeps its own mutex; no thread waits.
          expect(Object.entries(locks).filter(([name, m]) => (m.holder !== null && `${m.holder.replace('kvm.', '')}->mutex` !== name) || m.waiters.length > 0)).toEqual([]);
          expect(replayLog(parseLogText(run.text, 'threads.jsonl'), 'threads.jsonl', { verify: true }).verified).toBe(true);
        },
      ),
      { numRuns: 20, seed: 18 },
    );
  });
});
