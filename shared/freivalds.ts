/**
 * Freivalds' test for a tile C ≈ A·B (A: rows×k, B: k×cols, C: rows×cols,
 * all row-major float32). Each round draws a random vector r and compares
 * C·r with A·(B·r): O(k·(rows+cols) + rows·cols) work instead of O(rows·k·cols).
 * docs/verification.md has the derivation and the measurements behind every
 * constant here; in short:
 *
 * Honest error. A float32 dot product of length k, summed in any order, with
 * or without fused multiply-add, is off from the exact one by e_ij with
 * |e_ij| ≤ γ_k·(|A||B|)_ij, γ_k = k·u/(1 − k·u), u = 2⁻²⁴ (Higham, Th. 3.5).
 * That bound grows like k; real rounding errors mostly cancel, grow like √k
 * (Higham & Mary 2019) and scale with the partial sums, which for data that do
 * not cancel in a structured way stay near the result. We model a row's error as
 *     ‖e_i‖₂ ≤ κ·u·(√k·‖c_i‖₂ + P_i),   P_i = √(Σ_p a_ip²·‖b_p‖₂²),
 * with κ = 1.25, the largest ratio measured over five unstructured data
 * classes, eleven summation orders and every WGSL kernel in Dawn
 * (bench/honest-error.ts). An honest result is never rejected because of κ:
 * rows the model does not explain are recomputed, not rejected.
 * The row's magnitude is M_i = Σ_p |a_ip|·‖b_p‖₂ (b_p: row p of B), an upper
 * bound on ‖(|A||B|)_i‖₂ that costs O(k·cols + rows·k).
 *
 * One round. With r ~ N(0, I) drawn after the result arrived, the residual
 * (C·r − A·B·r)_i = e_i·r is N(0, ‖e_i‖²), so |residual| ≤ z·‖e_i‖ except with
 * probability 2Φ(−z). A row passes when its residual is within
 * τ_i = 4·min(κ·u·(√k·‖c_i‖ + P_i), γ_k·M_i) + slack (flushed subnormals,
 * this check's float64 rounding). Structured data (all-equal values) make
 * rounding errors correlated and the model fails there, and 4 is a small
 * quantile: a row over τ_i but within 7.13·γ_k·M_i + slack (exceeded by an
 * honest row with probability 10⁻¹²) is recomputed exactly, in float64; every
 * element must be within γ_k·(|A||B|)_ij of it (else the row is wrong), and a
 * row that passes is assembled as the exact row rounded to float32.
 *
 * Catch. An element off the exact product by d makes the residual's variance
 * at least d² (r is drawn afterwards), so one round passes the row with
 * probability at most √(2/π)·τ_i/|d|. For |d| = 10⁻⁴·M_i that bound is a
 * function of k alone (roundPassProbability), and freivaldsRounds(k) picks the
 * rounds that push the escape probability under 2⁻²⁰ per tile. A row
 * recomputed exactly is replaced by the exact values: nothing escapes that way.
 */

import { FLOAT32_MAX, float32SumMayOverflow } from './result-compare';

/** Unit roundoff of float32 (round to nearest). */
export const UNIT_ROUNDOFF = 2 ** -24;
/**
 * Gaussian quantile of the rejecting bound: an honest row's residual exceeds
 * z·‖e_i‖ with probability 2Φ(−7.13) ≈ 1.0·10⁻¹² per round.
 */
export const HONEST_Z = 7.13;
/**
 * Quantile of the model tolerance. A row over it is only recomputed, never
 * rejected, so it trades coordinator CPU (2Φ(−4) ≈ 6·10⁻⁵ of rows per round
 * where the model is tight) for a sharper check and fewer rounds.
 */
export const MODEL_Z = 4;
/**
 * κ of the model: the largest ‖e_i‖/(u·(√k·‖c_i‖ + P_i)) measured on data
 * without structured correlation (1.22, quantised values at k = 4096), over
 * eleven summation orders and every WGSL kernel in Dawn (docs/verification.md).
 */
