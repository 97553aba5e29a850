/**
 * Runs a checked model on the CPU in float32 (accumulating dot products in
 * float64), op by op as the ONNX definitions say. It is the network's
 * reference for inference: simulated contributors compute with it, and it
 * is checked against onnxruntime-node in the tests.
 */
import type { AttributeValue, GraphNode, ModelGraph, TensorValue } from './onnx-model';
import { erf, gelu } from '../../shared/inference-math';
import { shapeSize, stridesOf } from '../../shared/tensor-shape';
import { inferShapes } from '../../shared/shape-inference';

export interface Tensor {
  dims: number[];
  data: Float32Array;
}

const int = (v: AttributeValue | undefined, dflt: number) => (typeof v === 'number' ? v : dflt);
const float = (v: AttributeValue | undefined, dflt: number) => (typeof v === 'number' ? v : dflt);
const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Index into a broadcast operand for each flat index of the output. */
function broadcastIndexer(out: number[], dims: number[]): (flat: number) => number {
  const rank = out.length;
  const padded = [...new Array<number>(rank - dims.length).fill(1), ...dims];
  const inStrides = stridesOf(padded);
  const outStrides = stridesOf(out);
  return (flat) => {
    let idx = 0;
    for (let d = 0; d < rank; d++) {
      const coord = Math.floor(flat / outStrides[d]!) % out[d]!;
      if (padded[d] !== 1) idx += coord * inStrides[d]!;
    }
    return idx;
  };
}

function elementwise(a: Tensor, b: Tensor, out: number[], f: (x: number, y: number) => number): Tensor {
  const ia = broadcastIndexer(out, a.dims);
  const ib = broadcastIndexer(out, b.dims);
  const data = new Float32Array(shapeSize(out));
  for (let i = 0; i < data.length; i++) data[i] = f(a.data[ia(i)]!, b.data[ib(i)]!);
  return { dims: out, data };
}

const map = (x: Tensor, f: (v: number) => number): Tensor => ({ dims: x.dims, data: x.data.map(f) });

/** Rows of length `inner` along the last axes from `axis`: what Softmax (opset ≥ 13 uses one axis) and LayerNormalization reduce over. */
function lastAxisRows(dims: number[], axis: number): { rows: number; inner: number } {
  const inner = shapeSize(dims.slice(axis));
  return { rows: shapeSize(dims) / inner, inner };
}

function matmul(a: Tensor, b: Tensor, out: number[]): Tensor {
  const a2 = a.dims.length === 1 ? [1, a.dims[0]!] : a.dims;
  const b2 = b.dims.length === 1 ? [b.dims[0]!, 1] : b.dims;
  const [m, k] = a2.slice(-2) as [number, number];
  const n = b2[b2.length - 1]!;
  const batchOut = out.length >= 2 ? shapeSize(out) / (m * n) : 1;
  const batchDims = [...new Array<number>(Math.max(a2.length, b2.length) - 2)].map((_, i, arr) => {
    const ad = a2[a2.length - 2 - arr.length + i] ?? 1;
    const bd = b2[b2.length - 2 - arr.length + i] ?? 1;
    return Math.max(ad, bd);
  });
  const ia = broadcastIndexer(batchDims, a2.slice(0, -2));
  const ib = broadcastIndexer(batchDims, b2.slice(0, -2));
  const data = new Float32Array(batchOut * m * n);
  const row = new Float64Array(n);
  for (let p = 0; p < batchOut; p++) {
    const ao = (batchDims.length ? ia(p) : 0) * m * k;
    const bo = (batchDims.length ? ib(p) : 0) * k * n;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let q = 0; q < k; q++) {
        const x = a.data[ao + i * k + q]!;
        for (let j = 0; j < n; j++) row[j]! += x * b.data[bo + q * n + j]!;
      }
      for (let j = 0; j < n; j++) data[p * m * n + i * n + j] = row[j]!;
    }
  }
  return { dims: out, data };
}

function transpose(x: Tensor, perm: number[]): Tensor {
  const dims = perm.map((p) => x.dims[p]!);
  const inStrides = stridesOf(x.dims);
  const outStrides = stridesOf(dims);
  const data = new Float32Array(x.data.length);
  for (let flat = 0; flat < data.length; flat++) {
    let src = 0;
    for (let d = 0; d < dims.length; d++) src += (Math.floor(flat / outStrides[d]!) % dims[d]!) * inStrides[perm[d]!]!;
    data[flat] = x.data[src]!;
  }
  return { dims, data };
}

function reduceMean(x: Tensor, axes: number[], out: number[]): Tensor {
  const rank = x.dims.length;
  const at = new Set(axes.map((a) => norm(a, rank)));
  const keptDims = x.dims.map((d, i) => (at.has(i) ? 1 : d));
  const sums = new Float64Array(shapeSize(keptDims));
  const idx = broadcastIndexer(x.dims, keptDims);
  for (let i = 0; i < x.data.length; i++) sums[idx(i)]! += x.data[i]!;
  const count = x.data.length / sums.length;
  return { dims: out, data: Float32Array.from(sums, (s) => s / count) };
}

