import { describe, expect, it } from 'vitest';
import { createMachine, type AnyStateNode } from 'xstate';
import { actorsFor } from '../../machines/registry.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { guestVcpuMachine } from '../../machines/guest/guestVcpu.ts';
import { kvmVcpuMachine } from '../../machines/kvm/kvmVcpu.ts';
import { tdpMmuMachine } from '../../machines/kvm/tdpMmu.ts';
import { activeStateIds, allStates, statechartOf } from '../../src/export/statechart.ts';
import { statechartToMermaid } from '../../src/export/statechartMermaid.ts';
import { layoutStatechart, type LayoutState } from '../../src/export/statechartLayout.ts';
import { renderStatechart } from '../../src/export/statechartSvg.ts';
import { svgToText } from '../../src/export/svgTree.ts';

const { scenario } = loadScenarioFile('mmio-ve');
/** Every machine the mmio-ve model uses, once. */
const MACHINES = [...new Set(actorsFor(scenario).map((a) => a.machine))];

describe('statecharts read from the XState definitions', () => {
  for (const machine of MACHINES) {
    it(`${machine.id}: every state, its initial state, and every transition with its event and targets`, () => {
      const chart = statechartOf(machine);
      const byId = new Map(allStates(chart).map((s) => [s.id, s]));
      const all = [...chart.edges, ...allStates(chart).flatMap((s) => [...s.internal, ...s.fromAnyState])];
      const walk = (n: AnyStateNode) => {
        const s = byId.get(n.id);
        expect(s, n.id).toBeDefined();
        expect(s!.children.map((c) => c.id)).toEqual(Object.values(n.states).map((c) => c.id));
        if (s!.children.length > 0) expect(s!.initial).toBe(n.initial?.target?.[0]?.id ?? null);
        const defined = [...[...n.transitions].flatMap(([event, list]) => list.map((t) => [event, t] as const)), ...(n.always ?? []).map((t) => ['always', t] as const)];
        for (const [event, t] of defined) {
          const found = all.filter((c) => c.source === n.id && c.event === event && JSON.stringify(c.targets) === JSON.stringify((t.target ?? []).map((x) => x.id)));
          expect(found.length, `${n.id} ${event}`).toBeGreaterThan(0);
        }
        Object.values(n.states).forEach(walk);
      };
      walk(machine.root);
      expect(all).toHaveLength(allStates(chart).reduce((k, s) => k + [...machine.getStateNodeById(s.id).transitions.values()].flat().length + (machine.getStateNodeById(s.id).always?.length ?? 0), 0));
    });
  }

  it('keep nested states and guards (KVM\'s fault path is a compound state)', () => {
    const chart = statechartOf(kvmVcpuMachine);
    const nested = chart.root.children.find((c) => c.key === 'handlingEptViolation')!;
    expect(nested.type).toBe('compound');
    expect(nested.children.length).toBeGreaterThan(2);
    expect(chart.edges.some((t) => t.event === 'always' && t.guard !== null)).toBe(true);
    expect(chart.edges.some((t) => t.guard?.startsWith('and('))).toBe(true);
  });

  it('put target-less transitions inside their state (the TDP MMU answers walks without changing state)', () => {
    const chart = statechartOf(tdpMmuMachine);
    expect(chart.root.internal.map((t) => t.event)).toEqual(expect.arrayContaining(['TDP_WALK', 'EPT_WALK', 'SPTE_CMPXCHG']));
    expect(chart.edges.every((t) => t.targets.length > 0)).toBe(true);
  });

  it('name the active states of a snapshot value, ancestors included', () => {
    const nested = statechartOf(kvmVcpuMachine).root.children.find((c) => c.key === 'handlingEptViolation')!;
    const leaf = nested.children[0]!;
    expect(activeStateIds(kvmVcpuMachine, { handlingEptViolation: leaf.key })).toEqual(['kvmVcpu', nested.id, leaf.id]);
  });
});

