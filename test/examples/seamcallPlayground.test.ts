/**
 * The SEAMCALL playground: a host-kernel test thread (host.kthread0) issues raw SEAMCALLs against the TD's
 * module state once the VMM has built it. The example walks one entry through its states; the table below
 * puts an entry of each state a playground can reach into place with SEAMCALLs (or KVM's build, for a
 * MAPPED page) and calls every memory leaf of docs/sept-state-legality.md on it, expecting the status the
 * legality table and the order of checks (§5a.4) give — written here from the documents, not from the
 * model's handlers.
 */
import { describe, expect, it } from 'vitest';
import { arrows, exampleFile, runExample, runScenario, type RecordedRun } from '../helpers.ts';
import { loadScenarioFile, parseScenarioObject } from '../../src/scenario/load.ts';
import { modelFor } from '../../src/session/session.ts';
import { explore } from '../../src/explore/explore.ts';
import { defaultInvariants } from '../../src/explore/invariants/index.ts';
import type { Invariant } from '../../src/explore/invariants/invariant.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { replayLog } from '../../src/replay/replay.ts';
import { SEPT_LEGALITY, type SeptState } from '../../src/arch/sept.ts';
import { septLevelState } from '../../src/arch/septEntry.ts';
import {
  TDX_SUCCESS,
  TDX_OP_STATE_INCORRECT,
  TDX_EPT_ENTRY_STATE_INCORRECT,
  TDX_GPA_RANGE_ALREADY_BLOCKED,
  TDX_GPA_RANGE_NOT_BLOCKED,
  TDX_TLB_TRACKING_NOT_DONE,
  TDX_EPT_ENTRY_NOT_PRESENT,
  TDX_OPERAND_ID_RCX,
  TDX_OPERAND_ID_SEPT_TREE,
  TDX_SEAMCALL_STATUS_MASK,
  tdxStatusName,
  tdxStatusCode,
} from '../../src/arch/tdxStatus.ts';

type Gprs = Record<string, bigint>;
const kthreadReturns = (r: RecordedRun) => r.deliveries.filter((d) => d.message.to === 'host.kthread0' && d.message.kind === 'seamcall-return').map((d) => ({ name: d.message.name, regs: d.message.payload as Gprs }));

