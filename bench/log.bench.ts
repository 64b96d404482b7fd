/**
 * `npm run bench` (part): what logging costs and what a huge log costs to open, written to
 * bench/results/log.json. Ratios are measured in one run, on one machine, so they compare; absolute
 * figures on a shared machine are noisy, and times are CPU time (process.cpuUsage) where the question is
 * throughput, wall time where it is latency.
 *
 *   runs      a guest doing N MMIO operations (N = 100, 1,000, 10,000): the bare step loop, the loop with
 *             the state hash after every step, and a logged run (file, checkpoint index); steps/s and ratios
 *   seek      logs of about 10k, 100k and 1M events from the same scenario: opening (header, model, index),
 *             then seeking random steps; latency, heap after opening and after the seeks
 *   reader    streaming the 1M-event log end to end: lines/s and the largest heap seen
 *   bytes     bytes per event of each bundled example: event lines, whole file, gzip
 *
 * BENCH_EVENTS=10000,100000 limits the seek sizes (BENCH_EVENTS=10000000 for the 10M-event log: minutes).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { actorsFor } from '../machines/registry.ts';
import { scanLog } from '../src/log/reader.ts';
import { LogWriter } from '../src/log/writer.ts';
import { openIndexed } from '../src/replay/seek.ts';
import { runModel } from '../src/runtime/runner.ts';
import { fifoScheduler } from '../src/runtime/scheduler/fifo.ts';
import { initialWorld } from '../src/runtime/step.ts';
import { createModel } from '../src/runtime/world.ts';
import { worldHash } from '../src/runtime/worldHash.ts';
import { loadScenarioFile } from '../src/scenario/load.ts';
import type { Scenario } from '../src/scenario/schema.ts';
import { mmioScenario } from './mmioScenario.ts';
import { headerFor, modelFor, recordRun } from '../src/session/session.ts';

const work = mkdtempSync(path.join(tmpdir(), 'tdxsim-bench-log-'));
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const round = (x: number, digits = 0) => Number(x.toFixed(digits));
const mb = (bytes: number) => round(bytes / (1024 * 1024), 1);


function logRun(s: Scenario, file: string): number {
  const model = modelFor(s);
  const scheduler = fifoScheduler();
  const w = LogWriter.open(file, headerFor(s, null, scheduler.descriptor), { index: { initial: initialWorld(model) } });
  const o = recordRun(model, w, { scheduler, maxSteps: 100_000_000 });
  w.close();
  return o.steps;
}

// ---- runs: bare, hashed, logged ------------------------------------------------------------------------

function runCurve() {
  const rows = [];
  logRun(mmioScenario(100), path.join(work, 'warm.jsonl')); // JIT warm-up
  for (const ops of [100, 1000, 10000]) {
    const s = mmioScenario(ops);
    const model = createModel(actorsFor(s));
    const reps = ops >= 10000 ? 2 : 4;
    const best = { bare: Infinity, hashed: Infinity, logged: Infinity };
    let steps = 0;
    for (let r = 0; r < reps; r++) {
      let t = cpuMs();
      steps = runModel(model, { scheduler: fifoScheduler(), maxSteps: 100_000_000 }).outcome.steps;
      best.bare = Math.min(best.bare, cpuMs() - t);
      t = cpuMs();
      runModel(model, { scheduler: fifoScheduler(), maxSteps: 100_000_000, onDelivery: (d) => void worldHash(model, d.world) });
      best.hashed = Math.min(best.hashed, cpuMs() - t);
      const file = path.join(work, `run-${ops}.jsonl`);
      t = cpuMs();
      logRun(s, file);
      best.logged = Math.min(best.logged, cpuMs() - t);
    }
    const rate = (ms: number) => round(steps / (ms / 1000));
    const row = {
      ops,
      steps,
      bareStepsPerSecond: rate(best.bare),
      hashedStepsPerSecond: rate(best.hashed),
      loggedStepsPerSecond: rate(best.logged),
      hashedOverBare: round(best.hashed / best.bare, 2),
      loggedOverBare: round(best.logged / best.bare, 2),
      logBytesPerEvent: round(statSync(path.join(work, `run-${ops}.jsonl`)).size / steps, 1),
    };
    console.log(`run  ${String(ops).padStart(6)} ops ${String(steps).padStart(8)} steps  bare ${row.bareStepsPerSecond}/s  hashed ${row.hashedStepsPerSecond}/s (${row.hashedOverBare}x)  logged ${row.loggedStepsPerSecond}/s (${row.loggedOverBare}x)`);
    rows.push(row);
  }
  return rows;
}

// ---- seek -------------------------------------------------------------------------------------------

/** A deterministic sequence of steps to seek (xorshift), so every run seeks the same ones. */
function targets(steps: number, n: number): number[] {
  let x = 0x9e3779b9;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.push(1 + ((x >>> 0) % steps));
  }
  return out;
}

