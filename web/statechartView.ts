/**
 * The selected actor's statechart: the server's ELK layout drawn by the same renderer as the SVG export
 * (src/export/statechartSvg.ts), turned into DOM nodes, with the active states and the transition just
 * taken highlighted through CSS classes.
 *
 * Big machines (KVM's vCPU: 64 states, 4000 px square) are shown by their active region: the compound
 * states off the active path are collapsed into one box each (laid out again on the server; a click on a
 * collapsed box opens it, a click on a box opened that way closes it), and the pane zooms (wheel, + −,
 * fit, 1:1) and pans (drag) over the chart. Whenever the step changes, the innermost active state is
 * brought into view.
 */
import type { StatechartLayout } from '../src/export/statechartGeometry.ts';
import { renderStatechart } from '../src/export/statechartSvg.ts';
import type { SvgEl } from '../src/export/svgTree.ts';
import { api } from './api.ts';
import { clear, h, SVG_NS } from './dom.ts';

type Box = { x: number; y: number; width: number; height: number };
type ShowArgs = { actor: string; machine: string; active: readonly string[]; taken: readonly string[] };

interface Drawn {
  svg: SVGSVGElement;
  layout: StatechartLayout;
  states: Map<string, Element>;
  transitions: Map<string, Element[]>;
  /** Box of every state in chart coordinates. */
  boxes: Map<string, Box>;
  collapsed: Set<string>;
}

/** Charts with more states than this start collapsed to their active region. */
const COLLAPSE_OVER = 30;
const MIN_SCALE = 0.1;
const MAX_SCALE = 4;
/** Below this a fitted chart is too small to read: start at full size instead. */
const READABLE = 0.6;
const STEP = 1.25;

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

function countStates(s: StatechartLayout['root']): number {
  return 1 + s.children.reduce((n, c) => n + countStates(c), 0);
}

function compoundIds(s: StatechartLayout['root'], out = new Set<string>()): Set<string> {
  if (s.children.length > 0) out.add(s.id);
  s.children.forEach((c) => compoundIds(c, out));
  return out;
}

export class StatechartView {
  readonly element: HTMLElement;
  #canvas: HTMLElement;
  #title: HTMLElement;
  #zoomText: HTMLElement;
  #collapseBox: HTMLInputElement;
  #layouts: Record<string, StatechartLayout> | null = null;
  /** Drawn charts by machine and expanded set (`kvmVcpu|full`, `kvmVcpu|a,b`). */
  #drawn = new Map<string, Drawn>();
  #pending = new Set<string>();
  #shown: Drawn | null = null;
  #shownMachine: string | null = null;
  #args: ShowArgs | null = null;
  /** Chart coordinates of the pane's top-left corner, and pixels per chart unit. */
  #view = { x: 0, y: 0, scale: 1 };
  #collapse = new Map<string, boolean>();
  #opened = new Map<string, Set<string>>();
  #onError: (msg: string) => void;

