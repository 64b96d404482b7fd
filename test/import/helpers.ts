/** Fixture paths and the accept-storm trace, generated as its script writes it. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TraceInput } from '../../src/import/parseTrace.ts';
// @ts-expect-error a plain-JS fixture script without type declarations
import { acceptStormTrace } from '../../examples/traces/accept-storm.mjs';

export const TRACES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/traces');

/** A fixture as the importer reads it, named by its path relative to the repository (as a user would type it). */
export function fixture(name: string): TraceInput {
  return { file: `examples/traces/${name}`, text: readFileSync(path.join(TRACES, name), 'utf8') };
}

export function stormTrace(): TraceInput {
  return { file: 'accept-storm.trace-cmd.txt', text: (acceptStormTrace as () => string)() };
}
