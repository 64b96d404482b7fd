/**
 * Laid-out statecharts of a model's machines, computed once per machine (ELK takes a moment) and shared;
 * and the same with the inactive compound states collapsed (chartCollapse.ts), once per set of expanded
 * states, since the page asks again whenever the active region changes.
 */
import type { AnyStateMachine } from 'xstate';
import { allStates, statechartOf } from '../export/statechart.ts';
import { layoutStatechart, type StatechartLayout } from '../export/statechartLayout.ts';
import type { CollapsedChart, StatechartsResponse } from './api.ts';
import type { Model } from '../runtime/world.ts';
import { collapseChart } from './chartCollapse.ts';

const cache = new WeakMap<AnyStateMachine, Promise<StatechartLayout>>();
const collapsedCache = new WeakMap<AnyStateMachine, Map<string, Promise<CollapsedChart>>>();
/** Collapsed layouts kept per machine: a few dozen active regions cover any real session. */
const MAX_COLLAPSED = 48;

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

/** Unknown state ids are a RangeError naming the first one. */
export function collapsedLayoutOf(machine: AnyStateMachine, expand: readonly string[]): Promise<CollapsedChart> {
  const chart = statechartOf(machine);
  const known = new Set(allStates(chart).map((s) => s.id));
  const unknown = expand.find((id) => !known.has(id));
  if (unknown !== undefined) throw new RangeError(`${machine.id} has no state ${JSON.stringify(unknown.slice(0, 80))}`);
  const key = [...new Set(expand)].sort().join('\n');
  let perMachine = collapsedCache.get(machine);
  if (!perMachine) collapsedCache.set(machine, (perMachine = new Map()));
  let p = perMachine.get(key);
  if (!p) {
    const c = collapseChart(chart, new Set(expand));
    p = layoutStatechart(c.chart).then((layout) => ({ layout, collapsed: c.collapsed }));
    if (perMachine.size >= MAX_COLLAPSED) perMachine.delete(perMachine.keys().next().value!);
    perMachine.set(key, p);
  } else {
    // Most recently used last.
    perMachine.delete(key);
    perMachine.set(key, p);
  }
  return p;
}
