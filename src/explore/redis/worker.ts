/**
 * A worker of a search that runs through Redis: on any machine, joining or leaving at any time. It takes
 * a frontier entry (a schedule from the initial world, with the channels to explore from its state), steps
 * its own model along it, and searches from there with sleep sets as the one-process search does
 * (explore.ts), except that the visited set is the search's hash in Redis (its `VisitedSet` contract, with
 * claims made by a Lua script, scripts.ts) and the search does not wait for each claim:
 *
 * - Expanding a state steps every delivery it is to explore at once — a child's sleep set depends only on
 *   its parent's and the siblings before it, never on what the claim of a sibling answers — so the
 *   children's claims go to Redis as one batch, a few batches in flight while the worker expands
 *   other states from its stack. Any order of claims covers every state (parallel.ts argues it for
 *   threads), so this changes no state count, only which worker enters a state first.
 * - A local cache (a StateTable with what this worker knows is claimed) answers most revisits without a
 *   round trip: claimed channels only grow, so a state whose awake channels are all known to be claimed
 *   has nothing for this arrival.
 * - A state this worker has never seen is expanded before Redis answers its claim, as if it were fresh
 *   (it mostly is), up to SPECULATION_DEPTH levels below the last answered claim on its path: the search
 *   goes on while claims stream out in full batches. If the answer says another worker had been there,
 *   the frame still waiting is cut down to what the claim won; one already expanded has explored more than
 *   it had to, which is sound (a superset of a state's required transitions) and only costs time. Such
 *   claims are logged even when they win nothing, since the frame's children name it as their parent.
 * - Every claim that gives the worker channels to explore is logged under its entry in the same script;
 *   every COMMIT_EVERY states the worker writes its stack as the entry's snapshot and empties the log. A
 *   worker that dies leaves entry, snapshot and log behind, and whoever takes the entry over (XAUTOCLAIM
 *   once its lease has run out) explores every state in them: nothing it had claimed is lost, and what it
 *   had already explored since its last commit is explored again, which only costs time.
 * - At a commit the worker hands the shallowest frames of its stack to the frontier when workers are
 *   waiting (or one when nothing is queued, so a worker that joins finds work).
 */
import { hostname } from 'node:os';
import { enabledChoices, initialWorld, step } from '../../runtime/step.ts';
import type { Model, World } from '../../runtime/world.ts';
import { Channels, noSleep, type Violation } from '../explore.ts';
import { fingerprint } from '../fingerprint.ts';
import { invariantsOf, type Invariant } from '../invariants/index.ts';
import { modelOfScenario } from '../share.ts';
import { StateTable } from '../stateTable.ts';
import { TransitionCache } from '../transitionCache.ts';
import { FRAME_ARRIVE, FRAME_CLAIMED, NO_PARENT, decodeClaimReplies, decodeFrames, decodeLogRecord, encodeClaims, encodeFrame, type ClaimRecord } from './codec.ts';
import { parseSearchConfig, type RedisSearchConfig } from './config.ts';
import { connectRedis, type RedisClient } from './connection.ts';
import { entryKeys, searchKeys, type SearchKeys } from './keys.ts';
import { Scripts } from './scripts.ts';

/**
 * Claims per batch (one script call), and batches in flight at once while the worker expands on. Their
 * product is how far a worker runs ahead of what Redis has told it: more hides more latency (each wait is
 * a round trip, and on a busy machine a turn of the scheduler for Redis and for the worker), and costs
 * more work done twice where two workers meet (parallel-touches on two workers: 4 × 256 explored 24% more
 * transitions than one process, 2 × 128 about 15%, 1 × 64 13%). So the window adapts: wide while the
 * worker's speculation pays (the states it expanded ahead were new), narrow as soon as answers say another
 * worker was there first.
 */
