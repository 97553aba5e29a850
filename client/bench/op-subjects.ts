/**
 * The inference kernels as bench subjects. Each takes A (M×K) — and B (K×N)
 * for the matmul — from the runner's seeded inputs, is timed like the matmul
 * family, and is checked element by element against a CPU reference here.
 * GFLOPS for element-wise ops counts their arithmetic as noted per op.
 */
import { gelu } from '../../shared/inference-math';
import { InferenceOps, type PreparedTensorOp } from '../gpu/inference-ops';
import type { BenchCheck, BenchShape, BenchSubject } from './runner';

/** Per-column vectors (bias, scale) derived from the shape, so the reference can rebuild them. */
const columnVector = (n: number, phase: number) => Float32Array.from({ length: n }, (_, j) => Math.cos(j * 0.37 + phase) * 0.5 + phase);

function compare(out: Float32Array, ref: Float64Array | Float32Array, tolerance: number): BenchCheck {
  if (out.length !== ref.length) return { ok: false, method: 'full', checked: 0, worstRatio: Infinity };
  let scale = 1;
  for (const v of ref) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = Math.abs(out[i]! - ref[i]!) / (tolerance * scale);
    if (!(r <= worst)) worst = Number.isNaN(r) ? Infinity : r;
  }
  return { ok: worst <= 1, method: 'full', checked: ref.length, worstRatio: worst };
}

interface OpSpec {
  id: string;
  label: string;
  flops(s: BenchShape): number;
  tolerance(s: BenchShape): number;
  prepare(ops: InferenceOps, s: BenchShape, a: Float32Array, b: Float32Array): Promise<PreparedTensorOp>;
  reference(s: BenchShape, a: Float32Array, b: Float32Array): Float64Array;
}

const rowsOf = (s: BenchShape, a: Float32Array, f: (row: Float32Array, out: Float64Array) => void) => {
  const out = new Float64Array(s.m * s.k);
  for (let i = 0; i < s.m; i++) f(a.subarray(i * s.k, (i + 1) * s.k), out.subarray(i * s.k, (i + 1) * s.k));
  return out;
};

const OPS: OpSpec[] = [
  {
    id: 'op-softmax',
    label: 'softmax over the rows of A (M×K); 4 ops per element',
    flops: (s) => 4 * s.m * s.k,
    tolerance: () => 1e-5,
    prepare: (ops, s, a) => ops.prepareSoftmax({ dims: [s.m, s.k], data: a }),
    reference: (s, a) =>
      rowsOf(s, a, (row, out) => {
        const max = Math.max(...row);
        let sum = 0;
        for (const v of row) sum += Math.exp(v - max);
        row.forEach((v, j) => (out[j] = Math.exp(v - max) / sum));
      }),
  },
  {
    id: 'op-layernorm',
    label: 'layer norm over the rows of A with scale and bias; 8 ops per element',
    flops: (s) => 8 * s.m * s.k,
    tolerance: () => 1e-5,
    prepare: (ops, s, a) => ops.prepareLayerNorm({ dims: [s.m, s.k], data: a }, -1, columnVector(s.k, 1), columnVector(s.k, 0), 1e-5),
    reference: (s, a) => {
      const scale = columnVector(s.k, 1);
      const bias = columnVector(s.k, 0);
      return rowsOf(s, a, (row, out) => {
        const mean = row.reduce((x, y) => x + y, 0) / row.length;
        const variance = row.reduce((x, y) => x + (y - mean) ** 2, 0) / row.length;
        row.forEach((v, j) => (out[j] = ((v - mean) / Math.sqrt(variance + 1e-5)) * scale[j]! + bias[j]!));
      });
    },
  },
  {
    id: 'op-gelu',
    label: 'GELU (erf form) on A; 20 ops per element',
    flops: (s) => 20 * s.m * s.k,
    tolerance: () => 1e-5,
    prepare: (ops, s, a) => ops.prepareUnary('Gelu', { dims: [s.m, s.k], data: a }),
    reference: (_s, a) => Float64Array.from(a, gelu),
  },
  {
    id: 'op-add-broadcast',
    label: 'A + a row vector broadcast over M; 1 op per element',
    flops: (s) => s.m * s.k,
    tolerance: () => 1e-6,
    prepare: (ops, s, a) => ops.prepareBinary('Add', { dims: [s.m, s.k], data: a }, { dims: [s.k], data: columnVector(s.k, 2) }),
    reference: (s, a) => {
      const v = columnVector(s.k, 2);
      return Float64Array.from(a, (x, i) => x + v[i % s.k]!);
    },
  },
  {
    id: 'op-transpose',
    label: 'Aᵀ (K×M); 1 op per element',
    flops: (s) => s.m * s.k,
    tolerance: () => 1e-7,
    prepare: (ops, s, a) => ops.prepareTranspose({ dims: [s.m, s.k], data: a }, [1, 0]),
    reference: (s, a) => {
      const out = new Float64Array(s.m * s.k);
      for (let i = 0; i < s.m; i++) for (let j = 0; j < s.k; j++) out[j * s.m + i] = a[i * s.k + j]!;
      return out;
    },
  },
  {
    id: 'op-matmul-bias-gelu',
    label: 'GELU(A·B + bias), bias and activation fused into the matmul',
    flops: (s) => 2 * s.m * s.n * s.k,
    tolerance: (s) => 2e-6 * Math.sqrt(s.k),
    prepare: (ops, s, a, b) => ops.prepareMatmul({ dims: [s.m, s.k], data: a }, { dims: [s.k, s.n], data: b }, columnVector(s.n, 3), 'gelu'),
    reference: (s, a, b) => {
      const bias = columnVector(s.n, 3);
      const out = new Float64Array(s.m * s.n);
      for (let i = 0; i < s.m; i++)
        for (let j = 0; j < s.n; j++) {
          let acc = 0;
          for (let q = 0; q < s.k; q++) acc += a[i * s.k + q]! * b[q * s.n + j]!;
          out[i * s.n + j] = gelu(acc + bias[j]!);
        }
      return out;
    },
  },
];

export const OP_SUBJECT_IDS = OPS.map((o) => o.id);

export function opSubject(ops: InferenceOps, id: string): BenchSubject | undefined {
  const spec = OPS.find((o) => o.id === id);
  if (!spec) return undefined;
  return {
    id: spec.id,
    label: spec.label,
    group: 'op',
    flops: spec.flops,
    check: (out, a, b, s) => compare(out, spec.reference(s, a, b), spec.tolerance(s)),
    async prepare(m, k, n, a, b) {
      const { op } = await spec.prepare(ops, { m, k, n }, a, b);
      return { run: () => op.run(), read: () => op.read(), dispose: () => op.dispose() };
    },
  };
}

export const OP_SUBJECT_LABELS: Record<string, string> = Object.fromEntries(OPS.map((o) => [o.id, o.label]));
