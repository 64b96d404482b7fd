import { describe, expect, it, vi } from 'vitest';
import { transition } from 'xstate';
import { ALL_EXAMPLES, runExample, runScenario, type RecordedRun } from '../helpers.ts';
import { twoVcpuMmio } from '../twoVcpu.ts';
import { enabledChoices, initialWorld, step } from '../../src/runtime/step.ts';
import { stringifyCanonical } from '../../src/log/canonical.ts';

/**
 * The reused-scope fast path (src/runtime/xstateScope.ts) against XState's exported pure `transition()`,
 * step by step: same next state, same context, same emitted messages — and the fast path really ran.
 */
function compareWithExportedTransition(run: RecordedRun) {
  const { model } = run;
  const spies = model.scopes.map((s) => vi.spyOn(s, 'transition'));
  let world = initialWorld(model);
  for (const d of run.deliveries) {
    const enabled = enabledChoices(model, world);
    const msg = enabled[d.choice]!;
    const i = model.indexOf.get(msg.to)!;
    const [expected, actions] = transition(model.actors[i]!.machine, world.snapshots[i]!, { type: msg.name, msg } as never);
    const r = step(model, world, d.choice);
    const got = r.world.snapshots[i]!;
    expect(stringifyCanonical({ v: got.value, c: got.context, s: got.status })).toBe(stringifyCanonical({ v: expected.value, c: expected.context, s: expected.status }));
    const emitted = (actions as { type: string; params: unknown }[]).filter((a) => a.type === 'xstate.emit').map((a) => (a.params as { event: { type: string; to?: string; name?: string; payload?: unknown } }).event);
    const sends = emitted.filter((e) => e.type === 'tdxsim.send').map((e) => ({ to: e.to, name: e.name, payload: e.payload }));
    expect(stringifyCanonical(r.sent.map((m) => ({ to: m.to, name: m.name, payload: m.payload })))).toBe(stringifyCanonical(sends));
    world = r.world;
  }
  const calls = spies.reduce((n, s) => n + s.mock.calls.length, 0);
  expect(calls).toBe(run.deliveries.length);
  spies.forEach((s) => s.mockRestore());
}

describe('fast step path agrees with XState transition()', () => {
  it.each(ALL_EXAMPLES)('%s', (name) => compareWithExportedTransition(runExample(name)));
  it('two racing vCPUs', () => compareWithExportedTransition(runScenario(twoVcpuMmio('tdx'), 5)));
});
