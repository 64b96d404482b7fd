/**
 * The `tdxsim` command. Exit codes: 0 ok, 1 the model reached a failure, 2 bad input (src/cli/exitCodes.ts).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { availableParallelism } from 'node:os';
import { MODEL_VERSION } from '../version.ts';
import { EXIT_BAD_INPUT } from './exitCodes.ts';
import { examplesCommand } from './examples.ts';
import { EXPORT_FORMATS, exportCommand, type ExportCliOptions } from './export.ts';
import { inspectCommand, type InspectCliOptions } from './inspect.ts';
import { exitCodeForError, settleLater } from './later.ts';
import { liveRun, type LiveRunOptions } from './liveRun.ts';
import { replayCommand, type ReplayCliOptions } from './replay.ts';
import { runCommand } from './run.ts';
import { EXPLORE_DEFAULTS, EXPLORE_MODES, exploreCommand, type ExploreCliOptions } from './explore.ts';
import { parsePolicyOption, policiesCommand } from './policies.ts';
import { exploreWorkerCommand, type ExploreWorkerCliOptions } from './exploreWorker.ts';
import { invariantsCommand } from './invariants.ts';
import { importCommand, type ImportCliOptions } from './import.ts';
import { TRACE_FORMATS } from '../import/traceEvent.ts';

function nonNegativeInt(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${flag} needs a non-negative integer, got "${v}"`);
    return Number(v);
  };
}

function positiveInt(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) === 0) throw new InvalidArgumentError(`${flag} needs a positive integer, got "${v}"`);
    return Number(v);
  };
}

/** Seeds are 32-bit: the walks' generator takes no more (src/explore/sample.ts). */
function seed32(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) > 0xffff_ffff) throw new InvalidArgumentError(`${flag} needs an integer from 0 to 4294967295, got "${v}"`);
    return Number(v);
  };
}

/** A Redis worker leaves on Ctrl-C, and on SIGTERM, which is how Kubernetes and Slurm end a job's processes. */
function onLeave(leave: () => void): () => void {
  const handler = (signal: string) => {
    process.stderr.write(`\n# ${signal}: handing back the entry this worker holds, then leaving\n`);
    leave();
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.removeListener('SIGINT', handler);
    process.removeListener('SIGTERM', handler);
  };
}

/** Ctrl-C stops a search with its summary so far; a second Ctrl-C kills the process as usual. */
function onInterrupt(stop: () => void): () => void {
  const handler = () => {
    process.stderr.write('\n# interrupted: finishing with the summary so far (Ctrl-C again to quit at once)\n');
    stop();
  };
  process.once('SIGINT', handler);
  return () => process.removeListener('SIGINT', handler);
}

