/**
 * The three record types of a tdxsim log, one JSON object per line:
 *
 *   line 1     header  what ran and how to reproduce it
 *   lines 2…   event   one delivered message each; seq 1, 2, 3, …
 *   last line  end     optional; how the run finished
 *
 * Schemas are strict: an unknown key is an error rather than something a later version silently
 * ignores. Key order on disk is the order of the shapes below (the writer builds records in this order).
 * Nothing here carries a timestamp, so the same run always yields a byte-identical log.
 */
import { z } from 'zod';

export const LOG_FORMAT = 'tdxsim-log';
export const LOG_VERSION = 1;

/** 16 lowercase hex digits: line hashes and world-state hashes. */
const Hex16 = z.string().regex(/^[0-9a-f]{16}$/, 'expected 16 lowercase hex digits');
/** Any JSON object (scenario, payload). Bigints are allowed on input; they are written as '0x…' strings. */
const JsonObject = z.record(z.string(), z.unknown());
const Name = z.string().min(1);
const Count = z.number().int().nonnegative();

export const SchedulerSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('fifo') }),
  z.strictObject({ kind: z.literal('random'), seed: z.number().int() }),
  /** A schedule the explorer found (a counterexample): the per-record choices are the whole schedule. */
  z.strictObject({ kind: z.literal('explore') }),
]);

export const HeaderRecordSchema = z.strictObject({
  type: z.literal('header'),
  format: z.literal(LOG_FORMAT),
  version: z.literal(LOG_VERSION),
  /** Model version (src/version.ts); a log replays only against the model that wrote it. */
  model: z.string(),
  /** The scenario itself, not just its file name, so the log is self-contained. */
  scenario: JsonObject,
  scenarioFile: z.string().nullable(),
  scheduler: SchedulerSchema,
  hash: Hex16,
});

export const EventRecordSchema = z.strictObject({
  type: z.literal('event'),
  seq: z.number().int().positive(),
  from: Name,
  to: Name,
  /** Message family (e.g. seamcall, exit, hw). */
  kind: Name,
  /** Architectural name, e.g. `TDH.MEM.PAGE.AUG`, `EPT_VIOLATION`, `#VE`. */
  name: Name,
  payload: JsonObject,
  /** seq of the event whose delivery sent this message; null for scenario-initial messages. */
  cause: z.number().int().positive().nullable(),
  /** Index the scheduler picked among the enabled deliveries; replay feeds these back. */
  choice: Count,
  /** World-state hash after this delivery, so replay can check it reaches the same states. */
  state: Hex16,
  hash: Hex16,
});

/** A failure the model reached (src/runtime/world.ts `Failure`): who, at which step, why. */
export const FailureSchema = z.strictObject({
  actor: Name,
  seq: Count,
  reason: z.string(),
  detail: z.string(),
});

/** What a counterexample's last step broke (`bound` for a bounded monitor such as kick-completes). */
export const ViolationSchema = z.strictObject({
  invariant: Name,
  bound: Count.optional(),
  detail: z.string(),
});

/**
 * A non-progress cycle (a lasso): events loopStart + 1 … steps are one turn of a loop that returns to the
 * world after event loopStart. Loose, like the outcome, so a later field does not break older readers.
 */
export const LassoSchema = z.strictObject({
  loopStart: Count,
  /** The thread or actor that never makes progress. */
  starving: z.string(),
  /** What it retries on each turn. */
  retries: z.string(),
});

/**
 * Loose: fields this version does not know are kept and ignored, so older readers open newer logs. The
 * fields it does know are typed, so a wrong type is an error naming the field rather than a crash later.
 */
export const OutcomeSchema = z.looseObject({
  status: z.enum(['ok', 'failure']),
  reason: z.string().nullable(),
  /** Every failure the run reached, in order; replay --verify re-derives them. */
  failures: z.array(FailureSchema).optional(),
  violation: ViolationSchema.optional(),
  lasso: LassoSchema.optional(),
});

export const SIGNATURE_ALG = 'hmac-sha256';

/** The optional seal of a signed log (src/log/signature.ts); always the last field before `hash`. */
export const SignatureSchema = z.strictObject({
  alg: z.literal(SIGNATURE_ALG),
  /** First 8 hex digits of SHA-256 over the key: says which key signed, without revealing it. */
  keyId: z.string().regex(/^[0-9a-f]{8}$/, 'expected 8 lowercase hex digits'),
  /** HMAC-SHA256, 64 lowercase hex digits. */
  mac: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits'),
});

export const EndRecordSchema = z.strictObject({
  type: z.literal('end'),
  /** Number of events in the log; the writer fills it in. */
  steps: Count,
  outcome: OutcomeSchema,
  signature: SignatureSchema.optional(),
  hash: Hex16,
});

export type Scheduler = z.infer<typeof SchedulerSchema>;
/**
 * Line 1 of a log: format and version, model version, the whole validated scenario, the scheduler, and the
 * line's hash.
 */
export type HeaderRecord = z.infer<typeof HeaderRecordSchema>;
/**
 * One delivered message in a log: step, sender, receiver, kind, name, payload, cause, the scheduler's choice,
 * the world-state hash after it, and the chained line hash.
 */
export type EventRecord = z.infer<typeof EventRecordSchema>;
export type Outcome = z.infer<typeof OutcomeSchema>;
export type Lasso = z.infer<typeof LassoSchema>;
export type Signature = z.infer<typeof SignatureSchema>;
/** The last line of a finished log: the number of steps and the outcome. */
export type EndRecord = z.infer<typeof EndRecordSchema>;
/** Any line of a log. */
export type LogRecord = HeaderRecord | EventRecord | EndRecord;

/** What the writer takes for each record: everything except the fields it supplies itself. */
export const HeaderInputSchema = HeaderRecordSchema.omit({ type: true, format: true, version: true, hash: true });
export const EventInputSchema = EventRecordSchema.omit({ type: true, hash: true });
export type HeaderInput = z.input<typeof HeaderInputSchema>;
export type EventInput = z.input<typeof EventInputSchema>;
/** `end()` takes only the outcome; `steps` is the writer's own count. */
export type EndInput = z.input<typeof OutcomeSchema>;

/** The first issue of a failed parse as a dotted field path (null for the record as a whole) and a message. */
export function firstIssue(error: z.ZodError): { field: string | null; message: string } {
  const issue = error.issues[0];
  if (issue === undefined) return { field: null, message: 'invalid record' };
  const path = issue.path.map(String);
  // An unknown key is reported at its parent; name the key itself, since that is what to delete.
  if (issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined) path.push(issue.keys[0]);
  return { field: path.length > 0 ? path.join('.') : null, message: issue.message };
}
