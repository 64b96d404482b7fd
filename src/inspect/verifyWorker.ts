/**
 * A worker thread that verifies one log (verifyLog.ts) and posts the result: re-deriving every state hash
 * of a 100k-step log takes tens of seconds, which would stall the inspector's server if done on its thread.
 * It runs from dist/, compiled, like the CLI. A log held in memory comes as its records; a paged one as
 * its file name, streamed here.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ParsedLog } from '../log/reader.ts';
import { verifyLog, verifyLogStreaming } from './verifyLog.ts';

const job = workerData as { log: ParsedLog; file: string } | { stream: true; file: string };
parentPort!.postMessage('stream' in job ? verifyLogStreaming(job.file) : verifyLog(job.log, job.file));
