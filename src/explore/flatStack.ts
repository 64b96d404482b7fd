/**
 * The stack of a depth-first search over flat worlds (flatWorld.ts): an arena of state vectors, frame d's
 * child written right after frame d's vector, and per frame its fingerprint sums and deliverable messages
 * in typed columns. Both searches use it: the one with sleep sets (depthFirst.ts) and the
 * preemption-bounded one (preemptionBounded.ts). The columns a search keeps besides these (its todo
 * masks, sleep sets …) are its own; `depth` tells it how deep these have room for.
 *
 * A delivery (`buildChild`) is a lookup of the compiled transition — XState runs only the first time a
 * receiver state meets a message — a copy of the vector with the receiver's id replaced, the delivered
 * message dropped and the sent ones appended, and an update of the fingerprint's sums (fingerprint.ts):
 * the receiver's term, the delivered channel's positions, the new messages' terms. Nothing is allocated.
 */
import { ModelBug } from '../runtime/errors.ts';
import type { Failure, World } from '../runtime/world.ts';
import type { CompiledModel } from './compiledModel.ts';
import { finishInto } from './fingerprint.ts';
import { flatLength, materialize } from './flatWorld.ts';

const NO_FAILURES: readonly Failure[] = Object.freeze([]);

/** FlatStack.glance's world: snapshots and failures at once, the rest from the stack when read. */
class GlancedWorld implements World {
  private full: World | null = null;
  constructor(
    readonly snapshots: World['snapshots'],
    readonly failures: World['failures'],
    readonly seq: number,
    private readonly stack: FlatStack,
    private readonly at: number,
  ) {}
  private whole(): World {
    return (this.full ??= this.stack.worldAt(this.at, this.seq));
  }
  get pending(): World['pending'] {
    return this.whole().pending;
  }
  get nextId(): number {
    return this.whole().nextId;
  }
}

/** A state's deliverable messages are kept as 32-bit masks by the searches. */
export const MAX_ENABLED = 32;

export class FlatStack {
  readonly n: number;
  mem = new Int32Array(1 << 14);
  /** Frames the columns have room for. */
  depth = 0;
  off = new Int32Array(0);
  len = new Int32Array(0);
  sa = new Int32Array(0);
  sb = new Int32Array(0);
  enOff = new Int32Array(0);
  enCnt = new Int32Array(0);
  /** Per frame, its deliverable messages: positions in its pending list, in choice order (receiver, then send order). */
  en = new Int32Array(1024);
  /** Ranks of one frame's deliverable channels in channel-id order (`ranks`). */
  readonly rank = new Int32Array(MAX_ENABLED);
  /** The fingerprint of the last child built (or of the root, after `setRoot`). */
  readonly fp = { hi: 0, lo: 0 };

  // What `buildChild` leaves behind.
  childA = 0;
  childB = 0;
  /** Position of the delivered message in the parent's pending list. */
  childPos = 0;
  childMsg = 0;
  /** The receiver's state id before the delivery. */
  childFrom = 0;

  private readonly chanStamp: Int32Array;
  private stamp = 0;

  /** `seq0`: deliveries before the root (its prefix). */
  constructor(
    readonly cm: CompiledModel,
    readonly seq0: number,
  ) {
    this.n = cm.n;
    this.chanStamp = new Int32Array(cm.channels);
    this.grow();
  }

  /** Makes room for frames up to d + 1. */
  room(d: number): boolean {
    if (d + 2 < this.depth) return false;
    this.grow();
    return true;
  }

