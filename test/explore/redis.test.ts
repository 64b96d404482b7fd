/**
 * A search through Redis (src/explore/redis/) with real processes: Debian's redis-server on a free port,
 * `tdxsim explore --redis` as coordinator and `tdxsim explore-worker` processes. The same states and verdict
 * as one process, the same minimised counterexample, a worker killed outright whose share the others take
 * over, a worker that joins late and gets work. Every wait is for work done (states in Redis, an entry
 * held), never for a time. Without redis-server the tests are skipped with a message, except under CI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { redisServerPath, startRedisServer, type LocalRedis } from '../../bench/redisServer.ts';
import { BIN, buildCli, scratchDir, splitLines, tdxsim, type CliResult } from '../e2e/helpers.ts';

const HAVE_REDIS = redisServerPath() !== null;
if (!HAVE_REDIS && !process.env.CI) console.warn('test/explore/redis.test.ts: redis-server is not installed (apt-get install redis-server); the Redis search tests are skipped');

interface Running {
  child: ChildProcess;
  done: Promise<CliResult>;
}

function start(cwd: string, ...args: string[]): Running {
  const child = spawn(process.execPath, [BIN, ...args], { cwd });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr, lines: splitLines(stdout) })));
  return { child, done };
}

/** The summary line without timings and without who searched. */
const summaryOf = (r: CliResult): string =>
  r.lines
    .find((l) => /^# \d+ states, /.test(l))!
    .replace(/[\d.]+ s, \d+ states\/s/, '')
    .replace(/ \((through Redis|\d+ workers)\)$/, '');
const statesOf = (r: CliResult): number => Number(/^# (\d+) states, /.exec(summaryOf(r))![1]);
const verdictOf = (r: CliResult): string => summaryOf(r).split(' — ')[1]!;

/** One process's figures on the bundled examples (tdxsim explore NAME), which every search through Redis must equal. */
const PARALLEL_FAULTS_STATES = 59_643;
const ZAP_DURING_ACCEPT_STATES = 19_553;
/** parallel-faults with freezeMirrorSpte=off: the minimised counterexample's length. */
const RACE_STEPS = 121;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.runIf(HAVE_REDIS || process.env.CI)('a search through Redis', () => {
  let server: LocalRedis;
  let redis: Redis;
  const dir = scratchDir();
  let nextId = 0;
  const searchId = (name: string) => `${name}-${++nextId}`;
  /** The flags that put a command on this test's server. */
  const on = (id: string) => ['--redis', server.url, '--search-id', id];

  beforeAll(async () => {
    expect(HAVE_REDIS, 'redis-server must be installed where CI runs (.ci/run installs it)').toBe(true);
    buildCli();
    server = await startRedisServer();
    redis = new Redis(server.url);
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  /** Until `test` holds, checking every few milliseconds: bounded by what the processes do, not by a clock. */
  async function until(what: string, test: () => Promise<boolean>, running: Running[]): Promise<void> {
    let exited: CliResult | null = null;
    for (const r of running) void r.done.then((x) => (exited ??= x));
    while (!(await test())) {
      if (exited !== null) throw new Error(`a process ended before ${what}: ${JSON.stringify(exited)}`);
      await sleep(10);
    }
  }

  const states = async (id: string) => redis.hlen(`tdxsim:{${id}}:seen`);

  /** The entry a worker process holds, if any (owner keys name the worker as host-pid-…). */
  async function heldBy(id: string, pid: number): Promise<string | null> {
    const keys = await redis.keys(`tdxsim:{${id}}:owner:*`);
    for (const k of keys) if ((await redis.get(k))?.startsWith(`${hostname()}-${pid}-`)) return k;
    return null;
  }

  const workerLine = (r: CliResult) => r.lines.find((l) => l.startsWith('# worker '))!;

  const cases: [string, number, number][] = [
    ['parallel-faults', 3, PARALLEL_FAULTS_STATES],
    ['zap-during-accept', 1, ZAP_DURING_ACCEPT_STATES],
  ];
  for (const [name, workers, known] of cases) {
    it(`${name}: a coordinator and ${workers} worker process(es) count the states one process counts, with its verdict`, async () => {
      const one = tdxsim(dir, 'explore', name, '--quiet');
      const id = searchId(name);
      // Workers first: they wait for the search to appear.
      const ws = Array.from({ length: workers }, () => start(dir, 'explore-worker', ...on(id), '--quiet'));
      const coordinator = await start(dir, 'explore', name, ...on(id), '--quiet').done;
      const results = await Promise.all(ws.map((w) => w.done));
      expect(coordinator.status).toBe(0);
      expect(statesOf(coordinator)).toBe(statesOf(one));
      expect(statesOf(coordinator)).toBe(known);
      // Transitions and the maximum depth depend on which worker reaches a state first; states and end states do not.
      const counts = (r: CliResult) => summaryOf(r).replace(/\d+ transitions, max depth \d+, /, '');
      expect(counts(coordinator)).toBe(counts(one));
      expect(verdictOf(coordinator)).toBe('exhaustive: every reachable state checked, no violation');
      expect(coordinator.stdout).toMatch(/# exploring .* \(depth-first, through Redis at redis:\/\/127\.0\.0\.1:\d+, search /);
      expect(coordinator.stdout).toMatch(new RegExp(`# Redis search ${id}: ${workers + 1} workers \\(.*\\); no entry taken over\\n`));
      for (const r of results) {
        expect(r.status).toBe(0);
        expect(workerLine(r)).toMatch(/; the search ended: done$/);
      }
    });
  }

  it('the same summary for a coordinator run again once the search has ended; another search under the same id is refused', () => {
    const id = searchId('again');
    const first = tdxsim(dir, 'explore', 'zap-during-accept', ...on(id), '--quiet');
    expect(first.status).toBe(0);
    const again = tdxsim(dir, 'explore', 'zap-during-accept', ...on(id), '--quiet');
    expect(again.status).toBe(0);
    expect(summaryOf(again)).toBe(summaryOf(first));
    expect(again.stdout).toContain(`# Redis search ${id} (the summary a coordinator before this one stored): `);
    const other = tdxsim(dir, 'explore', 'parallel-faults', ...on(id), '--quiet');
    expect(other.status).toBe(2);
    expect(other.stderr).toContain(`tdxsim: search "${id}" already exists in Redis at ${server.url} for another search (scenario zap-during-accept, or other invariants, bounds or lease); pick another --search-id`);
  });

  it('parallel-faults with freezeMirrorSpte=off: the violation found through Redis is minimised to the one-process counterexample, which replays', async () => {
    const id = searchId('race');
    const ws = [start(dir, 'explore-worker', ...on(id)), start(dir, 'explore-worker', ...on(id))];
    const through = await start(dir, 'explore', 'parallel-faults', '--policy', 'freezeMirrorSpte=off', ...on(id), '--log', 'through.jsonl', '--quiet').done;
    const one = tdxsim(dir, 'explore', 'parallel-faults', '--policy', 'freezeMirrorSpte=off', '--log', 'one.jsonl', '--quiet');
    expect(through.status).toBe(1);
    expect(through.stdout).toMatch(new RegExp(`# minimised: ${RACE_STEPS} steps, 1 preemptions .*\\n# violation of sept-parent-first at step ${RACE_STEPS}: `));
    const counterexample = (r: CliResult) => r.stdout.slice(r.stdout.indexOf('# violation of')).replace(/\S+\.jsonl/g, '');
    expect(counterexample(through)).toBe(counterexample(one));
    expect(tdxsim(dir, 'replay', 'through.jsonl', '--verify').status).toBe(0);
    for (const w of await Promise.all(ws.map((x) => x.done))) {
      expect(w.status).toBe(0);
      expect(workerLine(w)).toMatch(/; the search ended: violation$/);
    }
  });

  it('a worker killed (SIGKILL) while it holds an entry: another takes it over when its lease runs out, and no state is lost', async () => {
    const id = searchId('kill');
    const coordinator = start(dir, 'explore', 'parallel-faults', ...on(id), '--coordinate-only', '--lease', '2', '--quiet');
    const ws = [0, 1, 2].map(() => start(dir, 'explore-worker', ...on(id), '--quiet'));
    let victim: Running | null = null;
    while (victim === null) {
      await until('5,000 states were in Redis', async () => (await states(id)) >= 5_000, [coordinator, ...ws]);
      // Frozen, the workers cannot finish or take an entry between the look and the kill.
      for (const w of ws) w.child.kill('SIGSTOP');
      for (const w of ws) if (victim === null && (await heldBy(id, w.child.pid!)) !== null) victim = w;
      if (victim !== null) victim.child.kill('SIGKILL');
      for (const w of ws) if (w !== victim) w.child.kill('SIGCONT');
    }
    const killed = await victim.done;
    expect(killed.status).toBe(null);
    const r = await coordinator.done;
    expect(r.status).toBe(0);
    expect(statesOf(r)).toBe(PARALLEL_FAULTS_STATES);
    expect(verdictOf(r)).toBe('exhaustive: every reachable state checked, no violation');
    expect(r.stdout).toMatch(/# Redis search kill-\d+: \d workers \(.*\(\d taken over\).*\); [1-9]\d* (entry|entries) taken over from workers that stopped answering\n/);
    for (const w of ws) if (w !== victim) expect((await w.done).status).toBe(0);
  });

  it('a worker that joins a running search gets work', async () => {
    const id = searchId('late');
    const coordinator = start(dir, 'explore', 'parallel-faults', ...on(id), '--coordinate-only', '--quiet');
    const first = start(dir, 'explore-worker', ...on(id), '--quiet');
    await until('3,000 states were in Redis', async () => (await states(id)) >= 3_000, [coordinator, first]);
    first.child.kill('SIGSTOP');
    const before = await states(id);
    const late = start(dir, 'explore-worker', ...on(id), '--quiet');
    // Only the late worker can add states while the first is stopped.
    await until('the late worker entered 1,000 states', async () => (await states(id)) >= before + 1_000, [coordinator, late]);
    first.child.kill('SIGCONT');
    const r = await coordinator.done;
    expect(r.status).toBe(0);
    expect(statesOf(r)).toBe(PARALLEL_FAULTS_STATES);
    const lateLine = workerLine(await late.done);
    expect(Number(/: ([\d,]+) states entered first/.exec(lateLine)![1]!.replace(/,/g, ''))).toBeGreaterThanOrEqual(1_000);
    expect((await first.done).status).toBe(0);
  });

  it('a worker leaving on SIGTERM hands its entry back at once; the search still counts every state', async () => {
    const id = searchId('leave');
    // A lease far longer than the test: only the hand-back can let the other worker finish the entry.
    const coordinator = start(dir, 'explore', 'parallel-faults', ...on(id), '--coordinate-only', '--lease', '3600', '--quiet');
    const leaving = start(dir, 'explore-worker', ...on(id));
    const staying = start(dir, 'explore-worker', ...on(id), '--quiet');
    await until('the leaving worker held an entry after 3,000 states', async () => (await states(id)) >= 3_000 && (await heldBy(id, leaving.child.pid!)) !== null, [coordinator, leaving, staying]);
    leaving.child.kill('SIGTERM');
    const left = await leaving.done;
    expect(left.status).toBe(130);
    expect(left.stderr).toContain('# SIGTERM: handing back the entry this worker holds, then leaving');
    expect(workerLine(left)).toMatch(/; left before the search ended \(what it held is handed back\)$/);
    const r = await coordinator.done;
    expect(statesOf(r)).toBe(PARALLEL_FAULTS_STATES);
    expect(verdictOf(r)).toBe('exhaustive: every reachable state checked, no violation');
  });

  it('Ctrl-C on the coordinator: the summary so far, what was not covered, exit 130; non-progress is said to be unchecked', async () => {
    const id = searchId('interrupt');
    const c = start(dir, 'explore', 'accept-level-two-vcpus', ...on(id), '--quiet');
    await until('1,000 states were in Redis', async () => (await states(id)) >= 1_000, [c]);
    c.child.kill('SIGINT');
    const r = await c.done;
    expect(r.status).toBe(130);
    expect(r.lines[1]).toBe('# non-progress not checked: it needs the state graph of a depth-first search on one thread (--mode dfs, --workers 1, not through Redis)');
    expect(r.stdout).toMatch(/# \d+ states, \d+ transitions, .* — no violation, not exhaustive \(interrupted: the states not yet visited were not checked\) \(through Redis\)\n/);
  });

  it('the state bound stops every worker: exit 3, and the summary says so', () => {
    const r = tdxsim(dir, 'explore', 'parallel-faults', ...on(searchId('bound')), '--max-states', '5000', '--quiet');
    expect(r.status).toBe(3);
    expect(statesOf(r)).toBeGreaterThanOrEqual(5_000);
    expect(verdictOf(r)).toBe('no violation, not exhaustive (states bound reached: 5,000 distinct states checked, the rest of the state space was not)');
  });

  it('bad input: exit 2 naming the flag or the server', () => {
    const cases: [string[], string][] = [
      [['explore', 'parallel-faults', '--redis', server.url], 'tdxsim: --redis needs --search-id NAME, the name workers join the search by'],
      [['explore', 'parallel-faults', '--search-id', 'x'], 'tdxsim: --search-id applies to a search through Redis (--redis)'],
      [['explore', 'parallel-faults', '--redis', 'http://127.0.0.1:1', '--search-id', 'x'], 'tdxsim: --redis needs a redis:// or rediss:// URL, got "http://127.0.0.1:1"'],
      [['explore', 'parallel-faults', '--redis', server.url, '--search-id', 'a b'], `tdxsim: --search-id needs 1 to 100 letters, digits, '.', '_' or '-', got "a b"`],
      [['explore', 'parallel-faults', '--redis', server.url, '--search-id', 'x', '--mode', 'pct'], 'tdxsim: --redis searches depth-first (--mode dfs), not by pct walks'],
      [['explore', 'parallel-faults', '--redis', server.url, '--search-id', 'x', '--workers', '2'], 'tdxsim: --workers sets threads of one process; with --redis, start tdxsim explore-worker processes instead'],
      [['explore', 'parallel-faults', '--redis', 'redis://127.0.0.1:1', '--search-id', 'x'], 'tdxsim: cannot reach Redis at redis://127.0.0.1:1: '],
      [['explore-worker', '--redis', 'redis://127.0.0.1:1', '--search-id', 'x'], 'tdxsim: cannot reach Redis at redis://127.0.0.1:1: '],
      [['explore-worker', '--redis', server.url], "error: required option '--search-id <name>' not specified"],
    ];
    for (const [args, message] of cases) {
      const r = tdxsim(dir, ...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
    }
  });
});
