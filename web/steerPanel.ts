/**
 * Steering, in the detail pane: the messages that could be delivered after the current step, the log's
 * own choice among them marked; picking another asks the server for a new log that delivers it there and
 * runs FIFO to the end, and the page then shows that log. The log on disk is never touched.
 */
import type { ChoicesResult } from '../src/inspect/api.ts';
import { api } from './api.ts';
import { clear, h } from './dom.ts';

export class SteerPanel {
  readonly element: HTMLDetailsElement;
  #body: HTMLElement;
  #step = 0;
  #seq = 0;
  #onSteered: (log: string, step: number) => void;

  constructor(onSteered: (log: string, step: number) => void) {
    this.#onSteered = onSteered;
    this.#body = h('div', { class: 'steer-body' });
    this.element = h('details', { id: 'steer' }, h('summary', {}, 'Steer: deliver a different message next'), this.#body);
    this.element.addEventListener('toggle', () => {
      if (this.element.open) void this.#load();
    });
  }

  /** The step shown changed: the choices are those after it. */
  setStep(step: number, live: boolean): void {
    this.#step = step;
    this.element.hidden = live;
    if (this.element.open) void this.#load();
  }

  async #load(): Promise<void> {
    const seq = ++this.#seq;
    const n = this.#step;
    clear(this.#body);
    this.#body.append(h('p', { class: 'muted' }, 'loading the enabled messages…'));
    let r: ChoicesResult;
    try {
      r = await api.choices(n);
    } catch (e) {
      if (seq === this.#seq) this.#show(h('p', { class: 'error' }, (e as Error).message));
      return;
    }
    if (seq !== this.#seq) return;
    if (r.choices.length === 0) return this.#show(h('p', { class: 'muted' }, `nothing can be delivered after step ${n}: every message has been handled.`));
    const list = h('ol', { id: 'choices', start: 0 });
    for (const c of r.choices) {
      const pick = h(
        'button',
        { type: 'button', class: 'small choice', 'data-choice': c.index, disabled: c.taken, title: c.taken ? 'the message this log delivers next' : `re-run with this message as step ${r.step}, then FIFO to the end` },
        c.taken ? 'this log’s choice' : `deliver as step ${r.step}`,
      );
      pick.addEventListener('click', () => void this.#steer(n, c.index, pick));
      list.append(h('li', { class: c.taken ? 'taken' : '' }, pick, ' ', h('span', { class: 'actor' }, c.from), ' → ', h('span', { class: 'actor' }, c.to), '  ', h('span', { class: 'msg-name' }, c.label), c.fields ? h('div', { class: 'fields mono' }, c.fields) : null));
    }
    this.#show(
      h('p', { class: 'muted' }, `${r.choices.length} message${r.choices.length === 1 ? ' is' : 's are'} deliverable after step ${n}. Picking one re-runs this schedule to step ${n}, delivers it as step ${r.step}, then continues FIFO to the end; the result is a new log (this one is not changed).`),
      list,
    );
  }

  #show(...nodes: Node[]): void {
    clear(this.#body);
    this.#body.append(...nodes);
  }

  async #steer(n: number, choice: number, button: HTMLButtonElement): Promise<void> {
    for (const b of this.#body.querySelectorAll('button')) b.disabled = true;
    button.textContent = 'running…';
    try {
      const r = await api.steer(n, choice);
      this.#onSteered(r.log, r.step);
    } catch (e) {
      this.#body.append(h('p', { class: 'error', id: 'steer-error' }, `steering failed: ${(e as Error).message}`));
      button.textContent = 'failed';
    }
  }
}
