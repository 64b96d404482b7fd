/**
 * The coordinator of a search through Redis (worker.ts has the design): describes the search in Redis (or
 * attaches to it, if a coordinator started it before), seeds the frontier, takes a share of the work
 * itself unless told not to, reports progress from the search's counters, raises the stop flag for the
 * time bound and Ctrl-C, and when the search has ended reads the summary — states (the visited hash's
 * size), end states, maximum depth, what stopped it, the shortest violation reported — and clears the
 * bulky keys. The summary is kept under the search's id for a day, so a coordinator that died and is run
 * again with the same command prints it.
 */
import { Cluster } from 'ioredis';
import type { Scenario } from '../../scenario/schema.ts';
import { Channels, type Bound, type ExploreBounds, type ExploreProgress, type ExploreResult, type Violation } from '../explore.ts';
import { invariantsOf } from '../invariants/index.ts';
import { modelOfScenario, type InvariantEntries } from '../share.ts';
import { FRAME_ARRIVE, encodeFrame, fingerprintBytes } from './codec.ts';
import { configJson, searchConfig } from './config.ts';
import { connectRedis, type RedisClient } from './connection.ts';
import { searchKeys, type SearchKeys } from './keys.ts';
import { Scripts } from './scripts.ts';
import { seedFrontier } from './seed.ts';
import { RedisWorker, type RedisWorkerEvent, type RedisWorkerReport } from './worker.ts';

export interface RedisSearchRequest {
  url: string;
  searchId: string;
  /** With its policy overrides applied. */
  scenario: Scenario;
  invariants: InvariantEntries;
  bounds: ExploreBounds;
  /** Take a share of the search in this process too (default true). */
  searchHere?: boolean;
  /** A worker silent this long is taken to be gone and its entry taken over (default 30 s). */
  leaseMs?: number;
  /** Where the breadth-first seed stops: frontier width, states (defaults 32, 1,000). */
  seed?: { width?: number; states?: number };
  /** How long the summary stays in Redis after the search (default a day). */
  keepSeconds?: number;
}

/** What a Redis search adds to the summary. */
export interface RedisSummary {
  url: string;
  searchId: string;
  /** The summary was already in Redis: a coordinator before this one saw the search end. */
  attached: 'new' | 'running' | 'finished';
  workers: RedisWorkerReport[];
  /** Entries taken over from workers that stopped answering. */
  takeovers: number;
}

export type RedisExploreResult = ExploreResult & { redis: RedisSummary };

export const LEASE_MS_DEFAULT = 30_000;
const KEEP_SECONDS_DEFAULT = 86_400;

const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function exploreThroughRedis(
  req: RedisSearchRequest,
  opts: { onProgress?: (p: ExploreProgress) => void; progressMs?: number; now?: () => number; signal?: AbortSignal; onWorkerEvent?: (e: RedisWorkerEvent) => void } = {},
): Promise<RedisExploreResult> {
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const k = searchKeys(req.searchId);
  const redis = await connectRedis(req.url, `tdxsim-coordinator-${req.searchId}`);
  const scripts = new Scripts(redis);
  try {
    const model = modelOfScenario(req.scenario);
    const words = new Channels(model).words;
    const config = searchConfig({ scenario: req.scenario, invariants: req.invariants, maxDepth: req.bounds.maxDepth, maxStates: req.bounds.maxStates, words, leaseMs: req.leaseMs ?? LEASE_MS_DEFAULT });
    const created = String(await scripts.text('create', [k.config, k.frontier], [configJson(config)]));
    if (created !== 'created' && created !== 'same') {
      const other = JSON.parse(created) as { scenario?: { name?: string } };
      throw new RangeError(`search "${req.searchId}" already exists in Redis at ${req.url} for another search (scenario ${other.scenario?.name ?? '?'}, or other invariants, bounds or lease); pick another --search-id`);
    }
    const stored = await redis.get(k.result);
    if (stored !== null) {
      const r = JSON.parse(stored) as RedisExploreResult;
      return { ...r, redis: { ...r.redis, attached: 'finished' } };
    }
    const attached = created === 'created' ? 'new' : 'running';
    if ((await redis.hget(k.stats, 'seeded')) !== '1') await seed(req, scripts, k, words);

    const stopLocal = new AbortController();
    const local = req.searchHere === false ? null : new RedisWorker({ url: req.url, searchId: req.searchId, signal: stopLocal.signal, ...(opts.onWorkerEvent ? { onEvent: opts.onWorkerEvent } : {}) });
    const localRun = local?.run() ?? null;
    localRun?.catch(() => {});
    const stop = (why: string) => scripts.text('stop', [k.stop], [why]);
    const every = opts.progressMs ?? 1_000;
    let lastProgress = start;
    let why: string | null;
    let ended = false;
    try {
      for (;;) {
        why = await redis.get(k.stop);
        if (why !== null) break;
        if ((await redis.hget(k.stats, 'seeded')) === '1' && (await redis.xlen(k.frontier)) === 0) {
          await stop('done');
          continue;
        }
        if (opts.signal?.aborted) {
          await stop('interrupted');
          continue;
        }
        if (now() - start > req.bounds.maxMillis) {
          await stop('time');
          continue;
        }
        if (now() - lastProgress >= every) {
          lastProgress = now();
          const [states, stats, queue] = await Promise.all([redis.hlen(k.seen), redis.hmget(k.stats, 'transitions', 'maxDepth'), redis.xlen(k.frontier)]);
          opts.onProgress?.({ states, transitions: Number(stats[0] ?? 0), depth: 0, maxDepth: Number(stats[1] ?? 0), queue, elapsedMs: now() - start });
        }
        await sleepMs(Math.min(every, 50));
      }
      ended = true;
    } finally {
      // Normally the local worker ends by reading the stop flag; after a failure here it is told to leave.
      if (!ended) stopLocal.abort();
    }
    // The local worker sees the stop at its next script; it must not outlive the keys it writes to.
    if (localRun !== null) await localRun;
    const result = await summarise(redis, k, req, why, attached, now() - start);
    await redis.set(k.result, JSON.stringify(result));
    await clearSearch(redis, k, req.keepSeconds ?? KEEP_SECONDS_DEFAULT);
    return result;
  } finally {
    redis.disconnect();
  }
}