describe('examples/seamcall-playground', () => {
  const r = runExample('seamcall-playground');
  it('every SEAMCALL answers what the scenario expects; the run ends clean', () => {
    expect(r.outcome.failures).toEqual([]);
    expect(kthreadReturns(r).map((x) => `${x.name} ${tdxStatusName(x.regs.RAX!)}`)).toEqual([
      'TDH.MEM.SEPT.ADD TDX_SUCCESS',
      'TDH.MEM.SEPT.ADD TDX_SUCCESS',
      'TDH.MEM.SEPT.ADD TDX_SUCCESS',
      'TDH.MEM.SEPT.RD TDX_OPERAND_INVALID|RDX',
      'TDH.MEM.SEPT.RD TDX_OPERAND_INVALID|RDX',
      'TDH.MEM.SEPT.RD TDX_PAGE_METADATA_INCORRECT|RDX',
      'TDH.MEM.SEPT.RD TDX_PAGE_METADATA_INCORRECT|RDX',
      'TDH.MEM.SEPT.RD TDX_SUCCESS',
      'TDH.MEM.SEPT.ADD TDX_EPT_ENTRY_STATE_INCORRECT|RCX',
      'TDH.MEM.PAGE.AUG TDX_SUCCESS',
      'TDH.MEM.SEPT.RD TDX_SUCCESS',
      'TDH.MEM.PAGE.RELOCATE TDX_GPA_RANGE_NOT_BLOCKED|RCX',
      'TDH.MEM.PAGE.RELOCATE TDX_OPERAND_INVALID|RCX',
      'TDH.MEM.RANGE.BLOCK TDX_SUCCESS',
      'TDH.MEM.SEPT.RD TDX_SUCCESS',
      'TDH.MEM.RANGE.BLOCK TDX_GPA_RANGE_ALREADY_BLOCKED|RCX',
      'TDH.MEM.RANGE.UNBLOCK TDX_TLB_TRACKING_NOT_DONE|SEPT_TREE',
      'TDH.MEM.PAGE.RELOCATE TDX_TLB_TRACKING_NOT_DONE|RCX',
      'TDH.MEM.TRACK TDX_PAGE_METADATA_INCORRECT|RCX',
      'TDH.MEM.TRACK TDX_SUCCESS',
      'TDH.MEM.RANGE.UNBLOCK TDX_SUCCESS',
      'TDH.MEM.SEPT.RD TDX_SUCCESS',
      'TDH.MEM.PAGE.PROMOTE TDX_GPA_RANGE_NOT_BLOCKED|RCX',
      'TDH.MEM.RANGE.BLOCK TDX_SUCCESS',
      'TDH.MEM.TRACK TDX_SUCCESS',
      'TDH.MEM.PAGE.RELOCATE TDX_SUCCESS',
      'TDH.MEM.SEPT.RD TDX_SUCCESS',
      'TDH.MEM.RANGE.BLOCK TDX_SUCCESS',
      'TDH.MEM.TRACK TDX_SUCCESS',
      'TDH.MEM.PAGE.REMOVE TDX_SUCCESS',
      'TDH.MEM.SEPT.RD TDX_SUCCESS',
      'TDH.MR.EXTEND TDX_OP_STATE_INCORRECT',
    ]);
  });
  it('a refused TDR operand leaves RCX and RDX alone; RELOCATE returns the old page in RCX and REMOVE the new one', () => {
    const rets = kthreadReturns(r);
    for (const x of rets.filter((x) => /\|RDX$/.test(tdxStatusName(x.regs.RAX!)))) expect([x.regs.RCX, x.regs.RDX]).toEqual([undefined, undefined]);
    const relocated = rets.find((x) => x.name === 'TDH.MEM.PAGE.RELOCATE' && x.regs.RAX === TDX_SUCCESS)!;
    expect([relocated.regs.RCX, relocated.regs.RDX]).toEqual([0x1c0100000n, 0n]);
    expect(rets.find((x) => x.name === 'TDH.MEM.PAGE.REMOVE')!.regs.RCX).toBe(0x1c0101000n);
  });
  it('SEPT.RD reports the entry: FREE is just SVE, PENDING carries the page, level | state << 8 in RDX', () => {
    const reads = kthreadReturns(r).filter((x) => x.name === 'TDH.MEM.SEPT.RD' && x.regs.RAX === TDX_SUCCESS).map((x) => [x.regs.RCX, x.regs.RDX]);
    expect(reads).toEqual([
      [1n << 63n, septLevelState(0, 'FREE')],
      [(1n << 63n) | 0x1c0100000n | 0xf0n, septLevelState(0, 'PENDING')],
      [(1n << 63n) | 0x1c0100000n | 0xf0n, septLevelState(0, 'PENDING_BLOCKED')],
      [(1n << 63n) | 0x1c0100000n | 0xf0n, septLevelState(0, 'PENDING')],
      [(1n << 63n) | 0x1c0101000n | 0xf0n, septLevelState(0, 'PENDING')],
      [1n << 63n, septLevelState(0, 'FREE')],
    ]);
  });
  it('the thread starts once the TD is built, from the VMM, and its calls go to the module and back', () => {
    const seq = arrows(r);
    expect(seq.indexOf('vmm → host.kthread0 KTHREAD_START')).toBeGreaterThan(seq.indexOf('kvm.vm → vmm KVM_TDX_FINALIZE_VM'));
    expect(seq.filter((a) => a.startsWith('host.kthread0 → tdx'))).toHaveLength(32);
  });
  it('is logged and replays: same log twice, replay --verify re-derives every world', () => {
    expect(runExample('seamcall-playground').text).toBe(r.text);
    const rep = replayLog(parseLogText(r.text, 'seamcall-playground.log.jsonl'), 'seamcall-playground.log.jsonl', { verify: true });
    expect(rep.verified).toBe(true);
  });
  it('an answer other than the expected one fails the run, naming the step and both statuses', () => {
    const s = parseScenarioObject({
      name: 'playground-mismatch',
      vm: { type: 'tdx', gpaw: 48 },
      memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
      vcpus: [{ program: [{ op: 'hlt' }] }],
      kthreads: [{ program: [{ seamcall: 'TDH.MEM.PAGE.AUG', rcx: 0x40000000, r8: 0x1c0100000, expect: { rax: 'TDX_SUCCESS' } }] }],
    });
    const m = runScenario(s);
    expect(m.outcome.failures).toMatchObject([{ actor: 'host.kthread0', reason: 'playground expectation', detail: 'host.kthread0: step 0 TDH.MEM.PAGE.AUG: RAX = TDX_EPT_WALK_FAILED|RCX, expected TDX_SUCCESS' }]);
  });
});

