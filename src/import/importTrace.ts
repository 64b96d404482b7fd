/**
 * `tdxsim import` without the I/O: read the traces, build the scenario they imply, run it through the model
 * (FIFO, as `tdxsim run` does), project the run to the trace it would have produced, align the two and say
 * where they part. The CLI writes the scenario and log files and prints the report.
 */
import path from 'node:path';
import { parseLogText, type ParsedLog } from '../log/reader.ts';
import { MemoryLogWriter } from '../log/writer.ts';
import type { Outcome } from '../runtime/runner.ts';
import { fifoScheduler } from '../runtime/scheduler/fifo.ts';
import { runModel } from '../runtime/runner.ts';
import { LOG_FORMAT, LOG_VERSION, type EndRecord, type EventRecord } from '../log/schema.ts';
import { parseScenarioText } from '../scenario/load.ts';
import type { Scenario } from '../scenario/schema.ts';
import { headerFor, modelFor, recordRun } from '../session/session.ts';
import { alignTraces, type Alignment } from './align.ts';
import { divergencesOf, isDivergence, type Divergence } from './divergence.ts';
import { findLivelocks, type Livelock } from './livelock.ts';
import { modelTrace } from './modelTrace.ts';
import { parseTraceFiles, type ParsedTrace, type TraceInput } from './parseTrace.ts';
import { buildScenario, sanitizeName, type BuiltScenario } from './scenarioBuilder.ts';
import { scenarioYaml } from './scenarioYaml.ts';
import type { TraceEvent, TraceFormat } from './traceEvent.ts';

export interface ImportOptions {
  format?: TraceFormat;
  /** Name the scenario file gets in errors and the log header (the CLI's --scenario-out). */
  scenarioFile?: string;
  /** A bound on the model's deliveries (a livelocked scenario never quiesces). */
  maxSteps?: number;
  /**
   * Record the run as a full log (state hashes and hash chain, for `--log`). Hashing the world after every
   * step costs far more than the run on a big trace, and the alignment only needs the messages.
   */
  keepLog?: boolean;
}

export interface ImportResult {
  trace: ParsedTrace;
  built: BuiltScenario;
  yaml: string;
  scenario: Scenario;
  /** The model's run as a log: text (only with keepLog) and records (without state hashes otherwise). */
  logText: string | null;
  log: ParsedLog;
  outcome: Outcome;
  model: TraceEvent[];
  alignment: Alignment;
  /** Every place the trace and the model part, in trace order; `trace-ends` entries are not divergences. */
  divergences: Divergence[];
  first: Divergence | null;
  livelocks: { trace: Livelock[]; model: Livelock[] };
}

/** The model's run of the built scenario, FIFO as `tdxsim run` does it. */
function runScenario(scenario: Scenario, scenarioFile: string, name: string, opts: ImportOptions): { log: ParsedLog; logText: string | null; outcome: Outcome } {
  const scheduler = fifoScheduler();
  const maxSteps = opts.maxSteps ?? IMPORT_MAX_STEPS;
  const header = headerFor(scenario, scenarioFile, scheduler.descriptor);
  if (opts.keepLog) {
    const writer = MemoryLogWriter.open(header, `${name} (imported)`);
    const outcome = recordRun(modelFor(scenario), writer, { scheduler, maxSteps });
    const logText = writer.text();
    return { log: parseLogText(logText, `${name} (imported)`), logText, outcome };
  }
  const events: EventRecord[] = [];
  const { outcome } = runModel(modelFor(scenario), {
    scheduler,
    maxSteps,
    onDelivery: (d) => {
      const m = d.message;
      events.push({ type: 'event', seq: d.seq, from: m.from, to: m.to, kind: m.kind, name: m.name, payload: m.payload as unknown as Record<string, unknown>, cause: m.cause, choice: d.choice, state: '', hash: '' });
    },
  });
  const end: EndRecord = { type: 'end', steps: outcome.steps, outcome: { status: outcome.status, reason: outcome.reason, failures: outcome.failures }, hash: '' };
  const log: ParsedLog = { header: { type: 'header', format: LOG_FORMAT, version: LOG_VERSION, ...header, hash: '' } as ParsedLog['header'], events, end, lines: events.length + 2, torn: null, signed: null };
  return { log, logText: null, outcome };
}

/** Enough for a 2M accept storm done 4K at a time (512 faults of a few dozen steps each) and then some. */
export const IMPORT_MAX_STEPS = 200_000;

export function importTraces(inputs: readonly TraceInput[], opts: ImportOptions = {}): ImportResult {
  return importParsed(parseTraceFiles(inputs, opts.format), opts);
}

/** The same for a trace already read (the CLI checks its diagnostics first under --strict). */
export function importParsed(trace: ParsedTrace, opts: ImportOptions = {}): ImportResult {
  const name = sanitizeName(path.basename(trace.files[0]?.file ?? 'trace'));
  const built = buildScenario(trace, name);
  const yaml = scenarioYaml(built);
  const scenarioFile = opts.scenarioFile ?? `${name}.scenario.yaml`;
  // A scenario that does not validate is the builder's error, reported with the line of the YAML it wrote.
  const scenario = parseScenarioText(yaml, scenarioFile);
  const { log, logText, outcome } = runScenario(scenario, scenarioFile, name, opts);
  const model = modelTrace(log, scenarioFile);
  const alignment = alignTraces(trace.events, model, { td: scenario.vm.type === 'tdx' });
  const divergences = divergencesOf({ alignment, logEvents: log.events, outcome }, new Map(trace.events.map((e, i) => [e, i])));
  return {
    trace,
    built,
    yaml,
    scenario,
    logText,
    log,
    outcome,
    model,
    alignment,
    divergences,
    first: divergences.find(isDivergence) ?? null,
    livelocks: { trace: findLivelocks(trace.events), model: findLivelocks(model) },
  };
}
