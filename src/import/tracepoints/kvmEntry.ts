/**
 * kvm:kvm_entry (arch/x86/kvm/trace.h). Three layouts over time: `vcpu %u` (until v5.9), `vcpu %u, rip
 * 0x%lx` (v5.10 on), and the same with `[immediate exit]` appended when KVM forces an exit right after entry
 * (v6.9 on). TDX calls it in tdx_vcpu_run just before TDH.VP.ENTER; for a TD whose state is protected
 * KVM cannot read the guest RIP, so it prints 0.
 */
import type { Tracepoint } from './tracepoint.ts';
import { hx, readHex } from './printf.ts';

const LAYOUT = /^vcpu (\d+)(?:, rip (0x[0-9a-fA-F]+))?(\[immediate exit\])?$/;

export const kvmEntry: Tracepoint<'kvm_entry'> = {
  event: 'kvm_entry',
  parse(payload) {
    const m = LAYOUT.exec(payload.trim());
    if (!m) return null;
    return { name: 'kvm_entry', vcpu: Number(m[1]), rip: m[2] === undefined ? null : readHex(m[2]), immediateExit: m[3] !== undefined };
  },
  format(d) {
    return `vcpu ${d.vcpu ?? 0}, rip ${hx(d.rip ?? 0n)}${d.immediateExit ? '[immediate exit]' : ''}`;
  },
};
