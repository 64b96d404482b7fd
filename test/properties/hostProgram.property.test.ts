/**
 * Property: any mix of a guest program and a host program over one page and its shared alias — the guest
 * converting it with MapGPA, loading and storing through the shared alias; the VMM's main thread reading
 * and writing it through its own mapping and converting it with KVM_SET_MEMORY_ATTRIBUTES, all at once —
 * runs under the random scheduler to an ok end, holds every default per-delivery invariant after every
 * delivery, and writes a log that replays to the same end (verified).
 *
 * Host steps that wait (waitExit, waitMemory) are left out: whether their condition ever comes is the
 * program's business, not the model's.
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

const GPA = 0x200000;
const SHARED_ALIAS = '0x800000200000';

type GuestStep = NonNullable<ScenarioInput['vcpus'][number]['program']>[number];
type HostStep = NonNullable<ScenarioInput['host']>[number];

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

const scenarioOf = (guest: GuestStep[], host: HostStep[]) =>
  parseScenarioObject({
    name: 'host-mix',
    vm: { type: 'tdx', attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    // The guest's first conversion makes the alias usable; after it, any order.
    vcpus: [{ program: [{ op: 'mapGpa', gpa: GPA, size: 0x1000, to: 'shared' }, ...guest, { op: 'hlt' }] }],
    host,
  });

describe('host and guest programs mixed', () => {
  it('end ok, keep the default invariants after every delivery, and replay', () => {
    const invariants = defaultInvariants().filter((i) => !i.liveness);
    fc.assert(
      fc.property(fc.array(guestStep, { maxLength: 4 }), fc.array(hostStep, { minLength: 1, maxLength: 4 }), fc.nat(1000), (guest, host, seed) => {
        const run = runScenario(scenarioOf(guest, host), seed);
        expect(run.outcome.status).toBe('ok');
        let before = initialWorld(run.model);
        for (const d of run.deliveries) {
          for (const inv of invariants) {
            const broke = inv.check(run.model, before, d.world, d.message);
            if (broke !== null) throw new Error(`seed ${seed}, step ${d.seq} (${d.message.from} → ${d.message.to} ${d.message.name}): ${inv.name}: ${broke}`);
          }
          before = d.world;
        }
        expect(replayLog(parseLogText(run.text, 'mix.jsonl'), 'mix.jsonl', { verify: true }).verified).toBe(true);
      }),
      { numRuns: 30, seed: 18 },
    );
  });
});
