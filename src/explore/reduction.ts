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
 * The topology is not declared by the machines, so it is learnt and then checked. Seeded random walks give
 * a first T; the search then checks every transition it runs the first time (compiledModel.ts): a send on
 * a channel outside T stops it, T gets the channel, and the search starts again. A search that ends without
 * such a send has proved T for the whole state space: if some state had a send outside T, take a shortest
 * path to the first one; the persistent-set argument above moves it into the reduced search (it uses P1
 * only on paths where no send has broken T yet, and an earlier independent delivery does not change what a
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

/** Which channels can carry messages. */
export class Topology {
  readonly n: number;
  readonly allowed: Uint8Array;
  constructor(n: number) {
    this.n = n;
    this.allowed = new Uint8Array(n * n);
  }

  /** Seeded walks from the initial world, every channel they deliver on or send on allowed. */
  static learn(cm: CompiledModel, walks = 64, maxSteps = 2_000, seed = 0x7d5): Topology {
    const t = new Topology(cm.n);
    const stack = new FlatStack(cm, 0);
    const root = flatten(cm, initialWorld(cm.model));
    for (let w = 0; w < walks; w++) {
      const rng = xoroshiro128plus(seed + w);
      stack.setRoot(root);
      for (let d = 0; d < stack.enCnt[0]!; d++) t.allowed[stack.channelAt(0, d)] = 1;
      for (let d = 0; d < maxSteps && stack.enCnt[d]! > 0; d++) {
        stack.room(d);
        const i = uniformInt(rng, 0, stack.enCnt[d]! - 1);
        const e = stack.buildChild(d, i, stack.off[d]! + stack.len[d]!);
        t.allowed[stack.channelAt(d, i)] = 1;
        const st = cm.sendsStart(e);
        for (let s = 0; s < cm.sendsOf(e); s++) t.allowed[cm.channelOf(cm.poolAt(st + s))] = 1;
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
  /** Per actor: 1 where P1 and the receiver part of P2 hold (for the topology as it is now). */
  readonly candidate: Uint8Array;
  /** Per actor: 1 where an invariant reads the messages in flight to it. */
  readonly pendingTo: Uint8Array;
  /** Per actor: 1 where an invariant's verdict reads its state or the messages in flight to it. */
  private readonly visible: Uint8Array;
  /** An invariant without a footprint: every delivery may be visible, so nothing is explored alone. */
  private readonly blind: boolean;
  /** Channels a transition sent on outside the topology, in the order met; the search restarts with them. */
  readonly outside: number[] = [];

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
    this.refresh();
  }

  /** Candidates for the topology as it is now; called again when the search restarts with a larger one. */
  refresh(): void {
    for (let i = 0; i < this.candidate.length; i++) this.candidate[i] = !this.blind && this.visible[i] === 0 && this.topology.soleSender(i) >= 0 ? 1 : 0;
  }

  /** Whether compiled transition `e`, delivering to a candidate, is invisible by what it sends and reports (P2). */
  invisible(e: number): boolean {
    const cm = this.cm;
    if (cm.failuresOf(e) > 0) return false;
    const st = cm.sendsStart(e);
    for (let s = 0; s < cm.sendsOf(e); s++) if (this.pendingTo[cm.receiverOf(cm.poolAt(st + s))] === 1) return false;
    return true;
  }

  /** Checks a transition run for the first time against the topology; false when it sent outside it. */
  check(e: number): boolean {
    const cm = this.cm;
    const st = cm.sendsStart(e);
    let ok = true;
    for (let s = 0; s < cm.sendsOf(e); s++) {
      const c = cm.channelOf(cm.poolAt(st + s));
      if (this.topology.allowed[c] === 1) continue;
      this.topology.allowed[c] = 1;
      this.outside.push(c);
      ok = false;
    }
    return ok;
  }
}