describe('status names in scenarios', () => {
  it.each([
    ['TDX_SUCCESS', 0n],
    ['TDX_EPT_WALK_FAILED|RCX', 0xc0000b0000000001n],
    ['TDX_PAGE_ALREADY_ACCEPTED|level=1', 0x00000b0a00000001n],
    ['TDX_OPERAND_BUSY|SEPT_TREE', tdxStatusCode('TDX_OPERAND_BUSY')! | 0x92n],
  ])('%s', (name, code) => {
    expect(tdxStatusCode(name)).toBe(code);
    expect(tdxStatusName(code)).toBe(name);
  });
  it('an unknown name is refused by the loader with the field', () => {
    expect(() =>
      parseScenarioObject({ name: 'bad', vm: { type: 'tdx' }, memslots: [{ gpa: 0, size: 0x1000, guestMemfd: true }], vcpus: [{ program: [{ op: 'hlt' }] }], kthreads: [{ program: [{ seamcall: 'TDH.MEM.SEPT.RD', expect: { rax: 'TDX_NOPE' } }] }] }),
    ).toThrow('kthreads[0].program[0].expect.rax: unknown TDX status "TDX_NOPE"');
  });
});

// ---- Every (leaf, state) pair the playground can produce -------------------------------------------------

// 513 GiB: PML4E 1 → PDPTE 1 → PDE 0 → PTE 0, clear of the S-EPT the build makes for the image (PML4E 0).
const G = 0x8040000000n;
const IMAGE_GPA = 0x100000n; // added and measured by KVM's build: MAPPED at 4K
const PAGE_4K = 0x1c0100000n;
const PAGE_2M = 0x1c0200000n;
const NEW_SEPT = 0x1c0003000n;

type Step = { seamcall: string; rcx: bigint; r8?: bigint };
const sept = (rcx: bigint, r8: bigint): Step => ({ seamcall: 'TDH.MEM.SEPT.ADD', rcx, r8 });
const upper = [sept(0x8000000000n | 3n, 0x1c0000000n), sept(G | 2n, 0x1c0001000n)];
const pde = sept(G | 1n, 0x1c0002000n);
const block = (rcx: bigint): Step => ({ seamcall: 'TDH.MEM.RANGE.BLOCK', rcx });

/** How to put the entry at `level` into `state`, and the GPA it maps. */
const SETUPS: Record<0 | 1, Partial<Record<SeptState, { gpa: bigint; steps: Step[] }>>> = {
  0: {
    FREE: { gpa: G, steps: [...upper, pde] },
    MAPPED: { gpa: IMAGE_GPA, steps: [] },
    BLOCKED: { gpa: IMAGE_GPA, steps: [block(IMAGE_GPA)] },
    PENDING: { gpa: G, steps: [...upper, pde, { seamcall: 'TDH.MEM.PAGE.AUG', rcx: G, r8: PAGE_4K }] },
    PENDING_BLOCKED: { gpa: G, steps: [...upper, pde, { seamcall: 'TDH.MEM.PAGE.AUG', rcx: G, r8: PAGE_4K }, block(G)] },
  },
  1: {
    FREE: { gpa: G, steps: upper },
    NL_MAPPED: { gpa: G, steps: [...upper, pde] },
    NL_BLOCKED: { gpa: G, steps: [...upper, pde, block(G | 1n)] },
    PENDING: { gpa: G, steps: [...upper, { seamcall: 'TDH.MEM.PAGE.AUG', rcx: G | 1n, r8: PAGE_2M }] },
    PENDING_BLOCKED: { gpa: G, steps: [...upper, { seamcall: 'TDH.MEM.PAGE.AUG', rcx: G | 1n, r8: PAGE_2M }, block(G | 1n)] },
  },
};

