import { describe, expect, it } from 'vitest';
import { colPanel, planMatmulTiles, rowPanel, TilingError } from '../../shared/tiling';

function coverage(m: number, k: number, n: number, opts = {}) {
  const plan = planMatmulTiles({ m, k, n }, opts);
  const hits = new Uint8Array(m * n);
  for (const t of plan.tiles) {
    expect(t.rows).toBeGreaterThan(0);
    expect(t.cols).toBeGreaterThan(0);
    for (let i = t.row0; i < t.row0 + t.rows; i++) for (let j = t.col0; j < t.col0 + t.cols; j++) hits[i * n + j]!++;
  }
  return { plan, hits };
}

describe('matmul tiling', () => {
  it.each([
    [1, 1, 1],
    [17, 33, 65],
    [1000, 3, 7],
    [200, 130, 150],
    [4096, 4096, 4096],
    [1, 5000, 3000],
  ])('covers C exactly once for %i×%i×%i', (m, k, n) => {
    const { plan, hits } = coverage(m, k, n);
    expect(hits.every((h) => h === 1)).toBe(true);
    expect(plan.tiles.length).toBe(plan.rowPanels * plan.colPanels);
    expect(plan.tiles.map((t) => t.index)).toEqual(plan.tiles.map((_, i) => i));
  });

  it('keeps every panel within the device limit and the panel budget', () => {
    const maxPanelBytes = 4 * 1024 * 1024;
    const plan = planMatmulTiles({ m: 4096, k: 4096, n: 4096 }, { maxPanelBytes });
    expect(plan.tileRows * 4096 * 4).toBeLessThanOrEqual(maxPanelBytes);
    const small = planMatmulTiles({ m: 300, k: 100_000, n: 300 }, { limits: { maxStorageBufferBindingSize: 1_000_000, maxBufferSize: 1_000_000 } });
    expect(small.tileRows * 100_000 * 4).toBeLessThanOrEqual(1_000_000);
    expect(coverage(300, 100_000, 300, { limits: { maxStorageBufferBindingSize: 1_000_000, maxBufferSize: 1_000_000 } }).hits.every((h) => h === 1)).toBe(true);
  });

  it('spreads a job over several shards', () => {
    expect(planMatmulTiles({ m: 4096, k: 4096, n: 4096 }).tiles.length).toBeGreaterThanOrEqual(32);
    expect(planMatmulTiles({ m: 200, k: 130, n: 150 }, { targetTiles: 6 }).tiles.length).toBeGreaterThan(1);
  });

  it('refuses a K so long that one row does not fit', () => {
    expect(() => planMatmulTiles({ m: 2, k: 10_000_000, n: 2 })).toThrow(TilingError);
  });

  it('cuts panels out of row-major matrices', () => {
    const src = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]); // 3×4
    expect(Array.from(rowPanel(src, 4, 1, 2))).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(Array.from(colPanel(src, 3, 4, 1, 2))).toEqual([1, 2, 5, 6, 9, 10]);
  });
});
