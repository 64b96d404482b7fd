/** The line frame of each trace format, and telling the formats apart. */
import { describe, expect, it } from 'vitest';
import { detectFormat, isHeaderLine, matchFrame, renderTraceCmdLine } from '../../src/import/frame.ts';

describe('line frames', () => {
  it('ftrace: task-pid with spaces and a slash, CPU, five-column latency flags, timestamp, event', () => {
    const f = matchFrame('       CPU 0/KVM-4242    [003] d..1.   812.100000: kvm_exit: vcpu 0 reason HLT', 'ftrace');
    expect(f).toEqual({ frame: { ts: '812.100000', cpu: 3, comm: 'CPU 0/KVM', pid: 4242 }, event: 'kvm_exit', payload: 'vcpu 0 reason HLT' });
  });

  it('ftrace: four-column flags and the (tgid) column of record-tgid', () => {
    const f = matchFrame('  CPU 0/KVM-6133 (   6120) [001] d..1   153.200100: kvm_entry: vcpu 0', 'ftrace');
    expect(f?.frame).toEqual({ ts: '153.200100', cpu: 1, comm: 'CPU 0/KVM', pid: 6133 });
    expect(f?.payload).toBe('vcpu 0');
  });

  it('trace-cmd report: no flags column, the event name padded', () => {
    const f = matchFrame('  qemu-system-x86-7713  [002]  2875.114202: kvm_userspace_exit:  reason KVM_EXIT_MMIO (6)', 'trace-cmd');
    expect(f).toEqual({ frame: { ts: '2875.114202', cpu: 2, comm: 'qemu-system-x86', pid: 7713 }, event: 'kvm_userspace_exit', payload: 'reason KVM_EXIT_MMIO (6)' });
  });

  it('perf script: comm, tid (or pid/tid), optional CPU, system:event', () => {
    expect(matchFrame('       CPU 1/KVM  9302 [006]   512.000105: kvm:kvm_entry: vcpu 1, rip 0x0', 'perf')).toEqual({
      frame: { ts: '512.000105', cpu: 6, comm: 'CPU 1/KVM', pid: 9302 },
      event: 'kvm_entry',
      payload: 'vcpu 1, rip 0x0',
    });
    expect(matchFrame('qemu-kvm 4100/4133   88.000001: kvmmmu:kvm_mmu_spte_requested: gfn 200 pfn 1 level 1', 'perf')?.frame).toEqual({ ts: '88.000001', cpu: null, comm: 'qemu-kvm', pid: 4133 });
  });

  it('dmesg: plain, with the log level (-r), with the caller id, with -T and from syslog', () => {
    expect(matchFrame('[ 1203.548031] kvm_intel: SEAMCALL x', 'dmesg')).toEqual({ frame: { ts: '1203.548031', cpu: null, comm: null, pid: null }, event: 'dmesg', payload: 'kvm_intel: SEAMCALL x' });
    expect(matchFrame('<3>[ 1203.548031] kvm_intel: y', 'dmesg')?.payload).toBe('kvm_intel: y');
    expect(matchFrame('[ 1203.548031][ T8812] kvm_intel: z', 'dmesg')?.frame.pid).toBe(8812);
    expect(matchFrame('[Mon Jan  5 10:11:12 2026] kvm_intel: w', 'dmesg')?.payload).toBe('kvm_intel: w');
    expect(matchFrame('Jan  5 10:11:12 host7 kernel: [ 1203.548031] kvm_intel: v', 'dmesg')).toMatchObject({ frame: { ts: '1203.548031' }, payload: 'kvm_intel: v' });
  });

  it('headers and comments are no events', () => {
    for (const l of ['# tracer: nop', 'cpus=8', 'version = 7', 'CPU 3 is empty', '']) expect(isHeaderLine(l)).toBe(true);
    expect(isHeaderLine('  CPU 0/KVM-1 [000] 1.000000: kvm_entry: vcpu 0')).toBe(false);
  });

  it('detects the format from the lines: flags or a tracer header say ftrace', () => {
    const tc = ['cpus=2', '  CPU 0/KVM-1 [000]     1.000000: kvm_entry:           vcpu 0, rip 0x0'];
    const ft = ['# tracer: nop', '  CPU 0/KVM-1 [000] d..1.    1.000000: kvm_entry: vcpu 0, rip 0x0'];
    const perf = ['       CPU 0/KVM     1 [000]     1.000000: kvm:kvm_entry: vcpu 0, rip 0x0'];
    const dmesg = ['[    1.000000] Linux version 6.16', '[    2.000000] virt/tdx: module initialized'];
    expect(detectFormat(tc)).toBe('trace-cmd');
    expect(detectFormat(ft)).toBe('ftrace');
    expect(detectFormat(perf)).toBe('perf');
    expect(detectFormat(dmesg)).toBe('dmesg');
    expect(detectFormat(['hello', 'world'])).toBeNull();
  });

  it('renders trace-cmd report lines that read back as they were written', () => {
    const frame = { ts: '0.000051', cpu: 0, comm: 'CPU 0/KVM', pid: 4201 };
    const line = renderTraceCmdLine(frame, 'kvm_entry', 'vcpu 0, rip 0x0');
    expect(line).toBe('  CPU 0/KVM-4201 [000]     0.000051: kvm_entry:           vcpu 0, rip 0x0');
    expect(matchFrame(line, 'trace-cmd')).toEqual({ frame, event: 'kvm_entry', payload: 'vcpu 0, rip 0x0' });
  });
});
