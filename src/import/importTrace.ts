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
}

export interface ImportResult {
  trace: ParsedTrace;
  built: BuiltScenario;
  yaml: string;
  scenario: Scenario;
  /** The model's run as a log (text and parsed). */
  logText: string;
  log: ParsedLog;
  outcome: Outcome;
  model: TraceEvent[];
  alignment: Alignment;
  /** Every place the trace and the model part, in trace order; `trace-ends` entries are not divergences. */
  divergences: Divergence[];
  first: Divergence | null;
  livelocks: { trace: Livelock[]; model: Livelock[] };
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
  const scheduler = fifoScheduler();
  const writer = MemoryLogWriter.open(headerFor(scenario, scenarioFile, scheduler.descriptor), `${name} (imported)`);
  const outcome = recordRun(modelFor(scenario), writer, { scheduler, maxSteps: opts.maxSteps ?? IMPORT_MAX_STEPS });
  const logText = writer.text();
  const log = parseLogText(logText, `${name} (imported)`);
  const model = modelTrace(log, scenarioFile);
  const alignment = alignTraces(trace.events, model, { td: scenario.vm.type === 'tdx' });
  const divergences = divergencesOf({ alignment, logEvents: log.events, outcome });
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