const WIDE = { batch: 256, pipeline: 4 };
const NARROW = { batch: 64, pipeline: 2 };
/**
 * Levels of states expanded ahead of their claims' answers along one path: deeper ones wait (off the
 * stack) while the worker expands others, so where two workers meet, the work done twice is a few levels
 * deep rather than a window's worth. parallel-touches on two workers: unlimited, 21% more transitions than
 * one process; 4 levels 7.5%; 2 levels 1.4%, 1 level 3% (one worker: as fast with 2 as unlimited).
 */
const SPECULATION_DEPTH = 2;
/** Share of speculatively expanded states found already claimed that narrows the window. */
const CONTENDED = 0.02;
/** States expanded between checkpoints (snapshot, counters, hand-offs). */
const COMMIT_EVERY = 4_096;
/** Frames handed to the frontier at one commit, at most. */
const MAX_HANDOFF = 4;
/** The local cache is dropped past this many states (it is only a cache). */
const LOCAL_CACHE_MAX = 4_000_000;

export interface RedisWorkerOptions {
  url: string;
  searchId: string;
  /** Stops taking work; an entry held is committed and released for another worker at once. */
  signal?: AbortSignal;
  /** How often an idle worker asks for work, and a worker that arrived first asks for the search (ms). */
  pollMs?: number;
  onEvent?: (e: RedisWorkerEvent) => void;
  /** Tuning, for tests and the benchmark. */
  batch?: number;
  commitEvery?: number;
}

export type RedisWorkerEvent =
  | { type: 'waiting-for-search' }
  | { type: 'joined'; config: RedisSearchConfig }
  | { type: 'entry'; id: string; takenOver: boolean; frames: number }
  | { type: 'lost'; id: string }
  | { type: 'progress'; report: RedisWorkerReport };

/** What a worker did, as it reports to Redis (the coordinator lists them) and prints. */
export interface RedisWorkerReport {
  worker: string;
  host: string;
  pid: number;
  /** Entries taken, of them taken over from a worker that stopped answering, and lost to a successor. */
  entries: number;
  takenOver: number;
  lost: number;
  /** States this worker entered first. */
  newStates: number;
  transitions: number;
  /** Frames given to the frontier for others. */
  handedOff: number;
  /** Time holding entries. */
  busyMs: number;
  /** CPU time of this process (user and system) from joining the search to leaving it. */
  cpuMs: number;
  /** How the search ended, once it has (done, violation, states, time, interrupted), or 'left'. */
  end: string | null;
}

interface PathNode {
  parent: PathNode | null;
  choice: number;
  depth: number;
}

interface Frame {
  world: World;
  node: PathNode;
  sleep: Uint32Array;
  /** What to explore; a speculative frame's shrinks when its claim's answer comes before it is expanded. */
  explore: Uint32Array;
  id: number;
  expanded: boolean;
  /** Frames from this one up to its nearest ancestor whose claim has been answered (0: answered). */
  chain: number;
  /** Taken off the stack to wait for its claim's answer (its chain was too long). */
  parked: boolean;
}

interface Pending {
  rec: ClaimRecord;
  world: World;
  node: PathNode;
  /** The frame already on the stack for a state this worker had never seen (speculation). */
  frame: Frame | null;
}

/** A frame as an entry, snapshot or log gives it: no world yet. */
interface Recovered {
  path: number[];
  sleep: Uint32Array;
  explore: Uint32Array;
}

interface InFlight {
  claims: Pending[];
  reply: Promise<unknown>;
}

const pathOf = (n: PathNode): number[] => {
  const out = new Array<number>(n.depth);
  for (let m: PathNode | null = n; m !== null && m.parent !== null; m = m.parent) out[m.depth - 1] = m.choice;
  return out;
};

const nodeOf = (path: readonly number[]): PathNode => {
  let n: PathNode = { parent: null, choice: -1, depth: 0 };
  for (const c of path) n = { parent: n, choice: c, depth: n.depth + 1 };
  return n;
};

