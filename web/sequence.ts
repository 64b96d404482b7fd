/**
 * The sequence view: one lane per actor, one row per step, an arrow from sender to receiver labelled with
 * the message's architectural name. Each message's causal link is drawn in its sender's lane, from the
 * row whose handling sent it (its `cause`) down to its own row, so a chain of calls reads as a path.
 *
 * Virtualised for 100k-step logs: the scroller holds an empty spacer as tall as all rows, and only the
 * rows on screen (plus a margin) are drawn, into one SVG placed at the scroll position. Rows arrive in
 * chunks from /api/events as they come into view.
 *
 * The gutter left of the lanes holds the step number, a marker on each preemption of an explored
 * schedule, and the bracket of a lasso's loop. Rows can show their message's fields (a second line, cut
 * to the width), and with a filter the rows that do not match can be hidden: the view then lists only the
 * matching steps, with a dashed line where steps were left out.
 */
import type { EventRow, LassoInfo } from '../src/inspect/api.ts';
import type { Searchable } from '../src/inspect/query.ts';
import { api } from './api.ts';
import { clear, h, s } from './dom.ts';
import { truncateFields } from './fieldsText.ts';
import { LABEL_ROW_H, placeLaneLabels } from './lanes.ts';

export const ROW_H = 24;
export const ROW_H_FIELDS = 40;
const GUTTER = 64;
/** Wider with a loop: room for its bracket and label. */
const GUTTER_LASSO = 92;
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
  #labels: HTMLElement[];
  #ticks: HTMLElement[];
  #laneKey = '';
  #steps = 0;
  #current = 0;
  #cause: number | null = null;
  #effects = new Set<number>();
  #matcher: ((e: Searchable) => boolean) | null = null;
  /** The steps listed when non-matching rows are hidden (ascending); null lists every step from 0. */
  #order: number[] | null = null;
  #rowH = ROW_H;
  #lasso: LassoInfo | null = null;
  #steered: number | null = null;
  #charW = new Map<string, number>();
  #chunks = new Map<number, EventRow[] | 'loading'>();
  #frame = 0;
  #onSelect: (step: number) => void;
  #onError: (msg: string) => void;

  constructor(actors: string[], onSelect: (step: number) => void, onError: (msg: string) => void) {
    this.#actors = actors;
    actors.forEach((a, i) => this.#lane.set(a, i));
    this.#onSelect = onSelect;
    this.#onError = onError;
    this.#labels = actors.map((a) => h('div', { class: 'lane-name', title: a, 'data-actor': a }, a));
    this.#ticks = actors.map(() => h('div', { class: 'lane-tick' }));
    this.#header = h('div', { class: 'lanes' }, ...this.#ticks, ...this.#labels);
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

  get #gutter(): number {
    return this.#lasso ? GUTTER_LASSO : GUTTER;
  }

  get #rowCount(): number {
    return this.#order ? this.#order.length : this.#steps + 1;
  }

  #seqAt(r: number): number {
    return this.#order ? this.#order[r]! : r;
  }

  /** The row showing `seq`, or (exact = false) the first row at or after it. */
  #rowOf(seq: number, exact: boolean): number | null {
    const o = this.#order;
    if (!o) return seq;
    let lo = 0;
    let hi = o.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (o[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    if (exact) return o[lo] === seq ? lo : null;
    return Math.min(lo, Math.max(0, o.length - 1));
  }

  #resize(): void {
    this.#spacer.style.height = `${(this.#rowCount + 1) * this.#rowH}px`;
  }

  setSteps(n: number): void {
    if (n === this.#steps) return;
    // The last chunk may have been fetched while it was still growing.
    this.#chunks.delete(Math.floor((Math.max(this.#steps, 1) - 1) / CHUNK));
    this.#steps = n;
    this.#resize();
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

  /** Show only these steps (the filter's matches), or every step again (null). */
  setOrder(seqs: number[] | null): void {
    this.#order = seqs;
    this.#resize();
    this.#scroller.scrollTop = 0;
    this.scrollIntoView(this.#current);
    this.render();
  }

  setShowFields(on: boolean): void {
    const keep = this.#scroller.scrollTop / this.#rowH;
    this.#rowH = on ? ROW_H_FIELDS : ROW_H;
    this.element.classList.toggle('with-fields', on);
    this.#resize();
    this.#scroller.scrollTop = keep * this.#rowH;
    this.render();
  }

  setMarks(lasso: LassoInfo | null, steered: number | null): void {
    this.#lasso = lasso;
    this.#steered = steered;
    this.#laneKey = '';
    this.render();
  }

  scrollIntoView(step: number): void {
    const row = this.#rowOf(step, false);
    if (row === null) return;
    const y = row * this.#rowH;
    const top = this.#scroller.scrollTop;
    const height = this.#scroller.clientHeight;
    if (y < top || y + this.#rowH > top + height) this.#scroller.scrollTop = Math.max(0, y - height / 2);
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
    const g = this.#gutter;
    const w = (width - g) / n;
    return (a) => g + ((this.#lane.get(a) ?? 0) + 0.5) * w;
  }

  /** Lays the lane labels out (lanes.ts) when the width or the gutter changed. */
  #placeLabels(width: number, x: (a: string) => number): void {
    const key = `${width}|${this.#gutter}`;
    if (key === this.#laneKey) return;
    this.#laneKey = key;
    for (const l of this.#labels) l.classList.remove('vertical');
    const widths = this.#labels.map((l) => l.getBoundingClientRect().width);
    const lineHeight = this.#labels[0]?.getBoundingClientRect().height ?? 14;
    const centres = this.#actors.map(x);
    const p = placeLaneLabels(centres, widths, width, lineHeight);
    this.#header.style.height = `${p.height}px`;
    this.#header.classList.toggle('vertical', p.mode === 'vertical');
    this.#labels.forEach((l, i) => {
      const at = p.labels[i]!;
      l.classList.toggle('vertical', p.mode === 'vertical');
      l.style.left = `${at.left}px`;
      l.style.top = p.mode === 'vertical' ? '4px' : `${4 + at.row * LABEL_ROW_H}px`;
      const tick = this.#ticks[i]!;
      const from = p.mode === 'vertical' ? p.height : 4 + (at.row + 1) * LABEL_ROW_H;
      tick.hidden = p.mode === 'vertical' || p.rows === 1;
      tick.style.left = `${centres[i]!}px`;
      tick.style.top = `${from}px`;
      tick.style.height = `${Math.max(0, p.height - from)}px`;
    });
  }

  /** Advance of one glyph of the monospace font in text of class `cls` (measured once). */
  #charWidth(cls: string): number {
    const known = this.#charW.get(cls);
    if (known) return known;
    const probe = s('text', { class: cls, x: -1000, y: -1000 }, '0123456789012345678901234567890123456789') as SVGTextElement;
    this.#svg.append(probe);
    const w = probe.getComputedTextLength() / 40;
    probe.remove();
    if (w > 0) this.#charW.set(cls, w);
    return w > 0 ? w : 6.6;
  }

  #draw(): void {
    const width = Math.max(this.#scroller.clientWidth, 320);
    const x = this.#laneX(width);
    const g = this.#gutter;
    const rowH = this.#rowH;
    const fields = rowH === ROW_H_FIELDS;
    this.#placeLabels(width, x);
    const top = this.#scroller.scrollTop;
    const count = this.#rowCount;
    const first = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
    const last = Math.min(count - 1, Math.ceil((top + this.#scroller.clientHeight) / rowH) + OVERSCAN);
    const y0 = first * rowH;
    const height = Math.max(0, last - first + 1) * rowH;
    this.#svg.setAttribute('width', String(width));
    this.#svg.setAttribute('height', String(Math.max(height, rowH)));
    this.#svg.style.top = `${y0}px`;
    clear(this.#svg);

    const backgrounds = s('g', { class: 'backgrounds' });
    const lanes = s('g', { class: 'lane-lines' });
    const causes = s('g', { class: 'causes' });
    const arrows = s('g', { class: 'arrows' });
    const marks = s('g', { class: 'marks' });
    for (const a of this.#actors) lanes.append(s('line', { x1: x(a), x2: x(a), y1: 0, y2: Math.max(height, rowH) }));
    if (count === 0) backgrounds.append(s('text', { x: g + 4, y: rowH / 2 + 4, class: 'label initial', id: 'no-rows' }, 'no step matches the filter'));

    const fieldsW = this.#charWidth('fields-line');
    const labelW = this.#charWidth('label');
    const maxChars = Math.max(8, Math.floor((width - g - 8) / fieldsW));
    const lasso = this.#lasso;
    let loopTop: number | null = null;
    let loopBottom: number | null = null;
    for (let r = first; r <= last; r++) {
      const seq = this.#seqAt(r);
      const y = (r - first) * rowH;
      const e = seq === 0 ? null : this.#row(seq);
      const inLoop = lasso !== null && seq >= lasso.first && seq <= lasso.last;
      const cls = [
        'row',
        seq === this.#current ? 'current' : '',
        seq === this.#cause ? 'cause' : '',
        this.#effects.has(seq) ? 'effect' : '',
        e && this.#matcher?.(e) ? 'match' : '',
        inLoop ? 'loop' : '',
        seq === this.#steered ? 'steered' : '',
        e?.preemption ? 'preempted' : '',
      ].filter(Boolean).join(' ');
      const row = s('g', { class: cls, 'data-step': seq, role: 'listitem' });
      row.append(s('rect', { x: 0, y, width, height: rowH, class: 'row-bg' }), s('text', { x: 4, y: y + 15, class: 'seq' }, seq));
      backgrounds.append(row);
      if (this.#order && r > 0 && seq - this.#seqAt(r - 1) > 1) {
        backgrounds.append(s('line', { x1: 0, x2: width, y1: y + 0.5, y2: y + 0.5, class: 'gap' }, s('title', {}, `${seq - this.#seqAt(r - 1) - 1} steps hidden`)));
      }
      if (inLoop) {
        loopTop ??= y + (seq === lasso.first ? 4 : 0);
        loopBottom = y + rowH - (seq === lasso.last ? 4 : 0);
      }
      if (seq === this.#steered) {
        marks.append(s('text', { x: width - 4, y: y + 15, class: 'steered-tag', 'text-anchor': 'end' }, 'steered'));
      }
      if (e?.preemption) {
        marks.append(
          s('g', { class: 'preemption', 'data-step': seq }, s('title', {}, e.preemption), s('circle', { cx: 50, cy: y + 11, r: 6 }), s('text', { x: 50, y: y + 14.5, 'text-anchor': 'middle' }, 'P')),
        );
      }
      if (seq === 0) {
        row.append(s('text', { x: g + 4, y: y + 15, class: 'label initial' }, 'initial state'));
        continue;
      }
      if (e === null) {
        row.append(s('text', { x: g + 4, y: y + 15, class: 'label loading' }, '…'));
        continue;
      }
      const x1 = x(e.from);
      const x2 = x(e.to);
      if (e.cause !== null) {
        const causeRow = this.#rowOf(e.cause, true);
        if (causeRow !== null) {
          const cy = Math.max(-rowH, (causeRow - first) * rowH + rowH / 2);
          causes.append(s('line', { x1, x2: x1, y1: cy, y2: y + rowH / 2, class: seq === this.#current ? 'cause-link current' : 'cause-link' }));
        }
      }
      const ag = s('g', { class: seq === this.#current ? 'arrow current' : 'arrow', 'data-step': seq });
      ag.append(s('title', {}, `${seq}  ${e.from} → ${e.to}  ${e.label}${e.fields ? '  ' + e.fields : ''}`));
      const ay = y + 18;
      if (x1 === x2) {
        ag.append(s('path', { d: `M${x1},${ay - 6} h14 v6 h-12`, class: 'msg', 'marker-end': 'url(#seq-arrow)' }));
      } else {
        ag.append(s('line', { x1, x2: x2 + (x2 > x1 ? -2 : 2), y1: ay, y2: ay, class: isReply(e) ? 'msg reply' : 'msg', 'marker-end': 'url(#seq-arrow)' }));
      }
      // Centred over the arrow, but kept inside the view: the last lanes' labels would run off its edge.
      const lw = e.label.length * labelW;
      const lx = x1 === x2 ? Math.min(x1 + 20, width - 4 - lw) : Math.max(g + 4 + lw / 2, Math.min((x1 + x2) / 2, width - 4 - lw / 2));
      ag.append(s('text', { x: lx, y: ay - 4, class: 'label', 'text-anchor': x1 === x2 ? 'start' : 'middle' }, e.label));
      if (fields && e.fields) {
        const text = truncateFields(e.fields, maxChars);
        const w = text.length * fieldsW;
        const left = Math.max(g + 4, Math.min(Math.min(x1, x2), width - 4 - w));
        ag.append(s('text', { x: left, y: y + 32, class: 'fields-line' }, text));
      }
      arrows.append(ag);
    }
    if (lasso !== null && loopTop !== null && loopBottom !== null) {
      const bx = 62;
      const d = [
        lasso.first >= this.#seqAt(first) ? `M${bx + 6},${loopTop} H${bx}` : `M${bx},${loopTop}`,
        `V${loopBottom}`,
        lasso.last <= this.#seqAt(last) ? `H${bx + 6}` : '',
      ].join(' ');
      const mid = (loopTop + loopBottom) / 2;
      const span = loopBottom - loopTop;
      const label = span > 140 ? `loop: steps ${lasso.first}–${lasso.last}` : 'loop';
      marks.append(
        s(
          'g',
          { class: 'loop-bracket' },
          s('title', {}, `the loop: steps ${lasso.first}–${lasso.last} repeat forever (after step ${lasso.last} the world is as after step ${lasso.loopStart})`),
          s('path', { d }),
          s('text', { x: bx + 14, y: mid, transform: `rotate(-90 ${bx + 14} ${mid})`, 'text-anchor': 'middle', class: 'loop-label' }, label),
        ),
      );
    }
    const defs = s('defs', {}, s('marker', { id: 'seq-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' })));
    this.#svg.append(defs, backgrounds, lanes, causes, arrows, marks);
  }
}
