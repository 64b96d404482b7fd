/**
 * A register-file MMIO device, the kind a VMM emulates (a virtio-mmio or PCI BAR region): reads return the
 * register at the offset, truncated to the access width; writes replace it.
 */
import { sizeMask } from '../guest/program.ts';

export interface MmioDevice {
  name: string;
  /** Guest-physical base as userspace sees it (no shared bit). */
  base: bigint;
  size: bigint;
  /** Register offset → value. */
  regs: Readonly<Record<string, bigint>>;
}

const key = (offset: bigint) => '0x' + offset.toString(16);

export function findDevice(devices: readonly MmioDevice[], addr: bigint): MmioDevice | undefined {
  return devices.find((d) => addr >= d.base && addr < d.base + d.size);
}

export function deviceRead(d: MmioDevice, addr: bigint, len: number): bigint {
  return (d.regs[key(addr - d.base)] ?? 0n) & sizeMask(len);
}

export function deviceWrite(d: MmioDevice, addr: bigint, len: number, data: bigint): MmioDevice {
  return { ...d, regs: { ...d.regs, [key(addr - d.base)]: data & sizeMask(len) } };
}
