/**
 * Every name the package exports has documentation where it is defined: a `/** … *\/` block right above
 * its declaration (or above the `export { … }` that re-exports it under that name, for a few aliases).
 * Editors show it on hover through the shipped .d.ts files.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** `export { a, type B, c as d } from './x.ts'` → [[local name, file]]. */
function reexports(file: string): [string, string][] {
  const text = readFileSync(file, 'utf8');
  const out: [string, string][] = [];
  for (const m of text.matchAll(/export (?:type )?\{([^}]*)\} from '([^']+)'/g)) {
    const target = path.resolve(path.dirname(file), m[2]!);
    for (const part of m[1]!.split(',')) {
      const name = part.trim().replace(/^type /, '').split(/\s+as\s+/)[0]!.trim();
      if (name) out.push([name, target]);
    }
  }
  return out;
}

/** The declaration of `name` in `file` (following one more re-export), and whether a doc block precedes it. */
function documented(name: string, file: string, depth = 0): boolean {
  const lines = readFileSync(file, 'utf8').split('\n');
  const decl = new RegExp(`^export (?:declare )?(?:abstract )?(?:async )?(?:function\\*? |class |const |let |interface |type |enum )${name}\\b`);
  const i = lines.findIndex((l) => decl.test(l));
  if (i >= 0) {
    let j = i - 1;
    while (j >= 0 && (lines[j]!.trim() === '' || lines[j]!.trim().startsWith('@'))) j--;
    return j >= 0 && lines[j]!.trim().endsWith('*/');
  }
  if (depth > 3) return false;
  const next = reexports(file).find(([n]) => n === name);
  return next !== undefined && documented(name, next[1], depth + 1);
}

describe('the public API', () => {
  const names = reexports(path.join(SRC, 'index.ts'));
  it('exports a real surface (load, run, replay, explore, invariants, policies, exporters, log reader/writer)', () => {
    const exported = names.map(([n]) => n);
    for (const n of ['loadScenario', 'defineScenario', 'runScenario', 'stateViews', 'replayLog', 'exploreScenario', 'explore', 'INVARIANTS', 'POLICIES', 'logToMermaid', 'logToPerfetto', 'statechartSvg', 'LogWriter', 'readLog']) expect(exported).toContain(n);
  });
  it.each(names)('%s has a TSDoc comment where it is declared', (name, file) => {
    expect(documented(name, file), `${name} in ${path.relative(SRC, file)}`).toBe(true);
  });
});
