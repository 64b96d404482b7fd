/**
 * The model as the explorer's engine runs it: every actor state, message and failure it meets interned to a
 * small integer, and every transition memoised on integers. A world is then a short vector of ints
 * (flatWorld.ts), a delivery a table lookup, and its fingerprint (fingerprint.ts) a few additions of terms
 * cached per id — no string keys, no structural hashing and no allocation on the path the search takes
 * for ~98% of its deliveries.
 *
 * Interning is by 64-bit structural hash (an actor state: value, status and context; a message: sender,
 * receiver, kind, name, payload; a failure: actor, reason, detail), which is also what the fingerprint
 * identifies states by. A transition is a pure function of its receiver's state and the message (no
 * machine reads a message's id or cause; test/explore/transitionCache.test.ts), so it is computed once
 * per (state id, message id) by XState and read from the table after: the receiver's next state, the
 * messages it sends and the failures it reports, as ids.
 *
 * Ids live as long as the compiled model: a search's stack holds them. Memory grows with the distinct
 * actor states and messages (tens of thousands on the bundled examples, a few hundred thousand with three
 * vCPUs), not with the global states.
 */
import type { AnyMachineSnapshot } from 'xstate';
import type { Message } from '../protocol/messages.ts';
import { emitted, runTransition } from '../runtime/step.ts';
import type { CollectedAction } from '../runtime/xstateScope.ts';
import type { Model } from '../runtime/world.ts';
import { actorHash, actorTerm, failureHash, failureTerm, messageHash, messageTerm } from './fingerprint.ts';
import type { Hash64 } from './structuralHash.ts';

/** Open addressing from a pair of int32 keys to an int (−1: absent); grows at half load. */
export class PairTable {
  private k1: Int32Array;
  private k2: Int32Array;
  private v: Int32Array;
  private mask: number;
  private count = 0;
  constructor(capacityLog2 = 10) {
    this.k1 = new Int32Array(1 << capacityLog2);
    this.k2 = new Int32Array(1 << capacityLog2);
    this.v = new Int32Array(1 << capacityLog2).fill(-1);
    this.mask = (1 << capacityLog2) - 1;
  }
  get size(): number {
    return this.count;
  }
  get bytes(): number {
    return 12 * (this.mask + 1);
  }
  get(a: number, b: number): number {
    a |= 0;
    b |= 0;
    const mask = this.mask;
    for (let i = slotOf(a, b) & mask; ; i = (i + 1) & mask) {
      const v = this.v[i]!;
      if (v < 0) return -1;
      if (this.k1[i] === a && this.k2[i] === b) return v;
    }
  }
  /** `(a, b)` must be absent. */
  set(a: number, b: number, value: number): void {
    a |= 0;
    b |= 0;
    if (2 * (this.count + 1) > this.mask + 1) this.grow();
    const mask = this.mask;
    let i = slotOf(a, b) & mask;
    while (this.v[i]! >= 0) i = (i + 1) & mask;
    this.k1[i] = a;
    this.k2[i] = b;
    this.v[i] = value;
    this.count++;
  }
  private grow(): void {
    const { k1, k2, v } = this;
    const cap = 2 * (this.mask + 1);
    this.k1 = new Int32Array(cap);
    this.k2 = new Int32Array(cap);
    this.v = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
    this.count = 0;
    for (let i = 0; i < v.length; i++) if (v[i]! >= 0) this.set(k1[i]!, k2[i]!, v[i]!);
  }
}