/** The breadth-first seed, written once (the script refuses a second seed). */
async function seed(req: RedisSearchRequest, scripts: Scripts, k: SearchKeys, words: number): Promise<void> {
  const model = modelOfScenario(req.scenario);
  const invariants = invariantsOf(req.invariants).filter((i) => i.liveness !== true);
  const s = seedFrontier(model, invariants, req.bounds, req.seed?.width ?? 32, req.seed?.states ?? 1_000);
  const all = Buffer.alloc(4 * words, 0xff);
  const none = Buffer.alloc(4 * words);
  const seen = Buffer.concat(s.states.flatMap((st) => [fingerprintBytes(st.fp), st.expanded ? all : none]));
  const zeros = new Uint32Array(words);
  const entries = s.violation !== null || s.bound !== null ? [] : s.frontier.map((path) => encodeFrame({ kind: FRAME_ARRIVE, id: 0, path, sleep: zeros, explore: zeros }, words));
  await scripts.text('seed', [k.stats, k.seen, k.frontier], [seen, words, s.terminals, s.transitions, s.maxDepth, ...entries]);
  if (s.violation !== null) await scripts.text('violation', [k.violation, k.stop], [s.violation.choices.length, JSON.stringify(s.violation)]);
  else if (s.bound === 'states') await scripts.text('stop', [k.stop], ['states']);
}

const BOUNDS: Record<string, Bound> = { states: 'states', time: 'time', interrupted: 'interrupted' };

async function summarise(redis: RedisClient, k: SearchKeys, req: RedisSearchRequest, why: string, attached: RedisSummary['attached'], elapsedMs: number): Promise<RedisExploreResult> {
  const [states, stats, violationJson, workers, bytes] = await Promise.all([
    redis.hlen(k.seen),
    redis.hgetall(k.stats),
    redis.hget(k.violation, 'json'),
    redis.hgetall(k.workers),
    redis.call('MEMORY', 'USAGE', k.seen).catch(() => 0),
  ]);
  const violation = violationJson === null ? null : (JSON.parse(violationJson) as Violation);
  const bound: Bound | null = violation !== null ? null : (BOUNDS[why] ?? (stats.depthBound === '1' ? 'depth' : null));
  const reports = Object.values(workers)
    .map((j) => JSON.parse(j) as RedisWorkerReport)
    .sort((a, b) => b.newStates - a.newStates);
  return {
    status: violation === null ? 'clean' : 'violation',
    exhaustive: violation === null && why === 'done' && bound === null,
    bound,
    states,
    transitions: Number(stats.transitions ?? 0),
    maxDepth: Number(stats.maxDepth ?? 0),
    terminals: Number(stats.terminals ?? 0),
    elapsedMs,
    visitedBytes: Number(bytes ?? 0),
    cacheHitRate: 0,
    violation,
    threads: reports.map((r) => ({ busyMs: r.busyMs, newStates: r.newStates })),
    redis: { url: req.url, searchId: req.searchId, attached, workers: reports, takeovers: Number(stats.takeovers ?? 0) },
  };
}

/** Drops the visited hash, the frontier and what entries left behind; the rest expires after `keep` s. */
async function clearSearch(redis: RedisClient, k: SearchKeys, keep: number): Promise<void> {
  const leftovers: string[] = [];
  // SCAN walks one server; in a cluster the search's keys are all on the master serving its slot.
  for (const node of redis instanceof Cluster ? redis.nodes('master') : [redis]) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${k.prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000);
      cursor = next;
      leftovers.push(...keys.filter((key) => /:(owner|snap|log):/.test(key.slice(k.prefix.length - 1))));
    } while (cursor !== '0');
  }
  await redis.del(k.seen, k.frontier, ...leftovers);
  for (const key of [k.config, k.stats, k.stop, k.violation, k.workers, k.idle, k.result]) await redis.expire(key, keep);
}
