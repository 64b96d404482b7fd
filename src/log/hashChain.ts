/**
 * The running hash that chains log lines. Each line's hash covers the previous line's hash and this line's
 * text, so editing, removing or reordering lines breaks the chain at the first line affected:
 *
 *   h(line) = the first 11 characters of base64url(SHA-256(h(previous line) + "\n" + body))
 *
 * where body is the line as it reads without its `,"h":"…"` field and h of the line before the header is
 * the empty string. 66 bits: ample to detect accidents and casual edits; this is not a signature.
 *
 * Verification works on the raw text of a line and never re-serialises parsed JSON: the bytes on disk are
 * what was hashed, and a parse/stringify round trip could hide an edit (or invent one).
 */
import { digestText, STATE_HASH_CHARS } from '../runtime/worldHash.ts';
import { stringifyCanonical } from './canonical.ts';

/** The previous hash of the first line (the header). */
export const GENESIS = '';

const HASH_CHARS = STATE_HASH_CHARS;

/** `,"h":"` + 11 characters + `"}`: how every sealed line ends. */
const SEAL_LENGTH = ',"h":"'.length + HASH_CHARS + '"}'.length;
const SEAL = /^,"h":"([A-Za-z0-9_-]{11})"\}$/;

export function chainHash(prevHash: string, body: string): string {
  return digestText(prevHash + '\n' + body, HASH_CHARS);
}

/** Appends the chained hash to a record's JSON text (which must not contain `h`) as its last field. */
export function sealBody(prevHash: string, body: string): { line: string; hash: string } {
  if (body.length < 3 || body[0] !== '{') {
    throw new TypeError(`sealRecord: a record must be a non-empty JSON object, got ${body.slice(0, 40)}`);
  }
  const hash = chainHash(prevHash, body);
  return { line: body.slice(0, -1) + ',"h":"' + hash + '"}', hash };
}

/**
 * Serialises `record` (which must not contain `h`) and appends the chained hash as its last field.
 * The hash is spliced into the text rather than added to the object and stringified again, so the
 * reader can recover exactly the hashed body by cutting the seal off.
 */
export function sealRecord(prevHash: string, record: object): { line: string; hash: string } {
  return sealBody(prevHash, stringifyCanonical(record));
}

/** Splits a line (without its '\n') into the hashed body and the hash, or null if it is not sealed. */
export function unsealLine(line: string): { body: string; hash: string } | null {
  // Match only the fixed-length tail: an anchored regex over the whole line would scan it from the start.
  const match = SEAL.exec(line.slice(-SEAL_LENGTH));
  if (line.length <= SEAL_LENGTH || match === null) return null;
  return { body: line.slice(0, -SEAL_LENGTH) + '}', hash: match[1]! };
}
