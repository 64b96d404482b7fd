/**
 * The package as a user gets it: `npm pack`, installed into an empty project, and README's TypeScript
 * example type-checked under `strict` against the shipped declarations, then run. A misuse must not
 * compile, or the types would be `any`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, scratchDir } from '../e2e/helpers.ts';

const TSC = path.join(REPO_ROOT, 'node_modules/.bin/tsc');

/** The ```ts block of README's "Library (TypeScript)" section. */
function readmeExample(): string {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Library (TypeScript)'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README has no ```ts example in "Library (TypeScript)"');
  return m[1]!;
}

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    skipLibCheck: false,
    outDir: 'out',
    types: ['node'],
    typeRoots: [path.join(REPO_ROOT, 'node_modules/@types')],
  },
  include: ['*.ts'],
};

describe('the packed package', () => {
  let project = '';
  beforeAll(() => {
    const dir = scratchDir();
    execFileSync('npm', ['pack', '--pack-destination', dir], { cwd: REPO_ROOT, stdio: 'pipe' });
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
    project = path.join(dir, 'consumer');
    mkdirSync(project);
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    // The dependencies come from npm's cache, filled by the repository's own install.
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, tarball)], { cwd: project, stdio: 'pipe' });
    writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify(TSCONFIG));
  });

  it("ships declarations and their maps, the JSON Schema, the examples and the sources the maps point to", () => {
    const pkg = path.join(project, 'node_modules/tdxsim');
    const files = (d: string) => readdirSync(path.join(pkg, d));
    expect(files('dist/src')).toEqual(expect.arrayContaining(['index.js', 'index.d.ts', 'index.d.ts.map']));
    expect(files('schema')).toContain('scenario.schema.json');
    expect(files('examples')).toContain('mmio-ve');
    const map = JSON.parse(readFileSync(path.join(pkg, 'dist/src/index.d.ts.map'), 'utf8')) as { sources: string[] };
    for (const s of map.sources) expect(readdirSync(path.dirname(path.join(pkg, 'dist/src', s)))).toContain(path.basename(s));
  });

  it("README's example compiles with the shipped types and runs", () => {
    writeFileSync(path.join(project, 'main.ts'), readmeExample());
    const check = spawnSync(TSC, ['-p', '.'], { cwd: project, encoding: 'utf8' });
    expect(check.stdout + check.stderr).toBe('');
    const run = spawnSync(process.execPath, ['out/main.js'], { cwd: project, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines.filter((l) => /^step \d+: kvm\.vcpu[01] → tdx TDH\.MEM\.PAGE\.AUG$/.test(l))).toHaveLength(2);
    expect(lines.at(-2)).toBe('sept-parent-first 121 steps');
    expect(lines.at(-1)).toBe('sequenceDiagram');
    rmSync(path.join(project, 'out'), { recursive: true, force: true });
  });

  it('misuse does not compile: the types are real, not any', () => {
    writeFileSync(path.join(project, 'main.ts'), "import { runScenario, defineScenario } from 'tdxsim';\nrunScenario(42);\ndefineScenario({ name: 'x', vm: { type: 'kvm' }, vcpus: [] });\n");
    const check = spawnSync(TSC, ['-p', '.', '--noEmit'], { cwd: project, encoding: 'utf8' });
    expect(check.status).not.toBe(0);
    expect(check.stdout).toContain("main.ts(2,13): error TS2345: Argument of type 'number' is not assignable");
    expect(check.stdout).toContain('main.ts(3,35): error TS2322: Type \'"kvm"\' is not assignable to type \'"tdx" | "vmx"\'');
  });
});
