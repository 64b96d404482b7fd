/** The TDX module's zero-step count (§7.5): what counts, when GPAs are recorded, what resets it. */
import { describe, expect, it } from 'vitest';
import { NO_STEPPING, countCap, logPrivateEptViolation, noteExitRip, resumeAt, steppingSuspected } from '../../machines/tdxModule/zeroStep.ts';
import { EPF_GPA_LIST_SIZE, STEPPING_EPF_THRESHOLD } from '../../src/arch/tdxStatus.ts';

const RIP = 0xffffffff81000000n;
const T = STEPPING_EPF_THRESHOLD;

/** `n` faults at one RIP on the given GPAs in turn, as a vCPU KVM keeps re-entering. */
function faults(n: number, gpas: bigint[] = [0x201000n], rip = RIP) {
  let s = NO_STEPPING;
  for (let i = 0; i < n; i++) s = logPrivateEptViolation(s, rip, gpas[i % gpas.length]!, T);
  return s;
}

describe('zero-step count', () => {
  it('the first fault at a RIP counts nothing; each re-entry that faults there again counts one', () => {
    expect(faults(1).count).toBe(0);
    expect(faults(4).count).toBe(3);
  });

  it(`records the faulting GPA once the count reaches ${T}, each GPA once, and only then suspects stepping`, () => {
    expect(steppingSuspected(faults(T))).toBe(false);
    const s = faults(T + 1);
    expect(s.count).toBe(T);
    expect(s.gpas).toEqual([0x201000n]);
    expect(faults(T + 5).gpas).toEqual([0x201000n]);
    expect(steppingSuspected(s)).toBe(true);
  });

  it(`keeps at most ${EPF_GPA_LIST_SIZE} GPAs and a bounded count`, () => {
    const many = Array.from({ length: 80 }, (_, i) => BigInt(0x200000 + i * 0x1000));
    const s = faults(81, many);
    expect(s.gpas).toHaveLength(EPF_GPA_LIST_SIZE);
    expect(s.count).toBe(countCap(T));
  });

  it("an exit the bookkeeping does not see (an ACCEPT's) keeps count and list; a later fault compares with the RIP it resumes at", () => {
    const s = resumeAt(faults(T + 1), RIP - 5n);
    expect(s).toMatchObject({ rip: RIP - 5n, count: T, gpas: [0x201000n] });
    expect(steppingSuspected(s)).toBe(true);
    expect(logPrivateEptViolation(s, RIP - 5n, 0x201000n, T).count).toBe(T + 1);
    expect(logPrivateEptViolation(s, RIP, 0x201000n, T)).toMatchObject({ count: 0, gpas: [] });
  });

  it('a fault at another RIP is progress: count and list start again', () => {
    const s = logPrivateEptViolation(faults(T + 2), RIP + 4n, 0x300000n, T);
    expect(s).toMatchObject({ rip: RIP + 4n, count: 0, gpas: [], lastGpa: 0x300000n });
  });

  it('an exit at the same RIP that is not a private fault leaves the count alone; at another RIP it resets it', () => {
    const s = faults(3);
    expect(noteExitRip(s, RIP)).toBe(s);
    expect(noteExitRip(s, RIP + 1n)).toMatchObject({ rip: RIP + 1n, count: 0, gpas: [] });
  });
});