function seekCurve(sizes: number[]) {
  const rows = [];
  for (const events of sizes) {
    const ops = Math.max(10, Math.round(events / 17));
    const file = path.join(work, `seek-${events}.jsonl`);
    let t = performance.now();
    const steps = logRun(mmioScenario(ops), file);
    const writeSeconds = (performance.now() - t) / 1000;
    const logBytes = statSync(file).size;
    const indexBytes = statSync(`${file}.idx`).size;
    global.gc?.();
    const heap0 = process.memoryUsage().heapUsed;
    t = performance.now();
    const h = openIndexed(file);
    const openMs = performance.now() - t;
    global.gc?.();
    const heapOpen = process.memoryUsage().heapUsed;
    h.seek(Math.floor(steps / 2)); // warm-up
    const lat: number[] = [];
    const cpu: number[] = [];
    for (const n of targets(steps, 40)) {
      t = performance.now();
      const c = cpuMs();
      h.seek(n);
      cpu.push(cpuMs() - c);
      lat.push(performance.now() - t);
    }
    cpu.sort((a, b) => a - b);
    global.gc?.();
    const heapSeeks = process.memoryUsage().heapUsed;
    h.close();
    lat.sort((a, b) => a - b);
    const row = {
      events: steps,
      guestOps: ops,
      logMB: mb(logBytes),
      indexMB: mb(indexBytes),
      writeSeconds: round(writeSeconds, 1),
      indexState: h.indexState,
      openMs: round(openMs, 1),
      seekMsMedian: round(lat[Math.floor(lat.length / 2)]!, 1),
      seekMsP90: round(lat[Math.floor(lat.length * 0.9)]!, 1),
      seekMsMax: round(lat.at(-1)!, 1),
      seekCpuMsMedian: round(cpu[Math.floor(cpu.length / 2)]!, 1),
      seekCpuMsMax: round(cpu.at(-1)!, 1),
      loadAverage: round(loadavg()[0]!, 1),
      heapMBOpen: mb(heapOpen - heap0),
      heapMBAfterSeeks: mb(heapSeeks - heap0),
    };
    console.log(`seek ${String(steps).padStart(8)} events  log ${row.logMB} MB, index ${row.indexMB} MB  open ${row.openMs} ms  seek median ${row.seekMsMedian} ms, p90 ${row.seekMsP90}, max ${row.seekMsMax} (CPU median ${row.seekCpuMsMedian} ms, max ${row.seekCpuMsMax}; load ${row.loadAverage})  heap +${row.heapMBOpen} MB open, +${row.heapMBAfterSeeks} MB after 41 seeks`);
    rows.push(row);
  }
  return rows;
}

function readerRun(file: string) {
  global.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  let peak = 0;
  let n = 0;
  const t = performance.now();
  const { scan } = scanLog(file);
  for (const item of scan) {
    if (item.type === 'event' && ++n % 50_000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed - heap0);
  }
  const seconds = (performance.now() - t) / 1000;
  const row = { events: n, logMB: mb(statSync(file).size), seconds: round(seconds, 1), eventsPerSecond: round(n / seconds), peakHeapMB: mb(peak) };
  console.log(`read ${n} events (${row.logMB} MB) in ${row.seconds} s, ${row.eventsPerSecond} events/s, heap peak +${row.peakHeapMB} MB`);
  return row;
}

// ---- bytes per event ------------------------------------------------------------------------------------

function bytesPerExample() {
  const rows = [];
  // Every bundled example: a directory with scenario.yaml (examples/traces holds trace samples, not a scenario).
  for (const name of readdirSync('examples').filter((n) => existsSync(path.join('examples', n, 'scenario.yaml'))).sort()) {
    const s = loadScenarioFile(`examples/${name}`).scenario;
    const plain = path.join(work, `${name}.jsonl`);
    const gz = path.join(work, `${name}.jsonl.gz`);
    const events = logRun(s, plain);
    logRun(s, gz);
    const { scan } = scanLog(plain);
    let eventBytes = 0;
    let prev = 0;
    for (const item of scan) {
      if (item.type === 'event') eventBytes += scan.endOffset - prev;
      prev = scan.endOffset;
    }
    const row = {
      example: name,
      events,
      eventLineBytes: round(eventBytes / events, 1),
      fileBytesPerEvent: round(statSync(plain).size / events, 1),
      gzipBytesPerEvent: round(statSync(gz).size / events, 1),
    };
    console.log(`bytes ${name.padEnd(30)} ${String(events).padStart(4)} events  ${row.eventLineBytes} B/event line, ${row.fileBytesPerEvent} B/event file, ${row.gzipBytesPerEvent} B/event gzip`);
    rows.push(row);
  }
  return rows;
}

const sizes = (process.env['BENCH_EVENTS'] ?? '10000,100000,1000000').split(',').map(Number);
try {
  const seek = seekCurve(sizes);
  const bytes = bytesPerExample();
  const runs = runCurve();
  const reader = readerRun(path.join(work, `seek-${sizes.at(-1)}.jsonl`));
  mkdirSync('bench/results', { recursive: true });
  const result = { node: process.version, date: new Date().toISOString().slice(0, 10), cpus: availableParallelism(), loadAverage: round(loadavg()[0]!, 1), runs, seek, reader, bytes };
  writeFileSync('bench/results/log.json', JSON.stringify(result, null, 2) + '\n');
  console.log('wrote bench/results/log.json');
} finally {
  rmSync(work, { recursive: true, force: true });
}
