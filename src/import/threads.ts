/**
 * Which vCPU thread recorded each real event. kvm_entry, kvm_exit and kvm_page_fault name their vCPU in
 * current layouts; the task that recorded them is that vCPU's KVM_RUN thread, so every other event of the
 * same task (SPTE changes of its faults, kvm_mmio, the VMM's KVM_SET_MEMORY_ATTRIBUTES for its MapGPA, a
 * printk from its exit handler) belongs to that vCPU too. Layouts without the vCPU id fall back on QEMU's
 * thread name (`CPU 3/KVM`), then on the order in which the tasks first enter the guest. Everything else is
 * the VMM's (`vm`); a dmesg line has no thread unless its caller id (CONFIG_PRINTK_CALLER) is a vCPU's task.
 */
import type { Thread, TraceEvent } from './traceEvent.ts';

const QEMU_VCPU_COMM = /^CPU (\d+)\/KVM$/;

export interface VcpuThread {
  vcpu: number;
  pid: number;
  comm: string | null;
}

/** Sets `thread` on every event; returns the vCPU threads found, by vCPU id. */
export function assignThreads(events: TraceEvent[]): VcpuThread[] {
  const byPid = new Map<number, VcpuThread>();
  const claim = (pid: number, vcpu: number, comm: string | null) => {
    if (!byPid.has(pid) && ![...byPid.values()].some((t) => t.vcpu === vcpu)) byPid.set(pid, { vcpu, pid, comm });
  };
  const runs = (e: TraceEvent) => e.data.name === 'kvm_entry' || e.data.name === 'kvm_exit' || e.data.name === 'kvm_page_fault';
  for (const e of events) {
    if (e.frame.pid === null || !runs(e)) continue;
    const id = (e.data as { vcpu: number | null }).vcpu;
    if (id !== null) claim(e.frame.pid, id, e.frame.comm);
  }
  for (const e of events) {
    if (e.frame.pid === null || !runs(e) || byPid.has(e.frame.pid)) continue;
    const m = e.frame.comm === null ? null : QEMU_VCPU_COMM.exec(e.frame.comm);
    if (m) claim(e.frame.pid, Number(m[1]), e.frame.comm);
  }
  for (const e of events) {
    if (e.frame.pid === null || !runs(e) || byPid.has(e.frame.pid)) continue;
    let next = 0;
    while ([...byPid.values()].some((t) => t.vcpu === next)) next++;
    claim(e.frame.pid, next, e.frame.comm);
  }
  for (const e of events) {
    const t = e.frame.pid === null ? undefined : byPid.get(e.frame.pid);
    e.thread = t !== undefined ? (`vcpu${t.vcpu}` as Thread) : e.format === 'dmesg' ? 'dmesg' : 'vm';
  }
  return [...byPid.values()].sort((a, b) => a.vcpu - b.vcpu);
}
