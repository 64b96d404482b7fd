/**
 * The sequence view: one lane per actor, one row per step, an arrow from sender to receiver labelled with
 * the message's architectural name. Each message's causal link is drawn in its sender's lane, from the
 * row whose handling sent it (its `cause`) down to its own row, so a chain of calls reads as a path.
 *
 * Virtualised for 100k-step logs: the scroller holds an empty spacer as tall as all rows, and only the
 * rows on screen (plus a margin) are drawn, into one SVG placed at the scroll position. Rows arrive in
 * chunks from /api/events as they come into view.
 */
import type { EventRow } from '../src/inspect/api.ts';
import type { Searchable } from '../src/inspect/query.ts';
import { api } from './api.ts';
import { clear, h, s } from './dom.ts';

export const ROW_H = 24;
const GUTTER = 52;
const CHUNK = 500;
const OVERSCAN = 12;

function isReply(e: EventRow): boolean {
  return e.kind.endsWith('-return') || e.name.endsWith('_RESULT');
}

export class SequenceView {
  readonly element: HTMLElement;
  #header: HTMLElement;
  #scroller: HTMLElement;
  #spacer: HTMLElement;
  #svg: SVGSVGElement;
  #actors: string[];
  #lane = new Map<string, number>();
  #steps = 0;
  #current = 0;
  #cause: number | null = null;
  #effects = new Set<number>();
  #matcher: ((e: Searchable) => boolean) | null = null;
  #chunks = new Map<number, EventRow[] | 'loading'>();
  #frame = 0;
  #onSelect: (step: number) => void;
  #onError: (msg: string) => void;

  constructor(actors: string[], onSelect: (step: number) => void, onError: (msg: string) => void) {
    this.#actors = actors;
    actors.forEach((a, i) => this.#lane.set(a, i));
    this.#onSelect = onSelect;
    this.#onError = onError;
    this.#header = h('div', { class: 'lanes' });
    this.#spacer = h('div', { class: 'spacer' });
    this.#svg = s('svg', { class: 'rows', role: 'list', 'aria-label': 'message sequence' }) as SVGSVGElement;
    this.#scroller = h('div', { class: 'scroller', tabindex: -1 }, this.#spacer, this.#svg);
    this.element = h('section', { id: 'sequence', 'aria-label': 'sequence view' }, this.#header, this.#scroller);
    this.#scroller.addEventListener('scroll', () => this.render());
    new ResizeObserver(() => this.render()).observe(this.#scroller);
    this.#svg.addEventListener('click', (ev) => {
      const row = Number((ev.target as Element).closest('[data-step]')?.getAttribute('data-step'));
      if (Number.isInteger(row)) this.#onSelect(row);
    });
  }

  setSteps(n: number): void {
    if (n === this.#steps) return;
    // The last chunk may have been fetched while it was still growing.
    this.#chunks.delete(Math.floor((Math.max(this.#steps, 1) - 1) / CHUNK));
    this.#steps = n;
    this.#spacer.style.height = `${(n + 1) * ROW_H}px`;
    this.render();
  }

  setCurrent(step: number, cause: number | null, effects: readonly number[]): void {
    this.#current = step;
    this.#cause = cause;
    this.#effects = new Set(effects);
    this.scrollIntoView(step);
    this.render();
  }

  setMatcher(m: ((e: Searchable) => boolean) | null): void {
    this.#matcher = m;
    this.render();
  }

  scrollIntoView(step: number): void {
    const y = step * ROW_H;
    const top = this.#scroller.scrollTop;
    const height = this.#scroller.clientHeight;
    if (y < top || y + ROW_H > top + height) this.#scroller.scrollTop = Math.max(0, y - height / 2);
  }

  /** The row for `seq`, if its chunk is loaded; starts loading it otherwise. */
  #row(seq: number): EventRow | null {
    const c = Math.floor((seq - 1) / CHUNK);
    const chunk = this.#chunks.get(c);
    if (chunk === 'loading') return null;
    if (chunk === undefined) {
      this.#chunks.set(c, 'loading');
      api.events(c * CHUNK + 1, CHUNK).then(
        (r) => {
          // A chunk fetched while a live run was still filling it is complete only up to what it holds.
          if (r.rows.length < CHUNK && c * CHUNK + r.rows.length < this.#steps) this.#chunks.delete(c);
          else this.#chunks.set(c, r.rows);
          this.render();
        },
        (e: Error) => {
          this.#chunks.delete(c);
          this.#onError(`loading steps ${c * CHUNK + 1}…: ${e.message}`);
        },
      );
      return null;
    }
    return chunk[seq - 1 - c * CHUNK] ?? null;
  }

  render(): void {
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.#draw();
    });
  }

