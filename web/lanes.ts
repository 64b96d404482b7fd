/**
 * Where the sequence view's lane labels go so that none overlaps another, whatever the number of actors:
 * three vCPUs make 14 lanes, about 28 px apart in a 1024 px window, and `guest.vcpu0` is 70 px wide.
 * Labels stay whole and horizontal as long as possible: in one row if they fit, else staggered over 2, 3
 * or 4 rows (neighbours in a row are then 2–4 lanes apart), each joined to its lane by a tick; past that,
 * they are written vertically. Pure (no DOM): widths are measured by the caller.
 */
export interface LanePlacement {
  /** 'rows': horizontal labels, `rows` rows; 'vertical': one row of labels written bottom to top. */
  mode: 'rows' | 'vertical';
  rows: number;
  /** Per label: left edge (px from the header's left) and row. */
  labels: { left: number; row: number }[];
  /** Header height in px. */
  height: number;
}

export const LABEL_ROW_H = 15;
const GAP = 6;
const MAX_ROWS = 4;
const PAD_TOP = 4;

/** `centres[i]` is lane i's x, `widths[i]` its label's width; `width` the header's. */
export function placeLaneLabels(centres: readonly number[], widths: readonly number[], width: number, lineHeight = 14): LanePlacement {
  const n = centres.length;
  for (let rows = 1; rows <= MAX_ROWS; rows++) {
    const labels = centres.map((c, i) => ({ left: Math.min(Math.max(2, c - widths[i]! / 2), width - 2 - widths[i]!), row: i % rows }));
    let fits = labels.every((l) => l.left >= 2);
    for (let i = rows; fits && i < n; i++) {
      const before = labels[i - rows]!;
      if (before.left + widths[i - rows]! + GAP > labels[i]!.left) fits = false;
    }
    if (fits) return { mode: 'rows', rows, labels, height: PAD_TOP + rows * LABEL_ROW_H + 6 };
  }
  const tallest = Math.max(0, ...widths);
  return { mode: 'vertical', rows: 1, labels: centres.map((c) => ({ left: c - lineHeight / 2, row: 0 })), height: Math.ceil(tallest) + 10 };
}
