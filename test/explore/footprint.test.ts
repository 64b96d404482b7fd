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
 *
 * The reduction's own question is asked too: at states of seeded walks, a delivery t outside an invariant's
 * footprint (its receiver in none of `on`, `reads`, `pendingTo`, sending nothing to `pendingTo`, reporting
 * no failure) and another enabled delivery u to another receiver are made in both orders, and each keeps
 * its verdict — t's place in the schedule never changes what the invariant says about u, nor u's about t.
 * A `quiescent` footprint is re-checked where something is in flight (where nothing is, it reads all).
 */
import { describe, expect, it } from 'vitest';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { enabledChoices, initialWorld, step } from '../../src/runtime/step.ts';
import { INVARIANTS, noLostWakeup, noStaleTranslation, type Invariant } from '../../src/explore/invariants/index.ts';
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
      if (f === undefined || inv.liveness) continue;
      const t = tally.get(inv.name) ?? { outside: 0, inside: 0, failed: 0 };
      tally.set(inv.name, t);
      const verdict = inv.check(model, d.before, d.after, d.msg);
      if (verdict !== null) t.failed++;
      const inOn = f.on?.(d.msg.to) === true;
      const keep = inOn ? (a: string) => a === d.msg.to || f.reads?.(a) === true : (a: string) => a === d.msg.to;
      const keepPending = inOn ? (m: Message) => f.pendingTo?.(m.to) === true : () => false;
      const before = mixed(model, d.before, other.before, keep, keepPending);
      const after = mixed(model, d.after, other.after, keep, keepPending);
      // Where nothing is in flight a quiescent footprint reads the whole world.
      if (f.quiescent && (d.after.pending.length === 0 || after.pending.length === 0)) continue;
      if (inOn) t.inside++;
      else t.outside++;
      const again = inv.check(model, before, after, d.msg);
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
  ['hlt-wakeup', { hltChecksVmxip: false }],
  ['timer-wakeup', { hltChecksVmxip: false }],
  ['mapgpa-interrupt', { mapGpaEventCheck: false }],
  ['lazy-accept-same-unit', { acceptingListUnitGranular: false }],
  ['zeropad-into-mmio', { mmioRejectsPageCross: false }],
  ['zeropad-past-accepted', { acceptMemoryPastEnd: false }],
  ['set-memory-encrypted-order', { tdxEncStatusChangePrepare: false }],
];

const library = INVARIANTS.map((s) => s.create());

