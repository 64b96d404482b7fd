/**
 * Non-progress cycles under weak fairness (Spin's non-progress cycles, TLC's liveness with WF), on the
 * state graph the depth-first search recorded (stateGraph.ts).
 *
 * A finding is a reachable cycle along which some progress thread (progress.ts) wants to make progress in
 * every state and never does, and which a fair scheduler could run for ever. Fairness is weak fairness per
 * *channel* (sender → receiver): a channel whose oldest message is deliverable in every state of the cycle
 * must be delivered somewhere in it. Channels are the scheduler's own unit of choice (a choice is "the
 * oldest message of one channel"), each is FIFO, and nothing but its delivery disables its head, so this
 * says "no message stays in flight for ever" — what real CPUs, memory and the module guarantee. A coarser
 * unit would report loops real hardware cannot run: with fairness per receiving actor, kvm.mmu serving
 * vCPU 1's walks for ever would count as fair to kvm.mmu while vCPU 0's cmpxchg to it is never delivered;
 * with fairness per vCPU chain, messages of the shared actors (the module stepping itself, memory
 * answering the module) belong to no chain. A loop that exists only because some thread is never
 * scheduled is therefore not a finding (test/explore/liveness.test.ts has one).
 *
 * Algorithm, per progress thread P: take the subgraph of complete nodes where P wants progress, without
 * P's progress edges; compute its strongly connected components (scc.ts); a component with at least one
 * edge holds a fair cycle iff every channel enabled in all of its states labels some edge inside it — the
 * closed walk through all its edges is then fair, and if some channel is enabled throughout and never taken
 * inside, every cycle in the component leaves it in flight for ever. "Enabled" is read off the full graph:
 * in the unreduced graph a state's out-edges are exactly its deliverable channels.
 *
 * Second finding, when no thread starves: a reachable set of states the system can never leave and never
 * quiesce in — a bottom component with an edge (on a finite graph with no end state reachable at all,
 * there always is one). Its cycles are fair by construction (every edge of the component stays inside).
 *
 * The lasso reported is the shortest prefix (breadth-first over the graph) to a state of a finding's
 * component, plus a fair loop through that state: the shortest cycle through it inside the component,
 * extended by shortest detours until fair (a detour to an edge of each channel left in flight, or to a
 * state where that channel is not deliverable). The start states are tried nearest first, keeping the
 * shortest prefix + loop, until no nearer start can beat it or LASSO_STARTS_TRIED starts were tried.
 */
import { stronglyConnected } from './scc.ts';
import { wantsAt, type FrozenGraph } from './stateGraph.ts';

export interface LassoPath {
  /** Edges (indices into the frozen graph) from the initial state to the loop's start. */
  prefix: number[];
  /** Edges of one turn of the loop, back to its start. */
  loop: number[];
  /** The progress thread that starves (an index into `graph.threads`), or −1: no end state is reachable. */
  thread: number;
}

/** A component of the graph holding a finding: node v is in it iff comp[v] === id. */
export interface Finding {
  /** The starving progress thread (an index into `graph.threads`), or −1: a bottom component without an end state. */
  thread: number;
  comp: Int32Array;
  id: number;
}

export interface NonProgressResult {
  lasso: LassoPath | null;
  /** Components holding a fair non-progress cycle, per thread; failing those, bottom components without an end. */
  findings: Finding[];
}

/** Bounds the search for the shortest lasso: loop starts tried, nearest first. */
export const LASSO_STARTS_TRIED = 256;

export function findNonProgress(g: FrozenGraph): NonProgressResult {
  const words = Math.ceil((g.actors * g.actors) / 32);
  const scratch = new Uint32Array(words);
  const enabledInto = (v: number, out: Uint32Array) => {
    out.fill(0);
    for (let e = g.start[v]!; e < g.start[v + 1]!; e++) out[g.channel[e]! >>> 5]! |= 1 << (g.channel[e]! & 31);
  };

  const findings: Finding[] = [];
  for (let k = 0; k < g.threads.length; k++) {
    const { comp } = stronglyConnected({
      nodes: g.nodes,
      start: g.start,
      dst: g.dst,
      nodeIn: (v) => g.complete[v] === 1 && wantsAt(g, v, k),
      edgeIn: (e) => g.progress[e] !== k + 1,
    });
    const fair = fairComponents(g, comp, words, scratch, enabledInto, (e) => g.progress[e] !== k + 1);
    for (const id of fair) findings.push({ thread: k, comp, id });
  }
  if (findings.length === 0) {
    const { comp, count } = stronglyConnected({ nodes: g.nodes, start: g.start, dst: g.dst, nodeIn: (v) => g.complete[v] === 1, edgeIn: () => true });
    for (const id of bottomComponents(g, comp, count)) findings.push({ thread: -1, comp, id });
  }
  return { lasso: findings.length === 0 ? null : shortestLasso(g, findings, words, enabledInto), findings };
}

