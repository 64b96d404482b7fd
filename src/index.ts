/**
 * tdxsim as a library: load or build a scenario, run it, replay a log to any step, explore its
 * interleavings, check invariants, export the result — the same functions the `tdxsim` command uses.
 * Runs and explorations are rxjs Observables (`runScenario`, `exploreScenario`): compose them with
 * `filter`, `bufferCount`, `takeUntil`; they observe the pure model and never steer it.
 *
 * Re-exports only. Every export has its documentation where it is defined.
 */

// Scenarios: load, parse, build in code.
export { loadScenario, parseScenario, defineScenario } from './session/scenario.ts';
export { parseScenarioObject, parseScenarioText, loadScenarioFile, ScenarioError } from './scenario/load.ts';
export type { Scenario, ScenarioInput } from './scenario/schema.ts';

// Running: as a stream, or step by step on a model.
export { runScenario, runModelEvents, schedulerFor, type RunSettings } from './session/run.ts';
export { runEvents, deliveries, runEnd, stateViews, recordTo, type RunEvent, type DeliveryEvent, type RunEndEvent, type StateViewEvent, type RunStreamOptions, type LoggedViolation } from './session/runEvents.ts';
export { modelFor, headerFor, recordRun, formatOptionsFor } from './session/session.ts';
export { actorsFor } from '../machines/registry.ts';
export { createModel, type Model, type World, type ActorSpec, type Failure } from './runtime/world.ts';
export { initialWorld, enabledChoices, step } from './runtime/step.ts';
export { runModel, outcomeOf, type Delivery, type Outcome } from './runtime/runner.ts';
export { fifoScheduler } from './runtime/scheduler/fifo.ts';
export { randomScheduler } from './runtime/scheduler/random.ts';
export { scriptedScheduler } from './runtime/scheduler/scripted.ts';
export type { Scheduler, SchedulerDescriptor } from './runtime/scheduler/scheduler.ts';
export { worldHash, worldView, type ActorView } from './runtime/worldHash.ts';
export { formatDelivery, type FormatOptions } from './session/format.ts';
export type { Message, MessageName, MessageKind, PayloadOf, ActorId } from './protocol/messages.ts';

// Logs: write, read, replay to any step.
export { LogWriter, MemoryLogWriter, SealingLogWriter } from './log/writer.ts';
export { readLog, parseLogText, scanLog, LogScan, type ParsedLog, type LogItem } from './log/reader.ts';
export { LogError } from './log/errors.ts';
export type { HeaderRecord, EventRecord, EndRecord, LogRecord } from './log/schema.ts';
export { replayLog, scenarioFromLog, type ReplayResult } from './replay/replay.ts';
export { replayEvents, type ReplayEvent, type ReplayedStep, type ReplayVerified } from './session/replay.ts';
export { openIndexed, seek, buildIndex, indexFileOf, type IndexedLog, type SeekResult, type OpenIndexedOptions, type IndexState } from './replay/seek.ts';
export { verifyLogFile, type StreamVerified } from './replay/verifyStream.ts';

// Exploring interleavings, invariants and policies.
export { exploreScenario, exploreToEnd, explorationProgress, findings, explorationDone, resolveInvariants, EXPLORE_DEFAULTS, EXPLORE_MODES, type ExploreSettings, type ExploreEvent, type ExploreStart, type ExploreDone, type Finding, type SearchProgressEvent, type MinimiseProgressEvent, type ExploreMode } from './session/explore.ts';
export { explore, startExplore, type ExploreBounds, type ExploreOptions, type ExploreProgress, type ExploreResult, type Exploration, type Violation, type Bound } from './explore/explore.ts';
export { sample, startSample, type SampleResult, type SampleMode, type SampleBounds, type SampleOptions } from './explore/sample.ts';
export { minimise, countPreemptions, type MinimiseResult, type MinimiseProgress } from './explore/minimise.ts';
export { INVARIANTS, invariantNamed, invariantsOf, defaultInvariants, type Invariant, type InvariantSpec } from './explore/invariants/index.ts';
export { POLICIES, type PolicyName, type PolicyOverrides, type PolicySpec } from './policies.ts';
export { withPolicies } from './session/policies.ts';

// Exports to other tools.
export { logToMermaid, logToPerfetto, machinesOf, statechartMermaid, statechartSvg, type SequenceExportOptions } from './session/exporters.ts';

export { MODEL_VERSION } from './version.ts';