export const ROUNDING_KAPPA = 1.25;
/** The change that must be caught, as a fraction of the row's magnitude M_i. */
export const CATCH_RELATIVE = 1e-4;
/** Largest probability that such a change passes a tile's check. */
export const CATCH_ESCAPE = 2 ** -20;
/** Most rounds a tile gets. The 2⁻²⁰ guarantee needs 29 at k = 65,536, the longest a tile's panels allow; past the cap, escapeProbability says what holds. */
export const MAX_ROUNDS = 64;

const U = UNIT_ROUNDOFF;
const FTZ = 2 ** -126;
const F64 = 2 ** -52;

export interface FreivaldsOptions {
  /** Independent random vectors; defaults to freivaldsRounds(k). */
  rounds?: number;
  /** Source of uniform randoms in [0, 1); defaults to crypto.getRandomValues. */
  random?: () => number;
}

export interface FreivaldsResult {
  ok: boolean;
  /** Largest |C·r − A·B·r| / τ_i seen (τ_i the model tolerance); > 1 sent the row to the exact recomputation. */
  worstRatio: number;
  /** First row that failed, when rejected. */
  badRow?: number;
  reason?: string;
  rounds: number;
  /** Rows over the model tolerance that were recomputed exactly (honest structured data lands here). */
  recomputedRows: number;
  /**
   * Those rows' exact values, rounded to float32, when the tile passed: the
   * caller assembles them instead of the sent rows, so a change small enough
   * to hide in the rigorous bound is never assembled.
   */
  exactRows?: ExactRow[];
}

export interface ExactRow {
  row: number;
  values: Float32Array;
}

/** Higham's rigorous γ_k: no summation order of k float32 products errs more, relative to Σ|a_ip·b_pj|. */
export function worstCaseGamma(k: number): number {
  const ku = k * U;
  return ku < 1 ? ku / (1 - ku) : Infinity;
}

/**
 * The √k model's tolerance for row i, before the quantile z: an honest row's
 * error has ‖e_i‖₂ ≤ κ·u·(√k·‖c_i‖₂ + P_i), capped by the rigorous γ_k·M_i.
 * Rounding errors scale with the partial sums, which for data that do not
 * cancel in a structured way stay near the final ‖c_i‖; P_i = √(Σ_p a_ip²·‖b_p‖²)
 * covers the rounding of the products themselves (and rows that cancel to ~0).
 */
export function modelRowError(k: number, cNorm: number, products: number, magnitude: number): number {
  return Math.min(ROUNDING_KAPPA * U * (Math.sqrt(k) * cNorm + products), worstCaseGamma(k) * magnitude);
}

/**
 * Per-element relative tolerance of a float32 dot product of length k, to
 * multiply by (|A||B|)_ij: 8·√k·u (measured per-element ratio on unstructured
 * data at most 1.73·√k·u), or the rigorous γ_k when smaller. For a known
 * exact answer on unstructured data (canaries); the rows of a tile are
 * checked by freivaldsCheck.
 */
export function float32DotTolerance(k: number): number {
  return Math.min(ELEMENT_LAMBDA * Math.sqrt(k) * U, worstCaseGamma(k));
}

/** Per-element multiple of √k·u for known-answer comparisons: 4.6× the largest per-element ratio measured on unstructured data. */
const ELEMENT_LAMBDA = 8;

/**
 * Upper bound on the probability that one round passes an element changed by
 * δ = `relative`·M_i, for any data: τ_i/δ ≤ z·κ·u·((√k + 1)(1 + γ_k) + √k·relative)/relative,
 * because an honest ‖c_i‖ and P_i are at most (1 + γ_k)·M_i and the change
 * itself adds at most δ to ‖c_i‖; or z·γ_k/relative where that is smaller.
 */
export function roundPassProbability(k: number, relative = CATCH_RELATIVE): number {
  const g = worstCaseGamma(k);
  const model = (ROUNDING_KAPPA * U * ((Math.sqrt(k) + 1) * (1 + g) + Math.sqrt(k) * relative)) / relative;
  return Math.min(1, Math.sqrt(2 / Math.PI) * MODEL_Z * Math.min(model, g / relative));
}

