import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ALL_EXAMPLES, arrows, runExample, runScenario } from '../helpers.ts';
import { twoVcpuMmio } from '../twoVcpu.ts';
import { actorView } from '../../src/runtime/worldHash.ts';

describe('determinism: same scenario and scheduler give a byte-identical log', () => {
  it.each(ALL_EXAMPLES)('%s under FIFO', (name) => {
    expect(runExample(name).text).toBe(runExample(name).text);
  });

  it.each(['tdx', 'vmx'] as const)('two racing vCPUs (%s): any seed reproduces its log exactly and ends correctly', (type) => {
    const scenario = twoVcpuMmio(type);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
        const a = runScenario(scenario, seed);
        const b = runScenario(scenario, seed);
        expect(b.text).toBe(a.text);
        expect(a.outcome.status).toBe('ok');
        const last = a.deliveries.at(-1)!.world;
        const regs = (v: number) => (actorView(last, a.model.indexOf.get(`guest.vcpu${v}`)!).context as { regs: Record<string, bigint> }).regs;
        expect(regs(0).rax).toBe(0x1af41000n);
        expect(regs(1).rbx).toBe(0x1af41000n);
        const vmm = actorView(last, a.model.indexOf.get('vmm')!).context as { devices: { regs: Record<string, bigint> }[] };
        expect(vmm.devices[0]!.regs).toMatchObject({ '0x8': 0x11n, '0xc': 0x22n });
      }),
      { numRuns: 40 },
    );
  });

  it('different seeds explore different interleavings, including a lost cmpxchg race', () => {
    const logs = new Set<string>();
    let lostRace = false;
    for (let seed = 0; seed < 40; seed++) {
      const r = runScenario(twoVcpuMmio('tdx'), seed);
      logs.add(arrows(r).join('\n'));
      lostRace ||= r.deliveries.some((d) => d.message.name === 'SPTE_CMPXCHG_RESULT' && (d.message.payload as { ret: number }).ret !== 0);
    }
    expect(logs.size).toBeGreaterThan(5);
    expect(lostRace).toBe(true);
  });
});