  constructor(onError: (msg: string) => void = () => {}) {
    this.#onError = onError;
    this.#title = h('span', { class: 'chart-title' }, 'statechart');
    const button = (id: string, label: string, title: string, act: () => void) => h('button', { type: 'button', class: 'small', id, title, 'aria-label': title, onclick: act }, label);
    this.#zoomText = h('span', { id: 'chart-zoom', class: 'muted' }, '100%');
    this.#collapseBox = h('input', { type: 'checkbox', id: 'chart-collapse' });
    this.#collapseBox.addEventListener('change', () => {
      if (this.#args) this.#collapse.set(this.#args.machine, this.#collapseBox.checked);
      this.#rerender();
    });
    const tools = h(
      'span',
      { class: 'chart-tools' },
      h('label', { class: 'muted', title: 'Collapse the compound states the actor is not in; click a collapsed box to open it' }, this.#collapseBox, ' active region only'),
      button('chart-zoom-out', '−', 'Zoom out', () => this.#zoomBy(1 / STEP)),
      this.#zoomText,
      button('chart-zoom-in', '+', 'Zoom in', () => this.#zoomBy(STEP)),
      button('chart-fit', 'fit', 'Fit the chart to the pane', () => this.#fit()),
      button('chart-1to1', '1:1', 'Full size, centred on the active state', () => this.#fullSize()),
    );
    this.#canvas = h('div', { class: 'chart-canvas', id: 'chart-canvas' }, h('p', { class: 'muted' }, 'laying out the statecharts…'));
    this.element = h('section', { id: 'statechart', 'aria-label': 'statechart' }, h('div', { class: 'pane-head' }, this.#title, tools), this.#canvas);
    this.#canvas.addEventListener('wheel', (e) => this.#wheel(e), { passive: false });
    this.#canvas.addEventListener('pointerdown', (e) => this.#drag(e));
    new ResizeObserver(() => this.#apply()).observe(this.#canvas);
  }

  setLayouts(layouts: Record<string, StatechartLayout>): void {
    this.#layouts = layouts;
  }

  showError(msg: string): void {
    clear(this.#canvas);
    this.#canvas.append(h('p', { class: 'error' }, `statecharts unavailable: ${msg}`));
  }

  #collapsing(machine: string): boolean {
    const choice = this.#collapse.get(machine);
    if (choice !== undefined) return choice;
    const full = this.#layouts?.[machine];
    return !!full && countStates(full.root) > COLLAPSE_OVER;
  }

  /** Show `machine` for `actor` with `active` states lit and `taken` transitions marked. */
  show(actor: string, machine: string, active: readonly string[], taken: readonly string[]): void {
    this.#args = { actor, machine, active, taken };
    this.#rerender();
  }

  #rerender(): void {
    const a = this.#args;
    const full = a && this.#layouts?.[a.machine];
    if (!a || !full) return;
    this.#title.textContent = `${a.actor} · ${a.machine}`;
    const collapse = this.#collapsing(a.machine);
    this.#collapseBox.checked = collapse;
    this.#collapseBox.disabled = compoundIds(full.root).size <= 1;
    if (!collapse) return this.#draw(this.#ensure(`${a.machine}|full`, full, []), a);
    const compounds = compoundIds(full.root);
    const opened = this.#opened.get(a.machine) ?? new Set<string>();
    const expand = [...new Set([...a.active.filter((id) => compounds.has(id)), ...opened])].sort();
    const key = `${a.machine}|${expand.join(',')}`;
    const have = this.#drawn.get(key);
    if (have) return this.#draw(have, a);
    if (!this.#pending.has(key)) {
      this.#pending.add(key);
      api.statechart(a.machine, expand).then(
        (r) => {
          this.#pending.delete(key);
          this.#ensure(key, r.layout, r.collapsed);
          if (this.#args?.machine === a.machine) this.#rerender();
        },
        (e: Error) => {
          this.#pending.delete(key);
          this.#onError(`statechart ${a.machine}: ${e.message}`);
        },
      );
    }
    // Until the new layout arrives, keep lighting what is drawn for this machine; another machine's
    // chart must not stay up under this one's title.
    if (this.#shown && this.#shownMachine === a.machine) this.#mark(this.#shown, a);
    else if (this.#shownMachine !== a.machine) {
      clear(this.#canvas);
      this.#canvas.append(h('p', { class: 'muted' }, `laying out ${a.machine}'s active region…`));
      this.#shown = null;
      this.#shownMachine = null;
    }
  }

  #ensure(key: string, layout: StatechartLayout, collapsed: readonly string[]): Drawn {
    let d = this.#drawn.get(key);
    if (d) return d;
    const maps = { states: new Map<string, Element>(), transitions: new Map<string, Element[]>() };
    const svg = toDom(renderStatechart(layout), maps) as SVGSVGElement;
    svg.removeAttribute('width');
    svg.removeAttribute('height');
    const boxes = new Map<string, Box>();
    const index = (st: StatechartLayout['root']) => {
      boxes.set(st.id, st);
      st.children.forEach(index);
    };
    index(layout.root);
    d = { svg, layout, ...maps, boxes, collapsed: new Set(collapsed) };
    for (const id of collapsed) d.states.get(id)?.classList.add('collapsed');
    this.#drawn.set(key, d);
    if (this.#drawn.size > 24) this.#drawn.delete(this.#drawn.keys().next().value!);
    return d;
  }

  #draw(d: Drawn, a: ShowArgs): void {
    const switched = this.#shownMachine !== a.machine;
    if (this.#shown !== d) {
      clear(this.#canvas);
      this.#canvas.append(d.svg);
      this.#shown = d;
      this.#shownMachine = a.machine;
    }
    const opened = this.#opened.get(a.machine) ?? new Set<string>();
    for (const [id, el] of d.states) el.classList.toggle('opened', opened.has(id));
    this.#mark(d, a);
    if (switched) this.#initialView(d);
    this.#toActive();
    this.#apply();
  }

  #mark(d: Drawn, a: { active: readonly string[]; taken: readonly string[] }): void {
    for (const el of d.svg.querySelectorAll('.active, .taken')) el.classList.remove('active', 'taken');
    for (const id of a.active) d.states.get(id)?.classList.add('active');
    for (const id of a.taken) for (const el of d.transitions.get(id) ?? []) el.classList.add('taken');
  }

  #size(): { w: number; h: number } {
    return { w: Math.max(1, this.#canvas.clientWidth), h: Math.max(1, this.#canvas.clientHeight) };
  }

  #fitScale(d: Drawn): number {
    const { w, h: ht } = this.#size();
    return Math.min(1, (w - 8) / d.layout.width, (ht - 8) / d.layout.height);
  }

  #initialView(d: Drawn): void {
    // A chart that reads well fitted gets a pane its own height; a big one, half the window.
    const w = Math.max(1, this.#canvas.clientWidth);
    const across = Math.min(1, (w - 8) / d.layout.width);
    const half = Math.round(window.innerHeight * 0.5);
    this.#canvas.style.height = `${across >= READABLE ? Math.min(half, Math.max(120, Math.ceil(d.layout.height * across) + 12)) : half}px`;
    const fit = this.#fitScale(d);
    if (fit >= READABLE) this.#fit();
    else this.#view.scale = 1;
  }

  #fit(): void {
    const d = this.#shown;
    if (!d) return;
    const scale = Math.max(MIN_SCALE, this.#fitScale(d));
    const { w, h: ht } = this.#size();
    this.#view = { scale, x: d.layout.width / 2 - w / scale / 2, y: d.layout.height / 2 - ht / scale / 2 };
    this.#apply();
  }

  #fullSize(): void {
    this.#view.scale = 1;
    this.#toActive(true);
    this.#apply();
  }

  #zoomBy(f: number, at?: { x: number; y: number }): void {
    const { w, h: ht } = this.#size();
    const p = at ?? { x: w / 2, y: ht / 2 };
    const v = this.#view;
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, v.scale * f));
    // Keep the chart point under `p` where it is.
    const cx = v.x + p.x / v.scale;
    const cy = v.y + p.y / v.scale;
    this.#view = { scale, x: cx - p.x / scale, y: cy - p.y / scale };
    this.#apply();
  }

  #wheel(e: WheelEvent): void {
    if (!this.#shown) return;
    e.preventDefault();
    const r = this.#canvas.getBoundingClientRect();
    this.#zoomBy(Math.exp(-e.deltaY * 0.0015), { x: e.clientX - r.left, y: e.clientY - r.top });
  }

  #drag(e: PointerEvent): void {
    if (e.button !== 0 || !this.#shown) return;
    const start = { x: e.clientX, y: e.clientY, vx: this.#view.x, vy: this.#view.y };
    let moved = false;
    const target = e.target as Element;
    const move = (m: PointerEvent) => {
      const dx = m.clientX - start.x;
      const dy = m.clientY - start.y;
      if (!moved && Math.hypot(dx, dy) < 4) return;
      if (!moved) this.#canvas.setPointerCapture(e.pointerId);
      moved = true;
      this.#canvas.classList.add('dragging');
      this.#view.x = start.vx - dx / this.#view.scale;
      this.#view.y = start.vy - dy / this.#view.scale;
      this.#apply();
    };
    const up = () => {
      this.#canvas.removeEventListener('pointermove', move);
      this.#canvas.removeEventListener('pointerup', up);
      this.#canvas.removeEventListener('pointercancel', up);
      this.#canvas.classList.remove('dragging');
      if (!moved) this.#click(target);
    };
    this.#canvas.addEventListener('pointermove', move);
    this.#canvas.addEventListener('pointerup', up);
    this.#canvas.addEventListener('pointercancel', up);
  }

  /** A click on a collapsed box opens it; on a box opened that way, closes it again. */
  #click(target: Element): void {
    const a = this.#args;
    const d = this.#shown;
    const id = target.closest('[data-state]')?.getAttribute('data-state');
    if (!a || !d || !id || !this.#collapsing(a.machine)) return;
    const opened = this.#opened.get(a.machine) ?? new Set<string>();
    if (d.collapsed.has(id)) opened.add(id);
    else if (opened.has(id)) opened.delete(id);
    else return;
    this.#opened.set(a.machine, opened);
    this.#rerender();
  }

  /** Brings the innermost active state into view (centred), unless it is already wholly visible. */
  #toActive(force = false): void {
    const d = this.#shown;
    const id = this.#args?.active.at(-1);
    const box = id ? d?.boxes.get(id) : undefined;
    if (!box) return;
    const { w, h: ht } = this.#size();
    const v = this.#view;
    const vw = w / v.scale;
    const vh = ht / v.scale;
    const inView = box.x >= v.x && box.y >= v.y && box.x + box.width <= v.x + vw && box.y + box.height <= v.y + vh;
    if (inView && !force) return;
    v.x = box.width > vw ? box.x - 8 / v.scale : box.x + box.width / 2 - vw / 2;
    v.y = box.height > vh ? box.y - 8 / v.scale : box.y + box.height / 2 - vh / 2;
  }

  #apply(): void {
    const d = this.#shown;
    if (!d) return;
    const { w, h: ht } = this.#size();
    const v = this.#view;
    d.svg.setAttribute('viewBox', `${v.x} ${v.y} ${w / v.scale} ${ht / v.scale}`);
    d.svg.setAttribute('width', String(w));
    d.svg.setAttribute('height', String(ht));
    d.svg.setAttribute('data-scale', String(Math.round(v.scale * 1000) / 1000));
    this.#zoomText.textContent = `${Math.round(v.scale * 100)}%`;
  }
}
