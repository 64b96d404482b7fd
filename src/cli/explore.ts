/**
 * `tdxsim explore <scenario>`: search the scenario's interleavings for an invariant violation, depth-first
 * and exhaustively (src/explore/explore.ts) or by seeded random or PCT walks (src/explore/sample.ts).
 * Progress goes to stderr; the summary to stdout. A violation, however found, is minimised
 * (src/explore/minimise.ts), written as a log of the failing schedule, which `tdxsim replay` and the
 * inspector open, printed step by step, and exits 1.
 */
import { LogWriter } from '../log/writer.ts';
import { loadScenarioFile } from '../scenario/load.ts';
import type { Scenario } from '../scenario/schema.ts';
import { explore, type ExploreBounds, type ExploreProgress, type ExploreResult, type LivenessSummary, type Violation } from '../explore/explore.ts';
import { PCT_DEPTH_DEFAULT, sample, type SampleMode, type SampleResult } from '../explore/sample.ts';
import { exploreInWorkers } from '../explore/parallel.ts';
import type { Model } from '../runtime/world.ts';
import { INVARIANTS, invariantNamed, invariantsOf, type Invariant } from '../explore/invariants/index.ts';
import { countPreemptions, minimise } from '../explore/minimise.ts';
import { scriptedScheduler } from '../runtime/scheduler/scripted.ts';
import { EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK } from './exitCodes.ts';
import { formatDelivery } from '../session/format.ts';
import { formatOptionsFor, headerFor, modelFor, recordRun } from '../session/session.ts';
import { withPolicies } from '../session/policies.ts';
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
  /** Depth-first and exhaustive, or seeded walks. */
  mode?: ExploreMode;
  seed?: number;
  walks?: number;
  pctDepth?: number;
  /** Worker threads (1: this thread only). */
  workers?: number;
  /** commander's negation of --no-non-progress: skip the non-progress check even where it applies. */
  nonProgress?: boolean;
}

export type ExploreMode = 'dfs' | SampleMode;
export const EXPLORE_MODES: readonly ExploreMode[] = ['dfs', 'random', 'pct'];

export const EXPLORE_DEFAULTS = { maxDepth: 5_000, maxStates: 2_000_000, time: 300, mode: 'dfs', seed: 0, walks: 10_000, pctDepth: PCT_DEPTH_DEFAULT, workers: 1 } as const;

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

/** Flags that only mean something in some modes: naming one elsewhere is a mistake worth an error. */
function misplacedFlag(opts: ExploreCliOptions, mode: ExploreMode): string | null {
  if (mode === 'dfs') {
    for (const [flag, v] of [['--seed', opts.seed], ['--walks', opts.walks], ['--pct-depth', opts.pctDepth]] as const) if (v !== undefined) return `${flag} applies to --mode random or pct, not dfs`;
  }
  if (mode === 'random' && opts.pctDepth !== undefined) return '--pct-depth applies to --mode pct, not random';
  return null;
}

