/**
 * Draws a laid-out statechart (statechartLayout.ts) as an SVG tree (svgTree.ts): rounded boxes for
 * states (double border for final ones), a dot and arrow for each compound state's initial state, rows
 * for internal transitions, arrows with their event labels. Colours are presentation attributes, so
 * the exported file looks right on its own; the inspector's stylesheet overrides them for highlighting.
 *
 * `data-state` (a state id) and `data-transitions` (a JSON array of transition ids) tie each drawn
 * element back to the definition, so the inspector can light the active states and the step's transition.
 */
import { FONT_SIZE, LINE_H, type LayoutEdge, type LayoutState, type StatechartLayout } from './statechartGeometry.ts';
import { el, type SvgEl } from './svgTree.ts';

export const FONT_FAMILY = "'DejaVu Sans Mono', 'Menlo', 'Consolas', monospace";
const ACTIVE_FILL = '#fff3c4';
const ACTIVE_STROKE = '#b7791f';
const TAKEN = '#c53030';

export interface Highlight {
  active?: ReadonlySet<string>;
  taken?: ReadonlySet<string>;
}

const ids = (list: readonly string[]) => JSON.stringify(list);

function stateEls(s: LayoutState, h: Highlight, out: SvgEl[], depth: number): void {
  const active = h.active?.has(s.id) ?? false;
  const cls = ['state', `state-${s.type}`, depth === 0 ? 'state-root' : '', active ? 'active' : ''].filter(Boolean).join(' ');
  const box: (SvgEl | null)[] = [
    el('rect', { x: s.x, y: s.y, width: s.width, height: s.height, rx: 6, fill: active ? ACTIVE_FILL : depth === 0 ? '#fafafa' : '#ffffff', stroke: active ? ACTIVE_STROKE : '#4a5568', 'stroke-width': active ? 2 : 1 }),
    s.type === 'final' ? el('rect', { x: s.x + 3, y: s.y + 3, width: s.width - 6, height: s.height - 6, rx: 4, fill: 'none', stroke: '#4a5568' }) : null,
    el('text', { x: s.x + 12, y: s.y + 15, 'font-weight': 'bold', class: 'state-title' }, s.key),
  ];
  s.rows.forEach((r, i) => {
    const taken = r.transitionIds.some((t) => h.taken?.has(t));
    box.push(el('text', { x: s.x + 12, y: s.y + 22 + (i + 1) * LINE_H - 3, class: taken ? 'row taken' : 'row', fill: taken ? TAKEN : '#2d3748', 'data-transitions': ids(r.transitionIds) }, r.text));
  });
  if (s.children.length > 0 || s.rows.length > 0) {
    box.push(el('line', { x1: s.x, y1: s.y + 21, x2: s.x + s.width, y2: s.y + 21, stroke: '#cbd5e0' }));
  }
  out.push(el('g', { class: cls, 'data-state': s.id }, ...box));
  if (s.initial) out.push(el('circle', { cx: s.initial.x, cy: s.initial.y, r: 5, fill: '#2d3748', class: 'initial' }));
  for (const c of s.children) stateEls(c, h, out, depth + 1);
}

function pathOf(points: readonly { x: number; y: number }[]): string {
  return points.map((p, i) => `${i === 0 ? 'M' : 'L'}${Math.round(p.x * 10) / 10},${Math.round(p.y * 10) / 10}`).join(' ');
}

function edgeEl(e: LayoutEdge, h: Highlight): SvgEl {
  const taken = e.transitionIds.some((t) => h.taken?.has(t));
  const colour = taken ? TAKEN : '#4a5568';
  const children: SvgEl[] = [
    el('path', { d: pathOf(e.points), fill: 'none', stroke: colour, 'stroke-width': taken ? 2.5 : 1.2, 'marker-end': taken ? 'url(#tdxsim-arrow-taken)' : 'url(#tdxsim-arrow)' }),
  ];
  if (e.label) {
    const l = e.label;
    children.push(el('rect', { x: l.x - 1, y: l.y, width: l.width + 2, height: l.height, fill: '#ffffff', 'fill-opacity': 0.85, class: 'edge-label-bg' }));
    l.rows.forEach((r, i) => {
      const t = r.transitionIds.some((x) => h.taken?.has(x));
      children.push(el('text', { x: l.x + 2, y: l.y + (i + 1) * LINE_H - 3, class: t ? 'edge-label taken' : 'edge-label', fill: t ? TAKEN : '#2b6cb0', 'data-transitions': ids(r.transitionIds) }, r.text));
    });
  }
  return el('g', { class: taken ? 'edge taken' : 'edge', 'data-transitions': ids(e.transitionIds) }, ...children);
}

function marker(id: string, colour: string): SvgEl {
  return el('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, el('path', { d: 'M0,0 L10,5 L0,10 z', fill: colour }));
}

export function renderStatechart(layout: StatechartLayout, h: Highlight = {}): SvgEl {
  const states: SvgEl[] = [];
  stateEls(layout.root, h, states, 0);
  return el(
    'svg',
    {
      xmlns: 'http://www.w3.org/2000/svg',
      viewBox: `0 0 ${layout.width} ${layout.height}`,
      width: layout.width,
      height: layout.height,
      'font-family': FONT_FAMILY,
      'font-size': FONT_SIZE,
      class: 'statechart',
      'data-machine': layout.machineId,
    },
    el('title', {}, `${layout.machineId} statechart`),
    el('defs', {}, marker('tdxsim-arrow', '#4a5568'), marker('tdxsim-arrow-taken', TAKEN)),
    el('g', { class: 'states' }, ...states),
    el('g', { class: 'edges' }, ...layout.edges.map((e) => edgeEl(e, h))),
  );
}
