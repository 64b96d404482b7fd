/**
 * `npm run bench` (part): the inspector on a huge log, written to bench/results/inspect.json. A log of
 * about 1M events (BENCH_INSPECT_EVENTS to change it) is opened as `tdxsim inspect` opens it (paged,
 * through its checkpoint index) and served; then, through the HTTP API as the page asks:
 *
 *   open      CPU time of opening (header, model, index, end record) and the first summary
 *   step      /api/step at 40 deterministic random steps: CPU time each (the server's work, plus the
 *             client's parse of the answer), median, p90 and max; and the same for the next step after
 *             each (the step-by-step walk the inspector is used for)
 *   window    /api/events windows of 500 rows (the page's chunk) at random places
 *   filter    one /api/search pass over the whole log: CPU time and events/s
 *   memory    RSS and heap growth from before opening to after all of the above
 *   whole     for comparison, a 100k-event log opened both ways: whole (read and replayed at open, every
 *             record and step text held, as logs under 8 MiB are) and paged; open CPU time and heap
 *
 * Times are CPU time (process.cpuUsage): on a shared 2-core machine wall time measures the neighbours.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { inspectTarget } from '../src/cli/inspect.ts';
import { LogWriter } from '../src/log/writer.ts';
import { startInspector } from '../src/inspect/server.ts';
import { fifoScheduler } from '../src/runtime/scheduler/fifo.ts';
import { initialWorld } from '../src/runtime/step.ts';
import { mmioScenario } from './mmioScenario.ts';
import { headerFor, modelFor, recordRun } from '../src/session/session.ts';

const work = mkdtempSync(path.join(tmpdir(), 'tdxsim-bench-inspect-'));
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const round = (x: number, digits = 0) => Number(x.toFixed(digits));
const mb = (bytes: number) => round(bytes / (1024 * 1024), 1);
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;


function targets(steps: number, n: number): number[] {
  let x = 0x2545f491;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.push(1 + ((x >>> 0) % (steps - 1)));
  }
  return out;
}

function writeLog(events: number, file: string): number {
  const s = mmioScenario(Math.max(10, Math.round(events / 17)));
  const model = modelFor(s);
  const scheduler = fifoScheduler();
  const w = LogWriter.open(file, headerFor(s, null, scheduler.descriptor), { index: { initial: initialWorld(model) } });
  const steps = recordRun(model, w, { scheduler, maxSteps: 100_000_000 }).steps;
  w.close();
  return steps;
}

/** Opening a log whole and paged: CPU time, and the heap the open session holds (after a full collection). */
function wholeVsPaged(events: number) {
  const file = path.join(work, `cmp-${events}.log.jsonl`);
  const steps = writeLog(events, file);
  return { events: steps, whole: openOnce(file, Infinity), paged: openOnce(file, 0) };
}

function openOnce(file: string, pagedFrom: number): { openCpuMs: number; heapMB: number } {
  global.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const t = cpuMs();
  const target = inspectTarget(file, { pagedFrom }, () => {});
  const ms = cpuMs() - t;
  global.gc?.();
  const heap = process.memoryUsage().heapUsed - heap0;
  // Held until measured, then let go.
  if ('session' in target) target.session.close();
  return { openCpuMs: round(ms, 1), heapMB: mb(heap) };
}

async function main() {
  const events = Number(process.env['BENCH_INSPECT_EVENTS'] ?? 1_000_000);
  const file = path.join(work, 'big.log.jsonl');
  const steps = writeLog(events, file);

  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;
  let t = cpuMs();
  const target = inspectTarget(file, {}, () => {});
  const insp = await startInspector(target, { port: 0, webDir: work, verifyWorker: null });
  const get = async (p: string): Promise<unknown> => {
    const res = await fetch(insp.url + p);
    const body: unknown = await res.json();
    if (!res.ok) throw new Error(`${p}: ${JSON.stringify(body)}`);
    return body;
  };
  await get('api/summary');
  const openCpuMs = cpuMs() - t;
  await get('api/step?n=1'); // JIT warm-up

  const stepCpu: number[] = [];
  const nextCpu: number[] = [];
  for (const n of targets(steps, 40)) {
    t = cpuMs();
    await get(`api/step?n=${n}`);
    stepCpu.push(cpuMs() - t);
    t = cpuMs();
    await get(`api/step?n=${n + 1}`);
    nextCpu.push(cpuMs() - t);
  }
  const windowCpu: number[] = [];
  for (const n of targets(steps, 20)) {
    t = cpuMs();
    await get(`api/events?from=${n}&count=500`);
    windowCpu.push(cpuMs() - t);
  }
  t = cpuMs();
  const res = await fetch(`${insp.url}api/search?q=${encodeURIComponent('to:kvm.mmu')}`);
  await res.text();
  const filterCpuMs = cpuMs() - t;
  global.gc?.();
  const mem = process.memoryUsage();
  await insp.close();

  const result = {
    node: process.version,
    date: new Date().toISOString().slice(0, 10),
    cpus: availableParallelism(),
    loadAverage: round(loadavg()[0]!, 1),
    events: steps,
    logMB: mb(statSync(file).size),
    openCpuMs: round(openCpuMs, 1),
    stepCpuMs: { median: round(quantile(stepCpu, 0.5), 1), p90: round(quantile(stepCpu, 0.9), 1), max: round(Math.max(...stepCpu), 1) },
    nextStepCpuMs: { median: round(quantile(nextCpu, 0.5), 1), p90: round(quantile(nextCpu, 0.9), 1), max: round(Math.max(...nextCpu), 1) },
    window500CpuMs: { median: round(quantile(windowCpu, 0.5), 1), max: round(Math.max(...windowCpu), 1) },
    filterCpuSeconds: round(filterCpuMs / 1000, 1),
    filterEventsPerCpuSecond: round(steps / (filterCpuMs / 1000)),
    rssGrowthMB: mb(mem.rss - rss0),
    heapGrowthMB: mb(mem.heapUsed - heap0),
    wholeVsPaged: wholeVsPaged(100_000),
  };
  console.log(
    `inspect ${steps} events (${result.logMB} MB): open ${result.openCpuMs} ms CPU; step median ${result.stepCpuMs.median} ms, p90 ${result.stepCpuMs.p90}, max ${result.stepCpuMs.max}; ` +
      `next step median ${result.nextStepCpuMs.median} ms; 500-row window median ${result.window500CpuMs.median} ms; filter ${result.filterCpuSeconds} s CPU (${result.filterEventsPerCpuSecond} events/s); ` +
      `RSS +${result.rssGrowthMB} MB, heap +${result.heapGrowthMB} MB; 100k events whole vs paged: ${JSON.stringify(result.wholeVsPaged)}`,
  );
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/inspect.json', JSON.stringify(result, null, 2) + '\n');
  console.log('wrote bench/results/inspect.json');
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
