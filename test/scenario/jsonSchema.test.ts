/**
 * The shipped JSON Schema: generated from the zod schema (never edited by hand), named by every example,
 * accepts every example, and refuses known-bad scenarios at the same field path the loader reports.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { SCENARIO_SCHEMA_FILE, scenarioJsonSchemaText } from '../../src/scenario/jsonSchema.ts';
import { parseScenarioText, ScenarioError, formatPath } from '../../src/scenario/load.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const EXAMPLES = path.join(ROOT, 'examples');
const names = readdirSync(EXAMPLES).filter((n) => readdirSync(path.join(EXAMPLES, n)).includes('scenario.yaml'));
const schema = JSON.parse(readFileSync(path.join(ROOT, SCENARIO_SCHEMA_FILE), 'utf8')) as object;
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);

/** Every guest operation the schema knows (each branch's `op` constant). */
const OPS = new Set<unknown>();
(function collect(node: unknown): void {
  if (node === null || typeof node !== 'object') return;
  const op = (node as { properties?: { op?: { const?: unknown } } }).properties?.op?.const;
  if (op !== undefined) OPS.add(op);
  for (const v of Object.values(node)) collect(v);
})(schema);

/**
 * The field the schema says is wrong, in the loader's notation (`vcpus[0].program[1].size`). In a union of
 * guest operations every branch but the right one complains about `op`: the discriminator is not the error.
 */
function schemaPath(doc: unknown): string | null {
  if (validate(doc)) return null;
  const all = validate.errors ?? [];
  // An operation no branch knows: every branch refused its \`op\`, and that is the field to fix.
  for (const e of all.filter((x) => x.keyword === 'const' && x.instancePath.endsWith('/op'))) {
    const value = e.instancePath.split('/').slice(1).reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], doc);
    if (!OPS.has(value)) return formatPath(segments(e.instancePath));
  }
  // Errors from the branches whose \`op\` did not match say nothing about this operation.
  const wrongBranches = all.filter((x) => x.keyword === 'const' && x.instancePath.endsWith('/op')).map((x) => x.schemaPath.replace(/\/properties\/op\/const$/, '/'));
  const rank = (k: string) => (k === 'required' ? 2 : k === 'additionalProperties' ? 1 : 0);
  const located = all
    .filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf' && !wrongBranches.some((b) => e.schemaPath.startsWith(b)))
    .map((e) => {
      const segs = segments(e.instancePath);
      if (e.keyword === 'additionalProperties') segs.push((e.params as { additionalProperty: string }).additionalProperty);
      if (e.keyword === 'required') segs.push((e.params as { missingProperty: string }).missingProperty);
      return { segs, rank: rank(e.keyword) };
    })
    .sort((a, b) => b.segs.length - a.segs.length || a.rank - b.rank);
  return formatPath(located[0]!.segs);
}

const segments = (pointer: string): (string | number)[] => pointer.split('/').slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s));

function loaderPath(text: string): string {
  try {
    parseScenarioText(text, 'bad.yaml');
  } catch (e) {
    if (e instanceof ScenarioError) return formatPath(e.fieldPath);
    throw e;
  }
  throw new Error('the loader accepted it');
}

const BASE = `name: bad
vm: { type: tdx }
memslots: [{ gpa: 0x0, size: 0x80000000, guestMemfd: true }]
`;

describe('schema/scenario.schema.json', () => {
  it('is what the zod schema generates (run npm run build after changing src/scenario/schema.ts)', () => {
    expect(readFileSync(path.join(ROOT, SCENARIO_SCHEMA_FILE), 'utf8')).toBe(scenarioJsonSchemaText());
  });

  it.each(names)('examples/%s names the schema in its first line and validates against it', (name) => {
    const text = readFileSync(path.join(EXAMPLES, name, 'scenario.yaml'), 'utf8');
    expect(text.split('\n', 1)[0]).toBe('# yaml-language-server: $schema=../../schema/scenario.schema.json');
    expect(schemaPath(parse(text))).toBeNull();
  });

  const bad: [string, string, string][] = [
    ['an access size of 3', `${BASE}vcpus: [{ program: [{ op: load, gpa: 0x1000, size: 3 }] }]`, 'vcpus[0].program[0].size'],
    ['a misspelt field', `${BASE}vcpus: [{ program: [{ op: store, gpa: 0x1000, size: 8, valeu: 1 }] }]`, 'vcpus[0].program[0].valeu'],
    ['an unknown operation', `${BASE}vcpus: [{ program: [{ op: jump }] }]`, 'vcpus[0].program[0].op'],
    ['a GPA that is not a number', `${BASE}vcpus: [{ program: [{ op: load, gpa: "zero", size: 8 }] }]`, 'vcpus[0].program[0].gpa'],
    ['gpaw 50', `name: bad\nvm: { type: tdx, gpaw: 50 }\nvcpus: [{ program: [{ op: hlt }] }]`, 'vm.gpaw'],
    ['an unknown VM type', `name: bad\nvm: { type: sev }\nvcpus: [{ program: [{ op: hlt }] }]`, 'vm.type'],
    ['an unknown policy', `${BASE}policies: { fasterPlease: true }\nvcpus: [{ program: [{ op: hlt }] }]`, 'policies.fasterPlease'],
    ['a threshold out of range', `${BASE}policies: { zeroStepThreshold: 40 }\nvcpus: [{ program: [{ op: hlt }] }]`, 'policies.zeroStepThreshold'],
    ['an unknown invariant', `${BASE}invariants: [no-such-check]\nvcpus: [{ program: [{ op: hlt }] }]`, 'invariants[0]'],
    ['an I/O port past 0xffff', `${BASE}vcpus: [{ program: [{ op: out, port: 0x10000, size: 1, value: 0 }] }]`, 'vcpus[0].program[0].port'],
    ['no vCPUs field', `${BASE}`, 'vcpus'],
  ];
  it.each(bad)('refuses %s at the field the loader names', (_what, text, field) => {
    expect(loaderPath(text)).toBe(field);
    expect(schemaPath(parse(text))).toBe(field);
  });
});
