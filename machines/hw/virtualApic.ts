/**
 * The virtual APIC state a TD vCPU's CPU keeps while the TD runs (SDM 30.1, 30.2): the virtual-APIC page's
 * IRR and ISR (256 bits each, bit N = vector N) and the guest-interrupt status of the TD VMCS, RVI (the
 * highest vector requesting service) and SVI (the highest in service). The TPR is never written by the
 * model's guests, so the virtual PPR is SVI's priority class. Pure functions; machines/hw/cpu.ts owns the state.
 */

export interface VirtualApic {
  virr: bigint;
  isr: bigint;
  /** Requesting virtual interrupt: the highest vIRR vector, 0 if none. */
  rvi: number;
  /** Servicing virtual interrupt: the highest ISR vector, 0 if none. */
  svi: number;
}

export const NO_VIRTUAL_INTERRUPTS: VirtualApic = { virr: 0n, isr: 0n, rvi: 0, svi: 0 };

/** The highest set bit of a 256-bit vector register, or 0. */
export function highestVector(bits: bigint): number {
  return bits === 0n ? 0 : bits.toString(2).length - 1;
}

/** Posted-interrupt processing (SDM 30.6): PIR is ORed into vIRR and RVI recomputed. */
export function takePir(a: VirtualApic, pir: bigint): VirtualApic {
  const virr = a.virr | pir;
  return { ...a, virr, rvi: highestVector(virr) };
}

/**
 * Evaluation of pending virtual interrupts (SDM 30.2.1): RVI[7:4] > VPPR[7:4]. This is also what the TDX
 * module reports as VMXIP in TD_VCPU_STATE_DETAILS_NON_ARCH bit 0.
 */
export function virtualInterruptPending(a: VirtualApic): boolean {
  return a.rvi >> 4 > a.svi >> 4;
}

/** Virtual-interrupt delivery (SDM 30.2.2): RVI's vector leaves vIRR for ISR; SVI and RVI move. */
export function acceptVirtualInterrupt(a: VirtualApic): { apic: VirtualApic; vector: number } {
  const vector = a.rvi;
  const bit = 1n << BigInt(vector);
  const virr = a.virr & ~bit;
  const isr = a.isr | bit;
  return { vector, apic: { virr, isr, rvi: highestVector(virr), svi: vector } };
}

/** EOI virtualization (SDM 30.1.4): SVI's bit leaves ISR and SVI becomes the next highest in service. */
export function virtualEoi(a: VirtualApic): VirtualApic {
  const isr = a.isr & ~(1n << BigInt(a.svi));
  return { ...a, isr, svi: highestVector(isr) };
}