// The level each leaf acts at: page leaves at 4K, page-table and resize leaves at 2M (as test/machines/septOps.test.ts).
const LEAVES: [string, 0 | 1][] = [
  ['TDH.MEM.PAGE.ADD', 0],
  ['TDH.MR.EXTEND', 0],
  ['TDH.MEM.PAGE.AUG', 0],
  ['TDH.MEM.RANGE.BLOCK', 0],
  ['TDH.MEM.RANGE.UNBLOCK', 0],
  ['TDH.MEM.PAGE.REMOVE', 0],
  ['TDH.MEM.SEPT.RD', 0],
  ['TDH.MEM.PAGE.RELOCATE', 0],
  ['TDH.MEM.SEPT.ADD', 1],
  ['TDH.MEM.SEPT.REMOVE', 1],
  ['TDH.MEM.PAGE.DEMOTE', 1],
  ['TDH.MEM.PAGE.PROMOTE', 1],
];

const BLOCKED: readonly SeptState[] = ['BLOCKED', 'PENDING_BLOCKED', 'NL_BLOCKED'];
/** Leaves that, past the state check, need the entry blocked and the block's epoch retired (§5a.4 step 7). */
const NEED_TRACKED_BLOCK = new Set(['TDH.MEM.RANGE.UNBLOCK', 'TDH.MEM.PAGE.REMOVE', 'TDH.MEM.SEPT.REMOVE', 'TDH.MEM.PAGE.DEMOTE', 'TDH.MEM.PAGE.PROMOTE', 'TDH.MEM.PAGE.RELOCATE']);
/** The page RELOCATE moves the entry's page to. */
const RELOCATE_TO = 0x1c0400000n;
/**
 * The build-time leaves want the TDR exclusively, and the vCPU holds it shared while it is in the TD
 * (from TDH.VP.ENTER to its HLT exit): a few reads first let it halt, so op_state decides (the BUSY case
 * has its own test below).
 */
const letVcpuHalt: Step[] = [0, 1, 2].map(() => ({ seamcall: 'TDH.MEM.SEPT.RD', rcx: IMAGE_GPA }));

/**
 * The status in a RUNNABLE TD, from the legality table and §5a.4: op_state first (PAGE.ADD and MR.EXTEND
 * run only while the TD is built), BLOCK's "already blocked" before the state check, the state check, then
 * SEPT.ADD's new page over an existing S-EPT page, then the blocked-and-tracked rule (the setups never TRACK).
 */
function expected(leaf: string, state: SeptState): bigint {
  const rcx = BigInt(TDX_OPERAND_ID_RCX);
  if (leaf === 'TDH.MEM.PAGE.ADD' || leaf === 'TDH.MR.EXTEND') return TDX_OP_STATE_INCORRECT;
  if (leaf === 'TDH.MEM.RANGE.BLOCK' && BLOCKED.includes(state)) return TDX_GPA_RANGE_ALREADY_BLOCKED | rcx;
  if (!SEPT_LEGALITY[leaf]!.includes(state)) return TDX_EPT_ENTRY_STATE_INCORRECT | rcx;
  if (leaf === 'TDH.MEM.SEPT.ADD' && state !== 'FREE') return TDX_EPT_ENTRY_STATE_INCORRECT | rcx;
  // UNBLOCK's table admits blocked states only, and it blames an untracked block on the tree.
  if (leaf === 'TDH.MEM.RANGE.UNBLOCK') return TDX_TLB_TRACKING_NOT_DONE | BigInt(TDX_OPERAND_ID_SEPT_TREE);
  if (NEED_TRACKED_BLOCK.has(leaf)) return BLOCKED.includes(state) ? TDX_TLB_TRACKING_NOT_DONE | rcx : TDX_GPA_RANGE_NOT_BLOCKED | rcx;
  return TDX_SUCCESS;
}

