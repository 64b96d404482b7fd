/**
 * The livelock signature in a trace (§7.3, §7.5): one vCPU entered again and again into an EPT violation on
 * the same GPA, and between the first of those faults and the last no SPTE for that GFN changed on any
 * thread — KVM keeps re-entering into a fault it never resolves. Only a trace with kvmmmu events can show
 * that no SPTE changed; without them the repetition is reported as such.
 */
import { hex } from '../arch/hex.ts';
import { gpaToGfn, pagesOfPgLevel } from '../arch/gpa.ts';
import { STEPPING_EPF_THRESHOLD, TDX_EXT_EXIT_QUAL_TYPE_ACCEPT, TDX_EXT_EXIT_QUAL_TYPE_MASK } from '../arch/tdxStatus.ts';
import type { SourceRef, Thread, TraceEvent } from './traceEvent.ts';

export interface Livelock {
  thread: Thread;
  gpa: bigint;
  /** Faults on the GPA in a row, each after a fresh kvm_entry. */
  faults: TraceEvent[];
  /** Whether the trace recorded SPTE changes at all (kvmmmu events). */
  spteEventsRecorded: boolean;
  /** Hardware EPT violations (not ACCEPT exits): what the TDX module's zero-step mitigation counts. */
  countsForZeroStep: boolean;
}

/** Faults in a row before it reads as a loop rather than a retry. */
export const LIVELOCK_MIN_FAULTS = 3;

const SPTE_EVENTS = new Set(['kvm_tdp_mmu_spte_changed', 'kvm_mmu_set_spte', 'mark_mmio_spte', 'kvm_mmu_split_huge_page']);

function gfnTouched(e: TraceEvent): bigint | null {
  const d = e.data;
  switch (d.name) {
    case 'kvm_tdp_mmu_spte_changed':
    case 'kvm_mmu_set_spte':
    case 'mark_mmio_spte':
    case 'kvm_mmu_split_huge_page':
      return d.gfn;
    default:
      return null;
  }
}

/** Does an SPTE event for `gfn` (or a huge one covering it, or the shared alias) lie in events[from, to)? */
function spteChangedBetween(events: readonly TraceEvent[], from: number, to: number, gfn: bigint): boolean {
  for (let i = from; i < to; i++) {
    const g = gfnTouched(events[i]!);
    if (g === null) continue;
    const level = events[i]!.data.name === 'kvm_tdp_mmu_spte_changed' || events[i]!.data.name === 'kvm_mmu_set_spte' || events[i]!.data.name === 'kvm_mmu_split_huge_page' ? (events[i]!.data as { level: number }).level : 1;
    const span = pagesOfPgLevel(level);
    if (gfn >= g && gfn < g + span) return true;
  }
  return false;
}

export function findLivelocks(events: readonly TraceEvent[]): Livelock[] {
  const recorded = events.some((e) => SPTE_EVENTS.has(e.data.name));
  const out: Livelock[] = [];
  const runs = new Map<Thread, { gpa: bigint; faults: TraceEvent[]; idx: number[]; entered: boolean; accept: boolean } | null>();
  const flush = (t: Thread) => {
    const r = runs.get(t);
    runs.set(t, null);
    if (r === null || r === undefined || r.faults.length < LIVELOCK_MIN_FAULTS) return;
    if (recorded && spteChangedBetween(events, r.idx[0]!, r.idx.at(-1)!, gpaToGfn(r.gpa))) return;
    out.push({ thread: t, gpa: r.gpa, faults: r.faults, spteEventsRecorded: recorded, countsForZeroStep: !r.accept });
  };
  const lastExit = new Map<Thread, TraceEvent>();
  events.forEach((e, i) => {
    if (!e.thread.startsWith('vcpu')) return;
    const d = e.data;
    if (d.name === 'kvm_exit') lastExit.set(e.thread, e);
    if (d.name === 'kvm_entry') {
      const r = runs.get(e.thread);
      if (r) r.entered = true;
      return;
    }
    if (d.name !== 'kvm_page_fault') return;
    const r = runs.get(e.thread);
    const exit = lastExit.get(e.thread)?.data;
    const accept = exit?.name === 'kvm_exit' && Number(exit.info2 & TDX_EXT_EXIT_QUAL_TYPE_MASK) === TDX_EXT_EXIT_QUAL_TYPE_ACCEPT;
    if (r && r.gpa === d.address && r.entered) {
      r.faults.push(e);
      r.idx.push(i);
      r.entered = false;
      r.accept ||= accept;
      return;
    }
    flush(e.thread);
    runs.set(e.thread, { gpa: d.address, faults: [e], idx: [i], entered: false, accept });
  });
  for (const t of runs.keys()) flush(t);
  return out;
}

export function describeLivelock(l: Livelock): string {
  const lines = l.faults.map((f) => f.src?.line ?? f.seq).join(', ');
  const file = l.faults[0]!.src?.file;
  const where = file === undefined ? `steps ${lines}` : `${file} lines ${lines}`;
  const spte = l.spteEventsRecorded ? `no SPTE for GFN ${hex(gpaToGfn(l.gpa))} changed in between` : 'the trace has no kvmmmu events, so whether an SPTE changed in between is not known';
  const zeroStep =
    l.countsForZeroStep && l.faults.length >= STEPPING_EPF_THRESHOLD
      ? `; that is enough fruitless entries for the TDX module's zero-step mitigation (${STEPPING_EPF_THRESHOLD}, §7.5) if the RIP did not move`
      : '';
  return `${l.thread} faulted ${l.faults.length} times in a row on ${hex(l.gpa)} (${where}), re-entered each time, and ${spte}: the livelock signature${zeroStep}`;
}

export function faultLines(l: Livelock): SourceRef[] {
  return l.faults.flatMap((f) => (f.src === null ? [] : [f.src]));
}
