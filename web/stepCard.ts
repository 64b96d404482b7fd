/**
 * The card at the top of the detail pane: the step's message as the CLI prints it, its causal links (the
 * step that sent it, the steps it sent), the statechart transitions it took, any failure it raised and its
 * payload; and below the panels, the messages still in flight after the step.
 */
import type { LassoInfo, StepView } from '../src/inspect/api.ts';
import { clear, h } from './dom.ts';
import { contextTree } from './statePanel.ts';

/** `executing —#VE→ inVeHandler —(always)→ gettingVeInfo`, from the transition ids and the final state. */
function takenText(v: StepView): string[] {
  return (v.taken?.transitions ?? []).map((id) => {
    const [source = '', event = ''] = id.split('|');
    return `${source.slice(source.lastIndexOf('.') + 1)} —${event === 'always' ? '(always)' : event}→`;
  });
}

export function renderStepCard(card: HTMLElement, v: StepView, goTo: (step: number) => void, marks: { lasso: LassoInfo | null; steered: number | null }): void {
  const link = (n: number) => h('button', { type: 'button', class: 'link', 'data-goto': n, onclick: () => goTo(n) }, String(n));
  clear(card);
  const l = marks.lasso;
  const inLoop = l !== null && v.step >= l.first && v.step <= l.last;
  card.append(
    h(
      'div',
      { class: 'card-head' },
      h('span', { class: 'step-no' }, `Step ${v.step}`),
      h('span', { class: 'muted' }, ` of ${v.steps}`),
      v.step === marks.steered ? h('span', { class: 'badge steered', id: 'card-steered' }, 'steered: the message picked in the inspector') : null,
      inLoop ? h('span', { class: 'badge loop', id: 'card-loop', title: `steps ${l.first}–${l.last} repeat forever` }, `loop ${v.step - l.first + 1}/${l.last - l.first + 1}`) : null,
      v.event?.preemption ? h('span', { class: 'badge preemption', id: 'card-preemption', title: v.event.preemption }, 'preemption') : null,
    ),
  );
  if (v.event?.preemption) card.append(h('div', { class: 'preemption-note muted' }, v.event.preemption));
  if (v.event === null) {
    card.append(h('p', { class: 'muted' }, 'The initial state: every actor as the scenario configured it, before the first message is delivered.'));
    return;
  }
  const e = v.event;
  card.append(h('div', { class: 'event-line' }, h('span', { class: 'actor' }, e.from), ' → ', h('span', { class: 'actor' }, e.to), '  ', h('span', { id: 'event-name', class: 'msg-name' }, e.label)));
  if (e.fields) card.append(h('div', { class: 'fields mono' }, e.fields));
  const links = h('div', { class: 'causality' });
  links.append(e.cause === null ? h('span', { class: 'muted' }, 'sent by the scenario at the start') : h('span', {}, 'caused by step ', link(e.cause)));
  if (v.effects.length > 0) links.append(h('span', {}, '  · sent while handling it: ', ...v.effects.flatMap((x, i) => [i > 0 ? ', ' : '', link(x)])));
  card.append(links);
  const steps = takenText(v);
  if (v.taken && steps.length > 0) {
    const actor = v.actors.find((a) => a.id === v.taken!.actor);
    card.append(h('div', { class: 'taken' }, h('span', { class: 'muted' }, `${v.taken.actor}: `), steps.join(' '), ' ', h('strong', {}, actor?.state ?? '')));
  }
  for (const f of v.failures) card.append(h('div', { class: 'banner failure' }, h('strong', {}, `failure (${f.actor}): ${f.reason}`), ` ${f.detail}`));
  if (v.payload.length > 0) card.append(h('details', { class: 'payload' }, h('summary', {}, 'payload'), contextTree(v.payload)));
}

export function renderPending(list: HTMLElement, v: StepView): void {
  clear(list);
  list.append(h('summary', {}, `${v.pending.length} message${v.pending.length === 1 ? '' : 's'} in flight after this step`));
  const ul = h('ul', { class: 'pending-list' });
  for (const m of v.pending) ul.append(h('li', {}, h('span', { class: 'actor' }, m.from), ' → ', h('span', { class: 'actor' }, m.to), '  ', h('span', { class: 'msg-name' }, m.label), m.fields ? h('span', { class: 'fields mono' }, `  ${m.fields}`) : null));
  list.append(ul);
}