function slotOf(a: number, b: number): number {
  let h = Math.imul(a ^ 0x2545f491, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

/** A growable int32 column. */
class Column {
  a = new Int32Array(256);
  push(i: number, x: number): void {
    if (i >= this.a.length) {
      const b = new Int32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[i] = x;
  }
}

/** A failure as interned: who, why, what (the step it happened at is the world's business). */
export interface InternedFailure {
  actor: string;
  reason: string;
  detail: string;
}

export class CompiledModel {
  readonly n: number;
  /** Channel ids are sender · n + receiver. */
  readonly channels: number;

  // Actor states: global ids; per id its actor, snapshot and fingerprint term.
  private readonly stateIds = new PairTable(12);
  readonly snapshots: AnyMachineSnapshot[] = [];
  private readonly stateActor = new Column();
  private readonly stateTa = new Column();
  private readonly stateTb = new Column();

  // Messages: a representative (id 0, cause null), its channel and receiver, and its terms at positions 0 and 1.
  private readonly messageIds = new PairTable(12);
  readonly messages: Message[] = [];
  private readonly msgChannel = new Column();
  private readonly msgTo = new Column();
  private readonly msgHi = new Column();
  private readonly msgLo = new Column();
  private readonly msgTa0 = new Column();
  private readonly msgTb0 = new Column();
  private readonly msgTa1 = new Column();
  private readonly msgTb1 = new Column();

  private readonly failureIds = new PairTable(6);
  readonly failures: InternedFailure[] = [];
  private readonly failTa = new Column();
  private readonly failTb = new Column();

  // Transitions: (state id, message id) → entry; per entry the next state and slices of `pool`.
  private readonly transitionIds = new PairTable(12);
  private transitionCount = 0;
  private readonly tAfter = new Column();
  private readonly tStart = new Column();
  private readonly tSends = new Column();
  private readonly tFails = new Column();
  /** Sent message ids, then failure ids, per entry. */
  private pool = new Int32Array(1024);
  private poolUsed = 0;
  hits = 0;
  misses = 0;

  /** `memoise: false` runs XState for every delivery (for comparison; each delivery then gets an entry of its own). */
  constructor(
    readonly model: Model,
    private readonly opts: { memoise?: boolean } = {},
  ) {
    this.n = model.actors.length;
    this.channels = this.n * this.n;
  }

  get states(): number {
    return this.snapshots.length;
  }
  get transitions(): number {
    return this.transitionCount;
  }

  /** The id of actor `actor`'s state `s`. */
  stateId(actor: number, s: AnyMachineSnapshot): number {
    const h = actorHash(s);
    // Actors are told apart by mixing the index into the key (their states are hashed without it).
    const k1 = h.hi ^ Math.imul(actor + 1, 0x9e3779b1);
    let id = this.stateIds.get(k1, h.lo);
    if (id >= 0) return id;
    id = this.snapshots.length;
    this.stateIds.set(k1, h.lo, id);
    this.snapshots.push(s);
    this.stateActor.push(id, actor);
    const t = actorTerm(actor, h);
    this.stateTa.push(id, t.a);
    this.stateTb.push(id, t.b);
    return id;
  }

  actorOfState(id: number): number {
    return this.stateActor.a[id]!;
  }
  stateTermA(id: number): number {
    return this.stateTa.a[id]!;
  }
  stateTermB(id: number): number {
    return this.stateTb.a[id]!;
  }

  /** The id of a message with this content (its id and cause are not part of it). */
  messageId(m: Pick<Message, 'from' | 'to' | 'kind' | 'name' | 'payload'>): number {
    const h = messageHash(m);
    let id = this.messageIds.get(h.hi, h.lo);
    if (id >= 0) return id;
    id = this.messages.length;
    this.messageIds.set(h.hi, h.lo, id);
    const from = this.model.indexOf.get(m.from)!;
    const to = this.model.indexOf.get(m.to)!;
    const rep = { id: 0, from: m.from, to: m.to, kind: m.kind, name: m.name, payload: m.payload, cause: null } as Message;
    this.messages.push(rep);
    this.msgChannel.push(id, from * this.n + to);
    this.msgTo.push(id, to);
    this.msgHi.push(id, h.hi);
    this.msgLo.push(id, h.lo);
    const t0 = messageTerm(h, 0);
    const t1 = messageTerm(h, 1);
    this.msgTa0.push(id, t0.a);
    this.msgTb0.push(id, t0.b);
    this.msgTa1.push(id, t1.a);
    this.msgTb1.push(id, t1.b);
    return id;
  }

  channelOf(msg: number): number {
    return this.msgChannel.a[msg]!;
  }
  receiverOf(msg: number): number {
    return this.msgTo.a[msg]!;
  }
  /** Lane A of message `msg`'s term at position `pos` of its channel. */
  messageTermA(msg: number, pos: number): number {
    if (pos === 0) return this.msgTa0.a[msg]!;
    if (pos === 1) return this.msgTa1.a[msg]!;
    return messageTerm(this.messageHashOf(msg), pos).a;
  }
  messageTermB(msg: number, pos: number): number {
    if (pos === 0) return this.msgTb0.a[msg]!;
    if (pos === 1) return this.msgTb1.a[msg]!;
    return messageTerm(this.messageHashOf(msg), pos).b;
  }
  private messageHashOf(msg: number): Hash64 {
    return { hi: this.msgHi.a[msg]!, lo: this.msgLo.a[msg]! };
  }

  failureId(f: InternedFailure): number {
    const h = failureHash(f);
    let id = this.failureIds.get(h.hi, h.lo);
    if (id >= 0) return id;
    id = this.failures.length;
    this.failureIds.set(h.hi, h.lo, id);
    this.failures.push({ actor: f.actor, reason: f.reason, detail: f.detail });
    const t = failureTerm(h);
    this.failTa.push(id, t.a);
    this.failTb.push(id, t.b);
    return id;
  }
  failureTermA(id: number): number {
    return this.failTa.a[id]!;
  }
  failureTermB(id: number): number {
    return this.failTb.a[id]!;
  }

  /**
   * The entry of delivering message `msg` to its receiver in state `state`; `seq` is the delivery's step
   * number, used only in the words of a ModelBug the first time a transition runs.
   */
  transition(state: number, msg: number, seq: number): number {
    const e = this.opts.memoise === false ? -1 : this.transitionIds.get(state, msg);
    if (e >= 0) {
      this.hits++;
      return e;
    }
    this.misses++;
    return this.compute(state, msg, seq);
  }

  private compute(state: number, msg: number, seq: number): number {
    const actor = this.msgTo.a[msg]!;
    const before = this.snapshots[state]!;
    const m = this.messages[msg]!;
    const actions: CollectedAction[] = [];
    const after = runTransition(this.model, actor, before, m, actions);
    const id = this.model.actors[actor]!.id;
    const out = emitted(this.model, id, actions, seq, before, m);
    const e = this.transitionCount++;
    this.tAfter.push(e, this.stateId(actor, after));
    const need = this.poolUsed + out.sends.length + out.failures.length;
    if (need > this.pool.length) {
      const p = new Int32Array(Math.max(need, 2 * this.pool.length));
      p.set(this.pool);
      this.pool = p;
    }
    this.tStart.push(e, this.poolUsed);
    this.tSends.push(e, out.sends.length);
    this.tFails.push(e, out.failures.length);
    for (const s of out.sends) this.pool[this.poolUsed++] = this.messageId({ from: id, to: s.to, kind: s.kind, name: s.name, payload: s.payload } as Message);
    for (const f of out.failures) this.pool[this.poolUsed++] = this.failureId({ actor: id, reason: f.reason, detail: f.detail });
    if (this.opts.memoise !== false) this.transitionIds.set(state, msg, e);
    return e;
  }

  afterOf(e: number): number {
    return this.tAfter.a[e]!;
  }
  /** Messages sent: ids pool[sendsStart(e)] … pool[sendsStart(e) + sendsOf(e) − 1], in send order. */
  sendsStart(e: number): number {
    return this.tStart.a[e]!;
  }
  sendsOf(e: number): number {
    return this.tSends.a[e]!;
  }
  /** Failures follow the sends in the pool. */
  failuresOf(e: number): number {
    return this.tFails.a[e]!;
  }
  poolAt(i: number): number {
    return this.pool[i]!;
  }
}
