/**
 * An actor's statechart as plain data, read from its XState definition (`machine.root`): the state tree,
 * and every transition with its event, guard and actions. The Mermaid and SVG exports and the inspector
 * all draw from this one reading, so they agree on ids: a state's id is XState's (`kvmVcpu.entering`), a
 * transition's is `<source id>|<event>|<index among the source's transitions for that event>`, the event
 * being `always` for eventless ones. The inspector marks the transition a step took by that id.
 *
 * Transitions fall into three groups, because they are drawn differently:
 * - `edges`: to another state (or the same one, re-entered): arrows;
 * - `internal`: no target (the state stays, actions run, e.g. the TDP MMU answering a walk): rows inside
 *   the state's box, as UML draws internal transitions;
 * - `fromAnyState`: from a compound state to one of its own descendants (the guest's `#DF → panicked` on
 *   the machine itself): rows inside the compound's box, since an arrow from a box into itself says less.
 */
import type { AnyStateMachine, AnyStateNode } from 'xstate';

export type ChartStateType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

export interface ChartTransition {
  id: string;
  source: string;
  /** Target state ids; empty for an internal transition. */
  targets: string[];
  /** The event name, `*` for the wildcard, `always` for an eventless transition. */
  event: string;
  guard: string | null;
  actions: string[];
}

export interface ChartState {
  id: string;
  /** The state's own key (`entering`); the machine id for the root. */
  key: string;
  type: ChartStateType;
  /** Id of the initial child of a compound state. */
  initial: string | null;
  children: ChartState[];
  internal: ChartTransition[];
  fromAnyState: ChartTransition[];
}

export interface Statechart {
  machineId: string;
  root: ChartState;
  edges: ChartTransition[];
}

/** `veIsMmio`, `and(isTd, !atHlt)`: XState keeps named guards as strings and combinators as functions. */
export function guardText(g: unknown): string {
  if (typeof g === 'string') return g;
  if (typeof g === 'function') {
    const f = g as { guards?: unknown[]; check?: { name?: string }; name?: string };
    const parts = (f.guards ?? []).map(guardText);
    switch (f.check?.name) {
      case 'checkAnd':
        return `and(${parts.join(', ')})`;
      case 'checkOr':
        return `or(${parts.join(', ')})`;
      case 'checkNot':
        return `!${parts[0] ?? '?'}`;
      default:
        return f.name && f.name !== 'anonymous' ? f.name : 'guard';
    }
  }
  if (g !== null && typeof g === 'object' && typeof (g as { type?: unknown }).type === 'string') return (g as { type: string }).type;
  return 'guard';
}

/** Named actions only: inline `assign`/`emit` objects say nothing a reader can look up. */
function actionNames(actions: readonly unknown[]): string[] {
  return actions.flatMap((a) => (typeof a === 'string' ? [a] : a !== null && typeof a === 'object' && typeof (a as { type?: unknown }).type === 'string' && !(a as { type: string }).type.startsWith('xstate.') ? [(a as { type: string }).type] : []));
}

function chartType(n: AnyStateNode): ChartStateType {
  if (n.type === 'compound' && Object.keys(n.states).length === 0) return 'atomic';
  return n.type as ChartStateType;
}

function isAncestorOf(a: AnyStateNode, b: AnyStateNode): boolean {
  for (let p = b.parent; p; p = p.parent) if (p === a) return true;
  return false;
}

export function transitionId(source: string, event: string, index: number): string {
  return `${source}|${event}|${index}`;
}

/** Reads the machine's definition; pure and cheap (the state tree is already built by XState). */
export function statechartOf(machine: AnyStateMachine): Statechart {
  const edges: ChartTransition[] = [];
  const visit = (n: AnyStateNode): ChartState => {
    const internal: ChartTransition[] = [];
    const fromAnyState: ChartTransition[] = [];
    const add = (t: { target?: readonly AnyStateNode[] | undefined; guard?: unknown; actions: readonly unknown[] }, event: string, index: number) => {
      const targets = (t.target ?? []).map((x) => x.id);
      const ct: ChartTransition = { id: transitionId(n.id, event, index), source: n.id, targets, event, guard: t.guard === undefined ? null : guardText(t.guard), actions: actionNames(t.actions) };
      if (targets.length === 0) internal.push(ct);
      else if ((t.target ?? []).every((x) => isAncestorOf(n, x))) fromAnyState.push(ct);
      else edges.push(ct);
    };
    for (const [event, list] of n.transitions) list.forEach((t, i) => add(t, event, i));
    (n.always ?? []).forEach((t, i) => add(t, 'always', i));
    const children = Object.values(n.states).map(visit);
    const initial = n.initial?.target?.[0]?.id ?? null;
    return { id: n.id, key: n.parent ? n.key : machine.id, type: chartType(n), initial: children.length > 0 ? initial : null, children, internal, fromAnyState };
  };
  const root = visit(machine.root);
  return { machineId: machine.id, root, edges };
}

/** `VMRESUME [programEnded] / recordVe`: the label a reader of the machine's source recognises. */
export function transitionLabel(t: ChartTransition, opts: { actions?: boolean } = {}): string {
  let s = t.event === 'always' ? (t.guard === null ? 'always' : '') : t.event;
  if (t.guard !== null) s += `${s ? ' ' : ''}[${t.guard}]`;
  if (opts.actions && t.actions.length > 0) s += ` / ${t.actions.join(', ')}`;
  return s;
}

/** Every state of the chart, depth first (root included). */
export function allStates(chart: Statechart): ChartState[] {
  const out: ChartState[] = [];
  const walk = (s: ChartState) => {
    out.push(s);
    s.children.forEach(walk);
  };
  walk(chart.root);
  return out;
}

/**
 * Ids of the active states for a snapshot value (`"executing"`, `{ handlingEptViolation: "walking" }`),
 * ancestors included, root first.
 */
export function activeStateIds(machine: AnyStateMachine, value: unknown): string[] {
  const ids = [machine.root.id];
  const walk = (node: AnyStateNode, v: unknown) => {
    if (typeof v === 'string') {
      const child = node.states[v];
      if (child) ids.push(child.id);
      return;
    }
    if (v !== null && typeof v === 'object') {
      for (const [k, sub] of Object.entries(v as Record<string, unknown>)) {
        const child = node.states[k];
        if (!child) continue;
        ids.push(child.id);
        walk(child, sub);
      }
    }
  };
  walk(machine.root, value);
  return ids;
}
