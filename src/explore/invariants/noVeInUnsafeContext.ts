/**
 * No #VE reaches a guest vCPU in a context where the kernel cannot take one (Documentation/arch/x86/tdx.rst,
 * "#VE on memory accesses"): in the syscall gap the kernel still runs on the user stack with the user GS,
 * and at NMI entry the handler has not yet set up its stack, so a #VE there is fatal. Linux avoids them by
 * never touching memory that can #VE there (its text, stacks and data are private and accepted, and
 * SEPT_VE_DISABLE turns unaccepted-page touches into TD exits); the check says when a scenario reaches one.
 */
import type { GuestVcpuContext } from '../../../machines/guest/guestVcpu.ts';
import { contextOf, type Invariant } from './invariant.ts';

export const noVeInUnsafeContext: Invariant = {
  name: 'no-ve-in-unsafe-context',
  description: 'no #VE is delivered to a guest vCPU while it is in the syscall gap or at NMI entry (a #VE there cannot be handled)',
  // The #VE's receiver, after it: the delivery's own data.
  footprint: {},
  check(model, _before, after, m) {
    if (m.name !== '#VE' || !m.to.startsWith('guest.vcpu')) return null;
    const g = contextOf<GuestVcpuContext>(model, after, m.to);
    if (g.unsafeContext === null) return null;
    const i = g.program[g.pc];
    return `${m.to} takes a #VE in the ${g.unsafeContext}${i === undefined ? '' : ` at RIP 0x${i.rip.toString(16)}`}: the kernel cannot handle it there`;
  },
};