  #laneX(width: number): (actor: string) => number {
    const n = Math.max(1, this.#actors.length);
    const w = (width - GUTTER) / n;
    return (a) => GUTTER + ((this.#lane.get(a) ?? 0) + 0.5) * w;
  }

  #draw(): void {
    const width = Math.max(this.#scroller.clientWidth, 320);
    const x = this.#laneX(width);
    clear(this.#header);
    for (const a of this.#actors) {
      const label = h('div', { class: 'lane-name', title: a }, a);
      label.style.left = `${x(a)}px`;
      this.#header.append(label);
    }
    const top = this.#scroller.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(this.#steps, Math.ceil((top + this.#scroller.clientHeight) / ROW_H) + OVERSCAN);
    const y0 = first * ROW_H;
    const height = (last - first + 1) * ROW_H;
    this.#svg.setAttribute('width', String(width));
    this.#svg.setAttribute('height', String(height));
    this.#svg.style.top = `${y0}px`;
    clear(this.#svg);

    const backgrounds = s('g', { class: 'backgrounds' });
    const lanes = s('g', { class: 'lane-lines' });
    const causes = s('g', { class: 'causes' });
    const arrows = s('g', { class: 'arrows' });
    for (const a of this.#actors) lanes.append(s('line', { x1: x(a), x2: x(a), y1: 0, y2: height }));

    for (let r = first; r <= last; r++) {
      const y = (r - first) * ROW_H;
      const mid = y + ROW_H / 2 + 3;
      const e = r === 0 ? null : this.#row(r);
      const cls = ['row', r === this.#current ? 'current' : '', r === this.#cause ? 'cause' : '', this.#effects.has(r) ? 'effect' : '', e && this.#matcher?.(e) ? 'match' : ''].filter(Boolean).join(' ');
      const g = s('g', { class: cls, 'data-step': r, role: 'listitem' });
      g.append(s('rect', { x: 0, y, width, height: ROW_H, class: 'row-bg' }), s('text', { x: 6, y: mid, class: 'seq' }, r));
      backgrounds.append(g);
      if (r === 0) {
        g.append(s('text', { x: GUTTER + 4, y: mid, class: 'label initial' }, 'initial state'));
        continue;
      }
      if (e === null) {
        g.append(s('text', { x: GUTTER + 4, y: mid, class: 'label loading' }, '…'));
        continue;
      }
      const x1 = x(e.from);
      const x2 = x(e.to);
      if (e.cause !== null) {
        const cy = Math.max(-ROW_H, (e.cause - first) * ROW_H + ROW_H / 2);
        causes.append(s('line', { x1, x2: x1, y1: cy, y2: y + ROW_H / 2, class: r === this.#current ? 'cause-link current' : 'cause-link' }));
      }
      const ag = s('g', { class: r === this.#current ? 'arrow current' : 'arrow', 'data-step': r });
      ag.append(s('title', {}, `${r}  ${e.from} → ${e.to}  ${e.label}${e.fields ? '  ' + e.fields : ''}`));
      const ay = y + ROW_H - 6;
      if (x1 === x2) {
        ag.append(s('path', { d: `M${x1},${ay - 6} h14 v6 h-12`, class: 'msg', 'marker-end': 'url(#seq-arrow)' }));
      } else {
        ag.append(s('line', { x1, x2: x2 + (x2 > x1 ? -2 : 2), y1: ay, y2: ay, class: isReply(e) ? 'msg reply' : 'msg', 'marker-end': 'url(#seq-arrow)' }));
      }
      ag.append(s('text', { x: (x1 + x2) / 2 + (x1 === x2 ? 20 : 0), y: ay - 4, class: 'label', 'text-anchor': x1 === x2 ? 'start' : 'middle' }, e.label));
      arrows.append(ag);
    }
    const defs = s('defs', {}, s('marker', { id: 'seq-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' })));
    this.#svg.append(defs, backgrounds, lanes, causes, arrows);
  }
}