describe('invariant footprints', () => {
  // One invariant without a footprint makes every delivery visible: the persistent-set reduction is then
  // off, and every delivery builds both worlds for it.
  it('every invariant of the library has one, but non-progress (checked on the state graph)', () => {
    expect(library.filter((i) => i.footprint === undefined).map((i) => i.name)).toEqual(['non-progress']);
  });

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
    const withFootprint = library.filter((i) => i.footprint !== undefined && !i.liveness);
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

/** Whether delivering `m` (which sent `sent` and reported `failed` failures) is outside `inv`'s footprint. */
function outside(inv: Invariant, m: Message, sent: readonly Message[], failed: boolean): boolean {
  const f = inv.footprint!;
  if (f.on?.(m.to) || f.reads?.(m.to) || f.pendingTo?.(m.to) || failed) return false;
  return !sent.some((s) => f.pendingTo?.(s.to) === true);
}

/** Delivers the enabled message with id `id` in `w`. */
function deliver(model: Model, w: World, id: number) {
  const enabled = enabledChoices(model, w);
  return step(model, w, enabled.findIndex((m) => m.id === id), enabled);
}

/**
 * At the states of `walks` seeded walks, each enabled delivery t outside an invariant's footprint made before
 * and after one other enabled delivery u to another receiver: the first verdict that changes, or null.
 */
function orderChangesVerdict(model: Model, invariants: readonly Invariant[], seed: number, walks: number, maxSteps: number, tally: Map<string, number>): string | null {
  const checked = invariants.filter((i) => i.footprint !== undefined && !i.liveness);
  for (let w = 0; w < walks; w++) {
    const rng = xoroshiro128plus(seed + w);
    let s = initialWorld(model);
    for (let k = 0; k < maxSteps; k++) {
      const enabled = enabledChoices(model, s);
      if (enabled.length === 0) break;
      for (const t of enabled) {
        const others = enabled.filter((u) => u.to !== t.to);
        if (others.length === 0) continue;
        const u = others[uniformInt(rng, 0, others.length - 1)]!;
        const ts = deliver(model, s, t.id);
        const invs = checked.filter((i) => outside(i, t, ts.sent, ts.world.failures.length > s.failures.length));
        if (invs.length === 0) continue;
        const us = deliver(model, s, u.id);
        const tu = deliver(model, us.world, t.id);
        const ut = deliver(model, ts.world, u.id);
        for (const inv of invs) {
          // Where nothing is in flight a quiescent footprint reads the whole world: only a path's end, which both orders reach.
          const q = inv.footprint!.quiescent === true;
          tally.set(inv.name, (tally.get(inv.name) ?? 0) + 1);
          if (!(q && (us.world.pending.length === 0 || ut.world.pending.length === 0))) {
            const first = inv.check(model, s, us.world, u);
            const second = inv.check(model, ts.world, ut.world, u);
            if (first !== second) return `${inv.name}: ${u.name} (${u.from} → ${u.to}) ${JSON.stringify(first)} before ${t.name} (${t.from} → ${t.to}), ${JSON.stringify(second)} after it (walk ${w}, seq ${s.seq})`;
          }
          if (!(q && (ts.world.pending.length === 0 || tu.world.pending.length === 0))) {
            const first = inv.check(model, s, ts.world, t);
            const second = inv.check(model, us.world, tu.world, t);
            if (first !== second) return `${inv.name}: ${t.name} (${t.from} → ${t.to}) ${JSON.stringify(first)} before ${u.name} (${u.from} → ${u.to}), ${JSON.stringify(second)} after it (walk ${w}, seq ${s.seq})`;
          }
        }
      }
      s = step(model, s, uniformInt(rng, 0, enabled.length - 1), enabled).world;
    }
  }
  return null;
}

describe('a delivery outside a footprint never changes a verdict', () => {
  const tally = new Map<string, number>();
  const cases: [string, PolicyOverrides][] = [...ALL_EXAMPLES.map((n): [string, PolicyOverrides] => [n, {}]), ...SWITCHED_OFF];
  for (const [name, policy] of cases) {
    const label = Object.keys(policy).length === 0 ? name : `${name} with ${Object.keys(policy).join(', ')} off`;
    it(`${label}: either order of an invisible delivery and another gives each the same verdict`, () => {
      const model = modelFor(withPolicies(loadScenarioFile(exampleFile(name)).scenario, policy));
      expect(orderChangesVerdict(model, library, 5, 3, 300, tally)).toBeNull();
    });
  }

  it('asked it of every invariant with a footprint', () => {
    const withFootprint = library.filter((i) => i.footprint !== undefined && !i.liveness).map((i) => i.name);
    expect(withFootprint.filter((n) => (tally.get(n) ?? 0) === 0)).toEqual([]);
  });

  it('catches a footprint that claims too little: no-lost-wakeup as if the CPU and the PIRs in flight to it were not read', () => {
    const wrong: Invariant = { ...noLostWakeup, footprint: { on: (a) => a.startsWith('kvm.vcpu'), reads: (a) => a.startsWith('kvm.vcpu') } };
    const model = modelFor(withPolicies(loadScenarioFile(exampleFile('hlt-wakeup')).scenario, { hltChecksVmxip: false }));
    const found = orderChangesVerdict(model, [wrong], 5, 40, 300, new Map());
    // The CPU taking PIR looks invisible; whether it sees the wake-up lost depends on whether the thread blocked first.
    expect(found).toMatch(/^no-lost-wakeup: PIR \(kvm\.vcpu\d → hw\.cpu\d\) null before .*, "lost wake-up: kvm\.vcpu\d is blocked in HLT .*" after it/);
  });
});
