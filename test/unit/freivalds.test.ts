import { describe, expect, it } from 'vitest';
import {
  CATCH_RELATIVE,
  escapeProbability,
  float32DotTolerance,
  freivaldsCheck,
  freivaldsRounds,
  probeNonFinite,
  ROUNDING_KAPPA,
  rowMagnitudes,
} from '../../shared/freivalds';
import { FLOAT32_MAX, outputMismatch } from '../../shared/result-compare';
import { matmulReference } from '../../shared/matmul-reference';
import { classMatrices, DATA_CLASSES, mulberry32, productRows, SUMMATION_ORDERS } from '../support/float32-orders';
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

  it('never rejects an honest result, whatever the summation order (FMA, split-K, lanes, pairwise) or data class', () => {
    const rowIds = [...Array(6).keys()];
    for (const [rows, kk, cols] of [
      [6, 300, 24],
      [6, 2048, 16],
    ] as const) {
      for (const data of DATA_CLASSES) {
        const { a: da, b: db } = classMatrices(data, rows, kk, cols, 40 + kk);
        for (const order of SUMMATION_ORDERS) {
          const c = productRows(order, da, db, rowIds.slice(0, rows), kk, cols);
          const r = freivaldsCheck(da, db, c, rows, kk, cols);
          expect(r.ok, `${data}, ${order.id}, k=${kk}: ${r.reason}`).toBe(true);
        }
      }
    }
  });

  it('accepts all-equal data at k = 4096, where float32 rounding errors all lean one way, by recomputing the rows exactly', () => {
    // A = 0.1, B = 1: a sequential float32 sum errs like k·u here, far past the √k model.
    const { a: ca, b: cb } = classMatrices('constant', 4, 4096, 32, 0);
    const c = productRows(SUMMATION_ORDERS[0]!, ca, cb, [0, 1, 2, 3], 4096, 32);
    const exact = 409.6000061035156; // 4096 × float32(0.1), in float64
    expect(Math.abs(c[0]! - exact) / exact).toBeGreaterThan(4 * ROUNDING_KAPPA * Math.sqrt(4096) * 2 ** -24); // the correlated error is real
    const r = freivaldsCheck(ca, cb, c, 4, 4096, 32);
    expect(r.ok).toBe(true);
    expect(r.recomputedRows).toBeGreaterThan(0);
    for (const row of r.exactRows ?? []) expect(row.values[0]).toBe(Math.fround(exact)); // what gets assembled for those rows
  });

  it('replaces a recomputed row by its exact values, so a change hidden in the rigorous bound is never assembled', () => {
    // Uniform data, k = 4096: 10⁻³ of an element is inside γ_k·(|A||B|)_ij, the worst any order may err, but far
    // outside what this row's rounding explains; when it sends the row to be recomputed, the exact row replaces it.
    const [rows, kk, cols] = [2, 4096, 32];
    const { a: ua, b: ub } = classMatrices('uniform', rows, kk, cols, 8);
    const honest = productRows(SUMMATION_ORDERS[0]!, ua, ub, [0, 1], kk, cols);
    const exact = matmulReference(ua, ub, rows, kk, cols);
    const random = mulberry32(4);
    let caughtOrCorrected = 0;
    for (let trial = 0; trial < 50; trial++) {
      const bad = honest.slice();
      bad[5]! *= 1.001;
      const r = freivaldsCheck(ua, ub, bad, rows, kk, cols, { random });
      const fixed = r.exactRows?.find((x) => x.row === 0);
      if (!r.ok || fixed) caughtOrCorrected++;
      if (fixed) expect(fixed.values[5]).toBe(exact[5]);
    }
    expect(caughtOrCorrected).toBe(50);
  });

  it('catches an element changed by 10⁻⁴ of its row magnitude M_i in each of 2,000 tiles', () => {
    // The guarantee: each escapes with probability ≤ escapeProbability(256) < 2⁻²⁰, so
    // 2,000 trials would show an escape with probability < 0.2%; a seeded generator makes the run repeatable.
    const [rows, kk, cols] = [8, 256, 16];
    const random = mulberry32(99);
    expect(escapeProbability(kk)).toBeLessThan(2 ** -20);
    for (const data of ['uniform', 'positive'] as const) {
      const { a: da, b: db } = classMatrices(data, rows, kk, cols, 5);
      const honest = productRows(SUMMATION_ORDERS[1]!, da, db, [...Array(rows).keys()], kk, cols);
      const { magnitude } = rowMagnitudes(da, db, rows, kk, cols);
      let escapes = 0;
      for (let trial = 0; trial < 1000; trial++) {
        const bad = honest.slice();
        const at = Math.floor(random() * bad.length);
        bad[at]! += (random() < 0.5 ? -1 : 1) * CATCH_RELATIVE * magnitude[Math.floor(at / cols)]!;
        if (freivaldsCheck(da, db, bad, rows, kk, cols, { random }).ok) escapes++;
      }
      expect(escapes, data).toBe(0);
    }
  });

  it('catches +1.0 on one element of a 64×256×64 tile, wherever it is', () => {
    const da = randomMatrix(64, 256, 7);
    const db = randomMatrix(256, 64, 8);
    const honest = matmulFloat32(da, db, 64, 256, 64);
    const random = mulberry32(3);
    for (let trial = 0; trial < 200; trial++) {
      const bad = honest.slice();
      const at = Math.floor(random() * bad.length);
      bad[at]! += 1;
      const r = freivaldsCheck(da, db, bad, 64, 256, 64, { random });
      expect(r.ok).toBe(false);
      expect(r.badRow).toBe(Math.floor(at / 64));
    }
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

  it('rejects a tile scaled by 1 + 1e-3, and one of all 42.0', () => {
    const c = matmulReference(a, b, m, k, n).map((x) => x * 1.001);
    expect(freivaldsCheck(a, b, c, m, k, n).ok).toBe(false);
    expect(freivaldsCheck(a, b, new Float32Array(m * n).fill(42), m, k, n).ok).toBe(false);
  });

  it('chooses rounds from k so a 10⁻⁴·M_i change escapes with probability ≤ 2⁻²⁰, up to k = 65,536', () => {
    let last = 0;
    for (const kk of [1, 16, 64, 256, 1024, 4096, 8192, 65536]) {
      const rounds = freivaldsRounds(kk);
      expect(rounds).toBeGreaterThanOrEqual(last);
      expect(escapeProbability(kk, rounds)).toBeLessThanOrEqual(2 ** -20);
      expect(escapeProbability(kk, rounds - 1)).toBeGreaterThan(2 ** -20); // and no more than that
      last = rounds;
    }
  });

  it('derives its per-element tolerance from k and float32 epsilon', () => {
    expect(float32DotTolerance(1)).toBeCloseTo(2 ** -24, 10);
    expect(float32DotTolerance(16)).toBeCloseTo(16 * 2 ** -24, 10); // short sums: the rigorous bound
    expect(float32DotTolerance(4096)).toBeCloseTo(8 * 64 * 2 ** -24, 10); // long sums: 8·√k·u
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
