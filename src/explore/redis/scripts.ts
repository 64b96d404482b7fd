/**
 * The search's operations on Redis, each one Lua script so that it is atomic: a worker's claims, its
 * entry's log and its lease change together or not at all, whatever other workers do meanwhile and
 * wherever a worker dies. Records are the binary layouts of codec.ts; times are the server's (TIME), so
 * leases do not depend on the workers' clocks.
 *
 * Ownership of an entry is a fencing token: a worker's writes for an entry check `owner:<id>` first, so a
 * worker that was thought dead (its lease expired, another took its entry over) and comes back cannot
 * write into what its successor now owns; it is told `lost` and drops the entry.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from './connection.ts';

/** KEYS: config, frontier. ARGV: config JSON. → 'created' | 'same' | the other config. */
const CREATE = `
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.pcall('XGROUP', 'CREATE', KEYS[2], 'workers', '0', 'MKSTREAM')
  return 'created'
end
if cur == ARGV[1] then return 'same' end
return cur
`;

/**
 * KEYS: stats, seen, frontier. ARGV: seen records (fingerprint, claimed words) back to back, words,
 * terminals, transitions, max depth, then one frame per frontier entry. Once only (stats.seeded).
 */
const SEED = `
if redis.call('HGET', KEYS[1], 'seeded') == '1' then return 0 end
local rec = 8 + 4 * tonumber(ARGV[2])
local blob = ARGV[1]
for o = 1, #blob, rec do
  redis.call('HSET', KEYS[2], string.sub(blob, o, o + 7), string.sub(blob, o + 8, o + rec - 1))
end
for i = 6, #ARGV do redis.call('XADD', KEYS[3], '*', 'e', ARGV[i]) end
redis.call('HSET', KEYS[1], 'seeded', 1, 'queued', #ARGV - 5, 'terminals', ARGV[3], 'transitions', ARGV[4], 'maxDepth', ARGV[5])
return 1
`;

/**
 * KEYS: frontier, stats, stop, idle. ARGV: worker id, lease ms, key prefix.
 * → {'stop', why} | {'new', id, frame} | {'stale', id, frame, snapshot, log records} | {'wait'}.
 * New entries first; then one whose holder has not renewed its lease for lease ms (XAUTOCLAIM); when
 * the stream is empty after seeding, every entry is done and the search is.
 */
const TAKE = `
local stop = redis.call('GET', KEYS[3])
if stop then return {'stop', stop} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function own(id)
  redis.call('SET', ARGV[3] .. 'owner:' .. id, ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
local r = redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[1], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
if r and r[1] and r[1][2][1] then
  local e = r[1][2][1]
  own(e[1])
  redis.call('HINCRBY', KEYS[2], 'queued', -1)
  return {'new', e[1], e[2][2]}
end
local c = redis.call('XAUTOCLAIM', KEYS[1], 'workers', ARGV[1], ARGV[2], '0-0', 'COUNT', 1)
local e = c[2][1]
if e and e[2] then
  own(e[1])
  redis.call('HINCRBY', KEYS[2], 'takeovers', 1)
  local snap = redis.call('GET', ARGV[3] .. 'snap:' .. e[1])
  local log = redis.call('LRANGE', ARGV[3] .. 'log:' .. e[1], 0, -1)
  return {'stale', e[1], e[2][2], snap, log}
end
if redis.call('HGET', KEYS[2], 'seeded') == '1' and redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('SET', KEYS[3], 'done', 'NX')
  return {'stop', redis.call('GET', KEYS[3])}
end
redis.call('ZADD', KEYS[4], now, ARGV[1])
return {'wait'}
`;

/**
 * The hot path. KEYS: seen, stats, stop, owner, log, frontier. ARGV: worker id, entry id, words, max
 * states, claims. For each claim, in order: the channels it is awake for and nobody has claimed are its to
 * explore (stateTable.ts's rule); they are claimed, and logged under the entry with the claim's place in
 * the worker's search, so whoever takes the entry over can finish them. Renews the lease.
 * → 'L' (lost the entry) | 'S' .. why (stopped) | 'K' .. replies.
 */
