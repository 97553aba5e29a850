/** The honest-error statistics of bench/honest-error.ts, shared with its Dawn part. */
import { freivaldsCheck, MODEL_Z, modelRowError, rowMagnitudes, UNIT_ROUNDOFF } from '../shared/freivalds';
import { mulberry32 } from '../test/support/float32-orders';

export interface Tile {
  rows: number;
  k: number;
  cols: number;
  /** Rows computed and checked (a sample of `rows`). */
  sample: number;
}

/** Exact (float64) rows of A·B and Σ|a_ip·b_pj| per element. */
export function exactRows(a: Float32Array, b: Float32Array, rows: number, k: number, cols: number): { value: Float64Array; mag: Float64Array } {
  const value = new Float64Array(rows * cols);
  const mag = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p]!;
      for (let j = 0; j < cols; j++) {
        const t = x * b[p * cols + j]!;
        value[i * cols + j]! += t;
        mag[i * cols + j]! += Math.abs(t);
      }
    }
  return { value, mag };
}

export interface HonestStats {
  /** κ of the model: max over rows of ‖e_i‖₂/(u·(√k·‖c_i‖₂ + P_i)) */
  rowKappa: number;
  /** the same against the row magnitude alone: max of ‖e_i‖₂/(√k·u·M_i) */
  magnitudeKappa: number;
  /** max over elements of |e_ij|/(√k·u·(|A||B|)_ij) */
  elemKappa: number;
  /** max over elements of |e_ij|/(|A||B|)_ij, in units of k·u */
  elemRelativeKu: number;
  /** residual ratios |e_i·r|/τ_i over random r */
  residualMax: number;
  residualP9999: number;
  /** M_i / ‖(|A||B|)_i‖₂: how loose the cheap magnitude is */
  magnitudeLooseness: number;
  checkOk: boolean;
  recomputedRows: number;
}

/** Honest error of result rows `c` (rows×cols) against A·B, and the real check's verdict on them. */
export function honestStats(a: Float32Array, b: Float32Array, c: Float32Array, rows: number, k: number, cols: number, draws: number, seed: number): HonestStats {
  const { value, mag } = exactRows(a, b, rows, k, cols);
  const { magnitude, products } = rowMagnitudes(a, b, rows, k, cols);
  const sku = Math.sqrt(k) * UNIT_ROUNDOFF;
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const ratios: number[] = [];
  let rowKappa = 0;
  let magnitudeKappa = 0;
  let elemKappa = 0;
  let elemRelativeKu = 0;
  let looseness = 0;
  for (let i = 0; i < rows; i++) {
    let e2 = 0;
    let m2 = 0;
    let c2 = 0;
    const e = new Float64Array(cols);
    for (let j = 0; j < cols; j++) {
      const at = i * cols + j;
      e[j] = c[at]! - value[at]!;
      e2 += e[j]! * e[j]!;
      c2 += c[at]! * c[at]!;
      m2 += mag[at]! * mag[at]!;
      if (mag[at]! > 0) {
        elemKappa = Math.max(elemKappa, Math.abs(e[j]!) / (sku * mag[at]!));
        elemRelativeKu = Math.max(elemRelativeKu, Math.abs(e[j]!) / (mag[at]! * k * UNIT_ROUNDOFF));
      }
    }
    const M = magnitude[i]!;
    const cNorm = Math.sqrt(c2);
    const scale = UNIT_ROUNDOFF * (Math.sqrt(k) * cNorm + products[i]!);
    if (scale > 0) rowKappa = Math.max(rowKappa, Math.sqrt(e2) / scale);
    if (M > 0) magnitudeKappa = Math.max(magnitudeKappa, Math.sqrt(e2) / (sku * M));
    if (m2 > 0) looseness = Math.max(looseness, M / Math.sqrt(m2));
    const tau = MODEL_Z * modelRowError(k, cNorm, products[i]!, M);
    for (let d = 0; d < draws; d++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += e[j]! * gauss();
      ratios.push(tau > 0 ? Math.abs(s) / tau : 0);
    }
  }
  ratios.sort((x, y) => x - y);
  const check = freivaldsCheck(a, b, c, rows, k, cols);
  return {
    rowKappa,
    magnitudeKappa,
    elemKappa,
    elemRelativeKu,
    residualMax: ratios.at(-1) ?? 0,
    residualP9999: ratios[Math.floor(0.9999 * (ratios.length - 1))] ?? 0,
    magnitudeLooseness: looseness,
    checkOk: check.ok,
    recomputedRows: check.recomputedRows,
  };
}

