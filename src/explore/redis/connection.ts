/**
 * A connection to the Redis a search runs through (ioredis). A URL that is not redis:// or rediss://, or a
 * server that cannot be reached at the start, is the user's to fix (a RangeError or an OS error, exit 2);
 * once connected, a dropped connection is retried for about a minute, replaying queued commands — every
 * script is safe to lose or repeat, since a worker that loses an entry meanwhile is told `lost` and a
 * repeated claim explores nothing twice.
 */
import { Cluster, Redis } from 'ioredis';

export function checkRedisUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RangeError(`--redis needs a URL such as redis://host:6379, got "${url}"`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new RangeError(`--redis needs a redis:// or rediss:// URL, got "${url}"`);
  return url;
}

/** A single Redis server, or a Redis Cluster: the search uses only what both clients offer alike. */
export type RedisClient = Redis | Cluster;

/**
 * Connected, or rejected with why not (the URL and the server's error). The URL may name any node of a
 * Redis Cluster: the client then follows the cluster's slot map, so the search's hash slot (keys.ts) may
 * live on another node.
 */
export async function connectRedis(url: string, name: string): Promise<RedisClient> {
  checkRedisUrl(url);
  const redis = new Redis(url, { ...nodeOptions(name), retryStrategy: (times) => (times > 60 ? null : Math.min(times * 100, 1_000)) });
  // Errors reach the commands that fail; without a listener ioredis would also print each one.
  redis.on('error', () => {});
  try {
    await redis.connect();
  } catch (e) {
    redis.disconnect();
    throw unreachable(url, e);
  }
  // A managed Redis may refuse INFO; it is then taken for a single server, as most are.
  const clustered = await redis.info('cluster').then((i) => /^cluster_enabled:1\b/m.test(i), () => false);
  if (!clustered) return redis;
  const { host, port, username, password, tls } = redis.options;
  redis.disconnect();
  const cluster = new Cluster([{ host, port }], {
    lazyConnect: true,
    clusterRetryStrategy: (times) => (times > 60 ? null : Math.min(times * 100, 1_000)),
    redisOptions: { ...nodeOptions(name), ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}), ...(tls !== undefined ? { tls } : {}) },
  });
  cluster.on('error', () => {});
  try {
    await cluster.connect();
  } catch (e) {
    cluster.disconnect();
    throw unreachable(url, e);
  }
  return cluster;
}

function nodeOptions(name: string) {
  return { lazyConnect: true, connectionName: name, maxRetriesPerRequest: null };
}

function unreachable(url: string, e: unknown): NodeJS.ErrnoException {
  const why = e instanceof Error ? e.message : String(e);
  const err = new Error(`cannot reach Redis at ${url}: ${why}`) as NodeJS.ErrnoException;
  err.code = (e as NodeJS.ErrnoException).code ?? 'ECONNREFUSED';
  return err;
}
