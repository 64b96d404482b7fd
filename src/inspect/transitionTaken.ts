/**
 * Which statechart transitions an actor took at a step, as statechart.ts ids, so the inspector can mark
 * them. The transition selected by the event comes from XState itself (`machine.getTransitionData`, guards
 * evaluated on the snapshot before the step). Eventless (`always`) transitions that followed are read off
 * XState's microsteps: for each microstep, the first eventless transition of a state active before it
 * whose targets are all active after it.
 */
import { getMicrosteps, type AnyMachineSnapshot, type AnyStateMachine, type AnyStateNode } from 'xstate';
import type { Message } from '../protocol/messages.ts';
import { activeStateIds, transitionId } from '../export/statechart.ts';

function stateNode(machine: AnyStateMachine, id: string): AnyStateNode | null {
  try {
    return machine.getStateNodeById(id);
  } catch {
    return null;
  }
}

export function transitionsTaken(machine: AnyStateMachine, before: AnyMachineSnapshot, msg: Message): string[] {
  const event = { type: msg.name, msg } as { type: string };
  const ids: string[] = [];
  try {
    for (const t of machine.getTransitionData(before as never, event as never)) {
      const list = t.source.transitions.get(t.eventType) ?? [];
      ids.push(transitionId(t.source.id, t.eventType, Math.max(0, list.indexOf(t))));
    }
    const values = getMicrosteps(machine, before as never, event as never).map(([s]) => (s as AnyMachineSnapshot).value);
    for (let k = 1; k < values.length; k++) {
      const was = activeStateIds(machine, values[k - 1]);
      const now = new Set(activeStateIds(machine, values[k]));
      found: for (const id of was.slice().reverse()) {
        const node = stateNode(machine, id);
        for (const [i, t] of (node?.always ?? []).entries()) {
          if ((t.target ?? []).every((x) => now.has(x.id))) {
            ids.push(transitionId(id, 'always', i));
            break found;
          }
        }
      }
    }
  } catch {
    // Marking is a courtesy: a machine XState cannot re-run outside the runtime just shows no marks.
  }
  return ids;
}
