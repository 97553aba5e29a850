/**
 * Turns a checked model graph, with the batch size fixed, into what the GPU
 * runs: a list of kernel launches over numbered buffers. It is pure (no GPU)
 * so the coordinator runs it at upload to refuse what contributors could not
 * run, and the worker runs it once per model and batch size.
 *
 * - Reshape, Flatten, Unsqueeze and Identity cost nothing: their output is
 *   the same buffer under another shape.
 * - MatMul/Gemm followed by the Add of a per-column bias and then Relu or
 *   Gelu become one launch of the matmul kernel (bias and activation fused
 *   into its store), when the intermediate values have no other reader.
 * - Gemm's transposes and alpha/beta on constant operands are applied to the
 *   weights once, here, on the CPU.
 * - Softmax and ReduceMean along other axes than the last are framed by
 *   transposes; the kernels work on rows.
 * - Temporary buffers are assigned to slots by liveness: a slot is reused as
 *   soon as the value in it has been read for the last time.
 *
 * Planning is linear in the graph (every lookup is through a map built once;
 * the free slots are kept sorted), so the coordinator can plan a model of
 * MAX_MODEL_NODES at upload without stalling.
 */
import type { AttributeValue, GraphNode, ModelGraph, TensorValue } from './model-graph';
import { ModelError, nodeLabel, quoteName } from './model-graph';
import { inferShapes, meanAxes, type Shapes } from './shape-inference';
import { shapeSize, stridesOf } from './tensor-shape';

export const UNARY_OPS = { Identity: 0, Relu: 1, Sigmoid: 2, Tanh: 3, Sqrt: 4, Erf: 5, Gelu: 6, GeluTanh: 7 } as const;
export const BINARY_OPS = { Add: 0, Sub: 1, Mul: 2, Div: 3, Pow: 4 } as const;
export const MATMUL_ACTIVATIONS = { none: 0, relu: 1, gelu: 2 } as const;
export type UnaryOp = keyof typeof UNARY_OPS;
export type BinaryOp = keyof typeof BINARY_OPS;
export type MatmulActivation = keyof typeof MATMUL_ACTIVATIONS;

/** Highest tensor rank the broadcasting and transpose kernels index. */
export const MAX_RANK = 6;

export type BufferRole = 'input' | 'weight' | 'temp' | 'output';

export interface PlanBuffer {
  id: number;
  role: BufferRole;
  elements: number;
  /** Weights: the values to upload once. */
  data?: Float32Array;
  /** Inputs and outputs: the graph value's name. */
  name?: string;
  /** Temporaries: the slot (a GPU buffer of `slotElements[slot]` floats) this one occupies. */
  slot?: number;
}

export type PlanStep =
  | { kind: 'unary'; op: UnaryOp; x: number; out: number; count: number; node: string }
  | { kind: 'binary'; op: BinaryOp; a: number; b: number; out: number; outDims: number[]; aStrides: number[]; bStrides: number[]; node: string }
  | { kind: 'matmul'; a: number; b: number; bias: number | null; out: number; m: number; k: number; n: number; batches: number; bBatched: boolean; act: MatmulActivation; node: string }
  | { kind: 'softmax'; x: number; out: number; rows: number; inner: number; node: string }
  | { kind: 'layernorm'; x: number; scale: number; bias: number | null; out: number; rows: number; inner: number; epsilon: number; node: string }
  | { kind: 'transpose'; x: number; out: number; outDims: number[]; inStrides: number[]; node: string }
  | { kind: 'mean'; x: number; out: number; rows: number; inner: number; node: string };

export interface InferencePlan {
  batch: number;
  buffers: PlanBuffer[];
  steps: PlanStep[];
  /** Size in floats of each temporary slot. */
  slotElements: number[];
  inputs: { name: string; buffer: number; dims: number[] }[];
  outputs: { name: string; buffer: number; dims: number[] }[];
  /** Floating-point operations of one run (multiply-adds count 2). */
  flops: number;
  /** Floats written by all steps together: what the data movement costs, apart from the arithmetic. */
  valuesWritten: number;
  /** Largest single buffer, in bytes: must fit the device's storage binding limit. */
  largestBufferBytes: number;
  /** All buffers together (weights, inputs, outputs and slots), in bytes. */
  totalBytes: number;
  /** Every value's shape at this batch size. */
  shapes: Shapes;
}

