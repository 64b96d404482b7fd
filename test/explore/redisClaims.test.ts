/**
 * The claim script (src/explore/redis/scripts.ts) is the in-process visited table's rule run by Redis:
 * for any sequence of arrivals — the same state again and again with any sleep sets, in batches of any
 * size — it answers each as a per-state table of claims over every channel word does (fresh or not, the channels to explore), and holds the
 * same claimed channels. Also the binary records round-trip.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { redisServerPath, startRedisServer, type LocalRedis } from '../../bench/redisServer.ts';
import { decodeClaimReplies, decodeFrames, decodeLogRecord, encodeClaims, encodeFrame, FRAME_CLAIMED, type ClaimRecord, type FrameRecord } from '../../src/explore/redis/codec.ts';
import { entryKeys, searchKeys } from '../../src/explore/redis/keys.ts';
import { Scripts } from '../../src/explore/redis/scripts.ts';

const HAVE_REDIS = redisServerPath() !== null;
if (!HAVE_REDIS && !process.env.CI) console.warn('test/explore/redisClaims.test.ts: redis-server is not installed (apt-get install redis-server); the claim script tests are skipped');

const WORDS = 3;
const word = fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constantFrom(0, 0xffff_ffff));
const sleepArb = fc.array(word, { minLength: WORDS, maxLength: WORDS }).map((w) => Uint32Array.from(w));
/** Arrivals at a few states, so most are revisits; in batches. */
const arrivals = fc.array(fc.array(fc.record({ state: fc.integer({ min: 0, max: 5 }), sleep: sleepArb }), { minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 6 });

/** Claims per state, every word: a delivery is explored once per state unless an arrival sleeps on it. */
function claimsTable(): { arrive(fp: { hi: number; lo: number }, sleep: Uint32Array, explore: Uint32Array): boolean; readonly size: number } {
  const claimed = new Map<string, Uint32Array>();
  return {
    arrive(fp, sleep, explore) {
      const key = `${fp.hi}:${fp.lo}`;
      let old = claimed.get(key);
      const fresh = old === undefined;
      if (old === undefined) claimed.set(key, (old = new Uint32Array(WORDS)));
      for (let w = 0; w < WORDS; w++) {
        const awake = ~sleep[w]! >>> 0;
        explore[w] = (awake & ~old[w]!) >>> 0;
        old[w] = (old[w]! | awake) >>> 0;
      }
      return fresh;
    },
    get size() {
      return claimed.size;
    },
  };
}

describe('records', () => {
  it('a frame and a claim batch round-trip', () => {
    const f: FrameRecord = { kind: FRAME_CLAIMED, id: 7, path: [0, 3, 65534, 1], sleep: Uint32Array.of(1, 0xffff_ffff, 5), explore: Uint32Array.of(0, 2, 0x8000_0000) };
    expect(decodeFrames(Buffer.concat([encodeFrame(f, WORDS), encodeFrame({ ...f, id: 8, path: [] }, WORDS)]), WORDS)).toEqual([f, { ...f, id: 8, path: [] }]);
    expect(() => encodeFrame({ ...f, path: [65535] }, WORDS)).toThrow('a scheduler choice of 65535 does not fit a Redis frontier record (at most 65534)');
    const c: ClaimRecord = { fp: { hi: -5, lo: 0x7fff_ffff }, sleep: Uint32Array.of(1, 2, 3), id: 9, parent: 4, choice: 2, terminal: false };
    expect(encodeClaims([c, c], WORDS).length).toBe(2 * (8 + 4 * WORDS + 11));
    expect(decodeClaimReplies(Buffer.from([75, 1, 1]), 1, 2, WORDS)).toEqual([{ fresh: true }, { fresh: true }]);
    expect(() => decodeClaimReplies(Buffer.from([75, 1]), 1, 2, WORDS)).toThrow('a Redis claim reply of 1 bytes for 2 claims');
  });
});

describe.runIf(HAVE_REDIS || process.env.CI)('the claim script', () => {
  let server: LocalRedis;
  let redis: Redis;
  let scripts: Scripts;
  beforeAll(async () => {
    expect(HAVE_REDIS, 'redis-server must be installed where CI runs (.ci/run installs it)').toBe(true);
    server = await startRedisServer();
    redis = new Redis(server.url);
    scripts = new Scripts(redis);
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  let run = 0;
  it('answers every arrival as a table of per-state claims over every channel word does, and logs exactly the claims that won something', async () => {
    await fc.assert(
      fc.asyncProperty(arrivals, async (batches) => {
        const k = searchKeys(`claims-${++run}`);
        const ek = entryKeys(k, '1-0');
        await redis.set(ek.owner, 'me');
        await redis.xgroup('CREATE', k.frontier, 'workers', '$', 'MKSTREAM');
        // The reference: each state's claims over all WORDS words (the engine's own StateTable keeps one byte
        // of claims, so it is no longer the oracle for the script's 32-bit words).
        const table = claimsTable();
        const expected = new Uint32Array(WORDS);
        let logged = 0;
        for (const batch of batches) {
          const claims: ClaimRecord[] = batch.map((a, i) => ({ fp: { hi: a.state, lo: 17 }, sleep: a.sleep, id: i, parent: 0, choice: 0, terminal: false }));
          const b = (await scripts.buffer('claim', [k.seen, k.stats, k.stop, ek.owner, ek.log, k.frontier], ['me', '1-0', WORDS, 1_000_000, encodeClaims(claims, WORDS)])) as Buffer;
          expect(String.fromCharCode(b[0]!)).toBe('K');
          const replies = decodeClaimReplies(b, 1, claims.length, WORDS);
          claims.forEach((c, i) => {
            const fresh = table.arrive(c.fp, c.sleep, expected);
            const r = replies[i]!;
            expect(r.fresh).toBe(fresh);
            const explore = r.fresh ? c.sleep.map((w) => ~w >>> 0) : r.explore;
            expect([...explore]).toEqual([...expected]);
            if (expected.some((w) => w !== 0)) logged++;
          });
        }
        const log = (await redis.lrangeBuffer(ek.log, 0, -1)).map((x) => decodeLogRecord(x, WORDS));
        expect(log.length).toBe(logged);
        expect(await redis.hlen(k.seen)).toBe(table.size);
      }),
      { numRuns: 60 },
    );
  });

  it('refuses a worker that no longer owns the entry, and answers nothing once the search has stopped', async () => {
    const k = searchKeys('fenced');
    const ek = entryKeys(k, '1-0');
    await redis.xgroup('CREATE', k.frontier, 'workers', '$', 'MKSTREAM');
    const claim = encodeClaims([{ fp: { hi: 1, lo: 2 }, sleep: new Uint32Array(WORDS), id: 1, parent: 0, choice: 0, terminal: false }], WORDS);
    const args = ['me', '1-0', WORDS, 1_000_000, claim];
    const keys = [k.seen, k.stats, k.stop, ek.owner, ek.log, k.frontier];
    await redis.set(ek.owner, 'successor');
    expect(((await scripts.buffer('claim', keys, args)) as Buffer).toString()).toBe('L');
    expect(await redis.hlen(k.seen)).toBe(0);
    await redis.set(ek.owner, 'me');
    await redis.set(k.stop, 'violation');
    expect(((await scripts.buffer('claim', keys, args)) as Buffer).toString()).toBe('Sviolation');
    expect(await redis.hlen(k.seen)).toBe(0);
  });
});
