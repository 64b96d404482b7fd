/**
 * The selected actor's statechart: the server's ELK layout drawn by the same renderer as the SVG export
 * (src/export/statechartSvg.ts), turned into DOM nodes, with the active states and the transition just
 * taken highlighted through CSS classes.
 */
import type { StatechartLayout } from '../src/export/statechartGeometry.ts';
import { renderStatechart } from '../src/export/statechartSvg.ts';
import type { SvgEl } from '../src/export/svgTree.ts';
import { clear, h, SVG_NS } from './dom.ts';

interface Drawn {
  svg: SVGSVGElement;
  states: Map<string, Element>;
  transitions: Map<string, Element[]>;
  /** Box of every state in chart coordinates, to scroll the active one into view. */
  boxes: Map<string, { x: number; y: number; width: number; height: number }>;
  width: number;
}

/** Charts wider than this many panes start at full size (scrolled to the active state) rather than fitted. */
const FIT_LIMIT = 1.6;

function toDom(n: SvgEl, d: Pick<Drawn, 'states' | 'transitions'>): Element {
  const el = document.createElementNS(SVG_NS, n.tag);
  for (const [k, v] of Object.entries(n.attrs)) el.setAttribute(k, String(v));
  for (const c of n.children) el.append(typeof c === 'string' ? document.createTextNode(c) : toDom(c, d));
  const state = n.attrs['data-state'];
  if (typeof state === 'string') d.states.set(state, el);
  const ts = n.attrs['data-transitions'];
  if (typeof ts === 'string') {
    for (const id of JSON.parse(ts) as string[]) d.transitions.set(id, [...(d.transitions.get(id) ?? []), el]);
  }
  return el;
}

export class StatechartView {
  readonly element: HTMLElement;
  #canvas: HTMLElement;
  #title: HTMLElement;
  #layouts: Record<string, StatechartLayout> | null = null;
  #drawn = new Map<string, Drawn>();
  #shown: string | null = null;
  /** The user's choice; null: fit small charts, show big ones at full size. */
  #fitChoice: boolean | null = null;
  #fitButton: HTMLButtonElement;
  #lastActive: readonly string[] = [];

  constructor() {
    this.#title = h('span', { class: 'chart-title' }, 'statechart');
    this.#fitButton = h('button', { type: 'button', class: 'small', id: 'chart-fit', title: 'Fit the chart to the pane, or show it at full size' }, 'full size');
    this.#fitButton.addEventListener('click', () => {
      this.#fitChoice = !this.#fitted();
      this.#applyFit();
    });
    this.#canvas = h('div', { class: 'chart-canvas' }, h('p', { class: 'muted' }, 'laying out the statecharts…'));
    this.element = h('section', { id: 'statechart', 'aria-label': 'statechart' }, h('div', { class: 'pane-head' }, this.#title, this.#fitButton), this.#canvas);
  }

  #fitted(): boolean {
    if (this.#fitChoice !== null) return this.#fitChoice;
    const d = this.#shown ? this.#drawn.get(this.#shown) : undefined;
    return !d || d.width <= this.#canvas.clientWidth * FIT_LIMIT;
  }

  #applyFit(): void {
    const fit = this.#fitted();
    this.#canvas.classList.toggle('fit', fit);
    this.#fitButton.textContent = fit ? 'full size' : 'fit';
    if (!fit) this.#scrollToActive();
  }

  /** At full size, bring the innermost active state to the middle of the pane. */
  #scrollToActive(): void {
    const d = this.#shown ? this.#drawn.get(this.#shown) : undefined;
    const id = this.#lastActive.at(-1);
    const box = id ? d?.boxes.get(id) : undefined;
    if (!box) return;
    const c = this.#canvas;
    const inView = box.x >= c.scrollLeft && box.y >= c.scrollTop && box.x + box.width <= c.scrollLeft + c.clientWidth && box.y + box.height <= c.scrollTop + c.clientHeight;
    if (inView) return;
    c.scrollLeft = Math.max(0, box.x + box.width / 2 - c.clientWidth / 2);
    c.scrollTop = Math.max(0, box.y + box.height / 2 - c.clientHeight / 2);
  }

  setLayouts(layouts: Record<string, StatechartLayout>): void {
    this.#layouts = layouts;
  }

  showError(msg: string): void {
    clear(this.#canvas);
    this.#canvas.append(h('p', { class: 'error' }, `statecharts unavailable: ${msg}`));
  }

  /** Show `machine` for `actor` with `active` states lit and `taken` transitions marked. */
  show(actor: string, machine: string, active: readonly string[], taken: readonly string[]): void {
    if (this.#layouts === null) return;
    const layout = this.#layouts[machine];
    if (!layout) return;
    let d = this.#drawn.get(machine);
    if (!d) {
      const maps = { states: new Map<string, Element>(), transitions: new Map<string, Element[]>() };
      const svg = toDom(renderStatechart(layout), maps) as SVGSVGElement;
      const boxes = new Map<string, { x: number; y: number; width: number; height: number }>();
      const index = (st: StatechartLayout['root']) => {
        boxes.set(st.id, st);
        st.children.forEach(index);
      };
      index(layout.root);
      d = { svg, ...maps, boxes, width: layout.width };
      this.#drawn.set(machine, d);
    }
    const switched = this.#shown !== machine;
    if (switched) {
      clear(this.#canvas);
      this.#canvas.append(d.svg);
      this.#shown = machine;
    }
    this.#title.textContent = `${actor} · ${machine}`;
    for (const el of d.svg.querySelectorAll('.active, .taken')) el.classList.remove('active', 'taken');
    for (const id of active) d.states.get(id)?.classList.add('active');
    for (const id of taken) for (const el of d.transitions.get(id) ?? []) el.classList.add('taken');
    this.#lastActive = active;
    if (switched) this.#applyFit();
    else if (!this.#fitted()) this.#scrollToActive();
  }
}
