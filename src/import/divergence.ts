/**
 * Where reality and the model part: each hunk of the alignment (trace-only and model-only events between
 * two aligned pairs) read as what a kernel developer would call it.
 *
 *   seamcall-status   the trace has a SEAMCALL failing with a status the model's same SEAMCALL did not return
 *   fault-retried     the trace faults on the same GPA again where the model resolved the fault (mapped it)
 *   model-retries     the reverse: the model faults again where the trace went on
 *   exit-differs      both exit, with different reasons, qualifications or EEQ
 *   exit-not-taken    the trace exits where the model does not
 *   model-exit        the model exits where the trace does not
 *   model-stopped     the model's run ended (a failure, or nothing left to run) while the trace goes on
 *   event-differs     anything else: an SPTE change, a userspace exit, MMIO data …
 *
 * A hunk of model-only events after the trace's last event on a thread is not a divergence (the trace was
 * stopped, or never recorded that thread); it is reported as `trace-ends`.
 */
import { hex } from '../arch/hex.ts';
import { gpaToGfn, pagesOfPgLevel } from '../arch/gpa.ts';
import { isLastSpte, isShadowPresentPte } from '../arch/spte.ts';
import { tdxStatusName as tdxStatusNameOf } from '../arch/tdxStatus.ts';
import type { EventRecord } from '../log/schema.ts';
import type { Alignment, Hunk } from './align.ts';
import type { Thread, TraceEvent } from './traceEvent.ts';

export type DivergenceKind = 'seamcall-status' | 'fault-retried' | 'model-retries' | 'exit-differs' | 'exit-not-taken' | 'model-exit' | 'model-stopped' | 'event-differs' | 'trace-ends';

export interface Divergence {
  kind: DivergenceKind;
  thread: Thread;
  /** The trace event where it starts (null when the trace has none there). */
  trace: TraceEvent | null;
  /** The model step where it starts: its first model-only event, else the model's position there. */
  seq: number | null;
  modelEvent: TraceEvent | null;
  message: string;
  hint: string | null;
  hunk: Hunk;
}

/** What a status usually means, and which policy switch makes the model return it (src/policies.ts). */
const STATUS_HINTS: readonly [RegExp, string][] = [
  [/^TDX_TLB_TRACKING_NOT_DONE/, 'the blocked entry\'s TLB epoch was not retired: a vCPU was still running in it (§7.4). The model returns it when KVM does not kick every vCPU after TDH.MEM.TRACK while another vCPU is in the guest: --policy kickAfterTrack=off'],
  [/^TDX_OPERAND_BUSY/, 'a try-lock in the TDX module was taken (§7.2): by a vCPU in TDH.VP.ENTER (TD_EPOCH, SEPT_TREE) or a guest TDCALL holding the entry (RCX). KVM retries a zap once after kicking every vCPU (tdh_do_no_vcpus, §7.3); --policy zapBusyKickRetry=off makes the first BUSY fatal'],
  [/^TDX_EPT_WALK_FAILED/, 'the S-EPT walk stopped above the requested level: a parent level was missing (§5a.4 step 4); --policy freezeMirrorSpte=off lets one vCPU walk into a mirror page table whose S-EPT page is not added yet'],
  [/^TDX_GPA_RANGE_NOT_BLOCKED/, 'REMOVE or DEMOTE on an entry that was not blocked first (§7.4)'],
  [/^TDX_EPT_ENTRY_STATE_INCORRECT/, 'the S-EPT entry was in a state the SEAMCALL does not take (sept-state-legality.md); an AUG at 2M over a split page table is one way: --policy globalGuestInhibit=off'],
];

function statusHint(statusName: string): string | null {
  return STATUS_HINTS.find(([re]) => re.test(statusName))?.[1] ?? null;
}

function describe(e: TraceEvent): string {
  const d = e.data;
  switch (d.name) {
    case 'kvm_exit':
      return `kvm_exit ${d.reasonName}${d.reasonName === 'EPT_VIOLATION' ? ` (qual ${hex(d.info1)}, EEQ ${hex(d.info2)})` : ''}`;
    case 'kvm_page_fault':
      return `kvm_page_fault ${hex(d.address)}`;
    case 'kvm_tdp_mmu_spte_changed':
      return `kvm_tdp_mmu_spte_changed gfn ${hex(d.gfn)} level ${d.level} ${hex(d.oldSpte)} → ${hex(d.newSpte)}`;
    case 'tdx_seamcall_error':
      return `SEAMCALL ${d.leafName ?? d.printed} → ${d.statusName}`;
    default:
      return `${e.event}: ${e.payload}`;
  }
}

const where = (e: TraceEvent | null) => (e === null ? '' : e.src !== null ? `${e.src.file}:${e.src.line}` : `step ${e.seq}`);

/** The last kvm_page_fault before `index` in a thread's compared stream (since its last exit of another kind). */
function faultBefore(stream: readonly { e: TraceEvent }[] | undefined, index: number): bigint | null {
  if (stream === undefined) return null;
  for (let i = index - 1; i >= 0; i--) {
    const d = stream[i]!.e.data;
    if (d.name === 'kvm_page_fault') return d.address;
    if (d.name === 'kvm_exit' && d.reasonName !== 'EPT_VIOLATION') return null;
  }
  return null;
}

