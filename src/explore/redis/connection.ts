/**
 * A connection to the Redis a search runs through (ioredis). A URL that is not redis:// or rediss://, or a
 * server that cannot be reached at the start, is the user's to fix (a RangeError or an OS error, exit 2);
 * once connected, a dropped connection is retried for about a minute, replaying queued commands — every
 * script is safe to lose or repeat, since a worker that loses an entry meanwhile is told `lost` and a
 * repeated claim explores nothing twice.
 */
import { Redis } from 'ioredis';

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

/** Connected, or rejected with why not (the URL and the server's error). */
export async function connectRedis(url: string, name: string): Promise<Redis> {
  checkRedisUrl(url);
  const redis = new Redis(url, {
    lazyConnect: true,
    connectionName: name,
    maxRetriesPerRequest: null,
    retryStrategy: (times) => (times > 60 ? null : Math.min(times * 100, 1_000)),
  });
  // Errors reach the commands that fail; without a listener ioredis would also print each one.
  redis.on('error', () => {});
  try {
    await redis.connect();
  } catch (e) {
    redis.disconnect();
    const why = e instanceof Error ? e.message : String(e);
    const err = new Error(`cannot reach Redis at ${url}: ${why}`) as NodeJS.ErrnoException;
    err.code = (e as NodeJS.ErrnoException).code ?? 'ECONNREFUSED';
    throw err;
  }
  return redis;
}
