/**
 * CPU reference for C = A·B with row-major float32 operands. Accumulates in
 * float64, so it is at least as accurate as any float32 GPU kernel; tests
 * compare GPU results with it, and simulated contributors compute with it.
 */
export function matmulReference(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  if (a.length !== m * k) throw new RangeError(`A has ${a.length} elements, expected ${m}×${k}`);
  if (b.length !== k * n) throw new RangeError(`B has ${b.length} elements, expected ${k}×${n}`);
  const c = new Float32Array(m * n);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]!;
      if (aip === 0) continue;
      const bOff = p * n;
      for (let j = 0; j < n; j++) row[j]! += aip * b[bOff + j]!;
    }
    for (let j = 0; j < n; j++) c[i * n + j] = row[j]!;
  }
  return c;
}

/**
 * Largest |x - ref| / (atol + rtol·|ref|) over all elements; ≤ 1 means "within tolerance".
 * NaN anywhere gives Infinity, so a NaN never passes.
 */
export function maxToleranceRatio(x: Float32Array, ref: Float32Array, rtol: number, atol: number): number {
  if (x.length !== ref.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    const diff = Math.abs(x[i]! - ref[i]!);
    const ratio = diff / (atol + rtol * Math.abs(ref[i]!));
    if (!(ratio <= worst)) worst = Number.isNaN(ratio) ? Infinity : Math.max(worst, ratio);
  }
  return worst;
}