/** From `index` on: the next EPT-violation exit and its fault, or null if another exit comes first. */
function nextFault(stream: readonly { e: TraceEvent }[] | undefined, index: number): { exit: TraceEvent; fault: TraceEvent } | null {
  if (stream === undefined) return null;
  let exit: TraceEvent | null = null;
  for (let i = index; i < stream.length; i++) {
    const e = stream[i]!.e;
    const d = e.data;
    if (d.name === 'kvm_exit') {
      if (exit !== null || d.reasonName !== 'EPT_VIOLATION') return null;
      exit = e;
    }
    if (d.name === 'kvm_page_fault' && exit !== null) return { exit, fault: e };
  }
  return null;
}

/** The SPTE event that maps `gpa` with a leaf (the fault resolved), if any. */
const maps = (list: readonly TraceEvent[], gpa: bigint) =>
  list.find((e) => {
    const d = e.data;
    const gfn = gpaToGfn(gpa);
    const covers = (g: bigint, level: number) => gfn >= g && gfn < g + pagesOfPgLevel(level);
    if (d.name === 'kvm_mmu_set_spte') return covers(d.gfn, d.level);
    if (d.name === 'mark_mmio_spte') return d.gfn === gfn;
    return d.name === 'kvm_tdp_mmu_spte_changed' && isShadowPresentPte(d.newSpte) && isLastSpte(d.newSpte, d.level) && covers(d.gfn, d.level);
  });

export interface ClassifyContext {
  alignment: Alignment;
  /** The model's log, to say what its SEAMCALLs returned. */
  logEvents: readonly EventRecord[];
  /** How the model's run ended, for model-stopped. */
  outcome: { status: string; reason: string | null };
}

function seamcallReturns(ctx: ClassifyContext, leaf: string, thread: Thread, from: number, to: number): EventRecord[] {
  const actor = thread.startsWith('vcpu') ? `kvm.vcpu${thread.slice(4)}` : null;
  return ctx.logEvents.filter((e) => e.kind === 'seamcall-return' && e.name === leaf && (actor === null || e.to === actor) && e.seq > from && e.seq <= to);
}

