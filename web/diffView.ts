/**
 * The diff between two steps A and B: every actor whose state changed, its state path A → B, each changed
 * context path old → new, and each changed page-table entry (SPTE or S-EPT) with both sides decoded on
 * the server by the state panel's own helpers. A is the marked step (`m`), B the current one, unless the
 * user types others.
 */
import type { ActorDiff, DiffResult } from '../src/inspect/api.ts';
import { api } from './api.ts';
import { clear, h } from './dom.ts';

function actorBlock(a: ActorDiff, r: DiffResult): HTMLElement {
  const head = h(
    'h4',
    {},
    h('span', { class: 'actor-id' }, a.id),
    ' ',
    a.stateA === a.stateB ? h('span', { class: 'state-path' }, a.stateA) : h('span', { class: 'state-change' }, h('span', { class: 'old' }, a.stateA), ' → ', h('span', { class: 'new' }, a.stateB)),
    a.statusA !== a.statusB ? h('span', { class: 'badge failure' }, `${a.statusA} → ${a.statusB}`) : null,
  );
  const block = h('div', { class: 'diff-actor', 'data-actor': a.id }, head);
  if (a.paths.length > 0) {
    const body = h('tbody');
    for (const p of a.paths) body.append(h('tr', { 'data-path': p.path }, h('td', { class: 'key' }, p.path), h('td', { class: 'old mono' }, p.old), h('td', { class: 'new mono' }, p.new)));
    block.append(h('table', { class: 'diff-paths' }, h('thead', {}, h('tr', {}, h('th', {}, 'context path'), h('th', {}, `step ${r.a}`), h('th', {}, `step ${r.b}`))), body));
  }
  if (a.tables.length > 0) {
    const body = h('tbody');
    for (const t of a.tables) {
      const side = (x: typeof t.old) => (x === null ? h('td', { class: 'mono absent' }, `absent (${t.absent})`) : h('td', { class: 'mono' }, h('span', { class: 'hex' }, x.entry), ' ', h('span', { class: 'decoded' }, x.decoded)));
      body.append(
        h(
          'tr',
          { 'data-field': t.field, 'data-pfn': t.pfn, 'data-index': t.index, class: `table-change ${t.kind}` },
          h('td', { class: 'mono' }, `${t.field} pfn ${t.pfn} [${t.index}]${t.level === null ? '' : ` ${t.kind === 'sept' ? 'TDX level' : 'pg_level'} ${t.level}`}`),
          side(t.old),
          side(t.new),
        ),
      );
    }
    block.append(h('table', { class: 'diff-tables' }, h('thead', {}, h('tr', {}, h('th', {}, t0(a)), h('th', {}, `step ${r.a}`), h('th', {}, `step ${r.b}`))), body));
  }
  if (a.truncated > 0) block.append(h('p', { class: 'muted' }, `${a.truncated} more changes not shown`));
  return block;
}

const t0 = (a: ActorDiff) => (a.tables.every((t) => t.kind === 'sept') ? 'Secure EPT entry' : a.tables.every((t) => t.kind === 'spte') ? 'SPTE' : 'page-table entry');

export class DiffView {
  readonly element: HTMLDetailsElement;
  #a: HTMLInputElement;
  #b: HTMLInputElement;
  #result: HTMLElement;
  #seq = 0;

  constructor() {
    this.#a = h('input', { type: 'number', id: 'diff-a', min: 0, 'aria-label': 'step A' });
    this.#b = h('input', { type: 'number', id: 'diff-b', min: 0, 'aria-label': 'step B' });
    this.#result = h('div', { id: 'diff-result' });
    const go = () => void this.run(Number(this.#a.value), Number(this.#b.value));
    for (const i of [this.#a, this.#b]) i.addEventListener('keydown', (e) => e.key === 'Enter' && go());
    this.element = h(
      'details',
      { id: 'diff' },
      h('summary', {}, 'Diff between two steps'),
      h('div', { class: 'diff-controls' }, 'step A ', this.#a, ' → step B ', this.#b, ' ', h('button', { type: 'button', id: 'diff-run', class: 'small', onclick: go }, 'compare'), h('span', { class: 'muted' }, '  mark a step with m; B defaults to the current step')),
      this.#result,
    );
  }

  async run(a: number, b: number): Promise<void> {
    if (!Number.isInteger(a) || !Number.isInteger(b)) return;
    this.#a.value = String(a);
    this.#b.value = String(b);
    this.element.open = true;
    const seq = ++this.#seq;
    clear(this.#result);
    this.#result.append(h('p', { class: 'muted' }, `comparing step ${a} with step ${b}…`));
    try {
      const r = await api.diff(a, b);
      if (seq !== this.#seq) return;
      clear(this.#result);
      this.#result.append(h('p', { id: 'diff-summary' }, r.actors.length === 0 ? `nothing changed between step ${r.a} and step ${r.b}` : `${r.actors.length} actor${r.actors.length === 1 ? '' : 's'} changed between step ${r.a} and step ${r.b}`));
      for (const x of r.actors) this.#result.append(actorBlock(x, r));
    } catch (e) {
      if (seq !== this.#seq) return;
      clear(this.#result);
      this.#result.append(h('p', { class: 'error' }, `diff: ${(e as Error).message}`));
    }
  }
}