export function main(argv: string[], print: (line: string) => void = (l) => process.stdout.write(l + '\n')): number {
  let code = 0;
  const program = new Command('tdxsim')
    .description('Executable, event-sourced model of Intel TDX memory virtualization under Linux KVM')
    .version(MODEL_VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) => write(`tdxsim: ${s}`),
    });

  program
    .command('run')
    .description('run a scenario to the end, print one line per message and write the log')
    .argument('<scenario>', 'scenario file, directory with scenario.yaml, or bundled example name')
    .option('--log <file>', 'log file to write (default: <scenario name>.log.jsonl; a name ending in .gz writes it gzip-compressed), with its checkpoint index <file>.idx when it has 1024 events or more')
    .option('--seed <n>', 'deliver messages in a seeded random order (default: FIFO)', nonNegativeInt('--seed'))
    .option('--max-steps <n>', 'stop after this many messages (a failure)', nonNegativeInt('--max-steps'))
    .option('--json', 'print the log records instead of the readable lines')
    .option('--policy <name=on|off>', 'override a policy switch of the scenario (repeatable; see tdxsim policies)', parsePolicyOption)
    .option('--inspect', 'stream the run to the local web inspector (waits for the page to connect)')
    .option('--port <n>', 'with --inspect: port to serve on', nonNegativeInt('--port'))
    .option('--open', 'with --inspect: open the page in the desktop browser')
    .option('--pace <ms>', 'with --inspect: wait this long between deliveries, to watch the run unfold', nonNegativeInt('--pace'))
    .option('--stately', 'also stream to the Stately inspector (optional package @statelyai/inspect; needs network)')
    .option('--sign-key <file>', 'sign the log with HMAC-SHA256 under the key in this file (any 16 or more random bytes)')
    .action((scenario: string, o: LiveRunOptions & { signKey?: string }) => {
      if ((o.inspect || o.stately) && o.signKey !== undefined) throw new RangeError('--sign-key signs a plain run; it does not combine with --inspect or --stately');
      code = o.inspect || o.stately ? settleLater(liveRun(scenario, o, print)) : runCommand(scenario, o, print);
    });

  program
    .command('explore')
    .description('search the interleavings of a scenario (all of them, or seeded random or PCT walks) for an invariant violation; write a counterexample log if one is found')
    .argument('<scenario>', 'scenario file, directory with scenario.yaml, or bundled example name')
    .option('--max-depth <n>', `deliveries along one schedule (default ${EXPLORE_DEFAULTS.maxDepth})`, nonNegativeInt('--max-depth'))
    .option('--max-states <n>', `distinct states to visit (default ${EXPLORE_DEFAULTS.maxStates})`, nonNegativeInt('--max-states'))
    .option('--time <s>', `wall-clock limit in seconds (default ${EXPLORE_DEFAULTS.timeSeconds})`, nonNegativeInt('--time'))
    .option('--invariant <name>', "check this invariant (repeatable; default: the scenario's invariants, else the library's defaults; see tdxsim invariants)", (v: string, prev: string[] = []) => [...prev, v])
    .option('--no-minimise', 'write the counterexample as found instead of the shortest one')
    .option('--no-non-progress', 'skip the non-progress check (the state graph it records costs memory and time; see tdxsim invariants)')
    .option('--log <file>', 'counterexample log to write (default: <scenario name>.counterexample.log.jsonl)')
    .option('--policy <name=on|off>', 'override a policy switch of the scenario (repeatable; see tdxsim policies)', parsePolicyOption)
    .addOption(new Option('--mode <mode>', `dfs: every interleaving, depth-first; random or pct: seeded walks for scenarios too big for that (default ${EXPLORE_DEFAULTS.mode})`).choices(EXPLORE_MODES))
    .option('--seed <n>', `random/pct: the run's seed; walk i is the same for the same seed (default ${EXPLORE_DEFAULTS.seed})`, seed32('--seed'))
    .option('--walks <n>', `random/pct: walks to run (default ${EXPLORE_DEFAULTS.walks})`, positiveInt('--walks'))
    .option('--workers <n>', `worker threads sharing the search (default ${EXPLORE_DEFAULTS.workers}; this machine has ${availableParallelism()} cores)`, positiveInt('--workers'))
    .option('--sign-key <file>', 'sign the counterexample log with HMAC-SHA256 under the key in this file')
    .option('--pct-depth <d>', `pct: ordering constraints a bug may need, i.e. d − 1 priority change points per walk (default ${EXPLORE_DEFAULTS.pctDepth})`, positiveInt('--pct-depth'))
    .option('--redis <url>', 'search through the Redis at this URL (redis://host:6379, or any node of a Redis Cluster) with tdxsim explore-worker processes on any machines; this process seeds, searches too and reports')
    .option('--search-id <name>', 'with --redis: the name workers join the search by')
    .option('--coordinate-only', 'with --redis: seed, watch and report, but leave the search to the workers')
    .option('--lease <s>', 'with --redis: seconds a worker may stay silent before another takes over its share (default 30)', positiveInt('--lease'))
    .option('--preemptions <k>', 'dfs: every schedule with at most k preemptions, for k = 0, 1 … k in turn (stops at a violation, or at a level that sees every state)', nonNegativeInt('--preemptions'))
    .option('--single-level', 'with --preemptions: search level k only')
    .option('--persistent-sets', 'dfs: also explore deliveries nothing else can interfere with and no invariant sees alone (fewer states; not with non-progress)')
    .option('--json', 'print the summary (and the violation found) as one JSON document')
    .option('--quiet', 'no progress on stderr')
    .addHelpText('after', '\nExit codes: 0 exhaustive and no violation; 1 a violation (counterexample written); 2 bad input;\n3 no violation but not exhaustive (a bound stopped the search, or it sampled walks); 130 interrupted (Ctrl-C).')
    .action((scenario: string, o: ExploreCliOptions) => {
      code = settleLater(exploreCommand(scenario, o, { print, err: process.stderr, onInterrupt }));
    });

  program
    .command('explore-worker')
    .description('work on a search that runs through Redis (started by tdxsim explore --redis); join or leave at any time, exit when it ends')
    .requiredOption('--redis <url>', 'the Redis the search runs through (redis://host:6379, or any node of a Redis Cluster)')
    .requiredOption('--search-id <name>', "the search's name, as given to tdxsim explore --search-id")
    .option('--json', "print this worker's report as JSON")
    .option('--quiet', 'nothing on stderr')
    .addHelpText('after', '\nExit codes: 0 the search ended (its verdict is the coordinator\'s to report); 2 bad input; 130 left before the end (Ctrl-C, SIGTERM).')
    .action((o: ExploreWorkerCliOptions) => {
      code = settleLater(exploreWorkerCommand(o, { print, err: process.stderr, onLeave }));
    });

  program
    .command('replay')
    .description('rebuild every actor state at a step from a log')
    .argument('<log>', 'a tdxsim log (JSONL, or gzip-compressed JSONL)')
    .option('--to <step>', 'step to show (default: the last)', nonNegativeInt('--to'))
    .option('--verify', 're-execute the whole log and check every event, state hash and the outcome')
    .option('--actor <id>', 'show only this actor')
    .option('--json', 'print the state as JSON')
    .option('--key <file>', "check a signed log's signature with the key in this file (--verify requires it for a signed log)")
    .action((log: string, o: ReplayCliOptions) => {
      code = replayCommand(log, o, print);
    });

  program
    .command('inspect')
    .description('open a log (or a scenario, run in memory first; or a real trace, imported in memory) in the local web inspector')
    .argument('<log|scenario|trace>', 'a tdxsim log, a scenario file, directory or bundled example name, or a trace tdxsim import reads')
    .option('--port <n>', 'port to serve on (default 4780, or a free one if that is taken)', nonNegativeInt('--port'))
    .option('--host <addr>', 'address to bind (default 127.0.0.1: this machine only)')
    .option('--open', 'open the page in the desktop browser')
    .option('--seed <n>', 'for a scenario: run it with a seeded random order', nonNegativeInt('--seed'))
    .option('--max-steps <n>', 'for a scenario: stop after this many messages', nonNegativeInt('--max-steps'))
    .action((target: string, o: InspectCliOptions) => {
      code = settleLater(inspectCommand(target, o, print));
    });

  program
    .command('export')
    .description('export a log as a Mermaid sequence diagram or Perfetto trace, or the statecharts as Mermaid or SVG')
    .argument('<log>', 'a tdxsim log (or a scenario, run in memory first)')
    .addOption(new Option('--format <format>', 'what to write').choices(EXPORT_FORMATS).makeOptionMandatory())
    .option('--out <file>', 'write here instead of stdout (a directory for statechart-svg without --actor)')
    .option('--actor <id>', 'only this actor: its messages, or its machine')
    .option('--from <step>', 'mermaid/perfetto of a log: first step to export (read from the nearest checkpoint)', positiveInt('--from'))
    .option('--to <step>', 'mermaid/perfetto of a log: last step to export', positiveInt('--to'))
    .option('--json', 'print what was written (files) or the text itself as JSON')
    .action((log: string, o: ExportCliOptions) => {
      code = settleLater(exportCommand(log, o, print));
    });

  program
    .command('import')
    .description('read a real trace (trace-cmd report, ftrace, perf script, dmesg), build the scenario it implies, replay it through the model and report where they part')
    .argument('<trace...>', 'trace files of one run (a trace and its dmesg are merged by timestamp)')
    .addOption(new Option('--format <format>', 'the trace format (default: detected from the lines)').choices(TRACE_FORMATS))
    .option('--strict', 'malformed lines are errors (exit 2), not warnings')
    .option('--json', 'print the report as JSON')
    .option('--scenario-out <file>', 'where to write the scenario built from the trace (default: <name>.scenario.yaml)')
    .option('--log <file>', "also write the model's run as a log")
    .option('--max-steps <n>', 'stop the model after this many messages', nonNegativeInt('--max-steps'))
    .option('--inspect', "open the model's run in the local web inspector with the trace beside it")
    .option('--port <n>', 'with --inspect: port to serve on (default 4780, or a free one if that is taken)', nonNegativeInt('--port'))
    .option('--host <addr>', 'with --inspect: address to bind (default 127.0.0.1: this machine only)')
    .option('--open', 'with --inspect: open the page in the desktop browser')
    .action((traces: string[], o: ImportCliOptions) => {
      code = settleLater(importCommand(traces, o, print));
    });

  program
    .command('policies')
    .description('list the policy switches (kernel and module variants) with their defaults')
    .option('--json', 'print them as JSON')
    .action((o: { json?: boolean }) => {
      code = policiesCommand(o, print);
    });

  program
    .command('invariants')
    .description('list the invariants and monitors tdxsim explore can check')
    .option('--json', 'print them as JSON')
    .action((o: { json?: boolean }) => {
      code = invariantsCommand(o, print);
    });

  program
    .command('examples')
    .description('list the bundled scenarios')
    .option('--json', 'print them as JSON (name, description, vCPUs, scenario file, README)')
    .action((o: { json?: boolean }) => {
      code = examplesCommand(o, print);
    });

  try {
    program.parse(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
    return exitCodeForError(e);
  }
}
