/**
 * `npm run bench` (second part): the explorer against Spin on the same race, cold and warm; the reductions;
 * three vCPUs (exhaustive, with persistent sets, preemption-bounded); one worker against two; seeded walks.
 * Results go to stdout and to bench/results/explore.json, which the README quotes.
 *
 * Rates are distinct states per second of CPU time (process.cpuUsage; for Spin, the user and system time
 * of `pan`): the machine is shared, and a neighbour's load changes the wall clock of a search, not its CPU
 * time. Wall-clock rates are recorded too. Ratios are of figures measured in the same run.
 *
 * Spin (Debian's `spin`, with gcc) runs bench/promela/parallel-faults.pml: `spin -o1 -a` (dead-variable
 * elimination off, so that what the simulator's actors keep distinguishes Spin's states too), `gcc -O2
 * -DSAFETY -DNOREDUCE` (a safety search of the whole state space, no partial-order reduction, like the
 * simulator's sleep sets, which prune transitions but no states), `./pan -m10000 -w20`, best of five.
 * Without spin or gcc the comparison is skipped with a message.
 *
 * By default the three-vCPU rows stop at 3 million states. `TDXSIM_BENCH_THREE=full node
 * dist/bench/explore.bench.js` runs only them, to the end (minutes and about a gigabyte; the preemption
 * levels K = 0, 1, 2 within ten minutes in all), and writes bench/results/explore-three.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { modelFor } from '../src/session/session.ts';
import { explore, type ExploreOptions, type ExploreResult } from '../src/explore/explore.ts';
import { exploreInWorkers } from '../src/explore/parallel.ts';
import { startPreemptionBounded } from '../src/explore/preemptionBounded.ts';
import { sample, type SampleMode } from '../src/explore/sample.ts';
import { defaultInvariants, invariantsOf, noFailure, type Invariant } from '../src/explore/invariants/index.ts';
import { loadScenarioFile, parseScenarioObject } from '../src/scenario/load.ts';
import type { Scenario } from '../src/scenario/schema.ts';

const FULL_THREE = process.env.TDXSIM_BENCH_THREE === 'full';
const cpuMs = (c0: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};
const rate = (states: number, ms: number) => Math.round(states / (ms / 1000));

const pf = loadScenarioFile('examples/parallel-faults').scenario;

/** parallel-faults with a third vCPU accepting the next page of the same 2M range. */
function threeVcpus(): Scenario {
  const third = { ...pf.vcpus[1]!, program: pf.vcpus[1]!.program.map((op) => (op.op === 'accept' ? { ...op, gpa: 0x202000n } : op)) };
  return { ...pf, name: 'parallel-faults-3-vcpus', vcpus: [...pf.vcpus, third] };
}

/** vCPU v accepts counts[v] pages of one 2M range, all pages distinct. */
function acceptsPerVcpu(counts: number[]): Scenario {
  const n = counts.length;
  return parseScenarioObject({
    name: `accepts-${counts.join('-and-')}-pages`,
    vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
    memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
    vcpus: counts.map((c, v) => ({
      program: [...[...Array(c).keys()].map((k) => ({ op: 'accept', gpa: 0x200000 + (k * n + v) * 0x1000, size: 0x1000 })), { op: 'hlt' }],
    })),
  });
}

const INVARIANT_SETS = {
  'no-failure': (): Invariant[] => [noFailure],
  declared: (): Invariant[] => invariantsOf(pf.invariants),
  defaults: (): Invariant[] => defaultInvariants(),
} as const;
type InvariantSet = keyof typeof INVARIANT_SETS;

if (FULL_THREE) {
  // Measured on its own (minutes, about a gigabyte): the rest of the bench is not run.
  const three = threeVcpuRows(true);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/explore-three.json', JSON.stringify({ node: process.version, date: new Date().toISOString().slice(0, 10), unit: 'CPU seconds and states per CPU-second; wall clock in wallSeconds', ...three }, null, 2) + '\n');
  console.log('# written: bench/results/explore-three.json');
  process.exit(0);
}
// ---------------------------------------------------------------------------------------------- Spin

interface SpinRun {
  states: number;
  transitions: number;
  cpuMs: number;
  wallMs: number;
  vectorBytes: number;
}

