/**
 * The inspector page: controls for time travel (buttons, arrow keys, jump to a step, next/previous match
 * of a filter), the sequence view, and for the selected actor its statechart and state. The URL's hash
 * holds the step (`#step=27`, plus `actor=` when an actor is pinned and `q=` for the filter), so a view
 * can be shared. A counterexample (a log whose end record is a failure) opens on its failing step.
 */
import './style.css';
import type { ActorStep, StepView, Summary } from '../src/inspect/api.ts';
import { compileQuery } from '../src/inspect/query.ts';
import { api } from './api.ts';
import { byId, clear, h } from './dom.ts';
import { SequenceView } from './sequence.ts';
import { StatechartView } from './statechartView.ts';
import { StatePanel } from './statePanel.ts';
import { renderPending, renderStepCard } from './stepCard.ts';
import { readViewHash, writeViewHash } from './viewHash.ts';

class App {
  summary: Summary;
  step = 0;
  view: StepView | null = null;
  /** An actor the user picked; null follows the receiver of each step. */
  pinned: string | null = null;
  query = '';
  #abort: AbortController | null = null;
  #seq: SequenceView;
  #chart = new StatechartView();
  #panel = new StatePanel();
  #stepInput: HTMLInputElement;
  #filter: HTMLInputElement;
  #findStatus: HTMLElement;
  #card: HTMLElement;
  #tabs: HTMLElement;
  #banner: HTMLElement;
  #notice: HTMLElement;
  #steps: HTMLElement;
  #follow: HTMLInputElement;
  #pending: HTMLElement;

  constructor(summary: Summary) {
    this.summary = summary;
    this.#seq = new SequenceView(summary.actors.map((a) => a.id), (s) => this.goTo(s), (m) => this.notice(m));
    this.#stepInput = h('input', { id: 'step-input', type: 'number', min: 0, max: summary.steps, value: 0, 'aria-label': 'step', title: 'Jump to a step (g)' });
    this.#filter = h('input', { id: 'filter', type: 'search', placeholder: 'filter: #VE  TDX_OPERAND_BUSY  kvm.mmu  0x8000fe000000  to:tdx  "gen=1"', 'aria-label': 'filter', title: 'Enter: next match, Shift+Enter: previous (n / p outside the box)', spellcheck: 'false' });
    this.#findStatus = h('span', { id: 'find-status', class: 'muted', 'aria-live': 'polite' });
    this.#steps = h('span', { id: 'steps' }, summary.steps);
    this.#card = h('section', { id: 'step-card', 'aria-label': 'step' });
    this.#tabs = h('nav', { id: 'actor-tabs', 'aria-label': 'actors' });
    this.#banner = h('div', { id: 'banner', hidden: true, role: 'alert' });
    this.#notice = h('div', { id: 'notice', hidden: true, role: 'status' });
    this.#follow = h('input', { type: 'checkbox', id: 'follow', checked: true });
    this.#pending = h('details', { id: 'pending' });
    this.#layout();
  }

