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
 *
 * With an imported trace (`tdxsim import --inspect`) a trace column stands right of the lanes: each trace
 * event on the row of the model step it aligns with (a second one on a row of its own under it), and the
 * events with no model partner on rows between steps, tinted and labelled with why (trace only, set
 * aside, not compared). Rows with a trace event are taller: the column has two lines (time, thread, event
 * and file:line; then the divergence or livelock it is part of and its decoded fields). Divergences are
 * marked on both sides: the trace events of the hunk and the model steps of it, with the kind at each end.
 */
import type { EventRow, LassoInfo, TraceEventRow } from '../src/inspect/api.ts';
import type { Searchable } from '../src/inspect/query.ts';
import { baseName, STATUS_TEXT, traceSearchable, type PlanRow } from '../src/inspect/traceRows.ts';
import { api } from './api.ts';
import { clear, h, s } from './dom.ts';
import { truncateFields } from './fieldsText.ts';
import { LABEL_ROW_H, placeLaneLabels } from './lanes.ts';
import type { TraceEvents } from './traceEvents.ts';
import type { TraceIndex } from './traceIndex.ts';

export const ROW_H = 24;
export const ROW_H_FIELDS = 40;
/** A row holding a trace event: room for the trace column's two lines. */
export const ROW_H_TRACE = 36;
/** Between the last lane and the trace column. */
const TRACE_GAP = 12;
const TRACE_MIN_W = 250;
const TRACE_MAX_W = 560;

