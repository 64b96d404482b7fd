// Secure-EPT entry states as the TDX module 1.5 keeps them, and which SEAMCALL/TDCALL leaf may act on
// which state. The table is docs/sept-state-legality.md (generated from the module's
// include/auto_gen/sept_state_lookup.c); §5a.1 gives the same encodings and the public codes.

/** All S-EPT states, in the module's lookup-table index order (docs/sept-state-legality.md "State index"). */
export const SEPT_STATES = [
  'FREE',
  'REMOVED',
  'NL_MAPPED',
  'NL_BLOCKED',
  'MAPPED',
  'BLOCKED',
  'BLOCKEDW',
  'EXPORTED_BLOCKEDW',
  'EXPORTED_DIRTY',
  'EXPORTED_DIRTY_BLOCKEDW',
  'PENDING',
  'PENDING_BLOCKED',
  'PENDING_BLOCKEDW',
  'PENDING_EXPORTED_BLOCKEDW',
  'PENDING_EXPORTED_DIRTY',
  'PENDING_EXPORTED_DIRTY_BLOCKEDW',
] as const;

export type SeptState = (typeof SEPT_STATES)[number];

// 7-bit internal encoding {bit0 D, bits1–4 TDEX/TDBW/TDB/TDP, bit5 IPAT, bit6 PS} (§5a.1), gathered from
// entry bits 9, 53–56, 6 and 7 (§3.6). The TDEL lock and host-priority bits are outside it, so taking
// an entry lock never changes the state.
export const SEPT_STATE_ENCODING: Readonly<Record<SeptState, number>> = Object.freeze({
  FREE: 0x0e,
  REMOVED: 0x0c,
  NL_MAPPED: 0x00,
  NL_BLOCKED: 0x08,
  MAPPED: 0x60,
  BLOCKED: 0x68,
  BLOCKEDW: 0x64,
  EXPORTED_BLOCKEDW: 0x66,
  EXPORTED_DIRTY: 0x63,
  EXPORTED_DIRTY_BLOCKEDW: 0x67,
  PENDING: 0x70,
  PENDING_BLOCKED: 0x78,
  PENDING_BLOCKEDW: 0x74,
  PENDING_EXPORTED_BLOCKEDW: 0x76,
  PENDING_EXPORTED_DIRTY: 0x73,
  PENDING_EXPORTED_DIRTY_BLOCKEDW: 0x77,
});

// Public code the module reports to the VMM (RDX bits 15:8 on S-EPT errors) and in the ACCEPT EEQ info
// (bits 13:6) (§5a.1). Linux knows only 0–4 (FREE, BLOCKED, PENDING, PENDING_BLOCKED, PRESENT = MAPPED).
export const SEPT_STATE_PUBLIC: Readonly<Record<SeptState, number>> = Object.freeze({
  FREE: 0,
  REMOVED: 5,
  NL_MAPPED: 0x84,
  NL_BLOCKED: 0x81,
  MAPPED: 4,
  BLOCKED: 1,
  BLOCKEDW: 8,
  EXPORTED_BLOCKEDW: 9,
  EXPORTED_DIRTY: 11,
  EXPORTED_DIRTY_BLOCKEDW: 12,
  PENDING: 2,
  PENDING_BLOCKED: 3,
  PENDING_BLOCKEDW: 16,
  PENDING_EXPORTED_BLOCKEDW: 17,
  PENDING_EXPORTED_DIRTY: 19,
  PENDING_EXPORTED_DIRTY_BLOCKEDW: 20,
});

// Encoding bit 6 is the entry's PS bit (§5a.1); FREE and REMOVED are neither leaf nor non-leaf and
// have it clear.
const SEPT_ENCODING_PS = 0x40;

/** True for states that map a page (MAPPED, PENDING and their blocked/exported variants). */
export function septIsLeaf(state: SeptState): boolean {
  return (SEPT_STATE_ENCODING[state] & SEPT_ENCODING_PS) !== 0;
}

/**
 * Leaf states in which the guest can still read the page: MAPPED, BLOCKEDW and the exported variants
 * that are not pending. TDG.MEM.PAGE.ACCEPT on one of these answers PAGE_ALREADY_ACCEPTED rather than
 * exiting (TDX module 1.5.01, tdg_mem_page_accept.c: the guest-accessible-leaf check comes before the
 * legality lookup).
 */
export const SEPT_GUEST_ACCESSIBLE_LEAF_STATES: readonly SeptState[] = Object.freeze(['MAPPED', 'BLOCKEDW', 'EXPORTED_BLOCKEDW', 'EXPORTED_DIRTY', 'EXPORTED_DIRTY_BLOCKEDW']);

export function septIsGuestAccessibleLeaf(state: SeptState): boolean {
  return SEPT_GUEST_ACCESSIBLE_LEAF_STATES.includes(state);
}

