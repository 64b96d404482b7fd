/**
 * Invariants over one delivery's world, for property tests of private memory (§6.ii, §6.iv, §7.4, §7.6).
 * Each check returns a list of problems (empty when it holds), phrased with GFNs, SPTE values and states
 * in hex so a counterexample reads like a kernel bug report.
 */
import { runModel, type Delivery } from '../../src/runtime/runner.ts';
import { initialWorld } from '../../src/runtime/step.ts';
import { randomScheduler } from '../../src/runtime/scheduler/random.ts';
import { modelFor } from '../../src/session/session.ts';
import type { Scenario } from '../../src/scenario/schema.ts';
import type { Model, World } from '../../src/runtime/world.ts';
import { contextOf } from '../../src/explore/invariants/invariant.ts';
import { mirrorSeptProblems } from '../../src/explore/invariants/mirrorSeptAgree.ts';
import { privateDataProblems } from '../../src/explore/invariants/noPrivateDataToHost.ts';

export const ctxOf = contextOf;

/** (a) The mirror root and the S-EPT agree (src/explore/invariants/mirrorSeptAgree.ts). */
export const mirrorSeptAgree = (model: Model, world: World): string[] => mirrorSeptProblems(model, world);

/** Values the generated guests store through the private alias carry this tag in bits 63:48, shared ones the other. */
export const PRIVATE_TAG = 0x5ec0n << 48n;
export const SHARED_TAG = 0x5a4en << 48n;
export const isPrivateValue = (v: bigint) => v >> 48n === PRIVATE_TAG >> 48n;

/**
 * (b) No private data reaches the host (src/explore/invariants/noPrivateDataToHost.ts), at delivery `d`
 * with the world before it; private values recognised by their tag, so a planted one counts too.
 */
export const noPrivateDataToHost = (model: Model, before: World, d: Delivery): string[] => privateDataProblems(model, before, d.world, d.message, isPrivateValue);

/**
 * Run `scenario` under the random scheduler with (a) and (b) checked after every delivery; throws with the
 * step, its arrow and the problems on the first violation. Returns the values of each vCPU's retired
 * loads, in order.
 */
export function runChecked(scenario: Scenario, seed: number) {
  const model = modelFor(scenario);
  let before: World = initialWorld(model);
  const retired: bigint[][] = scenario.vcpus.map(() => []);
  let steps = 0;
  const { outcome } = runModel(model, {
    scheduler: randomScheduler(seed),
    onDelivery: (d: Delivery) => {
      steps++;
      const problems = [...mirrorSeptAgree(model, d.world), ...noPrivateDataToHost(model, before, d)];
      if (problems.length > 0) {
        const m = d.message;
        throw new Error(`step ${d.seq} (${m.from} → ${m.to} ${m.name}), seed ${seed}:\n  ${problems.join('\n  ')}`);
      }
      if (d.message.name === 'RETIRE') {
        const r = d.message.payload as { vcpu: number; value: bigint | null };
        if (r.value !== null) retired[r.vcpu]!.push(r.value);
      }
      before = d.world;
    },
  });
  return { model, outcome, retired, steps, last: before };
}
