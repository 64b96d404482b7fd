/**
 * A replay as a stream: every step of a log re-executed and checked against the log as it is read (the
 * checks of `tdxsim replay --verify`), then the verdict. Memory holds one world and one block of the log,
 * so a log of any length streams. Like a run's stream it is cold, and it observes: the log's choices drive
 * the model, the subscriber only watches; unsubscribing stops the reading at the next step.
 */
import { Observable } from 'rxjs';
import type { EndRecord } from '../log/schema.ts';
import { verifyLogFile, type VerifiedStep } from '../replay/verifyStream.ts';
import type { Message } from '../protocol/messages.ts';
import type { Model, World } from '../runtime/world.ts';

/** A step of the log, re-derived: the same shape as a run's delivery, plus the line it came from. */
export interface ReplayedStep {
  type: 'delivery';
  seq: number;
  line: number;
  choice: number;
  message: Message;
  world: World;
  model: Model;
}

/** The end: the log's end record (null if it has none) after every step and the end were checked. */
export interface ReplayVerified {
  type: 'end';
  steps: number;
  end: EndRecord | null;
  /** The log's last line was torn; the steps before it were replayed, the end could not be checked. */
  torn: boolean;
}

/** What a replay stream emits: each re-derived step, then the verified end. */
export type ReplayEvent = ReplayedStep | ReplayVerified;

/** Stops the reading from inside the verifier's step callback once nobody listens. */
class Unsubscribed {}

/**
 * Replays the log at `file` step by step, checking each event and state hash and, at the end, the header
 * and end record, as `tdxsim replay --verify` does; errors with a LogError (file, line, field) where the
 * log and the model part.
 * @example
 * replayEvents('run.log.jsonl').pipe(filter((e) => e.type === 'delivery' && e.message.name === '#VE'))
 */
export function replayEvents(file: string, opts: { allowTorn?: boolean } = {}): Observable<ReplayEvent> {
  return new Observable<ReplayEvent>((subscriber) => {
    try {
      const r = verifyLogFile(file, {
        ...(opts.allowTorn ? { allowTorn: true } : {}),
        onStep: (s: VerifiedStep) => {
          if (subscriber.closed) throw new Unsubscribed();
          subscriber.next({ type: 'delivery', ...s });
        },
      });
      subscriber.next({ type: 'end', steps: r.log.steps, end: r.log.end, torn: r.log.torn !== null });
      subscriber.complete();
    } catch (e) {
      if (!(e instanceof Unsubscribed)) subscriber.error(e);
    }
  });
}
