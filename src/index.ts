/** The public TypeScript API. Re-exports only. */
export { parseScenarioObject, parseScenarioText, loadScenarioFile, ScenarioError } from './scenario/load.ts';
export type { Scenario, ScenarioInput } from './scenario/schema.ts';
export { actorsFor } from '../machines/registry.ts';
export { createModel, type Model, type World, type ActorSpec, type Failure } from './runtime/world.ts';
export { initialWorld, enabledChoices, step } from './runtime/step.ts';
export { runModel, type Delivery, type Outcome } from './runtime/runner.ts';
export { fifoScheduler } from './runtime/scheduler/fifo.ts';
export { randomScheduler } from './runtime/scheduler/random.ts';
export type { Scheduler, SchedulerDescriptor } from './runtime/scheduler/scheduler.ts';
export { worldHash, worldView } from './runtime/worldHash.ts';
export { LogWriter, MemoryLogWriter } from './log/writer.ts';
export { readLog, parseLogText } from './log/reader.ts';
export { LogError } from './log/errors.ts';
export { replayLog } from './replay/replay.ts';
export { recordRun, headerFor } from './session/session.ts';
export type { Message, MessageName, MessageKind, PayloadOf } from './protocol/messages.ts';
export { MODEL_VERSION } from './version.ts';
