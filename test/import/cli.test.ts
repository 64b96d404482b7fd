/** `tdxsim import` and `tdxsim export --format trace-cmd` as a user calls them: output, files written, exit codes. */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { readLog } from '../../src/log/reader.ts';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { TRACES } from './helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'tdxsim-import-'));
const trace = (name: string) => path.join(TRACES, name);

function run(...args: string[]): { code: number; out: string[]; err: string } {
  const out: string[] = [];
  let err = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    err += String(s);
    return true;
  });
  try {
    return { code: main(args, (l) => out.push(l)), out, err };
  } finally {
    spy.mockRestore();
  }
}

describe('tdxsim import', () => {
  it('exit 0 without a divergence; the scenario it writes runs with tdxsim run, the log replays', () => {
    const scenario = path.join(dir, 'mmio.yaml');
    const log = path.join(dir, 'mmio.log.jsonl');
    const r = run('import', trace('td-mmio.trace-cmd.txt'), '--scenario-out', scenario, '--log', log);
    expect(r.code).toBe(0);
    expect(r.out.at(-1)).toBe("no divergence: every compared trace event has its counterpart in the model's run, in order");
    expect(r.out).toContain(`# scenario import-td-mmio-trace-cmd: TD, GPAW 48, SEPT_VE_DISABLE, 1 vCPU(s), 1 MMIO device(s), 0 image page(s) → ${scenario}`);
    expect(loadScenarioFile(scenario).scenario.devices).toHaveLength(1);
    expect(run('run', scenario, '--log', path.join(dir, 'rerun.log.jsonl')).code).toBe(0);
    expect(readLog(log).end?.outcome.status).toBe('ok');
    expect(run('replay', log, '--verify').code).toBe(0);
  });

  it('exit 1 with a divergence, named by trace line and model step', () => {
    const r = run('import', trace('ept-retry-loop.perf.txt'), '--scenario-out', path.join(dir, 'loop.yaml'));
    expect(r.code).toBe(1);
    const first = r.out.find((l) => l.startsWith('first divergence: '));
    expect(first).toMatch(/^first divergence: .*ept-retry-loop\.perf\.txt:17 \(vcpu1\) ↔ model step \d+: fault-retried$/);
    expect(r.out.some((l) => l.startsWith('livelock signature: vcpu1 faulted 7 times in a row on 0x201000'))).toBe(true);
  });

  it('several files of one run, and --json', () => {
    const r = run('import', trace('demote-split.trace-cmd.txt'), trace('demote-tlb-tracking.dmesg'), '--scenario-out', path.join(dir, 'demote.yaml'), '--json');
    expect(r.code).toBe(1);
    expect(r.out).toHaveLength(1);
    const j = JSON.parse(r.out[0]!) as { inputs: { format: string }[]; divergences: { kind: string; message: string }[]; firstDivergence: number };
    expect(j.inputs.map((i) => i.format)).toEqual(['trace-cmd', 'dmesg']);
    expect(j.divergences[j.firstDivergence]!.kind).toBe('seamcall-status');
    expect(j.divergences[j.firstDivergence]!.message).toContain('TDH.MEM.PAGE.DEMOTE failing with TDX_TLB_TRACKING_NOT_DONE');
  });

  it('malformed lines: warnings naming file and line, or with --strict errors, exit 2 and nothing written', () => {
    const bad = path.join(dir, 'bad.txt');
    const text = readFileSync(trace('td-mmio.trace-cmd.txt'), 'utf8').split('\n');
    text.splice(6, 0, '  CPU 0/KVM-7741 [005]  2875.331026: kvm_page_fault:      vcpu 0 rip 0x0 address oops');
    writeFileSync(bad, text.join('\n'));
    const scenario = path.join(dir, 'strict.yaml');
    const strict = run('import', bad, '--strict', '--scenario-out', scenario);
    expect(strict.code).toBe(2);
    expect(strict.err).toContain(`${bad}:7: kvm_page_fault: the payload matches no layout of the tracepoint: "vcpu 0 rip 0x0 address oops"\n`);
    expect(existsSync(scenario)).toBe(false);
    const lax = run('import', bad, '--scenario-out', scenario);
    expect(lax.code).toBe(0);
    expect(lax.err).toContain(`tdxsim: warning: ${bad}:7: kvm_page_fault: the payload matches no layout`);
    expect(lax.out).toContain('# events: kvm_entry 6, kvm_exit 6, kvm_mmio 5, kvm_tdp_mmu_spte_changed 4, kvm_userspace_exit 3, kvm_mmu_spte_requested 1, kvm_page_fault 1, kvm_vm_set_mem_attributes 1, mark_mmio_spte 1; 5 of unknown events kept (kvm_fpu 2, sched_switch 2, kvm_apicv_accept_irq 1); 1 malformed line(s)');
  });

  it('input it cannot use is exit 2: a missing file, a file with no KVM event, a format it does not know', () => {
    expect(run('import', path.join(dir, 'nope.txt')).code).toBe(2);
    const empty = path.join(dir, 'empty.txt');
    writeFileSync(empty, '# tracer: nop\n  bash-1 [000] 1.000000: sched_switch: prev_comm=bash\n');
    const r = run('import', empty);
    expect(r.code).toBe(2);
    expect(r.err).toContain('no KVM or TDX event to import (1 event(s) of unknown kinds)');
    expect(run('import', trace('td-mmio.trace-cmd.txt'), '--format', 'systemtap').code).toBe(2);
  });

  it('--format forces the frame format', () => {
    const r = run('import', trace('td-mmio.trace-cmd.txt'), '--format', 'perf', '--scenario-out', path.join(dir, 'x.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toContain('not a perf line');
  });
});

describe('tdxsim export --format trace-cmd', () => {
  it('prints the log as trace-cmd report lines, the same each time', () => {
    const a = run('export', 'mmio-ve', '--format', 'trace-cmd');
    const b = run('export', 'mmio-ve', '--format', 'trace-cmd');
    expect(a.code).toBe(0);
    expect(a.out).toEqual(b.out);
    const lines = a.out.join('\n').split('\n');
    expect(lines[0]).toBe('cpus=2');
    expect(lines[2]).toBe('  CPU 0/KVM-4201 [000]     0.000065: kvm_entry:           vcpu 0, rip 0x0');
    expect(lines).toContain('  CPU 0/KVM-4201 [000]     0.000073: kvm_exit:            vcpu 0 reason EPT_VIOLATION rip 0x0 info1 0x0000000000000001 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000');
    expect(lines.filter((l) => l.includes('reason EPT_MISCONFIG'))).toHaveLength(3);
  });

  it('--out writes the file, which imports back without a divergence', () => {
    const out = path.join(dir, 'tp.txt');
    expect(run('export', 'td-poweroff', '--format', 'trace-cmd', '--out', out).code).toBe(0);
    expect(run('import', out, '--scenario-out', path.join(dir, 'tp.yaml')).code).toBe(0);
  });
});
