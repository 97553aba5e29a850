import { randomInt, randomUUID } from 'node:crypto';
import type { BlobStore } from '../storage/blob-store';
import type { Store } from '../store/store';

export interface CanaryShape {
  rows: number;
  cols: number;
  k: number;
}

/** Canaries stay small so the coordinator can compute their answer on its own CPU in a few milliseconds. */
export const CANARY_LIMITS: CanaryShape = { rows: 128, cols: 128, k: 512 };

function uniformMatrix(n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.random() * 2 - 1;
  return out;
}

/**
 * Creates one canary: a hidden single-shard matmul job with random inputs,
 * its exact answer and a per-element tolerance (8·√k·u·(|A|·|B|)_ij, the
 * probabilistic float32 bound, plus a subnormal floor). To a contributor it
 * is a lease like any other: a fresh job id, a tile index, content-addressed
 * panels. Returns the shard id.
 */
export async function createCanary(store: Store, blobs: BlobStore, wanted: CanaryShape): Promise<string> {
  const rows = Math.max(1, Math.min(wanted.rows, CANARY_LIMITS.rows));
  const cols = Math.max(1, Math.min(wanted.cols, CANARY_LIMITS.cols));
  const k = Math.max(1, Math.min(wanted.k, CANARY_LIMITS.k));
  const a = uniformMatrix(rows * k);
  const b = uniformMatrix(k * cols);
  const answer = new Float32Array(rows * cols);
  const tolerance = new Float32Array(rows * cols);
  const gamma = 8 * Math.sqrt(k) * 2 ** -24;
  const sum = new Float64Array(cols);
  const abs = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    sum.fill(0);
    abs.fill(0);
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]!;
      for (let j = 0; j < cols; j++) {
        const prod = aip * b[p * cols + j]!;
        sum[j]! += prod;
        abs[j]! += Math.abs(prod);
      }
    }
    for (let j = 0; j < cols; j++) {
      answer[i * cols + j] = sum[j]!;
      // + one float32 rounding of the answer itself, + flushed subnormals
      tolerance[i * cols + j] = gamma * abs[j]! + Math.abs(sum[j]!) * 2 ** -23 + k * 2 ** -126;
    }
  }
  const put = async (side: 'a' | 'b' | 'answer' | 'tolerance', data: Float32Array) => ({ side, idx: 0, ...(await blobs.put(new Uint8Array(data.buffer))) });
  const id = randomUUID();
  const idx = randomInt(0, 64); // real jobs' tiles have all sorts of indices
  await store.createJob({
    id,
    type: 'matmul',
    owner: null,
    priority: 0,
    verification: 'freivalds',
    hidden: true,
    m: rows,
    k,
    n: cols,
    tileRows: rows,
    tileCols: cols,
    panels: [await put('a', a), await put('b', b), await put('answer', answer), await put('tolerance', tolerance)],
    shards: [{ id: `${id}.${idx}`, idx, rowPanel: 0, colPanel: 0, row0: 0, col0: 0, rows, cols }],
    now: Date.now(),
  });
  return `${id}.${idx}`;
}
