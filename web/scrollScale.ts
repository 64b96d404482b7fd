/**
 * A list taller than a browser lays out: a million rows of 24 px are 24M px, past Chromium's limit (about
 * 33.5M px) and Firefox's (about 17.9M). The scroller's spacer stops at MAX_SCROLL_PX and the scroll
 * position is mapped proportionally onto the rows (top at top, bottom at bottom), so the scrollbar still
 * spans the whole log; below the limit the mapping is the identity. Pure, no DOM.
 */

/** The tallest spacer drawn. */
export const MAX_SCROLL_PX = 8_000_000;

/** The spacer's height for rows `full` px tall. */
export const spacerHeight = (full: number): number => Math.min(full, MAX_SCROLL_PX);

/** The rows' own y at the top of the view, for scroll position `scrollTop` of a view `view` px tall. */
export function rowsY(scrollTop: number, full: number, view: number): number {
  if (full <= MAX_SCROLL_PX) return scrollTop;
  return (scrollTop / Math.max(1, MAX_SCROLL_PX - view)) * (full - view);
}

/** The scroll position that puts the rows' own y at the top of the view (the inverse of rowsY). */
export function scrollTopFor(y: number, full: number, view: number): number {
  if (full <= MAX_SCROLL_PX) return y;
  return (y / Math.max(1, full - view)) * (MAX_SCROLL_PX - view);
}