export function classifyHunk(h: Hunk, ctx: ClassifyContext): Divergence {
  const R = h.real;
  const M = h.model;
  const anchorSeq = M[0]?.seq ?? h.after?.model.seq ?? h.before?.model.seq ?? null;
  const base = { thread: h.thread, trace: R[0] ?? null, seq: anchorSeq, modelEvent: M[0] ?? null, hunk: h };
  const realStream = ctx.alignment.streams.real.get(h.thread);

  const err = R.find((e) => e.data.name === 'tdx_seamcall_error');
  if (err !== undefined && err.data.name === 'tdx_seamcall_error') {
    const leaf = err.data.leafName ?? err.data.printed;
    const lo = h.before?.model.seq ?? 0;
    const hi = h.after?.model.seq ?? Number.MAX_SAFE_INTEGER;
    let returns = seamcallReturns(ctx, leaf, h.thread, lo, hi);
    if (returns.length === 0) returns = seamcallReturns(ctx, leaf, h.thread, 0, Number.MAX_SAFE_INTEGER);
    const statusOf = (r: EventRecord) => String(r.payload['RAX'] ?? '0x0');
    const said = returns.length === 0 ? `the model never calls ${leaf}` : `the model's ${leaf} at step ${returns[0]!.seq} returned ${nameStatus(statusOf(returns[0]!))}${returns.length > 1 ? ` (and ${returns.length - 1} more time${returns.length > 2 ? 's' : ''}: ${[...new Set(returns.slice(1).map((r) => nameStatus(statusOf(r))))].join(', ')})` : ''}`;
    return {
      ...base,
      kind: 'seamcall-status',
      trace: err,
      seq: returns[0]?.seq ?? anchorSeq,
      message: `a SEAMCALL status the model would not return: the trace has ${leaf} failing with ${err.data.statusName} (${where(err)}); ${said}`,
      hint: statusHint(err.data.statusName),
    };
  }

  const realAfterEnd = h.after === null && M.length > 0 && R.length === 0;
  if (realAfterEnd) {
    const message = (realStream?.length ?? 0) === 0 ? `the trace has no compared event of ${h.thread} (not recorded, or the recording started later); the model has ${M.length} from step ${M[0]!.seq}` : `the trace of ${h.thread} ends here; the model goes on for ${M.length} more event(s) from step ${M[0]!.seq}`;
    return { ...base, kind: 'trace-ends', message, hint: null };
  }
  if (h.after === null && M.length === 0) {
    const outcome = ctx.outcome.status === 'ok' ? 'with nothing left to run' : `with ${ctx.outcome.reason ?? 'a failure'}`;
    return { ...base, kind: 'model-stopped', message: `the model's ${h.thread} stops ${anchorSeq === null ? 'before doing anything' : `after step ${anchorSeq}`} (${outcome}), while the trace goes on at ${where(R[0]!)} with ${describe(R[0]!)}`, hint: null };
  }

  const modelStream = ctx.alignment.streams.model.get(h.thread);
  const prevReal = faultBefore(realStream, h.realIndex);
  const prevModel = faultBefore(modelStream, h.modelIndex);
  if (prevReal !== null && prevReal === prevModel) {
    const realAgain = nextFault(realStream, h.realIndex);
    const modelAgain = nextFault(modelStream, h.modelIndex);
    const realRetries = realAgain !== null && realAgain.fault.data.name === 'kvm_page_fault' && realAgain.fault.data.address === prevReal;
    const modelRetries = modelAgain !== null && modelAgain.fault.data.name === 'kvm_page_fault' && modelAgain.fault.data.address === prevReal;
    if (realRetries && !modelRetries) {
      const mapped = maps(M, prevReal);
      const modelSide = mapped !== undefined ? `where the model resolves it: ${describe(mapped)} at step ${mapped.seq}` : `where the model goes on${M[0] ? ` (step ${M[0].seq}: ${describe(M[0])})` : ''}`;
      return {
        ...base,
        kind: 'fault-retried',
        trace: realAgain.exit,
        seq: mapped?.seq ?? anchorSeq,
        modelEvent: mapped ?? M[0] ?? null,
        message: `the trace faults on ${hex(prevReal)} again after re-entering (${where(realAgain.exit)}), ${modelSide}`,
        hint: 'KVM re-entered without mapping the GPA: the fault ended in RET_PF_RETRY (TDX_OPERAND_BUSY from SEPT.ADD/AUG, a frozen SPTE, a stale fault) and was not retried locally (§7.3, §7.5) — the model does this with --policy localRetry=off — or the mapping it installed was zapped before the guest ran',
      };
    }
    if (modelRetries && !realRetries) {
      const mapped = maps(R, prevReal);
      return {
        ...base,
        kind: 'model-retries',
        seq: modelAgain.exit.seq ?? anchorSeq,
        modelEvent: modelAgain.exit,
        trace: mapped ?? R[0] ?? null,
        message: `the model faults on ${hex(prevReal)} again at step ${modelAgain.exit.seq}, where the trace ${mapped !== undefined ? `maps it (${where(mapped)}: ${describe(mapped)})` : 'goes on'}`,
        hint: null,
      };
    }
  }

  const rExit = R.find((e) => e.data.name === 'kvm_exit');
  const mExit = M.find((e) => e.data.name === 'kvm_exit');
  if (rExit !== undefined && mExit !== undefined && R[0] === rExit && M[0] === mExit) {
    return { ...base, kind: 'exit-differs', message: `the trace exits with ${describe(rExit)} (${where(rExit)}) where the model exits with ${describe(mExit)} (step ${mExit.seq})`, hint: null };
  }
  if (rExit !== undefined && R[0] === rExit) {
    return { ...base, kind: 'exit-not-taken', message: `an exit the model would not take: ${describe(rExit)} at ${where(rExit)}; the model ${M[0] ? `does ${describe(M[0])} at step ${M[0].seq}` : h.after ? `goes straight on to ${describe(h.after.model)} at step ${h.after.model.seq}` : 'has nothing there'}`, hint: null };
  }
  if (mExit !== undefined && M[0] === mExit) {
    return { ...base, kind: 'model-exit', message: `the model exits with ${describe(mExit)} at step ${mExit.seq}, where the trace ${R[0] ? `has ${describe(R[0])} (${where(R[0])})` : 'has nothing'}`, hint: null };
  }
  const r0 = R[0];
  const m0 = M[0];
  return {
    ...base,
    kind: 'event-differs',
    message: `${r0 ? `the trace has ${describe(r0)} (${where(r0)})` : 'the trace has nothing'} where the model has ${m0 ? `${describe(m0)} (step ${m0.seq})` : 'nothing'}`,
    hint: null,
  };
}

function nameStatus(raw: string): string {
  try {
    return tdxStatusNameOf(BigInt(raw));
  } catch {
    return raw;
  }
}

/**
 * Every divergence in trace order: by the position in the (merged) trace of the event where it starts, or
 * of the next aligned one; then by model step.
 */
export function divergencesOf(ctx: ClassifyContext, traceOrder: ReadonlyMap<TraceEvent, number>): Divergence[] {
  const all = ctx.alignment.hunks.map((h) => classifyHunk(h, ctx));
  const pos = (d: Divergence) => {
    const e = d.trace ?? d.hunk.after?.real ?? null;
    return e === null ? Number.MAX_SAFE_INTEGER : (traceOrder.get(e) ?? Number.MAX_SAFE_INTEGER);
  };
  return all.sort((a, b) => pos(a) - pos(b) || (a.seq ?? 0) - (b.seq ?? 0));
}

export function isDivergence(d: Divergence): boolean {
  return d.kind !== 'trace-ends';
}