/** Compiles the Promela model with `defines` and runs pan `runs` times; the best CPU time. Null without spin or gcc. */
function spin(defines: string[], reduce: boolean, runs = 5): SpinRun | null {
  const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  if (!has('spin') || !has('gcc')) return null;
  const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-spin-'));
  const pml = path.resolve('bench/promela/parallel-faults.pml');
  execFileSync('spin', ['-o1', ...defines, '-a', pml], { cwd: dir, stdio: 'pipe' });
  execFileSync('gcc', ['-O2', '-w', '-DSAFETY', ...(reduce ? [] : ['-DNOREDUCE']), '-o', 'pan', 'pan.c'], { cwd: dir, stdio: 'pipe' });
  let best: SpinRun | null = null;
  for (let i = 0; i < runs; i++) {
    // bash's `time` reports pan's own user and system time.
    const r = spawnSync('bash', ['-c', "TIMEFORMAT='%R %U %S'; time ./pan -m10000 -w20"], { cwd: dir, encoding: 'utf8' });
    const [real, user, sys] = r.stderr.trim().split(/\s+/).slice(-3).map(Number) as [number, number, number];
    const out = r.stdout;
    if (!/errors: 0/.test(out)) throw new Error(`pan found errors:\n${out}`);
    const run: SpinRun = {
      states: Number(/(\d+) states, stored/.exec(out)![1]),
      transitions: Number(/(\d+) transitions \(= stored\+matched\)/.exec(out)![1]),
      cpuMs: (user + sys) * 1000,
      wallMs: real * 1000,
      vectorBytes: Number(/State-vector (\d+) byte/.exec(out)![1]),
    };
    if (best === null || run.cpuMs < best.cpuMs) best = run;
  }
  return best;
}

// ------------------------------------------------------------------------------------- the explorer

interface Measured {
  states: number;
  transitions: number;
  exhaustive: boolean;
  cpuMs: number;
  wallMs: number;
}

/** A search in a fresh process: what a user's `tdxsim explore` pays, JIT warm-up included. */
function cold(which: InvariantSet): Measured {
  const out = execFileSync(process.execPath, ['dist/bench/exploreOnce.js', 'parallel-faults', which], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!) as Measured;
}

/** After `warmup` searches in this process, the best of `runs` (each on a fresh model and engine: no cache carried over). */
function warm(scenario: Scenario, invariants: () => Invariant[], opts: ExploreOptions = {}, warmup = 3, runs = 5): Measured & { result: ExploreResult } {
  let best: (Measured & { result: ExploreResult }) | null = null;
  for (let i = 0; i < warmup + runs; i++) {
    // No forced collection between runs: a full collection right before a search made it 2.5 times slower here.
    const model = modelFor(scenario);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = explore(model, invariants(), { maxDepth: 10_000, maxStates: 10_000_000, maxMillis: 600_000 }, opts);
    const m = { states: r.states, transitions: r.transitions, exhaustive: r.exhaustive, cpuMs: cpuMs(c0), wallMs: performance.now() - t0, result: r };
    if (i >= warmup && (best === null || m.cpuMs < best.cpuMs)) best = m;
  }
  return best!;
}

console.log('# the explorer and Spin on parallel-faults (states per CPU-second; wall clock in brackets)');
const spinFull = spin([], false);
const spinParts = spinFull === null ? null : [0, 1].map((k) => spin([`-DACCEPTING=${k}`], false, 1)!.states);
const spinPor = spinFull === null ? null : spin([], true, 1);
if (spinFull === null) console.log('# Spin comparison skipped: spin or gcc is not installed (apt-get install spin gcc)');
else
  console.log(
    `spin (pan, no reduction)       ${String(spinFull.states).padStart(7)} states ${String(spinFull.transitions).padStart(8)} transitions ${String(rate(spinFull.states, spinFull.cpuMs)).padStart(8)} states/cpu-s [${rate(spinFull.states, spinFull.wallMs)}/s]  vector ${spinFull.vectorBytes} B; its partial-order reduction: ${spinPor!.states} states`,
  );

