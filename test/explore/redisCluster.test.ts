/**
 * A search through a Redis Cluster: three local redis-server masters (Debian's package) joined into one
 * cluster. The coordinator and a worker are each given a node that does not serve the search's hash slot,
 * so every script and read must follow the cluster's slot map; the result is one process's. Without
 * redis-server the test is skipped with a message, except under CI.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { redisServerPath, startRedisCluster, type LocalRedis, type LocalRedisCluster } from '../../bench/redisServer.ts';
import { BIN, buildCli, scratchDir, splitLines, tdxsim, type CliResult } from '../e2e/helpers.ts';

const HAVE_REDIS = redisServerPath() !== null;
if (!HAVE_REDIS && !process.env.CI) console.warn('test/explore/redisCluster.test.ts: redis-server is not installed (apt-get install redis-server); the Redis Cluster test is skipped');

function start(cwd: string, ...args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr, lines: splitLines(stdout) })));
}

const summaryOf = (r: CliResult): string =>
  r.lines
    .find((l) => /^# \d+ states, /.test(l))!
    .replace(/[\d.]+ s, \d+ states\/s/, '')
    .replace(/ \(through Redis\)$/, '')
    // Transitions and the maximum depth depend on which worker reaches a state first.
    .replace(/\d+ transitions, max depth \d+, /, '');

describe.runIf(HAVE_REDIS || process.env.CI)('a search through a Redis Cluster', () => {
  let cluster: LocalRedisCluster;
  const dir = scratchDir();

  beforeAll(async () => {
    expect(HAVE_REDIS, 'redis-server must be installed where CI runs (.ci/run installs it)').toBe(true);
    buildCli();
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  /** The nodes that do not serve the slot of this search's keys. */
  async function nodesWithout(searchId: string): Promise<LocalRedis[]> {
    const any = new Redis(cluster.nodes[0]!.url);
    try {
      const slot = Number(await any.call('CLUSTER', 'KEYSLOT', `{tdxsim:${searchId}}`));
      const ranges = (await any.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
      const owner = ranges.find(([from, to]) => slot >= from && slot <= to)![2][1];
      return cluster.nodes.filter((n) => n.port !== owner);
    } finally {
      any.disconnect();
    }
  }

  it('zap-during-accept: a coordinator and a worker, each connected to a node without the search, give the one-process result and leave only the summary', async () => {
    const id = 'cluster-1';
    const [a, b] = await nodesWithout(id);
    const one = tdxsim(dir, 'explore', 'zap-during-accept', '--quiet');
    const worker = start(dir, 'explore-worker', '--redis', b!.url, '--search-id', id, '--quiet');
    const coordinator = await start(dir, 'explore', 'zap-during-accept', '--redis', a!.url, '--search-id', id, '--quiet');
    expect(coordinator.status, coordinator.stderr).toBe(0);
    expect(summaryOf(coordinator)).toBe(summaryOf(one));
    expect(coordinator.stdout).toMatch(new RegExp(`# Redis search ${id}: 2 workers \\(.*\\); no entry taken over\\n`));
    const w = await worker;
    expect(w.status, w.stderr).toBe(0);
    expect(w.lines.find((l) => l.startsWith('# worker '))).toMatch(/; the search ended: done$/);
    // The visited hash, the frontier and the entries' leftovers are gone: SCAN found them on the slot's node.
    const keys: string[] = [];
    for (const n of cluster.nodes) {
      const c = new Redis(n.url);
      keys.push(...((await c.keys('tdxsim:*')) as string[]));
      c.disconnect();
    }
    const left = keys.map((k) => k.replace(`tdxsim:{${id}}:`, ''));
    expect(left).toContain('result');
    // `idle` is there if a worker ever waited for work.
    expect(left.filter((k) => !['config', 'idle', 'result', 'stats', 'stop', 'workers'].includes(k))).toEqual([]);
  });
});
