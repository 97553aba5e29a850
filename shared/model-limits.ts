/**
 * What one inference model may ask of the network. Every bound is checked at
 * upload, before anything the model describes is allocated or planned, and a
 * model over one is refused with 400 MODEL_TOO_LARGE naming it. Each bound
 * follows from something outside the model:
 *
 * - the coordinator recomputes samples on its CPU to check results
 *   (server/inference/reference-executor.ts), so the work of one sample is
 *   bounded to about a second of that;
 * - a contributor returns a shard's outputs in one message of at most
 *   MAX_RESULT_BYTES, so one sample's outputs must fit in it;
 * - a contributor's GPU binds buffers of at most WebGPU's default
 *   maxStorageBufferBindingSize, so no weight or value may be larger;
 * - planning is linear in the graph, so bounding nodes bounds its time.
 */
import { MAX_RESULT_BYTES } from './protocol';
import { WEBGPU_DEFAULT_LIMITS } from './tiling';

/** Largest single buffer a shard may use: what every WebGPU device binds. */
export const SHARD_MAX_BUFFER_BYTES = WEBGPU_DEFAULT_LIMITS.maxStorageBufferBindingSize;
/** All of a shard's buffers together (weights, inputs, outputs, temporaries). */
export const SHARD_MAX_TOTAL_BYTES = 512 * 1024 * 1024;

export interface ModelLimits {
  /** Size of the .onnx file. */
  maxModelBytes: number;
  /** Nodes in the graph. */
  maxNodes: number;
  /** Inputs the requester sends (one .npy each) and outputs returned. */
  maxInputs: number;
  maxOutputs: number;
  /** Rank of any tensor, weight or computed value. */
  maxRank: number;
  /** Values in one weight or constant tensor. */
  maxTensorElements: number;
  /** Bytes of all weights, as packed for contributors. */
  maxWeightBytes: number;
  /** Work of one sample as the CPU reference does it, in FLOPs (see referenceWork). */
  maxFlopsPerSample: number;
  /** Bytes of one sample's outputs: a contributor must be able to return at least one sample. */
  maxOutputBytesPerSample: number;
}

export const MAX_MODEL_BYTES = 256 * 1024 * 1024;
export const MAX_MODEL_NODES = 10_000;
export const MAX_MODEL_INPUTS = 16;
export const MAX_MODEL_OUTPUTS = 64;
export const MAX_TENSOR_RANK = 8;
export const MAX_TENSOR_ELEMENTS = SHARD_MAX_BUFFER_BYTES / 4;
export const MAX_WEIGHT_BYTES = SHARD_MAX_BUFFER_BYTES;
/**
 * About a second of the coordinator's CPU reference per recomputed sample
 * (it runs a matrix product at roughly 0.5–1 GFLOP/s).
 */
export const MAX_FLOPS_PER_SAMPLE = 1e9;
export const MAX_OUTPUT_BYTES_PER_SAMPLE = MAX_RESULT_BYTES;

/**
 * What moving one value costs the CPU reference, in FLOPs of a matrix
 * product: element-wise operators, transposes and copies index every value
 * they write, which costs far more than a multiply-add in a dense loop.
 * Measured on the reference executor (see the README's limits section).
 */
export const FLOPS_PER_VALUE_WRITTEN = 16;

export const MODEL_LIMITS: Readonly<ModelLimits> = {
  maxModelBytes: MAX_MODEL_BYTES,
  maxNodes: MAX_MODEL_NODES,
  maxInputs: MAX_MODEL_INPUTS,
  maxOutputs: MAX_MODEL_OUTPUTS,
  maxRank: MAX_TENSOR_RANK,
  maxTensorElements: MAX_TENSOR_ELEMENTS,
  maxWeightBytes: MAX_WEIGHT_BYTES,
  maxFlopsPerSample: MAX_FLOPS_PER_SAMPLE,
  maxOutputBytesPerSample: MAX_OUTPUT_BYTES_PER_SAMPLE,
};

/** The work limit compares this: the plan's FLOPs plus what writing its values costs the reference. */
export const referenceWork = (flops: number, valuesWritten: number): number => flops + FLOPS_PER_VALUE_WRITTEN * valuesWritten;

/** "6.71 GFLOP", "268 MB", "2^25": numbers in refusals, short and exact enough to act on. */
export function formatAmount(value: number, unit: 'FLOP' | 'B' | ''): string {
  if (unit === '') return value.toLocaleString('en-US');
  const steps = unit === 'B' ? ['B', 'KiB', 'MiB', 'GiB', 'TiB'] : ['FLOP', 'kFLOP', 'MFLOP', 'GFLOP', 'TFLOP'];
  const base = unit === 'B' ? 1024 : 1000;
  let v = value;
  let i = 0;
  while (v >= base && i < steps.length - 1) {
    v /= base;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toPrecision(3)} ${steps[i]}`;
}
