/**
 * `--stately`: also stream a live run to the Stately inspector through `@statelyai/inspect` (the XState v5
 * successor of `@xstate/inspect`), for users with network access. It is an optional extra, never a
 * dependency: its UI is served by stately.ai (ecosystem-notes §1.10), so it cannot work offline and the
 * project's own inspector does not need it. The package is loaded only when asked for, by a dynamic import.
 *
 * Our actors are not XState actors (the runtime owns delivery), so the bridge announces each one with its
 * machine's definition, then reports every delivery as an event from sender to receiver followed by the
 * receiver's new snapshot. Values go out as the log writes them (bigints as hex strings).
 */
import { connect } from 'node:net';
import type { Message } from '../protocol/messages.ts';
import { stringifyCanonical } from '../log/canonical.ts';
import type { Model, World } from '../runtime/world.ts';

export const STATELY_PACKAGE = '@statelyai/inspect';

/** The optional package is not installed: a usage error (exit 2) with the way to get it. */
export class OptionalPackageMissing extends RangeError {}

export interface StatelyBridge {
  start(model: Model, world: World): void;
  delivered(model: Model, msg: Message, world: World): void;
  stop(): void;
}

interface StatelyInspector {
  actor(ref: unknown, snapshot?: unknown, info?: unknown): void;
  event(target: string, event: { type: string }, info?: { source?: string }): void;
  snapshot(actor: string, snapshot: unknown, info?: { event?: { type: string } }): void;
  start?(): void;
  stop?(): void;
}

const json = (v: unknown): unknown => JSON.parse(stringifyCanonical(v));

function snapshotOf(world: World, i: number): unknown {
  const s = world.snapshots[i]!;
  return { status: s.status, value: s.value, context: json(s.context) };
}

/** Where the Sky inspector connects first (its API; the relay is on PartyKit's servers). */
export const STATELY_HOST = 'stately.ai';
/** How long `--stately` waits for a TCP connection before it gives up (exit 2). */
export const STATELY_CONNECT_TIMEOUT_MS = 5_000;

/** Stately's service cannot be reached: a usage error (exit 2), never a run that waits forever. */
export class ServiceUnreachable extends RangeError {}

/**
 * Resolves when a TCP connection to host:port opens within `timeoutMs`, else rejects with what went wrong
 * (no DNS, refused, timed out). The Sky client retries forever on its own, so this is what makes
 * `--stately` fail fast on a machine without network.
 */
export function probeReachable(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const fail = (why: string) => {
      socket.destroy();
      reject(new ServiceUnreachable(`--stately: cannot reach ${host}:${port} (${why}); the Stately inspector is a hosted service and needs network access. The local inspector (--inspect) works offline.`));
    };
    socket.setTimeout(timeoutMs, () => fail(`no connection within ${timeoutMs / 1000} s`));
    socket.once('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
  });
}

export async function statelyBridge(opts: { host?: string; port?: number; timeoutMs?: number } = {}): Promise<StatelyBridge> {
  let mod: { createSkyInspector?: (o?: object) => StatelyInspector };
  try {
    // A variable specifier keeps bundlers and the type checker from requiring the package to exist.
    const name: string = STATELY_PACKAGE;
    mod = (await import(name)) as typeof mod;
  } catch {
    throw new OptionalPackageMissing(
      `--stately needs the optional package ${STATELY_PACKAGE}, which tdxsim does not install: run \`npm install --no-save ${STATELY_PACKAGE}\` in the tdxsim directory. ` +
        'Its inspector UI is served by stately.ai and needs network access; the local inspector (--inspect) works offline.',
    );
  }
  if (typeof mod.createSkyInspector !== 'function') throw new OptionalPackageMissing(`${STATELY_PACKAGE} has no createSkyInspector: install version 0.7 or newer`);
  await probeReachable(opts.host ?? STATELY_HOST, opts.port ?? 443, opts.timeoutMs ?? STATELY_CONNECT_TIMEOUT_MS);
  // Sky relays through Stately's service and prints the live inspection URL when it connects.
  const inspector = mod.createSkyInspector({ onerror: (e: Error) => process.stderr.write(`# stately: ${e.message}\n`) });
  inspector.start?.();
  return {
    start(model, world) {
      model.actors.forEach((a, i) => {
        // Shaped like an actor ref as far as the inspector looks: a session id and the machine's config.
        inspector.actor({ sessionId: a.id, id: a.id, logic: { config: a.machine.config } }, snapshotOf(world, i));
      });
    },
    delivered(model, msg, world) {
      const event = { type: msg.name, ...(json(msg.payload) as object) };
      inspector.event(msg.to, event, { source: msg.from });
      inspector.snapshot(msg.to, snapshotOf(world, model.indexOf.get(msg.to)!), { event });
    },
    stop() {
      inspector.stop?.();
    },
  };
}