const isZero = (v: Uint32Array): boolean => {
  for (let w = 0; w < v.length; w++) if (v[w] !== 0) return false;
  return true;
};

const has = (set: Uint32Array, c: number): boolean => (set[c >>> 5]! & (1 << (c & 31))) !== 0;

const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Why an entry's search ended: done, lost to a successor, the search stopped, or this worker is leaving. */
type EntryEnd = { kind: 'done' } | { kind: 'lost' } | { kind: 'stop'; why: string } | { kind: 'left' };

export class RedisWorker {
  readonly id: string;
  private readonly keys: SearchKeys;
  private redis: RedisClient | null = null;
  private scripts: Scripts | null = null;
  private config!: RedisSearchConfig;
  private model!: Model;
  private invariants!: readonly Invariant[];
  private channels!: Channels;
  private cache = new TransitionCache();
  private local!: StateTable;
  private readonly report: RedisWorkerReport;
  /** Counters not yet added to the search's. */
  private transitionsSince = 0;
  private maxDepth = 0;
  private depthBound = false;

  constructor(private readonly opts: RedisWorkerOptions) {
    this.keys = searchKeys(opts.searchId);
    this.id = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.report = { worker: this.id, host: hostname(), pid: process.pid, entries: 0, takenOver: 0, lost: 0, newStates: 0, transitions: 0, handedOff: 0, busyMs: 0, cpuMs: 0, end: null };
  }

  /** Works until the search ends (or the signal asks it to leave) and says what it did. */
  async run(): Promise<RedisWorkerReport> {
    this.redis = await connectRedis(this.opts.url, `tdxsim-worker-${this.id}`);
    this.scripts = new Scripts(this.redis);
    try {
      await this.join();
      const k = this.keys;
      const poll = this.opts.pollMs ?? 100;
      for (;;) {
        if (this.opts.signal?.aborted) {
          this.report.end = 'left';
          break;
        }
        const t = (await this.scripts.buffer('take', [k.frontier, k.stats, k.stop, k.idle], [this.id, this.config.leaseMs, k.prefix])) as Buffer[];
        const what = t[0]!.toString();
        if (what === 'stop') {
          this.report.end = t[1]!.toString();
          break;
        }
        if (what === 'wait') {
          await sleepMs(poll);
          continue;
        }
        const started = performance.now();
        const end = await this.runEntry(t[1]!.toString(), t[2]!, what === 'stale' ? { snapshot: t[3] as Buffer | null, log: t[4] as unknown as Buffer[] } : null);
        this.report.busyMs += performance.now() - started;
        if (end.kind === 'stop') {
          this.report.end = end.why;
          break;
        }
        if (end.kind === 'left') {
          this.report.end = 'left';
          break;
        }
      }
      // Transitions since the last commit, when the search stopped early (a bound, a violation) or this
      // worker left: the summary counts what workers had reported by the time it was read.
      if (this.transitionsSince > 0) await this.redis.hincrby(k.stats, 'transitions', this.transitionsSince);
      this.transitionsSince = 0;
      await this.redis.hset(k.workers, this.id, JSON.stringify(this.roundedReport()));
      return this.roundedReport();
    } finally {
      this.redis.disconnect();
    }
  }

  private cpuAtJoin: NodeJS.CpuUsage | null = null;

  private roundedReport(): RedisWorkerReport {
    const cpu = this.cpuAtJoin === null ? null : process.cpuUsage(this.cpuAtJoin);
    return { ...this.report, busyMs: Math.round(this.report.busyMs), cpuMs: cpu === null ? 0 : Math.round((cpu.user + cpu.system) / 1000) };
  }

