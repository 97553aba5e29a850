/**
 * Host side of the matmul kernel family (shared/matmul-configs.ts): one
 * pipeline per configuration, compiled on first use and cached; operands
 * padded where a configuration reads vec4s; buffers kept between tiles and
 * grown only when a larger tile arrives.
 */
import {
  configRunsOn,
  DEFAULT_MATMUL_CONFIG_ID,
  MATMUL_CONFIGS,
  matmulConfig,
  sizeClassOf,
  type DeviceCapabilities,
  type KernelTuning,
  type MatmulConfig,
  type MatmulShader,
} from '../../shared/matmul-configs';
import type { PreparedMatmul } from './prepared-matmul';

export type ShaderSources = Readonly<Record<MatmulShader, string>>;
export type { PreparedMatmul };

const roundUp4 = (n: number) => Math.ceil(n / 4) * 4;

/** Copies a rows×cols row-major matrix into one with `width` ≥ cols columns, zero-filled. */
function widen(src: Float32Array, rows: number, cols: number, width: number): Float32Array {
  if (width === cols) return src;
  const out = new Float32Array(rows * width);
  for (let i = 0; i < rows; i++) out.set(src.subarray(i * cols, (i + 1) * cols), i * width);
  return out;
}

export function narrow(src: Float32Array, rows: number, width: number, cols: number): Float32Array {
  if (width === cols) return src;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) out.set(src.subarray(i * width, i * width + cols), i * cols);
  return out;
}

export interface Packed {
  a: Float32Array;
  b: Float32Array;
  /** Dimensions the shader sees (K and N possibly padded). */
  k: number;
  n: number;
}

/** Pads K and/or N to multiples of 4 for configurations that read vec4s. */
export function pack(config: Pick<MatmulConfig, 'pad'>, a: Float32Array, b: Float32Array, m: number, k: number, n: number): Packed {
  const kp = config.pad === 'kn' ? roundUp4(k) : k;
  const np = config.pad === 'none' ? n : roundUp4(n);
  // Extra K rows of B stay zero, so padded K contributes nothing.
  const bRows = kp === k ? b : (() => {
    const out = new Float32Array(kp * n);
    out.set(b);
    return out;
  })();
  return { a: widen(a, m, k, kp), b: widen(bRows, kp, n, np), k: kp, n: np };
}

export function deviceCapabilities(device: GPUDevice): DeviceCapabilities {
  return {
    subgroups: device.features.has('subgroups'),
    maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
  };
}

export class MatmulKernel {
  readonly capabilities: DeviceCapabilities;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly modules = new Map<MatmulShader, GPUShaderModule>();
  private readonly uniform: GPUBuffer;
  private buffers: { a: GPUBuffer; b: GPUBuffer; c: GPUBuffer; read: GPUBuffer; bytes: { a: number; b: number; c: number } } | undefined;
  private tuning: KernelTuning | undefined;

