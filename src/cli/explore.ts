/**
 * `tdxsim explore <scenario>`: search the scenario's interleavings for an invariant violation
 * (src/explore/explore.ts). Progress goes to stderr; the summary to stdout. A violation is minimised
 * (src/explore/minimise.ts), written as a log of the failing schedule, which `tdxsim replay` and the
 * inspector open, printed step by step, and exits 1.
 */
import { LogWriter } from '../log/writer.ts';
import { loadScenarioFile } from '../scenario/load.ts';
import type { Scenario } from '../scenario/schema.ts';
import { explore, type ExploreResult } from '../explore/explore.ts';
import { INVARIANTS, invariantNamed, invariantsOf, type Invariant } from '../explore/invariants/index.ts';
import { countPreemptions, minimise } from '../explore/minimise.ts';
import { scriptedScheduler } from '../runtime/scheduler/scripted.ts';
import { EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK } from './exitCodes.ts';
import { formatDelivery } from './format.ts';
import { formatOptionsFor, headerFor, modelFor, recordRun } from './session.ts';
import { withPolicies } from './policies.ts';
import type { PolicyOverrides } from '../policies.ts';

export interface ExploreCliOptions {
  maxDepth?: number;
  maxStates?: number;
  /** Seconds. */
  time?: number;
  invariant?: string[];
  log?: string;
  policy?: PolicyOverrides;
  /** commander's negation of --no-minimise. */
  minimise?: boolean;
}

export const EXPLORE_DEFAULTS = { maxDepth: 5_000, maxStates: 2_000_000, time: 300 } as const;

/** What to check: the command line's names, else the scenario's `invariants:`, else the library's defaults. */
function invariantsFor(scenario: Scenario, names: string[] | undefined): Invariant[] | string {
  if (names !== undefined) {
    const out: Invariant[] = [];
    for (const name of names) {
      const spec = invariantNamed(name);
      if (spec === undefined) return `unknown invariant "${name}"; known: ${INVARIANTS.map((i) => i.name).join(', ')}`;
      out.push(spec.create());
    }
    return out;
  }
  return invariantsOf(scenario.invariants);
}

export function exploreCommand(scenarioArg: string, opts: ExploreCliOptions, print: (line: string) => void, progress: (line: string) => void): number {
  const loaded = loadScenarioFile(scenarioArg);
  const scenario = withPolicies(loaded.scenario, opts.policy);
  const invariants = invariantsFor(scenario, opts.invariant);
  if (typeof invariants === 'string') {
    progress(`tdxsim: ${invariants}`);
    return EXIT_BAD_INPUT;
  }
  const model = modelFor(scenario);
  const bounds = { maxDepth: opts.maxDepth ?? EXPLORE_DEFAULTS.maxDepth, maxStates: opts.maxStates ?? EXPLORE_DEFAULTS.maxStates, maxMillis: (opts.time ?? EXPLORE_DEFAULTS.time) * 1000 };
  print(`# exploring ${scenario.name}: invariants ${invariants.map((i) => i.name).join(', ')}; bounds depth ${bounds.maxDepth}, ${bounds.maxStates} states, ${bounds.maxMillis / 1000} s`);
  const r = explore(model, invariants, bounds, {
    onProgress: (p) => progress(`# ${p.states} states, ${p.transitions} transitions, ${Math.round(p.states / (p.elapsedMs / 1000))} states/s, depth ${p.depth} (max ${p.maxDepth})`),
  });
  print(summary(r));
  if (r.violation === null) return EXIT_OK;

  let v = r.violation;
  const found = `${v.choices.length} steps, ${countPreemptions(model, v.choices)} preemptions`;
  if (opts.minimise === false) {
    print(`# counterexample as found: ${found}`);
  } else {
    const inv = invariants.find((i) => i.name === v.invariant)!;
    const m = minimise(model, inv, { maxStates: bounds.maxStates, maxDepth: v.choices.length });
    if (m.status === 'minimal') {
      v = { ...v, choices: m.counterexample.choices, detail: m.counterexample.detail };
      print(`# minimised: ${v.choices.length} steps, ${m.counterexample.preemptions} preemptions (fewest steps, then fewest preemptions; ${m.states} states searched breadth-first); as found: ${found}`);
    } else {
      print(`# not minimised (${m.status === 'bound' ? `state bound reached after ${m.states} states` : 'no shorter schedule'}); counterexample as found: ${found}`);
    }
  }

  const logPath = opts.log ?? `${scenario.name}.counterexample.log.jsonl`;
  const writer = LogWriter.open(logPath, headerFor(scenario, loaded.file, { kind: 'explore' }));
  const fmt = formatOptionsFor(scenario);
  const lines: string[] = [];
  recordRun(model, writer, { scheduler: scriptedScheduler(v.choices), maxSteps: v.choices.length, onDelivery: (d) => lines.push(formatDelivery({ seq: d.seq, ...d.message }, fmt)) });
  writer.close();
  print(`# violation of ${v.invariant} at step ${v.choices.length}: ${v.detail}`);
  const shown = 200;
  if (lines.length > shown) print(`# … ${lines.length - shown} earlier steps (the whole schedule is in the log)`);
  for (const l of lines.slice(-shown)) print(l);
  print(`# counterexample: ${logPath}  (tdxsim replay ${logPath} --to N, or tdxsim inspect ${logPath})`);
  return EXIT_FAILURE;
}

function summary(r: ExploreResult): string {
  const rate = r.elapsedMs > 0 ? Math.round(r.states / (r.elapsedMs / 1000)) : r.states;
  const end = r.violation !== null ? 'violation found' : r.exhaustive ? 'exhaustive: every reachable state checked, no violation' : `no violation, not exhaustive (${r.bound} bound reached)`;
  return `# ${r.states} states, ${r.transitions} transitions, max depth ${r.maxDepth}, ${r.terminals} end states, ${(r.elapsedMs / 1000).toFixed(1)} s, ${rate} states/s — ${end}`;
}
