/** The progress display: a live line on a terminal, periodic plain lines elsewhere, nothing when quiet. */
import { describe, expect, it } from 'vitest';
import { duration, percent, Progress, thousands } from '../../src/cli/progress.ts';

function target(isTTY: boolean, columns = 60) {
  const out: string[] = [];
  return { out, t: { isTTY, columns, write: (s: string) => out.push(s) } };
}

describe('Progress', () => {
  it('on a terminal: one line redrawn in place, cut to the width, at most every 100 ms; clear() wipes it', () => {
    let now = 0;
    const { out, t } = target(true, 30);
    const p = new Progress(t, { now: () => now });
    p.update(() => 'states 1');
    now = 50;
    p.update(() => 'states 2 (not shown: too soon)');
    now = 150;
    p.update(() => 'states 3 ' + 'x'.repeat(40));
    p.clear();
    expect(out).toEqual(['\r\x1b[Kstates 1', `\r\x1b[Kstates 3 ${'x'.repeat(19)}…`, '\r\x1b[K']);
  });

  it('into a file or pipe: a plain "# …" line every 5 s, none before the first 5 s, and clear() writes nothing', () => {
    let now = 0;
    const { out, t } = target(false);
    const p = new Progress(t, { now: () => now });
    p.update(() => 'early');
    now = 5_000;
    p.update(() => 'at 5 s');
    now = 6_000;
    p.update(() => 'at 6 s');
    now = 10_001;
    p.update(() => 'at 10 s');
    p.clear();
    expect(out).toEqual(['# at 5 s\n', '# at 10 s\n']);
  });

  it('quiet: nothing at all, and the line is never even built', () => {
    const { out, t } = target(true);
    const p = new Progress(t, { quiet: true, now: () => 1e9 });
    p.update(() => {
      throw new Error('built');
    });
    p.clear();
    expect(out).toEqual([]);
  });

  it('formats', () => {
    expect(thousands(1234567.4)).toBe('1,234,567');
    expect(percent(27, 1000)).toBe('2.7%');
    expect(percent(500, 1000)).toBe('50%');
    expect(percent(1, 0)).toBe('—');
    expect(duration(400)).toBe('0.4 s');
    expect(duration(42_000)).toBe('42 s');
    expect(duration(185_000)).toBe('3 min 05 s');
  });
});
