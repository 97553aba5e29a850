/**
 * Tolerance-aware comparison of two results of the same float32 computation
 * done by different contributors (different GPUs, summation orders, FMA use).
 * Elements must agree within τ of their own magnitude, plus τ times the
 * root-mean-square of the tile, which absorbs elements that cancelled to near
 * zero. τ = 16·√k·u follows the probabilistic rounding bound of a length-k
 * dot product (see freivalds.ts), doubled for two independent roundings.
 */
export function replicaTolerance(k: number): number {
  return 16 * Math.sqrt(Math.max(k, 1)) * 2 ** -24;
}

export function resultsAgree(x: Float32Array, y: Float32Array, k: number): boolean {
  if (x.length !== y.length) return false;
  let sq = 0;
  for (let i = 0; i < x.length; i++) {
    const a = x[i]!;
    const b = y[i]!;
    if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
    sq += (a * a + b * b) / 2;
  }
  const tau = replicaTolerance(k);
  const floor = tau * Math.sqrt(sq / Math.max(x.length, 1)) + 1e-30;
  for (let i = 0; i < x.length; i++) {
    const a = x[i]!;
    const b = y[i]!;
    if (!(Math.abs(a - b) <= tau * Math.max(Math.abs(a), Math.abs(b)) + floor)) return false;
  }
  return true;
}
