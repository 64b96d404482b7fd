/**
 * kvm:kvm_hypercall (arch/x86/kvm/trace.h): `nr 0x%lx a0 0x%lx a1 0x%lx a2 0x%lx a3 0x%lx`, traced by
 * __kvm_emulate_hypercall. KVM_HC_MAP_GPA_RANGE (12) carries a conversion: a0 the GPA, a1 the number of 4K
 * pages, a2 the attributes (KVM_MAP_GPA_RANGE_ENCRYPTED for private). A TD's TDG.VP.VMCALL<MapGPA> does
 * not pass through it (tdx_map_gpa builds the KVM_EXIT_HYPERCALL itself); a TDVMCALL with R10 != 0 does.
 */
import type { Tracepoint } from './tracepoint.ts';
import { hx, readHex } from './printf.ts';

const LAYOUT = /^nr (0x[0-9a-fA-F]+) a0 (0x[0-9a-fA-F]+) a1 (0x[0-9a-fA-F]+) a2 (0x[0-9a-fA-F]+) a3 (0x[0-9a-fA-F]+)$/;

export const kvmHypercall: Tracepoint<'kvm_hypercall'> = {
  event: 'kvm_hypercall',
  parse(payload) {
    const m = LAYOUT.exec(payload.trim());
    if (!m) return null;
    return { name: 'kvm_hypercall', nr: readHex(m[1]!), args: [readHex(m[2]!), readHex(m[3]!), readHex(m[4]!), readHex(m[5]!)] };
  },
  format(d) {
    return `nr ${hx(d.nr)} a0 ${hx(d.args[0])} a1 ${hx(d.args[1])} a2 ${hx(d.args[2])} a3 ${hx(d.args[3])}`;
  },
};
