/**
 * Automatic layout of a statechart with elkjs (ELK's layered algorithm, compound nodes laid out with their
 * children: `hierarchyHandling: INCLUDE_CHILDREN`), into plain positioned data that statechartSvg.ts draws.
 * The inspector computes it on the server once per machine and the browser draws the same data, so the
 * SVG export and the page show the same picture.
 *
 * Text is measured by character count: every label is drawn in a monospace font (statechartSvg.ts), so
 * CHAR_W × length is its width. Arrows between the same two states are merged into one, with one label
 * line per transition (the TDP MMU's three lock events share one arrow).
 */
import { createRequire } from 'node:module';
import type { ELK, ElkExtendedEdge, ElkLabel, ElkNode } from 'elkjs/lib/elk-api.js';
import { transitionLabel, type ChartState, type ChartTransition, type Statechart } from './statechart.ts';
import { CHAR_W, LINE_H, type LayoutEdge, type LayoutRow, type LayoutState, type StatechartLayout } from './statechartGeometry.ts';

export type { LayoutEdge, LayoutLabel, LayoutRow, LayoutState, Point, StatechartLayout } from './statechartGeometry.ts';

const TITLE_H = 22;
const PAD = 12;
const INITIAL_R = 5;

const textWidth = (s: string) => Math.ceil(s.length * CHAR_W);

function rowsOf(s: ChartState): LayoutRow[] {
  return [
    ...s.internal.map((t) => ({ text: transitionLabel(t, { actions: true }), transitionIds: [t.id] })),
    ...s.fromAnyState.map((t) => ({ text: `${transitionLabel(t)} → ${t.targets.map((x) => x.slice(x.lastIndexOf('.') + 1)).join(', ')}`, transitionIds: [t.id] })),
  ];
}

function headerHeight(rows: LayoutRow[]): number {
  return TITLE_H + rows.length * LINE_H + (rows.length > 0 ? 4 : 0);
}

function headerWidth(s: ChartState, rows: LayoutRow[]): number {
  return Math.max(textWidth(s.key) + 2 * PAD, ...rows.map((r) => textWidth(r.text) + 2 * PAD), 72);
}

const initialId = (compoundId: string) => `${compoundId}#initial`;

interface Merged {
  id: string;
  source: string;
  target: string;
  transitions: ChartTransition[];
}

function mergeEdges(chart: Statechart): Merged[] {
  const byPair = new Map<string, Merged>();
  for (const t of chart.edges) {
    for (const target of t.targets) {
      const key = `${t.source}->${target}`;
      const m = byPair.get(key) ?? { id: key, source: t.source, target, transitions: [] };
      m.transitions.push(t);
      byPair.set(key, m);
    }
  }
  return [...byPair.values()];
}

function elkNode(s: ChartState, edges: ElkExtendedEdge[], layered: Record<string, string>): ElkNode {
  const rows = rowsOf(s);
  if (s.children.length === 0) {
    return { id: s.id, width: headerWidth(s, rows), height: headerHeight(rows) + (rows.length > 0 ? 2 : 4) };
  }
  const children = s.children.map((c) => elkNode(c, edges, layered));
  if (s.initial !== null) {
    children.unshift({ id: initialId(s.id), width: 2 * INITIAL_R, height: 2 * INITIAL_R });
    edges.push({ id: `${initialId(s.id)}->${s.initial}`, sources: [initialId(s.id)], targets: [s.initial] });
  }
  return {
    id: s.id,
    children,
    layoutOptions: {
      ...layered,
      'elk.padding': `[top=${headerHeight(rows) + 6},left=${PAD},bottom=${PAD},right=${PAD}]`,
      'elk.nodeSize.constraints': '[MINIMUM_SIZE]',
      'elk.nodeSize.minimum': `(${headerWidth(s, rows)}, ${headerHeight(rows) + 20})`,
    },
  };
}

/** Set on every compound state too: ELK reads most layered options from the node whose children it places. */
const LAYERED_OPTIONS: Record<string, string> = {
  'elk.algorithm': 'layered',
  'elk.direction': 'DOWN',
  'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
  'elk.edgeRouting': 'ORTHOGONAL',
  'elk.layered.spacing.nodeNodeBetweenLayers': '34',
  'elk.spacing.nodeNode': '26',
  'elk.spacing.edgeNode': '14',
  'elk.spacing.edgeEdge': '10',
  'elk.spacing.edgeLabel': '3',
  'elk.layered.cycleBreaking.strategy': 'DEPTH_FIRST',
  // Narrower than the default placement for the big machines (KVM's vCPU: about 2/3 of the width).
  'elk.layered.nodePlacement.strategy': 'NETWORK_SIMPLEX',
  'elk.layered.compaction.postCompaction.strategy': 'EDGE_LENGTH',
};

