/**
 * Host side of the inference kernels (shaders/inference-*.wgsl): pipelines
 * compiled once per (kernel, override) pair, and each op runnable alone on
 * float32 tensors. prepare*() uploads an op's inputs and keeps its buffers for
 * repeated runs (the bench times those); the plain methods run an op once and
 * read it back (the op tests). Whole models run through ModelRunner, which
 * launches the same kernels the same way (inference-dispatch.ts).
 */
import { BINARY_OPS, broadcastStrides, MATMUL_ACTIVATIONS, MAX_RANK, UNARY_OPS, type PlanStep } from '../../shared/inference-plan';
import { broadcastShapes, shapeSize, stridesOf } from '../../shared/tensor-shape';
import { dispatchFor, type InferenceShader } from './inference-dispatch';
import { readBuffer } from './matmul-kernel';

export { BINARY_OPS, MATMUL_ACTIVATIONS, UNARY_OPS };
export type { InferenceShader };
export type InferenceSources = Readonly<Record<InferenceShader, string>>;

export interface OpTensor {
  dims: number[];
  data: Float32Array;
}

export interface PreparedOp {
  run(): Promise<void>;
  read(): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** A prepared op and the shape of what it produces. */
export interface PreparedTensorOp {
  dims: number[];
  op: PreparedOp;
}

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;

export class InferenceOps {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly modules = new Map<InferenceShader, GPUShaderModule>();

  constructor(
    readonly device: GPUDevice,
    private readonly sources: InferenceSources,
  ) {}

