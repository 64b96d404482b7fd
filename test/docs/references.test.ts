/**
 * The repository explains itself: every "§" it cites is a section of docs/tdx-semantics.md (and a step
 * or variant it names is in that section), and every relative Markdown link in its READMEs and docs
 * leads to a file of the repository (and, with a #fragment, to a heading there).
 */
import { describe, it, expect } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const referencePath = path.join(repoRoot, 'docs', 'tdx-semantics.md');
const thisFile = path.relative(repoRoot, fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------------
// The reference's sections

interface Section {
  id: string;
  body: string[];
}

/** '## 2. GPA shared bit' → '2', '#### 5a.6 Module decision' → '5a.6', '### 6.ii First touch' → '6.ii'. */
export function sectionsOf(markdown: string): Map<string, Section> {
  const sections = new Map<string, Section>();
  let current: Section | undefined;
  for (const line of markdown.split('\n')) {
    const heading = /^#{2,4} ([0-9]+[a-z]?(?:\.[0-9ivx]+)*)\.? /.exec(line);
    if (heading) {
      current = { id: heading[1] as string, body: [] };
      sections.set(current.id, current);
    } else if (/^#{1,6} /.test(line)) {
      current = undefined;
    } else {
      current?.body.push(line);
    }
  }
  return sections;
}

/** Top-level numbered items of a section ('3. …'), optionally only those under '**Variant A'. */
function stepNumbers(section: Section, variant?: string): Set<number> {
  let lines = section.body;
  if (variant !== undefined) {
    const start = lines.findIndex((l) => l.startsWith(`**Variant ${variant} `));
    if (start < 0) return new Set();
    const rest = lines.slice(start + 1);
    const end = rest.findIndex((l) => l.startsWith('**Variant '));
    lines = end < 0 ? rest : rest.slice(0, end);
  }
  return new Set(lines.map((l) => /^(\d+)\. /.exec(l)?.[1]).filter((n) => n !== undefined).map(Number));
}

// ---------------------------------------------------------------------------------------------------
// Citations

export interface Citation {
  /** '5c.1 step 5', '6.ii A.3–A.6', '7.4' — as written after the '§'. */
  text: string;
  id: string;
  variant?: string;
  steps: number[];
  line: number;
}

const CITATION =
  /§ ?([0-9]+[a-z]?(?:\.[0-9ivx]+)*)(?: (?:steps? )?(\d+)(?:(?:–|-| and |, ?)(\d+))?\b| ([AB])(?:\.(\d+)(?:–[AB]?\.?(\d+))?)?\b| variant ([AB])\b)?/g;
/** A citation right after one of these names another document's section. */
const FOREIGN = /\b(?:SDM(?: Vol\. \d+[A-D])?|ecosystem-notes(?:\.md)?)\s*$/;
/** What may stand between two citations of the same foreign document ('SDM §25.5.6.1 and §28.2.3.1'). */
const CHAIN = /^[\s,;]*(?:and|or|–|-)?[\s,;]*$/;

/** Every citation of docs/tdx-semantics.md in `text`; sections of the SDM or other documents are skipped. */
export function citationsIn(text: string): Citation[] {
  const out: Citation[] = [];
  text.split('\n').forEach((lineText, i) => {
    let end = 0;
    let foreign = false;
    for (const m of lineText.matchAll(CITATION)) {
      const before = lineText.slice(end, m.index);
      foreign = FOREIGN.test(before) || (foreign && CHAIN.test(before));
      end = (m.index ?? 0) + m[0].length;
      if (foreign) continue;
      const [whole, id, stepA, stepB, variant, vStepA, vStepB, variantWord] = m;
      const range = (a?: string, b?: string): number[] => {
        if (a === undefined) return [];
        if (b === undefined) return [Number(a)];
        // 'steps 3 and 7' / '3, 7' name two steps; '3–6' names a range
        const joined = whole.slice(whole.indexOf(a) + a.length, whole.lastIndexOf(b));
        if (/and|,/.test(joined)) return [Number(a), Number(b)];
        const steps: number[] = [];
        for (let n = Number(a); n <= Number(b); n++) steps.push(n);
        return steps;
      };
      out.push({
        text: whole.slice(1).trim(),
        id: id as string,
        variant: variant ?? variantWord,
        steps: variant !== undefined ? range(vStepA, vStepB) : range(stepA, stepB),
        line: i + 1,
      });
    }
  });
  return out;
}

/** Why `c` does not fit the reference, or undefined when it does. */
export function citationProblem(c: Citation, sections: Map<string, Section>): string | undefined {
  const section = sections.get(c.id);
  if (section === undefined) return `§${c.id} is not a section of docs/tdx-semantics.md`;
  if (c.variant !== undefined && stepNumbers(section, c.variant).size === 0) return `§${c.id} has no variant ${c.variant}`;
  const steps = stepNumbers(section, c.variant);
  const missing = c.steps.filter((n) => !steps.has(n));
  if (missing.length > 0) {
    return `§${c.id}${c.variant ? ` variant ${c.variant}` : ''} has no step ${missing.join(', ')} (steps: ${[...steps].join(', ') || 'none'})`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Markdown links

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to '-', repeats numbered. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutCode(markdown).split('\n')) {
    const h = /^#{1,6} (.+?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = (h[1] as string)
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Fenced blocks and inline code hold examples, not links. Lines are kept so line numbers stay right. */
function withoutCode(markdown: string): string {
  return markdown
    .replace(/^```[\s\S]*?^```/gm, (block) => block.replace(/[^\n]/g, ''))
    .replace(/`[^`\n]*`/g, (code) => ' '.repeat(code.length));
}

export interface Link {
  target: string;
  line: number;
}

export function linksIn(markdown: string): Link[] {
  const out: Link[] = [];
  withoutCode(markdown)
    .split('\n')
    .forEach((l, i) => {
      for (const m of l.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push({ target: m[1] as string, line: i + 1 });
    });
  return out;
}

/** Why a link in `fromFile` (repo-relative) is broken, or undefined. External links are not checked. */
export function linkProblem(fromFile: string, target: string, readRepoFile: (rel: string) => string | undefined): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined;
  const [filePart, fragment] = target.split('#', 2) as [string, string | undefined];
  const rel = filePart === '' ? fromFile : path.posix.normalize(path.posix.join(path.posix.dirname(fromFile), filePart));
  if (rel.startsWith('../')) return `${target} leaves the repository`;
  const content = readRepoFile(rel);
  if (content === undefined) return `${target}: no such file (${rel})`;
  if (fragment !== undefined && rel.endsWith('.md') && !anchorsOf(content).has(decodeURIComponent(fragment))) {
    return `${target}: ${rel} has no heading #${fragment}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// The repository's files

function readRepoFile(rel: string): string | undefined {
  const abs = path.join(repoRoot, rel);
  if (!existsSync(abs)) return undefined;
  return statSync(abs).isDirectory() ? '' : readFileSync(abs, 'utf8');
}

function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  const abs = path.join(repoRoot, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { withFileTypes: true }).flatMap((e) => {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'dist' ? [] : filesUnder(rel, keep);
    return keep(e.name) ? [rel] : [];
  });
}

const markdownFiles = ['README.md', ...filesUnder('docs', (n) => n.endsWith('.md')), ...filesUnder('examples', (n) => n.endsWith('.md'))];
/** Everything that cites sections: the READMEs and docs, the scenarios, and all TypeScript (comments, policy texts, test names). */
const citingFiles = [
  ...markdownFiles.filter((f) => f !== 'docs/tdx-semantics.md'),
  ...filesUnder('examples', (n) => n.endsWith('.yaml')),
  ...['src', 'machines', 'test', 'bench', 'web'].flatMap((d) => filesUnder(d, (n) => /\.(ts|mts|mjs)$/.test(n))),
].filter((f) => f !== thisFile);

const reference = readFileSync(referencePath, 'utf8');
const sections = sectionsOf(reference);

// ---------------------------------------------------------------------------------------------------

describe('§ citations', () => {
  it('the reference has the sections the repository is built around', () => {
    for (const id of ['0', '0.1', '0.2', '1.2', '2', '3.4', '4.1', '4.14', '5a', '5a.1', '5a.6', '5b.4', '5c.2', '6.i', '6.ii', '6.vii', '7.6', '7.7', '8', '9', '10']) {
      expect(sections.has(id), `§${id}`).toBe(true);
    }
  });

  it('every § cited in the READMEs, docs, scenarios and sources is a section (with that step or variant) of docs/tdx-semantics.md', () => {
    const problems: string[] = [];
    let count = 0;
    for (const file of citingFiles) {
      for (const c of citationsIn(readFileSync(path.join(repoRoot, file), 'utf8'))) {
        count++;
        const problem = citationProblem(c, sections);
        if (problem) problems.push(`${file}:${c.line}: §${c.text}: ${problem}`);
      }
    }
    expect(problems).toEqual([]);
    expect(count).toBeGreaterThan(500);
  });

  it('the reference’s own cross-references resolve', () => {
    const problems = citationsIn(reference)
      .map((c) => [c, citationProblem(c, sections)] as const)
      .filter(([, p]) => p !== undefined)
      .map(([c, p]) => `docs/tdx-semantics.md:${c.line}: ${p}`);
    expect(problems).toEqual([]);
  });

  it('reports a section, a step or a variant that does not exist, and skips other documents’ sections', () => {
    const problems = (text: string): string[] =>
      citationsIn(text)
        .map((c) => citationProblem(c, sections))
        .filter((p): p is string => p !== undefined);
    expect(problems('KVM retries locally (§7.3).')).toEqual([]);
    expect(problems('see §5a.9 and §11')).toEqual([
      '§5a.9 is not a section of docs/tdx-semantics.md',
      '§11 is not a section of docs/tdx-semantics.md',
    ]);
    expect(problems('§5c.1 step 12')).toEqual(['§5c.1 has no step 12 (steps: 1, 2, 3, 4, 5, 6, 7, 8)']);
    expect(problems('§6.iii steps 3–9')[0]).toMatch(/^§6\.iii has no step 8, 9 /);
    expect(problems('§6.ii A.3–A.6, §6.ii B.3, §6.ii variant B')).toEqual([]);
    expect(problems('§6.ii B.4')[0]).toMatch(/^§6\.ii variant B has no step 4 /);
    expect(problems('§6.iv C')).toEqual([]); // a capital after a citation is prose, not a variant
    expect(problems('§6.i A.1')).toEqual(['§6.i has no variant A']);
    expect(problems('(§1.2, SDM §25.5.6.1 and §28.2.3.1; ecosystem-notes §1.9; Intel SDM Vol. 3C §25.5.6.1)')).toEqual([]);
    expect(citationsIn('SDM §25.5.6.1, then §7.4').map((c) => c.id)).toEqual(['7.4']);
  });
});

describe('relative Markdown links', () => {
  it('every relative link in README.md, docs/ and examples/*/README.md leads to a file (and heading) of the repository', () => {
    const problems: string[] = [];
    let count = 0;
    for (const file of markdownFiles) {
      for (const { target, line } of linksIn(readFileSync(path.join(repoRoot, file), 'utf8'))) {
        count++;
        const problem = linkProblem(file, target, readRepoFile);
        if (problem) problems.push(`${file}:${line}: ${problem}`);
      }
    }
    expect(problems).toEqual([]);
    expect(count).toBeGreaterThan(30);
  });

  it('every example README links the domain reference', () => {
    const readmes = markdownFiles.filter((f) => /^examples\/[^/]+\/README\.md$/.test(f));
    expect(readmes.length).toBeGreaterThan(10);
    for (const f of readmes) {
      expect(linksIn(readFileSync(path.join(repoRoot, f), 'utf8')).map((l) => l.target), f).toContain('../../docs/tdx-semantics.md');
    }
  });

  it('reports a missing file, a missing heading and a path out of the repository', () => {
    const files: Record<string, string> = { 'README.md': '# tdxsim\n## Policy switches\n', 'docs/tdx-semantics.md': reference };
    const read = (rel: string): string | undefined => files[rel];
    expect(linkProblem('README.md', '#policy-switches', read)).toBeUndefined();
    expect(linkProblem('examples/x/README.md', '../../docs/tdx-semantics.md#6ii-first-touch-of-a-private-page', read)).toBeUndefined();
    expect(linkProblem('examples/x/README.md', 'https://example.org/', read)).toBeUndefined();
    expect(linkProblem('examples/x/README.md', '../../docs/tdx-semantic.md', read)).toBe('../../docs/tdx-semantic.md: no such file (docs/tdx-semantic.md)');
    expect(linkProblem('README.md', '#policies', read)).toBe('#policies: README.md has no heading #policies');
    expect(linkProblem('examples/x/README.md', '../../../elsewhere/tdx-semantics.md', read)).toBe('../../../elsewhere/tdx-semantics.md leaves the repository');
  });

  it('computes GitHub anchors for the reference’s headings', () => {
    const anchors = anchorsOf(reference);
    expect(anchors).toContain('5a6-module-decision-on-a-hardware-ept-violation-inside-the-td');
    expect(anchors).toContain('2-gpa-shared-bit-private-vs-shared-routing');
    expect(anchors).toContain('6vii-the-suppress-ve-sve-story-s000-s001');
  });

  it('finds links outside code only', () => {
    expect(linksIn('a [x](a.md) `[y](b.md)`\n```\n[z](c.md)\n```\n[w](d.md#e)').map((l) => `${l.line}:${l.target}`)).toEqual(['1:a.md', '5:d.md#e']);
  });
});
