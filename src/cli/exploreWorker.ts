/**
 * `tdxsim explore-worker --redis URL --search-id NAME`: one worker of a search that runs through Redis
 * (src/explore/redis/). It may start before the coordinator (it waits for the search to appear), join a
 * search already running, and leave at any time: Ctrl-C or SIGTERM (a scheduler ending the job) commits
 * what it holds and hands it back at once; a worker killed outright has its entry taken over when its
 * lease runs out. It exits when the search has ended, whatever the verdict — the coordinator reports
 * that (`tdxsim explore … --redis`), and it prints only what this worker did.
 *
 * Exit codes: 0 the search ended; 2 bad input (a URL, an unreachable server, a search of another model
 * version); 130 left before the end (Ctrl-C, SIGTERM).
 */
import { checkRedisUrl } from '../explore/redis/connection.ts';
import { checkSearchId } from '../explore/redis/keys.ts';
import { RedisWorker, type RedisWorkerEvent, type RedisWorkerReport } from '../explore/redis/worker.ts';
import { EXIT_INTERRUPTED, EXIT_OK } from './exitCodes.ts';
import { duration, thousands, type ProgressTarget } from './progress.ts';

export interface ExploreWorkerCliOptions {
  redis: string;
  searchId: string;
  json?: boolean;
  quiet?: boolean;
}

export interface ExploreWorkerIo {
  print: (line: string) => void;
  err: ProgressTarget;
  /** Installs the handler of Ctrl-C and SIGTERM; returns its removal. */
  onLeave?: (leave: () => void) => () => void;
}

export async function exploreWorkerCommand(opts: ExploreWorkerCliOptions, io: ExploreWorkerIo): Promise<number> {
  const url = checkRedisUrl(opts.redis);
  const searchId = checkSearchId(opts.searchId);
  const leave = new AbortController();
  const removeLeave = io.onLeave?.(() => leave.abort()) ?? (() => undefined);
  const say = (line: string) => {
    if (!opts.quiet) io.err.write(line + '\n');
  };
  const onEvent = (e: RedisWorkerEvent) => {
    if (e.type === 'waiting-for-search') say(`# waiting for search ${searchId} to appear in Redis at ${url}`);
    else if (e.type === 'joined') say(`# joined search ${searchId} at ${url}: ${e.config.scenario.name}, invariants ${invariantNames(e.config.invariants)}`);
    else if (e.type === 'lost') say(`# entry ${e.id} was taken over by another worker while this one was silent; dropped`);
  };
  let report: RedisWorkerReport;
  try {
    report = await new RedisWorker({ url, searchId, signal: leave.signal, onEvent }).run();
  } finally {
    removeLeave();
  }
  if (opts.json) io.print(JSON.stringify(report, null, 2));
  else io.print(reportLine(report));
  return report.end === 'left' ? EXIT_INTERRUPTED : EXIT_OK;
}

function invariantNames(entries: unknown): string {
  if (!Array.isArray(entries)) return 'the defaults';
  return entries.map((e) => (typeof e === 'string' ? e : (e as { name: string }).name)).join(', ');
}

function reportLine(r: RedisWorkerReport): string {
  const entries = `${r.entries} ${r.entries === 1 ? 'entry' : 'entries'}${r.takenOver > 0 ? ` (${r.takenOver} taken over)` : ''}${r.lost > 0 ? `, ${r.lost} lost to a successor` : ''}`;
  const end = r.end === 'left' ? 'left before the search ended (what it held is handed back)' : `the search ended: ${r.end}`;
  return `# worker ${r.worker}: ${thousands(r.newStates)} states entered first, ${thousands(r.transitions)} transitions, ${entries}, ${r.handedOff} frames handed to others, busy ${duration(r.busyMs)}; ${end}`;
}