  pipeline(shader: InferenceShader, constants: Record<string, number> = {}): GPUComputePipeline {
    const key = `${shader}:${JSON.stringify(constants)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      let module = this.modules.get(shader);
      if (!module) {
        module = this.device.createShaderModule({ label: `inference-${shader}`, code: this.sources[shader] });
        this.modules.set(shader, module);
      }
      p = this.device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint: 'main', constants } });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** A storage buffer of `elements` floats (at least 16 bytes, as binding requires), filled from `data` if given. */
  storage(elements: number, data?: Float32Array, label?: string): GPUBuffer {
    const buffer = this.device.createBuffer({ ...(label ? { label } : {}), size: Math.max(16, elements * 4), usage: STORAGE });
    if (data?.byteLength) this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return buffer;
  }

  uniform(words: ArrayBuffer): GPUBuffer {
    const buffer = this.device.createBuffer({ size: Math.max(16, Math.ceil(words.byteLength / 16) * 16), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.device.queue.writeBuffer(buffer, 0, words);
    return buffer;
  }

  /** The pipeline, bind group and grid of one step, its buffers resolved by id; `dummy` stands in for an absent optional input. */
  encodeStep(step: PlanStep, buffer: (id: number) => GPUBuffer, dummy: GPUBuffer): Launch & { uniform: GPUBuffer } {
    const d = dispatchFor(step);
    const pipeline = this.pipeline(d.shader, d.constants);
    const uniform = this.uniform(d.uniform);
    const resources = [...d.bindings.map((id) => (id === null ? dummy : buffer(id))), uniform];
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: resources.map((b, binding) => ({ binding, resource: { buffer: b } })) });
    return { pipeline, bindGroup, groups: d.groups, uniform };
  }

  /**
   * Uploads `inputs` (buffer ids 0…), allocates the output (the next id) and
   * returns a prepared dispatch: run() launches it and waits for the GPU,
   * read() copies the output back. The buffers stay until dispose(), so a
   * benchmark can time run() alone.
   */
  private async prepare(step: PlanStep, inputs: (Float32Array | undefined)[], outCount: number): Promise<PreparedOp> {
    const device = this.device;
    const buffers = [...inputs.map((d) => this.storage(d?.length ?? 0, d)), this.storage(outCount)];
    const dummy = this.storage(4);
    device.pushErrorScope('validation');
    const enc = this.encodeStep(step, (id) => buffers[id]!, dummy);
    const error = await device.popErrorScope();
    const owned = [...buffers, dummy, enc.uniform];
    if (error) {
      for (const b of owned) b.destroy();
      throw new Error(`${enc.pipeline.label}: ${error.message}`);
    }
    const out = buffers[buffers.length - 1]!;
    return {
      async run() {
        submitLaunches(device, [enc]);
        await device.queue.onSubmittedWorkDone();
      },
      async read() {
        return readBuffer(device, out, outCount * 4);
      },
      async dispose() {
        for (const b of owned) b.destroy();
      },
    };
  }

  /** One op, start to finish: upload, run, read back, free. */
  private async runOnce(prepared: Promise<PreparedTensorOp>): Promise<OpTensor> {
    const { dims, op } = await prepared;
    try {
      await op.run();
      return { dims, data: await op.read() };
    } finally {
      await op.dispose();
    }
  }

  async prepareUnary(op: keyof typeof UNARY_OPS, x: OpTensor): Promise<PreparedTensorOp> {
    const count = shapeSize(x.dims);
    return { dims: x.dims, op: await this.prepare({ kind: 'unary', op, x: 0, out: 1, count, node: op }, [x.data], count) };
  }

  async prepareBinary(op: keyof typeof BINARY_OPS, a: OpTensor, b: OpTensor): Promise<PreparedTensorOp> {
    const outDims = broadcastShapes(a.dims, b.dims);
    if (outDims.length > MAX_RANK) throw new RangeError(`rank ${outDims.length} is over ${MAX_RANK}`);
    const step: PlanStep = { kind: 'binary', op, a: 0, b: 1, out: 2, outDims, aStrides: broadcastStrides(outDims, a.dims), bStrides: broadcastStrides(outDims, b.dims), node: op };
    return { dims: outDims, op: await this.prepare(step, [a.data, b.data], shapeSize(outDims)) };
  }

  /** Softmax along the last axis. */
  async prepareSoftmax(x: OpTensor): Promise<PreparedTensorOp> {
    const inner = x.dims[x.dims.length - 1] ?? 1;
    return { dims: x.dims, op: await this.prepare({ kind: 'softmax', x: 0, out: 1, rows: shapeSize(x.dims) / inner, inner, node: 'softmax' }, [x.data], x.data.length) };
  }

  /** Mean over the last `axes` axes. */
  async prepareMean(x: OpTensor, axes: number): Promise<PreparedTensorOp> {
    const inner = shapeSize(x.dims.slice(x.dims.length - axes));
    const rows = shapeSize(x.dims) / inner;
    return { dims: [...x.dims.slice(0, x.dims.length - axes), ...new Array<number>(axes).fill(1)], op: await this.prepare({ kind: 'mean', x: 0, out: 1, rows, inner, node: 'mean' }, [x.data], rows) };
  }

  /** Layer normalization over the axes from `axis` to the end. */
  async prepareLayerNorm(x: OpTensor, axis: number, scale: Float32Array, bias: Float32Array | undefined, epsilon: number): Promise<PreparedTensorOp> {
    const inner = shapeSize(x.dims.slice(axis < 0 ? axis + x.dims.length : axis));
    const step: PlanStep = { kind: 'layernorm', x: 0, scale: 1, bias: bias ? 2 : null, out: bias ? 3 : 2, rows: shapeSize(x.dims) / inner, inner, epsilon, node: 'layernorm' };
    return { dims: x.dims, op: await this.prepare(step, bias ? [x.data, scale, bias] : [x.data, scale], x.data.length) };
  }

  async prepareTranspose(x: OpTensor, perm: number[]): Promise<PreparedTensorOp> {
    if (x.dims.length > MAX_RANK) throw new RangeError(`rank ${x.dims.length} is over ${MAX_RANK}`);
    const outDims = perm.map((p) => x.dims[p]!);
    const strides = stridesOf(x.dims);
    return { dims: outDims, op: await this.prepare({ kind: 'transpose', x: 0, out: 1, outDims, inStrides: perm.map((p) => strides[p]!), node: 'transpose' }, [x.data], shapeSize(outDims)) };
  }

  /**
   * act(A · B + bias): A [..., M, K], B [K, N] (weights, shared across the batch) or [..., K, N] with the same
   * batch; bias [N] fused into the store, as is the activation.
   */
  async prepareMatmul(a: OpTensor, b: OpTensor, bias: Float32Array | undefined, act: keyof typeof MATMUL_ACTIVATIONS): Promise<PreparedTensorOp> {
    const [m, k] = a.dims.slice(-2) as [number, number];
    const [kb, n] = b.dims.slice(-2) as [number, number];
    if (k !== kb) throw new RangeError(`inner sizes differ: [${a.dims.join(', ')}] · [${b.dims.join(', ')}]`);
    const batches = shapeSize(a.dims.slice(0, -2));
    const bBatches = shapeSize(b.dims.slice(0, -2));
    if (bBatches !== 1 && bBatches !== batches) throw new RangeError(`B's batch (${bBatches}) must be 1 or A's (${batches})`);
    const step: PlanStep = { kind: 'matmul', a: 0, b: 1, bias: bias ? 2 : null, out: bias ? 3 : 2, m, k, n, batches, bBatched: bBatches !== 1, act, node: 'matmul' };
    return { dims: [...a.dims.slice(0, -2), m, n], op: await this.prepare(step, bias ? [a.data, b.data, bias] : [a.data, b.data], batches * m * n) };
  }

  unary = (op: keyof typeof UNARY_OPS, x: OpTensor) => this.runOnce(this.prepareUnary(op, x));
  binary = (op: keyof typeof BINARY_OPS, a: OpTensor, b: OpTensor) => this.runOnce(this.prepareBinary(op, a, b));
  softmax = (x: OpTensor) => this.runOnce(this.prepareSoftmax(x));
  mean = (x: OpTensor, axes: number) => this.runOnce(this.prepareMean(x, axes));
  layerNorm = (x: OpTensor, axis: number, scale: Float32Array, bias: Float32Array | undefined, epsilon: number) => this.runOnce(this.prepareLayerNorm(x, axis, scale, bias, epsilon));
  transpose = (x: OpTensor, perm: number[]) => this.runOnce(this.prepareTranspose(x, perm));
  matmul = (a: OpTensor, b: OpTensor, bias: Float32Array | undefined, act: keyof typeof MATMUL_ACTIVATIONS) => this.runOnce(this.prepareMatmul(a, b, bias, act));
}

export interface Launch {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  groups: [number, number, number];
}

/** Encodes `launches` in one compute pass and submits it (the implementation orders the dispatches' memory accesses). */
export function submitLaunches(device: GPUDevice, launches: readonly Launch[]): void {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  for (const l of launches) {
    pass.setPipeline(l.pipeline);
    pass.setBindGroup(0, l.bindGroup);
    pass.dispatchWorkgroups(...l.groups);
  }
  pass.end();
  device.queue.submit([encoder.finish()]);
}
