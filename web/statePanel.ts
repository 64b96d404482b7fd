/**
 * The selected actor's state at the step: its context as a collapsible tree, and every page-table field
 * as tables of decoded SPTEs. What changed since the previous step is marked (`changed`), so a step's
 * effect is visible without comparing by eye. Everything arrives formatted from the server.
 */
import type { ActorStep, PageTableView, StateTable, TreeNode } from '../src/inspect/api.ts';
import { clear, h } from './dom.ts';

/** Containers deeper than this start closed unless something in them changed. */
const OPEN_DEPTH = 1;

function treeList(nodes: readonly TreeNode[], depth: number): HTMLElement {
  const ul = h('ul', { class: depth === 0 ? 'tree root' : 'tree' });
  for (const n of nodes) {
    const cls = ['node', n.changed ? 'changed' : '', n.removed ? 'removed' : ''].filter(Boolean).join(' ');
    if (n.children && n.children.length > 0) {
      const details = h('details', { open: depth < OPEN_DEPTH || n.changed }, h('summary', {}, h('span', { class: 'key' }, n.key), ' ', h('span', { class: 'summary' }, n.text)), treeList(n.children, depth + 1));
      ul.append(h('li', { class: cls }, details));
    } else {
      ul.append(h('li', { class: cls, 'data-key': n.key }, h('span', { class: 'key' }, n.key), ': ', h('span', { class: n.table ? 'value table-ref' : 'value' }, n.text)));
    }
  }
  return ul;
}

export function contextTree(nodes: readonly TreeNode[]): HTMLElement {
  return treeList(nodes, 0);
}

const COLUMNS = {
  spte: ['index', 'SPTE', 'kind', 'RWX', 'SVE', 'MMU-present', 'pg_level', 'maps', 'decoded'],
  sept: ['index', 'S-EPT entry', 'state', 'RWX', 'SVE', '', 'TDX level', 'maps', 'decoded'],
};

function pageTable(t: PageTableView, actor: string): HTMLElement {
  const wrap = h('div', { class: `page-tables ${t.kind}`, 'data-field': t.field });
  const what = t.kind === 'sept' ? 'Secure EPT' : 'TDP MMU';
  wrap.append(h('h4', {}, `${actor} ${t.field} (${what}): ${t.pages.length} page-table page${t.pages.length === 1 ? '' : 's'}`));
  const columns = COLUMNS[t.kind];
  for (const p of t.pages) {
    const body = h('tbody');
    for (const r of p.rows) {
      body.append(
        h(
          'tr',
          { class: r.changed ? 'changed' : '', 'data-spte': r.spte, 'data-index': r.index },
          h('td', { class: 'hex' }, r.index),
          h('td', { class: 'hex spte' }, r.spte),
          h('td', { class: `kind kind-${r.kind}` }, r.kind),
          h('td', { class: 'mono' }, r.rwx),
          h('td', {}, r.suppressVe ? '1' : '0'),
          h('td', {}, r.mmuPresent === null ? '' : r.mmuPresent ? 'yes' : 'no'),
          h('td', {}, r.level === null ? '?' : String(r.level)),
          h('td', { class: 'hex' }, r.target),
          h('td', { class: 'decoded' }, r.decoded),
        ),
      );
    }
    if (p.rows.length === 0) body.append(h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, `every entry ${t.absent}`)));
    wrap.append(
      h(
        'table',
        { class: `spte ${t.kind}${p.changed ? ' changed' : ''}`, 'data-pfn': p.pfn },
        h('caption', {}, `page pfn ${p.pfn}${p.title ? ` (${p.title})` : ''}`),
        h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { scope: 'col' }, c)))),
        body,
      ),
    );
  }
  return wrap;
}

/** Interrupt state per vCPU, guest page tables: one row per vCPU / GVA, changed cells marked. */
function stateTable(t: StateTable): HTMLElement {
  const body = h('tbody');
  for (const r of t.rows) {
    body.append(h('tr', { 'data-key': r.key, class: r.changed.some(Boolean) ? 'changed' : '' }, ...r.cells.map((c, i) => h('td', { class: `mono${r.changed[i] ? ' changed' : ''}`, 'data-column': t.columns[i]! }, c))));
  }
  return h(
    'div',
    { class: 'state-table-wrap' },
    h('h4', {}, t.title),
    h('table', { class: `state-table ${t.id}`, 'data-table': t.id }, h('thead', {}, h('tr', {}, ...t.columns.map((c) => h('th', { scope: 'col' }, c)))), body),
  );
}

export class StatePanel {
  readonly element: HTMLElement;
  #body: HTMLElement;

  constructor() {
    this.#body = h('div', { class: 'state-body' });
    this.element = h('section', { id: 'state-panel', 'aria-label': 'actor state' }, this.#body);
  }

  show(a: ActorStep): void {
    clear(this.#body);
    this.#body.append(
      h('div', { class: 'pane-head' }, h('span', { class: 'actor-id' }, a.id), ' ', h('span', { class: 'state-path', title: 'active state' }, a.state), a.status === 'active' ? null : h('span', { class: 'badge failure' }, a.status), a.changed ? h('span', { class: 'badge changed' }, 'changed at this step') : null),
      ...a.views.map(stateTable),
      contextTree(a.context),
      ...a.tables.map((t) => pageTable(t, a.id)),
    );
  }
}
