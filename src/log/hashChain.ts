/**
 * The running hash that chains log lines. Each line's hash covers the previous line's hash and this line's
 * text, so editing, removing or reordering lines breaks the chain at the first line affected.
 *
 * Verification works on the raw text of a line and never re-serialises parsed JSON: the bytes on disk are
 * what was hashed, and a parse/stringify round trip could hide an edit (or invent one).
 */
import { createHash } from 'node:crypto';
import { stringifyCanonical } from './canonical.ts';

/** The previous hash of the first line (the header). */
export const GENESIS = '';

/** 16 hex digits (64 bits): ample to detect accidents and casual edits; this is not a signature. */
const HASH_HEX_DIGITS = 16;

/** `,"hash":"` + 16 hex digits + `"}`: how every sealed line ends. */
const SEAL_LENGTH = ',"hash":"'.length + HASH_HEX_DIGITS + '"}'.length;
const SEAL = /^,"hash":"([0-9a-f]{16})"\}$/;

export function chainHash(prevHash: string, body: string): string {
  return createHash('sha256')
    .update(prevHash + '\n' + body)
    .digest('hex')
    .slice(0, HASH_HEX_DIGITS);
}

/**
 * Serialises `record` (which must not contain `hash`) and appends the chained hash as its last field.
 * The hash is spliced into the text rather than added to the object and stringified again, so the
 * reader can recover exactly the hashed body by cutting the seal off.
 */
export function sealRecord(prevHash: string, record: object): { line: string; hash: string } {
  const body = stringifyCanonical(record);
  if (body.length < 3 || body[0] !== '{') {
    throw new TypeError(`sealRecord: a record must be a non-empty JSON object, got ${body.slice(0, 40)}`);
  }
  const hash = chainHash(prevHash, body);
  return { line: body.slice(0, -1) + ',"hash":"' + hash + '"}', hash };
}

/** Splits a line (without its '\n') into the hashed body and the hash, or null if it is not sealed. */
export function unsealLine(line: string): { body: string; hash: string } | null {
  // Match only the fixed-length tail: an anchored regex over the whole line would scan it from the start.
  const match = SEAL.exec(line.slice(-SEAL_LENGTH));
  if (line.length <= SEAL_LENGTH || match === null) return null;
  return { body: line.slice(0, -SEAL_LENGTH) + '}', hash: match[1]! };
}
