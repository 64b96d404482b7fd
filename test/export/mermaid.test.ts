import { describe, expect, it } from 'vitest';
import { sequenceToMermaid } from '../../src/export/mermaid.ts';
import { mermaidText } from '../../src/export/mermaidText.ts';
import { exampleLog } from './fixtures.ts';

const ARROW = /^ {2}([A-Za-z_][A-Za-z0-9_]*)(->>|-->>)([A-Za-z_][A-Za-z0-9_]*): (\d+) (.+)$/;
const PARTICIPANT = /^ {2}participant ([A-Za-z_][A-Za-z0-9_]*) as (.+)$/;

describe('Mermaid sequence diagram of a log', () => {
  const { log, actors } = exampleLog('mmio-ve');
  const text = sequenceToMermaid({ events: log.events, end: log.end, actors, title: 'mmio-ve' });
  const lines = text.trimEnd().split('\n');

  it('is a sequenceDiagram with one participant per actor, in the model order', () => {
    expect(lines[0]).toBe('sequenceDiagram');
    const participants = lines.filter((l) => PARTICIPANT.test(l)).map((l) => PARTICIPANT.exec(l)![2]);
    expect(participants).toEqual(actors.filter((a) => log.events.some((e) => e.from === a || e.to === a)));
  });

  it('has one arrow per delivered message, numbered with the log step, between declared participants', () => {
    const declared = new Set(lines.filter((l) => PARTICIPANT.test(l)).map((l) => PARTICIPANT.exec(l)![1]));
    const arrows = lines.filter((l) => l.includes('->>'));
    expect(arrows).toHaveLength(log.events.length);
    arrows.forEach((l, i) => {
      const m = ARROW.exec(l);
      expect(m, l).not.toBeNull();
      expect(declared.has(m![1]!) && declared.has(m![3]!), l).toBe(true);
      expect(Number(m![4])).toBe(log.events[i]!.seq);
    });
    // Every line is a known statement: nothing a stray character could have broken.
    for (const l of lines.slice(1)) expect(l, l).toMatch(/^ {2}(title |participant |Note over )|->>/);
  });

  it('escapes the characters Mermaid would read as syntax or HTML, and keeps the name recoverable', () => {
    const ve = lines.find((l) => / \d+ #35;VE$/.test(l));
    expect(ve, 'the #VE arrow').toBeDefined();
    const vmcall = lines.find((l) => l.includes('TDG.VP.VMCALL'));
    expect(vmcall).toContain('TDG.VP.VMCALL#60;#35;VE.RequestMMIO#62;');
    for (const l of lines.filter((x) => x.includes('->>'))) {
      const label = ARROW.exec(l)![5]!;
      // Only entity codes may carry '#' or ';'; '<', '>', ':' never appear raw.
      expect(label.replace(/#\d+;/g, '')).not.toMatch(/[#;<>:{}"%]/);
    }
    expect(mermaidText('a<b>#c;d:e')).toBe('a#60;b#62;#35;c#59;d#58;e');
  });

  it('dashes replies and labels TD exits with their kind, as tdxsim run prints them', () => {
    expect(lines.some((l) => /-->>.*: \d+ EPT_WALK_RESULT$/.test(l))).toBe(true);
    expect(lines.some((l) => /->>kvm_vcpu0: \d+ EPT_VIOLATION \(TD exit\)$/.test(l))).toBe(true);
  });

  it('--actor keeps only that actor\'s messages, still numbered with the log steps', () => {
    const only = sequenceToMermaid({ events: log.events, end: log.end, actors, actor: 'kvm.mmu' }).trimEnd().split('\n');
    const arrows = only.filter((l) => l.includes('->>'));
    expect(arrows.length).toBe(log.events.filter((e) => e.from === 'kvm.mmu' || e.to === 'kvm.mmu').length);
    expect(arrows.every((l) => /kvm_mmu/.test(l))).toBe(true);
  });

  it('a failed run ends with a note naming the failure', () => {
    const failed = exampleLog('mmio-ve', { maxSteps: 10 });
    const t = sequenceToMermaid({ events: failed.log.events, end: failed.log.end, actors: failed.actors });
    expect(t.trimEnd().split('\n').at(-1)).toMatch(/^ {2}Note over \w+: failure#58; step bound 10 reached/);
  });
});
