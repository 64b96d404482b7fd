/**
 * The scenario format as a JSON Schema (draft 2020-12), generated from the zod schema so the two cannot
 * drift: `npm run build` writes it to schema/scenario.schema.json, which the package ships and every
 * example names in its first line (`# yaml-language-server: $schema=…`), so an editor completes and checks
 * fields. It describes the format as written (hex strings or integers, defaults optional); what only the
 * loader can check (overlaps, alignment, which memory a GPA is in) stays the loader's.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { JSON_SCHEMA_OVERRIDES, scenarioSchema } from './schema.ts';

/** Where the repository keeps it, relative to the package root. */
export const SCENARIO_SCHEMA_FILE = 'schema/scenario.schema.json';

export function scenarioJsonSchema(): Record<string, unknown> {
  const json = z.toJSONSchema(scenarioSchema, {
    io: 'input',
    unrepresentable: 'any',
    override: (ctx) => {
      const o = JSON_SCHEMA_OVERRIDES.get(ctx.zodSchema._zod.def);
      if (o === undefined) return;
      const keep = { ...(ctx.jsonSchema.description !== undefined ? { description: ctx.jsonSchema.description } : {}), ...(ctx.jsonSchema.default !== undefined ? { default: ctx.jsonSchema.default } : {}) };
      for (const k of Object.keys(ctx.jsonSchema)) delete (ctx.jsonSchema as Record<string, unknown>)[k];
      Object.assign(ctx.jsonSchema, o, keep);
    },
  }) as Record<string, unknown>;
  return { $schema: json.$schema, title: 'tdxsim scenario', ...json };
}

/** Text exactly as the file holds it. */
export const scenarioJsonSchemaText = (): string => JSON.stringify(scenarioJsonSchema(), null, 2) + '\n';

// `node dist/src/scenario/jsonSchema.js` (the build) writes the file at the package root.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  writeFileSync(path.join(root, SCENARIO_SCHEMA_FILE), scenarioJsonSchemaText());
}
