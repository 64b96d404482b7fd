/**
 * The filter language of "next/previous match" (shared by the server, which searches the whole log, and
 * the page, which highlights matching rows on screen). Space-separated terms, all of which must match:
 *
 *   #VE  EPT_VIOLATION  TDH.VP.ENTER   a message name (with or without its kind suffix), exactly
 *   kvm.vcpu0                          an actor: sender or receiver
 *   0x8000fe000000                     a number equal to any value in the message (GPA, SPTE, register)
 *   TDX_OPERAND_BUSY  RET_PF_RETRY     any word of the message's fields (status names are words there)
 *   from:hw.cpu0  to:kvm.mmu  name:#VE  kind:td-exit  actor:vmm     one field, exactly
 *   "gen=1"  ~RequestMMIO              a substring anywhere in the line
 *
 * Matching is case-insensitive. Words are split at spaces and `= ( ) { } [ ] | < > ,`, so `#VE` does not
 * match `TDG.VP.VMCALL<#VE.RequestMMIO>` (whose words are `TDG.VP.VMCALL` and `#VE.RequestMMIO`).
 */

/** A sequence-view row without its causal link: what the filter can match. */
import type { EventRow } from './api.ts';

export type Searchable = Omit<EventRow, 'cause' | 'preemption'>;

type Term = { field: 'from' | 'to' | 'name' | 'kind' | 'actor' | 'any' | 'substring'; value: string; number: bigint | null };

const WORD_SPLIT = /[\s=(){}[\]|<>,]+/;
const NUMBER = /^(0x[0-9a-f]+|[0-9]+)$/i;
const FIELD = /^(from|to|name|kind|actor):(.+)$/i;

function asNumber(s: string): bigint | null {
  return NUMBER.test(s) ? BigInt(s) : null;
}

export function parseQuery(q: string): Term[] {
  const terms: Term[] = [];
  for (const m of q.matchAll(/"([^"]*)"|(\S+)/g)) {
    if (m[1] !== undefined) {
      if (m[1] !== '') terms.push({ field: 'substring', value: m[1].toLowerCase(), number: null });
      continue;
    }
    const raw = m[2]!;
    const f = FIELD.exec(raw);
    if (f) terms.push({ field: f[1]!.toLowerCase() as Term['field'], value: f[2]!.toLowerCase(), number: null });
    else if (raw.startsWith('~') && raw.length > 1) terms.push({ field: 'substring', value: raw.slice(1).toLowerCase(), number: null });
    else terms.push({ field: 'any', value: raw.toLowerCase(), number: asNumber(raw) });
  }
  return terms;
}

function termMatches(t: Term, e: Searchable): boolean {
  const name = e.name.toLowerCase();
  const label = e.label.toLowerCase();
  const from = e.from.toLowerCase();
  const to = e.to.toLowerCase();
  switch (t.field) {
    case 'from':
      return from === t.value;
    case 'to':
      return to === t.value;
    case 'actor':
      return from === t.value || to === t.value;
    case 'name':
      return name === t.value || label === t.value;
    case 'kind':
      return e.kind.toLowerCase() === t.value;
    case 'substring':
      return `${e.seq} ${e.from} ${e.to} ${e.label} ${e.fields}`.toLowerCase().includes(t.value);
    case 'any': {
      if (name === t.value || label === t.value || from === t.value || to === t.value || e.kind.toLowerCase() === t.value) return true;
      const words = `${e.label} ${e.fields}`.toLowerCase().split(WORD_SPLIT);
      if (t.number !== null) {
        return words.some((w) => {
          const n = asNumber(w);
          return n !== null && n === t.number;
        });
      }
      return words.includes(t.value);
    }
  }
}

/** A matcher for `q`, or null for an empty query. */
export function compileQuery(q: string): ((e: Searchable) => boolean) | null {
  const terms = parseQuery(q);
  if (terms.length === 0) return null;
  return (e) => terms.every((t) => termMatches(t, e));
}