const CLAIM = `
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return 'L' end
local stop = redis.call('GET', KEYS[3])
if stop then return 'S' .. stop end
redis.call('XCLAIM', KEYS[6], 'workers', ARGV[1], 0, ARGV[2], 'JUSTID')
local words = tonumber(ARGV[3])
local blob = ARGV[5]
local sw = 4 * words
local rec = 8 + sw + 11
local fmt = '<' .. string.rep('i4', words)
local zero = string.rep('\\0', sw)
local out, logs = {}, {}
local fresh_n, terminals = 0, 0
local band, bor, bnot, pack, sunpack, byte, sub = bit.band, bit.bor, bit.bnot, struct.pack, struct.unpack, string.byte, string.sub
local e, v = {}, {}
for o = 1, #blob, rec do
  local fp = sub(blob, o, o + 7)
  local awake = sub(blob, o + 8, o + 7 + sw)
  local meta = sub(blob, o + 8 + sw, o + rec - 1)
  local flags = byte(meta, 11)
  local terminal = flags % 2 == 1
  local speculative = flags >= 2
  local old = redis.call('HGET', KEYS[1], fp)
  if not old then
    redis.call('HSET', KEYS[1], fp, awake)
    fresh_n = fresh_n + 1
    if terminal then terminals = terminals + 1
    elseif speculative or awake ~= zero then logs[#logs + 1] = sub(meta, 1, 10) .. awake .. awake end
    out[#out + 1] = '\\1'
  else
    local a = {sunpack(fmt, awake)}
    local c = {sunpack(fmt, old)}
    local any = 0
    for w = 1, words do
      e[w] = band(a[w], bnot(c[w]))
      v[w] = bor(c[w], a[w])
      any = bor(any, e[w])
    end
    local exs = pack(fmt, unpack(e, 1, words))
    local value = old
    if any ~= 0 then
      value = pack(fmt, unpack(v, 1, words))
      redis.call('HSET', KEYS[1], fp, value)
    end
    if (any ~= 0 or speculative) and not terminal then logs[#logs + 1] = sub(meta, 1, 10) .. awake .. exs end
    out[#out + 1] = '\\0' .. exs .. value
  end
end
for i = 1, #logs, 512 do redis.call('RPUSH', KEYS[5], unpack(logs, i, math.min(i + 511, #logs))) end
if terminals > 0 then redis.call('HINCRBY', KEYS[2], 'terminals', terminals) end
if fresh_n > 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then redis.call('SET', KEYS[3], 'states', 'NX') end
return 'K' .. table.concat(out)
`;

/** Counters a worker adds when it commits or finishes: ARGV[3..6] of both scripts. */
const COUNTERS = `
redis.call('HINCRBY', KEYS[4], 'transitions', ARGV[3])
local m = tonumber(redis.call('HGET', KEYS[4], 'maxDepth') or '0')
if tonumber(ARGV[4]) > m then redis.call('HSET', KEYS[4], 'maxDepth', ARGV[4]) end
if ARGV[5] == '1' then redis.call('HSET', KEYS[4], 'depthBound', 1) end
redis.call('HSET', KEYS[6], ARGV[1], ARGV[6])
`;

/**
 * A worker's checkpoint of the entry it holds. KEYS: owner, snapshot, log, stats, frontier, workers, idle, stop.
 * ARGV: worker id, entry id, transitions since the last report, max depth, depth bound hit (0/1), the
 * worker's report (JSON), lease ms, k, k frames the worker can spare (the shallowest first), then the
 * rest of its stack as one blob. Hands frames to the frontier while workers wait for work (or one when
 * none is queued, so a worker that joins finds some), and makes the rest the entry's snapshot: with the
 * log emptied, the snapshot is all a successor needs. → {'lost'} | {'ok', frames handed off, stop}.
 */
