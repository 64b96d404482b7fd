/** Replaying fixtures through the model and saying where reality and the model part. */
import { describe, expect, it } from 'vitest';
import { importTraces, type ImportResult } from '../../src/import/importTrace.ts';
import { reportJson, reportText } from '../../src/import/report.ts';
import { fixture, stormTrace } from './helpers.ts';

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
    expect(f.trace!.src).toEqual({ file: 'test/fixtures/traces/ept-retry-loop.perf.txt', line: 17, endLine: 17 });
    // The model's step is where it maps the GPA: the leaf SPTE for GFN 0x201 on vCPU 1's thread.
    const leaf = r.model.find((e) => e.thread === 'vcpu1' && e.data.name === 'kvm_tdp_mmu_spte_changed' && e.data.gfn === 0x201n && e.data.level === 1)!;
    expect(f.seq).toBe(leaf.seq);
    const newSpte = (leaf.data as { newSpte: bigint }).newSpte;
    expect(f.message).toBe(`the trace faults on 0x201000 again after re-entering (test/fixtures/traces/ept-retry-loop.perf.txt:17), where the model resolves it: kvm_tdp_mmu_spte_changed gfn 0x201 level 1 0x8000000000000000 → 0x${newSpte.toString(16)} at step ${leaf.seq}`);
    expect(f.hint).toContain('--policy localRetry=off');
    expect(r.livelocks.trace).toHaveLength(1);
    const l = r.livelocks.trace[0]!;
    expect([l.thread, l.gpa, l.spteEventsRecorded, l.countsForZeroStep]).toEqual(['vcpu1', 0x201000n, true, true]);
    expect(l.faults.map((e) => e.src!.line)).toEqual([14, 18, 22, 27, 31, 35, 39]);
    expect(r.livelocks.model).toEqual([]);
    const text = reportText(r, files);
    expect(text).toContain(`first divergence: test/fixtures/traces/ept-retry-loop.perf.txt:17 (vcpu1) ↔ model step ${leaf.seq}: fault-retried`);
    expect(text.find((l) => l.startsWith('livelock signature:'))).toBe(
      'livelock signature: vcpu1 faulted 7 times in a row on 0x201000 (test/fixtures/traces/ept-retry-loop.perf.txt lines 14, 18, 22, 27, 31, 35, 39), re-entered each time, and no SPTE for GFN 0x201 changed in between: the livelock signature; that is enough fruitless entries for the TDX module\'s zero-step mitigation (6, §7.5) if the RIP did not move; the model does not loop there',
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
      `a SEAMCALL status the model would not return: the trace has TDH.MEM.PAGE.DEMOTE failing with TDX_TLB_TRACKING_NOT_DONE (test/fixtures/traces/demote-tlb-tracking.dmesg:1); the model's TDH.MEM.PAGE.DEMOTE at step ${demote.seq} returned TDX_SUCCESS`,
    );
    expect(f.hint).toContain('--policy kickAfterTrack=off');
  });

  it('the same DEMOTE with the trace of the run: the dmesg line first, then KVM_RUN\'s -EIO where the model goes on splitting', () => {
    const r = importTraces([fixture('demote-split.trace-cmd.txt'), fixture('demote-tlb-tracking.dmesg')]);
    expect(r.first!.kind).toBe('seamcall-status');
    const rest = r.divergences.filter((d) => d.kind !== 'trace-ends' && d !== r.first);
    expect(rest.map((d) => [d.kind, d.thread, d.trace?.src?.line])).toEqual([['event-differs', 'vcpu0', 15]]);
    expect(rest[0]!.message).toMatch(/^the trace has kvm_userspace_exit: reason error \(5\) \(test\/fixtures\/traces\/demote-split.trace-cmd.txt:15\) where the model has kvm_tdp_mmu_spte_changed gfn 0x200 level 2 /);
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
