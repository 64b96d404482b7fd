// Hex formatting and parsing for register-sized values. Kernel developers read GPAs, SPTEs and
// status codes in hex, so every log line and error message goes through these helpers.

export const U64_MASK = (1n << 64n) - 1n;

function checkNonNegative(v: bigint | number): bigint {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) {
    throw new RangeError(`hex: ${v} is not a safe integer`);
  }
  const b = BigInt(v);
  if (b < 0n) throw new RangeError(`hex: ${v} is negative`);
  return b;
}

/** '0x' + lowercase hex without leading zeros: hex(0n) === '0x0', hex(0x92) === '0x92'. */
export function hex(v: bigint | number): string {
  return '0x' + checkNonNegative(v).toString(16);
}

/** '0x' + exactly 16 lowercase digits; the value must fit in 64 bits (an SPTE, RAX, a GPA). */
export function hex16(v: bigint): string {
  const b = checkNonNegative(v);
  if (b > U64_MASK) throw new RangeError(`hex16: ${hex(b)} does not fit in 64 bits`);
  return '0x' + b.toString(16).padStart(16, '0');
}

/** Accepts '0x…' (either case) or plain decimal digits; anything else is a RangeError naming the text. */
export function parseHex(s: string): bigint {
  if (/^0x[0-9a-f]+$/i.test(s) || /^[0-9]+$/.test(s)) return BigInt(s);
  throw new RangeError(`not a hex (0x…) or decimal number: ${JSON.stringify(s)}`);
}
