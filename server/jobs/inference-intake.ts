import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DEFAULT_INFERENCE_TOLERANCE, outputsPerSample, perSample, type InferenceSpec } from '../../shared/inference-job';
import { planInference } from '../../shared/inference-plan';
import { ModelError, type ModelGraph } from '../../shared/model-graph';
import { encodeModelPackage } from '../../shared/model-package';
import { WEBGPU_DEFAULT_LIMITS } from '../../shared/tiling';
import type { Config } from '../config';
import { HttpError } from '../http/http-error';
import type { UploadedFile } from '../http/multipart';
import { loadModel } from '../inference/onnx-model';
import { DEFAULT_LEASE_POLICY } from '../scheduler/lease-policy';
import type { TuningCensus } from '../scheduler/tuning-census';
import type { BlobStore } from '../storage/blob-store';
import type { ResultFiles } from '../storage/result-files';
import type { JobRecord, NewShard, PanelRecord, Store } from '../store/store';
import { inspectNpy, loadNpyData } from './npy-upload';

export interface InferenceIntakeDeps {
  config: Config;
  store: Store;
  blobs: BlobStore;
  results: ResultFiles;
  census?: TuningCensus;
}

/** Field names an ONNX input may have that we accept as form fields. */
export const INPUT_FIELD = /^[A-Za-z_][A-Za-z0-9_.:/-]{0,127}$/;

/** A shard's working set must fit a device with WebGPU's default limits, whoever takes it. */
const SHARD_MAX_BUFFER_BYTES = WEBGPU_DEFAULT_LIMITS.maxStorageBufferBindingSize;
const SHARD_MAX_TOTAL_BYTES = 512 * 1024 * 1024;

const fmtShape = (dims: readonly (number | string | null)[]) => `(${dims.map((d) => d ?? '?').join(', ')})`;

function modelToHttp(err: unknown): never {
  if (err instanceof ModelError) {
    throw new HttpError(400, err.code, err.code === 'NOT_ONNX' ? err.problems.join('; ') : `the model cannot run on the network: ${err.problems.join('; ')}`);
  }
  throw err;
}

/** Which uploaded file carries each graph input: its own name, or `input` for a one-input model. */
function matchInputs(graph: ModelGraph, files: Record<string, UploadedFile>): UploadedFile[] {
  const names = graph.inputs.map((v) => v.name);
  const expected = graph.inputs.map((v) => `${v.name} ${fmtShape(v.dims)}`).join(', ');
  for (const field of Object.keys(files)) {
    if (field === 'model') continue;
    if (!names.includes(field) && !(field === 'input' && names.length === 1)) {
      throw new HttpError(400, 'UNEXPECTED_FILE', `file "${field}" matches no input of the model; send one .npy per input, named after it: ${expected}`);
    }
  }
  if (names.length === 1 && files.input && files[names[0]!]) {
    throw new HttpError(400, 'DUPLICATE_FILE', `send the input once, as "${names[0]}" or as "input", not both`);
  }
  return graph.inputs.map((v) => {
    const file = files[v.name] ?? (names.length === 1 ? files.input : undefined);
    if (!file) throw new HttpError(400, 'MISSING_FILE', `missing file "${v.name}": the model's input ${v.name} ${fmtShape(v.dims)} as a float32 .npy (-F ${v.name}=@${v.name}.npy)`);
    return file;
  });
}

/**
 * Samples per shard: the batch spread over `targetTiles` shards, but no more
 * than the median online contributor computes in about
 * `inferenceShardSeconds` (the assumed speed of a weak GPU when none has
 * reported one) — a big model or batch gets more, smaller shards — and no
 * more than WebGPU's default buffer limits allow.
 */
