/**
 * The world: every actor's snapshot plus the messages in flight. Immutable; `step` returns a new one.
 * The runtime, not XState's actor system, owns delivery order and ids (architecture.md "Principles").
 */
import type { AnyMachineSnapshot, AnyStateMachine } from 'xstate';
import type { ActorId, Message } from '../protocol/messages.ts';
import { createUnsafeScope, type UnsafeScope } from './xstateScope.ts';

/**
 * One actor of a model: its id (`kvm.vcpu0`), its XState machine and the input its context starts from.
 */
export interface ActorSpec {
  id: ActorId;
  machine: AnyStateMachine;
  /** The actor's configuration from the scenario; becomes its initial context. */
  input: unknown;
}

/** A failure the model reached (guest panic, #DF, KVM_BUG_ON, violated invariant): an outcome, not a crash. */
export interface Failure {
  actor: ActorId;
  seq: number;
  reason: string;
  detail: string;
}

/** The fixed part of a run: actors in a stable order, with their reusable XState scopes. */
export interface Model {
  readonly actors: readonly ActorSpec[];
  readonly scopes: readonly UnsafeScope[];
  readonly indexOf: ReadonlyMap<ActorId, number>;
}

/**
 * Every actor's snapshot plus the messages in flight, immutable: `step` returns a new one and shares what did
 * not change.
 */
export interface World {
  /** Indexed like `model.actors`. */
  readonly snapshots: readonly AnyMachineSnapshot[];
  /** In send order (ascending id). */
  readonly pending: readonly Message[];
  readonly nextId: number;
  /** Number of messages delivered so far; the next delivery has seq = seq + 1. */
  readonly seq: number;
  readonly failures: readonly Failure[];
}

/**
 * The fixed part of a run: actors in a stable order, each with a reusable pure-transition scope. Actor ids
 * must be unique.
 */
export function createModel(actors: readonly ActorSpec[]): Model {
  const indexOf = new Map<ActorId, number>();
  actors.forEach((a, i) => {
    if (indexOf.has(a.id)) throw new Error(`duplicate actor id ${a.id}`);
    indexOf.set(a.id, i);
  });
  return { actors, scopes: actors.map((a) => createUnsafeScope(a.machine, a.id, a.input)), indexOf };
}
