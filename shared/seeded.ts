/**
 * Seeded test matrices from a counter-based hash: element i depends only on
 * (seed, i), so a contributor builds the whole matrix locally while the
 * coordinator recomputes just the elements it checks. No dependencies: the
 * page's worker imports it.
 */

/** Elements of C each benchmark run reports per shape, at positions derived from the seed. */
export const BENCHMARK_PROBES = 16;

export interface BenchmarkShape {
  m: number;
  k: number;
  n: number;
}

/** A 32-bit integer hash (lowbias32): element i of a seeded matrix depends only on (seed, i). */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Element `i` of the seeded matrix: uniform in [-1, 1), exactly representable in float32. */
export function seededElement(seed: number, i: number): number {
  return (mix((mix(seed) + i) >>> 0) >>> 8) / 8388608 - 1;
}

export function seededMatrix(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = seededElement(seed, i);
  return out;
}

/** Seeds of A and B for one shape of a benchmark. */
export function inputSeeds(seed: number, shapeIndex: number): { a: number; b: number } {
  return { a: mix(seed ^ (2 * shapeIndex + 1)), b: mix(seed ^ (2 * shapeIndex + 2)) };
}

/** The flat indices of C a run must report for a shape. */
export function probePositions(shape: BenchmarkShape, seed: number, shapeIndex: number): number[] {
  const total = shape.m * shape.n;
  const out: number[] = [];
  for (let p = 0; p < BENCHMARK_PROBES; p++) out.push(mix(seed ^ Math.imul(shapeIndex + 1, 0x9e3779b9) ^ (p * 0x85ebca6b)) % total);
  return out;
}

/**
 * Whether a reported element of C is right: within the float32 rounding
 * bound γ_K·Σ|a||b| of the float64 dot product (any summation order passes;
 * a wrong element is off by the size of the values).
 */
export function probeIsRight(value: number, shape: BenchmarkShape, seeds: { a: number; b: number }, position: number): boolean {
  const { k, n } = shape;
  const i = Math.floor(position / n);
  const j = position - i * n;
  const row = Float32Array.from({ length: k }, (_, q) => seededElement(seeds.a, i * k + q));
  const col = Float32Array.from({ length: k }, (_, q) => seededElement(seeds.b, q * n + j));
  return dotErrorRatio(value, k, row, 0, 1, col, 0, 1) <= 1;
}

/**
 * |value − a·b| over the float32 rounding bound γ_K·Σ|a_q b_q| of the float64
 * dot product of a (from aOffset, every aStride) and b (likewise): ≤ 1 for a
 * correct float32 result in any summation order; Infinity for NaN.
 */
export function dotErrorRatio(value: number, k: number, a: Float32Array, aOffset: number, aStride: number, b: Float32Array, bOffset: number, bStride: number): number {
  let ref = 0;
  let mag = 0;
  for (let q = 0; q < k; q++) {
    const x = a[aOffset + q * aStride]! * b[bOffset + q * bStride]!;
    ref += x;
    mag += Math.abs(x);
  }
  const u = 2 ** -24;
  const gamma = (k * u) / (1 - k * u);
  const ratio = Math.abs(value - ref) / (gamma * mag + 1e-30);
  return Number.isNaN(ratio) ? Infinity : ratio;
}
