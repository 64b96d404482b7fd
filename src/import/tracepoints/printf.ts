/**
 * The printf conversions the tracepoints use, both ways: reading a printed number back and printing one
 * the way the kernel's vsnprintf would, so an exported line is byte-for-byte what TP_printk writes.
 */

/** `%llx` or `0x%llx` read back: hex digits with or without the prefix. */
export function readHex(s: string): bigint {
  return BigInt(/^0x/i.test(s) ? s : `0x${s}`);
}

/** `%llx`: hex, no prefix. */
export function x(v: bigint | number): string {
  return BigInt(v).toString(16);
}

/** `0x%llx`. */
export function hx(v: bigint | number): string {
  return `0x${x(v)}`;
}

/** `0x%0<width>llx` (the `0x` is literal, outside the width). */
export function hxPad(v: bigint | number, width: number): string {
  return `0x${x(v).padStart(width, '0')}`;
}

/**
 * `%#0<width>llx`: the alternate form counts `0x` in the width, and C prints a zero without the prefix
 * (`%#016llx` of 0 is `0000000000000000`).
 */
export function altHexPad(v: bigint, width: number): string {
  return v === 0n ? '0'.padStart(width, '0') : `0x${x(v).padStart(width - 2, '0')}`;
}

/** `%#llx`: `0x…`, or `0` for zero. */
export function altHex(v: bigint): string {
  return v === 0n ? '0' : hx(v);
}

/** A hex token as any of the conversions above prints it (`0x1f`, `1f`, `0000000000000000`). */
export const HEX = '(?:0x)?[0-9a-fA-F]+';
