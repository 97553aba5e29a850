import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DEFAULT_INFERENCE_TOLERANCE, perSample, type InferenceSpec } from '../../shared/inference-job';
import { MODEL_LIMITS } from '../../shared/model-limits';
import type { Config } from '../config';
import { HttpError } from '../http/http-error';
import type { UploadedFile } from '../http/multipart';
import { DEFAULT_LEASE_POLICY } from '../scheduler/lease-policy';
import type { TuningCensus } from '../scheduler/tuning-census';
import type { BlobStore } from '../storage/blob-store';
import type { ResultFiles } from '../storage/result-files';
import type { JobQuota, JobRecord, NewJob, NewShard, PanelRecord, Store } from '../store/store';
import { checkStorageQuota, commitJob, withIntakeBlobs } from './job-commit';
import { TaskUnavailable, type WorkerPool } from '../workers/pool';
import type { ModelAnalysis, ModelAnalysisInput } from './model-analysis';
import { inspectNpy, NpyReader } from './npy-upload';

export interface InferenceIntakeDeps {
  config: Config;
  store: Store;
  blobs: BlobStore;
  results: ResultFiles;
  census?: TuningCensus;
  /** Where the model is analysed: off the event loop, with a time limit. */
  workers: WorkerPool;
}

/** Analysing a model is linear in its size; past this it is refused rather than allowed to hold a thread. */
export const MODEL_ANALYSIS_MS = 10_000;

/**
 * Runs the model's analysis on the worker pool (a model of a few KB in place:
 * under a millisecond, less than a thread hand-off) and turns a pool that
 * could not give an answer into an error the requester can act on.
 */
async function analyzeOffLoop(workers: WorkerPool, input: ModelAnalysisInput): Promise<ModelAnalysis> {
  try {
    // The pool runs a task in place below 2 MFLOP-equivalents: about 40 KB of model here.
    return await workers.run('analyzeModel', input, input.model.byteLength * 50, { timeoutMs: MODEL_ANALYSIS_MS });
  } catch (err) {
    if (!(err instanceof TaskUnavailable)) throw err;
    if (err.reason === 'timeout') {
      throw new HttpError(400, 'MODEL_TOO_LARGE', `checking and planning this model took longer than ${MODEL_ANALYSIS_MS / 1000} s, the coordinator's limit; submit a smaller graph (fewer nodes and weights)`);
    }
    if (err.reason === 'overloaded' || err.reason === 'closed') {
      throw new HttpError(503, 'BUSY', 'the coordinator is busy checking other work; send the job again in a few seconds', { retryAfterSeconds: 5 });
    }
    // The analysis returns its refusals; a thread that died on a model (out of memory on what it describes) is one more.
    throw new HttpError(400, 'INVALID_MODEL', `the coordinator could not analyse this model (${err.message}); check that it loads in onnxruntime and stays within the model limits`);
  }
}

