/**
 * Every command the READMEs show works as written: the shell blocks and the inline `tdxsim …` commands of
 * README.md and each example's README run in order in an empty directory (a later command reads the log
 * an earlier one wrote), and none is refused as bad input. The tour's sample output is what `tdxsim run
 * mmio-ve` prints today, line for line.
 */
import { readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCli, REPO_ROOT, scratchDir, tdxsim } from './helpers.ts';

interface Command {
  file: string;
  line: number;
  args: string[];
  /** `> file` at the end of the shell line. */
  stdoutTo: string | null;
}

/** The commands in order, each distinct one once, with the places (file:line) that show it. */
function dedupe(commands: readonly Command[]): (Command & { places: string[] })[] {
  const seen = new Map<string, Command & { places: string[] }>();
  for (const c of commands) {
    const key = `${c.args.join('\u0000')}>${c.stdoutTo ?? ''}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, { ...c, places: [`${c.file}:${c.line}`] });
    else first.places.push(`${c.file}:${c.line}`);
  }
  return [...seen.values()];
}

/** Commands that serve a page until Ctrl-C, or are templates (`<log>`, `…`), are shown, not run. */
const notRunnable = (text: string) => /\binspect\b|--inspect|--open|<[a-z]|…|\[--|\s[A-Z]+(\s|$)/.test(text);

function commandsOf(file: string): Command[] {
  const text = readFileSync(path.join(REPO_ROOT, file), 'utf8');
  const lines = text.split('\n');
  const out: Command[] = [];
  let inShell = false;
  let inBlock = false;
  let hostOnly = false;
  lines.forEach((l, i) => {
    if (l.startsWith('```')) {
      inBlock = !inBlock;
      inShell = inBlock && /^```(sh|bash|shell)\s*$/.test(l);
      // A block that starts "# on a TDX host" shows what to run there; its files do not exist here.
      hostOnly = inBlock && /^# on a TDX host/.test(lines[i + 1] ?? '');
    }
    const found: string[] = [];
    if (inShell && !hostOnly && /^\s*(npx )?tdxsim /.test(l)) found.push(l.replace(/\s+#.*$/, '').trim());
    // A transcript (`$ tdxsim …` in any block) shows a command as typed.
    else if (inBlock && !hostOnly && /^\$ (npx )?tdxsim /.test(l)) found.push(l.slice(2).replace(/\s+#.*$/, '').trim());
    // Inline, a command with no argument besides its flags names the command (`tdxsim replay --verify`).
    else if (!inBlock) for (const m of l.matchAll(/`((?:npx )?tdxsim [a-z]+ [^`-][^`]*)`/g)) found.push(m[1]!);
    for (const c of found) {
      if (notRunnable(c)) continue;
      const redirect = /\s>\s*(\S+)$/.exec(c);
      const words = (redirect ? c.slice(0, redirect.index) : c).replace(/^npx /, '').split(/\s+/).slice(1);
      out.push({ file, line: i + 1, args: words, stdoutTo: redirect ? redirect[1]! : null });
    }
  });
  return out;
}

const files = ['README.md', ...readdirSync(path.join(REPO_ROOT, 'examples')).sort().map((n) => `examples/${n}/README.md`)].filter((f) => {
  try {
    readFileSync(path.join(REPO_ROOT, f));
    return true;
  } catch {
    return false;
  }
});

describe("the READMEs' commands", () => {
  beforeAll(() => buildCli());
  // The commands run from the repository's root as a user would: the bundled examples are there.
  const dir = scratchDir();
  symlinkSync(path.join(REPO_ROOT, 'examples'), path.join(dir, 'examples'));
  // A command shown again word for word (a README's header line and its transcript) runs once, named by
  // every place that shows it: its result cannot differ, and the search commands are the suite's slowest.
  const commands = dedupe(files.flatMap(commandsOf));
  // README's first command, `npm start`, writes mmio-ve.log.jsonl where the later ones read it.
  beforeAll(() => {
    const start = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
    const args = start.replace(/^node bin\/tdxsim\.js /, '').split(' ').map((a) => (a.startsWith('examples/') ? path.join(REPO_ROOT, a) : a));
    expect(tdxsim(dir, ...args).status).toBe(0);
  });

  it('there are commands to run (the extraction works)', () => {
    expect(commands.length).toBeGreaterThan(20);
    expect(commands.some((c) => c.args[0] === 'export')).toBe(true);
  });

  it.each(commands.map((c) => [`${c.places.join(', ')}: tdxsim ${c.args.join(' ')}${c.stdoutTo ? ` > ${c.stdoutTo}` : ''}`, c] as const))('%s', (_name, c) => {
    const r = tdxsim(dir, ...c.args);
    if (c.stdoutTo) writeFileSync(path.join(dir, c.stdoutTo), r.stdout);
    // 1: the run reaches the failure its README describes; 3: a bounded or sampled search. Never 2.
    expect([0, 1, 3], r.stderr).toContain(r.status);
    expect(r.stderr).not.toMatch(/^tdxsim: /m);
  });

  it("the tour's lines are what `tdxsim run mmio-ve` prints", () => {
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const tour = readme.slice(readme.indexOf('## A tour of the output'));
    const block = /```\n([\s\S]*?)```/.exec(tour)![1]!.trimEnd().split('\n');
    const run = tdxsim(scratchDir(), 'run', 'mmio-ve').lines;
    // Lines the README wraps continue without a step number; "…" stands for fields it leaves out.
    const entries: string[] = [];
    for (const l of block) {
      if (/^\s*\d+\s/.test(l)) entries.push(l);
      else entries[entries.length - 1] += ' ' + l.trim();
    }
    for (const shown of entries) {
      const seq = /^\s*(\d+)\s/.exec(shown)![1]!;
      const actual = run.find((l) => new RegExp(`^\\s*${seq}\\s`).test(l));
      expect(actual, `step ${seq}`).toBeDefined();
      let at = 0;
      for (const piece of shown.split('…').map((p) => p.trim()).filter((p) => p !== '')) {
        const found = actual!.indexOf(piece, at);
        expect(found, `step ${seq}: "${piece}" is not in the run's line (after column ${at}):\n  ${actual}`).toBeGreaterThanOrEqual(0);
        at = found + piece.length;
      }
    }
  });
});
