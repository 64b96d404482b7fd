/**
 * The guest never maps a page private while the page is shared (195edce08b63's rule): a private guest PTE —
 * shared bit clear — whose GFN has no PRIVATE memory attribute in KVM is a mapping through which any access,
 * load_unaligned_zeropad's stray one included, is a private access to a page the TD does not own, which no
 * #VE handler can recover from. Checked where either side changes: a guest PTE write and KVM's attribute
 * store (SET_ATTRIBUTES).
 *
 * The other mismatch, a shared PTE over a private page, is not a violation: Linux passes through it in both
 * directions of a conversion (set_memory_decrypted switches the PTE before MapGPA, set_memory_encrypted after
 * MapGPA and accept), and an access through it is a shared-EPT fault KVM answers (a recoverable #VE or
 * KVM_EXIT_MEMORY_FAULT), not a loss of the TD.
 *
 * The guest's order is not the only way to reach the violation: a VMM that converts on KVM_EXIT_MEMORY_FAULT
 * (QEMU) can make a page shared after the guest took it back, when the exit of a stray shared access from
 * another vCPU reaches it late (example zeropad-during-conversion) — a real race, not a transient to allow.
 */
import { gpaToGfn } from '../../arch/gpa.ts';
import { hex } from '../../arch/hex.ts';
import type { GuestKernelContext } from '../../../machines/guest/guestKernel.ts';
import type { TdpMmuContext } from '../../../machines/kvm/tdpMmu.ts';
import { attributeIsPrivate } from '../../../machines/kvm/memAttributes.ts';
import type { Message } from '../../protocol/messages.ts';
import { contextOf, type Invariant } from './invariant.ts';

const bothSides = (a: string): boolean => a === 'guest.kernel' || a === 'kvm.mmu';
const relevant = (m: Message): boolean => (m.name === 'GUEST_PTE_WRITE' && m.to === 'guest.kernel') || (m.name === 'SET_ATTRIBUTES' && m.to === 'kvm.mmu');

export const guestPteMatchesAttribute: Invariant = {
  name: 'guest-pte-matches-attribute',
  description: "no private guest PTE (shared bit clear) maps a GFN whose memory attribute is shared: the guest never believes private a page the TD does not own",
  // Checked at deliveries to either side, reading both; every other delivery is null.
  footprint: { on: bothSides, reads: bothSides, fast: (v) => (relevant(v.delivered) ? guestPteMatchesAttribute.check(v.model, v.before(), v.after(), v.delivered) : null) },
  check(model, _before, after, m) {
    if (!relevant(m) || !model.indexOf.has('guest.kernel')) return null;
    const k = contextOf<GuestKernelContext>(model, after, 'guest.kernel');
    const mmu = contextOf<TdpMmuContext>(model, after, 'kvm.mmu');
    for (const [va, e] of Object.entries(k.pageTables)) {
      if (e.shared || attributeIsPrivate(mmu.privateRanges, gpaToGfn(e.gpa))) continue;
      return `guest PTE for va ${va} = ${hex(e.pte)} maps GPA ${hex(e.gpa)} private, but KVM's attribute for GFN ${hex(gpaToGfn(e.gpa))} is shared (after ${m.from} → ${m.to} ${m.name})`;
    }
    return null;
  },
};
