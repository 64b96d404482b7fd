/** Bundles web/ into `outdir` (default dist/web/); resolves to the directory written. */
export function buildWeb(outdir?: string): Promise<string>;
