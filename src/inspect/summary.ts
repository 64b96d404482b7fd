/** What the page needs once: the scenario, the actors, the outcome, and where a failed run failed. */
import { MODEL_VERSION } from '../version.ts';
import type { FailureInfo, Summary } from './api.ts';
import type { InspectSession } from './session.ts';

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

export function summaryOf(session: InspectSession): Summary {
  const s = session.scenario;
  return {
    file: session.file,
    scenario: s.name,
    description: s.description,
    vmType: s.vm.type,
    steps: session.steps,
    live: session.live,
    outcome: session.end ? { status: session.end.outcome.status, reason: session.end.outcome.reason } : null,
    failure: failureOf(session),
    actors: session.model.actors.map((a) => ({ id: a.id, machine: a.machine.id })),
    warning: session.modelVersionMatches ? null : `log written by ${session.header.model}; replayed with ${MODEL_VERSION}`,
  };
}
