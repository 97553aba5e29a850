/**
 * Freivalds' test for a tile C ≈ A·B (A: rows×k, B: k×cols, C: rows×cols,
 * all row-major float32). Each round draws a random vector r and compares
 * C·r with A·(B·r): O(k·(rows+cols) + rows·cols) work instead of O(rows·k·cols).
 *
 * Tolerance. An honest float32 dot product of length k differs from the exact
 * one by at most γ·Σ_p|a_ip||b_pj|. The worst case over every summation order
 * is γ = k·u/(1 − k·u), u = 2⁻²⁴ (Higham, Accuracy and Stability of Numerical
 * Algorithms, Th. 3.5); it grows like k although real errors grow like √k,
 * so for long sums we use the probabilistic bound γ = λ·√k·u with λ = 8
 * (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019, Th. 2.4: it fails with
 * probability at most 2k·exp(−λ²(1−u)²/2) ≈ 2.5·10⁻¹⁴·k under their model of
 * independent rounding errors), and the rigorous one whenever it is smaller
 * (k < 64). Multiplying by r and summing over j gives, for row i,
 *     |(C·r)_i − (A·B·r)_i| ≤ γ · (|A|·(|B|·|r|))_i,
 * computed in float64 alongside the check; the float64 evaluation itself adds
 * at most (k+cols+2)·2⁻⁵³ relative, included. Subnormals flushed to zero add
 * at most 2⁻¹²⁶ per product, covered by the absolute term. An error smaller
 * than this tolerance cannot be told apart from honest rounding; the trust
 * layer's canaries and replication cover errors that small.
 *
 * Error probability. r has independent standard normal entries, drawn after the
 * result arrived. For a wrong row e_i = (C − A·B)_i the residual e_i·r is
 * N(0, ‖e_i‖²), so one round accepts it with probability
 * P(|e_i·r| ≤ τ_i) ≤ 2τ_i / (‖e_i‖·√(2π)) < 0.8·τ_i/‖e_i‖; over R independent rounds
 * the chance of accepting is at most (0.8·τ_i/‖e_i‖)^R. An error ten times the
 * tolerance therefore survives three rounds with probability below 5.2·10⁻⁴, and
 * one a thousand times larger below 5.2·10⁻¹⁰. Errors below τ are by definition
 * indistinguishable from honest rounding.
 */

import { FLOAT32_MAX, float32SumMayOverflow } from './result-compare';

export interface FreivaldsOptions {
  /** Independent random vectors; each one multiplies the detection power. */
  rounds?: number;
  /** Source of uniform randoms in [0, 1); defaults to crypto.getRandomValues. */
  random?: () => number;
}

export interface FreivaldsResult {
  ok: boolean;
  /** Largest |C·r − A·B·r| / tolerance seen; > 1 means rejected. */
  worstRatio: number;
  /** First row that failed, when rejected. */
  badRow?: number;
  reason?: string;
}

const U = 2 ** -24;
const FTZ_PER_PRODUCT = 2 ** -126;

/** Higham & Mary's λ: the bound fails with probability ≤ 2k·exp(−λ²/2) per dot product. */
const LAMBDA = 8;

export function float32DotTolerance(k: number, cols: number): number {
  const ku = k * U;
  const worstCase = ku < 1 ? ku / (1 - ku) : Infinity;
  const probabilistic = LAMBDA * Math.sqrt(k) * U;
  return Math.min(worstCase, probabilistic) + (k + cols + 2) * 2 ** -53;
}

export function cryptoRandom(): () => number {
  const buf = new Uint32Array(256);
  let i = buf.length;
  return () => {
    if (i === buf.length) {
      globalThis.crypto.getRandomValues(buf);
      i = 0;
    }
    return (buf[i++]! + 0.5) / 2 ** 32;
  };
}

function gaussianVector(n: number, random: () => number): Float64Array {
  const r = new Float64Array(n);
  for (let j = 0; j < n; j += 2) {
    // Box–Muller; random() is never 0, so the log is finite.
    const radius = Math.sqrt(-2 * Math.log(random()));
    const angle = 2 * Math.PI * random();
    r[j] = radius * Math.cos(angle);
    if (j + 1 < n) r[j + 1] = radius * Math.sin(angle);
  }
  return r;
}

