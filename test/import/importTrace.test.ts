/** Replaying fixtures through the model and saying where reality and the model part. */
import { describe, expect, it } from 'vitest';
import { importTraces, type ImportResult } from '../../src/import/importTrace.ts';
import { reportJson, reportText } from '../../src/import/report.ts';
import { fixture, stormTrace } from './helpers.ts';
import { traceCmdReport } from '../../src/export/traceCmd.ts';
import { runInMemory } from '../../src/session/open.ts';

const comparedReal = (r: ImportResult) => [...r.alignment.streams.real.values()].reduce((n, s) => n + s.length, 0);
const files = { scenario: null, log: null };

describe('traces the model agrees with', () => {
  it.each([['td-mmio.trace-cmd.txt'], ['td-accept-mapgpa.ftrace.txt'], ['vmx-mmio-oldest.ftrace.txt']])('%s: no divergence, every compared event aligned', (name) => {
    const r = importTraces([fixture(name)]);
    expect(r.first).toBeNull();
    expect(r.divergences.filter((d) => d.kind !== 'trace-ends')).toEqual([]);
    expect(r.alignment.pairs.length).toBe(comparedReal(r));
    expect(r.alignment.pairs.length).toBeGreaterThan(15);
    expect(reportText(r, files)).toContain("no divergence: every compared trace event has its counterpart in the model's run, in order");
  });

  it('the host\'s own exits (an external interrupt and the entry after it) are set aside, not compared', () => {
    const r = importTraces([fixture('td-mmio.trace-cmd.txt')]);
    const aside = [...r.alignment.aside].filter(([e, why]) => e.src !== null && why === 'host exit').map(([e]) => e.src!.line);
    expect(aside).toEqual([23, 24]);
  });

  it('the 2M accept storm: 512 TD exits and AUGs, each aligned with the model\'s', () => {
    const r = importTraces([stormTrace()]);
    expect(r.first).toBeNull();
    expect(r.alignment.pairs).toHaveLength(3082);
    const exits = r.model.filter((e) => e.data.name === 'kvm_exit' && e.data.reasonName === 'EPT_VIOLATION');
    expect(exits).toHaveLength(512);
    expect(r.model.filter((e) => e.data.name === 'kvm_mmu_set_spte' && e.thread === 'vcpu0')).toHaveLength(512);
  });
});

