/**
 * The only file that knows XState's internal actor-scope shape.
 *
 * XState's exported pure `transition()` builds a fresh inert scope (a whole `createActor`) on every call:
 * measured here at ~65k transitions/s against ~240k/s for `machine.transition(snapshot, event, scope)` with
 * one reused scope (ecosystem-notes §1.2). The step function is the explorer's hot path, so every actor
 * gets one scope, built once, shaped exactly like XState's own inert scope (xstate 5.33.3
 * `createInertActorScope`), whose action executor collects instead of executing. Actions are never run:
 * `assign` is already folded into the next snapshot, and our machines' only other actions are `emit`s of
 * outgoing messages, which come back here as data. Ids are fixed strings, never the process-global
 * session counter (ecosystem-notes §1.9). test/differential/step.test.ts checks this path against the
 * exported `transition()` on every example.
 */
import { createActor, type AnyStateMachine, type AnyMachineSnapshot } from 'xstate';

/** An action as XState hands it to the executor (ExecutableActionObject). */
export interface CollectedAction {
  type: string;
  params: unknown;
}

export interface UnsafeScope {
  readonly machine: AnyStateMachine;
  /** Compute the initial snapshot; entry actions are appended to `actions`. */
  initial(input: unknown, actions: CollectedAction[]): AnyMachineSnapshot;
  /** Pure macrostep; the actions it would run are appended to `actions`. */
  transition(snapshot: AnyMachineSnapshot, event: { type: string }, actions: CollectedAction[]): AnyMachineSnapshot;
  /**
   * The snapshot whose state is `state` (as the state hash covers it, src/runtime/worldHash.ts): what a
   * checkpoint restores. XState derives everything else from the state value, as it does for a snapshot
   * it restores itself (without walking the context for actor references: the runtime owns every actor).
   */
  restore(state: RestoredActor): AnyMachineSnapshot;
}

/** An actor's state as a checkpoint holds it. */
export interface RestoredActor {
  status: string;
  value: unknown;
  context: unknown;
  historyValue?: Record<string, string[]>;
  output?: unknown;
  error?: unknown;
}

export function createUnsafeScope(machine: AnyStateMachine, actorId: string, input: unknown): UnsafeScope {
  // The actor is never started: it only serves as `self` (XState does the same in createInertActorScope).
  const self = createActor(machine, { input }) as unknown as { system: unknown; _snapshot: unknown };
  let sink: CollectedAction[] = [];
  const scope = {
    self,
    defer: () => {},
    id: actorId,
    logger: () => {},
    sessionId: actorId,
    stopChild: () => {},
    system: self.system,
    emit: () => {},
    actionExecutor: (action: CollectedAction) => {
      sink.push(action);
    },
  };
  const logic = machine as unknown as {
    getInitialSnapshot(scope: unknown, input: unknown): AnyMachineSnapshot;
    transition(snapshot: AnyMachineSnapshot, event: unknown, scope: unknown): AnyMachineSnapshot;
    resolveState(config: { value: unknown; context: unknown; status: string; output: unknown; error: unknown; historyValue: unknown }): AnyMachineSnapshot;
    getStateNodeById(id: string): unknown;
  };
  return {
    machine,
    initial(inp, actions) {
      sink = actions;
      return logic.getInitialSnapshot(scope, inp);
    },
    transition(snapshot, event, actions) {
      sink = actions;
      self._snapshot = snapshot;
      return logic.transition(snapshot, event, scope);
    },
    restore(state) {
      const historyValue: Record<string, unknown[]> = {};
      for (const [k, ids] of Object.entries(state.historyValue ?? {})) historyValue[k] = ids.map((id) => logic.getStateNodeById(id));
      return logic.resolveState({ value: state.value, context: state.context, status: state.status, output: state.output, error: state.error, historyValue });
    },
  };
}
