/**
 * A TD guest asks the VMM to emulate MMIO only for an access that lies within one page (§6.i step 9):
 * MMIO registers are naturally aligned, so an access that crosses a page boundary is not MMIO — it is a
 * load such as load_unaligned_zeropad() spilling into a shared page the VMM does not back, which the
 * exception fixup, not the VMM, must finish (1e7769653b06). Checked at each TDG.VP.VMCALL<#VE.RequestMMIO>
 * a guest vCPU issues, against the instruction at its RIP.
 */
import { PAGE_SIZE } from '../../arch/gpa.ts';
import { hex } from '../../arch/hex.ts';
import type { GuestVcpuContext } from '../../../machines/guest/guestVcpu.ts';
import { contextOf, type Invariant } from './invariant.ts';

const REQUEST_MMIO = 'TDG.VP.VMCALL<#VE.RequestMMIO>';

export const mmioWithinPage: Invariant = {
  name: 'mmio-within-page',
  description: 'a TD guest asks the VMM to emulate MMIO (TDG.VP.VMCALL<#VE.RequestMMIO>) only for an instruction whose access lies within one page',
  // The TDCALL reaches the guest's CPU, and the verdict reads the guest vCPU that sent it (its instruction at
  // pc); every other delivery is null.
  footprint: {
    on: (a) => a.startsWith('hw.cpu'),
    reads: (a) => a.startsWith('guest.vcpu'),
    fast: (v) => (v.delivered.name === REQUEST_MMIO ? mmioWithinPage.check(v.model, v.before(), v.after(), v.delivered) : null),
  },
  check(model, _before, after, m) {
    if (m.name !== REQUEST_MMIO || !m.from.startsWith('guest.vcpu')) return null;
    const g = contextOf<GuestVcpuContext>(model, after, m.from);
    const i = g.program[g.pc];
    if (i === undefined) return null;
    const access = i.op === 'loadUnalignedZeropad' ? { gla: i.gla, size: 8 } : i.op === 'load' || i.op === 'store' ? { gla: i.gla, size: i.size } : null;
    if (access === null || (access.gla & (PAGE_SIZE - 1n)) + BigInt(access.size) <= PAGE_SIZE) return null;
    return `${m.from} asks the VMM to emulate a ${access.size}-byte MMIO access for the instruction at RIP ${hex(i.rip)}, whose access at ${hex(access.gla)} crosses into the next page: memory taken for MMIO`;
  },
};
