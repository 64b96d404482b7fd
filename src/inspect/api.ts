/**
 * The JSON the inspector server sends and the web app reads (types only; web/ imports them). Everything
 * is already formatted on the server (hex, decoded SPTEs) with the CLI's own helpers, so the page only
 * lays text out and never parses a value.
 */
import type { StatechartLayout } from '../export/statechartGeometry.ts';

export interface ActorInfo {
  id: string;
  /** XState machine id (`kvmVcpu`); actors of the same kind share a statechart. */
  machine: string;
}

export interface FailureInfo {
  /** The step to open on: where the failure was raised, or the last step. */
  step: number;
  actor: string | null;
  reason: string;
  detail: string | null;
}

/** A non-progress cycle (lasso log): events loopStart+1 … steps are one turn of a loop that repeats forever. */
export interface LassoInfo {
  loopStart: number;
  /** First and last step of the loop. */
  first: number;
  last: number;
  starving: string;
  retries: string;
}

/** Set on a log made by steering another one in the inspector. */
export interface SteerInfo {
  /** The log it was steered from (`main` or another steered log). */
  parent: string;
  /** The step that delivered the picked message instead of the one the parent log delivered there. */
  step: number;
  chose: string;
  /** What the parent delivered at that step (null when the parent had ended there). */
  insteadOf: string | null;
  /** File name offered by the download link. */
  fileName: string;
}

export interface Summary {
  /** Which opened log this is: `main` (the one the command named) or a steered one (`s1`, `s2`, …). */
  log: string;
  file: string;
  scenario: string;
  description: string;
  vmType: string;
  steps: number;
  /** True while `run --inspect` is still delivering. */
  live: boolean;
  outcome: { status: 'ok' | 'failure'; reason: string | null } | null;
  failure: FailureInfo | null;
  actors: ActorInfo[];
  warning: string | null;
  /** The header's scheduler kind: `fifo`, `random`, or `explore` (a counterexample or a steered schedule). */
  scheduler: string;
  /** Preemptions along the schedule, for `explore` logs (null otherwise); src/explore/minimise.ts's definition. */
  preemptions: number | null;
  lasso: LassoInfo | null;
  /** The last line was cut mid-write: what is shown is the intact prefix. */
  torn: { line: number; notice: string } | null;
  steered: SteerInfo | null;
  /** Set when the log is the model's run of a scenario imported from a real trace (`tdxsim import --inspect`). */
  trace: TraceSummary | null;
  /**
   * Set for a log too long to hold, opened paged: read by block through its checkpoint index, never whole.
   * The page then filters with /api/search (a pass with progress, cancellable); `preemptions` is null.
   */
  paged: PagedInfo | null;
}

export interface PagedInfo {
  /** Events per block: the unit read, and the distance between checkpoints. */
  block: number;
  indexFile: string;
  /** The index as opening found it: `fresh` (used as found), `built` (rebuilt now), `none`, `unwritable`. */
  indexState: string;
}

/** What the header and the first view need to know of an imported trace. */
export interface TraceSummary {
  /** The trace files as named on the command line, with their format. */
  inputs: { file: string; format: string; lines: number; events: number }[];
  events: number;
  /** Divergences proper (not counting `trace-ends` notes). */
  divergenceCount: number;
  /** Index into TraceInfo.divergences of the first divergence, or null when the trace and the model agree. */
  first: number | null;
}

/** The background check of the log, as `tdxsim replay --verify` makes it. */
export type VerifyResult =
  | { status: 'verified'; steps: number; text: string }
  /** Every state hash re-derived, but there is no end record to check the outcome against (torn or cut-off log). */
  | { status: 'partial'; steps: number; text: string }
  | { status: 'failed'; text: string };

/** One row of the sequence view. */
export interface EventRow {
  seq: number;
  from: string;
  to: string;
  kind: string;
  name: string;
  /** Name with its kind suffix: `EPT_VIOLATION (TD exit)`. */
  label: string;
  /** The CLI's field list for the message. */
  fields: string;
  cause: number | null;
  /** For `explore` logs: why this delivery is a preemption (null when it is not one). */
  preemption: string | null;
}

/** A context value as a tree: objects and arrays have children, everything else a formatted text. */
export interface TreeNode {
  key: string;
  /** Formatted value (hex where the CLI prints hex), or a summary such as `{3}` for containers. */
  text: string;
  /** Differs from the previous step (or is new). */
  changed: boolean;
  removed?: boolean;
  children?: TreeNode[];
  /** Set on a `pages` field that is drawn as a page table instead. */
  table?: boolean;
}