const COMMIT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lost'} end
${COUNTERS}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - tonumber(ARGV[7]))
local idle = redis.call('ZCARD', KEYS[7])
local queued = tonumber(redis.call('HGET', KEYS[4], 'queued') or '0')
local k = tonumber(ARGV[8])
local give = 0
if queued == 0 then give = math.max(idle, 1) elseif idle > queued then give = idle - queued end
if give > k then give = k end
for i = 1, give do redis.call('XADD', KEYS[5], '*', 'e', ARGV[8 + i]) end
if give > 0 then redis.call('HINCRBY', KEYS[4], 'queued', give) end
local rest = {}
for i = give + 1, k do rest[#rest + 1] = ARGV[8 + i] end
rest[#rest + 1] = ARGV[9 + k]
redis.call('SET', KEYS[2], table.concat(rest))
redis.call('DEL', KEYS[3])
redis.call('XCLAIM', KEYS[5], 'workers', ARGV[1], 0, ARGV[2], 'JUSTID')
return {'ok', give, redis.call('GET', KEYS[8]) or ''}
`;

/** An entry done. KEYS: owner, snapshot, log, stats, frontier, workers, stop. ARGV as COMMIT's first six. → 'lost' | stop. */
const FINISH = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lost' end
${COUNTERS}
redis.call('XACK', KEYS[5], 'workers', ARGV[2])
redis.call('XDEL', KEYS[5], ARGV[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return redis.call('GET', KEYS[7]) or ''
`;

/** KEYS: violation, stop. ARGV: schedule length, JSON. Keeps the shortest schedule reported; stops the search. */
const VIOLATION = `
local len = tonumber(redis.call('HGET', KEYS[1], 'len') or '-1')
if len < 0 or tonumber(ARGV[1]) < len then redis.call('HSET', KEYS[1], 'len', ARGV[1], 'json', ARGV[2]) end
redis.call('SET', KEYS[2], 'violation', 'NX')
return redis.call('GET', KEYS[2])
`;

/**
 * A worker leaving while it holds an entry (Ctrl-C, SIGTERM from a scheduler), after a commit: the entry
 * is made claimable at once instead of after its lease. KEYS: owner, frontier. ARGV: worker id, entry id.
 */
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('XCLAIM', KEYS[2], 'workers', ARGV[1], 0, ARGV[2], 'IDLE', 1000000000000, 'JUSTID')
return 1
`;

/** KEYS: stop. ARGV: why. The first reason stands. */
const STOP = `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`;

const SOURCES = { create: CREATE, seed: SEED, take: TAKE, claim: CLAIM, commit: COMMIT, finish: FINISH, release: RELEASE, violation: VIOLATION, stop: STOP } as const;
export type ScriptName = keyof typeof SOURCES;

type Arg = string | number | Buffer;

/**
 * Runs the scripts by SHA (EVALSHA), and by source (EVAL, which also caches it there) when the server
 * answers NOSCRIPT: first use, a restarted or failed-over server, or in a Redis Cluster the node serving
 * the search's slot, which is where both commands go (they are routed by their first key).
 */
export class Scripts {
  private static readonly shas = new Map<ScriptName, string>(Object.entries(SOURCES).map(([name, source]) => [name as ScriptName, createHash('sha1').update(source).digest('hex')]));
  constructor(private readonly redis: RedisClient) {}

  /** The reply with bulk strings as Buffers (claims, frames). */
  async buffer(name: ScriptName, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return this.run(name, keys, args, true);
  }

  /** The reply with bulk strings as strings. */
  async text(name: ScriptName, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return this.run(name, keys, args, false);
  }

  private async run(name: ScriptName, keys: readonly string[], args: readonly Arg[], binary: boolean): Promise<unknown> {
    const send = (...argv: [string, string, number, ...(string | number | Buffer)[]]) => (binary ? this.redis.callBuffer(...argv) : this.redis.call(...argv));
    try {
      try {
        return await send('EVALSHA', Scripts.shas.get(name)!, keys.length, ...keys, ...args);
      } catch (e) {
        if (!(e instanceof Error && e.message.startsWith('NOSCRIPT'))) throw e;
        return await send('EVAL', SOURCES[name], keys.length, ...keys, ...args);
      }
    } catch (e) {
      // The server refusing (out of memory, no permission, a script error) is the operator's to fix: a
      // message with the reason, exit 2, rather than a stack trace.
      if (e instanceof Error && e.name === 'ReplyError') throw Object.assign(new Error(`Redis refused the search's ${name} script: ${e.message}`), { code: 'EREDIS' });
      throw e;
    }
  }
}
