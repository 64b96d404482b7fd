/** The KeyIDs the host hands out: a model choice the README lists under "Model choices". */

/**
 * TDX KeyIDs in the kernel's example dmesg are "[16, 64)". The kernel keeps the first as the TDX global
 * KeyID (the module's own metadata, e.g. the TDR) and hands the rest to TDs, so the first TD gets 17.
 */
export const TDX_GLOBAL_KEYID = 16;
export const TD_HKID = TDX_GLOBAL_KEYID + 1;
