/**
 * `tdxsim explore <scenario>`: search the scenario's interleavings for an invariant violation, depth-first
 * and exhaustively or by seeded random or PCT walks, through the session layer's exploration stream
 * (src/session/explore.ts). Progress goes to stderr (src/cli/progress.ts); the summary to stdout, or as
 * one JSON document with `--json`. A violation, however found, is minimised, written as a log of the
 * failing schedule, which `tdxsim replay` and the inspector open, and printed step by step.
 *
 * Exit codes: 0 only when the search was exhaustive and found nothing; 1 a violation; 2 bad input;
 * 3 nothing found, but the search was not exhaustive (a bound stopped it, or it sampled); 130 interrupted
 * (Ctrl-C), after the summary so far.
 */
import { lastValueFrom, tap } from 'rxjs';
import type { ExploreBounds, ExploreResult, LivenessSummary } from '../explore/explore.ts';
import type { SampleResult } from '../explore/sample.ts';
import { checkRedisUrl } from '../explore/redis/connection.ts';
import type { RedisExploreResult } from '../explore/redis/coordinator.ts';
import { checkSearchId } from '../explore/redis/keys.ts';
import type { PolicyOverrides } from '../policies.ts';
import { loadScenarioFile } from '../scenario/load.ts';
import { formatDelivery } from '../session/format.ts';
import { EXPLORE_DEFAULTS, EXPLORE_MODES, exploreScenario, resolveInvariants, type ExploreDone, type ExploreEvent, type ExploreMode, type ExploreStart, type Finding, type PreemptionLevelEvent } from '../session/explore.ts';
import { withPolicies } from '../session/policies.ts';
import { runModelEvents } from '../session/run.ts';
import { formatOptionsFor, headerFor } from '../session/session.ts';
import { readSigningKey, type SigningKey } from '../log/signature.ts';
import { LogWriter } from '../log/writer.ts';
import { EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK } from './exitCodes.ts';
import { duration, percent, Progress, thousands, type ProgressTarget } from './progress.ts';

export { EXPLORE_DEFAULTS, EXPLORE_MODES, type ExploreMode };

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
  /** The summary (and the finding) as one JSON document on stdout. */
  json?: boolean;
  /** No progress on stderr. */
  quiet?: boolean;
  /** Key file: sign the counterexample log (src/log/signature.ts). */
  signKey?: string;
  /** commander's negation of --no-non-progress: skip the non-progress check even where it applies. */
  nonProgress?: boolean;
  /** Search through the Redis at this URL, with `tdxsim explore-worker` processes (src/cli/exploreWorker.ts). */
  redis?: string;
  searchId?: string;
  /** With --redis: seed, watch and report, but leave the search to the workers. */
  coordinateOnly?: boolean;
  /** With --redis: seconds a worker may stay silent before its entry is taken over. */
  lease?: number;
  /** Every schedule with at most this many preemptions, level by level from 0. */
  preemptions?: number;
  /** With --preemptions: that level only. */
  singleLevel?: boolean;
  /** The persistent-set reduction on top of sleep sets. */
  persistentSets?: boolean;
}

/** Flags that only mean something in some modes: naming one elsewhere is a mistake worth an error. */
function misplacedFlag(opts: ExploreCliOptions, mode: ExploreMode): string | null {
  if (mode === 'dfs') {
    for (const [flag, v] of [['--seed', opts.seed], ['--walks', opts.walks], ['--pct-depth', opts.pctDepth]] as const) if (v !== undefined) return `${flag} applies to --mode random or pct, not dfs`;
  }
  if (mode === 'random' && opts.pctDepth !== undefined) return '--pct-depth applies to --mode pct, not random';
  if (opts.redis !== undefined && opts.preemptions !== undefined) return '--preemptions searches on one process; drop --redis';
  if (opts.redis !== undefined && opts.persistentSets) return '--persistent-sets applies to a search on one process; drop --redis';
  if (opts.singleLevel && opts.preemptions === undefined) return '--single-level applies to --preemptions';
  if (opts.preemptions !== undefined && mode !== 'dfs') return `--preemptions applies to --mode dfs, not ${mode}`;
  if (opts.preemptions !== undefined && (opts.workers ?? 1) > 1) return '--preemptions searches on one thread; drop --workers';
  if (opts.preemptions !== undefined && opts.persistentSets) return '--preemptions searches without reduction; drop --persistent-sets';
  if (opts.persistentSets && (mode !== 'dfs' || (opts.workers ?? 1) > 1)) return '--persistent-sets applies to --mode dfs on one thread (--workers 1)';
  return misplacedRedisFlag(opts, mode);
}

