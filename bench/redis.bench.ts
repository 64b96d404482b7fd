/**
 * `npm run bench` (third part): a search through Redis against one process, on the same searches, in one
 * run — processes as a user starts them (`tdxsim explore`, `tdxsim explore --redis … --coordinate-only` and
 * `tdxsim explore-worker`), wall clock from the first start to the coordinator's exit, start-up included,
 * the best of two. Also Redis's own CPU time and the visited hash's memory per state. Needs Debian's
 * redis-server (skipped with a message without it). Results go to bench/results/redis.json.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { redisServerPath, startRedisServer, type LocalRedis } from './redisServer.ts';
import { explore } from '../src/explore/explore.ts';
import { invariantsOf } from '../src/explore/invariants/index.ts';
import { loadScenarioFile } from '../src/scenario/load.ts';
import { modelFor } from '../src/session/session.ts';

const BIN = path.resolve('bin/tdxsim.js');

interface Run {
  status: number | null;
  stdout: string;
}

function run(cwd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('close', (status) => resolve({ status, stdout }));
  });
}

interface Row {
  scenario: string;
  how: string;
  /** Processes that search (the coordinator counts when it searches too). */
  searching: number;
  states: number;
  /** Transitions over the one-process search's: work done twice where workers met. */
  transitions: number;
  exhaustive: boolean;
  seconds: number;
  statesPerSecond: number;
  /** Redis's CPU time (user + system) over the run. */
  redisCpuSeconds: number | null;
  /** The visited hash's memory (MEMORY USAGE, sampled) per state. */
  redisBytesPerState: number | null;
  /** States each worker entered first. */
  perWorker: number[];
  /** CPU time of the workers' searches (from joining to leaving), summed; null for one process. */
  workersCpuSeconds: number | null;
}

async function redisCpu(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const get = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)![1]);
  return get('used_cpu_user') + get('used_cpu_sys');
}

/**
 * What a second process can get on this machine right now: a pure integer loop in one process, then in
 * two at once. 2.0 means two free cores; the machine is shared, so the ratios are read against this one.
 */
async function twoProcessCapacity(): Promise<number> {
  const loop = 'let x = 0; for (let i = 0; i < 3e8; i++) x = (x + Math.imul(i, 0x9e3779b1)) | 0; if (x === 42) console.log(x);';
  const spin = () => new Promise<void>((resolve) => spawn(process.execPath, ['-e', loop], { stdio: 'ignore' }).on('close', () => resolve()));
  let t = performance.now();
  await spin();
  const alone = performance.now() - t;
  t = performance.now();
  await Promise.all([spin(), spin()]);
  return Number(((2 * alone) / (performance.now() - t)).toFixed(2));
}

/** The one-process search's CPU time in this process, warm (the second of two runs): what a worker's search is compared with. */
function oneProcessCpu(scenario: string): number {
  const s = loadScenarioFile(`examples/${scenario}`).scenario;
  let cpu = 0;
  for (let i = 0; i < 2; i++) {
    const t = process.cpuUsage();
    explore(modelFor(s), invariantsOf(s.invariants), { maxDepth: 5_000, maxStates: 2_000_000, maxMillis: 600_000 });
    const d = process.cpuUsage(t);
    cpu = (d.user + d.system) / 1e6;
  }
  return Number(cpu.toFixed(2));
}

let ids = 0;

