/**
 * The local APIC in x2APIC mode as the model's guests use it (SDM Vol. 3A 11.12): registers are MSRs
 * 0x800 + (xAPIC offset >> 4), and the ICR is one 64-bit MSR whose bits 63:32 are the destination's x2APIC
 * ID (no separate ICR high).
 */

/** IA32_X2APIC_TPR (xAPIC offset 0x80): virtualized for a TD (TPR virtualization). */
export const MSR_X2APIC_TPR = 0x808;
/** IA32_X2APIC_EOI (0x0b0): virtualized for a TD (EOI virtualization). */
export const MSR_X2APIC_EOI = 0x80b;
/** IA32_X2APIC_ICR (0x300): not virtualized for a TD — a WRMSR of it exits to the TDX module, which injects #VE. */
export const MSR_X2APIC_ICR = 0x830;

/** ICR bits 10:8, delivery mode: 000 = fixed. */
export const APIC_DM_FIXED = 0x000;
/** ICR bit 11, destination mode: 0 = physical. */
export const APIC_DEST_PHYSICAL = 0x000;

/** The ICR value Linux's x2APIC physical-mode send writes: destination x2APIC ID in 63:32, fixed delivery, the vector. */
export function x2apicIcr(destination: number, vector: number): bigint {
  return (BigInt(destination) << 32n) | BigInt(APIC_DM_FIXED | APIC_DEST_PHYSICAL | (vector & 0xff));
}

/** The fields of a written ICR: bits 7:0 vector, 10:8 delivery mode, 11 destination mode, 19:18 shorthand, 63:32 destination. */
export function decodeX2apicIcr(icr: bigint): { vector: number; deliveryMode: number; logical: boolean; shorthand: number; destination: number } {
  const low = Number(icr & 0xffffffffn);
  return { vector: low & 0xff, deliveryMode: (low >> 8) & 7, logical: ((low >> 11) & 1) === 1, shorthand: (low >> 18) & 3, destination: Number(icr >> 32n) };
}
