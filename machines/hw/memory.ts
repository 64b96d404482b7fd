/**
 * Physical memory behind the memory controller, with MKTME/TDX KeyIDs (§1.2, §1.3; §8 glossary "HKID").
 *
 * Contents are kept per 4K page as sparse 64-bit words (an absent word is 0) together with the KeyID the
 * page was last written with, because that is what makes the TDX confidentiality rules observable: the
 * TDX module writes a TD's pages with the TD's private HKID (PAGE.ADD's copy, ACCEPT's clearing), the
 * guest reads and writes them through the S-EPT with that HKID, and anything that reaches the same page
 * with another KeyID — the host with KeyID 0 — does not get the guest's data.
 *
 * What such a mismatched read returns is not in docs/tdx-semantics.md. The model answers 0 with
 * `integrity: false` (Intel's TDX whitepaper describes reads by non-TD software of TD-owned lines as
 * returning zeros); a write with another KeyID takes the page over: its old contents are gone, which is
 * how KVM's MOVDIR64B clear after TDH.MEM.PAGE.REMOVE behaves (§6.iv step 4).
 */
import { createHash } from 'node:crypto';
import { setup, emit, enqueueActions } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { PAGE_SIZE } from '../../src/arch/gpa.ts';
import { hex } from '../../src/arch/hex.ts';

export interface PhysPage {
  keyid: number;
  /** 8-byte word index within the page → value; absent = 0. */
  words: Readonly<Record<number, bigint>>;
}

export interface MemoryContext {
  /** Keyed by host PFN; a page never written is absent (all zero, KeyID 0). */
  pages: Readonly<Record<number, PhysPage>>;
}

export interface MemoryInput {
  /** Pages with contents at start: the VMM's staging buffers for the TD image. */
  pages: Readonly<Record<number, PhysPage>>;
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

const pfnOf = (pa: bigint) => Number(pa / PAGE_SIZE);
const wordOf = (pa: bigint) => Number((pa % PAGE_SIZE) / 8n);
const byteShift = (pa: bigint) => (pa % 8n) * 8n;
const mask = (size: number) => (1n << BigInt(size * 8)) - 1n;

/** Reads and writes never cross an 8-byte word: the scenario loader only admits naturally aligned accesses. */
export function readWord(page: PhysPage | undefined, pa: bigint, size: number): bigint {
  const w = page?.words[wordOf(pa)] ?? 0n;
  return (w >> byteShift(pa)) & mask(size);
}

export function writeWord(page: PhysPage | undefined, pa: bigint, size: number, keyid: number, value: bigint): PhysPage {
  // Another KeyID takes the page over: what was written under the old key cannot be read back (see above).
  const base = page !== undefined && page.keyid === keyid ? page.words : {};
  const i = wordOf(pa);
  const old = base[i] ?? 0n;
  const m = mask(size) << byteShift(pa);
  const w = (old & ~m) | ((value & mask(size)) << byteShift(pa));
  const words = { ...base };
  if (w === 0n) delete words[i];
  else words[i] = w;
  return { keyid, words };
}

function pagesIn(pa: bigint, bytes: bigint): number[] {
  const first = pfnOf(pa);
  return [...Array(Number(bytes / PAGE_SIZE)).keys()].map((i) => first + i);
}

export const memoryMachine = setup({
  types: {
    context: {} as MemoryContext,
    events: {} as MachineEvent,
    input: {} as MemoryInput,
    emitted: {} as Emitted,
  },
  actions: {
    read: emit(({ context, event }) => {
      const r = payloadOf(event, 'mem', 'MEM_READ');
      const page = context.pages[pfnOf(r.pa)];
      const integrity = (page?.keyid ?? 0) === r.keyid;
      return out(event.msg.from, 'mem', 'MEM_DATA', { pa: r.pa, value: integrity ? readWord(page, r.pa, r.size) : 0n, integrity, tag: r.tag });
    }),
    write: enqueueActions(({ context, event, enqueue }) => {
      const w = payloadOf(event, 'mem', 'MEM_WRITE');
      const pfn = pfnOf(w.pa);
      enqueue.assign({ pages: { ...context.pages, [pfn]: writeWord(context.pages[pfn], w.pa, w.size, w.keyid, w.value) } });
      enqueue.emit(out(event.msg.from, 'mem', 'MEM_DONE', { tag: w.tag }));
    }),
    zero: enqueueActions(({ context, event, enqueue }) => {
      const z = payloadOf(event, 'mem', 'MEM_ZERO');
      const pages = { ...context.pages };
      for (const pfn of pagesIn(z.pa, z.bytes)) pages[pfn] = { keyid: z.keyid, words: {} };
      enqueue.assign({ pages });
      enqueue.emit(out(event.msg.from, 'mem', 'MEM_DONE', { tag: z.tag }));
    }),
    copy: enqueueActions(({ context, event, enqueue }) => {
      const c = payloadOf(event, 'mem', 'MEM_COPY');
      const pages = { ...context.pages };
      const src = pagesIn(c.src, c.bytes);
      pagesIn(c.dst, c.bytes).forEach((pfn, i) => {
        const from = context.pages[src[i]!];
        const readable = (from?.keyid ?? 0) === c.srcKeyid;
        pages[pfn] = { keyid: c.dstKeyid, words: readable ? (from?.words ?? {}) : {} };
      });
      enqueue.assign({ pages });
      enqueue.emit(out(event.msg.from, 'mem', 'MEM_DONE', { tag: c.tag }));
    }),
    /** SHA-384 over the bytes as the reader with that KeyID sees them (little-endian words). */
    hash: emit(({ context, event }) => {
      const h = payloadOf(event, 'mem', 'MEM_HASH');
      const page = context.pages[pfnOf(h.pa)];
      const integrity = (page?.keyid ?? 0) === h.keyid;
      const buf = Buffer.alloc(Number(h.bytes));
      for (let off = 0n; off < h.bytes; off += 8n) buf.writeBigUInt64LE(integrity ? readWord(page, h.pa + off, 8) : 0n, Number(off));
      return out(event.msg.from, 'mem', 'MEM_DIGEST', { digest: createHash('sha384').update(buf).digest('hex'), tag: h.tag });
    }),
    misaligned: emit(({ event }): Emitted => ({
      type: 'tdxsim.failure',
      reason: 'model limit',
      detail: `${event.msg.from}: access at ${hex((event.msg.payload as { pa: bigint }).pa)} crosses an 8-byte word`,
    })),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
  guards: {
    crossesWord: ({ event }) => {
      const p = event.msg.payload as { pa: bigint; size: number };
      return (p.pa % 8n) + BigInt(p.size) > 8n;
    },
  },
}).createMachine({
  id: 'memory',
  context: ({ input }) => ({ pages: input.pages }),
  initial: 'serving',
  on: { '*': { actions: 'unexpected' } },
  states: {
    serving: {
      on: {
        MEM_READ: [{ guard: 'crossesWord', actions: 'misaligned' }, { actions: 'read' }],
        MEM_WRITE: [{ guard: 'crossesWord', actions: 'misaligned' }, { actions: 'write' }],
        MEM_ZERO: { actions: 'zero' },
        MEM_COPY: { actions: 'copy' },
        MEM_HASH: { actions: 'hash' },
      },
    },
  },
});

