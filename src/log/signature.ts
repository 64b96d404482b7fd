/**
 * Optional signed logs. The hash chain catches accidents and casual edits, but anyone can recompute it
 * after an edit; a signature cannot be recomputed without the key. A signed log's end record carries
 *
 *   "signature":{"alg":"hmac-sha256","keyId":"<8 hex>","mac":"<64 hex>"}
 *
 * as its last field before `h`. The MAC is HMAC-SHA256 under the key over the file's bytes from the
 * first one up to the end record's `,"signature":` (every earlier line with its '\n', then the end record
 * as it reads without the signature), so it covers the header, every event and the outcome. Like the
 * chain, it is computed and checked on the raw text, never on re-serialised JSON.
 *
 * HMAC rather than Ed25519: the key is any file of random bytes (no key pair, no PEM), signing stays
 * deterministic, and the use it serves — a CI job or a team checking that a log came from their own runs —
 * shares one secret anyway. Whoever can verify can also sign; a log meant for outsiders to check would need
 * a public-key signature instead.
 */
import { createHash, createHmac, timingSafeEqual, type Hmac } from 'node:crypto';
import { LogError } from './errors.ts';
import { NotRegularFileError, readRegularFile } from './regularFile.ts';
import { SIGNATURE_ALG, type Signature } from './schema.ts';

/** Fewer bytes than this cannot be a random key; 32 is what `head -c 32 /dev/urandom` gives. */
export const MIN_KEY_BYTES = 16;

export interface SigningKey {
  readonly bytes: Buffer;
  /** First 8 hex digits of SHA-256 over the key, written into the log so a wrong key is named as such. */
  readonly id: string;
}

export function signingKey(bytes: Buffer): SigningKey {
  return { bytes, id: createHash('sha256').update(bytes).digest('hex').slice(0, 8) };
}

/** The key file's bytes, all of them (a trailing newline included): refused if it is not a regular file or too short. */
export function readSigningKey(file: string): SigningKey {
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file);
  } catch (err) {
    const detail = err instanceof NotRegularFileError ? `${err.what} is not a regular file` : (err as Error).message;
    throw new LogError('IO', file, 0, `cannot read key: ${detail}`, null, { cause: err });
  }
  if (bytes.length < MIN_KEY_BYTES) {
    throw new LogError('IO', file, 0, `cannot use key: it has ${bytes.length} byte(s), a key needs at least ${MIN_KEY_BYTES} (make one with: head -c 32 /dev/urandom > ${file})`);
  }
  return signingKey(bytes);
}

/** Where the signature sits in an end record's body: a fixed-length tail, found without scanning the line. */
const SIG_PREFIX = `,"signature":{"alg":"${SIGNATURE_ALG}","keyId":"`;
const SIG_TAIL_LENGTH = SIG_PREFIX.length + 8 + '","mac":"'.length + 64 + '"}}'.length;
const SIG_TAIL = /^,"signature":\{"alg":"hmac-sha256","keyId":"([0-9a-f]{8})","mac":"([0-9a-f]{64})"\}\}$/;

/** The end record's body as it reads without its signature, or null when the signature is not its last field. */
export function unsignedEndBody(body: string): string | null {
  if (body.length <= SIG_TAIL_LENGTH || !SIG_TAIL.test(body.slice(-SIG_TAIL_LENGTH))) return null;
  return body.slice(0, -SIG_TAIL_LENGTH) + '}';
}

/** Accumulates the signed bytes line by line, on the writing side and on the reading side alike. */
export class LogMac {
  readonly #key: SigningKey;
  readonly #hmac: Hmac;

  constructor(key: SigningKey) {
    this.#key = key;
    this.#hmac = createHmac('sha256', key.bytes);
  }

  get keyId(): string {
    return this.#key.id;
  }

  /** One complete line before the end record, given without its '\n'. */
  line(text: string): void {
    this.#hmac.update(text + '\n');
  }

  /** The signature over everything so far and the end record's body as it reads without the signature. Once only. */
  sign(unsignedBody: string): Signature {
    // The signature is spliced in before the closing brace, so the bytes signed are the record's prefix.
    this.#hmac.update(unsignedBody.slice(0, -1));
    return { alg: SIGNATURE_ALG, keyId: this.#key.id, mac: this.#hmac.digest('hex') };
  }

  /** Whether `claimed` is this key's signature over the same bytes. Constant-time in the MAC. */
  matches(unsignedBody: string, claimed: Signature): boolean {
    const mine = this.sign(unsignedBody);
    return mine.keyId === claimed.keyId && timingSafeEqual(Buffer.from(mine.mac, 'hex'), Buffer.from(claimed.mac, 'hex'));
  }
}