function misplacedRedisFlag(opts: ExploreCliOptions, mode: ExploreMode): string | null {
  if (opts.redis === undefined) {
    for (const [flag, v] of [['--search-id', opts.searchId], ['--coordinate-only', opts.coordinateOnly], ['--lease', opts.lease]] as const) if (v !== undefined) return `${flag} applies to a search through Redis (--redis)`;
    return null;
  }
  if (opts.searchId === undefined) return '--redis needs --search-id NAME, the name workers join the search by';
  if (mode !== 'dfs') return `--redis searches depth-first (--mode dfs), not by ${mode} walks`;
  if (opts.workers !== undefined) return '--workers sets threads of one process; with --redis, start tdxsim explore-worker processes instead';
  return null;
}

export interface ExploreIo {
  print: (line: string) => void;
  /** Where progress and errors go (stderr). */
  err: ProgressTarget;
  /** Installs the Ctrl-C handler; returns its removal. Tests leave it out. */
  onInterrupt?: (stop: () => void) => () => void;
}

export async function exploreCommand(scenarioArg: string, opts: ExploreCliOptions, io: ExploreIo): Promise<number> {
  const mode = opts.mode ?? EXPLORE_DEFAULTS.mode;
  const misplaced = misplacedFlag(opts, mode);
  if (misplaced !== null) {
    io.err.write(`tdxsim: ${misplaced}\n`);
    return EXIT_BAD_INPUT;
  }
  const loaded = loadScenarioFile(scenarioArg);
  // Names are checked before anything runs, so a typo is exit 2 and not a search.
  resolveInvariants(withPolicies(loaded.scenario, opts.policy), opts.invariant);
  // Read before the search, so a bad key fails at once rather than after it.
  const signWith = opts.signKey === undefined ? undefined : readSigningKey(opts.signKey);
  const stop = new AbortController();
  const removeInterrupt = io.onInterrupt?.(() => stop.abort()) ?? (() => undefined);
  const progress = new Progress(io.err, { quiet: !!opts.quiet });
  let start: ExploreStart | null = null;
  let done: ExploreDone | null = null;
  const events = exploreScenario(loaded.scenario, {
    ...(opts.invariant !== undefined ? { invariants: opts.invariant } : {}),
    ...(opts.policy !== undefined ? { policies: opts.policy } : {}),
    mode,
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    ...(opts.walks !== undefined ? { walks: opts.walks } : {}),
    ...(opts.pctDepth !== undefined ? { pctDepth: opts.pctDepth } : {}),
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    ...(opts.redis !== undefined
      ? { redis: { url: checkRedisUrl(opts.redis), searchId: checkSearchId(opts.searchId!), searchHere: opts.coordinateOnly !== true, ...(opts.lease !== undefined ? { leaseMs: opts.lease * 1000 } : {}) } }
      : {}),
    ...(opts.maxDepth !== undefined ? { maxDepth: opts.maxDepth } : {}),
    ...(opts.maxStates !== undefined ? { maxStates: opts.maxStates } : {}),
    ...(opts.time !== undefined ? { timeSeconds: opts.time } : {}),
    minimise: opts.minimise !== false,
    nonProgress: opts.nonProgress !== false,
    ...(opts.preemptions !== undefined ? { preemptions: opts.preemptions, singleLevel: opts.singleLevel === true } : {}),
    ...(opts.persistentSets ? { persistentSets: true } : {}),
    progressEvery: 1_000,
    signal: stop.signal,
  });
  try {
    await lastValueFrom(
      events.pipe(
        tap((e: ExploreEvent) => {
          if (e.type === 'start') {
            start = e;
            if (!opts.json) {
              io.print(headerLine(e));
              for (const n of e.notes) io.print(`# ${n}`);
            }
          } else if (e.type === 'level') {
            progress.clear();
            if (!opts.json) io.print(levelLine(e));
          } else if (e.type === 'progress') {
            progress.update(() => (e.phase === 'search' ? searchLine(e, e.bounds, queueName(start!)) : `minimising: no schedule of fewer than ${e.depth} steps breaks it (at most ${e.maxDepth}); ${thousands(e.states)} states searched breadth-first`));
          } else if (e.type === 'done') {
            done = e;
          }
        }),
      ),
    );
  } finally {
    progress.clear();
    removeInterrupt();
  }
  return report(start!, done!, loaded.file, signWith, opts, io.print);
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** One level of a preemption-bounded search. */
function levelLine(l: PreemptionLevelEvent): string {
  const took = `${l.states} states, ${l.transitions} transitions, ${(l.elapsedMs / 1000).toFixed(1)} s`;
  if (l.stopped !== null) return `# up to ${plural(l.preemptions, 'preemption')}, not exhaustive (${l.stopped === 'interrupted' ? 'interrupted' : `the ${l.stopped} bound stopped it`}): ${took}`;
  const seen = l.unreached === 0 ? 'every reachable state seen' : `${l.cut} deliveries over the bound, leading to ${l.unreached} states not seen`;
  return `# exhaustive up to ${plural(l.preemptions, 'preemption')}: ${took} — ${seen}`;
}

function headerLine(s: ExploreStart): string {
  const bounded = s.preemptions === null ? '' : s.singleLevel ? `, schedules with at most ${plural(s.preemptions, 'preemption')}` : `, schedules with at most ${plural(s.preemptions, 'preemption')}, level by level from 0`;
  const reduced = s.persistentSets ? ', persistent sets' : '';
  const how = s.mode === 'dfs' ? `depth-first${bounded}${reduced}` : `${s.mode === 'pct' ? `PCT walks, d = ${s.pctDepth}` : 'random walks'}, seed ${s.seed}, ${s.walks} walks`;
  const on = s.redis !== undefined ? `, through Redis at ${s.redis.url}, search ${s.redis.searchId}` : s.workers > 1 ? `, ${s.workers} workers` : '';
  return `# exploring ${s.scenario.name} (${how}${on}): invariants ${s.invariants.map((i) => i.name).join(', ')}; bounds depth ${s.bounds.maxDepth}, ${s.bounds.maxStates} states, ${s.bounds.maxMillis / 1000} s`;
}

const queueName = (s: ExploreStart) => (s.mode !== 'dfs' ? 'walks left' : s.redis !== undefined ? 'frontier entries in Redis' : s.workers > 1 ? 'frontier entries left' : 'on the stack');

/** The live reading: counts, rate, and how much of each bound is used. */
function searchLine(p: { states: number; transitions: number; depth: number; maxDepth: number; queue: number; elapsedMs: number }, b: ExploreBounds, queue: string): string {
  const rate = p.elapsedMs > 0 ? p.states / (p.elapsedMs / 1000) : 0;
  return [
    `${thousands(p.states)} states (${percent(p.states, b.maxStates)} of ${thousands(b.maxStates)})`,
    `${thousands(rate)}/s`,
    `${thousands(p.transitions)} transitions`,
    `depth ${p.depth}, max ${p.maxDepth} (${percent(p.maxDepth, b.maxDepth)} of ${b.maxDepth})`,
    `${duration(p.elapsedMs)} (${percent(p.elapsedMs, b.maxMillis)} of ${b.maxMillis / 1000} s)`,
    `${thousands(p.queue)} ${queue}`,
  ].join(' · ');
}

/** What a search that found nothing did not cover, for the summary. */
function notCovered(r: ExploreResult | SampleResult, b: ExploreBounds): string {
  if ('mode' in r) return `sampling never is; ${r.bound === 'walks' ? 'every walk run' : r.bound === 'interrupted' ? 'interrupted' : `${r.bound} bound reached`}`;
  switch (r.bound) {
    case 'states':
      return `states bound reached: ${thousands(b.maxStates)} distinct states checked, the rest of the state space was not`;
    case 'depth':
      return `depth bound reached: schedules longer than ${b.maxDepth} deliveries were cut there, what lies beyond was not checked`;
    case 'time':
      return `time bound reached after ${b.maxMillis / 1000} s: the states not yet visited were not checked`;
    case 'interrupted':
      return 'interrupted: the states not yet visited were not checked';
    case 'preemptions': {
      const last = 'preemptions' in r && r.preemptions !== undefined ? r.preemptions.levels.at(-1) : undefined;
      return `preemption bound reached: schedules with more than ${plural(last?.preemptions ?? 0, 'preemption')} were not searched${last === undefined ? '' : ` (they reach ${last.unreached} states not seen)`}`;
    }
    default:
      return 'stopped';
  }
}

function exitCodeOf(r: ExploreResult | SampleResult, finding: Finding | null): number {
  if (finding !== null) return EXIT_FAILURE;
  if (r.bound === 'interrupted') return EXIT_INTERRUPTED;
  return r.exhaustive ? EXIT_OK : EXIT_INCOMPLETE;
}

/** The summary, then for a violation the minimised counterexample: written as a log, printed. */
function report(start: ExploreStart, done: ExploreDone, file: string, signWith: SigningKey | undefined, opts: ExploreCliOptions, print: (line: string) => void): number {
  const { result: r, finding } = done;
  const code = exitCodeOf(r, finding);
  const logPath = finding === null ? null : (opts.log ?? `${start.scenario.name}.counterexample.log.jsonl`);
  const lines: string[] = [];
  if (finding !== null) {
    const fmt = formatOptionsFor(start.scenario);
    const violation = { invariant: finding.invariant, ...(finding.bound !== undefined ? { bound: finding.bound } : {}), detail: finding.detail };
    const writer = LogWriter.open(logPath!, headerFor(start.scenario, file, { kind: 'explore' }), signWith === undefined ? {} : { signWith });
    const lasso = finding.lasso !== undefined ? { lasso: finding.lasso } : {};
    runModelEvents(start.model, start.scenario, { choices: finding.choices, maxSteps: finding.choices.length, log: writer, violation, ...lasso }).subscribe((e) => {
      if (e.type === 'delivery') lines.push(formatDelivery({ seq: e.seq, ...e.message }, fmt));
    });
    writer.close();
  }
  if (opts.json) {
    print(JSON.stringify(summaryJson(start, r, finding, logPath, code), null, 2));
    return code;
  }
  print(summary(r, start.workers, start.bounds));
  if ('redis' in r) print(redisLine(r as RedisExploreResult));
  if ('liveness' in r && r.liveness) print(livenessLine(r.liveness));
  if ('persistentSets' in r && r.persistentSets) print(`# persistent sets: a topology of ${r.persistentSets.channels} channels, learnt by walks and checked by every new transition (${r.persistentSets.restarts} restart${r.persistentSets.restarts === 1 ? '' : 's'} for a channel or a cause it lacked)`);
  if (finding === null) return code;
  const found = `${finding.asFound.steps} steps, ${finding.asFound.preemptions} preemptions`;
  const lasso = finding.lasso;
  if (lasso !== undefined) print(`# lasso: ${lasso.loopStart} steps to the loop, then ${finding.choices.length - lasso.loopStart} steps a turn (prefix: shortest path over the state graph; loop: shortest cycle through its end, extended until fair; ${finding.preemptions} preemptions)`);
  else if (finding.minimised === 'off') print(`# counterexample as found: ${found}`);
  else if (finding.minimised === 'minimal') print(`# minimised: ${finding.choices.length} steps, ${finding.preemptions} preemptions (fewest steps, then fewest preemptions; ${finding.minimiserStates} states searched breadth-first); as found: ${found}`);
  else print(`# not minimised (${finding.minimised === 'bound' ? `state bound reached after ${finding.minimiserStates} states` : 'no shorter schedule'}); counterexample as found: ${found}`);
  if (lasso !== undefined) print(`# violation of ${finding.invariant}: a loop from step ${lasso.loopStart + 1} to step ${finding.choices.length} returns to the state after step ${lasso.loopStart}: ${finding.detail}`);
  else print(`# violation of ${finding.invariant} at step ${finding.choices.length}: ${finding.detail}`);
  const shown = 200;
  if (lines.length > shown) print(`# … ${lines.length - shown} earlier steps (the whole schedule is in the log)`);
  const first = Math.max(0, lines.length - shown);
  lines.slice(first).forEach((l, i) => {
    if (lasso !== undefined && first + i === lasso.loopStart) print(`# loop: steps ${lasso.loopStart + 1}–${lines.length}, back to the state after step ${lasso.loopStart}`);
    print(l);
  });
  print(`# counterexample: ${logPath}  (tdxsim replay ${logPath} --to N, or tdxsim inspect ${logPath})`);
  return code;
}

/** Who did the work of a Redis search, and what was taken over. */
function redisLine(r: RedisExploreResult): string {
  const w = r.redis.workers;
  const each = w.map((x) => `${x.worker}: ${thousands(x.newStates)} states first, ${x.entries} entries${x.takenOver > 0 ? ` (${x.takenOver} taken over)` : ''}`).join('; ');
  const over = r.redis.takeovers === 0 ? 'no entry taken over' : `${r.redis.takeovers} ${r.redis.takeovers === 1 ? 'entry' : 'entries'} taken over from workers that stopped answering`;
  const attached = r.redis.attached === 'finished' ? ' (the summary a coordinator before this one stored)' : r.redis.attached === 'running' ? ' (attached to a search already running)' : '';
  return `# Redis search ${r.redis.searchId}${attached}: ${w.length} ${w.length === 1 ? 'worker' : 'workers'} (${each}); ${over}`;
}

function livenessLine(l: LivenessSummary): string {
  const graph = `state graph of ${l.states} states, ${l.edges} edges (${l.prunedEdges} of them pruned from the search by the sleep sets), ${(l.bytes / 2 ** 20).toFixed(1)} MiB, searched in ${(l.checkMs / 1000).toFixed(1)} s`;
  return `# non-progress: ${graph} — ${l.exhaustive ? 'exhaustive' : 'not exhaustive (the search stopped at a bound; only fully expanded states were looked at)'}${l.findings > 0 ? `, ${l.findings} component${l.findings === 1 ? '' : 's'} with a fair loop` : ''}`;
}

/** The DFS line; a sampling line adds the walks, and names the mode and seed to rerun it. */
function summary(r: ExploreResult | SampleResult, workers: number, b: ExploreBounds): string {
  const on = 'redis' in r ? ` (through Redis)` : workers > 1 ? ` (${workers} workers)` : '';
  const rate = r.elapsedMs > 0 ? Math.round(r.states / (r.elapsedMs / 1000)) : r.states;
  const counts = `${r.states} states, ${r.transitions} transitions, max depth ${r.maxDepth}, ${r.terminals} end states, ${(r.elapsedMs / 1000).toFixed(1)} s, ${rate} states/s`;
  if (!('mode' in r)) {
    const end = r.violation !== null ? 'violation found' : r.exhaustive ? 'exhaustive: every reachable state checked, no violation' : `no violation, not exhaustive (${notCovered(r, b)})`;
    return `# ${counts} — ${end}${on}`;
  }
  const walks = `${r.walks} walks${r.walksCut > 0 ? ` (${r.walksCut} cut at the depth bound)` : ''}`;
  const end = r.violation !== null ? `violation found in walk ${r.violation.walk}` : `no violation, not exhaustive (${notCovered(r, b)})`;
  const how = r.mode === 'pct' ? `mode pct (k = ${r.pctSteps} steps)` : 'mode random';
  return `# ${counts}, ${walks} — ${end}; ${how}, seed ${r.seed}${on}`;
}

/** `--json`: the summary as data; field names are part of the CLI's interface. */
function summaryJson(start: ExploreStart, r: ExploreResult | SampleResult, finding: Finding | null, log: string | null, exitCode: number) {
  const verdict = finding !== null ? 'violation' : r.exhaustive ? 'clean' : r.bound === 'interrupted' ? 'interrupted' : 'incomplete';
  return {
    scenario: start.scenario.name,
    mode: start.mode,
    ...(start.mode !== 'dfs' ? { seed: start.seed, pctDepth: start.mode === 'pct' ? start.pctDepth : null } : {}),
    workers: start.workers,
    ...('redis' in r ? { redis: (r as RedisExploreResult).redis } : {}),
    invariants: start.invariants.map((i) => (i.bound === undefined ? i.name : { name: i.name, bound: i.bound })),
    bounds: { maxDepth: start.bounds.maxDepth, maxStates: start.bounds.maxStates, timeSeconds: start.bounds.maxMillis / 1000 },
    verdict,
    exhaustive: r.exhaustive,
    bound: r.bound,
    ...(!('mode' in r) && r.preemptions !== undefined ? { preemptions: r.preemptions } : {}),
    ...(!('mode' in r) && r.persistentSets !== undefined ? { persistentSets: r.persistentSets } : {}),
    notCovered: finding === null && !r.exhaustive ? notCovered(r, start.bounds) : null,
    states: r.states,
    transitions: r.transitions,
    maxDepth: r.maxDepth,
    endStates: r.terminals,
    elapsedSeconds: Math.round(r.elapsedMs) / 1000,
    ...('mode' in r ? { walks: r.walks, walksCut: r.walksCut, pctSteps: r.pctSteps, violatingWalk: r.violation?.walk ?? null } : {}),
    violation:
      finding === null
        ? null
        : {
            invariant: finding.invariant,
            ...(finding.bound !== undefined ? { bound: finding.bound } : {}),
            detail: finding.detail,
            steps: finding.choices.length,
            preemptions: finding.preemptions,
            minimised: finding.minimised,
            asFound: finding.asFound,
            ...(finding.lasso !== undefined ? { lasso: finding.lasso } : {}),
            log,
          },
    exitCode,
  };
}
