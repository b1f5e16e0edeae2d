import { describe, expect, it } from 'vitest';
import { createMatrix, selectRows } from '../../models/matrix.ts';

const base = { level: 'node' as const, windowMs: 100, featureNames: ['a', 'b'], values: Float64Array.of(1, 2, 3, 4, 5, 6, 7, 8), contextIds: new Uint16Array(4), contexts: ['pbft/n4'] };

describe('feature matrix series', () => {
  it('without series given, is one series of adjacent windows', () => {
    const m = createMatrix(base);
    expect(Array.from(m.seriesIds)).toEqual([0, 0, 0, 0]);
    expect(Array.from(m.windowStartMs)).toEqual([0, 100, 200, 300]);
  });

  it('refuses series or window starts of another length, naming the field', () => {
    expect(() => createMatrix({ ...base, seriesIds: new Uint32Array(3) })).toThrow(/seriesIds: expected 4 entries \(one per row\), got 3/);
    expect(() => createMatrix({ ...base, windowStartMs: new Float64Array(5) })).toThrow(/windowStartMs: expected 4 entries \(one per row\), got 5/);
  });

  it('keeps each selected row\'s series and window start', () => {
    const m = createMatrix({ ...base, seriesIds: Uint32Array.of(0, 1, 0, 1), windowStartMs: Float64Array.of(0, 0, 100, 100) });
    const picked = selectRows(m, Uint8Array.of(0, 1, 1, 0));
    expect(picked.rows).toBe(2);
    expect(Array.from(picked.values)).toEqual([3, 4, 5, 6]);
    expect(Array.from(picked.seriesIds)).toEqual([1, 0]);
    expect(Array.from(picked.windowStartMs)).toEqual([0, 100]);
  });
});
