import { encodeNpy } from '../../shared/npy';

/** Deterministic pseudo-random matrix (mulberry32), values in [-1, 1). */
export function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

export function npyBlob(rows: number, cols: number, data: Float32Array): Blob {
  return new Blob([encodeNpy({ shape: [rows, cols], data })]);
}
