import { describe, expect, it } from 'vitest';
import { float32DotTolerance, freivaldsCheck, probeNonFinite } from '../../shared/freivalds';
import { FLOAT32_MAX, outputMismatch } from '../../shared/result-compare';
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

describe('non-finite results against the exact product', () => {
  it('finds an overflow where the terms of a dot product add up past float32, even when they cancel', () => {
    // Row 0: 3e38 + 3e38 overflows. Row 1: 3e38·1 + 3e38·(−1) is 0 exactly, but a float32 sum in another order may overflow first.
    const a = Float32Array.from([3e38, 3e38, 3e38, 3e38]);
    const b = Float32Array.from([1, 1]);
    const bCancel = Float32Array.from([1, -1]);
    expect(probeNonFinite(a, b, Float32Array.from([Infinity, Infinity]), 2, 2, 1)).toMatchObject({ kind: 'overflow', row: 0, col: 0, count: 2 });
    const cancel = probeNonFinite(a, bCancel, Float32Array.from([NaN, NaN]), 2, 2, 1);
    expect(cancel).toMatchObject({ kind: 'overflow', count: 2 });
    expect(cancel.kind === 'overflow' && cancel.magnitude).toBeGreaterThan(FLOAT32_MAX);
  });

  it('convicts a NaN where every summation order stays finite, even beside genuine overflows', () => {
    const a = Float32Array.from([3e38, 3e38, 1, 2]); // row 0 overflows, row 1 is 3
    const b = Float32Array.from([1, 1]);
    expect(probeNonFinite(a, b, Float32Array.from([Infinity, NaN]), 2, 2, 1)).toMatchObject({ kind: 'wrong', row: 1, col: 0, value: 3 });
    expect(probeNonFinite(a, b, Float32Array.from([Infinity, 3]), 2, 2, 1)).toMatchObject({ kind: 'overflow', row: 0, count: 1 });
    expect(probeNonFinite(a, b, Float32Array.from([1, 3]), 2, 2, 1)).toEqual({ kind: 'finite' });
  });

  it('probes a bounded, random sample of many non-finite elements', () => {
    const n = 64;
    const a = new Float32Array(n * 2).fill(3e38);
    const b = Float32Array.from([1, 1]);
    const c = new Float32Array(n).fill(Infinity);
    c[n - 1] = NaN;
    a[2 * (n - 1)] = 1; // the last row is small: its dot product is 2
    a[2 * (n - 1) + 1] = 1;
    let caught = 0;
    for (let trial = 0; trial < 200; trial++) if (probeNonFinite(a, b, c, n, 2, 1, { samples: 16 }).kind === 'wrong') caught++;
    // The one wrong element among 64 is drawn with probability 16/64 each time.
    expect(caught).toBeGreaterThan(20);
    expect(caught).toBeLessThan(90);
  });
});

describe('comparing outputs that hold NaN or Infinity', () => {
  const tol = { abs: 1e-4, rel: 1e-3 };
  it('agrees where both are non-finite, whichever kind, and nowhere else', () => {
    expect(outputMismatch(Float32Array.from([NaN, 1, -Infinity]), Float32Array.from([Infinity, 1, NaN]), tol)).toBeUndefined();
    expect(outputMismatch(Float32Array.from([NaN, 1]), Float32Array.from([2, 1]), tol)).toMatchObject({ index: 0, want: 2 });
    expect(outputMismatch(Float32Array.from([2, 1]), Float32Array.from([Infinity, 1]), tol)).toMatchObject({ index: 0, got: 2 });
    expect(outputMismatch(Float32Array.from([Infinity, 1.01]), Float32Array.from([Infinity, 1]), tol)).toMatchObject({ index: 1 });
  });
});
