/**
 * Tarjan's strongly connected components, iterative: the graphs are millions of nodes deep in places,
 * far beyond the JavaScript stack, so the recursion is an explicit stack of (node, next edge) frames.
 */

export interface Subgraph {
  nodes: number;
  /** Out-edges of v are start[v] … start[v + 1] − 1, to dst[e]. */
  start: Int32Array;
  dst: Int32Array;
  /** Nodes and edges outside the subgraph are skipped (an edge also needs both ends inside). */
  nodeIn(v: number): boolean;
  edgeIn(e: number): boolean;
}

export interface Components {
  /** Component of each node, −1 for nodes outside the subgraph. Numbered in the order Tarjan closes them: a component's successors come first. */
  comp: Int32Array;
  count: number;
}

export function stronglyConnected(g: Subgraph): Components {
  const { nodes, start, dst } = g;
  const index = new Int32Array(nodes).fill(-1);
  const low = new Int32Array(nodes);
  const comp = new Int32Array(nodes).fill(-1);
  const onStack = new Uint8Array(nodes);
  const stack = new Int32Array(nodes);
  const callNode = new Int32Array(nodes);
  const callEdge = new Int32Array(nodes);
  let sp = 0;
  let csp = 0;
  let counter = 0;
  let count = 0;

  const enter = (v: number) => {
    index[v] = low[v] = counter++;
    stack[sp++] = v;
    onStack[v] = 1;
    callNode[csp] = v;
    callEdge[csp] = start[v]!;
    csp++;
  };

  for (let root = 0; root < nodes; root++) {
    if (index[root]! >= 0 || !g.nodeIn(root)) continue;
    enter(root);
    while (csp > 0) {
      const v = callNode[csp - 1]!;
      const e = callEdge[csp - 1]!;
      if (e < start[v + 1]!) {
        callEdge[csp - 1] = e + 1;
        if (!g.edgeIn(e)) continue;
        const w = dst[e]!;
        if (!g.nodeIn(w)) continue;
        if (index[w]! < 0) enter(w);
        else if (onStack[w] === 1 && index[w]! < low[v]!) low[v] = index[w]!;
        continue;
      }
      csp--;
      if (csp > 0) {
        const u = callNode[csp - 1]!;
        if (low[v]! < low[u]!) low[u] = low[v]!;
      }
      if (low[v] === index[v]) {
        let x: number;
        do {
          x = stack[--sp]!;
          onStack[x] = 0;
          comp[x] = count;
        } while (x !== v);
        count++;
      }
    }
  }
  return { comp, count };
}
