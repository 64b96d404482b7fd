/**
 * Strict UTF-8 decoding for input files. Node's default decoder turns every invalid byte into U+FFFD
 * silently, so a scenario would run with a name or value the user never wrote; here the first invalid
 * byte is found and reported at its line instead.
 */
import { isUtf8 } from 'node:buffer';

export type Decoded = { ok: true; text: string } | { ok: false; line: number; column: number; byte: number };

/** The text, or where the first invalid byte sits: 1-based line and column (in bytes) and its value. */
export function decodeUtf8(bytes: Uint8Array): Decoded {
  // The common case is one native pass; the byte-by-byte walk runs only for a file that fails it.
  if (isUtf8(bytes)) return { ok: true, text: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8') };
  const at = firstInvalidByte(bytes);
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < at; i++) {
    if (bytes[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { ok: false, line, column: at - lineStart + 1, byte: bytes[at]! };
}

/** Offset of the first byte that does not start or continue a well-formed sequence (RFC 3629, table 3-7 of Unicode). */
export function firstInvalidByte(b: Uint8Array): number {
  const cont = (i: number, lo = 0x80, hi = 0xbf) => i < b.length && b[i]! >= lo && b[i]! <= hi;
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    let n: number;
    if (c < 0x80) n = 1;
    else if (c >= 0xc2 && c <= 0xdf) n = cont(i + 1) ? 2 : 0;
    else if (c === 0xe0) n = cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0; // no overlong forms
    else if (c === 0xed) n = cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0; // no UTF-16 surrogates
    else if (c >= 0xe1 && c <= 0xef) n = cont(i + 1) && cont(i + 2) ? 3 : 0;
    else if (c === 0xf0) n = cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    else if (c >= 0xf1 && c <= 0xf3) n = cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    else if (c === 0xf4) n = cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0; // ≤ U+10FFFF
    else n = 0;
    if (n === 0) return i;
    i += n;
  }
  return b.length;
}