/** One entry of a page-table page: an SPTE decoded with src/arch/spte.ts, or an S-EPT entry with septEntry.ts. */
export interface SpteRow {
  /** Entry index in hex. */
  index: string;
  /** The entry, 16 hex digits; `absent` for an entry removed since the previous step. */
  spte: string;
  /** SPTE kind (`mmio`, `leaf`, `nonleaf`, …) or S-EPT state (`MAPPED`, `PENDING`, …). */
  kind: string;
  rwx: string;
  suppressVe: boolean;
  /** KVM's MMU-present bit (11); null for S-EPT entries, which have no such bit. */
  mmuPresent: boolean | null;
  /** Level of the page holding the entry: KVM pg_level (4K = 1) for SPTEs, TDX level (4K = 0) for S-EPT. */
  level: number | null;
  /** Output frame (leaf/non-leaf) or MMIO GPA. */
  target: string;
  /** The CLI's one-line decoding (`0x… mmio gen=1 gpa=0x8000fe000000 --- SVE=0`). */
  decoded: string;
  changed: boolean;
}

export interface PageView {
  pfn: string;
  /** `direct root, level 4`, `level 1`, `unlinked`. */
  title: string;
  level: number | null;
  rows: SpteRow[];
  changed: boolean;
}

export interface PageTableView {
  /** Context path of the table (`pages`, `mem.sept`). */
  field: string;
  /** KVM's SPTEs or the TDX module's Secure EPT. */
  kind: 'spte' | 'sept';
  /** What an entry not listed holds (`SHADOW_NONPRESENT_VALUE`, `FREE`). */
  absent: string;
  pages: PageView[];
}

/** A table of model state drawn by the state panel (src/inspect/stateTables.ts); cells arrive formatted. */
export interface StateTableRow {
  key: string;
  cells: string[];
  /** Per cell: differs from the previous step (or is new). */
  changed: boolean[];
}

export interface StateTable {
  /** `interrupts`, `guest-page-tables`. */
  id: string;
  title: string;
  columns: string[];
  rows: StateTableRow[];
}

export interface ActorStep {
  id: string;
  machine: string;
  /** `handlingEptViolation.walking`. */
  state: string;
  /** Active state ids, ancestors included (statechart ids). */
  active: string[];
  status: string;
  /** The actor's snapshot changed at this step. */
  changed: boolean;
  /** Context and tables are filled in only for the actor asked for (`/api/step?actor=`). */
  detailed: boolean;
  context: TreeNode[];
  tables: PageTableView[];
  /** Tables of state that spans actors or reads best as rows: interrupt state per vCPU, guest page tables. */
  views: StateTable[];
}

export interface PendingRow {
  from: string;
  to: string;
  label: string;
  fields: string;
  cause: number | null;
}

export interface StepView {
  step: number;
  steps: number;
  event: EventRow | null;
  /** The delivered message's payload as a tree. */
  payload: TreeNode[];
  /** Steps sent while handling this one. */
  effects: number[];
  /** Statechart transition ids the receiver took at this step (the event's, then eventless ones). */
  taken: { actor: string; transitions: string[] } | null;
  actors: ActorStep[];
  pending: PendingRow[];
  /** Failures raised at exactly this step. */
  failures: { actor: string; reason: string; detail: string }[];
  /** With an imported trace: the tracepoints the model hits at this step, and the trace events placed on or after it. */
  trace?: { model: ModelTraceRow[]; on: number[]; after: number[] };
}

export interface FindResult {
  seq: number | null;
  /** Number of matching steps in the whole log. */
  total: number;
  /** The search ran off the end of the log and went on from the other end. */
  wrapped: boolean;
  /** With an imported trace: the trace event the match is on (null: the step's own message matched). */
  trace?: number | null;
  /** With an imported trace: how many trace events match. */
  traceTotal?: number;
}

/** `GET /api/search`'s `progress` events: records read of `steps`, matches so far. */
export interface SearchProgress {
  scanned: number;
  steps: number;
  matches: number;
}

export interface MatchesResult {
  /** Every matching step, ascending. */
  seqs: number[];
  /** With an imported trace: every matching trace event, in trace order. */
  traces?: number[];
}

/** How a trace event relates to the model's run (src/import/align.ts). */
export type TraceAlignStatus = 'aligned' | 'trace-only' | 'set-aside' | 'not-compared';

