/**
 * The pure core: `initialWorld`, `enabledChoices`, `step`. No I/O, no clock, no randomness; the scheduler's
 * choice is the only input besides the world, which is what makes logs replayable and interleavings
 * explorable (architecture.md "One source of nondeterminism").
 */
import type { AnyMachineSnapshot } from 'xstate';
import type { Message, Outgoing } from '../protocol/messages.ts';
import type { CollectedAction } from './xstateScope.ts';
import { ModelBug } from './errors.ts';
import type { Failure, Model, World } from './world.ts';

/** What machines emit besides messages: a failure the model reached. */
export interface FailureSignal {
  type: 'tdxsim.failure';
  reason: string;
  detail: string;
}
/** Emitted by a machine's root wildcard transition: a message its current state has no transition for. */
export interface UnexpectedSignal {
  type: 'tdxsim.unexpected';
}
type Signal = Outgoing | FailureSignal | UnexpectedSignal;

export interface StepResult {
  world: World;
  delivered: Message;
  sent: Message[];
}

/**
 * The world before the first delivery: every actor in its initial state, the scenario's first messages in
 * flight.
 */
export function initialWorld(model: Model): World {
  const snapshots: AnyMachineSnapshot[] = [];
  const pending: Message[] = [];
  const failures: Failure[] = [];
  let nextId = 1;
  model.actors.forEach((spec, i) => {
    const actions: CollectedAction[] = [];
    snapshots.push(model.scopes[i]!.initial(spec.input, actions));
    nextId = collect(model, spec.id, actions, null, nextId, pending, failures, 0);
  });
  return { snapshots, pending, nextId, seq: 0, failures };
}

/**
 * The messages that may be delivered next: the oldest pending message of each (sender, receiver) channel,
 * since a channel is FIFO as a real call/return sequence is. Order: receiver's actor index, then send id.
 * A choice is an index into this list; replay and the explorer depend on the order being exactly this.
 */
export function enabledChoices(model: Model, world: World): Message[] {
  const seen = new Set<string>();
  const heads: Message[] = [];
  for (const m of world.pending) {
    const ch = m.from + '\u0000' + m.to;
    if (seen.has(ch)) continue;
    seen.add(ch);
    heads.push(m);
  }
  heads.sort((a, b) => model.indexOf.get(a.to)! - model.indexOf.get(b.to)! || a.id - b.id);
  return heads;
}

/**
 * One actor's macrostep for a delivered message; `actions` receives what it emits. The default runs the
 * actor's XState scope; the explorer passes a memoised one (src/explore/transitionCache.ts).
 */
export type ActorTransition = (model: Model, actor: number, before: AnyMachineSnapshot, msg: Message, actions: CollectedAction[]) => AnyMachineSnapshot;

export const runTransition: ActorTransition = (model, actor, before, msg, actions) => model.scopes[actor]!.transition(before, { type: msg.name, msg } as { type: string }, actions);

/**
 * Deliver enabled message number `choice` to its receiver. Callers that already computed
 * `enabledChoices` for this world (to let a scheduler choose) pass it in instead of paying for it twice.
 */
export function step(model: Model, world: World, choice: number, enabled: readonly Message[] = enabledChoices(model, world), transition: ActorTransition = runTransition): StepResult {
  const msg = enabled[choice];
  if (!msg) throw new RangeError(`choice ${choice} out of range: ${enabled.length} message(s) enabled at seq ${world.seq + 1}`);
  const to = model.indexOf.get(msg.to)!;
  const seq = world.seq + 1;
  const actions: CollectedAction[] = [];
  const before = world.snapshots[to]!;
  const after = transition(model, to, before, msg, actions);
  const snapshots = world.snapshots.slice();
  snapshots[to] = after;
  const pending = world.pending.filter((m) => m !== msg);
  const reached: Failure[] = [];
  const firstNew = pending.length;
  const nextId = collect(model, msg.to, actions, seq, world.nextId, pending, reached, seq, before, msg);
  // Shared when nothing failed, as every unchanged part of the world is (the state hash relies on it).
  const failures = reached.length === 0 ? world.failures : world.failures.concat(reached);
  return {
    world: { snapshots, pending, nextId, seq, failures },
    delivered: msg,
    sent: pending.slice(firstNew),
  };
}

function collect(
  model: Model,
  from: string,
  actions: readonly CollectedAction[],
  cause: number | null,
  nextId: number,
  pending: Message[],
  failures: Failure[],
  seq: number,
  before?: AnyMachineSnapshot,
  msg?: Message,
): number {
  const e = emitted(model, from, actions, seq, before, msg);
  for (const ev of e.sends) pending.push({ id: nextId++, from, to: ev.to, kind: ev.kind, name: ev.name, payload: ev.payload, cause } as Message);
  for (const f of e.failures) failures.push({ actor: from, seq, reason: f.reason, detail: f.detail });
  return nextId;
}

/** What an actor's macrostep emitted, in order: the messages it sends and the failures it reports. */
export interface Emitted {
  sends: Outgoing[];
  failures: { reason: string; detail: string }[];
}

/**
 * Reads the actions of `from`'s macrostep (delivery number `seq` of `msg`, in state `before`): its sends and
 * failures. A send to an actor the model lacks, or a message its state has no transition for, is a ModelBug.
 * The explorer's engine (src/explore/compiledModel.ts) reads a transition's effect through this too.
 */
export function emitted(model: Model, from: string, actions: readonly CollectedAction[], seq: number, before?: AnyMachineSnapshot, msg?: Message): Emitted {
  const out: Emitted = { sends: [], failures: [] };
  for (const a of actions) {
    if (a.type !== 'xstate.emit') continue;
    const ev = (a.params as { event: Signal }).event;
    if (ev.type === 'tdxsim.send') {
      if (!model.indexOf.has(ev.to)) throw new ModelBug(`${from} sent ${ev.name} to unknown actor ${ev.to}`);
      out.sends.push(ev);
    } else if (ev.type === 'tdxsim.failure') {
      out.failures.push({ reason: ev.reason, detail: ev.detail });
    } else if (ev.type === 'tdxsim.unexpected') {
      const state = JSON.stringify(before?.value);
      throw new ModelBug(`${from} in state ${state} has no transition for ${msg?.kind} ${msg?.name} from ${msg?.from} (seq ${seq})`);
    }
  }
  return out;
}