function samplesPerShard(graph: ModelGraph, batch: number, flopsPerSample: number, deps: InferenceIntakeDeps): number {
  const gflops = deps.census?.medianGflops() ?? DEFAULT_LEASE_POLICY.assumedFlopsPerSecond / 1e9;
  const byTime = Math.floor((gflops * 1e9 * deps.config.inferenceShardSeconds) / Math.max(flopsPerSample, 1));
  const bySpread = Math.ceil(batch / deps.config.targetTiles);
  let rows = Math.max(1, Math.min(batch, byTime, bySpread));
  // Memory grows linearly with the batch (weights aside): shrink until the plan fits.
  for (;;) {
    const plan = planInference(graph, rows);
    if ((plan.largestBufferBytes <= SHARD_MAX_BUFFER_BYTES && plan.totalBytes <= SHARD_MAX_TOTAL_BYTES) || rows === 1) {
      if (plan.largestBufferBytes > SHARD_MAX_BUFFER_BYTES) {
        throw new HttpError(413, 'TOO_LARGE', `one sample needs a ${plan.largestBufferBytes}-byte buffer; contributors' GPUs bind at most ${SHARD_MAX_BUFFER_BYTES}`);
      }
      return rows;
    }
    rows = Math.max(1, Math.floor(rows / 2));
  }
}

/**
 * Turns an uploaded ONNX model and its input batch into a queued job: the
 * model is checked (every unsupported operator named with its node), each
 * input's shape against the model's, and the plan the contributors will run
 * is built once here so that nothing they cannot run is queued. The weights
 * travel as one content-addressed package (the B panel of every shard); each
 * shard's batch range of the inputs is an A panel. Job, panels and shards are
 * recorded in one transaction, as for matmul.
 */
