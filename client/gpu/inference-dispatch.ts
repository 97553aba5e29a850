/**
 * How each plan step (shared/inference-plan.ts) launches its kernel: the
 * shader, its override constants, the uniform words, the buffers in binding
 * order and the workgroup grid. The model runner and the single-op host both
 * launch through this, so a kernel's calling convention is written once.
 */
import { BINARY_OPS, MATMUL_ACTIVATIONS, UNARY_OPS, type PlanStep } from '../../shared/inference-plan';

export type InferenceShader = 'unary' | 'binary' | 'softmax' | 'softmaxRows' | 'layernorm' | 'layernormRows' | 'transpose' | 'matmul' | 'matmul4' | 'mean';

/** Rows up to this long take the one-invocation-per-row kernels (no barriers). */
export const SHORT_ROW = 256;

export interface StepDispatch {
  shader: InferenceShader;
  constants: Record<string, number>;
  uniform: ArrayBuffer;
  /** Buffer ids in binding order, before the uniform (bound last); null: an unused optional input. */
  bindings: (number | null)[];
  groups: [number, number, number];
}

/** Workgroups for `count` items of `perGroup`, split over y past the 65535 limit of one dimension. */
function grid(count: number, perGroup: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(count / perGroup));
  const x = Math.min(groups, 65535);
  return [x, Math.ceil(groups / x), 1];
}

/**
 * The size of an operand that is a trailing block of the output (its own
 * shape, a scalar, a bias along the last axes), so that its index is the
 * output's flat index modulo that size; undefined for other broadcasts.
 */
export function trailingBlockSize(outDims: readonly number[], strides: readonly number[]): number | undefined {
  let size = 1;
  let d = outDims.length - 1;
  for (; d >= 0; d--) {
    if (outDims[d] === 1) continue;
    if (strides[d] !== size) break;
    size *= outDims[d]!;
  }
  for (; d >= 0; d--) if (outDims[d] !== 1 && strides[d] !== 0) return undefined;
  return size;
}

export function dispatchFor(step: PlanStep): StepDispatch {
  switch (step.kind) {
    case 'unary':
      return { shader: 'unary', constants: { OP: UNARY_OPS[step.op] }, uniform: Uint32Array.of(step.count, 0, 0, 0).buffer, bindings: [step.x, step.out], groups: grid(step.count, 256) };
    case 'binary': {
      const n = step.outDims.reduce((a, b) => a * b, 1);
      const aSize = trailingBlockSize(step.outDims, step.aStrides);
      const bSize = trailingBlockSize(step.outDims, step.bStrides);
      const words = new Uint32Array(4 + 3 * 8);
      words.set([step.outDims.length, n, aSize ?? 0, bSize ?? 0]);
      words.set(step.outDims, 4);
      words.set(step.aStrides, 12);
      words.set(step.bStrides, 20);
      const constants = { OP: BINARY_OPS[step.op], A_MOD: aSize === undefined ? 0 : 1, B_MOD: bSize === undefined ? 0 : 1 };
      return { shader: 'binary', constants, uniform: words.buffer, bindings: [step.a, step.b, step.out], groups: grid(n, 256) };
    }
    case 'softmax': {
      const short = step.inner <= SHORT_ROW;
      return { shader: short ? 'softmaxRows' : 'softmax', constants: {}, uniform: Uint32Array.of(step.rows, step.inner, 0, 0).buffer, bindings: [step.x, step.out], groups: grid(step.rows, short ? 64 : 1) };
    }
    case 'mean':
      return { shader: 'mean', constants: {}, uniform: Uint32Array.of(step.rows, step.inner, 0, 0).buffer, bindings: [step.x, step.out], groups: grid(step.rows, 1) };
    case 'layernorm': {
      const short = step.inner <= SHORT_ROW;
      return {
        shader: short ? 'layernormRows' : 'layernorm',
        constants: {},
        uniform: Float32Array.of(step.rows, step.inner, step.epsilon, step.bias === null ? 0 : 1).buffer,
        bindings: [step.x, step.scale, step.bias, step.out],
        groups: grid(step.rows, short ? 64 : 1),
      };
    }
    case 'transpose': {
      const n = step.outDims.reduce((a, b) => a * b, 1);
      const words = new Uint32Array(4 + 2 * 8);
      words.set([step.outDims.length, n]);
      words.set(step.outDims, 4);
      words.set(step.inStrides, 12);
      return { shader: 'transpose', constants: {}, uniform: words.buffer, bindings: [step.x, step.out], groups: grid(n, 256) };
    }
    case 'matmul': {
      // Layer widths are nearly always multiples of 4: those take the register-blocked vec4 kernel.
      const vec4 = step.k % 4 === 0 && step.n % 4 === 0;
      return {
        shader: vec4 ? 'matmul4' : 'matmul',
        constants: { ACT: MATMUL_ACTIVATIONS[step.act] },
        uniform: Uint32Array.of(step.m, step.k, step.n, step.batches, step.batches > 1 ? step.m * step.k : 0, step.bBatched ? step.k * step.n : 0, step.bias === null ? 0 : 1, 0).buffer,
        bindings: [step.a, step.b, step.bias, step.out],
        // vec4: 8×8 threads of 8 rows × 2 vec4 columns; scalar: 8×8 threads of 4×4.
        groups: vec4 ? [Math.ceil(step.n / 64), Math.ceil(step.m / 64), step.batches] : [Math.ceil(step.n / 32), Math.ceil(step.m / 32), step.batches],
      };
    }
  }
}