describe('where they part', () => {
  it('an EPT-violation retry loop: the trace faults again where the model maps; the livelock signature', () => {
    const r = importTraces([fixture('ept-retry-loop.perf.txt')]);
    const f = r.first!;
    expect(f.kind).toBe('fault-retried');
    expect(f.thread).toBe('vcpu1');
    expect(f.trace!.src).toEqual({ file: 'examples/traces/ept-retry-loop.perf.txt', line: 17, endLine: 17 });
    // The model's step is where it maps the GPA: the leaf SPTE for GFN 0x201 on vCPU 1's thread.
    const leaf = r.model.find((e) => e.thread === 'vcpu1' && e.data.name === 'kvm_tdp_mmu_spte_changed' && e.data.gfn === 0x201n && e.data.level === 1)!;
    expect(f.seq).toBe(leaf.seq);
    const newSpte = (leaf.data as { newSpte: bigint }).newSpte;
    expect(f.message).toBe(`the trace faults on 0x201000 again after re-entering (examples/traces/ept-retry-loop.perf.txt:17), where the model resolves it: kvm_tdp_mmu_spte_changed gfn 0x201 level 1 0x8000000000000000 → 0x${newSpte.toString(16)} at step ${leaf.seq}`);
    expect(f.hint).toContain('--policy localRetry=off');
    expect(r.livelocks.trace).toHaveLength(1);
    const l = r.livelocks.trace[0]!;
    expect([l.thread, l.gpa, l.spteEventsRecorded, l.countsForZeroStep]).toEqual(['vcpu1', 0x201000n, true, true]);
    expect(l.faults.map((e) => e.src!.line)).toEqual([14, 18, 22, 27, 31, 35, 39]);
    expect(r.livelocks.model).toEqual([]);
    const text = reportText(r, files);
    expect(text).toContain(`first divergence: examples/traces/ept-retry-loop.perf.txt:17 (vcpu1) ↔ model step ${leaf.seq}: fault-retried`);
    expect(text.find((l) => l.startsWith('livelock signature:'))).toBe(
      'livelock signature: vcpu1 faulted 7 times in a row on 0x201000 (examples/traces/ept-retry-loop.perf.txt lines 14, 18, 22, 27, 31, 35, 39), re-entered each time, and no SPTE for GFN 0x201 changed in between: the livelock signature; that is enough fruitless entries for the TDX module\'s zero-step mitigation (6, §7.5) if the RIP did not move; the model does not loop there',
    );
  });

  it('a DEMOTE that failed with TDX_TLB_TRACKING_NOT_DONE in a bare dmesg: a status the model would not return', () => {
    const r = importTraces([fixture('demote-tlb-tracking.dmesg')]);
    const f = r.first!;
    const demote = r.log.events.find((e) => e.kind === 'seamcall-return' && e.name === 'TDH.MEM.PAGE.DEMOTE')!;
    expect(f.kind).toBe('seamcall-status');
    expect(f.trace!.src!.line).toBe(1);
    expect(f.seq).toBe(demote.seq);
    expect(f.message).toBe(
      `a SEAMCALL status the model would not return: the trace has TDH.MEM.PAGE.DEMOTE failing with TDX_TLB_TRACKING_NOT_DONE (examples/traces/demote-tlb-tracking.dmesg:1); the model's TDH.MEM.PAGE.DEMOTE at step ${demote.seq} returned TDX_SUCCESS`,
    );
    expect(f.hint).toContain('--policy kickAfterTrack=off');
  });

  it('the same DEMOTE with the trace of the run: the dmesg line first, then KVM_RUN\'s -EIO where the model goes on splitting', () => {
    const r = importTraces([fixture('demote-split.trace-cmd.txt'), fixture('demote-tlb-tracking.dmesg')]);
    expect(r.first!.kind).toBe('seamcall-status');
    const rest = r.divergences.filter((d) => d.kind !== 'trace-ends' && d !== r.first);
    expect(rest.map((d) => [d.kind, d.thread, d.trace?.src?.line])).toEqual([['event-differs', 'vcpu0', 15]]);
    expect(rest[0]!.message).toMatch(/^the trace has kvm_userspace_exit: reason error \(5\) \(examples\/traces\/demote-split.trace-cmd.txt:15\) where the model has kvm_tdp_mmu_spte_changed gfn 0x200 level 2 /);
    // vCPU 1 only ran the guest in the trace; the model's placeholder then halts: not a divergence.
    expect(r.divergences.find((d) => d.kind === 'trace-ends')!.thread).toBe('vcpu1');
  });

  it('the JSON report: trace events with their lines and the model steps they align with, divergences with both ends', () => {
    const r = importTraces([fixture('ept-retry-loop.perf.txt')]);
    const j = JSON.parse(JSON.stringify(reportJson(r, { scenario: 's.yaml', log: null }))) as {
      format: string;
      trace: { id: number; line: number; thread: string; name: string; fields: Record<string, unknown>; align: { status: string; seq?: number; model?: number } }[];
      modelTrace: { id: number; seq: number; align: { status: string; trace?: number } }[];
      divergences: { kind: string; trace: { line: number; id: number | null }; model: { seq: number; id: number | null } }[];
      firstDivergence: number;
      livelocks: { trace: { lines: { line: number }[]; gpa: string }[] };
    };
    expect(j.format).toBe('tdxsim-import-report');
    const entry = j.trace.find((e) => e.line === 2)!;
    expect(entry).toMatchObject({ thread: 'vcpu0', name: 'kvm_entry', fields: { vcpu: 0, rip: '0x0' }, align: { status: 'aligned' } });
    expect(j.modelTrace[entry.align.model!]!.seq).toBe(entry.align.seq);
    expect(j.modelTrace[entry.align.model!]!.align).toEqual({ status: 'aligned', trace: entry.id });
    const first = j.divergences[j.firstDivergence]!;
    expect(first).toMatchObject({ kind: 'fault-retried', trace: { line: 17 } });
    expect(j.modelTrace[first.model.id!]!.seq).toBe(first.model.seq);
    expect(j.trace.filter((e) => e.align.status === 'trace-only').length).toBeGreaterThan(0);
    expect(j.livelocks.trace[0]!.gpa).toBe('0x201000');
  });
});

