/**
 * What `tdxsim inspect` and `tdxsim export` take: a log file, or a scenario (file, directory or bundled
 * example name) that is first run in memory with the same settings as `tdxsim run`.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { LogError } from '../log/errors.ts';
import { parseLogText, readLog, type ParsedLog } from '../log/reader.ts';
import { nonRegularKind } from '../log/regularFile.ts';
import { LOG_FORMAT } from '../log/schema.ts';
import { MemoryLogWriter } from '../log/writer.ts';
import { fifoScheduler } from '../runtime/scheduler/fifo.ts';
import { randomScheduler } from '../runtime/scheduler/random.ts';
import { loadScenarioFile } from '../scenario/load.ts';
import { headerFor, modelFor, recordRun } from './session.ts';

export interface RunSettings {
  seed?: number;
  maxSteps?: number;
}

/**
 * A log opened for seeking (any step of any length of log from its nearest checkpoint): what the
 * inspector opens a log file with, then `seek(step)` per step shown (src/replay/seek.ts).
 */
export { openIndexed, seek, indexFileOf, type IndexedLog, type SeekResult, type OpenIndexedOptions } from '../replay/seek.ts';

/** A file whose first line starts like a tdxsim log header (or is named *.jsonl or *.jsonl.gz) is read as a log. */
export function isLogFile(arg: string): boolean {
  if (!existsSync(arg) || !statSync(arg).isFile()) return false;
  if (arg.endsWith('.jsonl') || arg.endsWith('.jsonl.gz')) return true;
  const fd = openSync(arg, 'r');
  try {
    const head = Buffer.alloc(200);
    const n = readSync(fd, head, 0, head.length, 0);
    const text = head.subarray(0, n).toString('utf8');
    return text.startsWith('{') && text.includes(`"${LOG_FORMAT}"`);
  } finally {
    closeSync(fd);
  }
}

/** Runs the scenario to the end in memory and returns its log, exactly as `tdxsim run` would write it. */
export function runInMemory(arg: string, settings: RunSettings = {}): { log: ParsedLog; file: string } {
  const { scenario, file } = loadScenarioFile(arg);
  const scheduler = settings.seed === undefined ? fifoScheduler() : randomScheduler(settings.seed);
  const name = `${scenario.name} (run in memory)`;
  const writer = MemoryLogWriter.open(headerFor(scenario, file, scheduler.descriptor), name);
  recordRun(modelFor(scenario), writer, { scheduler, ...(settings.maxSteps !== undefined ? { maxSteps: settings.maxSteps } : {}) });
  return { log: parseLogText(writer.text(), name), file: name };
}

/** A FIFO or a device is refused before anything tries to read it; a directory may hold a scenario, unless named like a log. */
export function refuseNonRegular(arg: string): void {
  const kind = nonRegularKind(arg);
  if (kind !== null && (kind !== 'a directory' || arg.endsWith('.jsonl'))) {
    throw new LogError('IO', arg, 0, `cannot read ${arg.endsWith('.jsonl') ? 'log' : 'log or scenario'}: ${kind} is not a regular file`);
  }
}

export interface OpenOptions {
  /**
   * Open a torn log (a crash mid-write) up to its last intact line; `log.torn` then says where it was
   * cut, for the caller to show. Without it a torn log is a TORN_LINE error.
   */
  allowTorn?: boolean;
}

/** A log (verified on the way in: LogError names file and line) or a scenario's fresh run. */
export function openLogOrScenario(arg: string, settings: RunSettings = {}, opts: OpenOptions = {}): { log: ParsedLog; file: string } {
  refuseNonRegular(arg);
  if (isLogFile(arg)) return { log: readLog(arg, { allowTorn: !!opts.allowTorn }), file: arg };
  if (!existsSync(arg) && /\.jsonl$/.test(arg)) throw new LogError('IO', arg, 0, 'cannot read log: no such file');
  return runInMemory(arg, settings);
}
