/**
 * Everything a subcommand needs to run a scenario: the model built from it, the formatter settings, and
 * the header a log of it starts with.
 */
import { actorsFor } from '../../machines/registry.ts';
import { TDX_SHADOW_MMIO_VALUE, VMX_EPT_MISCONFIG_WX_VALUE } from '../arch/spte.ts';
import { stringifyCanonical } from '../log/canonical.ts';
import type { HeaderInput } from '../log/schema.ts';
import type { SealingLogWriter } from '../log/writer.ts';
import { runModel, type Delivery, type Outcome } from '../runtime/runner.ts';
import type { Scheduler } from '../runtime/scheduler/scheduler.ts';
import { worldHash } from '../runtime/worldHash.ts';
import type { SchedulerDescriptor } from '../runtime/scheduler/scheduler.ts';
import { createModel, type Model } from '../runtime/world.ts';
import type { Scenario } from '../scenario/schema.ts';
import { MODEL_VERSION } from '../version.ts';
import type { FormatOptions } from './format.ts';

/** What a counterexample log's end record says broke at its last step (`bound` for a bounded monitor). */
export interface LoggedViolation {
  invariant: string;
  bound?: number;
  detail: string;
}

/** A non-progress counterexample's loop (the lasso format): events loopStart + 1 … the last are one turn of it. */
export interface LoggedLasso {
  loopStart: number;
  starving: string;
  retries: string;
}

export function modelFor(s: Scenario): Model {
  return createModel(actorsFor(s));
}

export function formatOptionsFor(s: Scenario): FormatOptions {
  return { mmioValue: s.vm.type === 'tdx' ? TDX_SHADOW_MMIO_VALUE : VMX_EPT_MISCONFIG_WX_VALUE };
}

/** The header stores the validated scenario (bigints as hex), enough to re-create the run without the file. */
export function headerFor(s: Scenario, file: string | null, scheduler: SchedulerDescriptor): HeaderInput {
  return { model: MODEL_VERSION, scenario: JSON.parse(stringifyCanonical(s)) as Record<string, unknown>, scenarioFile: file, scheduler };
}

/** Run a model to the end, appending one event per delivery and the end record to `writer`. */
export function recordRun(
  model: Model,
  writer: SealingLogWriter,
  opts: { scheduler: Scheduler; maxSteps?: number; onDelivery?: (d: Delivery) => void; violation?: LoggedViolation; lasso?: LoggedLasso },
): Outcome {
  const { outcome } = runModel(model, {
    scheduler: opts.scheduler,
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    onDelivery: (d) => {
      const m = d.message;
      writer.append({
        seq: d.seq,
        from: m.from,
        to: m.to,
        kind: m.kind,
        name: m.name,
        payload: m.payload as unknown as Record<string, unknown>,
        cause: m.cause,
        choice: d.choice,
        state: worldHash(model, d.world),
      });
      opts.onDelivery?.(d);
    },
  });
  // A counterexample ends where its invariant broke, which the run alone may not call a failure (a step
  // bound with messages in flight): the end record names the invariant, and replay --verify re-checks it.
  const v = opts.violation;
  if (v !== undefined) writer.end({ status: 'failure', reason: `violation of ${v.invariant}: ${v.detail}`, failures: outcome.failures, violation: v, ...(opts.lasso ? { lasso: opts.lasso } : {}) });
  else writer.end({ status: outcome.status, reason: outcome.reason, failures: outcome.failures });
  return outcome;
}
