/**
 * The per-GFN memory attributes KVM keeps (an xarray in the kernel, §1.4): which GFNs are private. Kept
 * as sorted, disjoint, half-open GFN ranges so a 2 GiB guest_memfd slot set private is one entry.
 */
export type PrivateRanges = readonly { start: bigint; end: bigint }[];

export function attributeIsPrivate(r: PrivateRanges, gfn: bigint): boolean {
  return r.some((x) => gfn >= x.start && gfn < x.end);
}

/** Set [start, end) private or shared; the result stays sorted and merged. */
export function setAttribute(r: PrivateRanges, start: bigint, end: bigint, priv: boolean): PrivateRanges {
  const out: { start: bigint; end: bigint }[] = [];
  for (const x of r) {
    if (x.end <= start || x.start >= end) out.push(x);
    else {
      if (x.start < start) out.push({ start: x.start, end: start });
      if (x.end > end) out.push({ start: end, end: x.end });
    }
  }
  if (priv) out.push({ start, end });
  out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const merged: { start: bigint; end: bigint }[] = [];
  for (const x of out) {
    const last = merged.at(-1);
    if (last !== undefined && last.end >= x.start) merged[merged.length - 1] = { start: last.start, end: x.end > last.end ? x.end : last.end };
    else merged.push(x);
  }
  return merged;
}

/** Every GFN of [start, end) private: the ranges are merged, so one range must cover it all. */
export function rangeIsPrivate(r: PrivateRanges, start: bigint, end: bigint): boolean {
  return r.some((x) => x.start <= start && x.end >= end);
}
