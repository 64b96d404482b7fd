/**
 * The inspector page: controls for time travel (buttons, arrow keys, jump to a step, next/previous match
 * of a filter that wraps round, hiding the rows that do not match), the sequence view, and for the
 * selected actor its statechart and state; a diff between a marked step and the current one; steering
 * (deliver another message next, which makes a new log). The URL's hash holds the view (`#step=27`, plus
 * `actor=`, `q=`, `mark=` and `log=`), so it can be shared.
 *
 * Beside an imported trace's run (`tdxsim import --inspect`), the sequence view has a trace column
 * (sequence.ts), the detail pane the selected trace event and what the model traces at the step
 * (traceCard.ts), and banners name the divergences and livelock signatures; the page opens on the first
 * divergence. Selecting a trace event selects the step it aligns with (or follows), and a step selects
 * its first trace partner.
 *
 * Nothing the log says is shown as fact before the server has re-derived it: the outcome, a
 * counterexample's failure and a lasso's loop read "claimed by the log" until the background check
 * (`replay --verify`'s) has passed, and keep saying so if it fails.
 */
import './style.css';
import type { ActorStep, StepView, Summary, TraceDivergence, VerifyResult } from '../src/inspect/api.ts';
import { compileQuery } from '../src/inspect/query.ts';
import { api } from './api.ts';
import { clear, h } from './dom.ts';
import { DiffView } from './diffView.ts';
import { SequenceView } from './sequence.ts';
import { StatechartView } from './statechartView.ts';
import { StatePanel } from './statePanel.ts';
import { SteerPanel } from './steerPanel.ts';
import { renderPending, renderStepCard } from './stepCard.ts';
import { TraceBanners, TraceCard, type TraceActions } from './traceCard.ts';
import { TraceEvents } from './traceEvents.ts';
import { TraceIndex } from './traceIndex.ts';
import { readViewHash, viewHashText, writeViewHash } from './viewHash.ts';

/** Opens another of the server's logs: the page starts again on it. */
function openLog(log: string, step: number): void {
  history.replaceState(null, '', viewHashText({ log, step, actor: null, q: '' }));
  location.reload();
}

/** The imported trace beside the run, and the parts of the page that show it. */
interface TraceParts {
  index: TraceIndex;
  events: TraceEvents;
  card: TraceCard;
  banners: TraceBanners;
}

class App {
  summary: Summary;
  step = 0;
  view: StepView | null = null;
  /** An actor the user picked; null follows the receiver of each step. */
  pinned: string | null = null;
  query = '';
  marked: number | null = null;
  verified: VerifyResult | null = null;
  /** The trace event selected beside an imported trace's run. */
  selectedTrace: number | null = null;
  #trace: TraceParts | null = null;
  #abort: AbortController | null = null;
  #matchesTimer = 0;
  #matchesSeq = 0;
  #liveMatchesAt = 0;
  #seq: SequenceView;
  #chart = new StatechartView((m) => this.notice(m));
  #panel = new StatePanel();
  #diff = new DiffView();
  #steer: SteerPanel;
  #stepInput: HTMLInputElement;
  #filter: HTMLInputElement;
  #hide: HTMLInputElement;
  #fields: HTMLInputElement;
  #findStatus: HTMLElement;
  #markStatus: HTMLElement;
  #card: HTMLElement;
  #tabs: HTMLElement;
  #banners: HTMLElement;
  #notice: HTMLElement;
  #steps: HTMLElement;
  #outcome: HTMLElement;
  #claim: HTMLElement;
  #verifyStatus: HTMLElement;
  #follow: HTMLInputElement;
  #pending: HTMLElement;

