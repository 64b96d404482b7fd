/**
 * The figures the engine's changes are judged by, one line per search (not part of `npm run bench`):
 * states, end states, verdict, wall clock and CPU time of five examples with the default invariants — as
 * `tdxsim explore` runs them (non-progress included, so sleep sets only) and without non-progress, with
 * the persistent-set reduction off and on. `node dist/bench/exploreFigures.js [example…]`.
 */
import { loadScenarioFile } from '../src/scenario/load.ts';
import { modelFor } from '../src/session/session.ts';
import { explore, type ExploreOptions } from '../src/explore/explore.ts';
import { defaultInvariants, type Invariant } from '../src/explore/invariants/index.ts';

const EXAMPLES = ['parallel-faults', 'parallel-touches', 'hlt-wakeup', 'mapgpa-interrupt', 'lazy-accept-same-unit'];
const BOUNDS = { maxDepth: 10_000, maxStates: 2_000_000, maxMillis: 1_800_000 };

const runs: [string, () => Invariant[], ExploreOptions][] = [
  ['defaults', () => defaultInvariants(), {}],
  ['safety', () => defaultInvariants().filter((i) => i.liveness !== true), {}],
  ['safety+ps', () => defaultInvariants().filter((i) => i.liveness !== true), { persistentSets: true }],
];

for (const name of process.argv.length > 2 ? process.argv.slice(2) : EXAMPLES) {
  for (const [label, invs, opts] of runs) {
    const model = modelFor(loadScenarioFile(`examples/${name}`).scenario);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const r = explore(model, invs(), BOUNDS, opts);
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const v = r.violation === null ? '' : ` ${r.violation.invariant} in ${r.violation.choices.length} steps`;
    console.log(`${name}\t${label}\t${r.states}\t${r.terminals}\t${r.status}${v}\t${r.exhaustive ? 'exhaustive' : r.bound}\t${Math.round(ms)} ms\t${Math.round((c.user + c.system) / 1000)} cpu-ms${r.reductionOff ? `\t(${r.reductionOff})` : ''}`);
  }
}
