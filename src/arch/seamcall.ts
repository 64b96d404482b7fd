// SEAMCALL leaf numbers: host (KVM) → TDX module. The leaf goes in RAX bits 15:0 and the leaf
// version in bits 23:16. Numbers are the module's own [TM:include/tdx_api_defs.h]; the subset KVM
// calls is identical in [L616:arch/x86/virt/vmx/tdx/tdx.h]. §4.1.
// The migration leaves (64–75, 80–87, 96: TDH.EXPORT.*, TDH.IMPORT.*, TDH.MIG.STREAM.CREATE) are
// left out: the model has no live migration.

// Leaves a TD uses from creation to teardown: build, run, S-EPT edits (§4.1, §5b.3, §5a.2).
/** The leaf in bits 15:0 of a SEAMCALL's function number (RAX); bits 23:16 are its version (§4.1). */
export const SEAMCALL_LEAF_MASK = 0xffff;

export const TDH_VP_ENTER = 0;
export const TDH_MNG_ADDCX = 1;
export const TDH_MEM_PAGE_ADD = 2;
export const TDH_MEM_SEPT_ADD = 3;
export const TDH_VP_ADDCX = 4;
export const TDH_MEM_PAGE_RELOCATE = 5;
export const TDH_MEM_PAGE_AUG = 6;
export const TDH_MEM_RANGE_BLOCK = 7;
export const TDH_MNG_KEY_CONFIG = 8;
export const TDH_MNG_CREATE = 9;
export const TDH_VP_CREATE = 10;
export const TDH_MNG_RD = 11;
export const TDH_MEM_RD = 12;
export const TDH_MNG_WR = 13;
export const TDH_MEM_WR = 14;
export const TDH_MEM_PAGE_DEMOTE = 15;
export const TDH_MR_EXTEND = 16;
export const TDH_MR_FINALIZE = 17;
export const TDH_VP_FLUSH = 18;
export const TDH_MNG_VPFLUSHDONE = 19;
export const TDH_MNG_KEY_FREEID = 20;
export const TDH_MNG_INIT = 21;
export const TDH_VP_INIT = 22;
export const TDH_MEM_PAGE_PROMOTE = 23;
export const TDH_PHYMEM_PAGE_RDMD = 24;
export const TDH_MEM_SEPT_RD = 25;
export const TDH_VP_RD = 26;
export const TDH_MNG_KEY_RECLAIMID = 27;
export const TDH_PHYMEM_PAGE_RECLAIM = 28;
export const TDH_MEM_PAGE_REMOVE = 29;
export const TDH_MEM_SEPT_REMOVE = 30;

// Module bring-up, run by the host core rather than per TD (§4.1).
export const TDH_SYS_KEY_CONFIG = 31;
export const TDH_SYS_INFO = 32;
export const TDH_SYS_INIT = 33;
export const TDH_SYS_RD = 34;
export const TDH_SYS_LP_INIT = 35;
export const TDH_SYS_TDMR_INIT = 36;
export const TDH_SYS_RDALL = 37;

// TLB tracking, teardown cache maintenance, vCPU field writes, service TDs, module shutdown and
// update (§4.1, §5b.4, §7.4).
export const TDH_MEM_TRACK = 38;
export const TDH_MEM_RANGE_UNBLOCK = 39;
export const TDH_PHYMEM_CACHE_WB = 40;
export const TDH_PHYMEM_PAGE_WBINVD = 41;
export const TDH_MEM_SEPT_WR = 42;
export const TDH_VP_WR = 43;
export const TDH_SYS_LP_SHUTDOWN = 44;
export const TDH_SYS_CONFIG = 45;
export const TDH_SERVTD_BIND = 48;
export const TDH_SERVTD_PREBIND = 49;
export const TDH_SYS_SHUTDOWN = 52;
export const TDH_SYS_UPDATE = 53;

