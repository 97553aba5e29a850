import { randomUUID } from 'node:crypto';
import { float32DotTolerance } from '../../shared/freivalds';
import type { BlobStore } from '../storage/blob-store';
import type { Store } from '../store/store';
import type { WorkerPool } from '../workers/pool';

export interface CanaryShape {
  rows: number;
  cols: number;
  k: number;
}

/** A canary's inputs and what an honest contributor must return for them. */
export interface CanaryTile {
  a: Float32Array;
  b: Float32Array;
  answer: Float32Array;
  /** Per element: how far an honest float32 result may lie from the exact answer. */
  tolerance: Float32Array;
}

/** One canary in the store: its hidden job (the operator's handle) and its only shard. */
export interface PreparedCanary {
  jobId: string;
  shardId: string;
}

/**
 * Uniform on [−1, 1). A real job's inputs are the requester's and cannot be
 * imitated; what keeps a contributor from recognising a canary's panels is
 * that they are addressed by a SHA-256 of their bytes, never seen before and
 * never seen again, like any fresh job's.
 */
function uniformMatrix(n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.random() * 2 - 1;
  return out;
}

/**
 * Rows [row0, row1) of the exact product and their tolerance: the rounding
 * model's per-element bound (shared/freivalds.ts) on (|A|·|B|)_ij, plus one
 * float32 rounding of the answer itself and the subnormals a GPU may flush.
 */
function answerRows(t: CanaryTile, shape: CanaryShape, row0: number, row1: number): void {
  const { cols, k } = shape;
  const gamma = float32DotTolerance(k);
  const sum = new Float64Array(cols);
  const abs = new Float64Array(cols);
  for (let i = row0; i < row1; i++) {
    sum.fill(0);
    abs.fill(0);
    for (let p = 0; p < k; p++) {
      const aip = t.a[i * k + p]!;
      const bRow = p * cols;
      for (let j = 0; j < cols; j++) {
        const prod = aip * t.b[bRow + j]!;
        sum[j]! += prod;
        abs[j]! += Math.abs(prod);
      }
    }
    for (let j = 0; j < cols; j++) {
      t.answer[i * cols + j] = sum[j]!;
      t.tolerance[i * cols + j] = gamma * abs[j]! + Math.abs(sum[j]!) * 2 ** -23 + 2 * k * 2 ** -126; // each of the 2k operations can flush a subnormal
    }
  }
}

/** Draws a canary's inputs and computes its answer in one go: the worker pool's task (server/workers/tasks.ts). */
export function computeCanaryTile(shape: CanaryShape): CanaryTile {
  const t = emptyTile(shape);
  answerRows(t, shape, 0, shape.rows);
  return t;
}

function emptyTile(shape: CanaryShape): CanaryTile {
  const { rows, cols, k } = shape;
  return { a: uniformMatrix(rows * k), b: uniformMatrix(k * cols), answer: new Float32Array(rows * cols), tolerance: new Float32Array(rows * cols) };
}

/** Multiply-adds per slice when computing on the event loop: a few milliseconds between yields. */
const SLICE_FLOPS = 4e6;

/** Without a worker pool: the same answer, a few rows at a time, yielding to the event loop between them. */
async function computeOnEventLoop(shape: CanaryShape): Promise<CanaryTile> {
  const t = emptyTile(shape);
  const step = Math.max(1, Math.floor(SLICE_FLOPS / Math.max(1, shape.cols * shape.k)));
  for (let r = 0; r < shape.rows; r += step) {
    answerRows(t, shape, r, Math.min(shape.rows, r + step));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return t;
}

/**
 * Creates one canary of exactly `shape`: a hidden single-shard matmul job
 * with random inputs, its exact answer and per-element tolerance. The answer
 * is computed off the event loop (on `workers` when given). Nothing in the
 * shard says what it is: its id is as random as every shard's, and the lease
 * carries the job id of the real job it is handed out with (dispatcher).
 */
export async function createCanary(store: Store, blobs: BlobStore, shape: CanaryShape, workers?: WorkerPool): Promise<PreparedCanary> {
  const { rows, cols, k } = shape;
  const tile = workers ? await workers.run('canaryTile', shape, rows * cols * k) : await computeOnEventLoop(shape);
  const put = async (side: 'a' | 'b' | 'answer' | 'tolerance', data: Float32Array) => ({ side, idx: 0, ...(await blobs.put(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))) });
  const jobId = randomUUID();
  const shardId = randomUUID();
  await store.createJob({
    id: jobId,
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
    panels: [await put('a', tile.a), await put('b', tile.b), await put('answer', tile.answer), await put('tolerance', tile.tolerance)],
    shards: [{ id: shardId, idx: 0, rowPanel: 0, colPanel: 0, row0: 0, col0: 0, rows, cols }],
    now: Date.now(),
  });
  return { jobId, shardId };
}