/** Components with an internal edge (per `edgeIn`) whose every always-enabled channel is taken inside. */
function fairComponents(g: FrozenGraph, comp: Int32Array, words: number, scratch: Uint32Array, enabledInto: (v: number, out: Uint32Array) => void, edgeIn: (e: number) => boolean): number[] {
  const taken = new Map<number, Uint32Array>();
  for (let v = 0; v < g.nodes; v++) {
    const c = comp[v]!;
    if (c < 0) continue;
    for (let e = g.start[v]!; e < g.start[v + 1]!; e++) {
      if (!edgeIn(e) || comp[g.dst[e]!] !== c) continue;
      let t = taken.get(c);
      if (t === undefined) taken.set(c, (t = new Uint32Array(words)));
      t[g.channel[e]! >>> 5]! |= 1 << (g.channel[e]! & 31);
    }
  }
  if (taken.size === 0) return [];
  const always = new Map<number, Uint32Array>();
  for (let v = 0; v < g.nodes; v++) {
    const c = comp[v]!;
    if (c < 0 || !taken.has(c)) continue;
    enabledInto(v, scratch);
    const a = always.get(c);
    if (a === undefined) always.set(c, scratch.slice());
    else for (let w = 0; w < words; w++) a[w]! &= scratch[w]!;
  }
  const fair: number[] = [];
  for (const [c, t] of taken) {
    const a = always.get(c)!;
    let missing = 0;
    for (let w = 0; w < words; w++) missing |= a[w]! & ~t[w]!;
    if (missing === 0) fair.push(c);
  }
  return fair.sort((x, y) => x - y);
}

/** Components with an internal edge and no edge leaving them (to another component or an incomplete node). */
function bottomComponents(g: FrozenGraph, comp: Int32Array, count: number): number[] {
  const inner = new Uint8Array(count);
  const leaves = new Uint8Array(count);
  for (let v = 0; v < g.nodes; v++) {
    const c = comp[v]!;
    if (c < 0) continue;
    for (let e = g.start[v]!; e < g.start[v + 1]!; e++) {
      if (comp[g.dst[e]!] === c) inner[c] = 1;
      else leaves[c] = 1;
    }
  }
  const out: number[] = [];
  for (let c = 0; c < count; c++) if (inner[c] === 1 && leaves[c] === 0) out.push(c);
  return out;
}

/** Breadth-first distances from the initial state (node 0) over every recorded edge, with the edge each node was reached by. */
function fromRoot(g: FrozenGraph): { dist: Int32Array; via: Int32Array; from: Int32Array } {
  const dist = new Int32Array(g.nodes).fill(-1);
  const via = new Int32Array(g.nodes).fill(-1);
  const from = new Int32Array(g.nodes).fill(-1);
  const queue = new Int32Array(g.nodes);
  let head = 0;
  let tail = 0;
  dist[0] = 0;
  queue[tail++] = 0;
  while (head < tail) {
    const v = queue[head++]!;
    for (let e = g.start[v]!; e < g.start[v + 1]!; e++) {
      const w = g.dst[e]!;
      if (dist[w]! >= 0) continue;
      dist[w] = dist[v]! + 1;
      via[w] = e;
      from[w] = v;
      queue[tail++] = w;
    }
  }
  return { dist, via, from };
}

function shortestLasso(g: FrozenGraph, findings: Finding[], words: number, enabledInto: (v: number, out: Uint32Array) => void): LassoPath {
  const { dist, via, from } = fromRoot(g);
  const starts: { v: number; f: Finding }[] = [];
  // One pass over the nodes per component numbering (a thread's), however many of its components hold findings.
  for (const comp of new Set(findings.map((f) => f.comp))) {
    const byId = new Map(findings.filter((f) => f.comp === comp).map((f) => [f.id, f]));
    for (let v = 0; v < g.nodes; v++) {
      const f = byId.get(comp[v]!);
      if (f !== undefined && dist[v]! >= 0) starts.push({ v, f });
    }
  }
  starts.sort((a, b) => dist[a.v]! - dist[b.v]! || a.v - b.v);
  const search = new LoopSearch(g, words, enabledInto);
  let best: { v: number; f: Finding; loop: number[] } | null = null;
  let tried = 0;
  for (const s of starts) {
    const budget = best === null ? Infinity : dist[best.v]! + best.loop.length - dist[s.v]! - 1;
    if (budget < 1 || tried >= LASSO_STARTS_TRIED) break;
    tried++;
    // Only a loop shorter than the best lasso's remainder can win; longer searches are cut short.
    const loop = search.fairLoop(s.v, s.f, budget);
    if (loop !== null) best = { ...s, loop };
  }
  const prefix: number[] = [];
  for (let v = best!.v; v !== 0; v = from[v]!) prefix.push(via[v]!);
  return { prefix: prefix.reverse(), loop: best!.loop, thread: best!.f.thread };
}