  /** Waits for the search's description (a worker may start before its coordinator) and builds the model. */
  private async join(): Promise<void> {
    let json: string | null;
    for (let said = false; (json = await this.redis!.get(this.keys.config)) === null; said = true) {
      if (!said) this.opts.onEvent?.({ type: 'waiting-for-search' });
      if (this.opts.signal?.aborted) throw new RangeError(`search "${this.opts.searchId}" never appeared in Redis at ${this.opts.url}`);
      await sleepMs(this.opts.pollMs ?? 250);
    }
    this.config = parseSearchConfig(json, this.opts.searchId);
    this.model = modelOfScenario(this.config.scenario);
    this.invariants = invariantsOf(this.config.invariants).filter((i) => i.liveness !== true);
    this.channels = new Channels(this.model);
    if (this.channels.words !== this.config.words) throw new RangeError(`search "${this.opts.searchId}": the model has ${this.channels.words} sleep-set words, the search ${this.config.words}`);
    this.local = new StateTable(this.channels.words);
    this.cpuAtJoin = process.cpuUsage();
    this.opts.onEvent?.({ type: 'joined', config: this.config });
  }

  /** The frames of an entry: its root, or — taken over — the snapshot and log its last holder left. */
  private recover(entry: Buffer, left: { snapshot: Buffer | null; log: Buffer[] } | null): { frames: Recovered[]; claimRoot: boolean; rootPath: number[] } {
    const words = this.config.words;
    const root = decodeFrames(entry, words)[0]!;
    if (left === null) {
      if (root.kind === FRAME_ARRIVE) return { frames: [], claimRoot: true, rootPath: root.path };
      return { frames: [root], claimRoot: false, rootPath: root.path };
    }
    const base = left.snapshot !== null ? decodeFrames(left.snapshot, words) : root.kind === FRAME_CLAIMED ? [{ ...root, id: 0 }] : [];
    const paths = new Map<number, number[]>(base.map((f) => [f.id, f.path]));
    const frames: Recovered[] = [...base];
    let rootClaimed = false;
    for (const raw of left.log) {
      const r = decodeLogRecord(raw, words);
      let path: number[];
      if (r.parent === NO_PARENT) {
        path = root.path;
        rootClaimed = true;
      } else {
        const parent = paths.get(r.parent);
        if (parent === undefined) throw new Error(`entry log of search "${this.opts.searchId}" names a parent ${r.parent} it does not hold`);
        path = [...parent, r.choice];
      }
      paths.set(r.id, path);
      // A speculative claim that won nothing is here as a parent only.
      if (!isZero(r.explore)) frames.push({ path, sleep: r.sleep, explore: r.explore });
    }
    return { frames, claimRoot: root.kind === FRAME_ARRIVE && left.snapshot === null && !rootClaimed, rootPath: root.path };
  }

  /** Worlds along the frames' paths, stepping shared prefixes once. */
  private rebuild(frames: Recovered[], firstId: number): Frame[] {
    const order = frames.map((_, i) => i).sort((a, b) => {
      const p = frames[a]!.path;
      const q = frames[b]!.path;
      for (let i = 0; i < p.length && i < q.length; i++) if (p[i] !== q[i]) return p[i]! - q[i]!;
      return p.length - q.length;
    });
    const out = new Array<Frame>(frames.length);
    const root = initialWorld(this.model);
    let trailPath: readonly number[] = [];
    const trail: World[] = [];
    for (const i of order) {
      const f = frames[i]!;
      let shared = 0;
      while (shared < f.path.length && shared < trailPath.length && f.path[shared] === trailPath[shared]) shared++;
      trail.length = shared;
      let world = shared === 0 ? root : trail[shared - 1]!;
      for (let k = shared; k < f.path.length; k++) {
        world = step(this.model, world, f.path[k]!, enabledChoices(this.model, world), this.cache.transition).world;
        trail.push(world);
      }
      trailPath = f.path;
      out[i] = { world, node: nodeOf(f.path), sleep: f.sleep, explore: f.explore, id: firstId + i, expanded: false, chain: 0, parked: false };
    }
    return out;
  }

