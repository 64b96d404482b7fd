/**
 * Where a search lives in Redis. Every key of one search carries the hash tag `{tdxsim:<id>}`, so on a
 * Redis Cluster the whole search sits in one hash slot: each Lua script below touches several of its keys
 * and must run on one node, atomically. A cluster therefore spreads searches over its nodes, not one search
 * (one node holds one search's visited set: see README, "Many machines").
 */

/** A search id names keys and appears in logs: letters, digits, '.', '_' and '-'. */
const SEARCH_ID = /^[A-Za-z0-9._-]{1,100}$/;

export function checkSearchId(id: string): string {
  if (!SEARCH_ID.test(id)) throw new RangeError(`--search-id needs 1 to 100 letters, digits, '.', '_' or '-', got "${id}"`);
  return id;
}

/** The consumer group every worker reads the frontier stream through. */
export const GROUP = 'workers';

export interface SearchKeys {
  /** Prefix of the per-entry keys (owner, snapshot, log), which scripts build from an entry id. */
  prefix: string;
  /** What the search is (JSON): scenario, invariants, bounds; workers build their model from it. */
  config: string;
  /** Hash: 8-byte fingerprint → the channels claimed from that state (stateTable.ts's data words). */
  seen: string;
  /** Stream of frontier entries (schedules from the initial world), read through the group GROUP. */
  frontier: string;
  /** Hash of counters: terminals, transitions, maxDepth, depthBound, queued, takeovers, seeded. */
  stats: string;
  /** Why the search ended, once it has: done, violation, states, time, interrupted, error. */
  stop: string;
  /** Hash: the shortest violation reported (len, json). */
  violation: string;
  /** Hash: worker id → its last report (JSON). */
  workers: string;
  /** Sorted set: worker id → when it last asked for work and found none (server ms). */
  idle: string;
  /** The summary the coordinator wrote when the search ended (JSON), for a coordinator that attaches later. */
  result: string;
}

export function searchKeys(id: string): SearchKeys {
  const p = `tdxsim:{${checkSearchId(id)}}:`;
  return {
    prefix: p,
    config: p + 'config',
    seen: p + 'seen',
    frontier: p + 'frontier',
    stats: p + 'stats',
    stop: p + 'stop',
    violation: p + 'violation',
    workers: p + 'workers',
    idle: p + 'idle',
    result: p + 'result',
  };
}

/** The keys of one frontier entry while a worker holds it. */
export function entryKeys(k: SearchKeys, entryId: string): { owner: string; snapshot: string; log: string } {
  return { owner: `${k.prefix}owner:${entryId}`, snapshot: `${k.prefix}snap:${entryId}`, log: `${k.prefix}log:${entryId}` };
}
