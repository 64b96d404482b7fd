/** Laid-out statecharts of a model's machines, computed once per machine (ELK takes a moment) and shared. */
import type { AnyStateMachine } from 'xstate';
import { statechartOf } from '../export/statechart.ts';
import { layoutStatechart, type StatechartLayout } from '../export/statechartLayout.ts';
import type { StatechartsResponse } from './api.ts';
import type { Model } from '../runtime/world.ts';


const cache = new WeakMap<AnyStateMachine, Promise<StatechartLayout>>();

export function layoutOf(machine: AnyStateMachine): Promise<StatechartLayout> {
  let p = cache.get(machine);
  if (!p) {
    p = layoutStatechart(statechartOf(machine));
    cache.set(machine, p);
  }
  return p;
}

export async function statechartsOf(model: Model): Promise<StatechartsResponse> {
  const machines: Record<string, StatechartLayout> = {};
  for (const a of model.actors) if (!(a.machine.id in machines)) machines[a.machine.id] = await layoutOf(a.machine);
  return { machines };
}