/** The trace column's side of the view: the index, the events, and what a click on one does. */
export interface TraceSide {
  index: TraceIndex;
  events: TraceEvents;
  onSelect: (id: number) => void;
}
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
  #traceHead: HTMLElement | null = null;
  #laneKey = '';
  #steps = 0;
  #current = 0;
  #cause: number | null = null;
  #effects = new Set<number>();
  #matcher: ((e: Searchable) => boolean) | null = null;
  /**
   * The rows listed, in order: with a trace, its plan (traceRows.ts), filtered when non-matching rows are
   * hidden; without one, null lists every step from 0, or the matching steps when the others are hidden.
   */
  #rows: PlanRow[] | null = null;
  /** Row tops when rows differ in height (a trace); null when every row is #rowH tall. */
  #tops: Float64Array | null = null;
  #rowOfTraceId = new Map<number, number>();
  #rowH = ROW_H;
  #lasso: LassoInfo | null = null;
  #steered: number | null = null;
  #charW = new Map<string, number>();
  #chunks = new Map<number, EventRow[] | 'loading'>();
  #frame = 0;
  #onSelect: (step: number) => void;
  #onError: (msg: string) => void;
  #trace: TraceSide | null;
  #currentTrace: number | null = null;
  /** Trace events aligned with the current step. */
  #partners = new Set<number>();

  constructor(actors: string[], onSelect: (step: number) => void, onError: (msg: string) => void, trace: TraceSide | null = null) {
    this.#actors = actors;
    actors.forEach((a, i) => this.#lane.set(a, i));
    this.#onSelect = onSelect;
    this.#onError = onError;
    this.#trace = trace;
    this.#labels = actors.map((a) => h('div', { class: 'lane-name', title: a, 'data-actor': a }, a));
    this.#ticks = actors.map(() => h('div', { class: 'lane-tick' }));
    if (trace) {
      const inputs = trace.index.info.inputs;
      const names = inputs.map((i) => baseName(i.file)).join(' + ');
      this.#traceHead = h(
        'div',
        { class: 'trace-name', id: 'trace-head', title: `${inputs.map((i) => `${i.file} (${i.format}, ${i.lines} lines)`).join('\n')}\nEach trace event on the row of the model step it aligns with; rows between steps hold the events with no model partner.` },
        h('div', { class: 'trace-head-1' }, h('span', { class: 'trace-word' }, 'trace'), ` ${trace.index.info.events} events · ${[...new Set(inputs.map((i) => i.format))].join(' + ')}`),
        h('div', { class: 'trace-head-2', id: 'trace-files' }, names),
      );
      this.#rows = trace.index.plan;
    }
    this.#header = h('div', { class: 'lanes' }, ...this.#ticks, ...this.#labels, this.#traceHead);
    this.#spacer = h('div', { class: 'spacer' });
    this.#svg = s('svg', { class: 'rows', role: 'list', 'aria-label': 'message sequence' }) as SVGSVGElement;
    this.#scroller = h('div', { class: 'scroller', tabindex: -1 }, this.#spacer, this.#svg);
    this.element = h('section', { id: 'sequence', 'aria-label': 'sequence view', class: trace ? 'with-trace' : '' }, this.#header, this.#scroller);
    this.#scroller.addEventListener('scroll', () => this.render());
    new ResizeObserver(() => this.render()).observe(this.#scroller);
    // The rows are redrawn on every scroll frame, so a press and its release can land on two different
    // (equal) elements and no click would fire: a release close to its press selects what is under it.
    let down: { x: number; y: number } | null = null;
    this.#svg.addEventListener('pointerdown', (ev) => {
      down = ev.button === 0 ? { x: ev.clientX, y: ev.clientY } : null;
    });
    this.#svg.addEventListener('pointerup', (ev) => {
      if (down === null || Math.abs(ev.clientX - down.x) > 4 || Math.abs(ev.clientY - down.y) > 4) return;
      down = null;
      const target = document.elementFromPoint(ev.clientX, ev.clientY) ?? (ev.target as Element);
      // A trace cell, or anywhere on a row between steps, selects the trace event; elsewhere, the step.
      const cell = target.closest('[data-trace]') ?? target.closest('[data-row-trace]');
      if (cell && this.#trace) {
        const id = Number(cell.getAttribute('data-trace') ?? cell.getAttribute('data-row-trace'));
        if (Number.isInteger(id)) return this.#trace.onSelect(id);
      }
      const row = Number(target.closest('[data-step]')?.getAttribute('data-step'));
      if (Number.isInteger(row)) this.#onSelect(row);
    });
    this.#relayout();
  }

  get #gutter(): number {
    return this.#lasso ? GUTTER_LASSO : GUTTER;
  }

  get #rowCount(): number {
    return this.#rows ? this.#rows.length : this.#steps + 1;
  }

  #rowAt(r: number): PlanRow {
    return this.#rows ? this.#rows[r]! : { seq: r, kind: 'step', trace: null };
  }

  #seqAt(r: number): number {
    return this.#rows ? this.#rows[r]!.seq : r;
  }

  /** The row showing step `seq`, or (exact = false) the first row at or after it. */
  #rowOf(seq: number, exact: boolean): number | null {
    const o = this.#rows;
    if (!o) return seq;
    let lo = 0;
    let hi = o.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (o[mid]!.seq < seq) lo = mid + 1;
      else hi = mid;
    }
    if (exact) return o[lo]?.seq === seq && o[lo]!.kind === 'step' ? lo : null;
    return Math.min(lo, Math.max(0, o.length - 1));
  }

  #top(r: number): number {
    return this.#tops ? this.#tops[Math.max(0, Math.min(r, this.#tops.length - 1))]! : r * this.#rowH;
  }

  #height(r: number): number {
    return this.#top(r + 1) - this.#top(r);
  }

  /** The row at height y of the whole list. */
  #rowAtY(y: number): number {
    const t = this.#tops;
    const n = this.#rowCount;
    if (!t) return Math.max(0, Math.min(n - 1, Math.floor(y / this.#rowH)));
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (t[mid]! <= y) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Row heights and the trace events' rows, after the rows or the row height changed. */
  #relayout(): void {
    const rows = this.#rows;
    this.#rowOfTraceId.clear();
    if (rows && this.#trace) {
      const t = new Float64Array(rows.length + 1);
      rows.forEach((row, i) => {
        t[i + 1] = t[i]! + (row.trace !== null ? Math.max(this.#rowH, ROW_H_TRACE) : this.#rowH);
        if (row.trace !== null) this.#rowOfTraceId.set(row.trace, i);
      });
      this.#tops = t;
    } else {
      this.#tops = null;
    }
    this.#spacer.style.height = `${this.#top(this.#rowCount) + this.#rowH}px`;
  }

  setSteps(n: number): void {
    if (n === this.#steps) return;
    // The last chunk may have been fetched while it was still growing.
    this.#chunks.delete(Math.floor((Math.max(this.#steps, 1) - 1) / CHUNK));
    this.#steps = n;
    this.#relayout();
    this.render();
  }

  /** `trace`: the trace event selected (null: none). */
  setCurrent(step: number, cause: number | null, effects: readonly number[], trace: number | null = null): void {
    this.#current = step;
    this.#cause = cause;
    this.#effects = new Set(effects);
    this.#currentTrace = trace;
    this.#partners = new Set(this.#trace?.index.onStep(step) ?? []);
    this.scrollIntoView(step, trace);
    this.render();
  }

  setMatcher(m: ((e: Searchable) => boolean) | null): void {
    this.#matcher = m;
    this.render();
  }

  /** Show only these steps and trace events (the filter's matches), or every row again (null). */
  setOrder(seqs: number[] | null, traces: number[] | null = null): void {
    const index = this.#trace?.index;
    if (index) {
      if (seqs === null) this.#rows = index.plan;
      else {
        const keepSeq = new Set(seqs);
        const keepTrace = new Set(traces ?? []);
        this.#rows = index.plan.filter((r) => (r.kind === 'step' && keepSeq.has(r.seq)) || (r.trace !== null && keepTrace.has(r.trace)));
      }
    } else {
      this.#rows = seqs === null ? null : seqs.map((seq) => ({ seq, kind: 'step', trace: null }));
    }
    this.#relayout();
    this.#scroller.scrollTop = 0;
    this.scrollIntoView(this.#current, this.#currentTrace);
    this.render();
  }

  setShowFields(on: boolean): void {
    const keep = this.#rowAtY(this.#scroller.scrollTop);
    this.#rowH = on ? ROW_H_FIELDS : ROW_H;
    this.element.classList.toggle('with-fields', on);
    this.#relayout();
    this.#scroller.scrollTop = this.#top(keep);
    this.render();
  }

  setMarks(lasso: LassoInfo | null, steered: number | null): void {
    this.#lasso = lasso;
    this.#steered = steered;
    this.#laneKey = '';
    this.render();
  }

  /** Brings the row of `step` (or of trace event `trace`, when it is listed) into view. */
  scrollIntoView(step: number, trace: number | null = null): void {
    const row = (trace !== null ? this.#rowOfTraceId.get(trace) : undefined) ?? this.#rowOf(step, false);
    if (row === null) return;
    const y = this.#top(row);
    const top = this.#scroller.scrollTop;
    const height = this.#scroller.clientHeight;
    if (y < top || y + this.#height(row) > top + height) this.#scroller.scrollTop = Math.max(0, y - height / 2);
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

  /** Where the lanes end and the trace column starts: the column takes half of what is right of the gutter, within bounds, and each lane keeps 18 px. */
  #columns(width: number): { lanesRight: number; traceX: number; traceW: number } {
    if (!this.#trace) return { lanesRight: width, traceX: width, traceW: 0 };
    const room = width - this.#gutter - TRACE_GAP;
    const wanted = Math.min(TRACE_MAX_W, Math.max(TRACE_MIN_W, room * 0.5));
    const traceW = Math.max(120, Math.min(wanted, room - 18 * this.#actors.length));
    const lanesRight = width - traceW - TRACE_GAP;
    return { lanesRight, traceX: lanesRight + TRACE_GAP, traceW };
  }

  #laneX(right: number): (actor: string) => number {
    const n = Math.max(1, this.#actors.length);
    const g = this.#gutter;
    const w = (right - g) / n;
    return (a) => g + ((this.#lane.get(a) ?? 0) + 0.5) * w;
  }

  /** Lays the lane labels out (lanes.ts) when the width or the gutter changed. */
  #placeLabels(width: number, right: number, x: (a: string) => number): void {
    const key = `${width}|${right}|${this.#gutter}`;
    if (key === this.#laneKey) return;
    this.#laneKey = key;
    for (const l of this.#labels) l.classList.remove('vertical');
    const widths = this.#labels.map((l) => l.getBoundingClientRect().width);
    const lineHeight = this.#labels[0]?.getBoundingClientRect().height ?? 14;
    const centres = this.#actors.map(x);
    const p = placeLaneLabels(centres, widths, right, lineHeight);
    const height = Math.max(p.height, this.#traceHead ? 40 : 0);
    this.#header.style.height = `${height}px`;
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
      tick.style.height = `${Math.max(0, height - from)}px`;
    });
    if (this.#traceHead) {
      const c = this.#columns(width);
      this.#traceHead.style.left = `${c.traceX}px`;
      this.#traceHead.style.width = `${c.traceW - 4}px`;
    }
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

  #traceMatches(e: TraceEventRow): boolean {
    if (!this.#matcher) return false;
    const d = e.divergence === null ? null : (this.#trace!.index.info.divergences[e.divergence]?.kind ?? null);
    return this.#matcher(traceSearchable(e, d));
  }

  /**
   * One trace event in the trace column: `ts thread event` and `file:line` on the first line; what it is
   * part of (a divergence, a livelock, or why it has no model partner) and its decoded fields on the second.
   */
  #traceCell(row: PlanRow, id: number, x: number, w: number, y: number, hgt: number): SVGElement {
    const index = this.#trace!.index;
    const e = this.#trace!.events.get(id);
    const divergence = index.divergenceOf(id);
    const anchor = index.anchorOf(id);
    const cls = ['trace-cell', e ? `status-${e.status}` : '', divergence ? 'diverged' : '', anchor ? 'anchor' : '', id === this.#currentTrace ? 'selected' : '', this.#partners.has(id) ? 'partner' : '', e && this.#traceMatches(e) ? 'match' : '', e?.livelock ? 'livelock' : '']
      .filter(Boolean)
      .join(' ');
    const g = s('g', { class: cls, 'data-trace': id, role: 'listitem' });
    g.append(s('rect', { x: x - 4, y: y + 1, width: w + 2, height: hgt - 2, rx: 3, class: 'cell-bg' }));
    if (e === null) {
      g.append(s('text', { x, y: y + 15, class: 'trace-main loading' }, '…'));
      return g;
    }
    const lines = e.endLine > e.line ? `${e.line}-${e.endLine}` : String(e.line);
    g.append(
      s(
        'title',
        {},
        `${e.file}:${lines}\n${e.comm !== null ? `${e.comm}-${e.pid} ` : ''}${e.cpu !== null ? `[${String(e.cpu).padStart(3, '0')}] ` : ''}${e.ts ?? ''}  ${e.event}: ${e.payload}\n${STATUS_TEXT[e.status]}${e.seq !== null ? ` with step ${e.seq}` : row.kind === 'between' ? `, shown after step ${row.seq}` : ''}${e.reason ? ` (${e.reason})` : ''}${divergence ? `\n${divergence.kind}: ${divergence.message}` : ''}`,
      ),
    );
    // Line 1: time, thread and event on the left, file:line on the right, the file name cut from the left.
    const cw = this.#charWidth('trace-main');
    const max = Math.max(12, Math.floor((w - 4) / cw));
    const where = `:${lines}`;
    let left = [e.ts, e.thread, e.event === e.thread ? null : e.event].filter((v) => v !== null).join(' ');
    const base = baseName(e.file);
    const room = max - left.length - 1 - where.length;
    // One input: the header names it, so `:line` says it; several: the name, or its end, tells them apart.
    const several = this.#trace!.index.info.inputs.length > 1;
    const file = !several ? '' : room >= base.length ? base : room > 3 ? `…${base.slice(base.length - room + 1)}` : '';
    if (left.length + 1 + file.length + where.length > max) left = `${left.slice(0, Math.max(1, max - file.length - where.length - 2))}…`;
    g.append(s('text', { x, y: y + 14, class: 'trace-main' }, left), s('text', { x: x + w - 2, y: y + 14, class: 'trace-line', 'text-anchor': 'end' }, `${file}${where}`));
    // Line 2: badges, then the fields cut at a field boundary.
    const badges: [string, string][] = [];
    if (anchor) badges.push([`⚑ ${anchor.kind}`, 'badge-divergence']);
    else if (divergence) badges.push([divergence.kind, 'badge-divergence']);
    if (row.kind === 'between') badges.push([e.status === 'set-aside' && e.reason ? `set aside: ${e.reason}` : STATUS_TEXT[e.status], `badge-${e.status}`]);
    if (e.livelock) badges.push([`livelock ${e.livelock.fault}/${e.livelock.of}`, 'badge-livelock']);
    const sw = this.#charWidth('trace-sub');
    const max2 = Math.max(8, Math.floor((w - 4) / sw));
    const used = badges.reduce((n, [t]) => n + t.length + 1, 0);
    const sub = s('text', { x, y: y + 29, class: 'trace-sub' });
    for (const [t, c] of badges) sub.append(s('tspan', { class: c }, t), ' ');
    if (max2 - used > 6 && e.fields) sub.append(s('tspan', { class: 'trace-fields' }, truncateFields(e.fields, max2 - used)));
    g.append(sub);
    return g;
  }

  #draw(): void {
    const width = Math.max(this.#scroller.clientWidth, 320);
    const { lanesRight, traceX, traceW } = this.#columns(width);
    const x = this.#laneX(lanesRight);
    const g = this.#gutter;
    const rowH = this.#rowH;
    const fields = rowH === ROW_H_FIELDS;
    const index = this.#trace?.index ?? null;
    this.#placeLabels(width, lanesRight, x);
    const top = this.#scroller.scrollTop;
    const count = this.#rowCount;
    const first = Math.max(0, this.#rowAtY(top) - OVERSCAN);
    const last = Math.min(count - 1, this.#rowAtY(top + this.#scroller.clientHeight) + OVERSCAN);
    const y0 = this.#top(first);
    const height = Math.max(0, this.#top(last + 1) - y0);
    this.#svg.setAttribute('width', String(width));
    this.#svg.setAttribute('height', String(Math.max(height, rowH)));
    this.#svg.style.top = `${y0}px`;
    clear(this.#svg);

    const backgrounds = s('g', { class: 'backgrounds' });
    const lanes = s('g', { class: 'lane-lines' });
    const causes = s('g', { class: 'causes' });
    const arrows = s('g', { class: 'arrows' });
    const cells = s('g', { class: 'trace-cells' });
    const bands = s('g', { class: 'between-bands' });
    const marks = s('g', { class: 'marks' });
    for (const a of this.#actors) lanes.append(s('line', { x1: x(a), x2: x(a), y1: 0, y2: Math.max(height, rowH) }));
    if (index) lanes.append(s('line', { x1: lanesRight + TRACE_GAP / 2, x2: lanesRight + TRACE_GAP / 2, y1: 0, y2: Math.max(height, rowH), class: 'trace-rule' }));
    if (count === 0) backgrounds.append(s('text', { x: g + 4, y: rowH / 2 + 4, class: 'label initial', id: 'no-rows' }, 'no step matches the filter'));

    const fieldsW = this.#charWidth('fields-line');
    const labelW = this.#charWidth('label');
    const maxChars = Math.max(8, Math.floor((lanesRight - g - 8) / fieldsW));
    const lasso = this.#lasso;
    let loopTop: number | null = null;
    let loopBottom: number | null = null;
    for (let r = first; r <= last; r++) {
      const pr = this.#rowAt(r);
      const seq = pr.seq;
      const y = this.#top(r) - y0;
      const rh = this.#height(r);
      const own = pr.kind === 'step';
      const e = own && seq !== 0 ? this.#row(seq) : null;
      const inLoop = lasso !== null && seq >= lasso.first && seq <= lasso.last;
      const modelDivergence = own && index ? index.modelDivergence(seq) : null;
      const cls = [
        'row',
        pr.kind === 'step' ? '' : pr.kind,
        pr.kind === 'between' && pr.trace !== null ? `between-${this.#trace!.events.get(pr.trace)?.status ?? 'loading'}` : '',
        pr.kind !== 'between' && seq === this.#current ? 'current' : '',
        own && seq === this.#cause ? 'cause' : '',
        own && this.#effects.has(seq) ? 'effect' : '',
        e && this.#matcher?.(e) ? 'match' : '',
        inLoop ? 'loop' : '',
        own && seq === this.#steered ? 'steered' : '',
        e?.preemption ? 'preempted' : '',
        modelDivergence ? 'diverged' : '',
      ].filter(Boolean).join(' ');
      const row = s('g', { class: cls, 'data-step': seq, 'data-row-trace': pr.kind === 'between' ? pr.trace : null, role: 'listitem' });
      row.append(s('rect', { x: 0, y, width, height: rh, class: 'row-bg' }));
      if (own) row.append(s('text', { x: 4, y: y + 15, class: 'seq' }, seq));
      else if (pr.kind === 'more') row.append(s('text', { x: 4, y: y + 15, class: 'seq more-seq' }, `${seq} ·`));
      else {
        // Over the lane lines: no message is delivered here.
        row.append(s('text', { x: 4, y: y + 15, class: 'seq between-tag' }, 'trace'));
        bands.append(s('rect', { x: g, y: y + 1, width: Math.max(0, lanesRight - g), height: rh - 2, class: 'between-band', 'data-row-trace': pr.trace }));
      }
      if (modelDivergence) row.append(s('rect', { x: g - 7, y, width: 3, height: rh, class: 'diverged-bar' }));
      backgrounds.append(row);
      if (this.#rows && r > 0 && seq - this.#seqAt(r - 1) > 1) {
        backgrounds.append(s('line', { x1: 0, x2: width, y1: y + 0.5, y2: y + 0.5, class: 'gap' }, s('title', {}, `${seq - this.#seqAt(r - 1) - 1} steps hidden`)));
      }
      if (inLoop && own) {
        loopTop ??= y + (seq === lasso.first ? 4 : 0);
        loopBottom = y + rh - (seq === lasso.last ? 4 : 0);
      }
      if (pr.trace !== null && index) cells.append(this.#traceCell(pr, pr.trace, traceX, traceW, y, rh));
      if (!own) continue;
      if (seq === this.#steered) {
        marks.append(s('text', { x: lanesRight - 4, y: y + 15, class: 'steered-tag', 'text-anchor': 'end' }, 'steered'));
      }
      // A divergence's model end: flagged in the gutter, and named in the trace column when its row has no trace event.
      const anchor = index?.modelAnchor(seq);
      if (anchor) {
        const tip = `${anchor.kind} (model end, step ${seq}): ${anchor.message}`;
        marks.append(s('text', { x: g - 10, y: y + 15, class: 'divergence-flag', 'text-anchor': 'end' }, s('title', {}, tip), '⚑'));
        if (pr.trace === null) {
          const t = anchor.trace;
          const file = t === null ? '' : this.#trace!.index.info.inputs.length > 1 ? baseName(t.file) : '';
          const text = `⚑ ${anchor.kind} · model end${t ? ` · trace ${file}:${t.line}` : ''}`;
          const max = Math.max(8, Math.floor((traceW - 4) / this.#charWidth('trace-main')));
          marks.append(s('text', { x: traceX, y: y + 15, class: 'divergence-tag', 'data-divergence': anchor.index }, s('title', {}, tip), text.length > max ? `${text.slice(0, max - 1)}…` : text));
        }
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
          const cy = Math.max(-rowH, this.#top(causeRow) - y0 + Math.min(rowH, this.#height(causeRow)) / 2);
          causes.append(s('line', { x1, x2: x1, y1: cy, y2: y + Math.min(rowH, rh) / 2, class: seq === this.#current ? 'cause-link current' : 'cause-link' }));
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
      // Centred over the arrow, but kept inside the lanes: the last lanes' labels would run off their edge.
      const lw = e.label.length * labelW;
      const lx = x1 === x2 ? Math.min(x1 + 20, lanesRight - 4 - lw) : Math.max(g + 4 + lw / 2, Math.min((x1 + x2) / 2, lanesRight - 4 - lw / 2));
      ag.append(s('text', { x: lx, y: ay - 4, class: 'label', 'text-anchor': x1 === x2 ? 'start' : 'middle' }, e.label));
      if (fields && e.fields) {
        const text = truncateFields(e.fields, maxChars);
        const w = text.length * fieldsW;
        const left = Math.max(g + 4, Math.min(Math.min(x1, x2), lanesRight - 4 - w));
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
    const defs = s(
      'defs',
      {},
      s('marker', { id: 'seq-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' })),
      s('pattern', { id: 'between-hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' }, s('rect', { width: 6, height: 6, class: 'hatch-bg' }), s('line', { x1: 0, y1: 0, x2: 0, y2: 6, class: 'hatch-line' })),
    );
    this.#svg.append(defs, backgrounds, lanes, bands, causes, arrows, cells, marks);
  }
}
