/**
 * The ACPI power-management I/O block of QEMU's q35 machine (the ICH9 LPC bridge), as far as a guest's
 * power-off needs it. Firmware (OVMF/TDVF) places the PM block at 0x600; PM1a_CNT is at offset 4. A write
 * with SLP_EN (bit 13) set enters the sleep type in bits 12:10, and QEMU's acpi_pm1_cnt_write treats type
 * 0 as soft power-off (S5): qemu_system_shutdown_request(SHUTDOWN_CAUSE_GUEST_SHUTDOWN).
 */
export const ICH9_PMIO_BASE = 0x600;
export const ICH9_PMIO_PM1_CNT = 0x04;
export const ACPI_PM1A_CNT_PORT = ICH9_PMIO_BASE + ICH9_PMIO_PM1_CNT;
export const ACPI_BITMASK_SLEEP_ENABLE = 0x2000;
export const ACPI_SLP_TYP_SHIFT = 10;
export const ACPI_SLP_TYP_MASK = 0x7;
/** The value Linux writes for S5 on q35 (its DSDT's \_S5 package gives SLP_TYP 0). */
export const ACPI_PM1_CNT_POWEROFF = ACPI_BITMASK_SLEEP_ENABLE;

/**
 * What a write to an I/O port means for the machine: PM1a_CNT's soft power-off; any other write to the PM
 * control register is the PM device's (a sleep state the model does not have); other ports are unassigned.
 */
export function portWriteEffect(port: number, size: number, value: bigint): 'poweroff' | 'pm' | 'unassigned' {
  if (port !== ACPI_PM1A_CNT_PORT) return 'unassigned';
  const v = Number(value & 0xffffn);
  if (size < 2 || (v & ACPI_BITMASK_SLEEP_ENABLE) === 0) return 'pm';
  return ((v >> ACPI_SLP_TYP_SHIFT) & ACPI_SLP_TYP_MASK) === 0 ? 'poweroff' : 'pm';
}

/** The ICH9 PM I/O block is 128 bytes (ICH9_PMIO_SIZE). */
export const ICH9_PMIO_SIZE = 0x80;

/**
 * What an IN from a port reads: QEMU's unassigned I/O handler answers all ones; the PM block's registers
 * read 0 here, the state the model gives them (it keeps no PM status or enable bits).
 */
export function portRead(port: number, size: number): bigint {
  const mask = (1n << BigInt(size * 8)) - 1n;
  return port >= ICH9_PMIO_BASE && port < ICH9_PMIO_BASE + ICH9_PMIO_SIZE ? 0n : mask;
}