/** Rounds that catch an element changed by `relative`·M_i with probability ≥ 1 − `escape`. */
export function freivaldsRounds(k: number, relative = CATCH_RELATIVE, escape = CATCH_ESCAPE): number {
  const p = roundPassProbability(k, relative);
  if (p >= 1) return MAX_ROUNDS;
  return Math.max(1, Math.min(MAX_ROUNDS, Math.ceil(Math.log(escape) / Math.log(p))));
}

/** Probability that a change of `relative`·M_i passes `rounds` rounds (the guarantee for a given tile). */
export function escapeProbability(k: number, rounds = freivaldsRounds(k), relative = CATCH_RELATIVE): number {
  return roundPassProbability(k, relative) ** rounds;
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

const isSubnormal = (x: number): boolean => x !== 0 && Math.abs(x) < FTZ;

export interface RowMagnitudes {
  /** M_i = Σ_p |a_ip|·‖b_p‖₂ ≥ ‖(|A||B|)_i‖₂ (triangle inequality): the row's magnitude. */
  magnitude: Float64Array;
  /** P_i = √(Σ_p a_ip²·‖b_p‖²): the norm of the row's products a_ip·b_pj. */
  products: Float64Array;
  /** M_i over the terms with a subnormal operand, which a device that flushes subnormals may drop whole. */
  flushable: Float64Array;
}

/** Per-row magnitudes of A·B from norms of B's rows: O(k·cols + rows·k). */
export function rowMagnitudes(a: Float32Array, b: Float32Array, rows: number, k: number, cols: number): RowMagnitudes {
  const bNorm = new Float64Array(k);
  const bSubNorm = new Float64Array(k);
  for (let p = 0; p < k; p++) {
    let s = 0;
    let sub = 0;
    const off = p * cols;
    for (let j = 0; j < cols; j++) {
      const x = b[off + j]!;
      s += x * x;
      if (isSubnormal(x)) sub += x * x;
    }
    bNorm[p] = Math.sqrt(s);
    bSubNorm[p] = Math.sqrt(sub);
  }
  const magnitude = new Float64Array(rows);
  const products = new Float64Array(rows);
  const flushable = new Float64Array(rows);
  // (1 + (k + cols)·2⁻⁵²) covers these float64 sums' own rounding, so the bounds stay bounds.
  const up = 1 + (k + cols) * F64;
  for (let i = 0; i < rows; i++) {
    let m = 0;
    let q = 0;
    let f = 0;
    const off = i * k;
    for (let p = 0; p < k; p++) {
      const x = Math.abs(a[off + p]!);
      const t = x * bNorm[p]!;
      m += t;
      q += t * t;
      f += x * (isSubnormal(x) ? bNorm[p]! : bSubNorm[p]!);
    }
    magnitude[i] = m * up;
    products[i] = Math.sqrt(q) * up;
    flushable[i] = f * up;
  }
  return { magnitude, products, flushable };
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
  const rounds = opts.rounds ?? freivaldsRounds(k);
  const fail = (reason: string, badRow?: number): FreivaldsResult => ({ ok: false, worstRatio: Infinity, reason, rounds, recomputedRows: 0, ...(badRow === undefined ? {} : { badRow }) });
  if (a.length !== rows * k || b.length !== k * cols || c.length !== rows * cols) return fail('operand sizes do not match the tile');
  for (let i = 0; i < c.length; i++) {
    if (!Number.isFinite(c[i]!)) return fail('result contains NaN or Infinity', Math.floor(i / cols));
  }
  const random = opts.random ?? cryptoRandom();
  const { magnitude, products, flushable } = rowMagnitudes(a, b, rows, k, cols);
  const cNorm = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = i * cols; j < (i + 1) * cols; j++) s += c[j]! * c[j]!;
    cNorm[i] = Math.sqrt(s);
  }
  const model = Float64Array.from(magnitude, (m, i) => MODEL_Z * modelRowError(k, cNorm[i]!, products[i]!, m));
  const gRigorous = HONEST_Z * worstCaseGamma(k);
  const br = new Float64Array(k);
  const doubtful = new Set<number>();
  let worst = 0;
  for (let round = 0; round < rounds; round++) {
    const r = gaussianVector(cols, random);
    let rNorm1 = 0;
    let rNorm2 = 0;
    for (let j = 0; j < cols; j++) {
      rNorm1 += Math.abs(r[j]!);
      rNorm2 += r[j]! * r[j]!;
    }
    rNorm2 = Math.sqrt(rNorm2);
    for (let p = 0; p < k; p++) {
      let s = 0;
      const off = p * cols;
      for (let j = 0; j < cols; j++) s += b[off + j]! * r[j]!;
      br[p] = s;
    }
    // Flush-to-zero: each of a dot product's 2k operations may lose up to 2⁻¹²⁶.
    const ftz = 2 * k * FTZ * rNorm1;
    for (let i = 0; i < rows; i++) {
      let abr = 0;
      const aOff = i * k;
      for (let p = 0; p < k; p++) abr += a[aOff + p]! * br[p]!;
      let cr = 0;
      const cOff = i * cols;
      for (let j = 0; j < cols; j++) cr += c[cOff + j]! * r[j]!;
      // This check's own float64 rounding, bounded through Cauchy–Schwarz by ‖r‖₂.
      const slack = ftz + HONEST_Z * flushable[i]! + (k + cols + 2) * F64 * rNorm2 * (magnitude[i]! + cNorm[i]!);
      const tau = model[i]! + slack;
      const diff = Math.abs(cr - abr);
      const ratio = tau > 0 ? diff / tau : diff === 0 ? 0 : Infinity;
      if (ratio > worst) worst = ratio;
      if (diff <= tau) continue;
      const rigorous = gRigorous * magnitude[i]! + slack;
      if (!(diff <= rigorous)) {
        return { ok: false, worstRatio: worst, badRow: i, rounds, recomputedRows: doubtful.size, reason: `row ${i} differs from A·B by ${diff.toExponential(3)} (tolerance ${rigorous.toExponential(3)} even for correlated rounding)` };
      }
      doubtful.add(i);
    }
  }
  const exactRows: ExactRow[] = [];
  for (const i of doubtful) {
    const exact = exactRow(a, b, c, i, k, cols);
    if (typeof exact === 'string') return { ok: false, worstRatio: worst, badRow: i, rounds, recomputedRows: doubtful.size, reason: exact };
    exactRows.push({ row: i, values: exact });
  }
  return { ok: true, worstRatio: worst, rounds, recomputedRows: doubtful.size, ...(exactRows.length > 0 ? { exactRows } : {}) };
}