export function exploreCommand(scenarioArg: string, opts: ExploreCliOptions, print: (line: string) => void, progress: (line: string) => void): number | Promise<number> {
  const mode = opts.mode ?? EXPLORE_DEFAULTS.mode;
  const misplaced = misplacedFlag(opts, mode);
  if (misplaced !== null) {
    progress(`tdxsim: ${misplaced}`);
    return EXIT_BAD_INPUT;
  }
  const loaded = loadScenarioFile(scenarioArg);
  const scenario = withPolicies(loaded.scenario, opts.policy);
  const named = invariantsFor(scenario, opts.invariant);
  if (typeof named === 'string') {
    progress(`tdxsim: ${named}`);
    return EXIT_BAD_INPUT;
  }
  const { invariants, unchecked } = withoutUncheckableLiveness(named, opts, mode, opts.workers ?? EXPLORE_DEFAULTS.workers);
  const model = modelFor(scenario);
  const bounds = { maxDepth: opts.maxDepth ?? EXPLORE_DEFAULTS.maxDepth, maxStates: opts.maxStates ?? EXPLORE_DEFAULTS.maxStates, maxMillis: (opts.time ?? EXPLORE_DEFAULTS.time) * 1000 };
  const seed = opts.seed ?? EXPLORE_DEFAULTS.seed;
  const walks = opts.walks ?? EXPLORE_DEFAULTS.walks;
  const pctDepth = opts.pctDepth ?? EXPLORE_DEFAULTS.pctDepth;
  const workers = opts.workers ?? EXPLORE_DEFAULTS.workers;
  const how = `${mode === 'dfs' ? 'depth-first' : `${mode === 'pct' ? `PCT walks, d = ${pctDepth}` : 'random walks'}, seed ${seed}, ${walks} walks`}${workers > 1 ? `, ${workers} workers` : ''}`;
  print(`# exploring ${scenario.name} (${how}): invariants ${invariants.map((i) => i.name).join(', ')}; bounds depth ${bounds.maxDepth}, ${bounds.maxStates} states, ${bounds.maxMillis / 1000} s`);
  if (unchecked !== null) print(unchecked);
  const queue = mode !== 'dfs' ? 'walks left' : workers > 1 ? 'frontier entries left' : 'on the stack';
  const onProgress = (p: ExploreProgress) => progress(progressLine(p, queue));
  const explored: Explored = { scenario, file: loaded.file, model, invariants, bounds };
  if (workers > 1) {
    const search = mode === 'dfs' ? { mode } : { mode, seed, walks, pctDepth };
    return exploreInWorkers({ scenario, invariants: opts.invariant ?? scenario.invariants, bounds, search, workers }, { onProgress }).then((r) => report(explored, r, opts, print, workers));
  }
  const r =
    mode === 'dfs'
      ? explore(model, invariants, bounds, { onProgress })
      : sample(model, invariants, { ...bounds, walks }, { mode, seed, pctDepth, onProgress });
  return report(explored, r, opts, print, workers);
}

/** The non-progress check needs the one-thread depth-first search's state graph; elsewhere it is dropped, with a note unless --no-non-progress asked. */
function withoutUncheckableLiveness(invariants: Invariant[], opts: ExploreCliOptions, mode: ExploreMode, workers: number): { invariants: Invariant[]; unchecked: string | null } {
  const liveness = invariants.filter((i) => i.liveness === true);
  if (liveness.length === 0 || (opts.nonProgress !== false && mode === 'dfs' && workers === 1)) return { invariants, unchecked: null };
  const unchecked = opts.nonProgress === false ? null : `# ${liveness.map((i) => i.name).join(', ')} not checked: it needs the state graph of a depth-first search on one thread (--mode dfs, --workers 1)`;
  return { invariants: invariants.filter((i) => i.liveness !== true), unchecked };
}

function progressLine(p: ExploreProgress, queue: string): string {
  const rate = Math.round(p.states / (p.elapsedMs / 1000));
  return `# ${p.states} states, ${p.transitions} transitions, ${rate} states/s, depth ${p.depth} (max ${p.maxDepth}), queue ${p.queue} ${queue}`;
}

interface Explored {
  scenario: Scenario;
  file: string | null;
  model: Model;
  invariants: readonly Invariant[];
  bounds: ExploreBounds;
}

/**
 * The summary, then for a violation (whichever search found it) the minimised counterexample: written as
 * a log, printed, exit 1.
 */