  private async runEntry(entryId: string, entry: Buffer, left: { snapshot: Buffer | null; log: Buffer[] } | null): Promise<EntryEnd> {
    const k = this.keys;
    const ek = entryKeys(k, entryId);
    const scripts = this.scripts!;
    const words = this.config.words;
    const model = this.model;
    let window = this.opts.batch !== undefined ? { batch: this.opts.batch, pipeline: NARROW.pipeline } : WIDE;
    const commitEvery = this.opts.commitEvery ?? COMMIT_EVERY;
    this.report.entries++;
    if (left !== null) this.report.takenOver++;
    const recovered = this.recover(entry, left);
    // Frame ids name parents in the entry's log. A new entry's root is 0, as its last holder's log says;
    // taken over, the frames are renumbered and committed as the snapshot before the log grows again.
    const stack = this.rebuild(recovered.frames, left === null ? 0 : 1);
    let nextId = stack.length + 1;
    this.opts.onEvent?.({ type: 'entry', id: entryId, takenOver: left !== null, frames: stack.length });
    let outgoing: Pending[] = [];
    const inflight: InFlight[] = [];
    let expanded = 0;

    const claimArgs = (claims: Pending[]) => [this.id, entryId, words, this.config.maxStates, encodeClaims(claims.map((c) => c.rec), words)];
    const send = () => {
      const claims = outgoing;
      outgoing = [];
      const reply = scripts.buffer('claim', [k.seen, k.stats, k.stop, ek.owner, ek.log, k.frontier], claimArgs(claims));
      reply.catch(() => {});
      inflight.push({ claims, reply });
    };
    const counters = () => {
      const delta = this.transitionsSince;
      this.transitionsSince = 0;
      return [this.id, entryId, delta, this.maxDepth, this.depthBound ? 1 : 0, JSON.stringify(this.roundedReport())];
    };
    const forget = () => {
      // What this worker sent but Redis refused may be in the cache: start it again.
      this.local = new StateTable(words);
    };
    /** The oldest batch's answer: new frames on the stack, or why to stop. */
    const receive = async (): Promise<EntryEnd | null> => {
      const { claims, reply } = inflight.shift()!;
      const b = (await reply) as Buffer;
      const status = String.fromCharCode(b[0]!);
      if (status === 'L') return { kind: 'lost' };
      if (status === 'S') return { kind: 'stop', why: b.subarray(1).toString() };
      const replies = decodeClaimReplies(b, 1, claims.length, words);
      const learnt = noSleep(words);
      const scratch = noSleep(words);
      let speculated = 0;
      let beaten = 0;
      for (let i = claims.length - 1; i >= 0; i--) {
        const c = claims[i]!;
        const r = replies[i]!;
        let explore: Uint32Array;
        if (c.frame !== null) {
          speculated++;
          if (!r.fresh) beaten++;
        }
        if (r.fresh) {
          // What the cache took in when the claim was made; a speculative frame already explores it all.
          this.report.newStates++;
          if (c.frame !== null) {
            c.frame.chain = 0;
            if (c.frame.parked) {
              c.frame.parked = false;
              stack.push(c.frame);
            }
            continue;
          }
          if (c.rec.terminal) continue;
          explore = new Uint32Array(words);
          for (let w = 0; w < words; w++) explore[w] = ~c.rec.sleep[w]!;
        } else {
          for (let w = 0; w < words; w++) learnt[w] = ~r.claimed[w]!;
          this.local.arrive(c.rec.fp, learnt, scratch);
          if (c.frame !== null) {
            c.frame.chain = 0;
            if (!c.frame.expanded) c.frame.explore = r.explore;
            if (c.frame.parked) {
              c.frame.parked = false;
              if (!isZero(r.explore)) stack.push(c.frame);
            }
            continue;
          }
          if (c.rec.terminal || isZero(r.explore)) continue;
          explore = r.explore;
        }
        stack.push({ world: c.world, node: c.node, sleep: c.rec.sleep, explore, id: c.rec.id, expanded: false, chain: 0, parked: false });
        if (c.node.depth > this.maxDepth) this.maxDepth = c.node.depth;
      }
      if (this.opts.batch === undefined && speculated > 0) window = beaten > CONTENDED * speculated ? NARROW : WIDE;
      return null;
    };
    const drain = async (): Promise<EntryEnd | null> => {
      if (outgoing.length > 0) send();
      let end: EntryEnd | null = null;
      while (inflight.length > 0) end ??= await receive();
      return end;
    };
    const commit = async (handoff: boolean): Promise<EntryEnd | null> => {
      const n = handoff ? Math.min(MAX_HANDOFF, stack.length >> 1) : 0;
      const frameOf = (f: Frame) => encodeFrame({ kind: FRAME_CLAIMED, id: f.id, path: pathOf(f.node), sleep: f.sleep, explore: f.explore }, words);
      // Speculative frames whose claims won nothing have nothing to hand on.
      for (let i = stack.length - 1; i >= 0; i--) if (isZero(stack[i]!.explore)) stack.splice(i, 1);
      const spare = stack.slice(0, n).map(frameOf);
      const rest = Buffer.concat(stack.slice(n).map(frameOf));
      const r = (await scripts.text('commit', [ek.owner, ek.snapshot, ek.log, k.stats, k.frontier, k.workers, k.idle, k.stop], [...counters(), this.config.leaseMs, n, ...spare, rest])) as [string, number?, string?];
      if (r[0] === 'lost') return { kind: 'lost' };
      const given = Number(r[1]);
      stack.splice(0, given);
      this.report.handedOff += given;
      if (r[2]) return { kind: 'stop', why: r[2] };
      this.opts.onEvent?.({ type: 'progress', report: this.roundedReport() });
      return null;
    };
    const end = async (e: EntryEnd): Promise<EntryEnd> => {
      if (e.kind === 'lost') {
        this.report.lost++;
        // The successor explores this again and counts it.
        this.transitionsSince = 0;
        this.opts.onEvent?.({ type: 'lost', id: entryId });
      }
      if (e.kind !== 'done') forget();
      return e;
    };

    // Taken over: the recovered frames become this worker's snapshot before anything is claimed, so the
    // log starts again under this worker's frame ids.
    if (left !== null) {
      const e = await commit(false);
      if (e !== null) return end(e);
    }
    if (recovered.claimRoot) {
      let world = initialWorld(model);
      for (const c of recovered.rootPath) world = step(model, world, c, enabledChoices(model, world), this.cache.transition).world;
      const rec = { fp: fingerprint(model, world), sleep: noSleep(words), id: 0, parent: NO_PARENT, choice: 0, terminal: world.pending.length === 0 };
      outgoing.push({ rec, world, node: nodeOf(recovered.rootPath), frame: null });
    }

    for (;;) {
      if (this.opts.signal?.aborted) {
        const e = await drain();
        if (e !== null) return end(e);
        const c = await commit(false);
        if (c !== null) return end(c);
        await scripts.text('release', [ek.owner, k.frontier], [this.id, entryId]);
        return end({ kind: 'left' });
      }
      if (expanded >= commitEvery) {
        expanded = 0;
        const e = await drain();
        if (e !== null) return end(e);
        if (stack.length === 0) continue;
        const c = await commit(true);
        if (c !== null) return end(c);
        continue;
      }
      while (stack.length > 0 && outgoing.length < window.batch && expanded < commitEvery) {
        const f = stack.pop()!;
        if (f.chain > SPECULATION_DEPTH) {
          f.parked = true;
          continue;
        }
        const v = this.expand(f, stack, outgoing, () => nextId++);
        expanded++;
        if (v !== null) {
          const why = (await scripts.text('violation', [k.violation, k.stop], [v.choices.length, JSON.stringify(v)])) as string;
          return end({ kind: 'stop', why });
        }
      }
      if (outgoing.length > 0 && (outgoing.length >= window.batch || stack.length === 0 || expanded >= commitEvery) && inflight.length < window.pipeline) send();
      if (inflight.length > 0 && (stack.length === 0 || inflight.length >= window.pipeline)) {
        const e = await receive();
        if (e !== null) {
          while (inflight.length > 0) await inflight.shift()!.reply.catch(() => null);
          return end(e);
        }
        continue;
      }
      if (stack.length === 0 && outgoing.length === 0 && inflight.length === 0) {
        const r = (await scripts.text('finish', [ek.owner, ek.snapshot, ek.log, k.stats, k.frontier, k.workers, k.stop], counters())) as string;
        if (r === 'lost') return end({ kind: 'lost' });
        if (r !== '') return end({ kind: 'stop', why: r });
        return end({ kind: 'done' });
      }
    }
  }

