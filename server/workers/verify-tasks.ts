/**
 * The heavy parts of verification as plain functions of their inputs: the
 * pool runs them on worker threads (see pool.ts), and runs small ones in
 * place. Nothing here touches the store, the network or the clock, so a task
 * gives the same verdict wherever it runs.
 */
import { cryptoRandom, freivaldsCheck, freivaldsRounds, probeNonFinite, type ExactRow, type NonFiniteProbe } from '../../shared/freivalds';
import { perSample, splitShardInputs, type InferenceTensorSpec, type InferenceTolerance } from '../../shared/inference-job';
import { outputMismatch, resultsAgree } from '../../shared/result-compare';
import { runReference, type Tensor } from '../inference/reference-executor';
import { decodedModel } from './model-cache';

/** Rows holding NaN or ±Infinity that an inference check recomputes, on top of the drawn ones. */
export const NON_FINITE_ROWS_CHECKED = 4;

export interface MatmulTileInput {
  a: Float32Array;
  b: Float32Array;
  c: Float32Array;
  rows: number;
  k: number;
  cols: number;
  /**
   * Freivalds rounds. Undefined: freivaldsRounds(k), enough to catch an element
   * changed by 10⁻⁴ of its row's magnitude with probability ≥ 1 − 2⁻²⁰.
   * 0 checks only the non-finite elements.
   */
  rounds?: number | undefined;
}

export type MatmulTileCheck =
  /** `exactRows`: rows the check recomputed exactly (their rounding was correlated, or a change hid in it); assemble these values. */
  | { kind: 'ok'; exactRows?: ExactRow[] }
  | { kind: 'mismatch'; reason: string }
  | Exclude<NonFiniteProbe, { kind: 'finite' }>;

/**
 * Non-finite elements first (overflow or a wrong answer), then Freivalds' test
 * on the whole tile. `reason` is for the operator's log only: it names the row
 * and the tolerance, which a contributor must not learn.
 */
export function checkMatmulTile(t: MatmulTileInput): MatmulTileCheck {
  const probe = probeNonFinite(t.a, t.b, t.c, t.rows, t.k, t.cols);
  if (probe.kind !== 'finite') return probe;
  if (t.rounds === 0) return { kind: 'ok' };
  const r = freivaldsCheck(t.a, t.b, t.c, t.rows, t.k, t.cols, t.rounds === undefined ? {} : { rounds: t.rounds });
  if (!r.ok) return { kind: 'mismatch', reason: r.reason ?? 'mismatch' };
  return r.exactRows ? { kind: 'ok', exactRows: r.exactRows } : { kind: 'ok' };
}

/**
 * Floating-point operations of checkMatmulTile, to decide whether it is worth
 * a thread: the row magnitudes cost about one round. Rows the check recomputes
 * exactly (structured data) add k·cols each, not counted here.
 */
export const matmulTileCost = (rows: number, k: number, cols: number, rounds: number = freivaldsRounds(k)): number =>
  rows * cols + (rounds === 0 ? 0 : (rounds + 1) * 2 * (k * cols + rows * k + rows * cols));

export interface InferenceShardInput {
  model: { sha256: string; bytes: Uint8Array };
  inputs: InferenceTensorSpec[];
  outputs: InferenceTensorSpec[];
  tolerance: InferenceTolerance;
  /** The shard's input blob and its result (rows × width). */
  input: Float32Array;
  tile: Float32Array;
  rows: number;
  width: number;
  /** Rows drawn at random by the caller; rows holding non-finite values are added here. */
  check: number[];
}

export type InferenceShardCheck =
  | { kind: 'ok'; checked: number[] }
  | { kind: 'mismatch'; row: number; output: string; index: number; got: number; want: number };

/**
 * Recomputes the drawn samples, and up to NON_FINITE_ROWS_CHECKED of those
 * whose outputs hold NaN or ±Infinity, with the reference executor, and
 * compares each output. A non-finite output passes only where the reference
 * is non-finite too: an overflow the model itself produces is no one's fault.
 */
export function checkInferenceShard(t: InferenceShardInput, random: () => number = cryptoRandom()): InferenceShardCheck {
  const rows = new Set(t.check);
  const nonFinite: number[] = [];
  for (let r = 0; r < t.rows; r++) {
    const row = t.tile.subarray(r * t.width, (r + 1) * t.width);
    for (let i = 0; i < row.length; i++) {
      if (!Number.isFinite(row[i]!)) {
        nonFinite.push(r);
        break;
      }
    }
  }
  for (let n = 0; n < NON_FINITE_ROWS_CHECKED && nonFinite.length > 0; n++) {
    rows.add(nonFinite.splice(Math.floor(random() * nonFinite.length), 1)[0]!);
  }
  if (rows.size === 0) return { kind: 'ok', checked: [] };
  const graph = decodedModel(t.model.sha256, t.model.bytes);
  const sizes = t.inputs.map(perSample);
  const inputs = splitShardInputs(t.input, sizes, t.rows);
  const checked = [...rows].sort((x, y) => x - y);
  for (const r of checked) {
    const feeds: Record<string, Tensor> = {};
    t.inputs.forEach((inp, i) => {
      feeds[inp.name] = { dims: [1, ...inp.dims.slice(1)], data: inputs[i]!.slice(r * sizes[i]!, (r + 1) * sizes[i]!) };
    });
    const want = runReference(graph, feeds);
    let col = 0;
    for (const out of t.outputs) {
      const size = perSample(out);
      const got = t.tile.subarray(r * t.width + col, r * t.width + col + size);
      const miss = outputMismatch(got, want[out.name]!.data, t.tolerance);
      if (miss) return { kind: 'mismatch', row: r, output: out.name, ...miss };
      col += size;
    }
  }
  return { kind: 'ok', checked };
}

export interface InferenceReplicasInput {
  outputs: InferenceTensorSpec[];
  tolerance: InferenceTolerance;
  x: Float32Array;
  y: Float32Array;
  rows: number;
  width: number;
}

/** Two contributors' shard results agree when every sample's outputs do (non-finite only where both are). */
export function inferenceReplicasAgree(t: InferenceReplicasInput): boolean {
  if (t.x.length !== t.y.length) return false;
  for (let r = 0; r < t.rows; r++) {
    let col = 0;
    for (const out of t.outputs) {
      const size = perSample(out);
      const at = r * t.width + col;
      if (outputMismatch(t.x.subarray(at, at + size), t.y.subarray(at, at + size), t.tolerance)) return false;
      col += size;
    }
  }
  return true;
}

export interface MatmulReplicasInput {
  x: Float32Array;
  y: Float32Array;
  k: number;
  /** The tile's width: each row's magnitude sets its own elements' tolerance floor. */
  cols?: number | undefined;
}

export const matmulReplicasAgree = (t: MatmulReplicasInput): boolean => resultsAgree(t.x, t.y, t.k, t.cols);

export interface CanaryInput {
  c: Float32Array;
  want: Float32Array;
  tolerance: Float32Array;
}

/** First element of a canary tile off the known answer by more than its stored tolerance, or −1. */
export function canaryMismatch(t: CanaryInput): number {
  if (t.c.length !== t.want.length) return 0;
  for (let i = 0; i < t.want.length; i++) {
    if (!(Math.abs(t.c[i]! - t.want[i]!) <= t.tolerance[i]!)) return i;
  }
  return -1;
}
