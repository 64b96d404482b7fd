/**
 * A throwaway redis-server (Debian's package) for the Redis tests and benchmark: a free port on 127.0.0.1,
 * a temporary directory, no persistence; stopped by its own process id.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';

/** The redis-server on PATH, or null. */
export function redisServerPath(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p !== '' ? p : null;
}

export interface LocalRedis {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startRedisServer(extra: readonly string[] = []): Promise<LocalRedis> {
  const bin = redisServerPath();
  if (bin === null) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-redis-'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'notice', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    const ready = await new Promise<boolean>((resolve) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve(true);
      });
      child.on('exit', () => resolve(false));
    });
    if (ready) {
      child.stdout!.resume();
      child.stderr!.resume();
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        process: child,
        stop: () =>
          new Promise<void>((resolve) => {
            child.once('exit', () => {
              rmSync(dir, { recursive: true, force: true });
              resolve();
            });
            child.kill('SIGTERM');
          }),
      };
    }
    // Another process took the port between the probe and the start.
    if (attempt >= 5) throw new Error(`redis-server did not start (port ${port})`);
  }
}

export interface LocalRedisCluster {
  /** The masters, each serving a third of the slots. */
  nodes: LocalRedis[];
  stop(): Promise<void>;
}

/**
 * Three redis-server masters joined into a Redis Cluster (no replicas), each serving a third of the 16,384
 * hash slots; resolved once every node reports the cluster ready.
 */
export async function startRedisCluster(): Promise<LocalRedisCluster> {
  const nodes: LocalRedis[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < 3; i++) nodes.push(await startRedisServer(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000']));
    const clients = nodes.map((n) => new Redis(n.url));
    try {
      const third = Math.ceil(16_384 / 3);
      await Promise.all(clients.map((c, i) => c.call('CLUSTER', 'ADDSLOTSRANGE', i * third, Math.min(16_383, (i + 1) * third - 1))));
      for (const n of nodes.slice(1)) await clients[0]!.call('CLUSTER', 'MEET', '127.0.0.1', n.port);
      // The nodes gossip until each knows every slot's owner; that takes a few of their heartbeats.
      for (const c of clients) while (!/^cluster_state:ok\b/m.test(String(await c.call('CLUSTER', 'INFO')))) await new Promise((r) => setTimeout(r, 50));
    } finally {
      for (const c of clients) c.disconnect();
    }
    return { nodes, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
