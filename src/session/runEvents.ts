/**
 * A run as a stream: every delivery, then how it ended. The stream observes the pure core — the scheduler
 * alone picks each delivery, whoever subscribes — so composing it (`filter`, `bufferCount`, `take`) never
 * changes what runs, only how much of it is watched. It is cold: each subscription is a run of its own,
 * with a scheduler of its own, so two subscriptions see the same deliveries.
 *
 * Without `yieldEvery` or `pace` the whole run happens inside `subscribe`, synchronously, as
 * `runModel` does; with them it gives the event loop a turn between slices (the live inspector, a
 * progress display, `takeUntil(timer(…))`). Unsubscribing stops the run at the next delivery.
 */
import { Observable, type OperatorFunction, filter, map, tap } from 'rxjs';
import type { Message } from '../protocol/messages.ts';
import type { SealingLogWriter } from '../log/writer.ts';
import type { Lasso } from '../log/schema.ts';
import { DEFAULT_MAX_STEPS, outcomeOf, type Outcome } from '../runtime/runner.ts';
import type { Scheduler } from '../runtime/scheduler/scheduler.ts';
import { enabledChoices, initialWorld, step } from '../runtime/step.ts';
import type { Model, World } from '../runtime/world.ts';
import { worldHash, worldView, type ActorView } from '../runtime/worldHash.ts';

/** One delivered message: step `seq` delivered `message`, the scheduler's `choice`, leaving `world`. */
export interface DeliveryEvent {
  type: 'delivery';
  seq: number;
  /** Index of the delivered message among the deliverable ones (the log's `choice`). */
  choice: number;
  message: Message;
  /** Every actor's state and the messages in flight after the delivery (immutable). */
  world: World;
}

/** The run is over: nothing in flight, a failure the model reached, or the step bound. */
export interface RunEndEvent {
  type: 'end';
  outcome: Outcome;
  world: World;
}

/** What a run stream emits: one `delivery` per step, then one `end`. */
export type RunEvent = DeliveryEvent | RunEndEvent;

/** How `runEvents` runs a model: its scheduler, step bound, and whether to yield to the event loop. */
export interface RunStreamOptions {
  /** Makes the scheduler for one subscription (schedulers keep state, e.g. a seeded generator). */
  scheduler: () => Scheduler;
  /** Deliveries before the run stops as a failure; default 100,000 (`DEFAULT_MAX_STEPS`). */
  maxSteps?: number;
  /** Give the event loop a turn after this many deliveries (0 or absent: run to the end synchronously). */
  yieldEvery?: number;
  /** Milliseconds to wait between deliveries, to watch a run unfold. */
  pace?: number;
}

/** Runs `model` to its end once per subscription, emitting each delivery and then the end. */
export function runEvents(model: Model, opts: RunStreamOptions): Observable<RunEvent> {
  return new Observable<RunEvent>((subscriber) => {
    const scheduler = opts.scheduler();
    const max = opts.maxSteps ?? DEFAULT_MAX_STEPS;
    const pace = opts.pace ?? 0;
    const slice = pace > 0 ? 1 : (opts.yieldEvery ?? 0);
    let world = initialWorld(model);
    let timer: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | null = null;
    const deliver = (): boolean => {
      const enabled = enabledChoices(model, world);
      const choice = scheduler.choose(enabled);
      const r = step(model, world, choice, enabled);
      world = r.world;
      subscriber.next({ type: 'delivery', seq: world.seq, choice, message: r.delivered, world });
      return !subscriber.closed;
    };
    const finish = () => {
      subscriber.next({ type: 'end', outcome: outcomeOf(world), world });
      subscriber.complete();
    };
    const runSlice = () => {
      timer = null;
      try {
        for (let n = 0; world.pending.length > 0 && world.seq < max; n++) {
          if (slice > 0 && n === slice) {
            timer = pace > 0 ? setTimeout(runSlice, pace) : setImmediate(runSlice);
            return;
          }
          if (!deliver()) return;
        }
        finish();
      } catch (e) {
        subscriber.error(e);
      }
    };
    runSlice();
    return () => {
      if (timer === null) return;
      if (pace > 0) clearTimeout(timer as ReturnType<typeof setTimeout>);
      else clearImmediate(timer as ReturnType<typeof setImmediate>);
    };
  });
}

/** Only the deliveries. */
export const deliveries = (): OperatorFunction<RunEvent, DeliveryEvent> => filter((e): e is DeliveryEvent => e.type === 'delivery');

/** Only the end. */
export const runEnd = (): OperatorFunction<RunEvent, RunEndEvent> => filter((e): e is RunEndEvent => e.type === 'end');

/** What every actor looks like after a step: the same view `tdxsim replay --to` prints and hashes. */
export interface StateViewEvent {
  seq: number;
  message: Message;
  actors: Record<string, ActorView>;
  /** Messages in flight, in send order. */
  pending: unknown[];
}

/** Each delivery's world as plain data (bigints stay bigints). Views cost a walk of the world: filter first. */
export const stateViews = (model: Model): OperatorFunction<DeliveryEvent, StateViewEvent> =>
  map((d) => {
    const v = worldView(model, d.world);
    return { seq: d.seq, message: d.message, actors: v.actors, pending: v.pending };
  });

/** What a counterexample's end record says broke at its last step (`bound` for a bounded monitor). */
export interface LoggedViolation {
  invariant: string;
  bound?: number;
  detail: string;
}

/** A non-progress counterexample's loop (the lasso format): events loopStart + 1 … the last are one turn of it. */
export type LoggedLasso = Lasso;

/**
 * Appends each delivery to `writer` as a log event (with the world's state hash) and, at the end, the end
 * record. The writer stays open: its owner closes it. A run cut short (unsubscribed) has no end record,
 * which is what the log then says about itself.
 */
export function recordTo(writer: SealingLogWriter, model: Model, opts: { violation?: LoggedViolation; lasso?: LoggedLasso } = {}): OperatorFunction<RunEvent, RunEvent> {
  return tap((e) => {
    if (e.type === 'delivery') {
      const m = e.message;
      // The world goes along for the checkpoint index a file writer may keep (src/log/checkpointIndex.ts).
      writer.append({ seq: e.seq, from: m.from, to: m.to, kind: m.kind, name: m.name, payload: m.payload as unknown as Record<string, unknown>, cause: m.cause, choice: e.choice, state: worldHash(model, e.world) }, e.world);
      return;
    }
    // A counterexample ends where its invariant broke, which the run alone may not call a failure (a step
    // bound with messages in flight): the end record names the invariant, and replay --verify re-checks it.
    const v = opts.violation;
    const o = e.outcome;
    if (v !== undefined) writer.end({ status: 'failure', reason: `violation of ${v.invariant}: ${v.detail}`, failures: o.failures, violation: v, ...(opts.lasso !== undefined ? { lasso: opts.lasso } : {}) });
    else writer.end({ status: o.status, reason: o.reason, failures: o.failures });
  });
}
