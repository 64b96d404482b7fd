/**
 * Background verification of an opened log. Opening a log checks every delivery but the state hash only
 * at checkpoints; the page shows the outcome as "claimed by the log" until this full check (the one
 * `tdxsim replay --verify` makes) has re-derived it.
 *
 * It runs in a worker thread (verifyWorker.js beside this file in dist/) so the server keeps answering.
 * Where there is no compiled worker (the TypeScript sources, as the tests run them) it runs on this
 * thread after the current request, which blocks the server for its duration. A paged log (too long to
 * hold) is not passed as records: the worker streams its file (verifyLog.ts `verifyLogStreaming`).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ParsedLog } from '../log/reader.ts';
import type { VerifyResult } from './api.ts';
import { verifyLog, verifyLogStreaming } from './verifyLog.ts';

export function defaultVerifyWorker(): URL | null {
  const url = new URL('./verifyWorker.js', import.meta.url);
  return url.protocol === 'file:' && existsSync(fileURLToPath(url)) ? url : null;
}

/** `log` null: the file is streamed (a paged log), never held. */
export function verifyInBackground(log: ParsedLog | null, file: string, worker: URL | null = defaultVerifyWorker()): Promise<VerifyResult> {
  const check = () => (log === null ? verifyLogStreaming(file) : verifyLog(log, file));
  if (worker === null) return new Promise((resolve) => setImmediate(() => resolve(check())));
  return new Promise((resolve) => {
    const w = new Worker(worker, { workerData: log === null ? { stream: true, file } : { log, file } });
    let done = false;
    w.once('message', (r: VerifyResult) => {
      done = true;
      resolve(r);
      void w.terminate();
    });
    w.once('error', (e) => {
      done = true;
      resolve({ status: 'failed', text: `not verified: the verifier stopped: ${e.message}` });
    });
    w.once('exit', (code) => {
      if (!done) resolve({ status: 'failed', text: `not verified: the verifier exited (code ${code})` });
    });
    // The process may end (Ctrl-C, tests closing the server) without waiting for a check nobody awaits.
    w.unref();
  });
}
