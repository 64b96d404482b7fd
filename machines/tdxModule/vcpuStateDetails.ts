/**
 * TDH.VP.RD of TD_VCPU_STATE_DETAILS_NON_ARCH (TDX module 1.5 and later): bit 0, VMXIP, tells the host
 * that the vCPU's virtual APIC holds an interrupt that would be delivered were its interrupts enabled —
 * RVI's priority class above the virtual PPR — which KVM has no other way to learn (it cannot read vIRR
 * or RVI of a TD). The guest-interrupt status lives with the CPU while the TD runs (machines/hw/cpu.ts),
 * so the module reads it there, as it reads VE_INFO.
 */

/** TDVPS_STATE_NON_ARCH(TD_VCPU_STATE_DETAILS_NON_ARCH): NON_ARCH bit 63 | class 17 (other guest state) << 56 | 0x100. */
export const TD_VCPU_STATE_DETAILS_NON_ARCH_FIELD = (1n << 63n) | (17n << 56n) | 0x100n;
/** TDX_VCPU_STATE_DETAILS_INTR_PENDING: VMXIP. */
export const TDX_VCPU_STATE_DETAILS_INTR_PENDING = 1n << 0n;

/** TDVPS_MANAGEMENT(TD_VCPU_PEND_NMI): class 32 << 56 | 11; bit 0 set asks for a virtual NMI. */
export const TDVPS_PEND_NMI_FIELD = (32n << 56n) | 11n;

/** SDM 30.2.1's evaluation on the status the CPU reported: RVI[7:4] > VPPR[7:4] (no TPR in the model). */
export function vcpuStateDetails(rvi: number, svi: number): bigint {
  return rvi >> 4 > svi >> 4 ? TDX_VCPU_STATE_DETAILS_INTR_PENDING : 0n;
}