/** The same search with only the first k vCPUs accepting (the others only HLT), as the Promela model's ACCEPTING=k. */
const simulatorParts = [0, 1, 2].map((k) => {
  const s: Scenario = { ...pf, vcpus: pf.vcpus.map((v, i) => (i < k ? v : { ...v, program: v.program.filter((op) => op.op === 'hlt') })) };
  const r = explore(modelFor(s), [noFailure], { maxDepth: 10_000, maxStates: 1_000_000, maxMillis: 600_000 });
  return { states: r.states, terminals: r.terminals };
});
/**
 * Spin counts its initial state (before the VMM's first send, which the simulator's initial world holds)
 * and three states at each end state (NoDeadlock's timeout, assertion and exit): per part, Spin's count
 * minus that rule's, 0 when the two models have the same states.
 */
const spinMinusRule = spinParts === null ? null : [...spinParts, spinFull!.states].map((n, k) => n - (simulatorParts[k]!.states + 1 + 3 * simulatorParts[k]!.terminals));

interface SpinRow {
  invariants: InvariantSet;
  states: number;
  transitions: number;
  cold: { statesPerCpuSecond: number; statesPerSecond: number };
  warm: { statesPerCpuSecond: number; statesPerSecond: number };
  ratioToSpin: { warm: number; cold: number } | null;
}
const spinRate = spinFull === null ? null : rate(spinFull.states, spinFull.cpuMs);
const spinRows: SpinRow[] = (Object.keys(INVARIANT_SETS) as InvariantSet[]).map((which) => {
  const c = cold(which);
  const w = warm(pf, INVARIANT_SETS[which]);
  const row: SpinRow = {
    invariants: which,
    states: w.states,
    transitions: w.transitions,
    cold: { statesPerCpuSecond: rate(c.states, c.cpuMs), statesPerSecond: rate(c.states, c.wallMs) },
    warm: { statesPerCpuSecond: rate(w.states, w.cpuMs), statesPerSecond: rate(w.states, w.wallMs) },
    ratioToSpin: spinRate === null ? null : { warm: Number((rate(w.states, w.cpuMs) / spinRate).toFixed(2)), cold: Number((rate(c.states, c.cpuMs) / spinRate).toFixed(2)) },
  };
  console.log(
    `tdxsim, ${which.padEnd(22)} ${String(row.states).padStart(7)} states ${String(row.transitions).padStart(8)} transitions  warm ${String(row.warm.statesPerCpuSecond).padStart(8)} states/cpu-s [${row.warm.statesPerSecond}/s]  cold ${row.cold.statesPerCpuSecond} [${row.cold.statesPerSecond}/s]${row.ratioToSpin === null ? '' : `  × Spin: warm ${row.ratioToSpin.warm}, cold ${row.ratioToSpin.cold}`}`,
  );
  return row;
});
console.log(
  `# state counts of the parts (vCPUs that accept: 0, 1, 2): tdxsim ${simulatorParts.map((p) => `${p.states} (${p.terminals} end)`).join(', ')}${spinParts === null ? '' : `; Spin ${spinParts.join(', ')}, ${spinFull!.states}; Spin − (tdxsim + 1 + 3 × end states): ${spinMinusRule!.join(', ')}`}`,
);

// ------------------------------------------------------------------------------------- reductions

console.log('# reductions on parallel-faults (its declared invariants, one worker, warm)');
const reductionRows = (
  [
    ['plain (no sleep sets, XState every delivery)', { reduction: false, cache: false }],
    ['sleep sets, memoised transitions', {}],
    ['+ persistent sets', { persistentSets: true }],
  ] as const
).map(([name, opts]) => {
  const w = warm(pf, INVARIANT_SETS.declared, opts, 1, 2);
  const row = { search: name, states: w.states, transitions: w.transitions, statesPerCpuSecond: rate(w.states, w.cpuMs), cpuSeconds: Number((w.cpuMs / 1000).toFixed(2)), visitedBytesPerState: Number((w.result.visitedBytes / w.states).toFixed(1)) };
  console.log(`${name.padEnd(46)} ${String(row.states).padStart(7)} states ${String(row.transitions).padStart(8)} transitions ${row.cpuSeconds.toFixed(2).padStart(6)} cpu-s ${String(row.statesPerCpuSecond).padStart(8)} states/cpu-s`);
  return row;
});

// ------------------------------------------------------------------------------------- three vCPUs

/**
 * parallel-faults with a third vCPU: a sleep-set search, one with persistent sets, and the preemption
 * levels — to `bound` states, or (`full`) to the end, the levels within `levelsMillis` in all.
 */