  constructor(summary: Summary, trace: TraceIndex | null) {
    this.summary = summary;
    if (trace) {
      const events = new TraceEvents(
        () => {
          this.#seq.render();
          if (this.view) this.#trace?.card.show(this.view, this.selectedTrace);
        },
        (m) => this.notice(m),
      );
      const actions: TraceActions = { selectTrace: (id) => this.selectTrace(id), goTo: (n) => this.goTo(n), openDivergence: (d) => this.openDivergence(d) };
      this.#trace = { index: trace, events, card: new TraceCard(trace, events, actions), banners: new TraceBanners(trace, actions) };
    }
    const t = this.#trace;
    this.#seq = new SequenceView(summary.actors.map((a) => a.id), (s) => this.goTo(s), (m) => this.notice(m), t ? { index: t.index, events: t.events, onSelect: (id) => this.selectTrace(id) } : null);
    this.#steer = new SteerPanel((log, step) => openLog(log, step));
    this.#stepInput = h('input', { id: 'step-input', type: 'number', min: 0, max: summary.steps, value: 0, 'aria-label': 'step', title: 'Jump to a step (g)' });
    this.#filter = h('input', { id: 'filter', type: 'search', placeholder: 'filter: #VE  TDX_OPERAND_BUSY  kvm.mmu  0x8000fe000000  to:tdx  "gen=1"', 'aria-label': 'filter', title: 'Enter: next match, Shift+Enter: previous (n / p outside the box); the search wraps round', spellcheck: 'false' });
    this.#hide = h('input', { type: 'checkbox', id: 'filter-hide' });
    this.#fields = h('input', { type: 'checkbox', id: 'show-fields' });
    this.#findStatus = h('span', { id: 'find-status', class: 'muted', 'aria-live': 'polite' });
    this.#markStatus = h('span', { id: 'mark-status', class: 'muted' });
    this.#steps = h('span', { id: 'steps' }, summary.steps);
    this.#card = h('section', { id: 'step-card', 'aria-label': 'step' });
    this.#tabs = h('nav', { id: 'actor-tabs', 'aria-label': 'actors' });
    this.#banners = h('div', { id: 'banners' });
    this.#notice = h('div', { id: 'notice', hidden: true, role: 'status' });
    this.#follow = h('input', { type: 'checkbox', id: 'follow', checked: true });
    this.#pending = h('details', { id: 'pending' });
    this.#outcome = h('span', { id: 'outcome', class: 'badge' });
    this.#claim = h('span', { id: 'claim', class: 'claim', title: 'Not yet re-derived by replaying the log' }, 'claimed by the log');
    this.#verifyStatus = h('span', { id: 'verify-status', class: 'muted', 'aria-live': 'polite' });
    this.#layout();
  }

