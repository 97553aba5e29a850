/**
 * Everything the coordinator decides about an uploaded inference model before
 * it queues anything: the model is parsed and checked (every problem named
 * with its node or tensor), matched to the uploaded .npy inputs, planned
 * exactly as contributors will run it, held to the limits of
 * shared/model-limits.ts, and its batch cut into shards of a size a
 * contributor can compute, hold and return.
 *
 * It is one pure, synchronous function whose input and output are plain,
 * structured-cloneable data (no class instances, no functions), with no I/O
 * and no module state, so that it can run in a worker thread with a time
 * limit. Its time is linear in the model: bounded by MAX_MODEL_NODES and
 * MAX_MODEL_BYTES, plus at most a few plans to fit a shard in memory.
 */
import type { InferenceTensorSpec } from '../../shared/inference-job';
import { planInference, type InferencePlan } from '../../shared/inference-plan';
import { ModelError, quoteName, type ModelGraph } from '../../shared/model-graph';
import { formatAmount, MODEL_LIMITS, referenceWork, SHARD_MAX_BUFFER_BYTES, SHARD_MAX_TOTAL_BYTES, type ModelLimits } from '../../shared/model-limits';
import { encodeModelPackage } from '../../shared/model-package';
import { MAX_RESULT_BYTES } from '../../shared/protocol';
import { loadModel } from '../inference/onnx-model';
import { sampleMixing } from '../inference/sample-independence';

export interface ModelAnalysisInput {
  /** The .onnx file. */
  model: Uint8Array;
  /** Every other uploaded file, each a float32 .npy already checked: its form field and shape. */
  files: { field: string; shape: number[] }[];
  /** Speed, in GFLOP/s, that shards are sized for: the median online contributor's, or an assumed weak GPU's. */
  gflops: number;
  /** A shard is about this many seconds of work at `gflops`. */
  shardSeconds: number;
  /** The batch is spread over about this many shards. */
  targetTiles: number;
  /** Largest batch. */
  maxDim: number;
  /** Most output values of a job. */
  maxElements: number;
  /** Largest A panel (one shard's samples of every input), as for matmul: the intake cuts one in memory at a time. */
  maxPanelBytes?: number;
  /** Defaults to MODEL_LIMITS. */
  limits?: ModelLimits;
}

export interface ModelAccepted {
  ok: true;
  /** For each model input, in graph order, the form field that carries it. */
  inputFields: string[];
  model: { opset: number; nodes: number };
  batch: number;
  /** Full shapes, the batch first. */
  inputs: InferenceTensorSpec[];
  outputs: InferenceTensorSpec[];
  /** Floats per sample in a shard's result row. */
  width: number;
  /** FLOPs of one sample on a contributor's GPU (multiply-adds count 2). */
  flopsPerSample: number;
  samplesPerShard: number;
  /** The graph and weights as contributors receive them (shared/model-package.ts). */
  modelPackage: Uint8Array;
}

export interface ModelRefused {
  ok: false;
  status: 400 | 413;
  code: string;
  message: string;
}

export type ModelAnalysis = ModelAccepted | ModelRefused;

