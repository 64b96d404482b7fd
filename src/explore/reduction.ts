/**
 * The explorer's reduction beyond sleep sets: persistent sets of one delivery, for deliveries nothing else
 * can interfere with and no invariant can see (Godefroid 1996; Clarke, Grumberg, Minea, Peled 1999).
 *
 * At a state s the search may explore one deliverable message t alone — t goes on channel X → A — when:
 *
 * (P1) *Sole sender.* X is the only actor that ever sends to A: the *topology* T (which channels can
 *      carry messages) allows one channel into A. Then {t} is persistent in s: on every path from s that
 *      does not take t, no delivery to A happens (another message to A would need another sender, and the
 *      messages behind t on X → A are not deliverable before it), and deliveries to different actors are
 *      independent — each changes only its receiver and appends to queues the other does not take from,
 *      so both orders reach the same state, and neither disables the other.
 * (P1′) *No other cause.* Or A has other senders, but no other message to A is deliverable at s, and the
 *      messages in flight at s (those to A aside) cannot lead to a message to A on another channel: under
 *      the learnt *causality* C — which message types a delivery of each type has sent, a type being a
 *      channel, a name and the vCPU its payload names — the types reachable from theirs, not passing through
 *      a delivery to A, include none on a channel into A but X → A. Then on a path from s that does not take
 *      t, the first delivery to A would be of a message sent into an empty channel by a delivery before it,
 *      whose type is reachable (induction on that path), which the closure excludes: {t} is persistent as
 *      under P1. This is what lets a guest's or a CPU's message go alone although the module also talks to
 *      both (its INVEPT before an entry, its answers to TDCALLs): the module answers a guest only what that
 *      guest's CPU handed it, and nothing else in flight leads there.
 * (P2) *Invisible.* No invariant's verdict on another delivery can change with t's place in the schedule:
 *      A is in no footprint's `on`, `reads` or `pendingTo` (invariants/invariant.ts), t sends nothing to
 *      a `pendingTo` actor and reports no failure, and every invariant has a footprint. Verdicts that
 *      depend on a delivery's own data do not change with its place; `quiescent` ones look at end states,
 *      which persistent sets preserve.
 * (P3) *Cycle proviso.* t does not lead to a state on the search's stack; if it does, s is expanded in full
 *      after all (otherwise a cycle of such states could postpone the other deliveries for ever).
 *
 * With (P1)–(P3) every invariant violation of the full search has a schedule in the reduced one (the
 * persistent-set theorem for safety with the cycle proviso), and the two searches have the same end states.
 * Sleep sets combine with it as in Godefroid's algorithm (the visited set keeps the claimed deliveries, and
 * a state's claims under reduction are its persistent set only, so a later full visit claims the rest).
 *
 * The topology and the causality are not declared by the machines, so they are learnt and then checked.
 * Seeded random walks give a first T and C; the search then checks every transition it runs the first time
 * (compiledModel.ts): a send on a channel outside T, or of a type C does not list for the delivered type,
 * stops it, T and C get it, and the search starts again. A search that ends without such a send has proved
 * T and C for the whole state space: if some state had a send outside them, take a shortest path to the
 * first one; the persistent-set argument above moves it into the reduced search (it uses P1 and P1′ only on
 * paths where no send has broken T or C yet, and an earlier independent delivery does not change what a
 * delivery sends), so the reduced search would have run it. The result's `restarts` counts the restarts.
 *
 * Non-progress (liveness) is not checked under this reduction: its graph must be the unreduced one
 * (liveness/stateGraph.ts), so a search that checks it turns the reduction off and says so.
 */
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { flatten } from './flatWorld.ts';
import { FlatStack } from './flatStack.ts';
import type { CompiledModel } from './compiledModel.ts';
import type { Invariant } from './invariants/invariant.ts';
import { initialWorld } from '../runtime/step.ts';

/**
 * What causes what, by message type: a type is a channel, a message name and the vCPU the payload names
 * (its `vcpu`, or the `tag` memory accesses carry), so that one vCPU's requests and the module's answers to
 * them are not the other vCPU's. An edge a → b: delivering a message of type a has sent one of type b.
 */
export class Causality {
  private typeOfMsg = new Int32Array(1024).fill(-1);
  private readonly ids = new Map<string, number>();
  /** Per type: its channel's sender and receiver (actor indices). */
  readonly from: number[] = [];
  readonly to: number[] = [];
  /** Per type: the types its deliveries have sent. */
  readonly next: number[][] = [];
  private readonly known = new Set<number>();
  edges = 0;

  constructor(private readonly cm: CompiledModel) {}

  get types(): number {
    return this.from.length;
  }

