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
 *
 * Events are stored compactly (README "The log"; src/log/eventCodec.ts): `EncodedEventSchema` is the line
 * on disk, `EventRecord` the event as every reader sees it.
 */
import { z } from 'zod';

export const LOG_FORMAT = 'tdxsim-log';
/**
 * 2: the state hash is a Merkle hash (src/runtime/worldHash.ts), hashes are 11 base64url characters under
 * the key `h`, events are encoded compactly in blocks, and logs may be gzip-compressed.
 */
export const LOG_VERSION = 2;
/** Events per block: the event encoding starts afresh at every multiple of it, which is where checkpoints sit. */
export const DEFAULT_BLOCK = 1024;

/** 11 base64url characters (66 bits of SHA-256): line hashes and world-state hashes. */
export const HASH_PATTERN = /^[A-Za-z0-9_-]{11}$/;
const Hash = z.string().regex(HASH_PATTERN, 'expected 11 base64url characters');
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
  /** Events per block of the encoding (and between checkpoints). */
  block: z.number().int().positive(),
  h: Hash,
});

/**
 * An event line on disk. `m` names the message: an id given within the block, or on first use in the
 * block its definition [from, to, kind, name], where from and to are an actor's id on its first use in the
 * block and its index (in order of first use) afterwards. `p` is the payload; `q` only the keys that
 * differ from the previous payload of the same message in the block (same keys, same order); neither when
 * it is that payload again. `c` is absent when the cause is the previous step, null for none, else
 * seq − cause. `x` is the choice, absent when 0. `s` is the state hash, `h` the line hash.
 */
export const EncodedEventSchema = z.strictObject({
  e: z.number().int().positive(),
  m: z.union([Count, z.tuple([z.union([Count, Name]), z.union([Count, Name]), Name, Name])]),
  p: JsonObject.optional(),
  q: JsonObject.refine((o) => Object.keys(o).length > 0, 'an empty q is written as no q at all').optional(),
  c: z.union([z.null(), z.number().int().min(2)]).optional(),
  x: z.number().int().positive().optional(),
  s: Hash,
  h: Hash,
});

/** One delivered message, as every reader sees it (decoded from the line). */
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
  /** World-state hash after this delivery (src/runtime/worldHash.ts), so replay can check it reaches the same states. */
  state: Hash,
  /** The line's hash (`h` on disk). */
  hash: Hash,
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

/** The optional seal of a signed log (src/log/signature.ts); always the last field before `h`. */
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
  h: Hash,
});

export type Scheduler = z.infer<typeof SchedulerSchema>;
/**
 * Line 1 of a log: format and version, model version, the whole validated scenario, the scheduler, the
 * block size, and the line's hash (`h` on disk).
 */
export type HeaderRecord = Omit<z.infer<typeof HeaderRecordSchema>, 'h'> & { hash: string };
/** An event line as it is on disk. */
export type EncodedEvent = z.infer<typeof EncodedEventSchema>;
/**
 * One delivered message in a log: step, sender, receiver, kind, name, payload, cause, the scheduler's choice,
 * the world-state hash after it, and the chained line hash.
 */
export type EventRecord = z.infer<typeof EventRecordSchema>;
export type Outcome = z.infer<typeof OutcomeSchema>;
export type Lasso = z.infer<typeof LassoSchema>;
export type Signature = z.infer<typeof SignatureSchema>;
/** The last line of a finished log: the number of steps, the outcome, and the line's hash (`h` on disk). */
export type EndRecord = Omit<z.infer<typeof EndRecordSchema>, 'h'> & { hash: string };
/** Any line of a log. */
export type LogRecord = HeaderRecord | EventRecord | EndRecord;

/** What the writer takes for each record: everything except the fields it supplies itself. */
export const HeaderInputSchema = HeaderRecordSchema.omit({ type: true, format: true, version: true, block: true, h: true });
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
