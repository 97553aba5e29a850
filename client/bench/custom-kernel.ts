/**
 * A researcher's own WGSL matmul on the bench: compiled with the compiler's
 * messages kept (line and column), bound by a declared layout, dispatched by
 * a declared block size, then timed and checked like our kernels.
 */
import { narrow, pack, PassTimer, readBuffer, type PreparedMatmul } from '../gpu/matmul-kernel';
import type { BenchSubject } from './runner';

export interface CustomKernelSpec {
  code: string;
  entryPoint: string;
  /** @group(0) binding numbers of A (M×K), B (K×N), C (M×N) and the uniform {M, K, N, pad: u32}. */
  bindings: { a: number; b: number; c: number; dims: number };
  /** The block of C one workgroup computes: the dispatch is ceil(N / cols) × ceil(M / rows) × 1. */
  block: { rows: number; cols: number };
  /** vec4-packed operands: 'kn' pads K and N to multiples of 4 (A, B, C read as vec4), 'n' pads N only. */
  pad: 'none' | 'n' | 'kn';
}

export interface CompilerMessage {
  type: GPUCompilationMessageType;
  line: number;
  column: number;
  message: string;
}

export class KernelCompileError extends Error {
  constructor(readonly messages: CompilerMessage[]) {
    super(messages.filter((m) => m.type === 'error').map((m) => `line ${m.line}:${m.column}: ${m.message}`).join('\n'));
  }
}

export class KernelSetupError extends Error {}

function checkSpec(spec: CustomKernelSpec): void {
  const b = spec.bindings;
  const nums = [b.a, b.b, b.c, b.dims];
  if (nums.some((x) => !Number.isInteger(x) || x < 0 || x > 15)) throw new KernelSetupError('binding numbers must be integers from 0 to 15');
  if (new Set(nums).size !== 4) throw new KernelSetupError('A, B, C and dims need four different binding numbers');
  for (const v of [spec.block.rows, spec.block.cols]) {
    if (!Number.isInteger(v) || v < 1 || v > 4096) throw new KernelSetupError('the block (rows and columns of C per workgroup) must be whole numbers from 1 to 4096');
  }
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(spec.entryPoint)) throw new KernelSetupError('the entry point must be a WGSL identifier, e.g. main');
}

/** Compiles and reports every message; throws KernelCompileError when there is an error. */
export async function compileCustomKernel(device: GPUDevice, spec: CustomKernelSpec): Promise<{ pipeline: GPUComputePipeline; messages: CompilerMessage[] }> {
  checkSpec(spec);
  const module = device.createShaderModule({ label: 'custom-kernel', code: spec.code });
  const info = await module.getCompilationInfo();
  const messages = info.messages.map((m) => ({ type: m.type, line: m.lineNum, column: m.linePos, message: m.message }));
  if (messages.some((m) => m.type === 'error')) throw new KernelCompileError(messages);
  device.pushErrorScope('validation');
  const pipeline = device.createComputePipeline({ label: 'custom-kernel', layout: 'auto', compute: { module, entryPoint: spec.entryPoint } });
  const error = await device.popErrorScope();
  if (error) throw new KernelSetupError(`the pipeline could not be created: ${error.message}`);
  return { pipeline, messages };
}

export function customSubject(device: GPUDevice, spec: CustomKernelSpec): BenchSubject {
  return {
    id: 'custom',
    label: 'your kernel',
    group: 'custom',
    async prepare(m, k, n, a, b): Promise<PreparedMatmul> {
      const { pipeline } = await compileCustomKernel(device, spec);
      const p = pack(spec, a, b, m, k, n);
      const cBytes = m * p.n * 4;
      const make = (label: string, bytes: number, usage: number, data?: Float32Array | Uint32Array) => {
        const buffer = device.createBuffer({ label, size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: usage | GPUBufferUsage.COPY_DST });
        if (data) device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
        return buffer;
      };
      const bufs = {
        a: make('custom-a', p.a.byteLength, GPUBufferUsage.STORAGE, p.a),
        b: make('custom-b', p.b.byteLength, GPUBufferUsage.STORAGE, p.b),
        c: make('custom-c', cBytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC),
        dims: make('custom-dims', 16, GPUBufferUsage.UNIFORM, new Uint32Array([m, p.k, p.n, 0])),
      };
      device.pushErrorScope('validation');
      const bindGroup = device.createBindGroup({
        label: 'custom-bindings',
        layout: pipeline.getBindGroupLayout(0),
        entries: (['a', 'b', 'c', 'dims'] as const).map((name) => ({ binding: spec.bindings[name], resource: { buffer: bufs[name] } })),
      });
      const error = await device.popErrorScope();
      if (error) {
        for (const x of Object.values(bufs)) x.destroy();
        throw new KernelSetupError(
          `the declared bindings do not match the shader (A=${spec.bindings.a}, B=${spec.bindings.b}, C=${spec.bindings.c}, dims=${spec.bindings.dims}, all in @group(0); ` +
            `every one must be used by the entry point, with A and B read-only storage, C read_write storage and dims a uniform): ${error.message}`,
        );
      }
      const timer = device.features.has('timestamp-query') ? new PassTimer(device) : undefined;
      return {
        async run() {
          const enc = device.createCommandEncoder({ label: 'custom' });
          const pass = enc.beginComputePass({ label: 'custom', ...(timer ? { timestampWrites: timer.writes() } : {}) });
          pass.setPipeline(pipeline);
          pass.setBindGroup(0, bindGroup);
          pass.dispatchWorkgroups(Math.ceil(p.n / spec.block.cols), Math.ceil(m / spec.block.rows));
          pass.end();
          timer?.resolve(enc);
          device.queue.submit([enc.finish()]);
          await device.queue.onSubmittedWorkDone();
        },
        gpuMs: async () => timer?.lastMs(),
        read: async () => narrow(await readBuffer(device, bufs.c, cBytes), m, p.n, n),
        async dispose() {
          for (const x of Object.values(bufs)) x.destroy();
          timer?.destroy();
        },
      };
    },
  };
}