describe('the playground against every (leaf, state) pair it can produce (docs/sept-state-legality.md)', () => {
  const cases = LEAVES.flatMap(([leaf, level]) => Object.keys(SETUPS[level]).map((state) => [leaf, level, state as SeptState] as const));
  it.each(cases)('%s at level %i on %s', (leaf, level, state) => {
    const setup = SETUPS[level][state]!;
    const want = expected(leaf, state);
    const r8 = leaf === 'TDH.MEM.PAGE.AUG' ? PAGE_4K : leaf === 'TDH.MEM.SEPT.ADD' || leaf === 'TDH.MEM.PAGE.DEMOTE' ? NEW_SEPT : leaf === 'TDH.MEM.PAGE.RELOCATE' ? RELOCATE_TO : 0n;
    const pad = leaf === 'TDH.MEM.PAGE.ADD' || leaf === 'TDH.MR.EXTEND' ? letVcpuHalt : [];
    const call = { seamcall: leaf, rcx: leaf === 'TDH.MR.EXTEND' ? setup.gpa : setup.gpa | BigInt(level), r8, r9: leaf === 'TDH.MEM.PAGE.ADD' ? 0x140000000n : 0n, expect: { rax: want } };
    const s = parseScenarioObject({
      name: 'playground-pair',
      vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
      memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
      image: [{ gpa: IMAGE_GPA, words: { 0: 0x1122334455667788n } }],
      vcpus: [{ program: [{ op: 'hlt' }] }],
      kthreads: [{ program: [...[...pad, ...setup.steps].map((st) => ({ ...st, expect: { rax: 'TDX_SUCCESS' } })), call] }],
    });
    const r = runScenario(s);
    expect(r.outcome.failures, `${leaf} on ${state}`).toEqual([]);
    const got = kthreadReturns(r).at(-1)!;
    expect(got.name).toBe(leaf);
    expect(tdxStatusName(got.regs.RAX!)).toBe(tdxStatusName(want));
    // A refusal from the walk on reports the entry it judged: level | public state << 8, except an
    // untracked block, which 1.5.01 reports without it.
    if ((want & TDX_SEAMCALL_STATUS_MASK) === TDX_TLB_TRACKING_NOT_DONE) expect([got.regs.RCX, got.regs.RDX]).toEqual([undefined, undefined]);
    else if ((want & 0xffffffffn) === BigInt(TDX_OPERAND_ID_RCX)) expect(got.regs.RDX).toBe(septLevelState(level, state));
    if (leaf === 'TDH.MEM.SEPT.RD') expect(got.regs.RDX).toBe(septLevelState(level, state));
  });
});

