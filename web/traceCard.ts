/**
 * Beside an imported trace's run, in the detail pane: the trace event selected (its file and line, frame,
 * payload as written, decoded fields, and how it relates to the model — aligned with a step, or why it
 * has no partner — with the divergence or livelock it is part of), and what the model's run traces at
 * the step shown, each tracepoint with its trace partner. Below, the scenario built from the trace.
 *
 * Every string here is the trace's text, untrusted: it reaches the page through dom.ts (textContent).
 */
import type { StepView, TraceDivergence, TraceEventRow } from '../src/inspect/api.ts';
import { baseName, STATUS_TEXT } from '../src/inspect/traceRows.ts';
import { clear, h } from './dom.ts';
import type { TraceEvents } from './traceEvents.ts';
import type { TraceIndex } from './traceIndex.ts';

export interface TraceActions {
  selectTrace(id: number): void;
  goTo(step: number): void;
  /** Show a divergence: both its ends, and its entry opened. */
  openDivergence(d: TraceDivergence): void;
}

const where = (e: TraceEventRow) => `${baseName(e.file)}:${e.endLine > e.line ? `${e.line}-${e.endLine}` : e.line}`;

/** `CPU 1/KVM-9302 [006] 512.000191`: the line's frame as the trace printed it. */
function frameText(e: TraceEventRow): string {
  return [e.comm !== null ? `${e.comm}-${e.pid}` : null, e.cpu !== null ? `[${String(e.cpu).padStart(3, '0')}]` : null, e.ts].filter((x) => x !== null).join(' ');
}

export class TraceCard {
  readonly element: HTMLElement;
  readonly scenario: HTMLDetailsElement;
  #index: TraceIndex;
  #events: TraceEvents;
  #act: TraceActions;
  #token = 0;

  constructor(index: TraceIndex, events: TraceEvents, actions: TraceActions) {
    this.#index = index;
    this.#events = events;
    this.#act = actions;
    this.element = h('section', { id: 'trace-card', 'aria-label': 'trace event' });
    this.scenario = this.#scenario();
  }

