/**
 * The logs one inspector serves: the one it was started on (`main`) and those made by steering (`s1`,
 * `s2`, …), each with its background verification. Steered logs live in memory only (the page offers
 * each as a download); the oldest are dropped past MAX_STEERED, so a long debugging session cannot grow
 * without bound.
 */
import type { SteerInfo, VerifyResult } from './api.ts';
import type { InspectSession } from './session.ts';
import type { TraceView } from './traceView.ts';
import { verifyInBackground } from './verify.ts';

export const MAX_STEERED = 16;

export interface OpenedLog {
  id: string;
  session: InspectSession;
  steered: SteerInfo | null;
  /** The log's text, for a steered log's download link. */
  text: string | null;
  verification: Promise<VerifyResult> | null;
  /** The real trace this log is the model's run of (the log `tdxsim import --inspect` opened); never a steered log's. */
  trace: TraceView | null;
}

export class OpenedLogs {
  readonly main: OpenedLog;
  readonly #steered = new Map<string, OpenedLog>();
  #next = 1;

  constructor(
    main: InspectSession,
    /** The compiled verifier worker, or null to verify on the server's thread (verify.ts). */
    private readonly verifyWorker: URL | null | undefined,
    trace: TraceView | null = null,
  ) {
    this.main = { id: 'main', session: main, steered: null, text: null, verification: null, trace };
  }

  get(id: string | null): OpenedLog | null {
    if (id === null || id === '' || id === 'main') return this.main;
    return this.#steered.get(id) ?? null;
  }

  addSteered(session: InspectSession, steered: Omit<SteerInfo, 'parent'>, parent: string, text: string): OpenedLog {
    const id = `s${this.#next++}`;
    const entry: OpenedLog = { id, session, steered: { parent, ...steered }, text, verification: null, trace: null };
    this.#steered.set(id, entry);
    if (this.#steered.size > MAX_STEERED) this.#steered.delete(this.#steered.keys().next().value!);
    return entry;
  }

  /** Starts the check the first time it is asked for (the page asks once it has opened). */
  verification(entry: OpenedLog): Promise<VerifyResult> {
    entry.verification ??= verifyInBackground(entry.session.parsedLog(), entry.session.file, this.verifyWorker);
    return entry.verification;
  }
}
