/**
 * A worker thread of a parallel exploration: runs its share (share.ts) and reports once. A failure
 * raises the shared stop flag so the other threads end too, and crosses back as name and message (an
 * exception's class does not survive the thread boundary). It runs from dist/, compiled, like the CLI.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CONTROL, runShare, STOP, type ShareJob, type ShareReport } from './share.ts';

export type WorkerReport = ({ type: 'done' } & ShareReport) | { type: 'error'; name: string; message: string };

const job = workerData as ShareJob;
let report: WorkerReport;
try {
  report = { type: 'done', ...runShare(job) };
} catch (e) {
  Atomics.store(new Int32Array(job.control), CONTROL.stop, STOP.error);
  report = { type: 'error', name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) };
}
parentPort!.postMessage(report);
