/** Reading whole trace files: frames, payloads, wrapped lines, unknown events, malformed lines, threads, merging. */
import { describe, expect, it } from 'vitest';
import { parseTraceFiles, parseTraceText } from '../../src/import/parseTrace.ts';
import { fixture } from './helpers.ts';

describe('reading trace files', () => {
  it('a trace-cmd report of a TD doing MMIO: events, unknown ones counted, the vCPU thread found', () => {
    const t = parseTraceFiles([fixture('td-mmio.trace-cmd.txt')]);
    expect(t.files).toEqual([{ file: 'examples/traces/td-mmio.trace-cmd.txt', format: 'trace-cmd', lines: 36, events: 33 }]);
    expect(t.diagnostics).toEqual([]);
    expect(t.unknown).toEqual({ sched_switch: 2, kvm_fpu: 2, kvm_apicv_accept_irq: 1 });
    expect(t.vcpus).toEqual([{ vcpu: 0, pid: 7741, comm: 'CPU 0/KVM' }]);
    const attrs = t.events.find((e) => e.data.name === 'kvm_vm_set_mem_attributes')!;
    expect(attrs.thread).toBe('vm');
    expect(attrs.frame).toEqual({ ts: '2875.114202', cpu: 2, comm: 'qemu-system-x86', pid: 7713 });
    // kworker's sched_switch is not the vCPU's, even though it ran on the same CPU.
    expect(t.events.filter((e) => e.event === 'sched_switch').map((e) => e.thread)).toEqual(['vcpu0', 'vm']);
    expect(t.events.filter((e) => e.data.name === 'kvm_exit').map((e) => (e.data as { reasonName: string }).reasonName)).toEqual(['EPT_VIOLATION', 'EPT_MISCONFIG', 'EXTERNAL_INTERRUPT', 'EPT_MISCONFIG', 'EPT_MISCONFIG', 'HLT']);
  });

  it('joins a wrapped line back to its event, and says which lines it spans', () => {
    const t = parseTraceFiles([fixture('td-mmio.trace-cmd.txt')]);
    const wrapped = t.events.find((e) => e.src!.line !== e.src!.endLine)!;
    expect(wrapped.src).toEqual({ file: 'examples/traces/td-mmio.trace-cmd.txt', line: 25, endLine: 26 });
    expect(wrapped.data).toMatchObject({ name: 'kvm_exit', reasonName: 'EPT_MISCONFIG', info1: 0xffccn, intrInfo: 0, errorCode: 0 });
  });

  it('a line broken in the middle of a number is joined without the space', () => {
    const text = ['cpus=1', '  CPU 0/KVM-1 [000]     1.000000: kvm_page_fault:      vcpu 0 rip 0x0 address 0x00000000002', '00000 error_code 0x2'].join('\n');
    const r = parseTraceText({ file: 't.txt', text });
    expect(r.diagnostics).toEqual([]);
    expect(r.events[0]!.data).toMatchObject({ address: 0x200000n, errorCode: 2n });
  });

  it('malformed lines are diagnostics with file and line; the rest is read', () => {
    const text = [
      'cpus=1',
      '  CPU 0/KVM-1 [000]     1.000000: kvm_entry:           vcpu 0, rip 0x0',
      '  CPU 0/KVM-1 [000]     1.000001: kvm_exit:            vcpu 0 reason EPT_VIOLATION rip garbage',
      'this line is nobody\'s',
      '  CPU 0/KVM-1 [000]     1.000002: kvm_mystery:         anything at all',
    ].join('\n');
    const r = parseTraceText({ file: 'bad.txt', text });
    expect(r.diagnostics).toEqual([
      { file: 'bad.txt', line: 3, message: 'kvm_exit: the payload matches no layout of the tracepoint: "vcpu 0 reason EPT_VIOLATION rip garbage"' },
      { file: 'bad.txt', line: 4, message: 'not a trace-cmd line, nor the rest of the kvm_exit line above: "this line is nobody\'s"' },
    ]);
    expect(r.events.map((e) => e.data.name)).toEqual(['kvm_entry', 'unknown']);
  });

  it('raw ftrace with four flag columns and the tgid column, in the layouts of an older TDX host', () => {
    const t = parseTraceFiles([fixture('td-accept-mapgpa.ftrace.txt')]);
    expect(t.files[0]).toMatchObject({ format: 'ftrace', lines: 37, events: 26 });
    expect(t.diagnostics).toEqual([]);
    expect(t.events.find((e) => e.data.name === 'kvm_page_fault')!.data).toMatchObject({ layout: 'old', vcpu: null, address: 0x200000n });
    expect(t.events.find((e) => e.data.name === 'kvm_entry')!.data).toMatchObject({ vcpu: 0, rip: null });
    expect(t.events.filter((e) => e.data.name === 'kvm_exit').map((e) => (e.data as { reasonName: string }).reasonName)).toEqual(['EPT_VIOLATION', '0x4d', 'EPT_VIOLATION', 'HLT']);
  });

  it('the oldest kvm_exit layout has no vCPU id: the thread comes from QEMU\'s thread name', () => {
    const t = parseTraceFiles([fixture('vmx-mmio-oldest.ftrace.txt')]);
    expect(t.vcpus).toEqual([{ vcpu: 0, pid: 3301, comm: 'CPU 0/KVM' }]);
    expect(t.events.filter((e) => e.data.name === 'kvm_exit').every((e) => e.thread === 'vcpu0' && (e.data as { layout: string }).layout === 'info')).toBe(true);
  });

  it('perf script: system:event names, two vCPU threads', () => {
    const t = parseTraceFiles([fixture('ept-retry-loop.perf.txt')]);
    expect(t.files[0]).toMatchObject({ format: 'perf', events: 41 });
    expect(t.vcpus.map((v) => [v.vcpu, v.pid])).toEqual([
      [0, 9301],
      [1, 9302],
    ]);
    expect(new Set(t.events.map((e) => e.event))).toEqual(new Set(['kvm_vm_set_mem_attributes', 'kvm_entry', 'kvm_exit', 'kvm_page_fault', 'kvm_mmu_spte_requested', 'kvm_tdp_mmu_spte_changed', 'kvm_mmu_set_spte']));
  });

  it('a trace and its dmesg merge by timestamp: the SEAMCALL failure lands between the fault and KVM_RUN\'s -EIO', () => {
    const t = parseTraceFiles([fixture('demote-split.trace-cmd.txt'), fixture('demote-tlb-tracking.dmesg')]);
    expect(t.files.map((f) => f.format)).toEqual(['trace-cmd', 'dmesg']);
    const names = t.events.map((e) => e.data.name);
    const err = names.indexOf('tdx_seamcall_error');
    expect(names.slice(err - 1, err + 1)).toEqual(['kvm_page_fault', 'tdx_seamcall_error']);
    expect(names.indexOf('kvm_userspace_exit')).toBeGreaterThan(err);
    expect(t.events[err]!.thread).toBe('dmesg');
    expect(t.events.filter((e) => e.data.name === 'printk')).toHaveLength(12);
  });
});
