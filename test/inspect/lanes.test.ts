/** Lane labels (web/lanes.ts) and field lists cut to a row (web/fieldsText.ts): pure layout, no browser. */
import { describe, expect, it } from 'vitest';
import { LABEL_ROW_H, placeLaneLabels } from '../../web/lanes.ts';
import { splitFields, truncateFields } from '../../web/fieldsText.ts';

/** Lanes as the sequence view spaces them: a gutter, then equal columns. */
function lanes(n: number, width: number, gutter = 64): number[] {
  const w = (width - gutter) / n;
  return Array.from({ length: n }, (_, i) => gutter + (i + 0.5) * w);
}

function boxes(centres: number[], widths: number[], width: number, lineHeight = 14) {
  const p = placeLaneLabels(centres, widths, width, lineHeight);
  return {
    p,
    boxes: p.labels.map((l, i) =>
      p.mode === 'vertical' ? { x: l.left, y: 4, w: lineHeight, h: widths[i]! } : { x: l.left, y: 4 + l.row * LABEL_ROW_H, w: widths[i]!, h: lineHeight },
    ),
  };
}

function overlaps(bs: { x: number; y: number; w: number; h: number }[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < bs.length; i++) for (let j = i + 1; j < bs.length; j++) {
    const a = bs[i]!;
    const b = bs[j]!;
    if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) out.push(`${i}/${j}`);
  }
  return out;
}

describe('lane labels', () => {
  const label = (id: string) => id.length * 6.6;
  const ids14 = ['guest.vcpu0', 'guest.vcpu1', 'guest.vcpu2', 'hw.cpu0', 'hw.cpu1', 'hw.cpu2', 'hw.mem', 'tdx', 'kvm.vcpu0', 'kvm.vcpu1', 'kvm.vcpu2', 'kvm.vm', 'kvm.mmu', 'vmm'];

  it('one row when they fit side by side, centred on their lanes', () => {
    const ids = ids14.filter((id) => !/[12]$/.test(id));
    const { p, boxes: b } = boxes(lanes(ids.length, 660), ids.map(label), 660);
    expect(p).toMatchObject({ mode: 'rows', rows: 1 });
    expect(overlaps(b)).toEqual([]);
    const c = lanes(ids.length, 660);
    b.forEach((x, i) => expect(x.x + x.w / 2).toBeCloseTo(c[i]!, 5));
  });

  it('14 lanes in the sequence pane of a 1024 px window: staggered, none overlapping, all inside', () => {
    for (const width of [450, 380, 320]) {
      const { p, boxes: b } = boxes(lanes(14, width), ids14.map(label), width);
      expect(p.mode, `${width}`).toBe('rows');
      expect(p.rows).toBeGreaterThan(1);
      expect(overlaps(b), `${width}`).toEqual([]);
      for (const x of b) expect(x.x >= 0 && x.x + x.w <= width).toBe(true);
      expect(p.height).toBe(4 + p.rows * LABEL_ROW_H + 6);
    }
  });

  it('past four rows, vertical labels, one per lane', () => {
    const ids = Array.from({ length: 24 }, (_, i) => `guest.vcpu${i}`);
    const { p, boxes: b } = boxes(lanes(24, 450), ids.map(label), 450);
    expect(p.mode).toBe('vertical');
    expect(overlaps(b)).toEqual([]);
    expect(p.height).toBe(Math.ceil(label('guest.vcpu10')) + 10);
  });
});

describe('field lists cut to a row', () => {
  const busy = 'RAX=0x8000020000000000 (TDX_OPERAND_BUSY) RCX=0x200000 RDX=0x0 R8=0x181000';

  it('a field ends where the next `name=` starts, so a status name stays with its value', () => {
    expect(splitFields(busy)).toEqual(['RAX=0x8000020000000000 (TDX_OPERAND_BUSY)', 'RCX=0x200000', 'RDX=0x0', 'R8=0x181000']);
  });

  it('whole fields from the left, then how many were left out', () => {
    expect(truncateFields(busy, 200)).toBe(busy);
    expect(truncateFields(busy, 60)).toBe('RAX=0x8000020000000000 (TDX_OPERAND_BUSY) RCX=0x200000 …+2');
    expect(truncateFields(busy, 50)).toBe('RAX=0x8000020000000000 (TDX_OPERAND_BUSY) …+3');
    for (const n of [50, 60, 70]) expect(truncateFields(busy, n).length).toBeLessThanOrEqual(n);
    // Not even the first field fits: it is cut, and the rest counted.
    expect(truncateFields(busy, 20)).toBe('RAX=0x8000020000… +3');
    expect(truncateFields('gpa=0x8000fe000000', 10)).toBe('gpa=0x800…');
  });
});
