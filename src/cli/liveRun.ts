/**
 * `tdxsim run <scenario> --inspect`: the same run as `tdxsim run` (same scheduler, same log file, same
 * lines printed), streamed into the local inspector while it happens. The server starts first and the run
 * waits for a page to connect, then delivers in slices of a few dozen steps, yielding to the event loop
 * between slices so the page receives each batch (server-sent events, /api/live) as it happens; `--pace`
 * slows it down to watch. When the run ends the server keeps serving the finished log until Ctrl-C.
 */
import { lastValueFrom, tap } from 'rxjs';
import { withPolicies } from '../session/policies.ts';
import { runModelEvents, schedulerFor } from '../session/run.ts';
import type { PolicyOverrides } from '../policies.ts';
import { LogWriter } from '../log/writer.ts';
import type { EndRecord, EventRecord } from '../log/schema.ts';
import { loadScenarioFile } from '../scenario/load.ts';
import { formatDelivery } from '../session/format.ts';
import { formatOptionsFor, headerFor } from '../session/session.ts';
import { EXIT_FAILURE, EXIT_OK } from './exitCodes.ts';
import { openInBrowser } from '../inspect/browser.ts';
import { listen } from '../inspect/listen.ts';
import type { Inspector } from '../inspect/server.ts';
import { InspectSession } from '../inspect/session.ts';
import { statelyBridge, type StatelyBridge } from '../inspect/stately.ts';

export interface LiveRunOptions {
  /** Serve the run in the local inspector. */
  inspect?: boolean;
  log?: string;
  seed?: number;
  maxSteps?: number;
  policy?: PolicyOverrides;
  json?: boolean;
  port?: number;
  host?: string;
  open?: boolean;
  /** Milliseconds to wait between deliveries. @default 0 */
  pace?: number;
  /** Also stream to the Stately inspector through the optional @statelyai/inspect package. */
  stately?: boolean;
  /** Start without waiting for a page. @default false */
  noWait?: boolean;
  /** Called with the server once it listens (tests and embedders close it with this). */
  onInspector?: (inspector: Inspector) => void;
}

/** Deliveries per slice between two yields to the event loop. */
const SLICE = 64;

export async function liveRun(scenarioArg: string, o: LiveRunOptions, print: (line: string) => void): Promise<number> {
  // As `tdxsim run`: validate everything before the log file is opened.
  const loaded = loadScenarioFile(scenarioArg);
  const scenario = withPolicies(loaded.scenario, o.policy);
  const file = loaded.file;
  const logPath = o.log ?? `${scenario.name}.log.jsonl`;
  const stately: StatelyBridge | null = o.stately ? await statelyBridge() : null;
  const writer = LogWriter.open(logPath, headerFor(scenario, file, schedulerFor(o)().descriptor));
  // The header as a reader of the file gets it (hash included), so the session shows exactly what was written.
  const header = writer.header;
  const session = InspectSession.live(header, scenario, logPath);
  const model = session.model;
  const fmt = formatOptionsFor(scenario);
  const warn = (line: string) => process.stderr.write(line + '\n');

  const inspector = o.inspect ? await listen({ session }, { ...(o.port !== undefined ? { port: o.port } : {}), ...(o.host !== undefined ? { host: o.host } : {}) }, warn) : null;
  if (inspector) {
    o.onInspector?.(inspector);
    warn(`# inspector: ${inspector.url}   (Ctrl-C to stop)`);
    if (o.open) openInBrowser(inspector.url, warn);
    if (!o.noWait) {
      warn('# waiting for the inspector page to connect before running…');
      await inspector.firstViewer;
    }
  }

  if (!o.json) print(`# ${scenario.name}: ${scenario.description}`);
  stately?.start(model, session.worldAt(0));
  // The same run stream as `tdxsim run`, in slices so the page receives each batch as it happens.
  const events = runModelEvents(model, scenario, {
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
    log: writer,
    yieldEvery: SLICE,
    ...(o.pace !== undefined ? { pace: o.pace } : {}),
  }).pipe(
    tap((e) => {
      if (e.type === 'end') return;
      session.append(writer.lastRecord as EventRecord, e.message, e.world);
      stately?.delivered(model, e.message, e.world);
      print(o.json ? writer.lastLine : formatDelivery({ seq: e.seq, ...e.message }, fmt));
      if (o.pace || e.seq % SLICE === 0) session.notify();
    }),
  );
  const last = await lastValueFrom(events);
  if (last.type !== 'end') throw new Error('model bug: a run stream ended without its end event');
  const outcome = last.outcome;
  const end = writer.lastRecord as EndRecord;
  if (o.json) print(writer.lastLine);
  writer.close();
  session.finish(end);
  if (!o.json) {
    print(`# ${outcome.steps} messages; outcome: ${outcome.status}${outcome.reason ? ` (${outcome.reason})` : ''}`);
    print(`# log: ${logPath}  (replay: tdxsim replay ${logPath} --to N)`);
  }
  if (inspector) warn(`# the run is over; the inspector still serves it at ${inspector.url} (Ctrl-C to stop)`);
  // The Stately session stays open for viewing; its connection keeps the process alive until Ctrl-C.
  if (stately) warn('# the run is over; it stays in the Stately inspector session (Ctrl-C to stop)');
  return outcome.status === 'ok' ? EXIT_OK : EXIT_FAILURE;
}
