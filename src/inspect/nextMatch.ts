/**
 * "Next match" over a finished filter's matches (the server's, and the page's for a paged log, which has
 * the list from /api/search): the same answers /api/find gives by scanning. No imports, so the page
 * bundles it.
 */

/** The first match after `from` (dir next) or before it (prev) in an ascending list, wrapping round when asked. */
export function nextMatch(seqs: Int32Array, from: number, dir: 'next' | 'prev', wrap: boolean): { seq: number | null; wrapped: boolean } {
  if (seqs.length === 0) return { seq: null, wrapped: false };
  // Index of the first match > from (next) or ≥ from (for prev, the one before it).
  const firstAbove = (x: number) => {
    let lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seqs[mid]! <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  if (dir === 'next') {
    const i = firstAbove(from);
    if (i < seqs.length) return { seq: seqs[i]!, wrapped: false };
    return wrap ? { seq: seqs[0]!, wrapped: true } : { seq: null, wrapped: false };
  }
  const i = firstAbove(from - 1) - 1;
  if (i >= 0) return { seq: seqs[i]!, wrapped: false };
  return wrap ? { seq: seqs[seqs.length - 1]!, wrapped: true } : { seq: null, wrapped: false };
}
