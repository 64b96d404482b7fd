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

export interface Summary {
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
}

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
}

export interface FindResult {
  seq: number | null;
  /** Number of matching steps in the whole log. */
  total: number;
}

export interface LiveUpdate {
  steps: number;
  live: boolean;
}

export interface StatechartsResponse {
  /** Machine id → layout (the same data the SVG export draws). */
  machines: Record<string, StatechartLayout>;
}
