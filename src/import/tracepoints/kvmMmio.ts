/**
 * kvm:kvm_mmio and kvm:kvm_fast_mmio (include/trace/events/kvm.h, arch/x86/kvm/trace.h): `mmio %s len %u gpa
 * 0x%llx val 0x%llx` with `unsatisfied-read`, `read` or `write`. A read that goes to userspace is traced
 * twice: `unsatisfied-read` (val 0) before KVM_EXIT_MMIO, `read` with the data when KVM_RUN completes it.
 * For a TD the GPA is the one of TDG.VP.VMCALL<#VE.RequestMMIO> with the shared bit cleared
 * (tdx_emulate_mmio).
 */
import type { Tracepoint } from './tracepoint.ts';
import { hx, readHex } from './printf.ts';

const MMIO = /^mmio (unsatisfied-read|read|write) len (\d+) gpa (0x[0-9a-fA-F]+) val (0x[0-9a-fA-F]+)$/;
const FAST = /^fast mmio at gpa (0x[0-9a-fA-F]+)$/;

export const kvmMmio: Tracepoint<'kvm_mmio'> = {
  event: 'kvm_mmio',
  parse(payload) {
    const m = MMIO.exec(payload.trim());
    if (!m) return null;
    return { name: 'kvm_mmio', type: m[1] as 'unsatisfied-read' | 'read' | 'write', len: Number(m[2]), gpa: readHex(m[3]!), val: readHex(m[4]!) };
  },
  format(d) {
    return `mmio ${d.type} len ${d.len} gpa ${hx(d.gpa)} val ${hx(d.val)}`;
  },
};

export const kvmFastMmio: Tracepoint<'kvm_fast_mmio'> = {
  event: 'kvm_fast_mmio',
  parse(payload) {
    const m = FAST.exec(payload.trim());
    return m ? { name: 'kvm_fast_mmio', gpa: readHex(m[1]!) } : null;
  },
  format(d) {
    return `fast mmio at gpa ${hx(d.gpa)}`;
  },
};