describe('a playground thread during the build (start: initialized): the build-time leaves', () => {
  const ADDED = 0x1c0300000n; // the page a PAGE.ADD hands over
  const SOURCE = 0x140000000n; // the VMM's staging page, the copy's source
  const base = [...upper, pde];
  const add: Step & { r9: bigint } = { seamcall: 'TDH.MEM.PAGE.ADD', rcx: G, r8: ADDED, r9: SOURCE };
  const aug: Step = { seamcall: 'TDH.MEM.PAGE.AUG', rcx: G, r8: PAGE_4K };
  const setups: Partial<Record<SeptState, Step[]>> = {
    FREE: base,
    MAPPED: [...base, add],
    BLOCKED: [...base, add, block(G)],
    PENDING: [...base, aug],
    PENDING_BLOCKED: [...base, aug, block(G)],
  };
  const rcx = BigInt(TDX_OPERAND_ID_RCX);
  /** INITIALIZED: PAGE.ADD needs FREE; MR.EXTEND walks to a leaf (NOT_PRESENT|RCX short of one) and needs it MAPPED (else a bare NOT_PRESENT). */
  const want: Record<string, Partial<Record<SeptState, bigint>>> = {
    'TDH.MEM.PAGE.ADD': { FREE: TDX_SUCCESS, MAPPED: TDX_EPT_ENTRY_STATE_INCORRECT | rcx, BLOCKED: TDX_EPT_ENTRY_STATE_INCORRECT | rcx, PENDING: TDX_EPT_ENTRY_STATE_INCORRECT | rcx, PENDING_BLOCKED: TDX_EPT_ENTRY_STATE_INCORRECT | rcx },
    'TDH.MR.EXTEND': { FREE: TDX_EPT_ENTRY_NOT_PRESENT | rcx, MAPPED: TDX_SUCCESS, BLOCKED: TDX_EPT_ENTRY_NOT_PRESENT, PENDING: TDX_EPT_ENTRY_NOT_PRESENT, PENDING_BLOCKED: TDX_EPT_ENTRY_NOT_PRESENT },
    // Nothing runs yet, so removing needs neither BLOCK nor TRACK (§5a.2).
    'TDH.MEM.PAGE.REMOVE': { FREE: TDX_EPT_ENTRY_STATE_INCORRECT | rcx, MAPPED: TDX_SUCCESS, BLOCKED: TDX_SUCCESS, PENDING: TDX_SUCCESS, PENDING_BLOCKED: TDX_SUCCESS },
    // Nor does moving a page: an accepted one is copied first (MAPPED, BLOCKED), a PENDING one just moves.
    'TDH.MEM.PAGE.RELOCATE': { FREE: TDX_EPT_ENTRY_STATE_INCORRECT | rcx, MAPPED: TDX_SUCCESS, BLOCKED: TDX_SUCCESS, PENDING: TDX_SUCCESS, PENDING_BLOCKED: TDX_SUCCESS },
  };
  const cases = Object.entries(want).flatMap(([leaf, byState]) => Object.entries(byState).map(([state, status]) => [leaf, state as SeptState, status] as const));
  it.each(cases)('%s on %s', (leaf, state, status) => {
    const r8 = leaf === 'TDH.MEM.PAGE.ADD' || leaf === 'TDH.MEM.PAGE.RELOCATE' ? 0x1c0400000n : 0n;
    const call = { seamcall: leaf, rcx: G + (leaf === 'TDH.MR.EXTEND' ? 0x100n : 0n), r8, r9: SOURCE, expect: { rax: status } };
    const s = parseScenarioObject({
      name: 'playground-build',
      vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
      memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
      vcpus: [{ program: [{ op: 'hlt' }] }],
      kthreads: [{ start: 'initialized', program: [...setups[state]!.map((st) => ({ ...st, expect: { rax: 'TDX_SUCCESS' } })), call] }],
    });
    const r = runScenario(s);
    expect(r.outcome.failures, `${leaf} on ${state}`).toEqual([]);
    expect(tdxStatusName(kthreadReturns(r).at(-1)!.regs.RAX!)).toBe(tdxStatusName(status));
    // The VMM waits for the thread, then finalizes; the vCPU runs only after that.
    const seq = arrows(r);
    expect(seq.indexOf('host.kthread0 → vmm KTHREAD_DONE')).toBeGreaterThan(seq.lastIndexOf('tdx → host.kthread0 ' + leaf));
    expect(seq.indexOf('vmm → kvm.vm KVM_TDX_FINALIZE_VM')).toBeGreaterThan(seq.indexOf('host.kthread0 → vmm KTHREAD_DONE'));
    expect(seq).toContain('vmm → kvm.vcpu0 KVM_RUN');
    // Only an accepted page has contents to move: memory copies it with the TD's key.
    if (leaf === 'TDH.MEM.PAGE.RELOCATE') expect(seq.filter((a) => a === 'tdx → hw.mem MEM_COPY')).toHaveLength(state === 'MAPPED' || state === 'BLOCKED' ? 2 : 0);
  });
  it('PAGE.ADD copies the source with the TD key and counts in MRTD; the TD then finalizes and runs', () => {
    const s = parseScenarioObject({
      name: 'playground-build-add',
      vm: { type: 'tdx', gpaw: 48 },
      memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
      vcpus: [{ program: [{ op: 'hlt' }] }],
      kthreads: [{ start: 'initialized', program: [...base, add, { seamcall: 'TDH.MR.EXTEND', rcx: G, expect: { rax: 'TDX_SUCCESS' } }, { seamcall: 'TDH.MEM.SEPT.RD', rcx: G, expect: { rdx: septLevelState(0, 'MAPPED') } }] }],
    });
    const r = runScenario(s);
    expect(r.outcome.failures).toEqual([]);
    expect(arrows(r)).toContain('tdx → hw.mem MEM_COPY');
    expect(arrows(r)).toContain('tdx → hw.mem MEM_HASH');
  });
});