// States in which the module's state pre-check lets each leaf proceed (docs/sept-state-legality.md). Passing
// it is necessary, not sufficient: locks, TLB tracking and level checks can still fail the call
// (§5a.4). SEPT.ADD's NL_MAPPED entry applies only without a new page or with "allow existing" (§5a.2).
export const SEPT_LEGALITY: Readonly<Record<string, readonly SeptState[]>> = Object.freeze({
  'TDH.MEM.PAGE.ADD': ['FREE'],
  'TDH.MEM.SEPT.ADD': ['FREE', 'NL_MAPPED'],
  'TDH.MEM.PAGE.RELOCATE': [
    'MAPPED',
    'BLOCKED',
    'BLOCKEDW',
    'EXPORTED_BLOCKEDW',
    'EXPORTED_DIRTY',
    'EXPORTED_DIRTY_BLOCKEDW',
    'PENDING',
    'PENDING_BLOCKED',
    'PENDING_BLOCKEDW',
    'PENDING_EXPORTED_BLOCKEDW',
    'PENDING_EXPORTED_DIRTY',
    'PENDING_EXPORTED_DIRTY_BLOCKEDW',
  ],
  'TDH.MEM.PAGE.AUG': ['FREE', 'REMOVED'],
  'TDH.MEM.RANGE.BLOCK': ['NL_MAPPED', 'MAPPED', 'BLOCKEDW', 'PENDING', 'PENDING_BLOCKEDW'],
  'TDH.MEM.RD': ['MAPPED', 'BLOCKEDW', 'EXPORTED_BLOCKEDW', 'EXPORTED_DIRTY', 'EXPORTED_DIRTY_BLOCKEDW'],
  'TDH.MEM.WR': ['MAPPED', 'EXPORTED_DIRTY'],
  'TDH.MEM.PAGE.DEMOTE': ['MAPPED', 'BLOCKED', 'PENDING', 'PENDING_BLOCKED'],
  'TDH.MR.EXTEND': ['MAPPED'],
  'TDH.MEM.PAGE.PROMOTE': ['NL_MAPPED', 'NL_BLOCKED'],
  'TDH.MEM.SEPT.RD': SEPT_STATES,
  'TDH.MEM.PAGE.REMOVE': ['MAPPED', 'BLOCKED', 'BLOCKEDW', 'PENDING', 'PENDING_BLOCKED', 'PENDING_BLOCKEDW'],
  'TDH.MEM.SEPT.REMOVE': ['NL_MAPPED', 'NL_BLOCKED'],
  'TDH.MEM.RANGE.UNBLOCK': ['NL_BLOCKED', 'BLOCKED', 'PENDING_BLOCKED'],
  'TDH.EXPORT.BLOCKW': ['MAPPED', 'EXPORTED_DIRTY', 'PENDING', 'PENDING_EXPORTED_DIRTY'],
  'TDH.EXPORT.RESTORE': [
    'EXPORTED_BLOCKEDW',
    'EXPORTED_DIRTY',
    'EXPORTED_DIRTY_BLOCKEDW',
    'PENDING_EXPORTED_BLOCKEDW',
    'PENDING_EXPORTED_DIRTY',
    'PENDING_EXPORTED_DIRTY_BLOCKEDW',
  ],
  'TDH.EXPORT.MEM': [
    'MAPPED',
    'BLOCKEDW',
    'EXPORTED_BLOCKEDW',
    'EXPORTED_DIRTY',
    'EXPORTED_DIRTY_BLOCKEDW',
    'PENDING',
    'PENDING_BLOCKEDW',
    'PENDING_EXPORTED_BLOCKEDW',
    'PENDING_EXPORTED_DIRTY',
    'PENDING_EXPORTED_DIRTY_BLOCKEDW',
  ],
  'TDH.EXPORT.UNBLOCKW': [
    'BLOCKEDW',
    'EXPORTED_BLOCKEDW',
    'EXPORTED_DIRTY_BLOCKEDW',
    'PENDING_BLOCKEDW',
    'PENDING_EXPORTED_BLOCKEDW',
    'PENDING_EXPORTED_DIRTY_BLOCKEDW',
  ],
  'TDH.IMPORT.MEM': ['FREE', 'REMOVED', 'MAPPED', 'PENDING'],
  'TDG.MEM.PAGE.ACCEPT': ['PENDING', 'PENDING_EXPORTED_DIRTY'],
  'TDG.MEM.PAGE.ATTR.RD': [
    'MAPPED',
    'BLOCKEDW',
    'EXPORTED_BLOCKEDW',
    'EXPORTED_DIRTY',
    'EXPORTED_DIRTY_BLOCKEDW',
    'PENDING',
    'PENDING_BLOCKEDW',
    'PENDING_EXPORTED_BLOCKEDW',
    'PENDING_EXPORTED_DIRTY',
    'PENDING_EXPORTED_DIRTY_BLOCKEDW',
  ],
  'TDG.MEM.PAGE.ATTR.WR': ['MAPPED', 'EXPORTED_DIRTY', 'PENDING', 'PENDING_EXPORTED_DIRTY'],
});

/** The one place S-EPT state legality is decided; throws on a leaf name the table does not cover. */
export function septAllows(leafName: string, state: SeptState): boolean {
  const allowed = SEPT_LEGALITY[leafName];
  if (allowed === undefined) throw new RangeError(`no S-EPT legality row for ${JSON.stringify(leafName)} (docs/sept-state-legality.md)`);
  if (!(SEPT_STATES as readonly string[]).includes(state)) throw new RangeError(`unknown S-EPT state ${JSON.stringify(state)} (§5a.1)`);
  return allowed.includes(state);
}