function threeVcpuRows(full: boolean) {
  console.log(`# three vCPUs: parallel-faults with vCPU 2 accepting 0x202000 (its declared invariants)${full ? ', to the end' : '; TDXSIM_BENCH_THREE=full to search to the end'}`);
  const three = threeVcpus();
  const bound = full ? 400_000_000 : 3_000_000;
  const threeRun = (name: string, opts: ExploreOptions) => {
    let peakRss = process.memoryUsage().rss;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = explore(modelFor(three), invariantsOf(three.invariants), { maxDepth: 10_000, maxStates: bound, maxMillis: 3_600_000 }, { ...opts, progressEvery: 1_000_000, onProgress: () => (peakRss = Math.max(peakRss, process.memoryUsage().rss)) });
    const cpu = cpuMs(c0);
    const wall = performance.now() - t0;
    const row = {
      search: name,
      states: r.states,
      transitions: r.transitions,
      exhaustive: r.exhaustive,
      bound: r.bound,
      terminals: r.terminals,
      cpuSeconds: Math.round(cpu / 100) / 10,
      wallSeconds: Math.round(wall / 100) / 10,
      statesPerCpuSecond: rate(r.states, cpu),
      visitedBytesPerState: Number((r.visitedBytes / r.states).toFixed(1)),
      peakRssMB: Math.round(Math.max(peakRss, process.memoryUsage().rss) / 2 ** 20),
    };
    console.log(`${name.padEnd(32)} ${String(row.states).padStart(9)} states ${row.exhaustive ? 'exhaustive' : `${row.bound} bound`} ${row.cpuSeconds} cpu-s [${row.wallSeconds} s] ${row.statesPerCpuSecond} states/cpu-s, table ${row.visitedBytesPerState} B/state, peak RSS ${row.peakRssMB} MB`);
    return row;
  };
  // Persistent sets reduce nothing on this model under its invariants (README): to the end, one search is enough.
  const rows = full ? [threeRun('sleep sets', {})] : [threeRun('sleep sets', {}), threeRun('sleep sets + persistent sets', { persistentSets: true })];
  const levels: unknown[] = [];
  const levelsMillis = full ? 600_000 : 60_000;
  let peakRss = process.memoryUsage().rss;
  const c0 = process.cpuUsage();
  const x = startPreemptionBounded(modelFor(three), invariantsOf(three.invariants), { maxDepth: 10_000, maxStates: bound, maxMillis: levelsMillis }, full ? 2 : 1, {
    progressEvery: 1_000_000,
    onProgress: () => (peakRss = Math.max(peakRss, process.memoryUsage().rss)),
    onLevel: (l) => {
      const row = { preemptions: l.preemptions, stopped: l.stopped, states: l.states, transitions: l.transitions, unreached: l.unreached, cpuSeconds: Math.round(cpuMs(c0) / 100) / 10, wallSeconds: Math.round(l.elapsedMs / 100) / 10, peakRssMB: Math.round(Math.max(peakRss, process.memoryUsage().rss) / 2 ** 20) };
      levels.push(row);
      const what = l.stopped === null ? `exhaustive up to ${l.preemptions} preemption(s)` : `${l.preemptions} preemption(s), ${l.stopped} bound`;
      console.log(`${what.padEnd(32)} ${String(l.states).padStart(9)} states ${l.transitions} transitions, ${l.unreached} states over the bound unseen; ${row.cpuSeconds} cpu-s so far [${row.wallSeconds} s this level], peak RSS ${row.peakRssMB} MB`);
    },
  });
  while (!x.step());
  return { full, levelsMillis, rows, preemptionLevels: levels };
}

const threeBounded = threeVcpuRows(false);
const three = threeVcpus();

// ------------------------------------------------------------------------------------- workers

/**
 * What a second thread can get on this machine right now: a pure integer loop on one thread, then on this
 * thread and a worker at once. 2.0 means two free cores.
 */
async function twoThreadCapacity(): Promise<number> {
  const loop = `let x = 0; for (let i = 0; i < 2e8; i++) x = (x + Math.imul(i, 0x9e3779b1)) | 0; globalThis.sink = x;`;
  const spinLoop = new Function(loop) as () => void;
  let t = performance.now();
  spinLoop();
  const alone = performance.now() - t;
  t = performance.now();
  const other = new Promise<void>((resolve) => new Worker(loop, { eval: true }).on('exit', () => resolve()));
  spinLoop();
  await other;
  return Number(((2 * alone) / (performance.now() - t)).toFixed(2));
}