// ---- Two threads meet the module's try-locks (examples/seamcall-busy) ------------------------------------

/** An invariant that breaks where `thread` is answered `status`: the search then shows a schedule that gets it. */
const answered = (thread: string, status: string): Invariant => ({
  name: `${thread}-${status}`,
  description: `${thread} is never answered ${status}`,
  footprint: {},
  check: (_model, _before, _after, m) => (m.to === thread && m.kind === 'seamcall-return' && tdxStatusName((m.payload as Gprs).RAX!) === status ? `${m.name} answered ${status}` : null),
});

describe('examples/seamcall-busy', () => {
  const r = runExample('seamcall-busy');
  const returnsTo = (t: string) => r.deliveries.filter((d) => d.message.to === t && d.message.kind === 'seamcall-return').map((d) => ({ name: d.message.name, regs: d.message.payload as Gprs }));
  it('the build-time thread adds the page; the finalize waits for it', () => {
    expect(r.outcome.failures).toEqual([]);
    expect(returnsTo('host.kthread0').map((x) => `${x.name} ${tdxStatusName(x.regs.RAX!)}`)).toEqual([
      'TDH.MEM.SEPT.ADD TDX_SUCCESS',
      'TDH.MEM.SEPT.ADD TDX_SUCCESS',
      'TDH.MEM.SEPT.ADD TDX_SUCCESS',
      'TDH.MEM.PAGE.ADD TDX_SUCCESS',
    ]);
  });
  it('host.kthread1 blocks, tracks and relocates the page: RCX returns the old page', () => {
    expect(returnsTo('host.kthread1').map((x) => `${x.name} ${tdxStatusName(x.regs.RAX!)}`)).toEqual([
      'TDH.MEM.SEPT.RD TDX_SUCCESS',
      'TDH.MEM.SEPT.RD TDX_SUCCESS',
      'TDH.MEM.RANGE.BLOCK TDX_SUCCESS',
      'TDH.MEM.TRACK TDX_SUCCESS',
      'TDH.MEM.PAGE.RELOCATE TDX_SUCCESS',
    ]);
    expect(returnsTo('host.kthread1').at(-1)!.regs).toEqual({ RAX: TDX_SUCCESS, RCX: 0x1c0100000n, RDX: 0n });
  });
  it('under FIFO host.kthread2 reads the entry while the copy is in flight: TDX_OPERAND_BUSY|RCX with the entry, BLOCKED on the old page; then MAPPED on the new one', () => {
    const seq = arrows(r);
    const copy = seq.indexOf('tdx → hw.mem MEM_COPY', seq.indexOf('host.kthread1 → tdx TDH.MEM.PAGE.RELOCATE'));
    const busyRead = seq.indexOf('host.kthread2 → tdx TDH.MEM.SEPT.RD', copy);
    expect(busyRead).toBeGreaterThan(copy);
    expect(busyRead).toBeLessThan(seq.indexOf('hw.mem → tdx MEM_DONE', copy));
    const reads = returnsTo('host.kthread2').slice(-2);
    expect(reads.map((x) => tdxStatusName(x.regs.RAX!))).toEqual(['TDX_OPERAND_BUSY|RCX', 'TDX_SUCCESS']);
    expect(reads.map((x) => [x.regs.RCX! & 0xffffffffff000n, x.regs.RDX])).toEqual([
      [0x1c0100000n, septLevelState(0, 'BLOCKED')],
      [0x1c0101000n, septLevelState(0, 'MAPPED')],
    ]);
  });
  const model = () => modelFor(loadScenarioFile(exampleFile('seamcall-busy')).scenario);
  const BOUND = { maxDepth: 10_000, maxStates: 100_000, maxMillis: Number.POSITIVE_INFINITY };
  it('explores clean: 18,913 states, 26 end states', () => {
    expect(explore(model(), defaultInvariants(), BOUND)).toMatchObject({ status: 'clean', exhaustive: true, states: 18_913, terminals: 26 });
  });
  it('the search finds schedules where the read meets the entry lock, and where RELOCATE is refused (no copy to meet)', () => {
    expect(explore(model(), [answered('host.kthread2', 'TDX_OPERAND_BUSY|RCX')], BOUND).status).toBe('violation');
    // The vCPU entered before the BLOCK and is still in the TD after the TRACK: the block is not tracked.
    expect(explore(model(), [answered('host.kthread1', 'TDX_TLB_TRACKING_NOT_DONE|RCX')], BOUND).status).toBe('violation');
  });
});

