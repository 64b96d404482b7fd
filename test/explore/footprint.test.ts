/**
 * Each library invariant's footprint (src/explore/invariants/invariant.ts) keeps its promise: the explorer
 * decides a verdict outside `on` once per distinct delivery and reads nothing beyond `reads` and
 * `pendingTo` inside it, and the persistent-set reduction hides deliveries no footprint sees — so a
 * verdict that read more would be wrong without any test of a search noticing.
 *
 * Seeded walks over every bundled example (and the races with their fixes off, where verdicts fail) give
 * deliveries; each is checked again on worlds whose other parts come from another state of the same
 * example: outside `on`, every actor but the receiver and every message in flight swapped; inside it,
 * every actor outside the receiver and `reads`, and every message in flight to an actor outside
 * `pendingTo`. The verdict must not change. A footprint that claims too little is caught (the last test).
 */
import { describe, expect, it } from 'vitest';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { enabledChoices, initialWorld, step } from '../../src/runtime/step.ts';
import { INVARIANTS, noStaleTranslation, type Invariant } from '../../src/explore/invariants/index.ts';
import type { Message } from '../../src/protocol/messages.ts';
import type { Model, World } from '../../src/runtime/world.ts';
import type { PolicyOverrides } from '../../src/policies.ts';
import { ALL_EXAMPLES, exampleFile } from '../helpers.ts';

interface Delivery {
  before: World;
  after: World;
  msg: Message;
}

/** `walks` seeded walks of at most `maxSteps` deliveries each. */
function walk(model: Model, seed: number, walks: number, maxSteps: number): Delivery[] {
  const out: Delivery[] = [];
  for (let w = 0; w < walks; w++) {
    const rng = xoroshiro128plus(seed + w);
    let world = initialWorld(model);
    for (let s = 0; s < maxSteps; s++) {
      const enabled = enabledChoices(model, world);
      if (enabled.length === 0) break;
      const r = step(model, world, uniformInt(rng, 0, enabled.length - 1), enabled);
      out.push({ before: world, after: r.world, msg: r.delivered });
      world = r.world;
    }
  }
  return out;
}

/** `w` with the snapshots of the actors `keep` rejects, and the messages in flight `keepPending` rejects, taken from `other`. */
function mixed(model: Model, w: World, other: World, keep: (actor: string) => boolean, keepPending: (m: Message) => boolean): World {
  const snapshots = model.actors.map((a, i) => (keep(a.id) ? w.snapshots[i]! : other.snapshots[i]!));
  const pending = [...w.pending.filter(keepPending), ...other.pending.filter((m) => !keepPending(m))].sort((a, b) => a.id - b.id);
  return { ...w, snapshots, pending };
}

interface Tally {
  outside: number;
  inside: number;
  failed: number;
}

/** Every delivery re-checked on mixed worlds; the first broken promise as a sentence, or null. */
function brokenPromise(model: Model, deliveries: Delivery[], invariants: readonly Invariant[], tally: Map<string, Tally>, seed: number): string | null {
  const rng = xoroshiro128plus(seed);
  for (const d of deliveries) {
    const other = deliveries[uniformInt(rng, 0, deliveries.length - 1)]!;
    for (const inv of invariants) {
      const f = inv.footprint;
      if (f === undefined || f.quiescent || inv.liveness) continue;
      const t = tally.get(inv.name) ?? { outside: 0, inside: 0, failed: 0 };
      tally.set(inv.name, t);
      const verdict = inv.check(model, d.before, d.after, d.msg);
      if (verdict !== null) t.failed++;
      const inOn = f.on?.(d.msg.to) === true;
      const keep = inOn ? (a: string) => a === d.msg.to || f.reads?.(a) === true : (a: string) => a === d.msg.to;
      const keepPending = inOn ? (m: Message) => f.pendingTo?.(m.to) === true : () => false;
      if (inOn) t.inside++;
      else t.outside++;
      const again = inv.check(model, mixed(model, d.before, other.before, keep, keepPending), mixed(model, d.after, other.after, keep, keepPending), d.msg);
      if (again !== verdict) {
        return `${inv.name}: delivery of ${d.msg.name} (${d.msg.from} → ${d.msg.to}, seq ${d.after.seq}) ${inOn ? 'inside' : 'outside'} its footprint's \`on\`: ${JSON.stringify(verdict)} on the walk's world, ${JSON.stringify(again)} with the parts it does not declare taken from seq ${other.after.seq}`;
      }
    }
  }
  return null;
}

/** The fixes the examples' READMEs switch off, so failing verdicts are re-checked too. */
const SWITCHED_OFF: readonly [string, PolicyOverrides][] = [
  ['parallel-faults', { freezeMirrorSpte: false }],
  ['mapgpa-vs-touch', { staleFaultCheck: false }],
  ['zap-during-accept', { kickAfterTrack: false }],
  ['zap-during-accept', { zapBusyKickRetry: false }],
];

const library = INVARIANTS.map((s) => s.create());

describe('invariant footprints', () => {
  const tally = new Map<string, Tally>();
  const cases: [string, PolicyOverrides][] = [...ALL_EXAMPLES.map((n): [string, PolicyOverrides] => [n, {}]), ...SWITCHED_OFF];
  for (const [name, policy] of cases) {
    const label = Object.keys(policy).length === 0 ? name : `${name} with ${Object.keys(policy).join(', ')} off`;
    it(`${label}: every verdict is the same with what the footprint does not declare taken from another state`, () => {
      const model = modelFor(withPolicies(loadScenarioFile(exampleFile(name)).scenario, policy));
      expect(brokenPromise(model, walk(model, 7, 12, 400), library, tally, 11)).toBeNull();
    });
  }

  it('re-checked every footprint invariant inside and outside its `on`, and failing verdicts among them', () => {
    const withFootprint = library.filter((i) => i.footprint !== undefined && !i.footprint.quiescent && !i.liveness);
    expect(withFootprint.map((i) => i.name).sort()).toEqual([...tally.keys()].sort());
    for (const inv of withFootprint) {
      expect(tally.get(inv.name)!.outside, inv.name).toBeGreaterThan(0);
      if (inv.footprint!.on !== undefined) expect(tally.get(inv.name)!.inside, inv.name).toBeGreaterThan(0);
    }
    expect([...tally.values()].some((t) => t.failed > 0)).toBe(true);
  });

  it('catches a footprint that claims too little: no-stale-translation as if it read the receiver alone', () => {
    const wrong: Invariant = { ...noStaleTranslation, footprint: { on: noStaleTranslation.footprint!.on } };
    const found = ALL_EXAMPLES.map((name) => {
      const model = modelFor(loadScenarioFile(exampleFile(name)).scenario);
      return brokenPromise(model, walk(model, 7, 12, 400), [wrong], new Map(), 11);
    }).filter((p) => p !== null);
    expect(found.length).toBeGreaterThan(0);
    expect(found[0]).toMatch(/^no-stale-translation: delivery of .* inside its footprint's `on`: null on the walk's world, ".*" with the parts it does not declare taken from seq \d+$/);
  });
});
