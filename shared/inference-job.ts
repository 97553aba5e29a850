/**
 * What an inference job is, shared by the coordinator, contributors and
 * tests: the spec kept with the job, how a shard's inputs and results are
 * laid out, and when two answers for the same samples agree.
 *
 * Layouts (all float32, little-endian):
 * - A shard's input blob: for each graph input in graph order, its `rows`
 *   samples one after another (the .npy rows of that batch range).
 * - A shard's result: one row per sample, holding every output's values for
 *   that sample in graph order (a rows × outputsPerSample matrix, which the
 *   coordinator assembles like a matmul tile and splits per output at the end).
 */
export interface InferenceTensorSpec {
  name: string;
  /** Full shape, the batch first. */
  dims: number[];
}

export interface InferenceSpec {
  model: { sha256: string; bytes: number; opset: number; nodes: number };
  batch: number;
  inputs: InferenceTensorSpec[];
  outputs: InferenceTensorSpec[];
  samplesPerShard: number;
  /** Floating-point operations of one sample, from the plan (multiply-adds count 2). */
  flopsPerSample: number;
  /** Samples of each returned shard that the coordinator recomputes (verification 'recompute'). */
  checksPerShard: number;
  tolerance: InferenceTolerance;
}

/** |ours − reference| ≤ abs·max(1, largest |reference| of that output in the sample) + rel·|reference|. */
export interface InferenceTolerance {
  abs: number;
  rel: number;
}

export const DEFAULT_INFERENCE_TOLERANCE: InferenceTolerance = { abs: 1e-4, rel: 1e-3 };

export const perSample = (t: InferenceTensorSpec): number => t.dims.slice(1).reduce((a, b) => a * b, 1);

/** Floats per sample in a shard's result row. */
export const outputsPerSample = (spec: Pick<InferenceSpec, 'outputs'>): number => spec.outputs.reduce((s, o) => s + perSample(o), 0);

/** Splits a shard's input blob into each input's values for its `rows` samples. */
export function splitShardInputs(blob: Float32Array, perSampleSizes: readonly number[], rows: number): Float32Array[] {
  const out: Float32Array[] = [];
  let at = 0;
  for (const size of perSampleSizes) {
    const n = size * rows;
    if (at + n > blob.length) throw new RangeError(`shard input holds ${blob.length} values, fewer than ${rows} samples need`);
    out.push(blob.subarray(at, at + n));
    at += n;
  }
  if (at !== blob.length) throw new RangeError(`shard input holds ${blob.length} values, ${rows} samples need ${at}`);
  return out;
}

/** Interleaves each output's values (batch-major, `rows` samples) into result rows, one per sample. */
export function interleaveOutputs(outputs: readonly Float32Array[], perSampleSizes: readonly number[], rows: number): Float32Array {
  const width = perSampleSizes.reduce((a, b) => a + b, 0);
  const tile = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    let col = 0;
    outputs.forEach((o, i) => {
      const size = perSampleSizes[i]!;
      tile.set(o.subarray(r * size, (r + 1) * size), r * width + col);
      col += size;
    });
  }
  return tile;
}

/**
 * First element of a sample's output that is not within tolerance of the
 * reference, or undefined when they agree. NaN and infinities never agree.
 */
export function inferenceMismatch(got: Float32Array, want: Float32Array, tol: InferenceTolerance): { index: number; got: number; want: number } | undefined {
  let scale = 1;
  for (const v of want) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (!Number.isFinite(g) || !(Math.abs(g - w) <= tol.abs * scale + tol.rel * Math.abs(w))) return { index: i, got: g, want: w };
  }
  return undefined;
}