  /** The type of interned message `msg`. */
  typeOf(msg: number): number {
    if (msg >= this.typeOfMsg.length) {
      const b = new Int32Array(Math.max(msg + 1, 2 * this.typeOfMsg.length)).fill(-1);
      b.set(this.typeOfMsg);
      this.typeOfMsg = b;
    }
    const t = this.typeOfMsg[msg]!;
    if (t >= 0) return t;
    const m = this.cm.messages[msg]!;
    const p = (typeof m.payload === 'object' && m.payload !== null ? m.payload : {}) as { vcpu?: unknown; tag?: unknown };
    const who = typeof p.vcpu === 'number' ? String(p.vcpu) : typeof p.tag === 'string' ? p.tag : '';
    const key = `${this.cm.channelOf(msg)}\u0000${m.name}\u0000${who}`;
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.from.length;
      this.ids.set(key, id);
      const c = this.cm.channelOf(msg);
      this.from.push(Math.floor(c / this.cm.n));
      this.to.push(c % this.cm.n);
      this.next.push([]);
    }
    this.typeOfMsg[msg] = id;
    return id;
  }

  /** Records that delivering `delivered` sent `sent` (message ids); true if that edge is new. */
  add(delivered: number, sent: number): boolean {
    const a = this.typeOf(delivered);
    const b = this.typeOf(sent);
    const key = a * 0x100000 + b;
    if (this.known.has(key)) return false;
    this.known.add(key);
    this.next[a]!.push(b);
    this.edges++;
    return true;
  }
}

/** Which channels can carry messages, and what causes what (`causality`). */
export class Topology {
  readonly n: number;
  readonly allowed: Uint8Array;
  readonly causality: Causality;
  constructor(cm: CompiledModel) {
    this.n = cm.n;
    this.allowed = new Uint8Array(cm.n * cm.n);
    this.causality = new Causality(cm);
  }

  /** Seeded walks from the initial world, every channel they deliver on or send on allowed. */
  static learn(cm: CompiledModel, walks = 64, maxSteps = 2_000, seed = 0x7d5): Topology {
    const t = new Topology(cm);
    const stack = new FlatStack(cm, 0);
    const root = flatten(cm, initialWorld(cm.model));
    for (let w = 0; w < walks; w++) {
      const rng = xoroshiro128plus(seed + w);
      stack.setRoot(root);
      for (let d = 0; d < stack.enCnt[0]!; d++) t.allowed[stack.channelAt(0, d)] = 1;
      for (let d = 0; d < maxSteps && stack.enCnt[d]! > 0; d++) {
        stack.room(d);
        const i = uniformInt(rng, 0, stack.enCnt[d]! - 1);
        const delivered = stack.msgAt(d, i);
        const e = stack.buildChild(d, i, stack.off[d]! + stack.len[d]!);
        t.allowed[stack.channelAt(d, i)] = 1;
        const st = cm.sendsStart(e);
        for (let s = 0; s < cm.sendsOf(e); s++) {
          t.allowed[cm.channelOf(cm.poolAt(st + s))] = 1;
          t.causality.add(delivered, cm.poolAt(st + s));
        }
        stack.pushChild(d);
      }
    }
    return t;
  }

  /** The only actor allowed to send to `to`, or −1. */
  soleSender(to: number): number {
    let from = -1;
    for (let x = 0; x < this.n; x++) {
      if (this.allowed[x * this.n + to] !== 1) continue;
      if (from >= 0) return -1;
      from = x;
    }
    return from;
  }
}

/** The persistent-set reduction of one search: its topology and who may be delivered to alone. */
export class PersistentSets {
  /** Per actor: 1 where the receiver part of P2 holds (no footprint sees it). */
  readonly candidate: Uint8Array;
  /** Per actor: its only sender in the topology as it is now, or −1. */
  private readonly soleFrom: Int32Array;
  /** The causality closure's marks (a type is marked in the closure of generation `gen`) and work list. */
  private mark = new Int32Array(0);
  private gen = 0;
  private work = new Int32Array(0);
  /**
   * Per (type, A, X): 0 not known, 1 nothing of this type in flight leads to a message to A but from X, 2 it
   * may. The closure of a set of types is the union of theirs, so a state's answer is the OR of its
   * messages'. Learnt types add no edges, so entries stay true until the causality grows (a restart).
   */
  private leads = new Uint8Array(0);
  private leadsEdges = -1;
  /** Per actor: 1 where an invariant reads the messages in flight to it. */
  readonly pendingTo: Uint8Array;
  /** Per actor: 1 where an invariant's verdict reads its state or the messages in flight to it. */
  private readonly visible: Uint8Array;
  /** An invariant without a footprint: every delivery may be visible, so nothing is explored alone. */
  private readonly blind: boolean;
  /** Channels a transition sent on outside the topology, in the order met; the search restarts with them. */
  readonly outside: number[] = [];
  /** Some actor may be delivered to alone; without one no choice depends on the topology or the causality. */
  private anyCandidate = false;

