/**
 * Runs a checked model on the CPU in float32 (accumulating dot products in
 * float64), op by op as the ONNX definitions say. It is the network's
 * reference for inference: simulated contributors compute with it, and it
 * is checked against onnxruntime-node in the tests.
 */
import type { AttributeValue, GraphNode, ModelGraph, TensorValue } from './onnx-model';
import { erf, gelu } from '../../shared/inference-math';
import { broadcastStrides } from '../../shared/inference-plan';
import { shapeSize, stridesOf } from '../../shared/tensor-shape';
import { inferShapes, meanAxes } from '../../shared/shape-inference';

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

type BinaryOp = 'Add' | 'Sub' | 'Mul' | 'Div' | 'Pow';

/**
 * For each flat index of `out` (row-major), the flat index into a tensor of
 * strides `strides` (0 along broadcast axes), by an odometer: no division
 * per element, and the loops that use it stay free of calls.
 */
function gatherIndex(out: readonly number[], strides: readonly number[]): Uint32Array {
  const rank = out.length;
  const index = new Uint32Array(shapeSize(out));
  const idx = new Array<number>(rank).fill(0);
  let at = 0;
  for (let i = 0; i < index.length; i++) {
    index[i] = at;
    for (let d = rank - 1; d >= 0; d--) {
      at += strides[d]!;
      if (++idx[d]! < out[d]!) break;
      at -= strides[d]! * out[d]!;
      idx[d] = 0;
    }
  }
  return index;
}

/** Values of `t` at each flat index of `out`, broadcast; `t` itself when it already has that shape. */
function broadcastTo(t: Tensor, out: readonly number[]): Float32Array {
  const size = shapeSize(out);
  if (t.data.length === size) return t.data;
  const data = new Float32Array(size);
  if (t.data.length === 1) return data.fill(t.data[0]!);
  const index = gatherIndex(out, broadcastStrides(out, t.dims));
  const src = t.data;
  for (let i = 0; i < size; i++) data[i] = src[index[i]!]!;
  return data;
}

function elementwise(op: BinaryOp, a: Tensor, b: Tensor, out: number[]): Tensor {
  const x = broadcastTo(a, out);
  const y = broadcastTo(b, out);
  const data = new Float32Array(x.length);
  switch (op) {
    case 'Add':
      for (let i = 0; i < data.length; i++) data[i] = x[i]! + y[i]!;
      break;
    case 'Sub':
      for (let i = 0; i < data.length; i++) data[i] = x[i]! - y[i]!;
      break;
    case 'Mul':
      for (let i = 0; i < data.length; i++) data[i] = x[i]! * y[i]!;
      break;
    case 'Div':
      for (let i = 0; i < data.length; i++) data[i] = x[i]! / y[i]!;
      break;
    case 'Pow':
      for (let i = 0; i < data.length; i++) data[i] = x[i]! ** y[i]!;
      break;
  }
  return { dims: out, data };
}

function map(x: Tensor, f: (v: number) => number): Tensor {
  const data = new Float32Array(x.data.length);
  for (let i = 0; i < data.length; i++) data[i] = f(x.data[i]!);
  return { dims: x.dims, data };
}

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
  const index = gatherIndex(dims, perm.map((p) => inStrides[p]!));
  const data = new Float32Array(x.data.length);
  const src = x.data;
  for (let i = 0; i < data.length; i++) data[i] = src[index[i]!]!;
  return { dims, data };
}

function reduceMean(x: Tensor, axes: number[], out: number[]): Tensor {
  const at = new Set(axes);
  const keptDims = x.dims.map((d, i) => (at.has(i) ? 1 : d));
  const sums = new Float64Array(shapeSize(keptDims));
  const src = x.data;
  const index = gatherIndex(x.dims, broadcastStrides(x.dims, keptDims));
  for (let i = 0; i < src.length; i++) sums[index[i]!]! += src[i]!;
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
    case 'Sub':
    case 'Mul':
    case 'Div':
    case 'Pow':
      return elementwise(n.opType, x, inputs[1]!, outDims);
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
      return elementwise('Add', scaled, beta === 1 ? c : map(c, (v) => beta * v), outDims);
    }
    case 'Softmax': {
      const axis = norm(int(a.axis, -1), x.dims.length);
      // Opset ≥ 13: along one axis. Move it last (unless it is), normalize rows, move it back.
      const last = axis === x.dims.length - 1;
      const perm = x.dims.map((_, i) => i).filter((i) => i !== axis).concat(axis);
      const inv = perm.map((_, i) => perm.indexOf(i));
      const t = last ? x : transpose(x, perm);
      const inner = x.dims[axis]!;
      const data = new Float32Array(t.data.length);
      for (let r = 0; r < t.data.length / inner; r++) {
        let max = -Infinity;
        for (let j = 0; j < inner; j++) max = Math.max(max, t.data[r * inner + j]!);
        let sum = 0;
        for (let j = 0; j < inner; j++) sum += Math.exp(t.data[r * inner + j]! - max);
        for (let j = 0; j < inner; j++) data[r * inner + j] = Math.exp(t.data[r * inner + j]! - max) / sum;
      }
      return last ? { dims: t.dims, data } : transpose({ dims: t.dims, data }, inv);
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
      return reduceMean(x, meanAxes(n, x.dims.length, inputs[1] ? Array.from(inputs[1].data) : undefined), outDims);
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
