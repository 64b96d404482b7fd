/** What the page needs once: the scenario, the actors, the outcome, and where a failed run failed. */
import { MODEL_VERSION } from '../version.ts';
import type { FailureInfo, LassoInfo, SteerInfo, Summary } from './api.ts';
import type { InspectSession } from './session.ts';
import type { TraceView } from './traceView.ts';

/**
 * The step a counterexample opens on: the first failure the model raised (the end record's
 * `outcome.failures`), or the last step when the run failed without one (a step bound, a livelock).
 */
export function failureOf(session: InspectSession): FailureInfo | null {
  const outcome = session.end?.outcome;
  if (!outcome || outcome.status !== 'failure') return null;
  const failures = (outcome as { failures?: unknown }).failures;
  const first = Array.isArray(failures) ? (failures[0] as { actor?: unknown; seq?: unknown; reason?: unknown; detail?: unknown } | undefined) : undefined;
  const seq = typeof first?.seq === 'number' && first.seq >= 0 && first.seq <= session.steps ? first.seq : session.steps;
  return {
    step: seq,
    actor: typeof first?.actor === 'string' ? first.actor : null,
    reason: typeof first?.reason === 'string' ? first.reason : (outcome.reason ?? 'failure'),
    detail: typeof first?.detail === 'string' ? first.detail : first ? null : outcome.reason,
  };
}

/**
 * The loop of a lasso log (the shared format: `outcome.lasso.loopStart` N, the loop being events N+1 …
 * steps). Read here rather than trusted from a schema so that any version of the log layer works; a
 * lasso that does not fit the log is reported, not drawn.
 */
export function lassoOf(session: InspectSession): { lasso: LassoInfo | null; problem: string | null } {
  const raw = (session.end?.outcome as { lasso?: unknown } | undefined)?.lasso;
  if (raw === undefined) return { lasso: null, problem: null };
  const l = raw as { loopStart?: unknown; starving?: unknown; retries?: unknown } | null;
  const n = l?.loopStart;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n >= session.steps) {
    return { lasso: null, problem: `end record: outcome.lasso.loopStart must be a step 0 ≤ N < ${session.steps}, got ${JSON.stringify(n)}` };
  }
  return {
    lasso: { loopStart: n, first: n + 1, last: session.steps, starving: typeof l!.starving === 'string' ? l!.starving : '', retries: typeof l!.retries === 'string' ? l!.retries : '' },
    problem: null,
  };
}

export function summaryOf(session: InspectSession, log = 'main', steered: SteerInfo | null = null, trace: TraceView | null = null): Summary {
  const s = session.scenario;
  const { lasso, problem } = lassoOf(session);
  const warnings = [session.modelVersionMatches ? null : `log written by ${session.header.model}; replayed with ${MODEL_VERSION}`, problem].filter((w): w is string => w !== null);
  const explore = session.header.scheduler.kind === 'explore';
  const torn = session.torn;
  return {
    log,
    file: session.file,
    scenario: s.name,
    description: s.description,
    vmType: s.vm.type,
    steps: session.steps,
    live: session.live,
    outcome: session.end ? { status: session.end.outcome.status, reason: session.end.outcome.reason } : null,
    failure: failureOf(session),
    actors: session.model.actors.map((a) => ({ id: a.id, machine: a.machine.id })),
    warning: warnings.length > 0 ? warnings.join('; ') : null,
    scheduler: session.header.scheduler.kind,
    preemptions: explore ? session.preemptions.size : null,
    lasso,
    torn: torn
      ? {
          line: torn.line,
          notice: `${session.file}:${torn.line}: torn last line (the writer stopped mid-line); showing the ${session.steps} intact step${session.steps === 1 ? '' : 's'} before it. The run's end was not recorded, so there is no outcome.`,
        }
      : null,
    steered,
    trace: trace?.summary ?? null,
  };
}
