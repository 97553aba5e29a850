/**
 * Host side of the inference kernels (shaders/inference-*.wgsl): each op on
 * float32 tensors, pipelines compiled once per (kernel, override) pair.
 * prepare*() uploads an op's inputs and keeps its buffers for repeated runs
 * (the bench times those); the plain methods run an op once and read it back
 * (the op tests). The model planner will keep tensors on the GPU between ops.
 */
import { broadcastShapes, shapeSize, stridesOf } from '../../shared/tensor-shape';

export type InferenceShader = 'unary' | 'binary' | 'softmax' | 'layernorm' | 'transpose' | 'matmul';
export type InferenceSources = Readonly<Record<InferenceShader, string>>;

export interface OpTensor {
  dims: number[];
  data: Float32Array;
}

export const UNARY_OPS = { Identity: 0, Relu: 1, Sigmoid: 2, Tanh: 3, Sqrt: 4, Erf: 5, Gelu: 6, GeluTanh: 7 } as const;
export const BINARY_OPS = { Add: 0, Sub: 1, Mul: 2, Div: 3, Pow: 4 } as const;
export const MATMUL_ACTIVATIONS = { none: 0, relu: 1, gelu: 2 } as const;

const MAX_RANK = 6;
/** Strides of `dims` in the index space of `out` (right-aligned), 0 along broadcast axes. */
function broadcastStrides(out: number[], dims: number[]): number[] {
  const padded = [...new Array<number>(out.length - dims.length).fill(1), ...dims];
  const s = stridesOf(padded);
  return padded.map((d, i) => (d === 1 ? 0 : s[i]!));
}