  private grow(): void {
    const c = Math.max(64, this.depth * 2);
    const g = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(c);
      b.set(a);
      return b;
    };
    this.off = g(this.off);
    this.len = g(this.len);
    this.sa = g(this.sa);
    this.sb = g(this.sb);
    this.enOff = g(this.enOff);
    this.enCnt = g(this.enCnt);
    this.depth = c;
  }

  private memRoom(need: number): void {
    if (need <= this.mem.length) return;
    const b = new Int32Array(Math.max(need, 2 * this.mem.length));
    b.set(this.mem);
    this.mem = b;
  }

  /** Frame 0 is `vec`; its sums, deliverable messages and fingerprint (`fp`) are computed. */
  setRoot(vec: Int32Array): void {
    this.memRoom(vec.length);
    this.mem.set(vec, 0);
    this.off[0] = 0;
    this.len[0] = vec.length;
    this.sumsOf(0);
    this.enOff[0] = 0;
    this.enable(0);
    const n = this.n;
    const k = this.mem[n]!;
    finishInto(this.fp, this.sa[0]!, this.sb[0]!, k, this.mem[n + 1 + k]!);
  }

  /** Frame 0's fingerprint sums from scratch. */
  private sumsOf(d: number): void {
    const { cm, mem, n } = this;
    const o = this.off[d]!;
    let a = 0;
    let b = 0;
    for (let i = 0; i < n; i++) {
      a = (a + cm.stateTermA(mem[o + i]!)) | 0;
      b = (b + cm.stateTermB(mem[o + i]!)) | 0;
    }
    const k = mem[o + n]!;
    for (let j = 0; j < k; j++) {
      const m = mem[o + n + 1 + j]!;
      let pos = 0;
      for (let i = 0; i < j; i++) if (cm.channelOf(mem[o + n + 1 + i]!) === cm.channelOf(m)) pos++;
      a = (a + cm.messageTermA(m, pos)) | 0;
      b = (b + cm.messageTermB(m, pos)) | 0;
    }
    const f = mem[o + n + 1 + k]!;
    for (let j = 0; j < f; j++) {
      a = (a + cm.failureTermA(mem[o + n + 2 + k + 2 * j]!)) | 0;
      b = (b + cm.failureTermB(mem[o + n + 2 + k + 2 * j]!)) | 0;
    }
    this.sa[d] = a;
    this.sb[d] = b;
  }

  /** Frame d's deliverable messages into `en` at enOff[d]: the head of each channel, by receiver then send order. */
  enable(d: number): void {
    const { cm, n } = this;
    const mem = this.mem;
    const o = this.off[d]!;
    const k = mem[o + n]!;
    const e0 = this.enOff[d]!;
    if (e0 + k > this.en.length) {
      const b = new Int32Array(Math.max(e0 + k, 2 * this.en.length));
      b.set(this.en);
      this.en = b;
    }
    const en = this.en;
    const stamp = ++this.stamp;
    const chanStamp = this.chanStamp;
    let cnt = 0;
    for (let j = 0; j < k; j++) {
      const m = mem[o + n + 1 + j]!;
      const c = cm.channelOf(m);
      if (chanStamp[c] === stamp) continue;
      chanStamp[c] = stamp;
      const to = cm.receiverOf(m);
      let i = cnt++;
      while (i > 0 && cm.receiverOf(mem[o + n + 1 + en[e0 + i - 1]!]!) > to) {
        en[e0 + i] = en[e0 + i - 1]!;
        i--;
      }
      en[e0 + i] = j;
    }
    if (cnt > MAX_ENABLED) throw new ModelBug(`${cnt} messages deliverable at once; the explorer handles at most ${MAX_ENABLED}`);
    this.enCnt[d] = cnt;
  }

  /** The message id of frame d's deliverable message number i. */
  msgAt(d: number, i: number): number {
    return this.mem[this.off[d]! + this.n + 1 + this.en[this.enOff[d]! + i]!]!;
  }

  channelAt(d: number, i: number): number {
    return this.cm.channelOf(this.msgAt(d, i));
  }

  /** Ranks of frame d's deliverable channels in channel-id order, into `rank`. */
  ranks(d: number): void {
    const cnt = this.enCnt[d]!;
    for (let i = 0; i < cnt; i++) {
      const c = this.channelAt(d, i);
      let r = 0;
      for (let j = 0; j < cnt; j++) if (this.channelAt(d, j) < c) r++;
      this.rank[i] = r;
    }
  }

  /**
   * Writes at `o2` the world after delivering frame d's deliverable message number `i`, sets `childA`,
   * `childB`, `childPos`, `childMsg`, `childFrom` and the fingerprint `fp`, and returns the compiled
   * transition.
   */
  buildChild(d: number, i: number, o2: number): number {
    const { cm, n } = this;
    const o = this.off[d]!;
    let v = this.mem;
    const k = v[o + n]!;
    const p = this.en[this.enOff[d]! + i]!;
    const m = v[o + n + 1 + p]!;
    const a = cm.receiverOf(m);
    const s = v[o + a]!;
    const e = cm.transition(s, m, this.seq0 + d + 1);
    const after = cm.afterOf(e);
    const ns = cm.sendsOf(e);
    const nf = cm.failuresOf(e);
    const f = v[o + n + 1 + k]!;
    this.memRoom(o2 + n + 2 + k - 1 + ns + 2 * (f + nf));
    v = this.mem;
    for (let j = 0; j < n; j++) v[o2 + j] = v[o + j]!;
    v[o2 + a] = after;
    let A = (this.sa[d]! - cm.stateTermA(s) + cm.stateTermA(after)) | 0;
    let B = (this.sb[d]! - cm.stateTermB(s) + cm.stateTermB(after)) | 0;
    const c = cm.channelOf(m);
    A = (A - cm.messageTermA(m, 0)) | 0;
    B = (B - cm.messageTermB(m, 0)) | 0;
    let w = o2 + n + 1;
    let q = 1;
    for (let j = 0; j < k; j++) {
      if (j === p) continue;
      const x = v[o + n + 1 + j]!;
      v[w++] = x;
      // Later messages of the delivered channel move up one position.
      if (j > p && cm.channelOf(x) === c) {
        A = (A + cm.messageTermA(x, q - 1) - cm.messageTermA(x, q)) | 0;
        B = (B + cm.messageTermB(x, q - 1) - cm.messageTermB(x, q)) | 0;
        q++;
      }
    }
    const st = cm.sendsStart(e);
    for (let t = 0; t < ns; t++) {
      const x = cm.poolAt(st + t);
      const cx = cm.channelOf(x);
      let pos = 0;
      for (let r = o2 + n + 1; r < w; r++) if (cm.channelOf(v[r]!) === cx) pos++;
      v[w++] = x;
      A = (A + cm.messageTermA(x, pos)) | 0;
      B = (B + cm.messageTermB(x, pos)) | 0;
    }
    const k2 = k - 1 + ns;
    v[o2 + n] = k2;
    v[w++] = f + nf;
    for (let j = 0; j < 2 * f; j++) v[w++] = v[o + n + 2 + k + j]!;
    for (let t = 0; t < nf; t++) {
      const id = cm.poolAt(st + ns + t);
      v[w++] = id;
      v[w++] = this.seq0 + d + 1;
      A = (A + cm.failureTermA(id)) | 0;
      B = (B + cm.failureTermB(id)) | 0;
    }
    this.childA = A;
    this.childB = B;
    this.childPos = p;
    this.childMsg = m;
    this.childFrom = s;
    finishInto(this.fp, A, B, k2, f + nf);
    return e;
  }

  /** Makes the child just built at off[d] + len[d] frame d + 1, with its deliverable messages. */
  pushChild(d: number): void {
    const d2 = d + 1;
    const o2 = this.off[d]! + this.len[d]!;
    this.off[d2] = o2;
    this.len[d2] = flatLength(this.n, this.mem, o2);
    this.sa[d2] = this.childA;
    this.sb[d2] = this.childB;
    this.enOff[d2] = this.enOff[d]! + this.enCnt[d]!;
    this.enable(d2);
  }

  /** Messages in flight in frame d. */
  pendingAt(d: number): number {
    return this.mem[this.off[d]! + this.n]!;
  }

  /** The World of frame d. */
  world(d: number): World {
    return materialize(this.cm, this.mem, this.off[d]!, this.seq0 + d);
  }

  /**
   * A World of the vector at `o` for a quick look at actor states and failures (the non-progress graph's
   * progress threads): its messages in flight are built only if read, and only until the stack moves on.
   */
  glance(o: number, seq: number): World {
    const { cm, n } = this;
    const mem = this.mem;
    const snapshots = new Array(n);
    for (let i = 0; i < n; i++) snapshots[i] = cm.snapshots[mem[o + i]!]!;
    const k = mem[o + n]!;
    const failures = mem[o + n + 1 + k] === 0 ? NO_FAILURES : materialize(cm, mem, o, seq).failures;
    return new GlancedWorld(snapshots, failures, seq, this, o);
  }

  /** The World of the vector at `o`, after `seq` deliveries. */
  worldAt(o: number, seq: number, before?: { world: World; removed: number; sent: number }): World {
    return materialize(this.cm, this.mem, o, seq, before);
  }
}