/** Best of three, wall clock, worker start-up included: one worker is the one-thread explorer. */
async function workersRun(scenario: Scenario, names: Scenario['invariants'], workers: number, maxStates: number) {
  const bounds = { maxDepth: 10_000, maxStates, maxMillis: 600_000 };
  let best: ExploreResult | null = null;
  for (let i = 0; i < 3; i++) {
    const r = workers === 1 ? explore(modelFor(scenario), invariantsOf(names), bounds) : await exploreInWorkers({ scenario, invariants: names, bounds, search: { mode: 'dfs' }, workers });
    if (best === null || r.elapsedMs < best.elapsedMs) best = r;
  }
  const r = best!;
  const row = { scenario: scenario.name, workers, states: r.states, exhaustive: r.exhaustive, seconds: Number((r.elapsedMs / 1000).toFixed(2)), statesPerSecond: rate(r.states, r.elapsedMs) };
  console.log(`${row.scenario.padEnd(28)} ${String(workers).padStart(2)} worker(s) ${String(row.states).padStart(9)} states ${row.seconds.toFixed(2).padStart(6)} s ${String(row.statesPerSecond).padStart(7)} states/s  ${r.exhaustive ? 'exhaustive' : `${r.bound} bound`}`);
  return row;
}

console.log('# worker threads (wall clock, best of three)');
const capacity = await twoThreadCapacity();
console.log(`# two-thread capacity now: ${capacity}x one thread (a pure integer loop)`);
const workerRows = [];
for (const [scenario, names, bound] of [
  [pf, pf.invariants, 2_000_000],
  [acceptsPerVcpu([3, 2]), ['no-failure'] as Scenario['invariants'], 2_000_000],
  [three, three.invariants, 3_000_000],
] as [Scenario, Scenario['invariants'], number][]) {
  const one = await workersRun(scenario, names, 1, bound);
  const two = await workersRun(scenario, names, 2, bound);
  workerRows.push({ ...one, twoWorkers: two.statesPerSecond, ratio: Number((two.statesPerSecond / one.statesPerSecond).toFixed(2)) });
}

// ------------------------------------------------------------------------------------- walks

/** Seeded walks on one thread: how fast they go and how much of the space a few thousand of them see. */
function sampleRun(scenario: Scenario, mode: SampleMode, walks: number) {
  const r = sample(modelFor(scenario), invariantsOf(scenario.invariants), { maxDepth: 5_000, maxStates: 2_000_000, maxMillis: 300_000, walks }, { mode, seed: 1 });
  const s = r.elapsedMs / 1000;
  const row = { scenario: scenario.name, mode, walks: r.walks, states: r.states, transitions: r.transitions, seconds: Number(s.toFixed(2)), walksPerSecond: Math.round(r.walks / s), transitionsPerSecond: Math.round(r.transitions / s) };
  console.log(`${row.scenario.padEnd(28)} ${mode.padEnd(6)} ${row.walks} walks ${String(row.states).padStart(7)} distinct states ${String(row.transitions).padStart(8)} transitions ${row.seconds.toFixed(2).padStart(6)} s ${String(row.walksPerSecond).padStart(6)} walks/s`);
  return row;
}
console.log('# seeded walks (seed 1, one thread)');
const sampleRows = (['random', 'pct'] as const).map((mode) => sampleRun(pf, mode, 5_000));

mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/explore.json',
  JSON.stringify(
    {
      node: process.version,
      date: new Date().toISOString().slice(0, 10),
      unit: 'states per CPU-second unless named otherwise; wall clock in statesPerSecond and wallSeconds',
      spin: spinFull === null ? null : { ...spinFull, statesPerCpuSecond: spinRate, partsStates: spinParts, withPartialOrderReduction: spinPor?.states ?? null },
      simulatorParts,
      spinMinusRule,
      spinRows,
      reductionRows,
      three: threeBounded,
      workers: { twoThreadCapacity: capacity, rows: workerRows },
      sampleRows,
    },
    null,
    2,
  ) + '\n',
);
console.log('# written: bench/results/explore.json');
