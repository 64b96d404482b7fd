/**
 * What an invariant is to the explorer: a named check of one delivery — the world before it, the world
 * after it and the message delivered — that returns null when it holds, or a sentence saying what broke,
 * in the model's own terms (GFNs, SPTE values, S-EPT states in hex).
 *
 * The explorer's reduction assumes a check is a predicate of the world after the delivery, or of the
 * delivered message and its receiver: both give the same verdict in either order of two deliveries to
 * different actors. A check with memory of its own would not; monitors that count (bounded liveness)
 * read a counter the model keeps, such as the TDX module's zero-step counter.
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
