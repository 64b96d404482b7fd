/**
 * A worker thread of a parallel exploration: builds its model as soon as it starts — while the main
 * thread computes the frontier — then waits for the frontier, runs its share (share.ts) and reports once.
 * A failure raises the shared stop flag so the other threads end too, and crosses back as name and message
 * (an exception's class does not survive the thread boundary). It runs from dist/, compiled, like the CLI.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CONTROL, runShare, shareLocals, STOP, type ShareJob, type ShareLocals, type ShareReport } from './share.ts';

export type WorkerReport = ({ type: 'done' } & ShareReport) | { type: 'error'; name: string; message: string };

const job = workerData as ShareJob;

function fail(e: unknown): WorkerReport {
  Atomics.store(new Int32Array(job.control), CONTROL.stop, STOP.error);
  return { type: 'error', name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) };
}

let locals: ShareLocals | null = null;
let early: WorkerReport | null = null;
try {
  locals = shareLocals(job);
} catch (e) {
  early = fail(e);
}
parentPort!.once('message', (frontier: number[][]) => {
  let report = early;
  if (report === null) {
    try {
      report = { type: 'done', ...runShare(job, frontier, locals!) };
    } catch (e) {
      report = fail(e);
    }
  }
  parentPort!.postMessage(report);
});
