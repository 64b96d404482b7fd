/**
 * What the scenario loader refuses beyond the schema: YAML features a scenario has no use for (anchors,
 * aliases, tags), duplicate keys, absurd nesting and bytes that are not UTF-8. Each is an error naming the
 * file, line and column, never a stack trace or a silently altered value.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadScenarioFile, MAX_SCENARIO_DEPTH, parseScenarioText, ScenarioError } from '../../src/scenario/load.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-scenario-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A valid TD scenario whose vCPU runs `program` (starting on line 6). */
const withProgram = (...program: string[]) =>
  ['name: s', 'vm: { type: tdx, gpaw: 48 }', 'devices:', '  - { name: regs, kind: mmio-regs, gpa: 0xfe000000, size: 0x1000 }', 'vcpus:', ...program, ''].join('\n');

function error(f: () => unknown): ScenarioError {
  try {
    f();
  } catch (e) {
    if (e instanceof ScenarioError) return e;
    throw e;
  }
  throw new Error('expected a ScenarioError');
}

const parseError = (text: string) => error(() => parseScenarioText(text, 's.yaml'));

describe('anchors and aliases are refused, so nothing is ever expanded', () => {
  it('an anchor is reported where it is written, even when its value starts on the next line', () => {
    const text = withProgram('  - program: &prog', '      - { op: hlt }', '  - program: *prog');
    expect(parseError(text).message).toBe('s.yaml:6:14: YAML anchor &prog: scenarios accept no anchors or aliases: write the value out in full');
  });

  it('an alias names its line and column', () => {
    const text = withProgram('  - program: [{ op: hlt }]', '  - program: *prog');
    expect(parseError(text).message).toBe('s.yaml:7:14: YAML alias *prog: scenarios accept no anchors or aliases: write the value out in full');
  });

  it('an alias whose anchor was never defined is refused at the alias, without a ReferenceError', () => {
    const text = withProgram('  - program: *nowhere');
    expect(parseError(text).message).toBe('s.yaml:6:14: YAML alias *nowhere: scenarios accept no anchors or aliases: write the value out in full');
  });

  it('"billion laughs" (nine levels of nine aliases each) is refused at its first anchor', () => {
    const laughs = ['lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      laughs.push(`l${i}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const e = parseError(['name: s', ...laughs, ''].join('\n'));
    expect(e.message).toBe('s.yaml:2:6: YAML anchor &a: scenarios accept no anchors or aliases: write the value out in full');
    expect([e.code, e.line, e.column]).toEqual(['PARSE', 2, 6]);
  });

  it('a bare alias as the whole document', () => {
    expect(parseError('*x\n').message).toBe('s.yaml:1:1: YAML alias *x: scenarios accept no anchors or aliases: write the value out in full');
  });
});

describe('tags', () => {
  it('!!binary is refused at its line (it would become bytes)', () => {
    expect(parseError('name: !!binary aGVsbG8=\n').message).toBe(
      's.yaml:1:7: YAML tag !!binary: scenarios hold plain values (of the explicit tags only !!str, !!int, !!float, !!bool, !!null, !!map and !!seq are accepted)',
    );
  });

  it('a local tag !foo is refused (the library would silently keep the string)', () => {
    expect(parseError(withProgram('  - program:', '      - !foo { op: hlt }')).message).toMatch(/^s\.yaml:7:9: YAML tag !foo: scenarios hold plain values/);
  });

  it('a collection tag outside the core schema (!!set) is refused', () => {
    expect(parseError('name: s\ninvariants: !!set { a }\n').message).toMatch(/^s\.yaml:2:13: YAML tag !!set: /);
  });

  it('core-schema tags are plain values said twice, and accepted', () => {
    const s = parseScenarioText(withProgram('  - program: !!seq', '      - { op: !!str hlt }').replace('name: s', 'name: !!str s'), 's.yaml');
    expect(s.name).toBe('s');
    expect(s.vcpus[0]!.program).toEqual([{ op: 'hlt' }]);
  });
});

describe('duplicate keys', () => {
  it('a repeated key in a block mapping names the key and the line of the repeat', () => {
    expect(parseError('name: s\nvm:\n  type: tdx\n  type: vmx\n').message).toBe('s.yaml:4:3: duplicate key type: a mapping holds each key once');
  });

  it('in a flow mapping too', () => {
    expect(parseError(withProgram('  - program: [{ op: hlt, op: load }]')).message).toBe('s.yaml:6:26: duplicate key op: a mapping holds each key once');
  });

  it('0 and 0x0 are the same register offset', () => {
    const text = withProgram('  - program: [{ op: hlt }]').replace('size: 0x1000 }', 'size: 0x1000, registers: { 0: 1, 0x0: 2 } }');
    const column = text.split('\n')[3]!.indexOf('0x0:') + 1;
    expect(parseError(text).message).toBe(`s.yaml:4:${column}: duplicate key 0x0: a mapping holds each key once`);
  });
});

describe('nesting depth', () => {
  it(`${MAX_SCENARIO_DEPTH} levels are accepted by the loader (the schema then says what is wrong)`, () => {
    // The root mapping is level 1, so the value may open 31 more.
    const e = parseError(`name: ${'['.repeat(MAX_SCENARIO_DEPTH - 1)}${']'.repeat(MAX_SCENARIO_DEPTH - 1)}\n`);
    expect(e.code).toBe('SCHEMA');
  });

  it('one level more is refused at the collection that goes too deep', () => {
    const e = parseError(`name: ${'['.repeat(MAX_SCENARIO_DEPTH)}${']'.repeat(MAX_SCENARIO_DEPTH)}\n`);
    expect(e.message).toBe(`s.yaml:1:${6 + MAX_SCENARIO_DEPTH}: nested more than ${MAX_SCENARIO_DEPTH} levels deep`);
  });

  it('100,000 nested [ ] are refused with a position, not a stack overflow', () => {
    const e = parseError(`name: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`);
    expect(e.message).toBe(`s.yaml:1:${7 + MAX_SCENARIO_DEPTH}: nested more than ${MAX_SCENARIO_DEPTH} levels deep`);
  });

  it('100,000 unclosed [ are refused the same way', () => {
    const e = parseError(`name: s\nvm: ${'['.repeat(100_000)}\n`);
    expect(e.message).toBe(`s.yaml:2:${5 + MAX_SCENARIO_DEPTH}: nested more than ${MAX_SCENARIO_DEPTH} levels deep`);
  });
});

describe('bytes that are not UTF-8', () => {
  const file = (name: string, bytes: Buffer) => {
    const p = path.join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };

  it('an invalid byte is reported at its line and byte column, not replaced by U+FFFD', () => {
    const p = file('latin1.yaml', Buffer.concat([Buffer.from('name: s\ndescription: caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    expect(error(() => loadScenarioFile(p)).message).toBe(`${p}:2:17: invalid UTF-8 (byte 0xe9): a scenario is UTF-8 text`);
  });

  it('an overlong encoding and a UTF-16 surrogate are invalid too', () => {
    const overlong = file('overlong.yaml', Buffer.from([0x6e, 0x3a, 0x20, 0xc0, 0xaf, 0x0a]));
    expect(error(() => loadScenarioFile(overlong)).message).toBe(`${overlong}:1:4: invalid UTF-8 (byte 0xc0): a scenario is UTF-8 text`);
    const surrogate = file('surrogate.yaml', Buffer.from([0x0a, 0x6e, 0x3a, 0x20, 0xed, 0xa0, 0x80, 0x0a]));
    expect(error(() => loadScenarioFile(surrogate)).message).toBe(`${surrogate}:2:4: invalid UTF-8 (byte 0xed): a scenario is UTF-8 text`);
  });

  it('valid multi-byte text still loads (the schema sees the characters)', () => {
    const p = file('utf8.yaml', Buffer.from(withProgram('  - program: [{ op: hlt }]').replace('name: s', 'name: s\ndescription: "café → 🐛"'), 'utf8'));
    expect(loadScenarioFile(p).scenario.description).toBe('café → 🐛');
  });
});