/** A refusal raised inside the analysis; it leaves as a plain ModelRefused. */
class Refusal extends Error {
  constructor(
    readonly status: 400 | 413,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const fmtShape = (dims: readonly (number | string | null)[]) => `(${dims.map((d) => d ?? '?').join(', ')})`;

const PREFIX: Record<ModelError['code'], string> = {
  NOT_ONNX: '',
  INVALID_MODEL: 'the model is not valid ONNX (check the export with onnx.checker.check_model): ',
  UNSUPPORTED_MODEL: 'the model cannot run on the network: ',
  MODEL_TOO_LARGE: "the model is over the network's limits: ",
};

function refusalOf(err: ModelError): ModelRefused {
  return { ok: false, status: 400, code: err.code, message: `${PREFIX[err.code]}${err.problems.join('; ')}` };
}

/** Names a model input may have: each travels as a form field of the same name. */
export const INPUT_FIELD = /^[A-Za-z_][A-Za-z0-9_.:/-]{0,127}$/;

/** Which uploaded file carries each graph input: its own name, or `input` for a one-input model. */
export function matchInputs(graph: Pick<ModelGraph, 'inputs'>, fields: readonly string[]): string[] {
  const unsendable = graph.inputs.filter((v) => !INPUT_FIELD.test(v.name));
  if (unsendable.length) {
    throw new ModelError('UNSUPPORTED_MODEL', [
      `input ${quoteName(unsendable[0]!.name)} cannot be sent: each input travels as a form field of its name, which must be 1 to 128 letters, digits, "_", ".", ":", "/" or "-", starting with a letter or "_"; rename the model's inputs`,
    ]);
  }
  const names = new Set(graph.inputs.map((v) => v.name));
  const given = new Set(fields);
  const expected = graph.inputs.map((v) => `${v.name} ${fmtShape(v.dims)}`).join(', ');
  const one = graph.inputs.length === 1 ? graph.inputs[0]!.name : undefined;
  for (const field of fields) {
    if (!names.has(field) && !(field === 'input' && one !== undefined)) {
      throw new Refusal(400, 'UNEXPECTED_FILE', `file ${quoteName(field)} matches no input of the model; send one .npy per input, named after it: ${expected}`);
    }
  }
  if (one !== undefined && one !== 'input' && given.has('input') && given.has(one)) {
    throw new Refusal(400, 'DUPLICATE_FILE', `send the input once, as "${one}" or as "input", not both`);
  }
  return graph.inputs.map((v) => {
    if (given.has(v.name)) return v.name;
    if (one !== undefined && given.has('input')) return 'input';
    throw new Refusal(400, 'MISSING_FILE', `missing file "${v.name}": the model's input ${v.name} ${fmtShape(v.dims)} as a float32 .npy (-F ${v.name}=@${v.name}.npy)`);
  });
}

const fits = (plan: InferencePlan) => plan.largestBufferBytes <= SHARD_MAX_BUFFER_BYTES && plan.totalBytes <= SHARD_MAX_TOTAL_BYTES;

/**
 * Samples per shard: the batch spread over `targetTiles` shards, but no more
 * than a contributor at `gflops` computes in about `shardSeconds` (a big
 * model or batch gets more, smaller shards), no more than one result
 * message carries, and no more than WebGPU's default buffer limits allow.
 * Memory is estimated from the plans for one and two samples (it grows
 * linearly with the batch, weights aside) and then checked by planning the
 * shard, halving while it does not fit: a bounded number of linear plans.
 */
export function samplesPerShard(
  graph: ModelGraph,
  batch: number,
  perSample: { flops: number; width: number; inputFloats: number },
  plans: { one: InferencePlan; two: InferencePlan },
  sizing: Pick<ModelAnalysisInput, 'gflops' | 'shardSeconds' | 'targetTiles' | 'maxPanelBytes'>,
): number {
  const gflops = Number.isFinite(sizing.gflops) && sizing.gflops > 0 ? sizing.gflops : 1;
  const { one, two } = plans;
  const slope = (f: (p: InferencePlan) => number) => Math.max(f(two) - f(one), 0);
  const within = (limit: number, fixed: number, each: number) => (each > 0 ? Math.floor((limit - fixed) / each) : batch);
  const limits = [
    batch,
    Math.floor((gflops * 1e9 * sizing.shardSeconds) / Math.max(perSample.flops, 1)),
    Math.ceil(batch / Math.max(1, sizing.targetTiles)),
    Math.floor(MAX_RESULT_BYTES / (perSample.width * 4)),
    sizing.maxPanelBytes ? Math.floor(sizing.maxPanelBytes / Math.max(perSample.inputFloats * 4, 1)) : batch,
    within(SHARD_MAX_TOTAL_BYTES, one.totalBytes - slope((p) => p.totalBytes), slope((p) => p.totalBytes)),
    within(SHARD_MAX_BUFFER_BYTES, 0, slope((p) => p.largestBufferBytes)),
  ];
  // The batch is among the bounds, so the least is finite; a NaN (which no bound should be) counts as 1.
  let rows = Math.min(...limits.map((n) => (Number.isNaN(n) ? 1 : n)));
  rows = Math.max(1, Math.floor(rows));
  const planFor = (r: number) => (r === 1 ? one : r === 2 ? two : planInference(graph, r));
  while (rows > 1 && !fits(planFor(rows))) rows = Math.floor(rows / 2);
  return rows;
}

function analyze(input: ModelAnalysisInput): ModelAccepted {
  const limits = input.limits ?? MODEL_LIMITS;
  const graph = loadModel(input.model, limits);
  const inputFields = matchInputs(graph, input.files.map((f) => f.field));
  const shapes = new Map(input.files.map((f) => [f.field, f.shape]));
  let batch = 0;
  graph.inputs.forEach((v, i) => {
    const field = inputFields[i]!;
    const shape = shapes.get(field)!;
    const want = v.dims.slice(1);
    if (shape.length !== v.dims.length || shape.slice(1).some((d, j) => d !== want[j])) {
      throw new Refusal(400, 'SHAPE_MISMATCH', `file "${field}" has shape ${fmtShape(shape)}; the model's input ${v.name} is ${fmtShape(v.dims)} (the batch first)`);
    }
    if (shape[0]! < 1) throw new Refusal(400, 'EMPTY_DIMENSION', `file "${field}" holds no samples (its first dimension is 0)`);
    if (batch && shape[0] !== batch) {
      throw new Refusal(400, 'SHAPE_MISMATCH', `file "${field}" has ${shape[0]} samples but "${inputFields[0]}" has ${batch}; every input needs the same batch size`);
    }
    batch = shape[0]!;
  });
  if (batch > input.maxDim) throw new Refusal(413, 'TOO_LARGE', `a batch of ${batch} samples is over the limit of ${input.maxDim}`);

  // The plan at two batch sizes: everything must run, and every output must carry the batch first.
  const one = planInference(graph, 1);
  const two = planInference(graph, 2);
  one.outputs.forEach((o, i) => {
    const o2 = two.outputs[i]!;
    if (o.dims[0] !== 1 || o2.dims[0] !== 2 || o.dims.slice(1).join() !== o2.dims.slice(1).join()) {
      throw new ModelError('UNSUPPORTED_MODEL', [`output "${o.name}" ${fmtShape(o.dims)} does not keep the batch as its first dimension, so it cannot be split by samples`]);
    }
  });
  // Shards are checked by recomputing single samples: a model that mixes samples would fail every honest shard.
  const mixing = sampleMixing(graph, one.shapes, two.shapes);
  if (mixing) throw new ModelError('UNSUPPORTED_MODEL', [mixing]);
  const outputs = one.outputs.map((o) => ({ name: o.name, dims: [batch, ...o.dims.slice(1)] }));
  const inputs = graph.inputs.map((v, i) => ({ name: v.name, dims: shapes.get(inputFields[i]!)! }));
  const width = one.outputs.reduce((s, o) => s + o.dims.slice(1).reduce((a, b) => a * b, 1), 0);

  // Over a limit: every one that is exceeded, in one refusal.
  const over: string[] = [];
  const work = referenceWork(one.flops, one.valuesWritten);
  if (work > limits.maxFlopsPerSample) {
    over.push(
      `one sample takes ${formatAmount(work, 'FLOP')} of work; the network takes up to ${formatAmount(limits.maxFlopsPerSample, 'FLOP')} per sample (MAX_FLOPS_PER_SAMPLE), as the coordinator recomputes samples on its CPU to check results`,
    );
  }
  if (width * 4 > limits.maxOutputBytesPerSample) {
    over.push(
      `one sample's outputs take ${formatAmount(width * 4, 'B')}; a contributor returns at most ${formatAmount(limits.maxOutputBytesPerSample, 'B')} per shard (MAX_OUTPUT_BYTES_PER_SAMPLE)`,
    );
  }
  if (one.largestBufferBytes > SHARD_MAX_BUFFER_BYTES) {
    over.push(`one sample needs a ${formatAmount(one.largestBufferBytes, 'B')} buffer; contributors' GPUs bind at most ${formatAmount(SHARD_MAX_BUFFER_BYTES, 'B')} (WebGPU's default maxStorageBufferBindingSize)`);
  } else if (one.totalBytes > SHARD_MAX_TOTAL_BYTES) {
    over.push(`one sample needs ${formatAmount(one.totalBytes, 'B')} of GPU memory; a shard may use at most ${formatAmount(SHARD_MAX_TOTAL_BYTES, 'B')}`);
  }
  const modelPackage = encodeModelPackage(graph);
  if (modelPackage.byteLength > limits.maxWeightBytes) {
    over.push(`the weights take ${formatAmount(modelPackage.byteLength, 'B')}; the network takes up to ${formatAmount(limits.maxWeightBytes, 'B')} (MAX_WEIGHT_BYTES)`);
  }
  if (over.length) throw new ModelError('MODEL_TOO_LARGE', over);
  if (batch * width > input.maxElements) throw new Refusal(413, 'TOO_LARGE', `the outputs would hold ${batch * width} values, over the limit of ${input.maxElements}`);

  const flopsPerSample = two.flops - one.flops || one.flops;
  const inputFloats = inputFields.reduce((sum, field) => sum + shapes.get(field)!.slice(1).reduce((p, d) => p * d, 1), 0);
  const rows = samplesPerShard(graph, batch, { flops: flopsPerSample, width, inputFloats }, { one, two }, input);
  return {
    ok: true,
    inputFields,
    model: { opset: graph.opset, nodes: graph.nodes.length },
    batch,
    inputs,
    outputs,
    width,
    flopsPerSample,
    samplesPerShard: rows,
    modelPackage,
  };
}

/**
 * Checks, plans and sizes an inference job from its model and its inputs'
 * shapes; a refusal is a value ({ ok: false, status, code, message }), never
 * a throw, so that it crosses a worker boundary as it is.
 */
export function analyzeModel(input: ModelAnalysisInput): ModelAnalysis {
  try {
    return analyze(input);
  } catch (err) {
    if (err instanceof ModelError) return refusalOf(err);
    if (err instanceof Refusal) return { ok: false, status: err.status, code: err.code, message: err.message };
    throw err;
  }
}
