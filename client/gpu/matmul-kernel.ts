/**
 * Host side of shaders/matmul-tiled.wgsl: one pipeline compiled once per
 * device, buffers kept and grown only when a larger tile arrives.
 */
const BLOCK = 64;

export class MatmulKernel {
  private readonly pipeline: GPUComputePipeline;
  private readonly uniform: GPUBuffer;
  private buffers: { a: GPUBuffer; b: GPUBuffer; c: GPUBuffer; read: GPUBuffer; bytes: { a: number; b: number; c: number } } | undefined;

  constructor(
    private readonly device: GPUDevice,
    shaderCode: string,
  ) {
    const module = device.createShaderModule({ label: 'matmul-tiled', code: shaderCode });
    this.pipeline = device.createComputePipeline({ label: 'matmul-tiled', layout: 'auto', compute: { module, entryPoint: 'main' } });
    this.uniform = device.createBuffer({ label: 'matmul-dims', size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
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

  /** C (rows×cols) = A (rows×k) · B (k×cols), all row-major float32. */
  async run(a: Float32Array, b: Float32Array, rows: number, k: number, cols: number): Promise<Float32Array> {
    const cBytes = rows * cols * 4;
    const buf = this.ensureBuffers(a.byteLength, b.byteLength, cBytes);
    const q = this.device.queue;
    q.writeBuffer(buf.a, 0, a.buffer, a.byteOffset, a.byteLength);
    q.writeBuffer(buf.b, 0, b.buffer, b.byteOffset, b.byteLength);
    q.writeBuffer(this.uniform, 0, new Uint32Array([rows, k, cols, 0]));
    const bindGroup = this.device.createBindGroup({
      label: 'matmul-bindings',
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: buf.a, size: a.byteLength } },
        { binding: 1, resource: { buffer: buf.b, size: b.byteLength } },
        { binding: 2, resource: { buffer: buf.c, size: cBytes } },
        { binding: 3, resource: { buffer: this.uniform } },
      ],
    });
    const enc = this.device.createCommandEncoder({ label: 'matmul' });
    const pass = enc.beginComputePass({ label: 'matmul' });
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(cols / BLOCK), Math.ceil(rows / BLOCK));
    pass.end();
    enc.copyBufferToBuffer(buf.c, 0, buf.read, 0, cBytes);
    q.submit([enc.finish()]);
    await buf.read.mapAsync(GPUMapMode.READ, 0, cBytes);
    const out = new Float32Array(buf.read.getMappedRange(0, cBytes).slice(0));
    buf.read.unmap();
    return out;
  }

  destroy(): void {
    this.buffers?.a.destroy();
    this.buffers?.b.destroy();
    this.buffers?.c.destroy();
    this.buffers?.read.destroy();
    this.uniform.destroy();
  }
}
