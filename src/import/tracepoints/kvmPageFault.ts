/**
 * kvm:kvm_page_fault (arch/x86/kvm/trace.h): `address %lx error_code %x` in old kernels, `vcpu %u rip 0x%lx
 * address 0x%016llx error_code 0x%llx` since v6.3 (the vCPU and RIP, a 64-bit error code). For a TD it
 * comes from tdx_handle_ept_violation once per exit, before the local-retry loop: the address is the GPA
 * the TDX module reported (R8, bits 11:0 clear), the "error code" the exit qualification KVM goes on with —
 * EPT_VIOLATION_ACC_WRITE for every private GPA, the module's qualification for a shared one.
 */
import type { Tracepoint } from './tracepoint.ts';
import { hx, hxPad, readHex } from './printf.ts';

const NEW = /^vcpu (\d+) rip (0x[0-9a-fA-F]+) address (0x[0-9a-fA-F]+) error_code (0x[0-9a-fA-F]+)$/;
const OLD = /^address ([0-9a-fA-F]+) error_code ([0-9a-fA-F]+)$/;

export const kvmPageFault: Tracepoint<'kvm_page_fault'> = {
  event: 'kvm_page_fault',
  parse(payload) {
    const p = payload.trim();
    const n = NEW.exec(p);
    if (n) return { name: 'kvm_page_fault', vcpu: Number(n[1]), rip: readHex(n[2]!), address: readHex(n[3]!), errorCode: readHex(n[4]!), layout: 'new' };
    const o = OLD.exec(p);
    if (o) return { name: 'kvm_page_fault', vcpu: null, rip: null, address: readHex(o[1]!), errorCode: readHex(o[2]!), layout: 'old' };
    return null;
  },
  format(d) {
    return `vcpu ${d.vcpu ?? 0} rip ${hx(d.rip ?? 0n)} address ${hxPad(d.address, 16)} error_code ${hx(d.errorCode)}`;
  },
};