  constructor(
    private readonly device: GPUDevice,
    private readonly sources: ShaderSources,
  ) {
    this.capabilities = deviceCapabilities(device);
    this.uniform = device.createBuffer({ label: 'matmul-dims', size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  }

  /** Every configuration this device can run (baselines included). */
  configs(opts: { productionOnly?: boolean } = {}): MatmulConfig[] {
    return MATMUL_CONFIGS.filter((c) => configRunsOn(c, this.capabilities) && (!opts.productionOnly || c.production));
  }

  setTuning(tuning: KernelTuning | undefined): void {
    this.tuning = tuning;
  }

  /** The tuned configuration for a tile of this shape, or the default before tuning. */
  configFor(rows: number, cols: number): MatmulConfig {
    const id = this.tuning?.configs[sizeClassOf(rows, cols)];
    const c = id ? MATMUL_CONFIGS.find((x) => x.id === id) : undefined;
    return c && configRunsOn(c, this.capabilities) ? c : matmulConfig(DEFAULT_MATMUL_CONFIG_ID);
  }

  private module(shader: MatmulShader): GPUShaderModule {
    let m = this.modules.get(shader);
    if (!m) {
      m = this.device.createShaderModule({ label: `matmul-${shader}`, code: this.sources[shader] });
      this.modules.set(shader, m);
    }
    return m;
  }

  /** Compiles on first use; the compiler's errors surface as an exception, not a silent wrong answer. */
  async pipeline(config: MatmulConfig): Promise<GPUComputePipeline> {
    const cached = this.pipelines.get(config.id);
    if (cached) return cached;
    if (!configRunsOn(config, this.capabilities)) throw new Error(`configuration ${config.id} does not run on this device`);
    this.device.pushErrorScope('validation');
    const pipeline = this.device.createComputePipeline({
      label: `matmul-${config.id}`,
      layout: 'auto',
      compute: { module: this.module(config.shader), entryPoint: 'main', constants: { ...config.constants } },
    });
    const error = await this.device.popErrorScope();
    if (error) throw new Error(`matmul ${config.id}: ${error.message}`);
    this.pipelines.set(config.id, pipeline);
    return pipeline;
  }

  private encode(enc: GPUCommandEncoder, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, config: MatmulConfig, m: number, n: number, timestampWrites?: GPUComputePassTimestampWrites) {
    const pass = enc.beginComputePass({ label: `matmul-${config.id}`, ...(timestampWrites ? { timestampWrites } : {}) });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(n / config.block.cols), Math.ceil(m / config.block.rows));
    pass.end();
  }

  private ensureBuffers(aBytes: number, bBytes: number, cBytes: number) {
    const cur = this.buffers;
    if (cur && cur.bytes.a >= aBytes && cur.bytes.b >= bBytes && cur.bytes.c >= cBytes) return cur;
    cur?.a.destroy();
    cur?.b.destroy();
    cur?.c.destroy();
    cur?.read.destroy();
    const round = (n: number) => Math.max(16, Math.ceil(n / 16) * 16);
    const bytes = { a: round(aBytes), b: round(bBytes), c: round(cBytes) };
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    this.buffers = {
      a: this.device.createBuffer({ label: 'matmul-a', size: bytes.a, usage: storage }),
      b: this.device.createBuffer({ label: 'matmul-b', size: bytes.b, usage: storage }),
      c: this.device.createBuffer({ label: 'matmul-c', size: bytes.c, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC }),
      read: this.device.createBuffer({ label: 'matmul-readback', size: bytes.c, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      bytes,
    };
    return this.buffers;
  }

  /** C (rows×cols) = A (rows×k) · B (k×cols), all row-major float32: upload, compute, read back. */
  async run(a: Float32Array, b: Float32Array, rows: number, k: number, cols: number, config = this.configFor(rows, cols)): Promise<Float32Array> {
    const pipeline = await this.pipeline(config);
    const p = pack(config, a, b, rows, k, cols);
    const cBytes = rows * p.n * 4;
    const buf = this.ensureBuffers(p.a.byteLength, p.b.byteLength, cBytes);
    const q = this.device.queue;
    q.writeBuffer(buf.a, 0, p.a.buffer, p.a.byteOffset, p.a.byteLength);
    q.writeBuffer(buf.b, 0, p.b.buffer, p.b.byteOffset, p.b.byteLength);
    q.writeBuffer(this.uniform, 0, new Uint32Array([rows, p.k, p.n, 0]));
    const bindGroup = this.device.createBindGroup({
      label: 'matmul-bindings',
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: buf.a, size: p.a.byteLength } },
        { binding: 1, resource: { buffer: buf.b, size: p.b.byteLength } },
        { binding: 2, resource: { buffer: buf.c, size: cBytes } },
        { binding: 3, resource: { buffer: this.uniform } },
      ],
    });
    const enc = this.device.createCommandEncoder({ label: 'matmul' });
    this.encode(enc, pipeline, bindGroup, config, rows, p.n);
    enc.copyBufferToBuffer(buf.c, 0, buf.read, 0, cBytes);
    q.submit([enc.finish()]);
    await buf.read.mapAsync(GPUMapMode.READ, 0, cBytes);
    const out = new Float32Array(buf.read.getMappedRange(0, cBytes).slice(0));
    buf.read.unmap();
    return narrow(out, rows, p.n, cols);
  }

