/**
 * The TDX module's try-locks as one SEAMCALL meets them (§7.2): every lock is a shared/exclusive lock
 * without a slow path, so a caller that cannot take it returns TDX_OPERAND_BUSY | the operand id of that
 * lock at once [TM:src/common/helpers/tdx_locks.h `acquire_sharex_lock`].
 *
 * A SEAMCALL the model runs in one step takes and releases its locks inside that step, where nobody else
 * can see them. What another caller can meet are the locks held across the module's own steps, which the
 * module lists here from its context (tdxModule.ts `heldLocks`):
 * - the TDR (its PAMT entry): shared by a vCPU from TDH.VP.ENTER until its TD exit, by a TDH.MEM.TRACK
 *   between its two steps and by a TDH.MEM.PAGE.RELOCATE while the page is copied; exclusively by a
 *   TDH.MEM.PAGE.ADD or TDH.MR.EXTEND while memory copies or hashes the page;
 * - the S-EPT tree: exclusively by a TDH.VP.ENTER across its zero-step filter (§7.5), shared by a
 *   TDH.MEM.PAGE.RELOCATE while it copies;
 * - the PAMT entries of the two pages a TDH.MEM.PAGE.RELOCATE moves between, exclusively.
 * The S-EPT entry lock (TDEL) is a bit of the entry itself (septEntry.ts), set by a guest's ACCEPT or a
 * RELOCATE for the length of its memory operation; epoch_lock stays with tdxModule.ts (TRACK, VP.ENTER).
 */

export type LockMode = 'S' | 'X';

/** Who holds one shared/exclusive lock, other than the caller asking. */
export interface Holders {
  shared: number;
  exclusive: boolean;
}

export const UNHELD: Holders = { shared: 0, exclusive: false };

/** A try-lock in `mode`: shared needs no exclusive holder, exclusive needs no holder at all. */
export function canTake(h: Holders, mode: LockMode): boolean {
  return mode === 'S' ? !h.exclusive : !h.exclusive && h.shared === 0;
}

export function hold(h: Holders, mode: LockMode): Holders {
  return mode === 'S' ? { ...h, shared: h.shared + 1 } : { ...h, exclusive: true };
}

export interface ModuleLocks {
  tdr: Holders;
  septTree: Holders;
  /** Host PFNs whose PAMT entry another caller holds exclusively. */
  pages: ReadonlySet<number>;
}

/** Nothing held by anyone else: a SEAMCALL alone with the module (unit tests of the handlers). */
export const NO_LOCKS: ModuleLocks = { tdr: UNHELD, septTree: UNHELD, pages: new Set() };