/**
 * ELK's post-compaction gives up on some collapsed charts ("Invalid hitboxes for scanline constraint
 * calculation", seen on KVM's vCPU with every compound state closed): such a chart is laid out again
 * without it, a little wider.
 */
const WITHOUT_POST_COMPACTION = { ...LAYERED_OPTIONS, 'elk.layered.compaction.postCompaction.strategy': 'NONE' };

const graphOptions = (layered: Record<string, string>) => ({
  ...layered,
  'elk.json.edgeCoords': 'ROOT',
  'elk.json.shapeCoords': 'ROOT',
  'elk.padding': '[top=8,left=8,bottom=8,right=8]',
});

// elkjs is CommonJS whose typings declare an ES default export; loading it with require sidesteps the
// mismatch. The bundled build runs ELK in-process (no worker thread).
const ElkConstructor = createRequire(import.meta.url)('elkjs/lib/elk.bundled.js') as new () => ELK;
let elk: ELK | null = null;

export async function layoutStatechart(chart: Statechart): Promise<StatechartLayout> {
  elk ??= new ElkConstructor();
  const merged = mergeEdges(chart);
  const labelRows = new Map<string, LayoutRow[]>();
  const graphWith = (layered: Record<string, string>): ElkNode => {
    const edges: ElkExtendedEdge[] = [];
    const rootNode = elkNode(chart.root, edges, layered);
    for (const m of merged) {
      const rows = m.transitions.map((t) => ({ text: transitionLabel(t), transitionIds: [t.id] })).filter((r) => r.text !== '');
      labelRows.set(m.id, rows);
      const labels: ElkLabel[] = rows.length === 0 ? [] : [{ id: `${m.id}#label`, text: rows.map((r) => r.text).join('\n'), width: Math.max(...rows.map((r) => textWidth(r.text))) + 4, height: rows.length * LINE_H }];
      edges.push({ id: m.id, sources: [m.source], targets: [m.target], labels });
    }
    return { id: '#graph', layoutOptions: graphOptions(layered), children: [rootNode], edges };
  };
  let out: ElkNode;
  try {
    out = await elk.layout(graphWith(LAYERED_OPTIONS));
  } catch (e) {
    if (!/Invalid hitboxes/.test(String((e as Error).message ?? e))) throw e;
    out = await elk.layout(graphWith(WITHOUT_POST_COMPACTION));
  }

  const transitionsOf = new Map(merged.map((m) => [m.id, m.transitions.map((t) => t.id)]));
  const chartStates = new Map<string, ChartState>();
  const index = (s: ChartState) => {
    chartStates.set(s.id, s);
    s.children.forEach(index);
  };
  index(chart.root);

  const toState = (n: ElkNode): LayoutState => {
    const s = chartStates.get(n.id)!;
    const kids = (n.children ?? []).filter((c) => chartStates.has(c.id));
    const dot = (n.children ?? []).find((c) => c.id === initialId(n.id));
    return {
      id: s.id,
      key: s.key,
      type: s.type,
      x: n.x ?? 0,
      y: n.y ?? 0,
      width: n.width ?? 0,
      height: n.height ?? 0,
      rows: rowsOf(s),
      children: kids.map(toState),
      initial: dot ? { x: (dot.x ?? 0) + INITIAL_R, y: (dot.y ?? 0) + INITIAL_R } : null,
    };
  };
  const root = toState(out.children![0]!);
  const layoutEdges: LayoutEdge[] = (out.edges ?? []).map((e: ElkExtendedEdge) => {
    const sec = e.sections?.[0];
    const points = sec ? [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint] : [];
    const l = e.labels?.[0];
    const rows = labelRows.get(e.id) ?? [];
    return {
      id: e.id,
      source: e.sources[0]!,
      target: e.targets[0]!,
      transitionIds: transitionsOf.get(e.id) ?? [],
      points: points.map((p) => ({ x: p.x, y: p.y })),
      label: l && rows.length > 0 ? { x: l.x ?? 0, y: l.y ?? 0, width: l.width ?? 0, height: l.height ?? 0, rows } : null,
    };
  });
  return { machineId: chart.machineId, width: Math.ceil(out.width ?? 0), height: Math.ceil(out.height ?? 0), root, edges: layoutEdges };
}