  /**
   * Uploads the operands into buffers of their own and compiles the
   * pipeline, for repeated timed runs (benchmarks and tuning). Uses
   * timestamp queries when the device was created with them.
   */
  async prepare(config: MatmulConfig, m: number, k: number, n: number, a: Float32Array, b: Float32Array): Promise<PreparedMatmul> {
    const device = this.device;
    const pipeline = await this.pipeline(config);
    const p = pack(config, a, b, m, k, n);
    const cBytes = m * p.n * 4;
    const upload = (label: string, data: Float32Array | Uint32Array, usage: number) => {
      const buffer = device.createBuffer({ label, size: Math.max(16, data.byteLength), usage: usage | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
      return buffer;
    };
    const bufA = upload('bench-a', p.a, GPUBufferUsage.STORAGE);
    const bufB = upload('bench-b', p.b, GPUBufferUsage.STORAGE);
    const dims = upload('bench-dims', new Uint32Array([m, p.k, p.n, 0]), GPUBufferUsage.UNIFORM);
    const bufC = device.createBuffer({ label: 'bench-c', size: Math.max(16, cBytes), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const bindGroup = device.createBindGroup({
      label: `bench-${config.id}`,
      layout: pipeline.getBindGroupLayout(0),
      entries: [bufA, bufB, bufC, dims].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const timer = device.features.has('timestamp-query') ? new PassTimer(device) : undefined;
    const owned: GPUBuffer[] = [bufA, bufB, bufC, dims];
    return {
      run: async () => {
        const enc = device.createCommandEncoder({ label: `bench-${config.id}` });
        this.encode(enc, pipeline, bindGroup, config, m, p.n, timer?.writes());
        timer?.resolve(enc);
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
      },
      gpuMs: async () => timer?.lastMs(),
      read: async () => narrow(await readBuffer(device, bufC, cBytes), m, p.n, n),
      dispose: async () => {
        for (const x of owned) x.destroy();
        timer?.destroy();
      },
    };
  }

  destroy(): void {
    this.buffers?.a.destroy();
    this.buffers?.b.destroy();
    this.buffers?.c.destroy();
    this.buffers?.read.destroy();
    this.uniform.destroy();
  }
}

export async function readBuffer(device: GPUDevice, src: GPUBuffer, bytes: number): Promise<Float32Array> {
  const read = device.createBuffer({ label: 'readback', size: Math.max(16, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder({ label: 'readback' });
  enc.copyBufferToBuffer(src, 0, read, 0, bytes);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ, 0, bytes);
  const out = new Float32Array(read.getMappedRange(0, bytes).slice(0));
  read.unmap();
  read.destroy();
  return out;
}

/** Start and end timestamps of one compute pass, resolved after it. */
export class PassTimer {
  private readonly querySet: GPUQuerySet;
  private readonly resolveBuffer: GPUBuffer;
  private readonly readBuffer: GPUBuffer;

  constructor(private readonly device: GPUDevice) {
    this.querySet = device.createQuerySet({ label: 'pass-timer', type: 'timestamp', count: 2 });
    this.resolveBuffer = device.createBuffer({ label: 'pass-timer-resolve', size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    this.readBuffer = device.createBuffer({ label: 'pass-timer-read', size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  writes(): GPUComputePassTimestampWrites {
    return { querySet: this.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 };
  }

  resolve(enc: GPUCommandEncoder): void {
    enc.resolveQuerySet(this.querySet, 0, 2, this.resolveBuffer, 0);
    enc.copyBufferToBuffer(this.resolveBuffer, 0, this.readBuffer, 0, 16);
  }

  /** Nanosecond timestamps of the last resolved pass, as milliseconds; undefined if the device gave none. */
  async lastMs(): Promise<number | undefined> {
    await this.readBuffer.mapAsync(GPUMapMode.READ);
    const [t0, t1] = new BigInt64Array(this.readBuffer.getMappedRange().slice(0));
    this.readBuffer.unmap();
    if (t0 === undefined || t1 === undefined || t1 <= t0) return undefined;
    return Number(t1 - t0) / 1e6;
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolveBuffer.destroy();
    this.readBuffer.destroy();
  }
}