/** Field names an ONNX input may have that we accept as form fields. */
export { INPUT_FIELD } from './model-analysis';

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
  opts: {
    owner: string | null;
    priority: number;
    verification: 'recompute' | 'replication';
    /** Samples recomputed per shard (recompute); undefined: the coordinator's setting. */
    checks?: number;
    storage?: { used: number; limit: number };
    /** Checked again, atomically, when the job is committed. */
    quota?: JobQuota;
    /** The request's: a client gone before the commit gets no job. */
    signal?: AbortSignal;
  },
): Promise<{ job: JobRecord; spec: InferenceSpec }> {
  const { config, store, blobs } = deps;
  if (!files.model) throw new HttpError(400, 'MISSING_FILE', 'missing file "model": the ONNX model (-F model=@model.onnx), and one .npy per model input');
  if (files.model.bytes > MODEL_LIMITS.maxModelBytes) {
    throw new HttpError(400, 'MODEL_TOO_LARGE', `the model file has ${files.model.bytes} bytes; the network takes models of up to ${MODEL_LIMITS.maxModelBytes} (MAX_MODEL_BYTES)`);
  }
  // Every other file must be a float32 .npy; the analysis needs only their shapes.
  const uploads = new Map(Object.entries(files).filter(([field]) => field !== 'model'));
  const uploadHeaders = new Map(await Promise.all([...uploads].map(async ([field, f]) => [field, await inspectNpy(f)] as const)));
  // Pure and synchronous: checks, plans and sizes the job (a worker thread can run it as it is).
  const analysis = await analyzeOffLoop(deps.workers, {
    model: new Uint8Array(await readFile(files.model.path)),
    files: [...uploadHeaders].map(([field, h]) => ({ field, shape: h.shape })),
    gflops: deps.census?.medianGflops() ?? DEFAULT_LEASE_POLICY.assumedFlopsPerSecond / 1e9,
    shardSeconds: config.inferenceShardSeconds,
    targetTiles: config.targetTiles,
    maxDim: config.maxDim,
    maxElements: config.maxElements,
    maxPanelBytes: config.maxPanelBytes,
  });
  if (!analysis.ok) throw new HttpError(analysis.status, analysis.code, analysis.message);
  const { batch, inputs, outputs, width, flopsPerSample, modelPackage: pkg } = analysis;
  // In the model's input order.
  const inputFiles = analysis.inputFields.map((field) => uploads.get(field)!);
  const headers = analysis.inputFields.map((field) => uploadHeaders.get(field)!);
  const inputBytes = pkg.byteLength + inputs.reduce((s, t) => s + batch * perSample(t) * 4, 0);
  const resultBytes = batch * width * 4;
  checkStorageQuota(inputBytes + resultBytes, opts.storage);
  const rows = analysis.samplesPerShard;
  const id = randomUUID();
  return withIntakeBlobs(blobs, store, async (intake) => {
    const panels: PanelRecord[] = [];
    const shards: NewShard[] = [];
    // Inputs are read in place, each shard's samples at a time, so memory does not grow with the batch.
    const readers = inputFiles.map((f, i) => ({ file: f, header: headers[i]!, size: perSample(inputs[i]!) }));
    const withReaders = async <T>(i: number, open: NpyReader[], fn: (rs: NpyReader[]) => Promise<T>): Promise<T> =>
      i === readers.length ? fn(open) : NpyReader.with(readers[i]!.file, readers[i]!.header, (r) => withReaders(i + 1, [...open, r], fn));
    await withReaders(0, [], async (open) => {
      for (const [i, reader] of open.entries()) {
        const { nonFinite } = await reader.scan();
        if (nonFinite) throw new HttpError(400, 'NON_FINITE', `file "${readers[i]!.file.field}" has ${nonFinite.value} in sample ${nonFinite.index[0]}; inputs must be finite numbers`);
      }
      const model = await intake.put(pkg);
      panels.push({ side: 'b', idx: 0, ...model });
      const sampleFloats = readers.reduce((s, r) => s + r.size, 0);
      const blob = new Float32Array(Math.min(rows, batch) * sampleFloats);
      for (let i = 0, row0 = 0; row0 < batch; i++, row0 += rows) {
        opts.signal?.throwIfAborted();
        const count = Math.min(rows, batch - row0);
        // A shard's A panel: its samples of each input in turn.
        let at = 0;
        for (const [j, reader] of open.entries()) {
          const size = readers[j]!.size;
          await reader.readBlock(row0, count, 0, size, blob.subarray(at, at + count * size));
          at += count * size;
        }
        panels.push({ side: 'a', idx: i, ...(await intake.put(new Uint8Array(blob.buffer, 0, at * 4))) });
        shards.push({ id: randomUUID(), idx: i, rowPanel: i, colPanel: 0, row0, col0: 0, rows: count, cols: width });
      }
    });
    const model = panels[0]!;
    const spec: InferenceSpec = {
      model: { sha256: model.sha256, bytes: model.bytes, ...analysis.model },
      batch,
      inputs,
      outputs,
      samplesPerShard: rows,
      flopsPerSample,
      checksPerShard: Math.min(opts.checks ?? config.inferenceChecks, rows),
      tolerance: DEFAULT_INFERENCE_TOLERANCE,
    };
    const job: NewJob = {
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
    };
    await commitJob(deps, job, intake, { ...(opts.quota ? { quota: opts.quota } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    return { job: (await store.getJob(id))!, spec };
  });
}
