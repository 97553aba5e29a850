/**
 * Tolerance-aware comparison of two results of the same float32 matrix
 * product done by different contributors (different GPUs, summation orders,
 * FMA use), on the model freivalds.ts checks with: an honest element's
 * rounding error is at most about κ·√k·u times the scale of its partial sums,
 * which for data that do not cancel in a structured way is the element itself
 * or, where it cancelled to near zero, its row's root-mean-square. Two honest
 * errors add in quadrature, so elements must agree within
 *     τ·(max(|x|, |y|) + rms(row)),   τ = √2·z·κ·√k·u ≈ 20·√k·u.
 * Measured (bench/honest-error.ts, docs/verification.md): every pair of the
 * eleven summation orders over six data classes up to k = 4096 agrees with at
 * most 0.4 of τ (all-equal data, whose errors lean one way, is the worst; it
 * reaches τ near k = 16,000). This comparison does not replace Freivalds'
 * check: every replica is checked on its own first.
 */
export function replicaTolerance(k: number): number {
  return Math.SQRT2 * REPLICA_Z_KAPPA * Math.sqrt(Math.max(k, 1)) * 2 ** -24;
}

/** z·κ of freivalds.ts (7.13 × 2), kept here so this module needs no import from it. */
const REPLICA_Z_KAPPA = 7.13 * 2;

/**
 * Whether two contributors' tiles agree elementwise. `cols` gives the rows
 * whose root-mean-square floors an element's tolerance; without it the whole
 * tile is one row (a looser floor where row magnitudes differ).
 */
export function resultsAgree(x: Float32Array, y: Float32Array, k: number, cols: number = x.length): boolean {
  if (x.length !== y.length) return false;
  const width = Math.max(1, Math.min(cols, x.length));
  const tau = replicaTolerance(k);
  for (let start = 0; start < x.length; start += width) {
    const end = Math.min(x.length, start + width);
    let sq = 0;
    for (let i = start; i < end; i++) {
      const a = x[i]!;
      const b = y[i]!;
      if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
      sq += (a * a + b * b) / 2;
    }
    const floor = tau * Math.sqrt(sq / (end - start)) + 1e-30;
    for (let i = start; i < end; i++) {
      const a = x[i]!;
      const b = y[i]!;
      if (!(Math.abs(a - b) <= tau * Math.max(Math.abs(a), Math.abs(b)) + floor)) return false;
    }
  }
  return true;
}

/** The largest finite float32, (2 − 2⁻²³)·2¹²⁷ ≈ 3.4028·10³⁸. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Whether a float32 sum of K terms whose magnitudes add up to `magnitude` may
 * overflow in some summation order: each of the K roundings can grow a partial
 * sum by 2⁻²⁴ of itself, so an honest device may reach magnitude·(1 + K·2⁻²³)
 * (twice the first-order bound, for slack). The upload refuses and the
 * verifier excuses on this same rule, so no input passes one and fails the other.
 */
export function float32SumMayOverflow(magnitude: number, k: number): boolean {
  return !(magnitude * (1 + k * 2 ** -23) < FLOAT32_MAX);
}

/**
 * First element of a sample's output that disagrees with the reference's,
 * or undefined when they agree. Finite elements agree within
 * |got − want| ≤ abs·max(1, largest finite |want|) + rel·|want|; a non-finite
 * element agrees only with a non-finite one at the same place: when the
 * reference itself overflows there (or yields NaN), so does any honest
 * float32 device, whichever of ±Infinity or NaN its order of operations gives.
 */
export function outputMismatch(got: Float32Array, want: Float32Array, tol: { abs: number; rel: number }): { index: number; got: number; want: number } | undefined {
  if (got.length !== want.length) return { index: Math.min(got.length, want.length), got: NaN, want: NaN };
  let scale = 1;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    if (Number.isFinite(w)) scale = Math.max(scale, Math.abs(w));
  }
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (Number.isFinite(w) === Number.isFinite(g)) continue;
      return { index: i, got: g, want: w };
    }
    if (!(Math.abs(g - w) <= tol.abs * scale + tol.rel * Math.abs(w))) return { index: i, got: g, want: w };
  }
  return undefined;
}

/** Index of the first NaN or ±Infinity in `x`, or −1. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}