/** Leaf number → architectural name as it appears in messages and logs ('TDH.MEM.PAGE.AUG'). */
export const SEAMCALL_LEAF_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [TDH_VP_ENTER]: 'TDH.VP.ENTER',
  [TDH_MNG_ADDCX]: 'TDH.MNG.ADDCX',
  [TDH_MEM_PAGE_ADD]: 'TDH.MEM.PAGE.ADD',
  [TDH_MEM_SEPT_ADD]: 'TDH.MEM.SEPT.ADD',
  [TDH_VP_ADDCX]: 'TDH.VP.ADDCX',
  [TDH_MEM_PAGE_RELOCATE]: 'TDH.MEM.PAGE.RELOCATE',
  [TDH_MEM_PAGE_AUG]: 'TDH.MEM.PAGE.AUG',
  [TDH_MEM_RANGE_BLOCK]: 'TDH.MEM.RANGE.BLOCK',
  [TDH_MNG_KEY_CONFIG]: 'TDH.MNG.KEY.CONFIG',
  [TDH_MNG_CREATE]: 'TDH.MNG.CREATE',
  [TDH_VP_CREATE]: 'TDH.VP.CREATE',
  [TDH_MNG_RD]: 'TDH.MNG.RD',
  [TDH_MEM_RD]: 'TDH.MEM.RD',
  [TDH_MNG_WR]: 'TDH.MNG.WR',
  [TDH_MEM_WR]: 'TDH.MEM.WR',
  [TDH_MEM_PAGE_DEMOTE]: 'TDH.MEM.PAGE.DEMOTE',
  [TDH_MR_EXTEND]: 'TDH.MR.EXTEND',
  [TDH_MR_FINALIZE]: 'TDH.MR.FINALIZE',
  [TDH_VP_FLUSH]: 'TDH.VP.FLUSH',
  [TDH_MNG_VPFLUSHDONE]: 'TDH.MNG.VPFLUSHDONE',
  [TDH_MNG_KEY_FREEID]: 'TDH.MNG.KEY.FREEID',
  [TDH_MNG_INIT]: 'TDH.MNG.INIT',
  [TDH_VP_INIT]: 'TDH.VP.INIT',
  [TDH_MEM_PAGE_PROMOTE]: 'TDH.MEM.PAGE.PROMOTE',
  [TDH_PHYMEM_PAGE_RDMD]: 'TDH.PHYMEM.PAGE.RDMD',
  [TDH_MEM_SEPT_RD]: 'TDH.MEM.SEPT.RD',
  [TDH_VP_RD]: 'TDH.VP.RD',
  [TDH_MNG_KEY_RECLAIMID]: 'TDH.MNG.KEY.RECLAIMID',
  [TDH_PHYMEM_PAGE_RECLAIM]: 'TDH.PHYMEM.PAGE.RECLAIM',
  [TDH_MEM_PAGE_REMOVE]: 'TDH.MEM.PAGE.REMOVE',
  [TDH_MEM_SEPT_REMOVE]: 'TDH.MEM.SEPT.REMOVE',
  [TDH_SYS_KEY_CONFIG]: 'TDH.SYS.KEY.CONFIG',
  [TDH_SYS_INFO]: 'TDH.SYS.INFO',
  [TDH_SYS_INIT]: 'TDH.SYS.INIT',
  [TDH_SYS_RD]: 'TDH.SYS.RD',
  [TDH_SYS_LP_INIT]: 'TDH.SYS.LP.INIT',
  [TDH_SYS_TDMR_INIT]: 'TDH.SYS.TDMR.INIT',
  [TDH_SYS_RDALL]: 'TDH.SYS.RDALL',
  [TDH_MEM_TRACK]: 'TDH.MEM.TRACK',
  [TDH_MEM_RANGE_UNBLOCK]: 'TDH.MEM.RANGE.UNBLOCK',
  [TDH_PHYMEM_CACHE_WB]: 'TDH.PHYMEM.CACHE.WB',
  [TDH_PHYMEM_PAGE_WBINVD]: 'TDH.PHYMEM.PAGE.WBINVD',
  [TDH_MEM_SEPT_WR]: 'TDH.MEM.SEPT.WR',
  [TDH_VP_WR]: 'TDH.VP.WR',
  [TDH_SYS_LP_SHUTDOWN]: 'TDH.SYS.LP.SHUTDOWN',
  [TDH_SYS_CONFIG]: 'TDH.SYS.CONFIG',
  [TDH_SERVTD_BIND]: 'TDH.SERVTD.BIND',
  [TDH_SERVTD_PREBIND]: 'TDH.SERVTD.PREBIND',
  [TDH_SYS_SHUTDOWN]: 'TDH.SYS.SHUTDOWN',
  [TDH_SYS_UPDATE]: 'TDH.SYS.UPDATE',
});

const LEAF_BY_NAME: ReadonlyMap<string, number> = new Map(
  Object.entries(SEAMCALL_LEAF_NAMES).map(([leaf, name]) => [name, Number(leaf)]),
);

/** Leaf number for an architectural name ('TDH.MEM.PAGE.AUG' → 6); throws on a name not in §4.1. */
export function seamcallLeaf(name: string): number {
  const leaf = LEAF_BY_NAME.get(name);
  if (leaf === undefined) throw new RangeError(`unknown SEAMCALL leaf name ${JSON.stringify(name)} (§4.1)`);
  return leaf;
}
