/**
 * Third-party WebGPU matmuls that our own WGSL kernel is benchmarked against, in the same page.
 *
 * Every contender gets the same inputs, uploaded once in prepare() and warmed up there (shaders compiled,
 * buffer pools primed). What one timed `run()` covers:
 *
 * - `tfjs-webgpu`: `tf.matMul(a, b)` through TF.js's engine: kernel selection, the per-call uniform buffer and
 *   bind group TF.js creates, recording the dispatch, submitting it (TF.js batches dispatches, so we flush its
 *   encoder ourselves), and the GPU executing it, up to `onSubmittedWorkDone()`. It also disposes the previous
 *   run's output tensor, which only returns the buffer to TF.js's pool. Excludes input upload, pipeline
 *   compilation and readback.
 * - `ort-webgpu`: `session.run()` of a one-node ONNX MatMul on ORT's WebGPU execution provider, with A, B and C
 *   bound as caller-owned GPU buffers: ORT's JS → WASM call, binding the buffers, the EP's dispatch(es) and
 *   submit, and the GPU executing them, up to `onSubmittedWorkDone()`. Excludes session creation (graph
 *   optimisation, shader compilation), input upload and readback.
 */
import * as tf from '@tensorflow/tfjs-core';
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import * as ort from 'onnxruntime-web/webgpu';
import onnxProto from 'onnx-proto';
import { readBuffer } from '../gpu/matmul-kernel';

export type ContenderId = 'tfjs-webgpu' | 'ort-webgpu';
export interface ContenderInfo { id: ContenderId; label: string; version: string; }
export interface PreparedMatmul {
  /** One timed run: launch C = A·B on the GPU and resolve when the GPU has finished it. */
  run(): Promise<void>;
  /** Read back C (M×N row-major float32) of the last run, for checking against a reference. */
  read(): Promise<Float32Array>;
  dispose(): Promise<void>;
}
export interface Contender {
  info: ContenderInfo;
  /** A (M×K) and B (K×N) row-major float32. Uploads inputs to the GPU, runs once to compile/warm up. */
  prepare(m: number, k: number, n: number, a: Float32Array, b: Float32Array): Promise<PreparedMatmul>;
  dispose(): Promise<void>;
}

export async function loadContender(id: ContenderId, opts: { ortWasmBase?: string }): Promise<Contender> {
  switch (id) {
    case 'tfjs-webgpu': return loadTfjs();
    case 'ort-webgpu': return loadOrt(opts.ortWasmBase);
  }
}

function checkShapes(m: number, k: number, n: number, a: Float32Array, b: Float32Array): void {
  if (a.length !== m * k || b.length !== k * n) {
    throw new Error(`matmul inputs do not match ${m}×${k}·${k}×${n}: |A|=${a.length}, |B|=${b.length}`);
  }
}

// ---------------------------------------------------------------------------------------------- TF.js

async function loadTfjs(): Promise<Contender> {
  // setBackend resolves false (it does not throw) when the backend failed to initialise.
  if (!(await tf.setBackend('webgpu'))) throw new Error('TF.js could not initialise its WebGPU backend');
  await tf.ready();
  const backend = tf.backend();
  if (!(backend instanceof WebGPUBackend)) throw new Error(`TF.js is running on '${tf.getBackend()}', not webgpu`);

  // TF.js leaves dispatches in an open compute pass until it has batched
  // WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE of them; this is its own flush sequence (as in its readback path).
  const flush = (): void => {
    backend.ensureCommandEncoderReady();
    backend.endComputePassEncoder();
    backend.submitQueue();
  };

  return {
    info: { id: 'tfjs-webgpu', label: 'TensorFlow.js WebGPU (tf.matMul)', version: tf.version_core },
    async prepare(m, k, n, a, b) {
      checkShapes(m, k, n, a, b);
      const ta = tf.tensor2d(a, [m, k], 'float32');
      const tb = tf.tensor2d(b, [k, n], 'float32');
      let out: tf.Tensor | undefined;
      const run = async (): Promise<void> => {
        out?.dispose();
        out = tf.matMul(ta, tb);
        flush();
        await backend.device.queue.onSubmittedWorkDone();
      };
      await run(); // uploads A and B (TF.js does that lazily, on first use) and compiles the pipeline
      return {
        run,
        async read() {
          if (!out) throw new Error('read() after dispose()');
          // A copy: TF.js may keep the array it returns as the tensor's cached CPU values.
          return new Float32Array(await out.data<'float32'>());
        },
        async dispose() {
          out?.dispose();
          out = undefined;
          ta.dispose();
          tb.dispose();
        },
      };
    },
    // The backend is a page-wide singleton that later prepare() calls reuse; prepared matmuls free their tensors.
    async dispose() {},
  };
}

// ---------------------------------------------------------------------------------------------- ORT-web

const { onnx } = onnxProto;