describe('divergences in an edited export', () => {
  /** An example's run printed as a trace, with `edit` applied to its lines. */
  function edited(example: string, edit: (lines: string[]) => string[]): ImportResult {
    const { log, file } = runInMemory(example);
    const lines = traceCmdReport(log, file).trimEnd().split('\n');
    return importTraces([{ file: `${example}.txt`, text: edit(lines).join('\n') + '\n' }]);
  }

  it('an exit the model would not take: a CPUID TDVMCALL the guest made between two MMIO accesses', () => {
    const r = edited('mmio-ve', (lines) => {
      const i = lines.findIndex((l) => l.includes('reason EPT_MISCONFIG'));
      const cpuid = lines[i]!.replace('reason EPT_MISCONFIG', 'reason CPUID');
      const entry = lines.slice(0, i).reverse().find((l) => l.includes('kvm_entry:'))!;
      return [...lines.slice(0, i), cpuid, entry, ...lines.slice(i)];
    });
    expect(r.first).toMatchObject({ kind: 'exit-not-taken', thread: 'vcpu0' });
    expect(r.first!.trace!.src!.line).toBe(r.trace.events.find((e) => e.data.name === 'kvm_exit' && e.data.reasonName === 'CPUID')!.src!.line);
    expect(r.first!.message).toMatch(/^an exit the model would not take: kvm_exit CPUID at mmio-ve\.txt:\d+; the model goes straight on to kvm_exit EPT_MISCONFIG at step \d+$/);
    expect(r.built.notes.some((n) => n.message === "a CPUID exit: the model's guest has no instruction for it, so it is left out")).toBe(true);
  });

  it('an exit that differs: the trace\'s ACCEPT exit reports another S-EPT level than the model\'s', () => {
    // private-accept's ACCEPT exit: EEQ info error level 1 (the image page's walk built the levels above).
    const r = edited('private-accept', (lines) => lines.map((l) => l.replace('info2 0x0000000800000001', 'info2 0x0000001800000001')));
    expect(r.first).toMatchObject({ kind: 'exit-differs', thread: 'vcpu0' });
    expect(r.first!.message).toMatch(/^the trace exits with kvm_exit EPT_VIOLATION \(qual 0x2, EEQ 0x1800000001\) \(private-accept\.txt:\d+\) where the model exits with kvm_exit EPT_VIOLATION \(qual 0x2, EEQ 0x800000001\) \(step \d+\)$/);
  });

  it('a conversion traced as kvm_hypercall KVM_HC_MAP_GPA_RANGE is a mapGpa', () => {
    const r = edited('mapgpa-round-trip', (lines) => {
      // A kernel that traced the hypercall: put it where the TDCALL's userspace exit is.
      const i = lines.findIndex((l) => l.includes('KVM_EXIT_HYPERCALL'));
      return [...lines.slice(0, i), lines[i]!.replace(/kvm_userspace_exit:.*/, 'kvm_hypercall:       nr 0xc a0 0x200000 a1 0x1 a2 0x0 a3 0x0'), ...lines.slice(i)];
    });
    expect(r.scenario.vcpus[0]!.program.filter((o) => o.op === 'mapGpa')).toEqual([
      { op: 'mapGpa', gpa: 0x200000n, size: 0x1000n, to: 'shared' },
      { op: 'mapGpa', gpa: 0x200000n, size: 0x1000n, to: 'private' },
    ]);
  });
});
