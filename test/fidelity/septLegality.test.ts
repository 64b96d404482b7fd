// Every (leaf, state) pair of docs/sept-state-legality.md against septAllows, plus the state index and
// encodings, read from the document itself.
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SEPT_LEGALITY, SEPT_STATE_ENCODING, SEPT_STATES, type SeptState, septAllows } from '../../src/arch/sept.ts';
import { seamcallLeaf, SEAMCALL_LEAF_NAMES } from '../../src/arch/seamcall.ts';
import { TDCALL_LEAF_NAMES } from '../../src/arch/tdcall.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const docPath = path.join(repoRoot, 'docs', 'sept-state-legality.md');
if (!existsSync(docPath)) throw new Error(`the S-EPT legality reference is missing: ${docPath}`);
const doc = readFileSync(docPath, 'utf8');

function line(prefix: string): string {
  const found = doc.split('\n').find((l) => l.startsWith(prefix));
  if (found === undefined) throw new Error(`docs/sept-state-legality.md has no line starting with ${JSON.stringify(prefix)}`);
  return found.slice(prefix.length);
}

interface Row {
  leaf: number;
  name: string;
  states: string[];
}

/** Rows of the table whose header's second column is `kind` ('SEAMCALL' or 'TDCALL'). */
function table(kind: string): Row[] {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^\\| leaf \\| ${kind} \\|`).test(l));
  if (start < 0) throw new Error(`docs/sept-state-legality.md has no ${kind} table`);
  const rows: Row[] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    const cells = l.split('|').slice(1, -1).map((c) => c.trim());
    const [leaf, name, states] = cells;
    if (cells.length !== 3 || leaf === undefined || name === undefined || states === undefined || !/^\d+$/.test(leaf)) {
      throw new Error(`unparsable ${kind} row: ${l}`);
    }
    rows.push({ leaf: Number(leaf), name, states: states.split(',').map((s) => s.trim()) });
  }
  return rows;
}

const stateIndex = [...line('State index: ').matchAll(/(\d+) ([A-Z_]+)/g)].map((m) => ({ index: Number(m[1]), name: m[2] }));
const encodings = [...line('State encodings (SEPT entry bits, from sept_state_lookup.h): ').matchAll(/([A-Z_]+) (0x[0-9a-f]+)/g)].map(
  (m) => ({ name: m[1] as string, value: Number(m[2]) }),
);
const seamcallRows = table('SEAMCALL');
const tdcallRows = table('TDCALL');

describe('S-EPT state catalogue (docs/sept-state-legality.md)', () => {
  it('lists the 16 states in the document’s index order', () => {
    expect(stateIndex.map((s) => s.index)).toEqual([...Array(16).keys()]);
    expect(stateIndex.map((s) => s.name)).toEqual([...SEPT_STATES]);
  });

  it('uses the document’s encoding for every state', () => {
    expect(encodings).toHaveLength(16);
    for (const { name, value } of encodings) {
      expect(SEPT_STATE_ENCODING[name as SeptState], name).toBe(value);
    }
  });
});

describe('S-EPT legality: every (leaf, state) pair', () => {
  it('covers exactly the document’s leaves', () => {
    expect(seamcallRows.length).toBeGreaterThanOrEqual(19);
    expect(tdcallRows.length).toBeGreaterThanOrEqual(3);
    const docNames = [...seamcallRows, ...tdcallRows].map((r) => r.name).sort();
    expect(Object.keys(SEPT_LEGALITY).sort()).toEqual(docNames);
  });

  it('only names states the catalogue knows', () => {
    for (const row of [...seamcallRows, ...tdcallRows]) {
      for (const s of row.states) expect(SEPT_STATES as readonly string[], `${row.name}: ${s}`).toContain(s);
    }
  });

  for (const row of [...seamcallRows, ...tdcallRows]) {
    it(`${row.name} (leaf ${row.leaf})`, () => {
      for (const state of SEPT_STATES) {
        expect(septAllows(row.name, state), `${row.name} in ${state}`).toBe(row.states.includes(state));
      }
    });
  }

  it('agrees with the leaf numbers of §4.1/§4.2 for the leaves the model knows', () => {
    for (const row of seamcallRows) {
      if (/^TDH\.(EXPORT|IMPORT)\./.test(row.name)) {
        // Migration leaves are deliberately absent from seamcall.ts.
        expect(Object.values(SEAMCALL_LEAF_NAMES)).not.toContain(row.name);
        continue;
      }
      expect(seamcallLeaf(row.name), row.name).toBe(row.leaf);
    }
    for (const row of tdcallRows) expect(TDCALL_LEAF_NAMES[row.leaf], `TDCALL ${row.leaf}`).toBe(row.name);
  });

  it('throws on a leaf with no legality row', () => {
    expect(() => septAllows('TDH.VP.ENTER', 'FREE')).toThrow(RangeError);
  });
});