/** Breadth-first searches inside one finding's component, sharing their arrays. */
class LoopSearch {
  private readonly seen: Int32Array;
  private readonly prevEdge: Int32Array;
  private readonly prevNode: Int32Array;
  private readonly queue: Int32Array;
  private readonly depth: Int32Array;
  private stamp = 0;
  private readonly always: Uint32Array;
  private readonly taken: Uint32Array;
  private readonly here: Uint32Array;

  constructor(
    private readonly g: FrozenGraph,
    private readonly words: number,
    private readonly enabledInto: (v: number, out: Uint32Array) => void,
  ) {
    this.seen = new Int32Array(g.nodes);
    this.prevEdge = new Int32Array(g.nodes);
    this.prevNode = new Int32Array(g.nodes);
    this.queue = new Int32Array(g.nodes);
    this.depth = new Int32Array(g.nodes);
    this.always = new Uint32Array(words);
    this.taken = new Uint32Array(words);
    this.here = new Uint32Array(words);
  }

  private edgeOk(f: Finding, e: number): boolean {
    return f.comp[this.g.dst[e]!] === f.id && (f.thread < 0 || this.g.progress[e] !== f.thread + 1);
  }

  private enabled(v: number, channel: number): boolean {
    for (let e = this.g.start[v]!; e < this.g.start[v + 1]!; e++) if (this.g.channel[e] === channel) return true;
    return false;
  }

  /**
   * Breadth-first from `sources` inside the component until `target(v)` holds for a node v popped, or
   * `targetEdge(e)` for an edge scanned; returns the path's edges (the edge included) and its source, or
   * null when no path of at most `limit` edges gets there.
   */
  private bfs(f: Finding, sources: readonly number[], target: (v: number) => boolean, targetEdge: (e: number) => boolean, limit: number): { edges: number[]; from: number } | null {
    const g = this.g;
    const stamp = ++this.stamp;
    let head = 0;
    let tail = 0;
    for (const s of sources) {
      if (this.seen[s] === stamp) continue;
      this.seen[s] = stamp;
      this.prevNode[s] = -1;
      this.depth[s] = 0;
      this.queue[tail++] = s;
    }
    const pathTo = (v: number, last: number): { edges: number[]; from: number } => {
      const edges = last < 0 ? [] : [last];
      for (; this.prevNode[v]! >= 0; v = this.prevNode[v]!) edges.push(this.prevEdge[v]!);
      return { edges: edges.reverse(), from: v };
    };
    while (head < tail) {
      const v = this.queue[head++]!;
      if (target(v)) return pathTo(v, -1);
      if (this.depth[v]! >= limit) continue;
      for (let e = g.start[v]!; e < g.start[v + 1]!; e++) {
        if (!this.edgeOk(f, e)) continue;
        if (targetEdge(e)) return pathTo(v, e);
        const w = g.dst[e]!;
        if (this.seen[w] === stamp) continue;
        this.seen[w] = stamp;
        this.prevNode[w] = v;
        this.prevEdge[w] = e;
        this.depth[w] = this.depth[v]! + 1;
        this.queue[tail++] = w;
      }
    }
    if (limit === Infinity) throw new Error('model bug: the non-progress check lost its way inside a strongly connected component');
    return null;
  }

  /** A fair closed walk from `u` through the component of `f` (see the file comment), or null if it takes more than `limit` edges. */
  fairLoop(u: number, f: Finding, limit: number): number[] | null {
    const g = this.g;
    let loop = this.bfs(f, [u], () => false, (e) => g.dst[e] === u, limit)?.edges;
    for (;;) {
      if (loop === undefined || loop.length > limit) return null;
      // Channels deliverable in every state of the loop and delivered nowhere in it.
      const { always, taken, here } = this;
      always.fill(0xffffffff);
      taken.fill(0);
      let v = u;
      const nodes: number[] = [];
      for (const e of loop) {
        nodes.push(v);
        this.enabledInto(v, here);
        for (let w = 0; w < this.words; w++) always[w]! &= here[w]!;
        taken[g.channel[e]! >>> 5]! |= 1 << (g.channel[e]! & 31);
        v = g.dst[e]!;
      }
      let missing = -1;
      for (let w = 0; w < this.words && missing < 0; w++) {
        const m = always[w]! & ~taken[w]!;
        if (m !== 0) missing = w * 32 + (31 - Math.clz32(m & -m));
      }
      if (missing < 0) return loop;
      const c = missing;
      // To an edge of channel c, or to a state where c is not deliverable; then back to where we left.
      const room = limit - loop.length;
      const out = this.bfs(f, nodes, (y) => !this.enabled(y, c), (e) => g.channel[e] === c, room);
      if (out === null) return null;
      const end = g.dst[out.edges[out.edges.length - 1]!]!;
      const back = end === out.from ? [] : this.bfs(f, [end], (y) => y === out.from, () => false, room - out.edges.length)?.edges;
      if (back === undefined) return null;
      const at = nodes.indexOf(out.from);
      loop = [...loop.slice(0, at), ...out.edges, ...back, ...loop.slice(at)];
    }
  }
}
