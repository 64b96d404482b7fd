import { describe, expect, it } from 'vitest';
import { arrows, runExample } from '../helpers.ts';

describe('scratch', () => {
  it('runs gmem-punch-hole-fault', () => {
    const r = runExample('gmem-punch-hole-fault');
    console.log(r.outcome);
    const a = arrows(r);
    const i = a.findIndex((x) => x.includes('fallocate'));
    console.log(a.slice(i - 2).join('\n'));
    expect(r.outcome.status).toBe('ok');
  });
});