/** One event of the imported trace, formatted for the trace column and its card. Every string is the trace's own text. */
export interface TraceEventRow {
  /** Index in the merged trace (the order of `tdxsim import --json`'s `trace`). */
  id: number;
  file: string;
  line: number;
  /** Greater than `line` for a wrapped line. */
  endLine: number;
  ts: string | null;
  cpu: number | null;
  comm: string | null;
  pid: number | null;
  /** `vcpu0`, `vm` (the VMM's other threads) or `dmesg`. */
  thread: string;
  /** The event name as written in the line. */
  event: string;
  payload: string;
  /** The decoded fields that matter, as `name=value` (hex as the importer decoded it). */
  fields: string;
  status: TraceAlignStatus;
  /** Why a set-aside event was set aside (`host exit`, `woken HLT`). */
  reason: string | null;
  /** The model step it aligns with (status `aligned`), else null. */
  seq: number | null;
  /** The divergence (index into TraceInfo.divergences) whose hunk holds it. */
  divergence: number | null;
  /** One fault of a livelock signature: which one (index into TraceInfo.livelocks), and which fault of it (1-based). */
  livelock: { index: number; fault: number; of: number } | null;
}

/** Where reality and the model part (src/import/divergence.ts), with both ends. */
export interface TraceDivergence {
  index: number;
  /** `fault-retried`, `seamcall-status`, …; `trace-ends` is a note, not a divergence. */
  kind: string;
  divergence: boolean;
  thread: string;
  message: string;
  hint: string | null;
  /** The trace end: its event (null when the trace has none there; then the nearest line), file and line. */
  trace: { id: number | null; file: string; line: number } | null;
  /** The model end: the step. */
  seq: number | null;
  /** The events of its hunk on each side: trace event ids, and the model steps. */
  traceEvents: number[];
  modelSteps: number[];
}

export interface TraceLivelock {
  /** Found in the trace, or in the model's run. */
  side: 'trace' | 'model';
  thread: string;
  gpa: string;
  /** The faults: trace event ids (side `trace`) or model steps (side `model`). */
  faults: number[];
  /** For a trace livelock: whether the model loops there too. */
  modelToo: boolean;
  text: string;
}

/**
 * Where each trace event goes in the sequence view, in trace order: `[id, step, 0]` on the row of the
 * step it aligns with, `[id, step, 1]` between rows, after step `step`: an event with no model partner
 * goes after the step of the last event before it on its vCPU thread, else after its divergence's model
 * step, else after the step of the event before it in the trace.
 */
export type TracePlacement = [id: number, seq: number, between: 0 | 1];

/** `GET /api/trace`: the imported trace, without its events (`/api/trace-events` serves those in chunks). */
export interface TraceInfo extends TraceSummary {
  scenario: { name: string; file: string | null; yaml: string; notes: { file: string | null; line: number | null; message: string }[] };
  /** Event names compared with the model (those the trace recorded and the model speaks about). */
  compared: string[];
  divergences: TraceDivergence[];
  livelocks: TraceLivelock[];
  placement: TracePlacement[];
}

/** What the model's run would have traced at one step, each with the trace event it aligns with. */
export interface ModelTraceRow {
  /** `kvm_page_fault: vcpu 1 rip 0x0 address 0x… error_code 0x2`, as `tdxsim export --format trace-cmd` prints it. */
  text: string;
  thread: string;
  trace: number | null;
  status: 'aligned' | 'model-only' | 'set-aside' | 'not-compared';
  divergence: number | null;
}

/** A message the scheduler could deliver next. */
export interface ChoiceRow {
  /** Index among the enabled messages (the log's `choice`). */
  index: number;
  from: string;
  to: string;
  label: string;
  fields: string;
  /** The log delivered this one next. */
  taken: boolean;
}

export interface ChoicesResult {
  /** The step the choice is for (the one after the step shown). */
  step: number;
  choices: ChoiceRow[];
}

export interface SteerResult {
  log: string;
  steps: number;
  step: number;
}

/** One changed entry of a page table between two steps, both sides decoded as the state panel decodes them. */
export interface TableChange {
  field: string;
  kind: 'spte' | 'sept';
  pfn: string;
  index: string;
  level: number | null;
  /** Null: the entry was absent (its page's default, `absent`). */
  old: { entry: string; kind: string; decoded: string } | null;
  new: { entry: string; kind: string; decoded: string } | null;
  absent: string;
}

export interface ActorDiff {
  id: string;
  machine: string;
  stateA: string;
  stateB: string;
  statusA: string;
  statusB: string;
  /** Changed context leaves, by dotted path (page tables excluded: see `tables`). */
  paths: { path: string; old: string; new: string }[];
  tables: TableChange[];
  /** Entries left out past the per-actor limit. */
  truncated: number;
}

export interface DiffResult {
  a: number;
  b: number;
  actors: ActorDiff[];
}

/** A statechart with the compound states off the active path collapsed. */
export interface CollapsedChart {
  layout: StatechartLayout;
  /** Compound states drawn collapsed (their inside left out). */
  collapsed: string[];
}

export interface LiveUpdate {
  steps: number;
  live: boolean;
}

export interface StatechartsResponse {
  /** Machine id → layout (the same data the SVG export draws). */
  machines: Record<string, StatechartLayout>;
}
