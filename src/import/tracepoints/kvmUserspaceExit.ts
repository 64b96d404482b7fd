/**
 * kvm:kvm_userspace_exit (include/trace/events/kvm.h): `reason %s (%d)`, traced when KVM_RUN returns. The
 * name comes from the tracepoint's own table (kvm_trace_exit_reason), which stops at KVM_EXIT_X86_WRMSR:
 * later exits such as KVM_EXIT_MEMORY_FAULT (39) and KVM_EXIT_TDX (40) print in hex (`0x27 (39)`). A
 * failed KVM_RUN prints `restart` for -EINTR and `error` otherwise, with the positive errno.
 */
import { EINTR, KVM_EXIT_MEMORY_FAULT, KVM_EXIT_NAMES, KVM_EXIT_TDX } from '../../arch/kvmApi.ts';
import type { Tracepoint } from './tracepoint.ts';
import { hx } from './printf.ts';

const LAYOUT = /^reason (\S+) \((-?\d+)\)$/;
/** Exits newer than the tracepoint's symbol table. */
const UNNAMED: ReadonlySet<number> = new Set([KVM_EXIT_MEMORY_FAULT, KVM_EXIT_TDX]);

export function userspaceExitName(reason: number): string {
  return UNNAMED.has(reason) ? hx(reason) : (KVM_EXIT_NAMES[reason] ?? hx(reason));
}

export const kvmUserspaceExit: Tracepoint<'kvm_userspace_exit'> = {
  event: 'kvm_userspace_exit',
  parse(payload) {
    const m = LAYOUT.exec(payload.trim());
    if (!m) return null;
    const name = m[1]!;
    const n = Number(m[2]);
    if (name === 'restart' || name === 'error') return { name: 'kvm_userspace_exit', reason: null, reasonName: name, errno: -Math.abs(n) };
    return { name: 'kvm_userspace_exit', reason: n, reasonName: name, errno: null };
  },
  format(d) {
    if (d.errno !== null) return `reason ${d.errno === EINTR ? 'restart' : 'error'} (${-d.errno})`;
    return `reason ${userspaceExitName(d.reason ?? 0)} (${d.reason ?? 0})`;
  },
};
