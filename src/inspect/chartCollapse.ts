/**
 * A statechart reduced to its active region: every compound state that is not expanded (the page expands
 * the ones on the active path, plus any the user opened) is drawn as one box, its inside left out. KVM's
 * vCPU machine has 64 states over 4000 × 4000 px; with its EPT-violation handler and init sequences
 * collapsed, the state the vCPU is in and the arrows around it fit a pane.
 *
 * Arrows into or out of a collapsed state's inside are drawn to or from the collapsed box, keeping their
 * transition ids, so the transition a step took is still marked; arrows wholly inside it disappear. The
 * box says how much it hides in a row of its own (a pseudo-transition that no step ever takes).
 */
import { allStates, type ChartState, type ChartTransition, type Statechart } from '../export/statechart.ts';

export const COLLAPSED_EVENT = 'collapsed';

export function collapseChart(chart: Statechart, expanded: ReadonlySet<string>): { chart: Statechart; collapsed: string[] } {
  /** Visible state each state is drawn as: itself, or its outermost collapsed ancestor. */
  const shownAs = new Map<string, string>();
  const collapsed: string[] = [];
  const visit = (s: ChartState, hiddenUnder: string | null, isRoot: boolean): ChartState => {
    shownAs.set(s.id, hiddenUnder ?? s.id);
    if (hiddenUnder !== null) {
      s.children.forEach((c) => visit(c, hiddenUnder, false));
      return s;
    }
    if (s.children.length === 0 || isRoot || expanded.has(s.id)) {
      return { ...s, children: s.children.map((c) => visit(c, null, false)) };
    }
    collapsed.push(s.id);
    s.children.forEach((c) => visit(c, s.id, false));
    const inside = allStates({ machineId: chart.machineId, root: s, edges: [] }).length - 1;
    const note: ChartTransition = { id: `${s.id}|${COLLAPSED_EVENT}|0`, source: s.id, targets: [], event: `▸ ${inside} states inside (collapsed)`, guard: null, actions: [] };
    return { ...s, children: [], initial: null, internal: [note, ...s.internal] };
  };
  const root = visit(chart.root, null, true);
  const edges: ChartTransition[] = [];
  for (const t of chart.edges) {
    const source = shownAs.get(t.source) ?? t.source;
    const targets = [...new Set(t.targets.map((x) => shownAs.get(x) ?? x))].filter((x) => x !== source || (t.source === source && t.targets.includes(source)));
    if (targets.length > 0) edges.push({ ...t, source, targets });
  }
  return { chart: { machineId: chart.machineId, root, edges }, collapsed };
}
