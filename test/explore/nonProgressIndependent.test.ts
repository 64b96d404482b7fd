/**
 * An independent check of the non-progress search on the bundled examples: a plain depth-first search
 * with an explicit stack builds the unreduced graph itself (every enabled delivery from every state, no
 * sleep sets, no transition cache, string keys), Kosaraju's two passes (not Tarjan) find its components,
 * and the fairness rule is applied with sets of channel names. The states on fair non-progress cycles,
 * per starving thread (or, when there are none, the bottom components without an end state), must be
 * exactly those of the explorer's own graph, and the graphs the same, edge by edge.
 */
import { describe, expect, it } from 'vitest';
import { explore } from '../../src/explore/explore.ts';
import { fingerprint } from '../../src/explore/fingerprint.ts';
import { nonProgress } from '../../src/explore/invariants/index.ts';
import { findNonProgress } from '../../src/explore/liveness/nonProgress.ts';
import type { FrozenGraph } from '../../src/explore/liveness/stateGraph.ts';
import { progressThreadsOf } from '../../src/explore/progress.ts';
import { hashKey } from '../../src/explore/structuralHash.ts';
import type { PolicyOverrides } from '../../src/policies.ts';
import { enabledChoices, initialWorld, step } from '../../src/runtime/step.ts';
import type { Model, World } from '../../src/runtime/world.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { withPolicies } from '../../src/session/policies.ts';
import { modelFor } from '../../src/session/session.ts';
import { ALL_EXAMPLES, exampleFile } from '../helpers.ts';

interface PlainEdge {
  to: number;
  channel: string;
  /** The progress thread this delivery moves on, by id. */
  progress: string | null;
}

interface PlainGraph {
  keys: string[];
  edges: PlainEdge[][];
  /** Per node, the ids of the threads that want progress. */
  wants: Set<string>[];
}

/** Every enabled delivery of every reachable state, depth-first with an explicit stack. */
function plainGraph(model: Model): PlainGraph {
  const threads = progressThreadsOf(model);
  const ids = new Map<string, number>();
  const g: PlainGraph = { keys: [], edges: [], wants: [] };
  const add = (w: World): number => {
    const key = hashKey(fingerprint(model, w));
    let id = ids.get(key);
    if (id === undefined) {
      id = g.keys.length;
      ids.set(key, id);
      g.keys.push(key);
      g.edges.push([]);
      g.wants.push(new Set(threads.filter((t) => t.wants(model, w)).map((t) => t.id)));
      stack.push([id, w]);
    }
    return id;
  };
  const stack: [number, World][] = [];
  add(initialWorld(model));
  while (stack.length > 0) {
    const [id, w] = stack.pop()!;
    const enabled = enabledChoices(model, w);
    enabled.forEach((m, c) => {
      const r = step(model, w, c, enabled);
      const t = threads.find((x) => x.id === m.to);
      const moved = t !== undefined && t.progressed(w.snapshots[t.actor]!, r.world.snapshots[t.actor]!, m);
      g.edges[id]!.push({ to: add(r.world), channel: `${m.from}>${m.to}`, progress: moved ? t.id : null });
    });
  }
  return g;
}

/** Kosaraju over the nodes and edges kept: component per node (−1 outside). */
function kosaraju(g: PlainGraph, nodeIn: (v: number) => boolean, edgeIn: (e: PlainEdge) => boolean): number[] {
  const n = g.keys.length;
  const order: number[] = [];
  const seen = new Array<boolean>(n).fill(false);
  for (let s = 0; s < n; s++) {
    if (seen[s] || !nodeIn(s)) continue;
    seen[s] = true;
    const stack: [number, number][] = [[s, 0]];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const out = g.edges[top[0]]!;
      if (top[1] < out.length) {
        const e = out[top[1]++]!;
        if (edgeIn(e) && nodeIn(e.to) && !seen[e.to]) {
          seen[e.to] = true;
          stack.push([e.to, 0]);
        }
      } else {
        order.push(top[0]);
        stack.pop();
      }
    }
  }
  const reverse: number[][] = g.keys.map(() => []);
  g.edges.forEach((out, v) => {
    if (nodeIn(v)) for (const e of out) if (edgeIn(e) && nodeIn(e.to)) reverse[e.to]!.push(v);
  });
  const comp = new Array<number>(n).fill(-1);
  let c = 0;
  for (const s of order.reverse()) {
    if (comp[s] !== -1) continue;
    const stack = [s];
    comp[s] = c;
    while (stack.length > 0) {
      const v = stack.pop()!;
      for (const u of reverse[v]!) {
        if (comp[u] === -1) {
          comp[u] = c;
          stack.push(u);
        }
      }
    }
    c++;
  }
  return comp;
}