  /**
   * Steps every delivery `f` is to explore and queues the children's claims (those the local cache cannot
   * answer). The first invariant broken ends it with the schedule from the initial world.
   */
  private expand(f: Frame, stack: Frame[], outgoing: Pending[], newId: () => number): Violation | null {
    const { model, channels: ch } = this;
    const words = ch.words;
    const depth = f.node.depth;
    f.expanded = true;
    const first = stack.length;
    const enabled = enabledChoices(model, f.world);
    const sleep = f.sleep.slice();
    const scratch = noSleep(words);
    for (let i = 0; i < enabled.length; i++) {
      const c = ch.of(enabled[i]!);
      if (!has(f.explore, c)) continue;
      if (depth + 1 > this.config.maxDepth) {
        this.depthBound = true;
        continue;
      }
      const r = step(model, f.world, i, enabled, this.cache.transition);
      this.transitionsSince++;
      this.report.transitions++;
      for (const inv of this.invariants) {
        const problem = inv.check(model, f.world, r.world, r.delivered);
        if (problem !== null) return { invariant: inv.name, detail: problem, choices: [...pathOf(f.node), i] };
      }
      const into = ch.into[model.indexOf.get(r.delivered.to)!]!;
      const childSleep = new Uint32Array(words);
      for (let w = 0; w < words; w++) childSleep[w] = sleep[w]! & ~into[w]!;
      sleep[c >>> 5]! |= 1 << (c & 31);
      const fp = fingerprint(model, r.world);
      if (this.local.size >= LOCAL_CACHE_MAX) this.local = new StateTable(words);
      const unseen = this.local.arrive(fp, childSleep, scratch);
      // The local table keeps claims for the first word's first channels only (stateTable.ts): every other
      // awake channel counts as unclaimed here, so only Redis's claims can skip it.
      for (let w = 1; w < words; w++) scratch[w] = ~childSleep[w]! >>> 0;
      if (!unseen && isZero(scratch)) continue;
      const terminal = r.world.pending.length === 0;
      const node = { parent: f.node, choice: i, depth: depth + 1 };
      const id = newId();
      let frame: Frame | null = null;
      if (unseen && !terminal) {
        const awake = new Uint32Array(words);
        for (let w = 0; w < words; w++) awake[w] = ~childSleep[w]!;
        frame = { world: r.world, node, sleep: childSleep, explore: awake, id, expanded: false, chain: f.chain + 1, parked: false };
        stack.push(frame);
        if (node.depth > this.maxDepth) this.maxDepth = node.depth;
      }
      outgoing.push({ rec: { fp, sleep: childSleep, id, parent: f.id, choice: i, terminal, speculative: frame !== null }, world: r.world, node, frame });
    }
    // The first delivery's child on top, as the one-process search explores it first.
    stack.splice(first, stack.length - first, ...stack.slice(first).reverse());
    return null;
  }
}
