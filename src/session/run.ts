/**
 * Running a scenario: what `tdxsim run` does, as a stream a program can compose. The CLI's `run` and the
 * live inspector (`run --inspect`) consume this same stream.
 */
import { Observable, finalize } from 'rxjs';
import { LogWriter, type SealingLogWriter } from '../log/writer.ts';
import type { PolicyOverrides } from '../policies.ts';
import { fifoScheduler } from '../runtime/scheduler/fifo.ts';
import { randomScheduler } from '../runtime/scheduler/random.ts';
import type { Scheduler } from '../runtime/scheduler/scheduler.ts';
import { scriptedScheduler } from '../runtime/scheduler/scripted.ts';
import { initialWorld } from '../runtime/step.ts';
import type { Model } from '../runtime/world.ts';
import type { Scenario } from '../scenario/schema.ts';
import { withPolicies } from './policies.ts';
import { recordTo, runEvents, type LoggedLasso, type LoggedViolation, type RunEvent } from './runEvents.ts';
import { headerFor, modelFor } from './session.ts';

/** How to run a scenario. Every field is optional: the defaults are `tdxsim run`'s. */
export interface RunSettings {
  /**
   * Deliver in a seeded random order (a 32-bit integer); the same seed gives the same run.
   * @default undefined — oldest message first (FIFO)
   */
  seed?: number;
  /**
   * Or deliver these choices first (a schedule found by `explore`, or steered in the inspector), then
   * oldest first; the log header records the scheduler as `explore`, and the log's choices are the schedule.
   */
  choices?: readonly number[];
  /**
   * Deliveries before the run stops as a failure (a livelock, or a scenario that never ends).
   * @default 100000
   */
  maxSteps?: number;
  /** Policy switches to override for this run (`tdxsim policies` lists them). */
  policies?: PolicyOverrides;
  /**
   * Write the log here as the run goes (a path, or a writer you own, e.g. `MemoryLogWriter`). A path
   * is opened when the stream is subscribed and closed when it ends; a run cut short leaves a log with
   * no end record.
   */
  log?: string | SealingLogWriter;
  /** The scenario's file, recorded in the log header. @default null */
  scenarioFile?: string | null;
  /** Give the event loop a turn every this many deliveries. @default 0 (synchronous) */
  yieldEvery?: number;
  /** Milliseconds between deliveries, to watch the run. @default 0 */
  pace?: number;
  /** For a counterexample log: the invariant its last step breaks, written into the end record. */
  violation?: LoggedViolation;
  /** For a non-progress counterexample: where its loop starts and who starves. */
  lasso?: LoggedLasso;
}

/** A fresh scheduler for these settings, per run (a seeded one keeps its generator's state). */
export function schedulerFor(settings: Pick<RunSettings, 'seed' | 'choices'>): () => Scheduler {
  if (settings.choices !== undefined) {
    const choices = settings.choices;
    return () => {
      const scripted = scriptedScheduler(choices);
      const then = fifoScheduler();
      let n = 0;
      return { descriptor: scripted.descriptor, choose: (enabled) => (n++ < choices.length ? scripted.choose(enabled) : then.choose(enabled)) };
    };
  }
  const seed = settings.seed;
  return seed === undefined ? fifoScheduler : () => randomScheduler(seed);
}

/**
 * Runs `scenario` once per subscription: its deliveries, then the end (`RunEvent`). With `log` set, the
 * log is written on the way, exactly as `tdxsim run` writes it.
 *
 * @example
 * runScenario(loadScenario('mmio-ve'))
 *   .pipe(deliveries(), filter((d) => d.message.name === 'KVM_EXIT_MMIO'))
 *   .subscribe((d) => console.log(d.seq, d.message.payload));
 */
export function runScenario(scenario: Scenario, settings: RunSettings = {}): Observable<RunEvent> {
  const s = withPolicies(scenario, settings.policies);
  return runModelEvents(modelFor(s), s, settings);
}

/** `runScenario` for a model already built from `scenario` (the inspector keeps one per log). */
export function runModelEvents(model: Model, scenario: Scenario, settings: RunSettings = {}): Observable<RunEvent> {
  const make = schedulerFor(settings);
  const events = runEvents(model, {
    scheduler: make,
    ...(settings.maxSteps !== undefined ? { maxSteps: settings.maxSteps } : {}),
    ...(settings.yieldEvery !== undefined ? { yieldEvery: settings.yieldEvery } : {}),
    ...(settings.pace !== undefined ? { pace: settings.pace } : {}),
  });
  const log = settings.log;
  if (log === undefined) return events;
  return new Observable<RunEvent>((subscriber) => {
    const descriptor = make().descriptor;
    const owned = typeof log === 'string';
    const writer = owned ? LogWriter.open(log, headerFor(scenario, settings.scenarioFile ?? null, descriptor), { index: { initial: initialWorld(model) } }) : log;
    return events
      .pipe(
        recordTo(writer, model, { ...(settings.violation !== undefined ? { violation: settings.violation } : {}), ...(settings.lasso !== undefined ? { lasso: settings.lasso } : {}) }),
        finalize(() => {
          if (owned) writer.close();
        }),
      )
      .subscribe(subscriber);
  });
}