const int = (v: AttributeValue | undefined, dflt: number) => (typeof v === 'number' ? v : dflt);
const float = (v: AttributeValue | undefined, dflt: number) => (typeof v === 'number' ? v : dflt);
const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Strides of `dims` in the index space of `out` (right-aligned), 0 along broadcast axes. */
export function broadcastStrides(out: readonly number[], dims: readonly number[]): number[] {
  const padded = [...new Array<number>(out.length - dims.length).fill(1), ...dims];
  const s = stridesOf(padded);
  return padded.map((d, i) => (d === 1 ? 0 : s[i]!));
}

function transposeData(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/**
 * Weights derived from a model's own (Gemm's transposed or scaled B, scaled
 * C), kept per source array: every plan of a model (one per batch size) gets
 * the same array, so the runner uploads it once and the intake derives it once.
 */
const derivedWeights = new WeakMap<Float32Array, Map<string, Float32Array>>();
function derived(source: Float32Array, key: string, make: () => Float32Array): Float32Array {
  let byKey = derivedWeights.get(source);
  if (!byKey) {
    byKey = new Map();
    derivedWeights.set(source, byKey);
  }
  let d = byKey.get(key);
  if (!d) {
    d = make();
    byKey.set(key, d);
  }
  return d;
}

class PlanError extends Error {}

interface Value {
  buffer: number;
  dims: number[];
}

/** Builds the plan for `batch` samples; throws ModelError naming the node it cannot run. */
export function planInference(graph: ModelGraph, batch: number): InferencePlan {
  const shapes = inferShapes(graph, batch);
  const buffers: PlanBuffer[] = [];
  const steps: PlanStep[] = [];
  const values = new Map<string, Value>();
  const constants = new Map<string, TensorValue>(graph.initializers);
  const newBuffer = (role: BufferRole, elements: number, extra: Partial<PlanBuffer> = {}) => {
    buffers.push({ id: buffers.length, role, elements, ...extra });
    return buffers.length - 1;
  };

  // How many times each value is read, and by which node first: fusion needs the intermediate to have exactly one reader.
  const readers = new Map<string, number>();
  const firstReader = new Map<string, GraphNode>();
  for (const n of graph.nodes) {
    for (const i of n.inputs) {
      if (!i) continue;
      readers.set(i, (readers.get(i) ?? 0) + 1);
      if (!firstReader.has(i)) firstReader.set(i, n);
    }
  }
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  for (const o of graphOutputs) readers.set(o, (readers.get(o) ?? 0) + 1);

  for (const v of graph.inputs) values.set(v.name, { buffer: newBuffer('input', shapeSize(shapes.get(v.name)!), { name: v.name }), dims: shapes.get(v.name)! });

  const floatConstant = (name: string, where: string): TensorValue | undefined => {
    const t = constants.get(name);
    if (t && !(t.data instanceof Float32Array)) throw new PlanError(`${where}: "${name}" is an int64 tensor where a float32 one is needed`);
    return t;
  };
  const weight = (data: Float32Array, dims: number[]): Value => ({ buffer: newBuffer('weight', data.length, { data }), dims });
  const value = (name: string, where: string): Value => {
    const v = values.get(name);
    if (v) return v;
    const t = floatConstant(name, where);
    if (t) {
      const w = weight(t.data as Float32Array, t.dims);
      values.set(name, w);
      return w;
    }
    throw new PlanError(`${where}: input "${name}" is not produced by any earlier node`);
  };
  const temp = (dims: number[]): Value => ({ buffer: newBuffer('temp', shapeSize(dims)), dims });
  const transposeStep = (x: Value, perm: number[], node: string): Value => {
    if (x.dims.length > MAX_RANK) throw new PlanError(`node ${node}: rank ${x.dims.length} is over ${MAX_RANK}`);
    const out = temp(perm.map((p) => x.dims[p]!));
    const strides = stridesOf(x.dims);
    steps.push({ kind: 'transpose', x: x.buffer, out: out.buffer, outDims: out.dims, inStrides: perm.map((p) => strides[p]!), node });
    return out;
  };
  // Nodes folded into an earlier launch, by identity: node names are the requester's and need not be unique.
  const fused = new Set<GraphNode>();

  /** act(A·B + bias) with B either shared by every batch of A (weights) or batched like A. */
  const matmul = (n: GraphNode, a: Value, b: Value, bias: Value | null, where: string): { out: Value; name: string } => {
    let aDims = a.dims.length === 1 ? [1, a.dims[0]!] : a.dims;
    const bDims = b.dims.length === 1 ? [b.dims[0]!, 1] : b.dims;
    const k = aDims[aDims.length - 1]!;
    const nCols = bDims[bDims.length - 1]!;
    const bBatch = shapeSize(bDims.slice(0, -2));
    let m: number;
    let batches: number;
    if (bBatch === 1) {
      // Weights shared by every row: fold A's batch axes into M, one large product.
      m = shapeSize(aDims.slice(0, -1));
      batches = 1;
    } else {
      const aBatchDims = aDims.slice(0, -2);
      const bBatchDims = bDims.slice(0, -2);
      if (aBatchDims.join(',') !== bBatchDims.join(',')) {
        throw new PlanError(`${where}: batched MatMul needs equal batch dimensions, got [${a.dims.join(', ')}] · [${b.dims.join(', ')}]`);
      }
      m = aDims[aDims.length - 2]!;
      batches = bBatch;
      aDims = a.dims;
    }
    // Fuse the Add of a per-column bias and a following Relu/Gelu when nothing else reads the steps in between.
    let name = n.outputs[0]!;
    let biasValue = bias;
    let act: MatmulActivation = 'none';
    const single = (v: string) => readers.get(v) === 1 && !graphOutputs.has(v);
    if (!biasValue && single(name)) {
      const add = firstReader.get(name);
      if (add?.opType === 'Add') {
        const other = add.inputs[0] === name ? add.inputs[1]! : add.inputs[0]!;
        const c = constants.get(other);
        if (c && c.data instanceof Float32Array && c.data.length === nCols && shapeSize(c.dims) === nCols && c.dims.every((d, i) => d === 1 || i === c.dims.length - 1)) {
          biasValue = value(other, where);
          fused.add(add);
          name = add.outputs[0]!;
        }
      }
    }
    if (single(name)) {
      const next = firstReader.get(name);
      const gelu = next?.opType === 'Gelu' && next.attributes.approximate !== 'tanh';
      if (next?.opType === 'Relu' || gelu) {
        act = gelu ? 'gelu' : 'relu';
        fused.add(next);
        name = next.outputs[0]!;
      }
    }
    const out = temp(shapes.get(name)!);
    steps.push({ kind: 'matmul', a: a.buffer, b: b.buffer, bias: biasValue?.buffer ?? null, out: out.buffer, m, k, n: nCols, batches, bBatched: bBatch !== 1, act, node: n.name });
    return { out, name };
  };

  for (const n of graph.nodes) {
    if (fused.has(n)) continue;
    const where = nodeLabel(n);
    const outName = n.outputs[0]!;
    const outDims = shapes.get(outName)!;
    const a = n.attributes;
    try {
      switch (n.opType) {
        case 'Constant': {
          const v = a.value;
          if (v && typeof v === 'object' && !Array.isArray(v)) constants.set(outName, { ...v, name: outName });
          else if (typeof a.value_float === 'number') constants.set(outName, { name: outName, dims: [], data: Float32Array.of(a.value_float) });
          else if (Array.isArray(a.value_floats)) constants.set(outName, { name: outName, dims: outDims, data: Float32Array.from(a.value_floats) });
          else if (Array.isArray(a.value_ints)) constants.set(outName, { name: outName, dims: outDims, data: BigInt64Array.from(a.value_ints.map(BigInt)) });
          break;
        }
        case 'Identity':
        case 'Reshape':
        case 'Flatten':
        case 'Unsqueeze': {
          const src = constants.get(n.inputs[0]!);
          if (src) constants.set(outName, { ...src, name: outName, dims: outDims });
          else values.set(outName, { buffer: value(n.inputs[0]!, where).buffer, dims: outDims });
          break;
        }
        case 'Relu':
        case 'Sigmoid':
        case 'Tanh':
        case 'Sqrt':
        case 'Erf':
        case 'Gelu': {
          const x = value(n.inputs[0]!, where);
          const op: UnaryOp = n.opType === 'Gelu' ? (a.approximate === 'tanh' ? 'GeluTanh' : 'Gelu') : n.opType;
          const out = temp(outDims);
          steps.push({ kind: 'unary', op, x: x.buffer, out: out.buffer, count: shapeSize(outDims), node: n.name });
          values.set(outName, out);
          break;
        }
        case 'Add':
        case 'Sub':
        case 'Mul':
        case 'Div':
        case 'Pow': {
          if (outDims.length > MAX_RANK) throw new PlanError(`${where}: rank ${outDims.length} is over ${MAX_RANK}`);
          const x = value(n.inputs[0]!, where);
          const y = value(n.inputs[1]!, where);
          const out = temp(outDims);
          steps.push({ kind: 'binary', op: n.opType, a: x.buffer, b: y.buffer, out: out.buffer, outDims, aStrides: broadcastStrides(outDims, x.dims), bStrides: broadcastStrides(outDims, y.dims), node: n.name });
          values.set(outName, out);
          break;
        }
        case 'MatMul': {
          const r = matmul(n, value(n.inputs[0]!, where), value(n.inputs[1]!, where), null, where);
          values.set(r.name, r.out);
          break;
        }
        case 'Gemm': {
          const transA = int(a.transA, 0) !== 0;
          const transB = int(a.transB, 0) !== 0;
          const alpha = float(a.alpha, 1);
          const beta = float(a.beta, 1);
          let x = value(n.inputs[0]!, where);
          if (transA) x = transposeStep(x, [1, 0], n.name);
          const bConst = floatConstant(n.inputs[1]!, where);
          let b: Value;
          if (bConst) {
            const [r, c] = bConst.dims as [number, number];
            const src = bConst.data as Float32Array;
            const data =
              !transB && alpha === 1
                ? src
                : derived(src, `B:${transB}:${alpha}`, () => {
                    const t = transB ? transposeData(src, r, c) : src;
                    return alpha === 1 ? t : t.map((v) => v * alpha);
                  });
            b = weight(data, transB ? [c, r] : [r, c]);
          } else {
            if (alpha !== 1) throw new PlanError(`${where}: alpha ≠ 1 is supported when B is a constant (weights)`);
            b = value(n.inputs[1]!, where);
            if (transB) b = transposeStep(b, [1, 0], n.name);
          }
          const cName = n.inputs[2];
          let bias: Value | null = null;
          let addAfter: Value | null = null;
          if (cName) {
            const cConst = floatConstant(cName, where);
            const nCols = b.dims[1]!;
            const scaledC = (src: Float32Array) => (beta === 1 ? src : derived(src, `C:${beta}`, () => src.map((v) => v * beta)));
            if (cConst && cConst.data.length === nCols && cConst.dims.every((d, i) => d === 1 || i === cConst.dims.length - 1)) {
              bias = weight(scaledC(cConst.data as Float32Array), [nCols]);
            } else if (cConst) {
              addAfter = weight(scaledC(cConst.data as Float32Array), cConst.dims);
            } else if (beta === 1) {
              addAfter = value(cName, where);
            } else throw new PlanError(`${where}: beta ≠ 1 is supported when C is a constant`);
          }
          const r = addAfter ? { out: matmulPlain(x, b), name: outName } : matmul(n, x, b, bias, where);
          if (addAfter) {
            const out = temp(outDims);
            steps.push({ kind: 'binary', op: 'Add', a: r.out.buffer, b: addAfter.buffer, out: out.buffer, outDims, aStrides: broadcastStrides(outDims, r.out.dims), bStrides: broadcastStrides(outDims, addAfter.dims), node: n.name });
            values.set(outName, out);
          } else values.set(r.name, r.out);
          break;
        }
        case 'Softmax': {
          const x = value(n.inputs[0]!, where);
          const rank = x.dims.length;
          const axis = norm(int(a.axis, graph.opset >= 13 ? -1 : 1), rank);
          if (graph.opset < 13 && axis !== rank - 1) throw new PlanError(`${where}: before opset 13 Softmax flattens from its axis; export with opset 13 or newer, or softmax over the last axis`);
          if (axis === rank - 1) {
            const out = temp(outDims);
            const inner = x.dims[rank - 1] ?? 1;
            steps.push({ kind: 'softmax', x: x.buffer, out: out.buffer, rows: shapeSize(x.dims) / inner, inner, node: n.name });
            values.set(outName, out);
          } else {
            const perm = x.dims.map((_, i) => i).filter((i) => i !== axis).concat(axis);
            const t = transposeStep(x, perm, n.name);
            const s = temp(t.dims);
            steps.push({ kind: 'softmax', x: t.buffer, out: s.buffer, rows: shapeSize(t.dims) / x.dims[axis]!, inner: x.dims[axis]!, node: n.name });
            values.set(outName, transposeStep(s, perm.map((_, i) => perm.indexOf(i)), n.name));
          }
          break;
        }
        case 'LayerNormalization': {
          const x = value(n.inputs[0]!, where);
          const axis = norm(int(a.axis, -1), x.dims.length);
          const inner = shapeSize(x.dims.slice(axis));
          const scale = value(n.inputs[1]!, where);
          const bias = n.inputs[2] ? value(n.inputs[2], where) : null;
          if (n.outputs.slice(1).some((o) => o && readers.has(o))) throw new PlanError(`${where}: only the first output (Y) is supported; Mean and InvStdDev are not computed`);
          const out = temp(outDims);
          steps.push({ kind: 'layernorm', x: x.buffer, scale: scale.buffer, bias: bias?.buffer ?? null, out: out.buffer, rows: shapeSize(x.dims) / inner, inner, epsilon: float(a.epsilon, 1e-5), node: n.name });
          values.set(outName, out);
          break;
        }
        case 'ReduceMean': {
          const x = value(n.inputs[0]!, where);
          const rank = x.dims.length;
          const fromInput = n.inputs[1] ? constants.get(n.inputs[1]) : undefined;
          const axes = meanAxes(n, rank, fromInput ? Array.from(fromInput.data, Number) : undefined, where);
          const kept = x.dims.map((_, i) => i).filter((i) => !axes.includes(i));
          const trailing = axes.every((ax, i) => ax === rank - axes.length + i);
          const src = trailing ? x : transposeStep(x, [...kept, ...axes], n.name);
          const inner = shapeSize(axes.map((ax) => x.dims[ax]!));
          const out = temp(outDims);
          steps.push({ kind: 'mean', x: src.buffer, out: out.buffer, rows: shapeSize(x.dims) / inner, inner, node: n.name });
          values.set(outName, out);
          break;
        }
        case 'Transpose': {
          const x = value(n.inputs[0]!, where);
          const perm = Array.isArray(a.perm) ? a.perm : x.dims.map((_, i) => x.dims.length - 1 - i);
          values.set(outName, transposeStep(x, perm, n.name));
          break;
        }
        default:
          throw new PlanError(`${where}: unsupported operator`);
      }
    } catch (err) {
      if (err instanceof PlanError) throw new ModelError('UNSUPPORTED_MODEL', [err.message]);
      throw err;
    }
  }

  function matmulPlain(x: Value, b: Value): Value {
    const out = temp([x.dims[0]!, b.dims[1]!]);
    steps.push({ kind: 'matmul', a: x.buffer, b: b.buffer, bias: null, out: out.buffer, m: x.dims[0]!, k: x.dims[1]!, n: b.dims[1]!, batches: 1, bBatched: false, act: 'none', node: 'gemm' });
    return out;
  }

  // Graph outputs get buffers of their own that nothing overwrites; one that is an input, a
  // weight or another output's buffer (an Identity, say) is copied into its own.
  const outputs: InferencePlan['outputs'] = [];
  const claimed = new Set<number>();
  for (const o of graph.outputs) {
    const t = constants.get(o.name);
    if (t && !(t.data instanceof Float32Array)) throw new ModelError('UNSUPPORTED_MODEL', [`output ${quoteName(o.name)} is an int64 constant; outputs are float32 values computed from the inputs`]);
    const v = values.get(o.name) ?? (t ? value(o.name, `output ${quoteName(o.name)}`) : undefined);
    if (!v) throw new ModelError('UNSUPPORTED_MODEL', [`output ${quoteName(o.name)} is not produced by any node`]);
    let id = v.buffer;
    if (buffers[id]!.role !== 'temp' || claimed.has(id)) {
      const copy = newBuffer('temp', shapeSize(v.dims));
      steps.push({ kind: 'unary', op: 'Identity', x: id, out: copy, count: shapeSize(v.dims), node: `output ${o.name}` });
      id = copy;
    }
    claimed.add(id);
    buffers[id]!.role = 'output';
    buffers[id]!.name = o.name;
    outputs.push({ name: o.name, buffer: id, dims: v.dims });
  }

  const slotElements = assignSlots(buffers, steps);
  let flops = 0;
  let valuesWritten = 0;
  for (const s of steps) {
    flops += stepFlops(s);
    valuesWritten += buffers[s.out]!.elements;
  }
  let largest = 0;
  let total = 0;
  for (const b of buffers) {
    if (b.role === 'temp') continue;
    largest = Math.max(largest, b.elements);
    total += b.elements;
  }
  for (const e of slotElements) {
    largest = Math.max(largest, e);
    total += e;
  }
  // Shapes are bounded (shape-inference.ts), so these are finite; a model that makes them otherwise is refused, never planned.
  if (![flops, valuesWritten, total].every(Number.isFinite)) throw new ModelError('MODEL_TOO_LARGE', [`the model's cost cannot be counted (${flops} FLOPs, ${total} values)`]);
  return {
    batch,
    buffers,
    steps,
    slotElements,
    inputs: graph.inputs.map((v) => ({ name: v.name, buffer: values.get(v.name)!.buffer, dims: shapes.get(v.name)! })),
    outputs,
    flops,
    valuesWritten,
    largestBufferBytes: largest * 4,
    totalBytes: total * 4,
    shapes,
  };
}

const reads = (s: PlanStep): number[] => {
  switch (s.kind) {
    case 'binary':
      return [s.a, s.b];
    case 'matmul':
      return [s.a, s.b, ...(s.bias === null ? [] : [s.bias])];
    case 'layernorm':
      return [s.x, s.scale, ...(s.bias === null ? [] : [s.bias])];
    default:
      return [s.x];
  }
};

/**
 * Places temporaries in reusable slots: a slot frees up after the last step
 * that reads its value. Free slots are kept sorted by size (ties by index,
 * so the plan does not depend on insertion order), which makes the best fit
 * a binary search.
 */
function assignSlots(buffers: PlanBuffer[], steps: PlanStep[]): number[] {
  const lastRead = new Map<number, number>();
  steps.forEach((s, i) => reads(s).forEach((b) => lastRead.set(b, i)));
  const slotElements: number[] = [];
  const free: number[] = [];
  const before = (p: number, q: number) => slotElements[p]! < slotElements[q]! || (slotElements[p] === slotElements[q] && p < q);
  /** Index in `free` (sorted) of the first slot for which `after` holds; `after` must hold for every slot past it too. */
  const search = (after: (f: number) => boolean) => {
    let lo = 0;
    let hi = free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (after(free[mid]!)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  steps.forEach((s, i) => {
    const out = buffers[s.out]!;
    if (out.role === 'temp' && out.slot === undefined) {
      // Best fit among free slots; grow the largest if none is large enough, else open a new slot.
      if (free.length === 0) {
        out.slot = slotElements.length;
        slotElements.push(out.elements);
      } else {
        const at = search((f) => slotElements[f]! >= out.elements);
        const [slot] = free.splice(at < free.length ? at : free.length - 1, 1);
        out.slot = slot!;
        slotElements[slot!] = Math.max(slotElements[slot!]!, out.elements);
      }
    }
    for (const b of new Set(reads(s))) {
      const buf = buffers[b]!;
      if (buf.role === 'temp' && buf.slot !== undefined && lastRead.get(b) === i && b !== s.out) {
        const slot = buf.slot;
        free.splice(search((f) => before(slot, f)), 0, slot);
      }
    }
  });
  return slotElements;
}

function stepFlops(s: PlanStep): number {
  switch (s.kind) {
    case 'matmul':
      return 2 * s.batches * s.m * s.k * s.n;
    case 'binary':
      return shapeSize(s.outDims);
    case 'unary':
      return s.op === 'Identity' ? 0 : s.count * (s.op === 'Erf' || s.op.startsWith('Gelu') ? 8 : 1);
    case 'softmax':
      return 5 * s.rows * s.inner;
    case 'layernorm':
      return 8 * s.rows * s.inner;
    case 'mean':
      return s.rows * s.inner;
    case 'transpose':
      return 0;
  }
}