/** One-node model C[M,N] = MatMul(A[M,K], B[K,N]), float32, static shapes. */
function matmulModel(m: number, k: number, n: number): Uint8Array {
  const value = (name: string, dims: number[]): onnxProto.onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
  });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'kernel-bench',
    graph: {
      name: 'matmul',
      node: [{ opType: 'MatMul', input: ['A', 'B'], output: ['C'], name: 'matmul' }],
      input: [value('A', [m, k]), value('B', [k, n])],
      output: [value('C', [m, n])],
    },
  }).finish();
}

const ORT_SEVERITY = { verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 } as const;

/** The binary `onnxruntime-web/webgpu` (1.30's native WebGPU EP build, not the older JSEP one) loads. */
export const ORT_WASM_FILE = 'ort-wasm-simd-threaded.asyncify.wasm';

function configureOrt(wasmBase: string | undefined): void {
  // Without a base, ORT's bundle finds the .wasm via `new URL(…, import.meta.url)`, which `vite build` emits as an
  // asset. With one we name only the .wasm, not a path prefix: a prefix would also make ORT import its JS glue from
  // there, which Vite's dev server refuses for /public files, while the glue already inlined in the bundle is fine.
  if (wasmBase !== undefined) {
    const base = new URL(wasmBase.endsWith('/') ? wasmBase : `${wasmBase}/`, location.href);
    ort.env.wasm.wasmPaths = { wasm: new URL(ORT_WASM_FILE, base).href };
  }
  // The WASM side only orchestrates the WebGPU EP; one thread needs neither cross-origin isolation nor workers.
  ort.env.wasm.numThreads = 1;
}

/**
 * A whole ONNX model on ORT-web's WebGPU EP, for the inference bench: each
 * run sends CPU inputs and reads the outputs back, as our ModelRunner's run
 * does. Returns the outputs in graph order and each timed run's ms.
 */
export async function runOrtModel(model: Uint8Array, feeds: Record<string, { dims: number[]; data: Float32Array }>, reps: number, wasmBase?: string): Promise<{ outputs: Float32Array[]; ms: number[]; version: string }> {
  configureOrt(wasmBase);
  const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], logSeverityLevel: ORT_SEVERITY[ort.env.logLevel ?? 'warning'] });
  try {
    const inputs = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor('float32', t.data, t.dims)]));
    const once = async () => {
      const out = await session.run(inputs);
      return Promise.all(session.outputNames.map(async (n) => (await out[n]!.getData()) as Float32Array));
    };
    let outputs = await once();
    const ms: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      outputs = await once();
      ms.push(performance.now() - t0);
    }
    return { outputs, ms, version: ort.env.versions.web ?? ort.env.versions.common };
  } finally {
    await session.release();
  }
}

async function loadOrt(wasmBase: string | undefined): Promise<Contender> {
  configureOrt(wasmBase);
  const version = ort.env.versions.web ?? ort.env.versions.common;

  return {
    info: { id: 'ort-webgpu', label: 'ONNX Runtime Web WebGPU EP (MatMul)', version },
    async prepare(m, k, n, a, b) {
      checkShapes(m, k, n, a, b);
      const session = await ort.InferenceSession.create(matmulModel(m, k, n), {
        executionProviders: ['webgpu'],
        preferredOutputLocation: 'gpu-buffer',
        // Sessions log at 'warning' unless told otherwise; following ort.env.logLevel lets a page set it to
        // 'verbose' to see ORT's node placement ("All nodes placed on [WebGpuExecutionProvider]").
        logSeverityLevel: ORT_SEVERITY[ort.env.logLevel ?? 'warning'],
      });
      // Only valid once a WebGPU session exists: it is the device the EP runs on, so our buffers must live there.
      const device = await ort.env.webgpu.device;
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
      const upload = (data: Float32Array): GPUBuffer => {
        const buffer = device.createBuffer({ size: data.byteLength, usage, mappedAtCreation: true });
        new Float32Array(buffer.getMappedRange()).set(data);
        buffer.unmap();
        return buffer;
      };
      const bufA = upload(a);
      const bufB = upload(b);
      const bufC = device.createBuffer({ size: m * n * 4, usage });
      const feeds = {
        A: ort.Tensor.fromGpuBuffer(bufA, { dataType: 'float32', dims: [m, k] }),
        B: ort.Tensor.fromGpuBuffer(bufB, { dataType: 'float32', dims: [k, n] }),
      };
      // A pre-bound output keeps ORT from allocating (and us from disposing) a result tensor on every run.
      const fetches = { C: ort.Tensor.fromGpuBuffer(bufC, { dataType: 'float32', dims: [m, n] }) };
      const run = async (): Promise<void> => {
        await session.run(feeds, fetches);
        await device.queue.onSubmittedWorkDone();
      };
      await run();
      return {
        run,
        // Not fetches.C.getData(): that would turn the bound tensor into a CPU tensor, unusable for the next run.
        read: () => readBuffer(device, bufC, m * n * 4),
        async dispose() {
          await session.release();
          for (const t of [...Object.values(feeds), ...Object.values(fetches)]) t.dispose();
          for (const buf of [bufA, bufB, bufC]) buf.destroy();
        },
      };
    },
    // ORT's WASM runtime and device are page-wide and cannot be torn down; sessions are released per prepare().
    async dispose() {},
  };
}