export async function acceptInferenceJob(
  deps: InferenceIntakeDeps,
  files: Record<string, UploadedFile>,
  opts: { owner: string | null; priority: number; verification: 'recompute' | 'replication'; storage?: { used: number; limit: number } },
): Promise<{ job: JobRecord; spec: InferenceSpec }> {
  const { config, store, blobs, results } = deps;
  if (!files.model) throw new HttpError(400, 'MISSING_FILE', 'missing file "model": the ONNX model (-F model=@model.onnx), and one .npy per model input');
  let graph: ModelGraph;
  try {
    graph = loadModel(new Uint8Array(await readFile(files.model.path)));
  } catch (err) {
    modelToHttp(err);
  }
  const inputFiles = matchInputs(graph, files);
  const headers = await Promise.all(inputFiles.map((f) => inspectNpy(f)));
  let batch = 0;
  headers.forEach((h, i) => {
    const v = graph.inputs[i]!;
    const want = v.dims.slice(1) as number[];
    const field = inputFiles[i]!.field;
    if (h.shape.length !== v.dims.length || h.shape.slice(1).some((d, j) => d !== want[j])) {
      throw new HttpError(400, 'SHAPE_MISMATCH', `file "${field}" has shape ${fmtShape(h.shape)}; the model's input ${v.name} is ${fmtShape(v.dims)} (the batch first)`);
    }
    if (h.shape[0]! < 1) throw new HttpError(400, 'EMPTY_DIMENSION', `file "${field}" holds no samples (its first dimension is 0)`);
    if (batch && h.shape[0] !== batch) {
      throw new HttpError(400, 'SHAPE_MISMATCH', `file "${field}" has ${h.shape[0]} samples but "${inputFiles[0]!.field}" has ${batch}; every input needs the same batch size`);
    }
    batch = h.shape[0]!;
  });
  if (batch > config.maxDim) throw new HttpError(413, 'TOO_LARGE', `a batch of ${batch} samples is over the limit of ${config.maxDim}`);

  // The plan at two batch sizes: everything must run, and every output must carry the batch first.
  let one;
  let two;
  try {
    one = planInference(graph, 1);
    two = planInference(graph, 2);
  } catch (err) {
    modelToHttp(err);
  }
  one.outputs.forEach((o, i) => {
    const o2 = two.outputs[i]!;
    if (o.dims[0] !== 1 || o2.dims[0] !== 2 || o.dims.slice(1).join() !== o2.dims.slice(1).join()) {
      throw new HttpError(400, 'UNSUPPORTED_MODEL', `the model cannot run on the network: output "${o.name}" ${fmtShape(o.dims)} does not keep the batch as its first dimension, so it cannot be split by samples`);
    }
  });
  const outputs = one.outputs.map((o) => ({ name: o.name, dims: [batch, ...o.dims.slice(1)] }));
  const inputs = graph.inputs.map((v, i) => ({ name: v.name, dims: headers[i]!.shape }));
  const width = outputsPerSample({ outputs });
  if (batch * width > config.maxElements) throw new HttpError(413, 'TOO_LARGE', `the outputs would hold ${batch * width} values, over the limit of ${config.maxElements}`);
  const flopsPerSample = two.flops - one.flops || one.flops;

  const pkg = encodeModelPackage(graph);
  if (pkg.byteLength > SHARD_MAX_BUFFER_BYTES) throw new HttpError(413, 'TOO_LARGE', `the model's weights take ${pkg.byteLength} bytes; the network takes models up to ${SHARD_MAX_BUFFER_BYTES}`);
  const inputBytes = pkg.byteLength + inputs.reduce((s, t) => s + batch * perSample(t) * 4, 0);
  const resultBytes = batch * width * 4;
  if (opts.storage && opts.storage.used + inputBytes + resultBytes > opts.storage.limit) {
    throw new HttpError(
      413,
      'QUOTA_EXCEEDED',
      `this job needs ${inputBytes + resultBytes} bytes of storage; this key uses ${opts.storage.used} of its ${opts.storage.limit}. Download and DELETE finished jobs to free space`,
    );
  }
  const rows = samplesPerShard(graph, batch, flopsPerSample, deps);
  const data = await Promise.all(inputFiles.map((f) => loadNpyData(f)));
  data.forEach((d, i) => {
    const bad = d.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new HttpError(400, 'NON_FINITE', `file "${inputFiles[i]!.field}" has ${d[bad]} in sample ${Math.floor(bad / perSample(inputs[i]!))}; inputs must be finite numbers`);
  });

  const model = await blobs.put(pkg);
  const panels: PanelRecord[] = [{ side: 'b', idx: 0, ...model }];
  const id = randomUUID();
  const shards: NewShard[] = [];
  for (let i = 0, row0 = 0; row0 < batch; i++, row0 += rows) {
    const count = Math.min(rows, batch - row0);
    const slices = data.map((d, j) => {
      const size = perSample(inputs[j]!);
      return d.subarray(row0 * size, (row0 + count) * size);
    });
    const blob = new Float32Array(slices.reduce((s, x) => s + x.length, 0));
    let at = 0;
    for (const x of slices) {
      blob.set(x, at);
      at += x.length;
    }
    panels.push({ side: 'a', idx: i, ...(await blobs.put(new Uint8Array(blob.buffer))) });
    shards.push({ id: `${id}.${i}`, idx: i, rowPanel: i, colPanel: 0, row0, col0: 0, rows: count, cols: width });
  }
  const spec: InferenceSpec = {
    model: { sha256: model.sha256, bytes: model.bytes, opset: graph.opset, nodes: graph.nodes.length },
    batch,
    inputs,
    outputs,
    samplesPerShard: rows,
    flopsPerSample,
    checksPerShard: config.inferenceChecks,
    tolerance: DEFAULT_INFERENCE_TOLERANCE,
  };
  await results.create(id, batch, width);
  await store.createJob({
    id,
    type: 'inference',
    owner: opts.owner,
    priority: opts.priority,
    verification: opts.verification,
    inputBytes,
    resultBytes,
    m: batch,
    // Work per output value, so that 2·rows·cols·k (the FLOPs every lease, deadline and credit is sized by) is the shard's FLOPs.
    k: Math.max(1, Math.round(flopsPerSample / (2 * width))),
    n: width,
    tileRows: rows,
    tileCols: width,
    panels,
    shards,
    spec: JSON.stringify(spec),
    now: Date.now(),
  });
  return { job: (await store.getJob(id))!, spec };
}