/** Workgroups for `count` items of `perGroup`, split over y past the 65535 limit of one dimension. */
function grid(count: number, perGroup: number): [number, number] {
  const groups = Math.max(1, Math.ceil(count / perGroup));
  const x = Math.min(groups, 65535);
  return [x, Math.ceil(groups / x)];
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

export class InferenceOps {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly modules = new Map<InferenceShader, GPUShaderModule>();

  constructor(
    private readonly device: GPUDevice,
    private readonly sources: InferenceSources,
  ) {}

  private pipeline(shader: InferenceShader, constants: Record<string, number> = {}): GPUComputePipeline {
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

  private storage(data: Float32Array): GPUBuffer {
    const buffer = this.device.createBuffer({ size: Math.max(16, Math.ceil(data.byteLength / 4) * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
    if (data.byteLength) this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return buffer;
  }

  private uniform(words: ArrayBuffer): GPUBuffer {
    const buffer = this.device.createBuffer({ size: Math.max(16, Math.ceil(words.byteLength / 16) * 16), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.device.queue.writeBuffer(buffer, 0, words);
    return buffer;
  }

  /**
   * Binds `buffers` in order and returns a prepared dispatch: run() launches
   * it and waits for the GPU, read() copies the output back. The buffers stay
   * until dispose(), so a benchmark can time run() alone.
   */
  private async prepare(pipeline: GPUComputePipeline, buffers: GPUBuffer[], outIndex: number, outCount: number, groups: [number, number, number]): Promise<PreparedOp> {
    const device = this.device;
    device.pushErrorScope('validation');
    const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
    const error = await device.popErrorScope();
    if (error) {
      for (const b of buffers) b.destroy();
      throw new Error(`${pipeline.label}: ${error.message}`);
    }
    return {
      async run() {
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(...groups);
        pass.end();
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
      },
      async read() {
        const read = device.createBuffer({ size: Math.max(16, outCount * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        const enc = device.createCommandEncoder();
        if (outCount > 0) enc.copyBufferToBuffer(buffers[outIndex]!, 0, read, 0, outCount * 4);
        device.queue.submit([enc.finish()]);
        await read.mapAsync(GPUMapMode.READ);
        const out = new Float32Array(read.getMappedRange().slice(0, outCount * 4));
        read.unmap();
        read.destroy();
        return out;
      },
      async dispose() {
        for (const b of buffers) b.destroy();
      },
    };
  }

  /** One op, start to finish: upload, run, read back, free. */
  private async once(prepared: Promise<PreparedOp>): Promise<Float32Array> {
    const p = await prepared;
    try {
      await p.run();
      return await p.read();
    } finally {
      await p.dispose();
    }
  }

  async prepareUnary(op: keyof typeof UNARY_OPS, x: OpTensor): Promise<PreparedTensorOp> {
    const n = shapeSize(x.dims);
    const [gx, gy] = grid(n, 256);
    const op_ = await this.prepare(this.pipeline('unary', { OP: UNARY_OPS[op] }), [this.storage(x.data), this.storage(new Float32Array(n)), this.uniform(Uint32Array.of(n, 0, 0, 0).buffer)], 1, n, [gx, gy, 1]);
    return { dims: x.dims, op: op_ };
  }

  async prepareBinary(op: keyof typeof BINARY_OPS, a: OpTensor, b: OpTensor): Promise<PreparedTensorOp> {
    const out = broadcastShapes(a.dims, b.dims);
    if (out.length > MAX_RANK) throw new RangeError(`rank ${out.length} is over ${MAX_RANK}`);
    const n = shapeSize(out);
    const words = new Uint32Array(4 + 3 * 8);
    words.set([out.length, n]);
    words.set(out, 4);
    words.set(broadcastStrides(out, a.dims), 12);
    words.set(broadcastStrides(out, b.dims), 20);
    const [gx, gy] = grid(n, 256);
    const op_ = await this.prepare(this.pipeline('binary', { OP: BINARY_OPS[op] }), [this.storage(a.data), this.storage(b.data), this.storage(new Float32Array(n)), this.uniform(words.buffer)], 2, n, [gx, gy, 1]);
    return { dims: out, op: op_ };
  }

  /** Softmax along the last axis. */
  async prepareSoftmax(x: OpTensor): Promise<PreparedTensorOp> {
    const inner = x.dims[x.dims.length - 1] ?? 1;
    const rows = shapeSize(x.dims) / inner;
    const [gx, gy] = grid(rows, 1);
    const op_ = await this.prepare(this.pipeline('softmax'), [this.storage(x.data), this.storage(new Float32Array(x.data.length)), this.uniform(Uint32Array.of(rows, inner, 0, 0).buffer)], 1, x.data.length, [gx, gy, 1]);
    return { dims: x.dims, op: op_ };
  }

  /** Layer normalization over the axes from `axis` to the end. */
  async prepareLayerNorm(x: OpTensor, axis: number, scale: Float32Array, bias: Float32Array | undefined, epsilon: number): Promise<PreparedTensorOp> {
    const a = axis < 0 ? axis + x.dims.length : axis;
    const inner = shapeSize(x.dims.slice(a));
    const rows = shapeSize(x.dims) / inner;
    const [gx, gy] = grid(rows, 1);
    const op_ = await this.prepare(
      this.pipeline('layernorm'),
      [this.storage(x.data), this.storage(scale), this.storage(bias ?? new Float32Array(1)), this.storage(new Float32Array(x.data.length)), this.uniform(Float32Array.of(rows, inner, epsilon, bias ? 1 : 0).buffer)],
      3,
      x.data.length,
      [gx, gy, 1],
    );
    return { dims: x.dims, op: op_ };
  }

  async prepareTranspose(x: OpTensor, perm: number[]): Promise<PreparedTensorOp> {
    if (x.dims.length > MAX_RANK) throw new RangeError(`rank ${x.dims.length} is over ${MAX_RANK}`);
    const out = perm.map((p) => x.dims[p]!);
    const inStrides = stridesOf(x.dims);
    const n = shapeSize(out);
    const words = new Uint32Array(4 + 2 * 8);
    words.set([out.length, n]);
    words.set(out, 4);
    words.set(perm.map((p) => inStrides[p]!), 12);
    const [gx, gy] = grid(n, 256);
    const op_ = await this.prepare(this.pipeline('transpose'), [this.storage(x.data), this.storage(new Float32Array(n)), this.uniform(words.buffer)], 1, n, [gx, gy, 1]);
    return { dims: out, op: op_ };
  }

  /**
   * act(A · B + bias): A [..., M, K], B [K, N] (weights, shared across the batch) or [..., K, N] with the same
   * batch; bias [N] fused into the store, as is the activation.
   */
  async prepareMatmul(a: OpTensor, b: OpTensor, bias: Float32Array | undefined, activation: keyof typeof MATMUL_ACTIVATIONS): Promise<PreparedTensorOp> {
    const [m, k] = a.dims.slice(-2) as [number, number];
    const [kb, n] = b.dims.slice(-2) as [number, number];
    if (k !== kb) throw new RangeError(`inner sizes differ: [${a.dims.join(', ')}] · [${b.dims.join(', ')}]`);
    const batches = shapeSize(a.dims.slice(0, -2));
    const bBatches = shapeSize(b.dims.slice(0, -2));
    if (bBatches !== 1 && bBatches !== batches) throw new RangeError(`B's batch (${bBatches}) must be 1 or A's (${batches})`);
    const dims = Uint32Array.of(m, k, n, batches, m * k, bBatches === 1 ? 0 : k * n, bias ? 1 : 0, 0);
    const count = batches * m * n;
    const op_ = await this.prepare(
      this.pipeline('matmul', { ACT: MATMUL_ACTIVATIONS[activation] }),
      [this.storage(a.data), this.storage(b.data), this.storage(bias ?? new Float32Array(1)), this.storage(new Float32Array(count)), this.uniform(dims.buffer)],
      3,
      count,
      [Math.ceil(n / 32), Math.ceil(m / 32), batches],
    );
    return { dims: [...a.dims.slice(0, -2), m, n], op: op_ };
  }

  private async runOnce(p: Promise<PreparedTensorOp>): Promise<OpTensor> {
    const { dims, op } = await p;
    return { dims, data: await this.once(Promise.resolve(op)) };
  }

  unary = (op: keyof typeof UNARY_OPS, x: OpTensor) => this.runOnce(this.prepareUnary(op, x));
  binary = (op: keyof typeof BINARY_OPS, a: OpTensor, b: OpTensor) => this.runOnce(this.prepareBinary(op, a, b));
  softmax = (x: OpTensor) => this.runOnce(this.prepareSoftmax(x));
  layerNorm = (x: OpTensor, axis: number, scale: Float32Array, bias: Float32Array | undefined, epsilon: number) => this.runOnce(this.prepareLayerNorm(x, axis, scale, bias, epsilon));
  transpose = (x: OpTensor, perm: number[]) => this.runOnce(this.prepareTranspose(x, perm));
  matmul = (a: OpTensor, b: OpTensor, bias: Float32Array | undefined, activation: keyof typeof MATMUL_ACTIVATIONS) => this.runOnce(this.prepareMatmul(a, b, bias, activation));
}