  /** A trace event by its file:line (by its index while its chunk is still on the way). */
  #traceLink(id: number): HTMLButtonElement {
    const row = this.#events.get(id);
    return h('button', { type: 'button', class: 'link', 'data-trace-link': id, onclick: () => this.#act.selectTrace(id) }, row ? where(row) : `trace event ${id}`);
  }

  #stepLink(n: number): HTMLButtonElement {
    return h('button', { type: 'button', class: 'link', 'data-goto': n, onclick: () => this.#act.goTo(n) }, `step ${n}`);
  }

  /** The card for step `v` with trace event `selected` (null: the step has none). */
  show(v: StepView, selected: number | null): void {
    const token = ++this.#token;
    if (selected === null) return this.#render(v, null);
    const known = this.#events.get(selected);
    if (known) return this.#render(v, known);
    this.#render(v, null, true);
    this.#events.load(selected).then(
      (e) => token === this.#token && this.#render(v, e),
      () => {},
    );
  }

  #render(v: StepView, e: TraceEventRow | null, loading = false): void {
    const card = this.element;
    clear(card);
    const head = h('div', { class: 'card-head' }, h('span', { class: 'trace-title' }, 'Trace'));
    card.append(head);
    if (loading) {
      card.append(h('p', { class: 'muted' }, 'loading…'));
    } else if (e === null) {
      card.append(h('p', { class: 'muted', id: 'trace-none' }, v.step === 0 ? 'No trace event at the initial state.' : `No trace event aligns with step ${v.step}: the model's messages here have no tracepoint the trace recorded, or the trace has no partner for them.`));
    } else {
      head.append(' ', h('span', { id: 'trace-where', class: 'mono' }, where(e)), ' ', h('span', { class: `badge status-${e.status}`, id: 'trace-status' }, STATUS_TEXT[e.status]));
      if (e.livelock) head.append(' ', h('span', { class: 'badge livelock', id: 'trace-livelock' }, `livelock fault ${e.livelock.fault}/${e.livelock.of}`));
      card.append(
        h('div', { class: 'trace-frame mono muted', title: e.file }, frameText(e), `  ${e.thread}`),
        h('div', { class: 'trace-payload mono' }, h('span', { class: 'msg-name', id: 'trace-event' }, e.event), ': ', h('span', { id: 'trace-payload' }, e.payload)),
      );
      if (e.fields && e.fields !== e.payload) card.append(h('div', { class: 'fields mono', id: 'trace-fields' }, e.fields));
      const place = this.#index.placeOf(e.id);
      const align = h('div', { class: 'trace-align', id: 'trace-align' });
      if (e.status === 'aligned' && e.seq !== null) align.append('aligned with ', this.#stepLink(e.seq));
      else {
        const why = e.status === 'trace-only' ? 'no model partner: the model does not do this here' : e.status === 'set-aside' ? `set aside (${e.reason ?? 'not compared'}): the host caused it, not the guest's program; its entry is set aside with it` : `not compared: the model does not predict ${e.event} events`;
        align.append(why, place ? h('span', { class: 'muted' }, ' — shown after ', this.#stepLink(place.seq)) : '');
      }
      card.append(align);
      const d = e.divergence === null ? null : (this.#index.info.divergences[e.divergence] ?? null);
      if (d) card.append(this.#divergenceBox(d));
    }
    // At a divergence's model end with no trace event here: the divergence, as at its trace end.
    const md = e === null && !loading ? (this.#index.modelAnchor(v.step) ?? this.#index.modelDivergence(v.step)) : null;
    if (md) card.append(this.#divergenceBox(md));
    const t = v.trace;
    if (t && v.step > 0) {
      const list = h('ul', { class: 'model-trace', id: 'model-trace' });
      for (const m of t.model) {
        const li = h('li', { class: `model-${m.status}` }, h('span', { class: 'mono' }, m.text));
        if (m.trace !== null) li.append(' ↔ ', m.trace === e?.id ? h('span', { class: 'muted' }, 'this trace event') : this.#traceLink(m.trace));
        else if (m.status === 'model-only') li.append(' ', h('span', { class: 'badge model-only' }, m.divergence !== null ? `model only · ${this.#index.info.divergences[m.divergence]?.kind ?? ''}` : 'model only'));
        else li.append(' ', h('span', { class: 'muted' }, STATUS_TEXT[m.status === 'set-aside' ? 'set-aside' : 'not-compared']));
        list.append(li);
      }
      card.append(h('div', { class: 'muted model-trace-head' }, t.model.length === 0 ? `The model traces nothing at step ${v.step} (no tracepoint for this message).` : `The model traces at step ${v.step}:`));
      if (t.model.length > 0) card.append(list);
      const others = [...t.on, ...t.after].filter((id) => id !== e?.id);
      if (others.length > 0) {
        card.append(h('div', { class: 'trace-others' }, h('span', { class: 'muted' }, `Other trace events on or after step ${v.step}: `), ...others.slice(0, 6).flatMap((id, i) => [i > 0 ? ', ' : '', this.#traceLink(id)]), others.length > 6 ? ` … ${others.length - 6} more` : ''));
      }
    }
  }

  #divergenceBox(d: TraceDivergence): HTMLElement {
    const box = h('div', { class: 'divergence-box', id: 'trace-divergence', 'data-divergence': d.index });
    box.append(h('div', {}, h('span', { class: 'badge divergence-kind' }, `⚑ ${d.kind}`), ' ', d.trace ? `${baseName(d.trace.file)}:${d.trace.line}` : '(no trace line)', ' ↔ ', d.seq !== null ? this.#stepLink(d.seq) : 'no model step', ' ', h('button', { type: 'button', class: 'small', onclick: () => this.#act.openDivergence(d) }, 'show both ends')));
    box.append(h('div', { class: 'divergence-message' }, d.message));
    if (d.hint) box.append(h('div', { class: 'divergence-hint' }, h('strong', {}, 'hint: '), d.hint));
    return box;
  }

  #scenario(): HTMLDetailsElement {
    const sc = this.#index.info.scenario;
    const d = h('details', { id: 'trace-scenario' }, h('summary', {}, `Scenario built from the trace: ${sc.name}`, h('span', { class: 'muted' }, sc.file ? ` → ${sc.file}` : ' (not written; tdxsim import --scenario-out FILE writes it)')));
    if (sc.notes.length > 0) {
      const ul = h('ul', { class: 'scenario-notes' });
      for (const n of sc.notes) ul.append(h('li', {}, n.file !== null ? h('span', { class: 'mono muted' }, `${baseName(n.file)}:${n.line}: `) : null, n.message));
      d.append(ul);
    }
    d.append(h('pre', { class: 'scenario-yaml' }, sc.yaml));
    return d;
  }
}

/**
 * The banners of an imported trace: where the trace and the model part (each divergence with its kind,
 * both ends and what it means; the one shown opened), or that they agree; and each livelock signature.
 */
export class TraceBanners {
  readonly element: HTMLElement;
  #items = new Map<number, HTMLDetailsElement>();
  #act: TraceActions;
  #quiet = false;

  constructor(index: TraceIndex, actions: TraceActions) {
    this.#act = actions;
    this.element = h('div', { id: 'trace-banners' });
    const divs = index.divergences;
    const compared = `compared: ${index.info.compared.join(', ') || 'nothing'}`;
    if (divs.length === 0) {
      this.element.append(h('div', { id: 'divergences', class: 'banner agree', role: 'status' }, h('strong', {}, 'Trace and model agree: '), "every compared trace event has its counterpart in the model's run, in order.", h('span', { class: 'muted compared' }, ` ${compared}`)));
    } else {
      // One line each; the one shown opened with its message (the trace card has its hint).
      const list = h('div', { class: 'divergence-list' });
      const banner = h('div', { id: 'divergences', class: 'banner divergence', role: 'region', 'aria-label': 'divergences' }, h('strong', { title: compared }, `The trace and the model part at ${divs.length} place${divs.length === 1 ? '' : 's'}`), h('span', { class: 'muted' }, divs.length > 1 ? ' ([ and ] step through them)' : ''), list);
      for (const d of divs) {
        const item = h(
          'details',
          { class: 'divergence-item', 'data-divergence': d.index },
          h('summary', {}, h('span', { class: 'badge divergence-kind' }, `⚑ ${d.kind}`), ' ', h('span', { class: 'mono' }, `${d.trace ? `${baseName(d.trace.file)}:${d.trace.line}` : '(no trace line)'} (${d.thread}) ↔ ${d.seq !== null ? `step ${d.seq}` : 'no model step'}`)),
          h('div', { class: 'divergence-message' }, d.message),
        );
        item.addEventListener('toggle', () => {
          if (item.open && !this.#quiet) this.#act.openDivergence(d);
        });
        this.#items.set(d.index, item);
        list.append(item);
      }
      this.element.append(banner);
    }
    const notes = index.info.divergences.filter((d) => !d.divergence);
    if (notes.length > 0) this.element.lastElementChild!.append(...notes.map((n) => h('div', { class: 'trace-note muted' }, n.message)));
    for (const l of index.info.livelocks) {
      const go = () => (l.side === 'trace' ? this.#act.selectTrace(l.faults[0]!) : this.#act.goTo(l.faults[0]!));
      this.element.append(
        h(
          'div',
          { class: 'banner livelock', role: 'alert', 'data-side': l.side },
          h('span', { class: 'badge livelock' }, 'livelock'),
          ' ',
          h('strong', {}, l.side === 'trace' ? 'In the trace: ' : 'In the model only: '),
          l.text,
          l.side === 'trace' ? `; the model ${l.modelToo ? 'loops there too' : 'does not loop there'}` : '',
          ' ',
          h('button', { type: 'button', class: 'small', onclick: go }, 'go to the first fault'),
        ),
      );
    }
  }

  /** Opens divergence `i`'s entry (and closes the others) without navigating again. */
  show(i: number | null): void {
    this.#quiet = true;
    for (const [k, item] of this.#items) {
      item.open = k === i;
      item.classList.toggle('current', k === i);
    }
    if (i !== null) this.#items.get(i)?.scrollIntoView({ block: 'nearest' });
    // toggle events fire asynchronously.
    setTimeout(() => (this.#quiet = false), 0);
  }
}