describe('Mermaid state diagram export', () => {
  for (const machine of MACHINES) {
    it(`${machine.id}: well-formed stateDiagram-v2 whose arrows join declared states`, () => {
      const text = statechartToMermaid(statechartOf(machine));
      const lines = text.trimEnd().split('\n');
      expect(lines[0]).toBe('stateDiagram-v2');
      const declared = new Set([...text.matchAll(/state "[^"]*" as (\w+)/g)].map((m) => m[1]));
      let depth = 0;
      let inNote = false;
      for (const l of lines.slice(1)) {
        const t = l.trim();
        if (inNote) {
          if (t === 'end note') inNote = false;
          else expect(t.replace(/#\d+;/g, ''), l).not.toMatch(/[#;<>:{}"]/);
          continue;
        }
        if (/^note right of \w+$/.test(t)) {
          inNote = true;
          continue;
        }
        if (t.endsWith('{')) depth++;
        else if (t === '}') depth--;
        expect(depth).toBeGreaterThanOrEqual(0);
        const arrow = /^(\[\*\]|\w+) --> (\[\*\]|\w+)(?: : (.+))?$/.exec(t);
        if (arrow) {
          for (const end of [arrow[1]!, arrow[2]!]) if (end !== '[*]') expect(declared.has(end), `${end} in ${l}`).toBe(true);
          if (arrow[3]) expect(arrow[3].replace(/#\d+;/g, ''), l).not.toMatch(/[#;<>:{}"]/);
          continue;
        }
        expect(t, l).toMatch(/^(%%|state "[^"]*" as \w+$|state \w+ \{$|\}$)/);
      }
      expect(depth).toBe(0);
      expect(inNote).toBe(false);
      const arrows = lines.filter((l) => / --> /.test(l) && !l.includes('[*]'));
      expect(arrows.length).toBe(statechartOf(machine).edges.reduce((n, t) => n + t.targets.length, 0));
    });
  }
});

describe('SVG statechart export (elkjs layout)', () => {
  it('lays every state out inside its parent, and draws each state, arrow and label', async () => {
    const chart = statechartOf(kvmVcpuMachine);
    const layout = await layoutStatechart(chart);
    const inside = (c: LayoutState, p: LayoutState) => c.x >= p.x && c.y >= p.y && c.x + c.width <= p.x + p.width + 0.5 && c.y + c.height <= p.y + p.height + 0.5;
    const check = (s: LayoutState) => {
      for (const c of s.children) {
        expect(inside(c, s), `${c.id} inside ${s.id}`).toBe(true);
        check(c);
      }
    };
    check(layout.root);
    const svg = svgToText(renderStatechart(layout));
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    for (const s of allStates(chart)) expect(svg).toContain(`data-state="${s.id}"`);
    expect(svg.match(/<path d="M/g)!.length).toBeGreaterThanOrEqual(layout.edges.length);
    expect(svg).toContain('>MMU_LOCK_ACQUIRED<');
    expect(svg.split('<g').length).toBe(svg.split('</g>').length);
  });

  it('escapes names, so a state called <script> stays text', async () => {
    const m = createMachine({ id: 'x<y>', initial: '<script>', states: { '<script>': { on: { 'A&B': 'done' } }, done: { type: 'final' } } });
    const svg = svgToText(renderStatechart(await layoutStatechart(statechartOf(m))));
    expect(svg).not.toContain('<script>');
    expect(svg).toContain('&lt;script&gt;');
    expect(svg).toContain('A&amp;B');
  });

  it('marks active states and taken transitions when asked (the inspector\'s highlight)', async () => {
    const layout = await layoutStatechart(statechartOf(guestVcpuMachine));
    const svg = svgToText(renderStatechart(layout, { active: new Set(['guestVcpu.inVeHandler']), taken: new Set(['guestVcpu.executing|#VE|0']) }));
    expect(svg).toMatch(/class="state state-atomic active" data-state="guestVcpu.inVeHandler"/);
    expect(svg).toMatch(/class="edge taken" data-transitions="\[&quot;guestVcpu.executing\|#VE\|0&quot;\]"/);
  });
});
