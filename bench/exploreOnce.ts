/**
 * One exploration in a fresh process, for explore.bench.ts's cold figures: the first search a `tdxsim
 * explore` makes, JIT warm-up and first XState runs included (module loading is not). Prints one JSON
 * line: states, transitions, wall and CPU milliseconds of the search.
 *
 *   node dist/bench/exploreOnce.js <example> <no-failure|declared|defaults>
 */
import { modelFor } from '../src/session/session.ts';
import { explore } from '../src/explore/explore.ts';
import { defaultInvariants, invariantsOf, noFailure } from '../src/explore/invariants/index.ts';
import { loadScenarioFile } from '../src/scenario/load.ts';

const [name = 'parallel-faults', which = 'declared'] = process.argv.slice(2);
const scenario = loadScenarioFile(`examples/${name}`).scenario;
const invariants = which === 'no-failure' ? [noFailure] : which === 'defaults' ? defaultInvariants() : invariantsOf(scenario.invariants);
const model = modelFor(scenario);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const r = explore(model, invariants, { maxDepth: 10_000, maxStates: 10_000_000, maxMillis: 600_000 });
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(JSON.stringify({ states: r.states, transitions: r.transitions, exhaustive: r.exhaustive, wallMs, cpuMs: (cpu.user + cpu.system) / 1000 }) + '\n');