// ---- A wrong TDR operand, for every leaf the playground has ----------------------------------------------

describe('the TDR operand through the playground: checked before anything else, blamed on RDX (TRACK: RCX)', () => {
  const TDCS0 = 0x100001000n; // TDCS page 0: PT_TDCX
  const TDVPR = 0x100010000n; // vCPU 0's TDVPR: PT_TDVPR
  // SEPT.ADD and DEMOTE read flags from RDX bits 11:0, so a misaligned RDX is not an error for them.
  const FLAGS = new Set(['TDH.MEM.SEPT.ADD', 'TDH.MEM.PAGE.DEMOTE']);
  const leaves = [...LEAVES.map(([leaf]) => leaf), 'TDH.MEM.TRACK'];
  it.each(leaves)('%s', (leaf) => {
    const reg = leaf === 'TDH.MEM.TRACK' ? 'rcx' : 'rdx';
    const op = leaf === 'TDH.MEM.TRACK' ? 'RCX' : 'RDX';
    const rows: [bigint, string][] = [
      ...(FLAGS.has(leaf) ? [] : [[0x100000800n, `TDX_OPERAND_INVALID|${op}`] as [bigint, string]]),
      [0x100000000n | (1n << 46n), `TDX_OPERAND_INVALID|${op}`],
      [1n << 52n, `TDX_OPERAND_INVALID|${op}`],
      [TDCS0, `TDX_PAGE_METADATA_INCORRECT|${op}`],
      [TDVPR, `TDX_PAGE_METADATA_INCORRECT|${op}`],
      [IMAGE_GPA, `TDX_PAGE_METADATA_INCORRECT|${op}`], // a free page as far as the PAMT goes
    ];
    const s = parseScenarioObject({
      name: 'playground-tdr',
      vm: { type: 'tdx', gpaw: 48, attributes: ['SEPT_VE_DISABLE'] },
      memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
      vcpus: [{ program: [{ op: 'hlt' }] }],
      kthreads: [{ program: rows.map(([value, status]) => ({ seamcall: leaf, rcx: G, r8: NEW_SEPT, [reg]: value, expect: { rax: status } })) }],
    });
    const r = runScenario(s);
    expect(r.outcome.failures).toEqual([]);
    expect(kthreadReturns(r).map((x) => tdxStatusName(x.regs.RAX!))).toEqual(rows.map(([, status]) => status));
  });
});
