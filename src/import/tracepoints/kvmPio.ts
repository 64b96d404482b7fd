/**
 * kvm:kvm_pio (arch/x86/kvm/trace.h): `pio_%s at 0x%x size %d count %d` in old kernels, then with
 * ` val 0x%x %s` (the first value, and `(...)` for a string I/O of several). The current layout ends in a
 * space when count is 1. For a TD it comes from tdx_emulate_io's pio_in/out_emulated, i.e. from
 * TDG.VP.VMCALL<Instruction.IO>.
 */
import type { Tracepoint } from './tracepoint.ts';
import { hx, readHex } from './printf.ts';

const LAYOUT = /^pio_(read|write) at (0x[0-9a-fA-F]+) size (\d+) count (\d+)(?: val (0x[0-9a-fA-F]+)(?: \(\.\.\.\))?)?$/;

export const kvmPio: Tracepoint<'kvm_pio'> = {
  event: 'kvm_pio',
  parse(payload) {
    const m = LAYOUT.exec(payload.trim());
    if (!m) return null;
    return {
      name: 'kvm_pio',
      rw: m[1] as 'read' | 'write',
      port: Number(readHex(m[2]!)),
      size: Number(m[3]),
      count: Number(m[4]),
      val: m[5] === undefined ? null : Number(readHex(m[5])),
    };
  },
  format(d) {
    return `pio_${d.rw} at ${hx(d.port)} size ${d.size} count ${d.count} val ${hx(d.val ?? 0)} ${d.count > 1 ? '(...)' : ''}`;
  },
};