/**
 * Recomputes row i of A·B in float64 and checks every element against the
 * rigorous bound γ_k·Σ_p|a_ip·b_pj| (any order, FMA or not), plus terms with a
 * subnormal operand and 2k·2⁻¹²⁶ for flush-to-zero. Costs k·cols, one round's
 * B·r. Returns the exact row rounded to float32, or why the sent row is wrong.
 */
function exactRow(a: Float32Array, b: Float32Array, c: Float32Array, i: number, k: number, cols: number): Float32Array | string {
  const value = new Float64Array(cols);
  const mag = new Float64Array(cols);
  const flush = new Float64Array(cols);
  const aOff = i * k;
  for (let p = 0; p < k; p++) {
    const aip = a[aOff + p]!;
    if (aip === 0) continue;
    const off = p * cols;
    const subA = isSubnormal(aip);
    for (let j = 0; j < cols; j++) {
      const t = aip * b[off + j]!;
      value[j]! += t;
      mag[j]! += Math.abs(t);
      if (subA || isSubnormal(b[off + j]!)) flush[j]! += Math.abs(t);
    }
  }
  const gamma = worstCaseGamma(k) + (k + 2) * F64;
  for (let j = 0; j < cols; j++) {
    const tol = gamma * mag[j]! + flush[j]! + 2 * k * FTZ;
    const diff = Math.abs(c[i * cols + j]! - value[j]!);
    if (!(diff <= tol)) return `row ${i}, column ${j} differs from A·B by ${diff.toExponential(3)} (rigorous tolerance ${tol.toExponential(3)})`;
  }
  return Float32Array.from(value);
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
