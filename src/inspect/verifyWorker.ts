/**
 * A worker thread that verifies one log (verifyLog.ts) and posts the result: re-deriving every state hash
 * of a 100k-step log takes tens of seconds, which would stall the inspector's server if done on its thread.
 * It runs from dist/, compiled, like the CLI.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ParsedLog } from '../log/reader.ts';
import { verifyLog } from './verifyLog.ts';

const { log, file } = workerData as { log: ParsedLog; file: string };
parentPort!.postMessage(verifyLog(log, file));
