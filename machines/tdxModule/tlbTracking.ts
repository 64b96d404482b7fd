/**
 * TD epochs and the TLB-tracking rule (§7.4): each TDH.VP.ENTER counts the vCPU into refcount[epoch & 1]
 * and each TD exit counts it out; TDH.MEM.TRACK advances the epoch only when nobody is left in the
 * previous one; a mapping blocked at epoch BEPOCH is "tracked" once no vCPU can still hold a translation
 * from before the block.
 */
export interface TdEpoch {
  tdEpoch: number;
  refcount: readonly [number, number];
}

/** Before TDH.MNG.INIT the TDCS epoch fields are the zeroes of a fresh TDCS page. */
export const INITIAL_EPOCH: TdEpoch = { tdEpoch: 0, refcount: [0, 0] };

/**
 * TDH.MNG.INIT starts the TD epoch at 1 with both refcounts 0 [TM:src/vmm_dispatcher/api_calls/tdh_mng_init.c].
 * A vCPU's own epoch is 0 until its first entry (the TDVPS pages are zeroed), so the first TDH.VP.ENTER of
 * every vCPU finds its epoch stale and flushes the TD's translations on that LP (§5c.2 step 3).
 */
export const EPOCH_AFTER_MNG_INIT: TdEpoch = { tdEpoch: 1, refcount: [0, 0] };

export function isTlbTracked(e: TdEpoch, bepoch: number): boolean {
  if (bepoch < e.tdEpoch - 1) return true;
  return bepoch === e.tdEpoch - 1 && e.refcount[bepoch & 1] === 0;
}

/** TDH.VP.ENTER: sample the epoch and count the vCPU in (§5c.2 step 3). */
export function enterEpoch(e: TdEpoch): { epoch: TdEpoch; vcpuEpoch: number } {
  const rc: [number, number] = [e.refcount[0], e.refcount[1]];
  rc[e.tdEpoch & 1] = rc[e.tdEpoch & 1]! + 1;
  return { epoch: { tdEpoch: e.tdEpoch, refcount: rc }, vcpuEpoch: e.tdEpoch };
}

/** TD exit: count the vCPU out of the epoch it entered in (§5c.2 step 7). */
export function exitEpoch(e: TdEpoch, vcpuEpoch: number): TdEpoch {
  const rc: [number, number] = [e.refcount[0], e.refcount[1]];
  rc[vcpuEpoch & 1] = rc[vcpuEpoch & 1]! - 1;
  if (rc[vcpuEpoch & 1]! < 0) throw new Error(`TD epoch refcount[${vcpuEpoch & 1}] went negative`);
  return { tdEpoch: e.tdEpoch, refcount: rc };
}

/** TDH.MEM.TRACK: fails while a vCPU is still in the previous epoch (§7.4). */
export function trackEpoch(e: TdEpoch): TdEpoch | null {
  if (e.refcount[1 - (e.tdEpoch & 1)] !== 0) return null;
  return { tdEpoch: e.tdEpoch + 1, refcount: e.refcount };
}