/** "thread|state" for every state on a fair non-progress cycle; failing any, "end|state" for bottom components without an end. */
function plainFindings(g: PlainGraph, threads: readonly string[]): Set<string> {
  const found = new Set<string>();
  for (const t of threads) {
    const edgeIn = (e: PlainEdge) => e.progress !== t;
    const comp = kosaraju(g, (v) => g.wants[v]!.has(t), edgeIn);
    const members = new Map<number, number[]>();
    comp.forEach((c, v) => c >= 0 && members.set(c, [...(members.get(c) ?? []), v]));
    for (const nodes of members.values()) {
      const c = comp[nodes[0]!]!;
      const taken = new Set<string>();
      for (const v of nodes) for (const e of g.edges[v]!) if (edgeIn(e) && comp[e.to] === c) taken.add(e.channel);
      if (taken.size === 0) continue;
      const always = nodes.map((v) => new Set(g.edges[v]!.map((e) => e.channel))).reduce((a, b) => new Set([...a].filter((x) => b.has(x))));
      if ([...always].every((ch) => taken.has(ch))) for (const v of nodes) found.add(`${t}|${g.keys[v]}`);
    }
  }
  if (found.size > 0) return found;
  const comp = kosaraju(g, () => true, () => true);
  const inner = new Set<number>();
  const leaves = new Set<number>();
  g.edges.forEach((out, v) => out.forEach((e) => (comp[e.to] === comp[v] ? inner : leaves).add(comp[v]!)));
  comp.forEach((c, v) => inner.has(c) && !leaves.has(c) && found.add(`end|${g.keys[v]}`));
  return found;
}

const key = (g: FrozenGraph, v: number) => hashKey({ hi: g.fpHi[v]!, lo: g.fpLo[v]! });

function explorerEdges(model: Model, g: FrozenGraph): string[] {
  const out: string[] = [];
  for (let v = 0; v < g.nodes; v++) {
    for (let e = g.start[v]!; e < g.start[v + 1]!; e++) {
      const c = g.channel[e]!;
      const channel = `${model.actors[Math.floor(c / g.actors)]!.id}>${model.actors[c % g.actors]!.id}`;
      out.push(`${key(g, v)} ${channel} ${key(g, g.dst[e]!)} ${g.progress[e] === 0 ? '-' : g.threads[g.progress[e]! - 1]!.id}`);
    }
  }
  return out.sort();
}

function plainEdges(g: PlainGraph): string[] {
  return g.edges.flatMap((out, v) => out.map((e) => `${g.keys[v]} ${e.channel} ${g.keys[e.to]} ${e.progress ?? '-'}`)).sort();
}

function explorerFindings(g: FrozenGraph): Set<string> {
  const found = new Set<string>();
  for (const f of findNonProgress(g).findings) {
    for (let v = 0; v < g.nodes; v++) if (f.comp[v] === f.id) found.add(`${f.thread < 0 ? 'end' : g.threads[f.thread]!.id}|${key(g, v)}`);
  }
  return found;
}

/**
 * The naive search steps every edge through XState: the two 100k-state examples would take minutes,
 * zeropad-during-conversion's graph without its safety violation (two vCPUs converting a page back and
 * forth through implicit conversions) passes 150k states, and split-block-busy (75 s) and halt-poll (the
 * poll windows on the logical clock, 19 s) were a fifth of the whole suite's time on a loaded 2-core
 * machine. The graphs of the other examples cover the same builders (two-vCPU races, HLT, splits).
 */
const TOO_BIG = new Set(['accept-level-two-vcpus', 'parallel-touches', 'zeropad-during-conversion', 'split-block-busy', 'halt-poll']);
const CASES: [string, PolicyOverrides][] = [
  ...ALL_EXAMPLES.filter((n) => !TOO_BIG.has(n)).map((n): [string, PolicyOverrides] => [n, {}]),
  ['accept-level-split', { splitOnAcceptLevel: false }],
  ['zap-during-accept', { busyLeavesFastpath: false }],
];

describe('non-progress against an independent plain search', () => {
  for (const [name, policies] of CASES) {
    const label = Object.keys(policies).length === 0 ? name : `${name} with ${Object.entries(policies).map(([k, v]) => `${k}=${v ? 'on' : 'off'}`).join(' ')}`;
    it(`${label}: same graph, same states on fair non-progress cycles`, () => {
      const model = modelFor(withPolicies(loadScenarioFile(exampleFile(name)).scenario, policies));
      let g: FrozenGraph | null = null;
      const r = explore(model, [nonProgress], { maxDepth: 10_000, maxStates: 1_000_000, maxMillis: Number.POSITIVE_INFINITY }, { onGraph: (x) => (g = x) });
      expect(r.liveness!.exhaustive).toBe(true);
      const plain = plainGraph(model);
      expect(g!.nodes).toBe(plain.keys.length);
      // Every edge: from, channel, to and the thread it moves on (the explorer found most pruned ones without stepping them).
      expect(explorerEdges(model, g!)).toEqual(plainEdges(plain));
      const mine = explorerFindings(g!);
      expect([...mine].sort()).toEqual([...plainFindings(plain, progressThreadsOf(model).map((t) => t.id))].sort());
      expect(r.status === 'violation').toBe(mine.size > 0);
    });
  }
});
