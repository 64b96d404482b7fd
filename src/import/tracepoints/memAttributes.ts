/**
 * kvm:kvm_vm_set_mem_attributes (include/trace/events/kvm.h): `%#016llx -- %#016llx [0x%lx]`, the GFN range
 * [start, end) and the attributes of a KVM_SET_MEMORY_ATTRIBUTES (KVM_MEMORY_ATTRIBUTE_PRIVATE = 0x8). A
 * TD's MapGPA shows up here: QEMU answers the KVM_EXIT_HYPERCALL with this ioctl on the vCPU's thread. The
 * `%#` conversion prints a zero without `0x`. A posted variant printed `gfn 0x%llx, cnt 0x%llx, attributes
 * 0x%llx`; both are read.
 */
import type { Tracepoint } from './tracepoint.ts';
import { altHexPad, hx, readHex } from './printf.ts';

const RANGE = /^(?:\.\s*)?((?:0x)?[0-9a-fA-F]+) -- ((?:0x)?[0-9a-fA-F]+) \[(0x[0-9a-fA-F]+)\]$/;
const COUNT = /^gfn (0x[0-9a-fA-F]+), cnt (0x[0-9a-fA-F]+), attributes (0x[0-9a-fA-F]+)$/;

export const kvmSetMemAttributes: Tracepoint<'kvm_vm_set_mem_attributes'> = {
  event: 'kvm_vm_set_mem_attributes',
  parse(payload) {
    const p = payload.trim();
    const r = RANGE.exec(p);
    if (r) return { name: 'kvm_vm_set_mem_attributes', start: readHex(r[1]!), end: readHex(r[2]!), attributes: readHex(r[3]!) };
    const c = COUNT.exec(p);
    if (c) return { name: 'kvm_vm_set_mem_attributes', start: readHex(c[1]!), end: readHex(c[1]!) + readHex(c[2]!), attributes: readHex(c[3]!) };
    return null;
  },
  format(d) {
    return `${altHexPad(d.start, 16)} -- ${altHexPad(d.end, 16)} [${hx(d.attributes)}]`;
  },
};