  constructor(
    readonly cm: CompiledModel,
    readonly topology: Topology,
    invariants: readonly Invariant[],
  ) {
    const actors = cm.model.actors;
    this.visible = new Uint8Array(actors.length);
    this.pendingTo = new Uint8Array(actors.length);
    this.blind = invariants.some((i) => i.footprint === undefined);
    actors.forEach((a, i) => {
      for (const inv of invariants) {
        const f = inv.footprint;
        if (f === undefined) continue;
        if (f.on?.(a.id) || f.reads?.(a.id)) this.visible[i] = 1;
        if (f.pendingTo?.(a.id)) this.visible[i] = this.pendingTo[i] = 1;
      }
    });
    this.candidate = new Uint8Array(actors.length);
    this.soleFrom = new Int32Array(actors.length);
    this.refresh();
  }

  /** Candidates for the topology as it is now; called again when the search restarts with a larger one. */
  refresh(): void {
    for (let i = 0; i < this.candidate.length; i++) {
      this.candidate[i] = !this.blind && this.visible[i] === 0 ? 1 : 0;
      this.soleFrom[i] = this.topology.soleSender(i);
    }
    this.anyCandidate = this.candidate.includes(1);
  }

  /**
   * Whether frame d's deliverable message j (to a candidate A, on X → A) goes alone by P1: X is A's only
   * sender, or (P1′) no other message to A is deliverable and nothing in flight can cause a message to A
   * from anyone but X before j is delivered — the types the messages in flight (other than A's) lead to
   * under the learnt causality, not passing through A, include none on another channel into A.
   */
  alone(S: FlatStack, d: number, j: number): boolean {
    const cm = this.cm;
    const m = S.msgAt(d, j);
    const a = cm.receiverOf(m);
    if (this.soleFrom[a]! >= 0) return true;
    for (let k = 0; k < S.enCnt[d]!; k++) if (k !== j && cm.receiverOf(S.msgAt(d, k)) === a) return false;
    const x = Math.floor(cm.channelOf(m) / cm.n);
    const c = this.topology.causality;
    const n = cm.n;
    if (this.leadsEdges !== c.edges) {
      this.leads.fill(0);
      this.leadsEdges = c.edges;
    }
    const o = S.off[d]! + n;
    const k = S.mem[o]!;
    for (let p = 0; p < k; p++) {
      const msg = S.mem[o + 1 + p]!;
      if (cm.receiverOf(msg) === a) continue;
      const t = c.typeOf(msg);
      const at = (t * n + a) * n + x;
      if (at >= this.leads.length) {
        const b = new Uint8Array(Math.max(at + 1, 2 * this.leads.length, 64 * n * n));
        b.set(this.leads);
        this.leads = b;
      }
      let v = this.leads[at]!;
      if (v === 0) this.leads[at] = v = this.leadsAround(t, a, x) ? 2 : 1;
      if (v === 2) return false;
    }
    return true;
  }

  /** Whether type t's causal closure, not through deliveries to a, holds a type on a channel into a but x → a. */
  private leadsAround(t0: number, a: number, x: number): boolean {
    const c = this.topology.causality;
    if (this.mark.length < c.types) {
      this.mark = new Int32Array(2 * c.types);
      this.work = new Int32Array(2 * c.types);
      this.gen = 0;
    }
    const g = ++this.gen;
    this.mark[t0] = g;
    this.work[0] = t0;
    let top = 1;
    while (top > 0) {
      const t = this.work[--top]!;
      for (const u of c.next[t]!) {
        if (c.to[u] === a) {
          if (c.from[u] !== x) return true;
          continue;
        }
        if (this.mark[u] === g) continue;
        this.mark[u] = g;
        this.work[top++] = u;
      }
    }
    return false;
  }

  /** Whether compiled transition `e`, delivering to a candidate, is invisible by what it sends and reports (P2). */
  invisible(e: number): boolean {
    const cm = this.cm;
    if (cm.failuresOf(e) > 0) return false;
    const st = cm.sendsStart(e);
    for (let s = 0; s < cm.sendsOf(e); s++) if (this.pendingTo[cm.receiverOf(cm.poolAt(st + s))] === 1) return false;
    return true;
  }

  /** Checks transition `e`, delivering message `msg`, run for the first time against the topology and the causality; false when it sent outside them. */
  check(e: number, msg: number): boolean {
    const cm = this.cm;
    const st = cm.sendsStart(e);
    let ok = true;
    for (let s = 0; s < cm.sendsOf(e); s++) {
      const sent = cm.poolAt(st + s);
      if (this.topology.causality.add(msg, sent)) ok = false;
      const c = cm.channelOf(sent);
      if (this.topology.allowed[c] === 1) continue;
      this.topology.allowed[c] = 1;
      this.outside.push(c);
    }
    // Nothing goes alone (every actor is visible): what was learnt decided nothing, so nothing is redone.
    return ok || !this.anyCandidate;
  }
}
