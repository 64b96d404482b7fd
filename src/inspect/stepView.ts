/**
 * Everything the page shows for one step, computed on demand from the session's world at that step and
 * the one before: each actor's state and context (with changes marked), its page tables, the message
 * delivered and the transitions it triggered, and the messages still in flight.
 */
import { statePath } from '../session/stateView.ts';
import { formatFields } from '../session/format.ts';
import { activeStateIds } from '../export/statechart.ts';
import { messageLabel } from '../export/messageLabel.ts';
import type { ActorStep, EventRow, StepView } from './api.ts';
import { contextTree } from './contextTree.ts';
import { pageTables } from './pageTables.ts';
import { stateTables } from './stateTables.ts';
import type { InspectSession } from './session.ts';
import { transitionsTaken } from './transitionTaken.ts';

export function eventRow(session: InspectSession, seq: number): EventRow {
  const ev = session.event(seq);
  const t = session.textOf(seq);
  const preemption = session.header.scheduler.kind === 'explore' ? session.preemptionAt(seq) : null;
  return { seq, from: ev.from, to: ev.to, kind: ev.kind, name: ev.name, label: t.label, fields: t.fields, cause: ev.cause, preemption };
}

/**
 * `detail` names the actor whose context and page tables are included (null: the step's receiver, or the
 * first actor at step 0); the others come with their state only, which keeps a step small however large
 * the contexts grow.
 */
export function stepView(session: InspectSession, n: number, detail: string | null = null): StepView {
  const { before: prev, after: world } = n > 0 ? session.around(n) : { before: session.worldAt(0), after: session.worldAt(0) };
  const msg = n > 0 ? session.messageAt(n) : null;
  const detailed = detail ?? msg?.to ?? session.model.actors[0]?.id;
  const contexts = (id: string) => {
    const i = session.model.indexOf.get(id);
    if (i === undefined) return undefined;
    return { now: world.snapshots[i]!.context as Record<string, unknown>, before: prev.snapshots[i]!.context as Record<string, unknown> };
  };
  const vcpus = session.model.actors.filter((a) => a.id.startsWith('hw.cpu')).length;
  const actors: ActorStep[] = session.model.actors.map((a, i) => {
    const snap = world.snapshots[i]!;
    const before = prev.snapshots[i]!;
    const full = a.id === detailed;
    return {
      id: a.id,
      machine: a.machine.id,
      state: statePath(snap.value),
      active: activeStateIds(a.machine, snap.value),
      status: snap.status,
      changed: snap !== before,
      detailed: full,
      context: full ? contextTree(snap.context, before.context) : [],
      tables: full ? pageTables(snap.context, before.context, session.fmt) : [],
      views: full ? stateTables(a.id, contexts, vcpus) : [],
    };
  });
  let taken: StepView['taken'] = null;
  if (msg !== null) {
    const i = session.model.indexOf.get(msg.to)!;
    taken = { actor: msg.to, transitions: transitionsTaken(session.model.actors[i]!.machine, prev.snapshots[i]!, msg) };
  }
  return {
    step: n,
    steps: session.steps,
    event: n > 0 ? eventRow(session, n) : null,
    payload: msg ? contextTree(msg.payload, msg.payload) : [],
    effects: n > 0 ? session.effectsOf(n) : [],
    taken,
    actors,
    pending: world.pending.map((m) => ({ from: m.from, to: m.to, label: messageLabel(m), fields: formatFields(m.payload, session.fmt), cause: m.cause })),
    failures: world.failures.filter((f) => f.seq === n).map((f) => ({ actor: f.actor, reason: f.reason, detail: f.detail })),
  };
}