export function freivaldsCheck(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  rows: number,
  k: number,
  cols: number,
  opts: FreivaldsOptions = {},
): FreivaldsResult {
  if (a.length !== rows * k || b.length !== k * cols || c.length !== rows * cols) {
    return { ok: false, worstRatio: Infinity, reason: 'operand sizes do not match the tile' };
  }
  for (let i = 0; i < c.length; i++) {
    if (!Number.isFinite(c[i]!)) return { ok: false, worstRatio: Infinity, badRow: Math.floor(i / cols), reason: 'result contains NaN or Infinity' };
  }
  const gamma = float32DotTolerance(k, cols);
  const random = opts.random ?? cryptoRandom();
  const rounds = opts.rounds ?? 3;
  const br = new Float64Array(k);
  const babs = new Float64Array(k);
  let worst = 0;
  for (let round = 0; round < rounds; round++) {
    const r = gaussianVector(cols, random);
    let rAbsSum = 0;
    for (let j = 0; j < cols; j++) rAbsSum += Math.abs(r[j]!);
    for (let p = 0; p < k; p++) {
      let s = 0;
      let sAbs = 0;
      const off = p * cols;
      for (let j = 0; j < cols; j++) {
        const bpj = b[off + j]!;
        s += bpj * r[j]!;
        sAbs += Math.abs(bpj * r[j]!);
      }
      br[p] = s;
      babs[p] = sAbs;
    }
    const absFloor = k * FTZ_PER_PRODUCT * rAbsSum;
    for (let i = 0; i < rows; i++) {
      let abr = 0;
      let bound = 0;
      const aOff = i * k;
      for (let p = 0; p < k; p++) {
        const aip = a[aOff + p]!;
        abr += aip * br[p]!;
        bound += Math.abs(aip) * babs[p]!;
      }
      let cr = 0;
      const cOff = i * cols;
      for (let j = 0; j < cols; j++) cr += c[cOff + j]! * r[j]!;
      const tol = gamma * bound + absFloor;
      const diff = Math.abs(cr - abr);
      const ratio = tol > 0 ? diff / tol : diff === 0 ? 0 : Infinity;
      if (ratio > worst) worst = ratio;
      if (!(diff <= tol)) {
        return { ok: false, worstRatio: worst, badRow: i, reason: `row ${i} differs from A·B by ${diff.toExponential(3)} (tolerance ${tol.toExponential(3)})` };
      }
    }
  }
  return { ok: true, worstRatio: worst };
}

/** C[i][j] of the exact product, and Σₚ|a_ip·b_pj|, in float64 (which float32 operands cannot overflow). */
export function dotProductAt(a: Float32Array, b: Float32Array, i: number, j: number, k: number, cols: number): { value: number; magnitude: number } {
  let value = 0;
  let magnitude = 0;
  const aOff = i * k;
  for (let p = 0; p < k; p++) {
    const t = a[aOff + p]! * b[p * cols + j]!;
    value += t;
    magnitude += Math.abs(t);
  }
  return { value, magnitude };
}

/**
 * What the non-finite elements of a tile say about its sender. A float32
 * device sums the terms a_ip·b_pj in an order we do not know; when their
 * magnitudes add up past FLOAT32_MAX some order overflows, so NaN or
 * ±Infinity there is what an honest device may return, and the product
 * cannot be represented in float32 at all ('overflow'). Where the terms stay
 * below it, every order stays finite and a non-finite element is wrong
 * ('wrong'). Up to `samples` non-finite elements are probed, drawn at random
 * after the result arrived: a tile whose non-finite elements are all probed
 * as overflowing is reported as overflow; a single finite one convicts it.
 */
export type NonFiniteProbe =
  | { kind: 'finite' }
  | { kind: 'overflow'; row: number; col: number; magnitude: number; count: number; tileBound: number }
  | { kind: 'wrong'; row: number; col: number; got: number; value: number; count: number };

export function probeNonFinite(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  rows: number,
  k: number,
  cols: number,
  opts: { samples?: number; random?: () => number } = {},
): NonFiniteProbe {
  const samples = opts.samples ?? 16;
  const chosen: number[] = [];
  let count = 0;
  let random: (() => number) | undefined;
  for (let i = 0; i < c.length; i++) {
    if (Number.isFinite(c[i]!)) continue;
    count++;
    if (chosen.length < samples) chosen.push(i);
    else {
      random ??= opts.random ?? cryptoRandom(); // reservoir sampling: each non-finite element equally likely
      const slot = Math.floor(random() * count);
      if (slot < samples) chosen[slot] = i;
    }
  }
  if (count === 0) return { kind: 'finite' };
  let first: { row: number; col: number; magnitude: number } | undefined;
  for (const idx of chosen) {
    const row = Math.floor(idx / cols);
    const col = idx % cols;
    const { value, magnitude } = dotProductAt(a, b, row, col, k, cols);
    if (!float32SumMayOverflow(magnitude, k)) return { kind: 'wrong', row, col, got: c[idx]!, value, count };
    first ??= { row, col, magnitude };
  }
  let maxA = 0;
  let maxB = 0;
  for (let i = 0; i < a.length; i++) maxA = Math.max(maxA, Math.abs(a[i]!));
  for (let i = 0; i < b.length; i++) maxB = Math.max(maxB, Math.abs(b[i]!));
  return { kind: 'overflow', ...first!, count, tileBound: maxA * maxB * k };
}