  #button(id: string, label: string, title: string, onClick: () => void): HTMLButtonElement {
    return h('button', { id, type: 'button', title, 'aria-label': title, onclick: onClick }, label);
  }

  #layout(): void {
    const s = this.summary;
    const outcome = s.outcome === null ? h('span', { id: 'outcome', class: 'badge' }, s.live ? 'running' : 'no end record') : h('span', { id: 'outcome', class: `badge ${s.outcome.status}` }, s.outcome.status);
    const header = h(
      'header',
      { id: 'top' },
      h('div', { class: 'title' }, h('strong', {}, 'tdxsim'), ' ', h('span', { id: 'scenario' }, s.scenario), ' ', h('span', { id: 'file', class: 'muted', title: s.description }, s.file), ' ', outcome, s.live ? h('span', { id: 'live', class: 'badge live' }, 'live') : null),
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
        this.#findStatus,
      ),
    );
    const follow = h('label', { class: 'follow', title: 'Show the actor that receives each step' }, this.#follow, ' follow the receiver');
    const detail = h('div', { id: 'detail' }, this.#card, h('div', { class: 'tabs-row' }, this.#tabs, follow), this.#chart.element, this.#panel.element, this.#pending);
    document.body.append(header, this.#banner, this.#notice, h('main', {}, this.#seq.element, detail));

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
    if (hs.q) {
      this.#filter.value = hs.q;
      this.setQuery(hs.q);
    }
    this.#seq.setSteps(this.summary.steps);
    this.#showFailure();
    if (this.summary.warning) this.notice(this.summary.warning);
    api.statecharts().then(
      (r) => {
        this.#chart.setLayouts(r.machines);
        this.#renderActor();
      },
      (e: Error) => this.#chart.showError(e.message),
    );
    // A counterexample opens on its failing step unless the URL names one.
    this.goTo(hs.step ?? this.summary.failure?.step ?? 0);
    if (this.summary.live) this.#subscribe();
  }

  #showFailure(): void {
    const f = this.summary.failure;
    if (!f) {
      this.#banner.hidden = true;
      return;
    }
    clear(this.#banner);
    this.#banner.className = 'banner failure';
    this.#banner.append(
      h('strong', {}, `Counterexample: failure at step ${f.step}`),
      ' — ',
      h('span', { id: 'failure-reason' }, f.reason),
      f.detail && f.detail !== f.reason ? `: ${f.detail}` : '',
      f.actor ? ` (${f.actor})` : '',
      ' ',
      h('button', { type: 'button', class: 'small', onclick: () => this.goTo(f.step) }, `go to step ${f.step}`),
    );
    this.#banner.hidden = false;
  }

  notice(msg: string): void {
    this.#notice.textContent = msg;
    this.#notice.hidden = false;
  }

  #applyHash(): void {
    const hs = readViewHash();
    if (hs.actor !== this.pinned && (hs.actor === null || this.summary.actors.some((a) => a.id === hs.actor))) {
      this.pinned = hs.actor;
      this.#follow.checked = this.pinned === null;
    }
    if (hs.q !== this.query) {
      this.#filter.value = hs.q;
      this.setQuery(hs.q);
    }
    if (hs.step !== null && hs.step !== this.step) this.goTo(hs.step);
    else this.#showSelected();
  }

  #writeHash(): void {
    writeViewHash({ step: this.step, actor: this.pinned, q: this.query });
  }

  setQuery(q: string): void {
    this.query = q.trim();
    this.#seq.setMatcher(compileQuery(this.query));
    this.#findStatus.textContent = '';
    this.#writeHash();
  }

  async find(dir: 'next' | 'prev'): Promise<void> {
    if (!this.query) {
      this.#filter.focus();
      return;
    }
    try {
      const r = await api.find(this.query, this.step, dir);
      if (r.seq !== null) {
        this.goTo(r.seq);
        this.#findStatus.textContent = `${r.total} matching step${r.total === 1 ? '' : 's'}`;
      } else {
        this.#findStatus.textContent = r.total === 0 ? 'no step matches' : `no match ${dir === 'next' ? 'after' : 'before'} step ${this.step} (${r.total} in all)`;
      }
    } catch (e) {
      this.notice(`find: ${(e as Error).message}`);
    }
  }

  goTo(n: number): void {
    if (!Number.isFinite(n)) return;
    const step = Math.max(0, Math.min(this.summary.steps, Math.trunc(n)));
    this.step = step;
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

  #render(): void {
    const v = this.view!;
    this.#seq.setCurrent(v.step, v.event?.cause ?? null, v.effects);
    renderStepCard(this.#card, v, (n) => this.goTo(n));
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
    const es = new EventSource('/api/live');
    es.onmessage = (m) => {
      const u = JSON.parse(String(m.data)) as { steps: number; live: boolean };
      const atTip = this.step === this.summary.steps;
      this.summary.steps = u.steps;
      this.#steps.textContent = String(u.steps);
      this.#stepInput.max = String(u.steps);
      this.#seq.setSteps(u.steps);
      if (atTip) this.goTo(u.steps);
      if (!u.live) {
        es.close();
        void api.summary().then((s) => {
          this.summary = s;
          document.getElementById('live')?.remove();
          const o = byId('outcome');
          o.className = `badge ${s.outcome?.status ?? ''}`;
          o.textContent = s.outcome?.status ?? 'no end record';
          this.#showFailure();
          if (s.failure && atTip) this.goTo(s.failure.step);
        });
      }
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) this.notice('live updates stopped: the run is no longer reachable');
    };
  }
}

async function boot(): Promise<void> {
  try {
    const summary = await api.summary();
    document.title = `${summary.scenario} · tdxsim inspect`;
    new App(summary).start();
  } catch (e) {
    document.body.append(h('div', { class: 'banner failure', role: 'alert' }, h('strong', {}, 'Cannot load the log: '), (e as Error).message));
  }
}

void boot();
