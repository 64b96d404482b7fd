/** The sequence view's scroll scaling for lists taller than a browser lays out (web/scrollScale.ts). */
import { describe, expect, it } from 'vitest';
import { MAX_SCROLL_PX, rowsY, scrollTopFor, spacerHeight } from '../../web/scrollScale.ts';

describe('scroll scaling', () => {
  const view = 900;

  it('is the identity while the rows fit', () => {
    const full = 100_001 * 24;
    expect(spacerHeight(full)).toBe(full);
    for (const y of [0, 1234, full - view]) {
      expect(rowsY(y, full, view)).toBe(y);
      expect(scrollTopFor(y, full, view)).toBe(y);
    }
  });

  it('maps the whole scroll range onto a million rows: top to the first row, bottom to the last', () => {
    const full = 1_000_103 * 24;
    expect(spacerHeight(full)).toBe(MAX_SCROLL_PX);
    expect(rowsY(0, full, view)).toBe(0);
    expect(rowsY(MAX_SCROLL_PX - view, full, view)).toBeCloseTo(full - view, 6);
    // Row 500,000 is reached, and scrolled back to, exactly (within a pixel).
    const y = 500_000 * 24;
    expect(Math.abs(rowsY(scrollTopFor(y, full, view), full, view) - y)).toBeLessThan(1);
    expect(scrollTopFor(y, full, view)).toBeLessThan(MAX_SCROLL_PX);
  });
});
