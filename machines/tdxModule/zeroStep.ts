/**
 * The TDX module's zero-step (EPT-fault stepping) mitigation, §7.5: a host that keeps re-entering a vCPU
 * whose instruction faults on a private GPA, without the instruction ever completing, could single-step
 * the guest. The module counts such fruitless entries per vCPU; from the threshold on it records each
 * faulting private GPA, and every later TDH.VP.ENTER takes the S-EPT tree lock exclusively to check that
 * the recorded GPAs are mapped before it lets the guest run (the stepping filter, tdxModule.ts).
 *
 * "Same RIP as at the last entry" is known here from the exits: a fault-like or asynchronous exit leaves
 * the guest at the RIP it reported, and that is where the next entry resumes it. Every TD exit the
 * module's hardware EPT-violation handler makes for a private GPA is logged — an absent or blocked
 * page's (EEQ type NONE) and a PENDING page's with PENDING_VE_DISABLE (EEQ type PENDING_EPT_VIOLATION)
 * alike; only a #VE injected for a PENDING page is not, because the handler returns before the logging
 * (§5a.6) [TM:src/td_dispatcher/vm_exits/td_ept_violation.c]. The EPT-violation exit a
 * TDG.MEM.PAGE.ACCEPT takes (EEQ type ACCEPT, the page not AUGed yet or mapped at another level) is not
 * logged either: the VM exit was the TDCALL, and the module's accept handler exits to the VMM without the
 * bookkeeping (§5a.5), so a guest accept that KVM keeps re-entering without mapping never trips the
 * mitigation; a load or store does. A TDVMCALL exit is trap-like (RIP moves past the TDCALL), which is
 * forward progress and starts afresh.
 *
 * The count here is the module's possibly_epf_stepping less one (the module counts the first fault at a
 * RIP as 1, the model as 0), so GPAs are recorded from the same fault on: the threshold's + 1st.
 */
import { EPF_GPA_LIST_SIZE } from '../../src/arch/tdxStatus.ts';
import { walkSept } from './septTree.ts';
import type { TdMemory } from './tdMemory.ts';

export interface EpfStepping {
  /** Guest RIP the next entry resumes at, when the last exit reported one. */
  rip: bigint | null;
  /** Consecutive private EPT-violation exits at the RIP the vCPU was entered at (possibly_epf_stepping). */
  count: number;
  /** Private GPAs recorded once `count` reached the threshold (at most EPF_GPA_LIST_SIZE). */
  gpas: readonly bigint[];
  /** The GPA of the last counted fault, for monitors. */
  lastGpa: bigint | null;
}

export const NO_STEPPING: EpfStepping = { rip: null, count: 0, gpas: [], lastGpa: null };

/**
 * Past the threshold the count only matters as "at least the threshold"; it is kept up to the threshold
 * plus the list size so a monitor can still tell fruitless entries apart, and bounded so the state space
 * stays finite.
 */
export const countCap = (threshold: number): number => threshold + EPF_GPA_LIST_SIZE;

/** td_exit_epf_stepping_log: an EPT-violation TD exit for a private GPA at `rip`. */
export function logPrivateEptViolation(s: EpfStepping, rip: bigint, gpa: bigint, threshold: number): EpfStepping {
  // A different RIP means the guest got somewhere since the entry: both the count and the list restart.
  if (s.rip !== rip) return { rip, count: 0, gpas: [], lastGpa: gpa };
  const count = Math.min(s.count + 1, countCap(threshold));
  const record = count >= threshold && !s.gpas.includes(gpa) && s.gpas.length < EPF_GPA_LIST_SIZE;
  return { rip, count, gpas: record ? [...s.gpas, gpa] : s.gpas, lastGpa: gpa };
}

/**
 * An exit the module's zero-step bookkeeping does not see: the EPT-violation exit of a TDG.MEM.PAGE.ACCEPT
 * (the VM exit was a TDCALL; §5a.5). Count and list stay as they are; the next entry resumes at `rip`,
 * which a later fault compares with.
 */
export function resumeAt(s: EpfStepping, rip: bigint): EpfStepping {
  return s.rip === rip ? s : { ...s, rip };
}

/** An exit that reports the guest's RIP without being a private fault (shared fault, interrupt). */
export function noteExitRip(s: EpfStepping, rip: bigint): EpfStepping {
  return s.rip === rip ? s : { ...NO_STEPPING, rip };
}

/** The entry will need the stepping filter: GPAs were recorded since the last forward progress. */
export const steppingSuspected = (s: EpfStepping): boolean => s.gpas.length > 0;

/**
 * td_entry_stepping_filter: the first recorded GPA a full S-EPT walk does not find mapped, or null when
 * all are (the guest may enter).
 */
export function firstUnmappedGpa(td: TdMemory, s: EpfStepping): bigint | null {
  for (const gpa of s.gpas) {
    const { path } = walkSept(td.sept, td.septRoot!, td.topLevel, gpa, 0);
    if (path.at(-1)!.state !== 'MAPPED') return gpa;
  }
  return null;
}
