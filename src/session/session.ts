/**
 * Everything a subcommand needs to run a scenario: the model built from it, the formatter settings, and
 * the header a log of it starts with.
 */
import { actorsFor } from '../../machines/registry.ts';
import { TDX_SHADOW_MMIO_VALUE, VMX_EPT_MISCONFIG_WX_VALUE } from '../arch/spte.ts';
import { stringifyCanonical } from '../log/canonical.ts';
import type { HeaderInput } from '../log/schema.ts';
import type { SealingLogWriter } from '../log/writer.ts';
import type { Delivery, Outcome } from '../runtime/runner.ts';
import type { Scheduler } from '../runtime/scheduler/scheduler.ts';
import type { SchedulerDescriptor } from '../runtime/scheduler/scheduler.ts';
import { createModel, type Model } from '../runtime/world.ts';
import type { Scenario } from '../scenario/schema.ts';
import { MODEL_VERSION } from '../version.ts';
import type { FormatOptions } from './format.ts';
import { recordTo, runEvents, type LoggedLasso, type LoggedViolation } from './runEvents.ts';

export type { LoggedLasso, LoggedViolation } from './runEvents.ts';

/** The actors of a validated scenario, ready to step (`createModel(actorsFor(s))`). */
export function modelFor(s: Scenario): Model {
  return createModel(actorsFor(s));
}

/** Settings the message and state formatters need for this scenario (the VM's MMIO SPTE value, §3.3). */
export function formatOptionsFor(s: Scenario): FormatOptions {
  return { mmioValue: s.vm.type === 'tdx' ? TDX_SHADOW_MMIO_VALUE : VMX_EPT_MISCONFIG_WX_VALUE };
}

/** The header stores the validated scenario (bigints as hex), enough to re-create the run without the file. */
export function headerFor(s: Scenario, file: string | null, scheduler: SchedulerDescriptor): HeaderInput {
  return { model: MODEL_VERSION, scenario: JSON.parse(stringifyCanonical(s)) as Record<string, unknown>, scenarioFile: file, scheduler };
}

/**
 * Runs a model to the end, appending one event per delivery and the end record to `writer` (which stays
 * open). The synchronous form of `runEvents(…).pipe(recordTo(…))`.
 */
export function recordRun(
  model: Model,
  writer: SealingLogWriter,
  opts: { scheduler: Scheduler; maxSteps?: number; onDelivery?: (d: Delivery) => void; violation?: LoggedViolation; lasso?: LoggedLasso },
): Outcome {
  let outcome: Outcome | null = null;
  runEvents(model, { scheduler: () => opts.scheduler, ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}) })
    .pipe(recordTo(writer, model, { ...(opts.violation !== undefined ? { violation: opts.violation } : {}), ...(opts.lasso !== undefined ? { lasso: opts.lasso } : {}) }))
    .subscribe((e) => {
      if (e.type === 'delivery') opts.onDelivery?.({ seq: e.seq, choice: e.choice, message: e.message, world: e.world });
      else outcome = e.outcome;
    });
  return outcome!;
}
