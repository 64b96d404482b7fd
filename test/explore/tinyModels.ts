/**
 * Hand-built models whose cycles are known, for the non-progress check: a few statecharts that send each
 * other messages, made into a Model with createModel. A host program's progress labels are XState tags
 * (src/explore/progress.ts): entering a state tagged `progress` is progress, a state tagged `rest` wants
 * nothing more.
 */
import { assign, emit, setup } from 'xstate';
import { createModel, type ActorSpec, type Model } from '../../src/runtime/world.ts';

type Ev = { type: string };
/** The runtime's send signal (src/runtime/step.ts); typed loosely, since test messages are not in the catalogue. */
const send = (to: string, name: string): any => emit(() => ({ type: 'tdxsim.send', to, kind: 'test', name, payload: {} }) as unknown as Ev);

/** Sends REQ to `server` until it answers OK; the answer BUSY makes it ask again. */
export const requester = (server: string) =>
  setup({ types: { events: {} as Ev, emitted: {} as Ev } }).createMachine({
    initial: 'requesting',
    states: {
      requesting: { entry: send(server, 'REQ'), on: { BUSY: { target: 'requesting', reenter: true }, OK: 'done' } },
      done: { tags: ['progress', 'rest'] },
    },
  });

/** Answers REQ with BUSY while locked, OK once RELEASE has come. */
export const server = (client: string, locked = true) =>
  setup({ types: { context: {} as { locked: boolean }, events: {} as Ev, emitted: {} as Ev } }).createMachine({
    context: { locked },
    initial: 'serving',
    states: {
      serving: {
        on: {
          REQ: [{ guard: ({ context }) => context.locked, actions: send(client, 'BUSY') }, { actions: send(client, 'OK') }],
          RELEASE: { actions: assign({ locked: false }) },
        },
      },
    },
  });

/** Sends one message at start, then nothing. */
export const oneShot = (to: string, name: string) =>
  setup({ types: { events: {} as Ev, emitted: {} as Ev } }).createMachine({ initial: 'sent', states: { sent: { entry: send(to, name) } } });

/** Ping-pong: the starter sends PING first; each answers the other for ever. */
export const pinger = (peer: string, starts: boolean) =>
  setup({ types: { events: {} as Ev, emitted: {} as Ev } }).createMachine({
    initial: 'playing',
    states: { playing: { ...(starts ? { entry: send(peer, 'PING') } : {}), on: { PING: { actions: send(peer, 'PONG') }, PONG: { actions: send(peer, 'PING') } } } },
  });

/** Waits for GO (progress), then rests. */
export const waiter = () =>
  setup({ types: { events: {} as Ev, emitted: {} as Ev } }).createMachine({
    initial: 'waiting',
    states: { waiting: { on: { GO: 'done' } }, done: { tags: ['progress', 'rest'] } },
  });

/** Takes one message, then rests. */
export const sink = () =>
  setup({ types: { events: {} as Ev, emitted: {} as Ev } }).createMachine({ initial: 'idle', states: { idle: { on: { '*': 'got' } }, got: {} } });

export const model = (actors: Record<string, ActorSpec['machine']>): Model => createModel(Object.entries(actors).map(([id, machine]) => ({ id, machine, input: {} })));
