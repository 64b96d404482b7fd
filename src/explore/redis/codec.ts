/**
 * The binary records a Redis search exchanges: little-endian, fixed layouts, so the Lua scripts read them
 * with `struct` and a batch of claims is one string, not thousands of arguments.
 *
 * - fingerprint: 8 bytes, the two 32-bit halves of the 64-bit fingerprint (hi, lo);
 * - frame: kind u8 (0: arrive — claim the state on taking it; 1: claimed — explore exactly `explore`),
 *   id u32, path length u32, path u16[] (scheduler choices from the initial world), sleep u32[words],
 *   explore u32[words]. A frontier entry and a snapshot's frame are both frames;
 * - claim (worker → script): fingerprint, awake u32[words] (the complement of the arrival's sleep set:
 *   what a fresh state claims as it is), id u32, parent u32, choice u16, flags u8 (bit 0: the world has
 *   nothing in flight; bit 1: the worker expands it before the answer, so it is logged whatever it wins);
 * - log record (script → the entry's log): id u32, parent u32, choice u16, awake u32[words],
 *   explore u32[words] — a claimed state's frame, its path by parent ids;
 * - claim reply: 1 (fresh: it explores all it is awake for, and that is all that is claimed), or
 *   0, explore u32[words], claimed-so-far u32[words]. Most claims are of fresh states: one byte each.
 */
import type { Hash64 } from '../structuralHash.ts';

/** The parent of a log record for the entry's own root (claimed on taking an `arrive` entry). */
export const NO_PARENT = 0xffff_ffff;
export const NO_CHOICE = 0xffff;

export const FRAME_ARRIVE = 0;
export const FRAME_CLAIMED = 1;

export interface FrameRecord {
  kind: typeof FRAME_ARRIVE | typeof FRAME_CLAIMED;
  id: number;
  path: number[];
  sleep: Uint32Array;
  explore: Uint32Array;
}

export interface LogRecord {
  id: number;
  parent: number;
  choice: number;
  sleep: Uint32Array;
  explore: Uint32Array;
}

export interface ClaimRecord {
  fp: Hash64;
  /** The arrival's sleep set (the script gets its complement). */
  sleep: Uint32Array;
  id: number;
  parent: number;
  choice: number;
  /** Nothing in flight: counted as an end state if fresh, never logged (it has nothing to explore). */
  terminal: boolean;
  /** Expanded before the answer: logged even if the claim wins nothing, as its children's parent. */
  speculative?: boolean;
}

export type ClaimReply =
  /** The state was new: the claim won everything it is awake for (the complement of its sleep set). */
  | { fresh: true }
  | {
      fresh: false;
      explore: Uint32Array;
      /** Every channel claimed from the state so far, by anyone: what the local cache learns. */
      claimed: Uint32Array;
    };

const FRESH: ClaimReply = { fresh: true };

export const claimBytes = (words: number): number => 8 + 4 * words + 11;

function choiceOf(c: number): number {
  if (!Number.isInteger(c) || c < 0 || c >= NO_CHOICE) throw new RangeError(`a scheduler choice of ${c} does not fit a Redis frontier record (at most ${NO_CHOICE - 1})`);
  return c;
}

export function encodeFrame(f: FrameRecord, words: number): Buffer {
  const b = Buffer.alloc(9 + 2 * f.path.length + 8 * words);
  b.writeUInt8(f.kind, 0);
  b.writeUInt32LE(f.id, 1);
  b.writeUInt32LE(f.path.length, 5);
  let o = 9;
  for (const c of f.path) o = b.writeUInt16LE(choiceOf(c), o);
  for (let w = 0; w < words; w++) o = b.writeUInt32LE(f.sleep[w]!, o);
  for (let w = 0; w < words; w++) o = b.writeUInt32LE(f.explore[w]!, o);
  return b;
}

