import { describe, expect, it } from 'vitest';
import { float32DotTolerance, freivaldsCheck } from '../../shared/freivalds';
import { matmulReference } from '../../shared/matmul-reference';
import { randomMatrix } from '../support/matrices';

/** float32 accumulation in index order: an honest but sloppy GPU. */
function matmulFloat32(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s = Math.fround(s + Math.fround(a[i * k + p]! * b[p * n + j]!));
      c[i * n + j] = s;
    }
  return c;
}

describe("Freivalds' check", () => {
  const [m, k, n] = [48, 300, 40];
  const a = randomMatrix(m, k, 1);
  const b = randomMatrix(k, n, 2);

  it('accepts a right tile, including float32-accumulated ones', () => {
    expect(freivaldsCheck(a, b, matmulReference(a, b, m, k, n), m, k, n).ok).toBe(true);
    const sloppy = matmulFloat32(a, b, m, k, n);
    for (let trial = 0; trial < 20; trial++) expect(freivaldsCheck(a, b, sloppy, m, k, n).ok).toBe(true);
  });

  it('accepts float32 sums of same-sign data, where rounding errors do not cancel', () => {
    const pa = randomMatrix(8, 4096, 3).map(Math.abs);
    const pb = randomMatrix(4096, 8, 4).map(Math.abs);
    expect(freivaldsCheck(pa, pb, matmulFloat32(pa, pb, 8, 4096, 8), 8, 4096, 8).ok).toBe(true);
  });

  it('rejects a tile with one wrong element, wherever it is', () => {
    const c = matmulReference(a, b, m, k, n);
    for (const idx of [0, 17, c.length - 1]) {
      const bad = c.slice();
      bad[idx]! += 0.5; // |C| is about 6 here
      const r = freivaldsCheck(a, b, bad, m, k, n);
      expect(r.ok).toBe(false);
      expect(r.badRow).toBe(Math.floor(idx / n));
    }
  });

  it('rejects NaN, Infinity and wrong sizes', () => {
    const c = matmulReference(a, b, m, k, n);
    const nan = c.slice();
    nan[5] = NaN;
    expect(freivaldsCheck(a, b, nan, m, k, n).ok).toBe(false);
    const inf = c.slice();
    inf[5] = Infinity;
    expect(freivaldsCheck(a, b, inf, m, k, n).ok).toBe(false);
    expect(freivaldsCheck(a, b, c.subarray(1), m, k, n).ok).toBe(false);
  });

  it('rejects a tile scaled by 1 + 1e-3', () => {
    const c = matmulReference(a, b, m, k, n).map((x) => x * 1.001);
    expect(freivaldsCheck(a, b, c, m, k, n).ok).toBe(false);
  });

  it('derives its tolerance from K and float32 epsilon', () => {
    expect(float32DotTolerance(1, 1)).toBeCloseTo(2 ** -24, 10);
    expect(float32DotTolerance(16, 16)).toBeCloseTo(16 * 2 ** -24, 10); // short sums: the rigorous bound
    expect(float32DotTolerance(4096, 512)).toBeCloseTo(8 * 64 * 2 ** -24, 10); // long sums: λ·√k·u
  });
});