/** One search: `workers` explore-worker processes, the coordinator searching too or not. */
async function once(server: LocalRedis, redis: Redis, scenario: string, workers: number, coordinatorSearches: boolean): Promise<Row> {
  const cwd = mkdtempSync(path.join(tmpdir(), 'tdxsim-bench-'));
  const cpu0 = await redisCpu(redis);
  const t0 = performance.now();
  let out: Run;
  let how: string;
  if (workers === 0 && !coordinatorSearches) {
    how = 'one process';
    out = await run(cwd, ['explore', scenario, '--json', '--quiet']);
  } else {
    const id = `bench-${process.pid}-${++ids}`;
    const on = ['--redis', server.url, '--search-id', id];
    const ws = Array.from({ length: workers }, () => run(cwd, ['explore-worker', ...on, '--quiet']));
    out = await run(cwd, ['explore', scenario, ...on, '--json', '--quiet', ...(coordinatorSearches ? [] : ['--coordinate-only'])]);
    await Promise.all(ws);
    how = `Redis: ${coordinatorSearches ? 'coordinator searching + ' : 'coordinator + '}${workers} worker${workers === 1 ? '' : 's'}`;
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = await redisCpu(redis);
  if (out.status !== 0) throw new Error(`${scenario} (${how}) exited ${out.status}: ${out.stdout}`);
  const j = JSON.parse(out.stdout) as { states: number; transitions: number; exhaustive: boolean; redis?: { workers: { newStates: number; cpuMs: number }[] } };
  const viaRedis = j.redis !== undefined;
  return {
    scenario,
    how,
    searching: workers + (coordinatorSearches ? 1 : 0) || 1,
    states: j.states,
    transitions: j.transitions,
    exhaustive: j.exhaustive,
    seconds: Number(seconds.toFixed(2)),
    statesPerSecond: Math.round(j.states / seconds),
    redisCpuSeconds: viaRedis ? Number((cpu1 - cpu0).toFixed(2)) : null,
    redisBytesPerState: null,
    perWorker: j.redis?.workers.map((w) => w.newStates) ?? [j.states],
    workersCpuSeconds: j.redis === undefined ? null : Number((j.redis.workers.reduce((n, w) => n + w.cpuMs, 0) / 1000).toFixed(2)),
  };
}

async function best(server: LocalRedis, redis: Redis, scenario: string, workers: number, coordinatorSearches: boolean): Promise<Row> {
  let b: Row | null = null;
  for (let i = 0; i < 2; i++) {
    const r = await once(server, redis, scenario, workers, coordinatorSearches);
    if (b === null || r.seconds < b.seconds) b = r;
  }
  const row = b!;
  console.log(`${row.scenario.padEnd(24)} ${row.how.padEnd(44)} ${String(row.states).padStart(8)} states ${String(row.transitions).padStart(8)} transitions ${row.seconds.toFixed(2).padStart(7)} s ${String(row.statesPerSecond).padStart(7)} states/s${row.redisCpuSeconds === null ? '' : `  workers CPU ${row.workersCpuSeconds!.toFixed(2)} s, redis CPU ${row.redisCpuSeconds.toFixed(2)} s`}  [${row.perWorker.join(' + ')}]`);
  return row;
}

/** The visited hash's size per state, measured on a search left in place (the coordinator clears it). */
async function bytesPerState(server: LocalRedis, redis: Redis, scenario: string): Promise<number> {
  const id = `bench-bytes-${process.pid}`;
  const cwd = mkdtempSync(path.join(tmpdir(), 'tdxsim-bench-'));
  await run(cwd, ['explore', scenario, '--redis', server.url, '--search-id', id, '--json', '--quiet']);
  // The summary's visitedBytes is read before the hash is dropped.
  const r = JSON.parse((await redis.get(`tdxsim:{${id}}:result`))!) as { states: number; visitedBytes: number };
  return Math.round(r.visitedBytes / r.states);
}

if (redisServerPath() === null) {
  console.log('# Redis benchmark skipped: redis-server is not installed (apt-get install redis-server)');
} else {
  const server = await startRedisServer();
  const redis = new Redis(server.url);
  try {
    const capacity = await twoProcessCapacity();
    console.log(`# two-process capacity now: ${capacity}x one process (a pure integer loop)`);
    console.log('# a search through Redis vs one process (wall clock, start-up included, best of two)');
    const rows: Row[] = [];
    const scenarios = ['parallel-faults', 'parallel-touches'];
    for (const s of scenarios) {
      rows.push(await best(server, redis, s, 0, false));
      rows.push(await best(server, redis, s, 1, false));
      rows.push(await best(server, redis, s, 2, false));
      rows.push(await best(server, redis, s, 1, true));
    }
    const bytes = await bytesPerState(server, redis, 'parallel-faults');
    for (const r of rows) if (r.redisCpuSeconds !== null) r.redisBytesPerState = bytes;
    const ratio = (s: string, how: string) => {
      const one = rows.find((r) => r.scenario === s && r.how === 'one process')!;
      const other = rows.find((r) => r.scenario === s && r.how === how)!;
      return Number((other.statesPerSecond / one.statesPerSecond).toFixed(2));
    };
    /** Transitions over the one-process search's: the work done twice where workers met. */
    const extra = (s: string, how: string) => {
      const one = rows.find((r) => r.scenario === s && r.how === 'one process')!;
      const other = rows.find((r) => r.scenario === s && r.how === how)!;
      return Number((other.transitions / one.transitions - 1).toFixed(3));
    };
    const cpuOne = Object.fromEntries(scenarios.map((s) => [s, oneProcessCpu(s)]));
    /** CPU of the workers' searches plus Redis's, over the one-process search's: the price of sharing. */
    const cpuRatio = (s: string, how: string) => {
      const r = rows.find((x) => x.scenario === s && x.how === how)!;
      return Number(((r.workersCpuSeconds! + r.redisCpuSeconds!) / cpuOne[s]!).toFixed(2));
    };
    const summary = Object.fromEntries(
      scenarios.map((s) => [
        s,
        {
          oneProcessCpuSeconds: cpuOne[s]!,
          cpuOneWorker: cpuRatio(s, 'Redis: coordinator + 1 worker'),
          cpuTwoWorkers: cpuRatio(s, 'Redis: coordinator + 2 workers'),
          oneWorker: ratio(s, 'Redis: coordinator + 1 worker'),
          twoWorkers: ratio(s, 'Redis: coordinator + 2 workers'),
          coordinatorAndOneWorker: ratio(s, 'Redis: coordinator searching + 1 worker'),
          extraTransitionsTwoWorkers: extra(s, 'Redis: coordinator + 2 workers'),
        },
      ]),
    );
    // Redis runs one script at a time: its CPU per state bounds what one server can serve, all workers together.
    const redisRows = rows.filter((r) => r.redisCpuSeconds !== null);
    const redisMicrosPerState = Number(((1e6 * redisRows.reduce((n, r) => n + r.redisCpuSeconds!, 0)) / redisRows.reduce((n, r) => n + r.states, 0)).toFixed(1));
    console.log(`# states/s through Redis / one process: ${scenarios.map((s) => `${s}: 1 worker ${summary[s]!.oneWorker}x, 2 workers ${summary[s]!.twoWorkers}x, coordinator + 1 worker ${summary[s]!.coordinatorAndOneWorker}x`).join('; ')}`);
    console.log(`# CPU (workers' searches + Redis) / one process's search: ${scenarios.map((s) => `${s}: 1 worker ${summary[s]!.cpuOneWorker}x, 2 workers ${summary[s]!.cpuTwoWorkers}x (one process ${summary[s]!.oneProcessCpuSeconds} s)`).join('; ')}`);
    console.log(`# two workers explored ${scenarios.map((s) => `${(100 * summary[s]!.extraTransitionsTwoWorkers).toFixed(0)}% (${s})`).join(', ')} more transitions than one process`);
    console.log(`# Redis: ${redisMicrosPerState} µs of CPU per state (so one server serves about ${Math.round(1e6 / redisMicrosPerState / 1000)}k states/s); the visited hash about ${bytes} bytes per state (MEMORY USAGE, sampled)`);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/redis.json', JSON.stringify({ node: process.version, date: new Date().toISOString().slice(0, 10), twoProcessCapacity: capacity, redisBytesPerState: bytes, redisMicrosPerState, summary, rows }, null, 2) + '\n');
    console.log('# written: bench/results/redis.json');
  } finally {
    redis.disconnect();
    await server.stop();
  }
}