/** Every frame in `b` (a snapshot is frames back to back; an entry is one). */
export function decodeFrames(b: Buffer, words: number): FrameRecord[] {
  const out: FrameRecord[] = [];
  let o = 0;
  while (o < b.length) {
    const kind = b.readUInt8(o);
    const id = b.readUInt32LE(o + 1);
    const n = b.readUInt32LE(o + 5);
    o += 9;
    const path: number[] = [];
    for (let i = 0; i < n; i++, o += 2) path.push(b.readUInt16LE(o));
    const sleep = new Uint32Array(words);
    const explore = new Uint32Array(words);
    for (let w = 0; w < words; w++, o += 4) sleep[w] = b.readUInt32LE(o);
    for (let w = 0; w < words; w++, o += 4) explore[w] = b.readUInt32LE(o);
    if (kind !== FRAME_ARRIVE && kind !== FRAME_CLAIMED) throw new Error(`a Redis frontier record of unknown kind ${kind}`);
    out.push({ kind, id, path, sleep, explore });
  }
  return out;
}

export function encodeClaims(claims: readonly ClaimRecord[], words: number): Buffer {
  const size = claimBytes(words);
  const b = Buffer.alloc(size * claims.length);
  let o = 0;
  for (const c of claims) {
    o = b.writeInt32LE(c.fp.hi | 0, o);
    o = b.writeInt32LE(c.fp.lo | 0, o);
    for (let w = 0; w < words; w++) o = b.writeInt32LE(~c.sleep[w]!, o);
    o = b.writeUInt32LE(c.id, o);
    o = b.writeUInt32LE(c.parent, o);
    o = b.writeUInt16LE(c.parent === NO_PARENT ? NO_CHOICE : choiceOf(c.choice), o);
    o = b.writeUInt8((c.terminal ? 1 : 0) | (c.speculative ? 2 : 0), o);
  }
  return b;
}

/** The replies to a batch of claims, after the script's status byte. */
export function decodeClaimReplies(b: Buffer, from: number, claims: number, words: number): ClaimReply[] {
  const out: ClaimReply[] = [];
  let o = from;
  for (let i = 0; i < claims; i++) {
    if (o >= b.length) throw new Error(`a Redis claim reply of ${b.length - from} bytes for ${claims} claims`);
    if (b.readUInt8(o++) === 1) {
      out.push(FRESH);
      continue;
    }
    const explore = new Uint32Array(words);
    const claimed = new Uint32Array(words);
    for (let w = 0; w < words; w++, o += 4) explore[w] = b.readUInt32LE(o);
    for (let w = 0; w < words; w++, o += 4) claimed[w] = b.readUInt32LE(o);
    out.push({ fresh: false, explore, claimed });
  }
  if (o !== b.length) throw new Error(`a Redis claim reply of ${b.length - from} bytes, ${b.length - o} more than ${claims} claims take`);
  return out;
}

export function decodeLogRecord(b: Buffer, words: number): LogRecord {
  if (b.length !== 10 + 8 * words) throw new Error(`a Redis log record of ${b.length} bytes for ${words} words`);
  const sleep = new Uint32Array(words);
  const explore = new Uint32Array(words);
  for (let w = 0; w < words; w++) sleep[w] = ~b.readUInt32LE(10 + 4 * w);
  for (let w = 0; w < words; w++) explore[w] = b.readUInt32LE(10 + 4 * words + 4 * w);
  return { id: b.readUInt32LE(0), parent: b.readUInt32LE(4), choice: b.readUInt16LE(8), sleep, explore };
}

/** A fingerprint as the 8 bytes the visited hash is keyed by. */
export function fingerprintBytes(fp: Hash64): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32LE(fp.hi | 0, 0);
  b.writeInt32LE(fp.lo | 0, 4);
  return b;
}

/** Claimed-channel words as the visited hash's value. */
export function wordsBytes(v: Uint32Array): Buffer {
  const b = Buffer.alloc(4 * v.length);
  for (let w = 0; w < v.length; w++) b.writeUInt32LE(v[w]!, 4 * w);
  return b;
}