function report(x: Explored, r: ExploreResult | SampleResult, opts: ExploreCliOptions, print: (line: string) => void, workers: number): number {
  print(summary(r, workers));
  if ('liveness' in r && r.liveness) print(livenessLine(r.liveness));
  if (r.violation === null) return EXIT_OK;

  const { model } = x;
  let v: Violation = r.violation;
  const found = `${v.choices.length} steps, ${countPreemptions(model, v.choices)} preemptions`;
  if (v.lasso !== undefined) {
    print(`# lasso: ${v.lasso.loopStart} steps to the loop, then ${v.choices.length - v.lasso.loopStart} steps a turn (prefix: shortest path over the state graph; loop: shortest cycle through its end, extended until fair; ${countPreemptions(model, v.choices)} preemptions)`);
  } else if (opts.minimise === false) {
    print(`# counterexample as found: ${found}`);
  } else {
    const inv = x.invariants.find((i) => i.name === v.invariant)!;
    const m = minimise(model, inv, { maxStates: x.bounds.maxStates, maxDepth: v.choices.length });
    if (m.status === 'minimal') {
      v = { ...v, choices: m.counterexample.choices, detail: m.counterexample.detail };
      print(`# minimised: ${v.choices.length} steps, ${m.counterexample.preemptions} preemptions (fewest steps, then fewest preemptions; ${m.states} states searched breadth-first); as found: ${found}`);
    } else {
      print(`# not minimised (${m.status === 'bound' ? `state bound reached after ${m.states} states` : 'no shorter schedule'}); counterexample as found: ${found}`);
    }
  }

  const logPath = opts.log ?? `${x.scenario.name}.counterexample.log.jsonl`;
  const writer = LogWriter.open(logPath, headerFor(x.scenario, x.file, { kind: 'explore' }));
  const fmt = formatOptionsFor(x.scenario);
  const lines: string[] = [];
  const bound = x.invariants.find((i) => i.name === v.invariant)?.bound;
  recordRun(model, writer, {
    scheduler: scriptedScheduler(v.choices),
    maxSteps: v.choices.length,
    onDelivery: (d) => lines.push(formatDelivery({ seq: d.seq, ...d.message }, fmt)),
    violation: { invariant: v.invariant, ...(bound !== undefined ? { bound } : {}), detail: v.detail },
    ...(v.lasso !== undefined ? { lasso: v.lasso } : {}),
  });
  writer.close();
  if (v.lasso !== undefined) print(`# violation of ${v.invariant}: a loop from step ${v.lasso.loopStart + 1} to step ${v.choices.length} returns to the state after step ${v.lasso.loopStart}: ${v.detail}`);
  else print(`# violation of ${v.invariant} at step ${v.choices.length}: ${v.detail}`);
  const shown = 200;
  if (lines.length > shown) print(`# … ${lines.length - shown} earlier steps (the whole schedule is in the log)`);
  const first = Math.max(0, lines.length - shown);
  lines.slice(first).forEach((l, i) => {
    if (v.lasso !== undefined && first + i === v.lasso.loopStart) print(`# loop: steps ${v.lasso.loopStart + 1}–${lines.length}, back to the state after step ${v.lasso.loopStart}`);
    print(l);
  });
  print(`# counterexample: ${logPath}  (tdxsim replay ${logPath} --to N, or tdxsim inspect ${logPath})`);
  return EXIT_FAILURE;
}

function livenessLine(l: LivenessSummary): string {
  const graph = `state graph of ${l.states} states, ${l.edges} edges (${l.prunedEdges} of them pruned from the search by the sleep sets), ${(l.bytes / 2 ** 20).toFixed(1)} MiB, searched in ${(l.checkMs / 1000).toFixed(1)} s`;
  return `# non-progress: ${graph} — ${l.exhaustive ? 'exhaustive' : 'not exhaustive (the search stopped at a bound; only fully expanded states were looked at)'}${l.findings > 0 ? `, ${l.findings} component${l.findings === 1 ? '' : 's'} with a fair loop` : ''}`;
}

/** The DFS line as it always was; a sampling line adds the walks, and names the mode and seed to rerun it. */
function summary(r: ExploreResult | SampleResult, workers: number): string {
  const on = workers > 1 ? ` (${workers} workers)` : '';
  const rate = r.elapsedMs > 0 ? Math.round(r.states / (r.elapsedMs / 1000)) : r.states;
  const counts = `${r.states} states, ${r.transitions} transitions, max depth ${r.maxDepth}, ${r.terminals} end states, ${(r.elapsedMs / 1000).toFixed(1)} s, ${rate} states/s`;
  if (!('mode' in r)) {
    const end = r.violation !== null ? 'violation found' : r.exhaustive ? 'exhaustive: every reachable state checked, no violation' : `no violation, not exhaustive (${r.bound} bound reached)`;
    return `# ${counts} — ${end}${on}`;
  }
  const walks = `${r.walks} walks${r.walksCut > 0 ? ` (${r.walksCut} cut at the depth bound)` : ''}`;
  const end = r.violation !== null ? `violation found in walk ${r.violation.walk}` : `no violation, not exhaustive (sampling never is; ${r.bound === 'walks' ? 'every walk run' : `${r.bound} bound reached`})`;
  const how = r.mode === 'pct' ? `mode pct (k = ${r.pctSteps} steps)` : 'mode random';
  return `# ${counts}, ${walks} — ${end}; ${how}, seed ${r.seed}${on}`;
}