function runNode(n: GraphNode, inputs: (Tensor | undefined)[], outDims: number[]): Tensor {
  const x = inputs[0]!;
  const a = n.attributes;
  switch (n.opType) {
    case 'Identity':
    case 'Reshape':
    case 'Flatten':
    case 'Unsqueeze':
      return { dims: outDims, data: x.data };
    case 'Relu':
      return map(x, (v) => (v > 0 ? v : 0));
    case 'Sigmoid':
      return map(x, (v) => 1 / (1 + Math.exp(-v)));
    case 'Tanh':
      return map(x, Math.tanh);
    case 'Sqrt':
      return map(x, Math.sqrt);
    case 'Erf':
      return map(x, erf);
    case 'Gelu':
      return a.approximate === 'tanh'
        ? map(x, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))))
        : map(x, gelu);
    case 'Add':
      return elementwise(x, inputs[1]!, outDims, (p, q) => p + q);
    case 'Sub':
      return elementwise(x, inputs[1]!, outDims, (p, q) => p - q);
    case 'Mul':
      return elementwise(x, inputs[1]!, outDims, (p, q) => p * q);
    case 'Div':
      return elementwise(x, inputs[1]!, outDims, (p, q) => p / q);
    case 'Pow':
      return elementwise(x, inputs[1]!, outDims, (p, q) => p ** q);
    case 'MatMul':
      return matmul(x, inputs[1]!, outDims);
    case 'Gemm': {
      const A = int(a.transA, 0) ? transpose(x, [1, 0]) : x;
      const B = int(a.transB, 0) ? transpose(inputs[1]!, [1, 0]) : inputs[1]!;
      const ab = matmul(A, B, outDims);
      const alpha = float(a.alpha, 1);
      const scaled = alpha === 1 ? ab : map(ab, (v) => alpha * v);
      const c = inputs[2];
      if (!c) return scaled;
      const beta = float(a.beta, 1);
      return elementwise(scaled, c, outDims, (p, q) => p + beta * q);
    }
    case 'Softmax': {
      const axis = norm(int(a.axis, -1), x.dims.length);
      // Opset ≥ 13: along one axis. Move it last, normalize rows, move it back.
      const perm = x.dims.map((_, i) => i).filter((i) => i !== axis).concat(axis);
      const inv = perm.map((_, i) => perm.indexOf(i));
      const t = transpose(x, perm);
      const inner = x.dims[axis]!;
      const data = new Float32Array(t.data.length);
      for (let r = 0; r < t.data.length / inner; r++) {
        let max = -Infinity;
        for (let j = 0; j < inner; j++) max = Math.max(max, t.data[r * inner + j]!);
        let sum = 0;
        for (let j = 0; j < inner; j++) sum += Math.exp(t.data[r * inner + j]! - max);
        for (let j = 0; j < inner; j++) data[r * inner + j] = Math.exp(t.data[r * inner + j]! - max) / sum;
      }
      return transpose({ dims: t.dims, data }, inv);
    }
    case 'LayerNormalization': {
      const axis = norm(int(a.axis, -1), x.dims.length);
      const eps = float(a.epsilon, 1e-5);
      const { rows, inner } = lastAxisRows(x.dims, axis);
      const scale = inputs[1]!.data;
      const bias = inputs[2]?.data;
      const data = new Float32Array(x.data.length);
      for (let r = 0; r < rows; r++) {
        let mean = 0;
        for (let j = 0; j < inner; j++) mean += x.data[r * inner + j]!;
        mean /= inner;
        let variance = 0;
        for (let j = 0; j < inner; j++) variance += (x.data[r * inner + j]! - mean) ** 2;
        const inv = 1 / Math.sqrt(variance / inner + eps);
        for (let j = 0; j < inner; j++) data[r * inner + j] = (x.data[r * inner + j]! - mean) * inv * scale[j % scale.length]! + (bias ? bias[j % bias.length]! : 0);
      }
      return { dims: outDims, data };
    }
    case 'ReduceMean': {
      const fromInput = inputs[1] ? Array.from(inputs[1].data) : undefined;
      const axes = fromInput ?? (Array.isArray(a.axes) ? a.axes : x.dims.map((_, i) => i));
      return reduceMean(x, axes, outDims);
    }
    case 'Transpose':
      return transpose(x, Array.isArray(a.perm) ? a.perm : x.dims.map((_, i) => x.dims.length - 1 - i));
    default:
      throw new Error(`node ${n.name}: ${n.opType} has no reference implementation`);
  }
}

const asTensor = (t: TensorValue): Tensor => ({ dims: t.dims, data: t.data instanceof Float32Array ? t.data : Float32Array.from(t.data, Number) });

/** Runs the graph on one batch: `inputs` by graph input name, each with the batch as its first dimension. */
export function runReference(graph: ModelGraph, inputs: Record<string, Tensor>): Record<string, Tensor> {
  const batch = inputs[graph.inputs[0]!.name]!.dims[0]!;
  const shapes = inferShapes(graph, batch);
  const values = new Map<string, Tensor>();
  for (const [name, t] of graph.initializers) values.set(name, asTensor(t));
  for (const v of graph.inputs) values.set(v.name, inputs[v.name]!);
  for (const n of graph.nodes) {
    if (n.opType === 'Constant') {
      const v = n.attributes.value;
      const t: Tensor =
        v && typeof v === 'object' && !Array.isArray(v)
          ? asTensor(v)
          : typeof n.attributes.value_float === 'number'
            ? { dims: [], data: Float32Array.of(n.attributes.value_float) }
            : { dims: shapes.get(n.outputs[0]!)!, data: Float32Array.from((n.attributes.value_floats ?? n.attributes.value_ints) as number[]) };
      values.set(n.outputs[0]!, t);
      continue;
    }
    values.set(n.outputs[0]!, runNode(n, n.inputs.map((name) => (name ? values.get(name) : undefined)), shapes.get(n.outputs[0]!)!));
  }
  return Object.fromEntries(graph.outputs.map((o) => [o.name, values.get(o.name)!]));
}
