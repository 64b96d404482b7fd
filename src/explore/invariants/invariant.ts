/**
 * What an invariant is to the explorer: a named check of one delivery — the world before it, the world
 * after it and the message delivered — that returns null when it holds, or a sentence saying what broke,
 * in the model's own terms (GFNs, SPTE values, S-EPT states in hex).
 *
 * The explorer's reduction assumes a check is a predicate of the world after the delivery, or of the
 * delivered message and its receiver: both give the same verdict in either order of two deliveries to
 * different actors. A check with memory of its own would not; monitors that count (bounded liveness)
 * read a counter the model keeps, such as the TDX module's zero-step counter.
 *
 * An invariant may declare its footprint — what its verdict reads. The explorer then decides a verdict
 * that depends on the delivery alone once per distinct delivery (receiver state, message) instead of
 * once per transition, skips the check where it reads nothing, and knows which deliveries the check
 * cannot see, which its stronger reduction needs (src/explore/reduction.ts). A footprint is a promise:
 * test/explore/footprint.test.ts checks the library's against their checks on every example.
 */
import type { AnyMachineSnapshot } from 'xstate';
import type { Message } from '../../protocol/messages.ts';
import type { Model, World } from '../../runtime/world.ts';

/**
 * A named check of one delivery (world before, world after, message) that returns null when it holds or a
 * sentence saying what broke.
 */
export interface Invariant {
  name: string;
  description: string;
  /** A bounded monitor's N, so a counterexample log can name the monitor exactly. */
  bound?: number;
  /** A property of the whole state graph, checked after a depth-first search instead of per delivery (non-progress). */
  liveness?: true;
  check(model: Model, before: World, after: World, delivered: Message): string | null;
  /** What the verdict reads; absent: anything, in which case the explorer builds both worlds for every check. */
  footprint?: Footprint;
}

/** Which actors, by id. */
export type ActorSet = (actorId: string) => boolean;

/**
 * What an invariant's verdict depends on. A delivery's *own* data is its message, its receiver's state
 * before and after, the messages it sends and the failures it reports.
 *
 * - For a delivery to an actor outside `on`, the verdict depends on the delivery's own data only (often
 *   it is null without reading anything).
 * - For a delivery to an actor in `on`, it may also read the states of `reads` (before or after) and the
 *   messages in flight to `pendingTo`.
 * - `quiescent`: besides, where nothing is in flight after the delivery, it may read the whole world
 *   (a deadlock check); elsewhere a delivery to an actor outside `on` is null.
 */
export interface Footprint {
  /** Receivers whose deliveries the verdict may look beyond; absent: none. */
  on?: ActorSet;
  reads?: ActorSet;
  pendingTo?: ActorSet;
  quiescent?: boolean;
  /** The same verdict as `check` for a delivery to an actor in `on`, from interned state ids where it can (faster). */
  fast?(view: DeliveryView): string | null;
}

/** A delivery as the explorer's engine sees it, for `Footprint.fast`. */
export interface DeliveryView {
  readonly model: Model;
  /** What the state ids are interned in: memoise on ids per this object (one per search or thread). */
  readonly ids: object;
  readonly delivered: Message;
  /** Actor `i`'s state after the delivery, interned: equal ids are equal states (per actor). */
  stateId(i: number): number;
  snapshot(i: number): AnyMachineSnapshot;
  /** The worlds themselves, built on demand. */
  before(): World;
  after(): World;
}

/** A library entry: `bound` is the N of a bounded monitor ("within N …"); the others take none. */
export interface InvariantSpec {
  name: string;
  description: string;
  /** Checked when a scenario does not list its invariants. */
  byDefault: boolean;
  /** Present for a bounded monitor: the N used when none is given. */
  defaultBound?: number;
  /** The largest N the monitor can still see exceeded. */
  maxBound?: number;
  create(bound?: number): Invariant;
}

/** For invariants without a bound: the spec that creates itself. */
export function fixed(inv: Invariant, byDefault = true): InvariantSpec {
  return { name: inv.name, description: inv.description, byDefault, create: () => inv };
}

export const snapshotOf = (model: Model, world: World, actor: string): AnyMachineSnapshot | undefined => {
  const i = model.indexOf.get(actor);
  return i === undefined ? undefined : world.snapshots[i];
};

export const contextOf = <T>(model: Model, world: World, actor: string): T => snapshotOf(model, world, actor)!.context as T;

/** A state value as a dotted path: `handlingEptViolation.waitingLock`. */
export function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  const [k, v] = Object.entries(value as Record<string, unknown>)[0] ?? ['?', ''];
  return v === undefined || (typeof v === 'object' && v !== null && Object.keys(v).length === 0) ? k : `${k}.${stateName(v)}`;
}