  #button(id: string, label: string, title: string, onClick: () => void): HTMLButtonElement {
    return h('button', { id, type: 'button', title, 'aria-label': title, onclick: onClick }, label);
  }

  #layout(): void {
    const s = this.summary;
    const header = h(
      'header',
      { id: 'top' },
      h(
        'div',
        { class: 'title' },
        h('strong', {}, 'tdxsim'),
        ' ',
        h('span', { id: 'scenario' }, s.scenario),
        ' ',
        h('span', { id: 'file', class: 'muted', title: s.description }, s.file),
        ' ',
        s.steered ? h('span', { id: 'steered-badge', class: 'badge steered' }, `steered at step ${s.steered.step}`) : null,
        this.#outcome,
        this.#claim,
        s.live ? h('span', { id: 'live', class: 'badge live' }, 'live') : null,
        s.trace ? h('span', { id: 'trace-badge', class: `badge ${s.trace.divergenceCount === 0 ? 'ok' : 'failure'}`, title: s.trace.inputs.map((i) => i.file).join(', ') }, s.trace.divergenceCount === 0 ? 'trace: no divergence' : `trace: ${s.trace.divergenceCount} divergence${s.trace.divergenceCount === 1 ? '' : 's'}`) : null,
        ' ',
        this.#verifyStatus,
      ),
      h(
        'div',
        { class: 'controls' },
        this.#button('first', '|◀', 'First step (Home)', () => this.goTo(0)),
        this.#button('prev', '◀', 'Previous step (←)', () => this.goTo(this.step - 1)),
        h('label', { class: 'step-box' }, 'step ', this.#stepInput, ' / ', this.#steps),
        this.#button('next', '▶', 'Next step (→)', () => this.goTo(this.step + 1)),
        this.#button('last', '▶|', 'Last step (End)', () => this.goTo(this.summary.steps)),
        h('span', { class: 'sep' }),
        this.#filter,
        this.#button('find-prev', '◀ match', 'Previous match (Shift+Enter, p)', () => void this.find('prev')),
        this.#button('find-next', 'match ▶', 'Next match (Enter, n)', () => void this.find('next')),
        h('label', { class: 'toggle', title: 'List only the steps that match the filter' }, this.#hide, ' only matches'),
        this.#findStatus,
        h('span', { class: 'sep' }),
        h('label', { class: 'toggle', title: 'Show each message’s fields under its arrow (f)' }, this.#fields, ' fields'),
        h('span', { class: 'sep' }),
        this.#button('mark', 'mark', 'Mark this step for a diff (m)', () => this.mark()),
        this.#button('diff-open', 'diff', 'Compare the marked step with this one (d)', () => this.diff()),
        this.#markStatus,
      ),
    );
    const follow = h('label', { class: 'follow', title: 'Show the actor that receives each step' }, this.#follow, ' follow the receiver');
    const t = this.#trace;
    const detail = h('div', { id: 'detail' }, t ? t.card.element : null, this.#card, this.#steer.element, h('div', { class: 'tabs-row' }, this.#tabs, follow), this.#chart.element, this.#panel.element, this.#diff.element, this.#pending, t ? t.card.scenario : null);
    document.body.append(...[header, this.#banners, t ? t.banners.element : null, this.#notice, h('main', { class: t ? 'with-trace' : '' }, this.#seq.element, detail)].filter((e) => e !== null));

    // Enter may also fire `change`: go only where we are not already.
    const jump = () => {
      const n = Number(this.#stepInput.value);
      if (n !== this.view?.step) this.goTo(n);
    };
    this.#stepInput.addEventListener('change', jump);
    this.#stepInput.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') jump();
    });
    this.#filter.addEventListener('input', () => this.setQuery(this.#filter.value));
    this.#filter.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        void this.find(e.shiftKey ? 'prev' : 'next');
      } else if (e.key === 'Escape') {
        this.#filter.blur();
      }
    });
    this.#hide.addEventListener('change', () => this.#refreshOrder());
    this.#fields.addEventListener('change', () => this.#seq.setShowFields(this.#fields.checked));
    this.#follow.addEventListener('change', () => {
      this.pinned = this.#follow.checked ? null : (this.pinned ?? this.#selectedActor());
      this.#writeHash();
      this.#showSelected();
    });
    document.addEventListener('keydown', (e) => this.#key(e));
    window.addEventListener('hashchange', () => this.#applyHash());
  }

  #key(e: KeyboardEvent): void {
    const t = e.target as HTMLElement;
    if (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || e.ctrlKey || e.metaKey || e.altKey) return;
    const actions: Record<string, () => void> = {
      ArrowRight: () => this.goTo(this.step + 1),
      ArrowDown: () => this.goTo(this.step + 1),
      j: () => this.goTo(this.step + 1),
      ArrowLeft: () => this.goTo(this.step - 1),
      ArrowUp: () => this.goTo(this.step - 1),
      k: () => this.goTo(this.step - 1),
      Home: () => this.goTo(0),
      End: () => this.goTo(this.summary.steps),
      PageDown: () => this.goTo(this.step + 20),
      PageUp: () => this.goTo(this.step - 20),
      n: () => void this.find('next'),
      p: () => void this.find('prev'),
      N: () => void this.find('prev'),
      '/': () => this.#filter.focus(),
      g: () => this.#stepInput.select(),
      m: () => this.mark(),
      d: () => this.diff(),
      '[': () => this.#stepDivergence(-1),
      ']': () => this.#stepDivergence(1),
      f: () => {
        this.#fields.checked = !this.#fields.checked;
        this.#seq.setShowFields(this.#fields.checked);
      },
    };
    const act = actions[e.key];
    if (act) {
      e.preventDefault();
      act();
    }
  }

  start(): void {
    const hs = readViewHash();
    this.pinned = hs.actor !== null && this.summary.actors.some((a) => a.id === hs.actor) ? hs.actor : null;
    this.#follow.checked = this.pinned === null;
    this.marked = hs.mark !== null && hs.mark <= this.summary.steps ? hs.mark : null;
    this.#showMark();
    if (hs.q) {
      this.#filter.value = hs.q;
      this.setQuery(hs.q);
    }
    this.#seq.setSteps(this.summary.steps);
    this.#seq.setMarks(this.summary.lasso, this.summary.steered?.step ?? null);
    this.#showOutcome();
    this.#showBanners();
    if (this.summary.warning) this.notice(this.summary.warning);
    const first = this.#trace?.index.first ?? null;
    api.statecharts().then(
      (r) => {
        this.#chart.setLayouts(r.machines);
        this.#renderActor();
      },
      (e: Error) => this.#chart.showError(e.message),
    );
    // A counterexample opens on its failing step, a steered log on its steered step, an imported trace on
    // its first divergence (both ends), unless the URL names a step.
    if (hs.step === null && hs.trace === null && first !== null) this.openDivergence(first);
    else if (hs.trace !== null && this.#trace?.index.placeOf(hs.trace)) this.goTo(hs.step ?? this.#trace.index.placeOf(hs.trace)!.seq, hs.trace);
    else this.goTo(hs.step ?? this.summary.steered?.step ?? this.summary.failure?.step ?? 0);
    if (this.summary.live) this.#subscribe();
    else this.#verify();
  }

  /** The background check; until it passes, everything the end record says is a claim. */
  #verify(): void {
    this.#verifyStatus.textContent = 'verifying…';
    this.#verifyStatus.className = 'muted';
    api.verify().then(
      (r) => {
        this.verified = r;
        // A failure is spelled out in its banner; the header keeps it short.
        this.#verifyStatus.textContent = r.status === 'failed' ? 'not verified' : r.text;
        this.#verifyStatus.title = r.text;
        this.#verifyStatus.className = `verify ${r.status}`;
        this.#showOutcome();
        this.#showBanners();
      },
      (e: Error) => {
        this.verified = { status: 'failed', text: `not verified: ${e.message}` };
        this.#verifyStatus.textContent = 'not verified';
        this.#verifyStatus.title = this.verified.text;
        this.#verifyStatus.className = 'verify failed';
        this.#showBanners();
      },
    );
  }

  get #isFact(): boolean {
    return this.verified?.status === 'verified';
  }

  #showOutcome(): void {
    const s = this.summary;
    const o = this.#outcome;
    o.className = `badge ${s.outcome?.status ?? ''}`;
    o.textContent = s.outcome === null ? (s.live ? 'running' : s.torn ? 'torn: no outcome' : 'no end record') : s.outcome.status;
    this.#claim.hidden = s.outcome === null || this.#isFact;
  }

  #showBanners(): void {
    const s = this.summary;
    const claim = this.#isFact ? '' : ' (claimed by the log)';
    clear(this.#banners);
    const add = (id: string, cls: string, ...children: (Node | string | null)[]) => {
      const b = h('div', { id, class: `banner ${cls}`, role: cls === 'notice' ? 'status' : 'alert' });
      for (const c of children) if (c !== null) b.append(c);
      this.#banners.append(b);
    };
    if (this.verified?.status === 'failed') add('verify-banner', 'failure', h('strong', {}, 'The log did not verify: '), this.verified.text.replace(/^not verified: /, ''), ' — what it says about its outcome is not confirmed by the model.');
    if (s.torn) add('torn-banner', 'torn', h('strong', {}, 'Torn log: '), s.torn.notice);
    if (s.steered) {
      const st = s.steered;
      add(
        'steered-banner',
        'steered',
        h('strong', {}, `Steered at step ${st.step}: `),
        `this run delivers ${st.chose}`,
        st.insteadOf ? ` instead of ${st.insteadOf}` : ' after the end of the log it came from',
        ', then FIFO to the end. The log it came from is unchanged. ',
        h('a', { id: 'download', href: api.downloadUrl(), download: st.fileName }, `download ${st.fileName}`),
        ' ',
        h('button', { type: 'button', class: 'small', id: 'back-to-parent', onclick: () => openLog(st.parent, st.step - 1) }, 'back to the log it came from'),
      );
    }
    const f = s.failure;
    // A lasso's failure is its loop, which has a banner of its own below.
    if (f && !s.lasso) {
      add(
        'banner',
        'failure',
        h('strong', {}, `Counterexample${claim}: failure at step ${f.step}`),
        ' — ',
        h('span', { id: 'failure-reason' }, f.reason),
        f.detail && f.detail !== f.reason ? `: ${f.detail}` : '',
        f.actor ? ` (${f.actor})` : '',
        ' ',
        h('button', { type: 'button', class: 'small', onclick: () => this.goTo(f.step) }, `go to step ${f.step}`),
      );
    }
    const l = s.lasso;
    if (l) {
      add(
        'lasso-banner',
        'lasso',
        h('span', { class: 'badge loop' }, 'loop'),
        ' ',
        h('strong', {}, `Non-progress cycle${claim}: steps ${l.first}–${l.last} repeat forever`),
        ` (after step ${l.last} the world is as after step ${l.loopStart})`,
        l.starving ? `; starving: ${l.starving}` : '',
        l.retries ? `; retries: ${l.retries}` : '',
        ' ',
        h('button', { type: 'button', class: 'small', onclick: () => this.goTo(l.first) }, `go to step ${l.first}`),
      );
    }
    if (s.preemptions !== null) {
      add('preemptions', 'notice', `Schedule ${s.steered ? 'steered in the inspector' : 'found by tdxsim explore'}: ${s.preemptions} preemption${s.preemptions === 1 ? '' : 's'}, marked `, h('span', { class: 'p-mark' }, 'P'), ' beside the step (a delivery that leaves the thread the previous step started).');
    }
  }

  notice(msg: string): void {
    this.#notice.textContent = msg;
    this.#notice.hidden = false;
  }

  #applyHash(): void {
    const hs = readViewHash();
    if (hs.log !== api.log) return location.reload();
    if (hs.actor !== this.pinned && (hs.actor === null || this.summary.actors.some((a) => a.id === hs.actor))) {
      this.pinned = hs.actor;
      this.#follow.checked = this.pinned === null;
    }
    if (hs.q !== this.query) {
      this.#filter.value = hs.q;
      this.setQuery(hs.q);
    }
    const trace = hs.trace !== null && this.#trace?.index.placeOf(hs.trace) ? hs.trace : null;
    if (hs.step !== null && (hs.step !== this.step || trace !== this.selectedTrace)) this.goTo(hs.step, trace ?? undefined);
    else this.#showSelected();
  }

  #writeHash(): void {
    writeViewHash({ step: this.step, actor: this.pinned, q: this.query, mark: this.marked, log: api.log, trace: this.selectedTrace });
  }

  setQuery(q: string): void {
    this.query = q.trim();
    this.#seq.setMatcher(compileQuery(this.query));
    this.#findStatus.textContent = '';
    this.#findStatus.classList.remove('wrapped');
    this.#writeHash();
    // Typing: ask for the matching rows once the user pauses.
    clearTimeout(this.#matchesTimer);
    this.#matchesTimer = window.setTimeout(() => this.#refreshOrder(), 200);
  }

  #refreshOrder(): void {
    const seq = ++this.#matchesSeq;
    if (!this.#hide.checked || !this.query) {
      this.#seq.setOrder(null);
      return;
    }
    api.matches(this.query).then(
      (r) => {
        if (seq === this.#matchesSeq) this.#seq.setOrder(r.seqs, r.traces ?? null);
      },
      (e: Error) => this.notice(`filter: ${e.message}`),
    );
  }

  async find(dir: 'next' | 'prev'): Promise<void> {
    if (!this.query) {
      this.#filter.focus();
      return;
    }
    try {
      const r = await api.find(this.query, this.step, dir, this.#trace ? this.selectedTrace : null);
      const st = this.#findStatus;
      st.classList.toggle('wrapped', r.wrapped);
      if (r.seq !== null) {
        this.goTo(r.seq, r.trace ?? undefined);
        const where = r.trace !== null && r.trace !== undefined ? `trace event at step ${r.seq}` : `step ${r.seq}`;
        const count = `${r.total} matching step${r.total === 1 ? '' : 's'}${r.traceTotal !== undefined ? `, ${r.traceTotal} trace event${r.traceTotal === 1 ? '' : 's'}` : ''}`;
        st.textContent = r.wrapped ? `wrapped: ${dir === 'next' ? `past the last match, back to the first (${where})` : `before the first match, on to the last (${where})`} · ${count}` : count;
      } else {
        st.textContent = 'no step matches';
      }
    } catch (e) {
      this.notice(`find: ${(e as Error).message}`);
    }
  }

  mark(): void {
    this.marked = this.step;
    this.#showMark();
    this.#writeHash();
  }

  #showMark(): void {
    this.#markStatus.textContent = this.marked === null ? '' : `marked: step ${this.marked}`;
  }

  diff(): void {
    void this.#diff.run(this.marked ?? 0, this.step);
    this.#diff.element.scrollIntoView({ block: 'nearest' });
  }

  /**
   * Shows step n. With an imported trace, `trace` is the trace event to select with it; left out, the
   * step's first trace partner is (or none).
   */
  goTo(n: number, trace?: number): void {
    if (!Number.isFinite(n)) return;
    const step = Math.max(0, Math.min(this.summary.steps, Math.trunc(n)));
    this.step = step;
    if (this.#trace) this.selectedTrace = trace ?? this.#trace.index.onStep(step)[0] ?? null;
    this.#stepInput.value = String(step);
    this.#writeHash();
    this.#abort?.abort();
    const abort = new AbortController();
    this.#abort = abort;
    document.body.classList.add('loading');
    api.step(step, this.pinned, abort.signal).then(
      (v) => {
        if (abort.signal.aborted) return;
        document.body.classList.remove('loading');
        this.view = v;
        this.#render();
      },
      (e: Error) => {
        if (abort.signal.aborted) return;
        document.body.classList.remove('loading');
        this.notice(`step ${step}: ${e.message}`);
      },
    );
  }

  #selectedActor(): string {
    const v = this.view;
    if (this.pinned) return this.pinned;
    return v?.event?.to ?? this.summary.actors[0]?.id ?? '';
  }

  /** Selects trace event `id` and the step it aligns with (or, with no partner, the step it follows). */
  selectTrace(id: number): void {
    const place = this.#trace?.index.placeOf(id);
    if (place) this.goTo(place.seq, id);
  }

  /** Shows both ends of a divergence: its model step and its trace event, with its entry opened. */
  openDivergence(d: TraceDivergence): void {
    const id = d.trace?.id ?? null;
    const seq = d.seq ?? (id !== null ? (this.#trace?.index.placeOf(id)?.seq ?? 0) : 0);
    this.#trace?.banners.show(d.index);
    this.goTo(seq, id ?? undefined);
  }

  /** `]` / `[`: the next or previous divergence, in the order of the banner (trace order), wrapping round. */
  #stepDivergence(dir: 1 | -1): void {
    const list = this.#trace?.index.divergences ?? [];
    if (list.length === 0) return;
    const cur = list.findIndex((d) => d.seq === this.step && (d.trace?.id ?? null) === this.selectedTrace);
    let next: number;
    if (cur !== -1) next = cur + dir;
    else if (dir > 0) next = Math.max(0, list.findIndex((d) => (d.seq ?? 0) > this.step));
    else next = list.reduce((k, d, i) => ((d.seq ?? 0) < this.step ? i : k), -1);
    this.openDivergence(list[(next + list.length) % list.length]!);
  }

  #render(): void {
    const v = this.view!;
    this.#seq.setCurrent(v.step, v.event?.cause ?? null, v.effects, this.selectedTrace);
    this.#trace?.card.show(v, this.selectedTrace);
    renderStepCard(this.#card, v, (n) => this.goTo(n), { lasso: this.summary.lasso, steered: this.summary.steered?.step ?? null });
    this.#steer.setStep(v.step, this.summary.live);
    this.#renderActor();
    renderPending(this.#pending, v);
    document.title = `step ${v.step} · ${this.summary.scenario} · tdxsim inspect`;
  }

  #renderActor(): void {
    const v = this.view;
    if (!v) return;
    const selected = this.#selectedActor();
    clear(this.#tabs);
    for (const a of v.actors) {
      const cls = ['tab', a.id === selected ? 'selected' : '', a.changed ? 'changed' : '', a.id === v.event?.to ? 'receiver' : ''].filter(Boolean).join(' ');
      this.#tabs.append(
        h(
          'button',
          { type: 'button', class: cls, 'data-actor': a.id, 'aria-pressed': a.id === selected ? 'true' : 'false', title: `${a.id}: ${a.state}`, onclick: () => this.#pin(a.id) },
          h('span', { class: 'tab-id' }, a.id),
          h('span', { class: 'tab-state' }, a.state),
        ),
      );
    }
    const a: ActorStep | undefined = v.actors.find((x) => x.id === selected);
    if (!a) return;
    this.#chart.show(a.id, a.machine, a.active, v.taken && v.taken.actor === a.id ? v.taken.transitions : []);
    this.#panel.show(a);
  }

  #pin(actor: string): void {
    this.pinned = actor;
    this.#follow.checked = false;
    this.#writeHash();
    this.#showSelected();
  }

  /** Show the selected actor, fetching the step again if this view does not carry its context. */
  #showSelected(): void {
    const a = this.view?.actors.find((x) => x.id === this.#selectedActor());
    if (a && !a.detailed) this.goTo(this.step);
    else this.#renderActor();
  }

  /** `run --inspect`: follow the run as it delivers, staying at the tip if the user was there. */
  #subscribe(): void {
    const es = new EventSource(api.liveUrl());
    es.onmessage = (m) => {
      const u = JSON.parse(String(m.data)) as { steps: number; live: boolean };
      const atTip = this.step === this.summary.steps;
      this.summary.steps = u.steps;
      this.#steps.textContent = String(u.steps);
      this.#stepInput.max = String(u.steps);
      this.#seq.setSteps(u.steps);
      // The list of matching rows grows with the run; a full scan a second is plenty.
      if (this.#hide.checked && this.query && (!u.live || Date.now() - this.#liveMatchesAt > 1000)) {
        this.#liveMatchesAt = Date.now();
        this.#refreshOrder();
      }
      if (atTip) this.goTo(u.steps);
      if (!u.live) {
        es.close();
        void api.summary().then((s) => {
          this.summary = s;
          document.getElementById('live')?.remove();
          this.#showOutcome();
          this.#showBanners();
          if (s.failure && atTip) this.goTo(s.failure.step);
          this.#steer.setStep(this.step, false);
          this.#verify();
        });
      }
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) this.notice('live updates stopped: the run is no longer reachable');
    };
  }
}

async function boot(): Promise<void> {
  api.setLog(readViewHash().log);
  try {
    const summary = await api.summary();
    document.title = `${summary.scenario} · tdxsim inspect`;
    const trace = summary.trace ? new TraceIndex(await api.trace(), summary.steps) : null;
    new App(summary, trace).start();
  } catch (e) {
    document.body.append(h('div', { class: 'banner failure', role: 'alert' }, h('strong', {}, 'Cannot load the log: '), (e as Error).message));
  }
}

void boot();
