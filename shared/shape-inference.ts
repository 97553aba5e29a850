/**
 * Concrete shapes of every value in a checked model once the batch size is
 * fixed, following the ONNX operator definitions of the supported set. A
 * shape that cannot work (a MatMul whose inner sizes differ, a Reshape that
 * does not fit) or an attribute that breaks the operator's definition (a
 * perm that is not a permutation, an axis out of range) is reported with its
 * node, before any work is queued. Every shape it returns is made of whole
 * numbers ≥ 1 with a bounded rank and element count, so the plan's size and
 * cost arithmetic downstream cannot meet NaN or overflow.
 */
import { ModelError, nodeLabel, quoteName, type AttributeValue, type GraphNode, type ModelGraph, type TensorValue } from './model-graph';
import { MAX_TENSOR_RANK } from './model-limits';
import { broadcastShapes } from './tensor-shape';

export type Shapes = Map<string, number[]>;

/**
 * No value may hold more: far beyond any GPU buffer (the plan refuses those
 * with the real limit), low enough that sizes and FLOP counts stay exact.
 */
export const MAX_VALUE_ELEMENTS = 2 ** 40;

/** A shape or attribute that breaks the operator's definition (INVALID_MODEL) or that the network does not run (UNSUPPORTED_MODEL). */
class ShapeError extends Error {
  constructor(
    readonly code: 'INVALID_MODEL' | 'UNSUPPORTED_MODEL',
    message: string,
  ) {
    super(message);
  }
}
const invalid = (message: string) => new ShapeError('INVALID_MODEL', message);

function broadcast(a: number[], b: number[], where: string): number[] {
  try {
    return broadcastShapes(a, b);
  } catch (err) {
    throw invalid(`${where}: ${(err as Error).message}`);
  }
}

const int = (v: AttributeValue | undefined, dflt: number): number => (typeof v === 'number' ? v : dflt);
const ints = (v: AttributeValue | undefined): number[] | undefined => (Array.isArray(v) ? v : undefined);
/** A shape or list for a message; a long one (an attacker's axes list) is cut. */
const fmt = (dims: readonly number[]) => `[${dims.length > 12 ? `${dims.slice(0, 12).join(', ')}, …` : dims.join(', ')}]`;

/** `axis` of a tensor of rank `rank`, checked against [-rank, rank - 1] (or [-rank, rank] where `inclusive`) and made non-negative. */
export function normalizeAxis(axis: number, rank: number, where: string, what = 'axis', inclusive = false): number {
  const hi = inclusive ? rank : rank - 1;
  if (!Number.isInteger(axis) || axis < -rank || axis > hi) throw invalid(`${where}: ${what} ${axis} is out of range for rank ${rank} (allowed ${-rank}..${hi})`);
  return axis < 0 ? axis + rank : axis;
}

/** Distinct axes of a tensor of rank `rank`, each in range. */
export function normalizeAxes(axes: readonly number[], rank: number, where: string, what = 'axes'): number[] {
  const out = axes.map((a) => normalizeAxis(a, rank, where, what));
  if (new Set(out).size !== out.length) throw invalid(`${where}: ${what} ${fmt(axes)} name an axis twice`);
  return out;
}

/** `perm` checked to be a permutation of 0..rank-1. */
export function checkPerm(perm: readonly number[], rank: number, where: string): number[] {
  const seen = new Array<boolean>(rank).fill(false);
  const ok = perm.length === rank && perm.every((p) => Number.isInteger(p) && p >= 0 && p < rank && !seen[p] && (seen[p] = true));
  if (!ok) throw invalid(`${where}: perm ${fmt(perm)} is not a permutation of the input's ${rank} axes`);
  return [...perm];
}

/** An int64 tensor known before running (an initializer or a Constant's value): Reshape shapes, axes. At most `maxLength` values. */
function constantInts(name: string, consts: Map<string, TensorValue>, where: string, maxLength = MAX_TENSOR_RANK): number[] | undefined {
  const t = consts.get(name);
  if (!t || !(t.data instanceof BigInt64Array)) return undefined;
  if (t.data.length > maxLength) throw invalid(`${where}: ${quoteName(name)} holds ${t.data.length} values; a shape or axes list has at most ${maxLength}`);
  return Array.from(t.data, Number);
}

/**
 * The axes a ReduceMean reduces, sorted: from its axes input (opset 18) or
 * attribute; none given, or an empty list without noop_with_empty_axes,
 * means every axis. Shared by shape inference, the plan and the reference.
 */
export function meanAxes(n: GraphNode, rank: number, fromInput: readonly number[] | undefined, where = nodeLabel(n)): number[] {
  const given = fromInput ?? ints(n.attributes.axes) ?? [];
  if (given.length === 0) return int(n.attributes.noop_with_empty_axes, 0) ? [] : Array.from({ length: rank }, (_, i) => i);
  return normalizeAxes(given, rank, where).sort((p, q) => p - q);
}

function reshape(x: number[], target: number[], allowzero: boolean, where: string): number[] {
  const bad = () => invalid(`${where}: cannot reshape ${fmt(x)} to ${fmt(target)}`);
  if (target.filter((d) => d === -1).length > 1) throw invalid(`${where}: the target shape ${fmt(target)} has more than one -1`);
  if (target.some((d) => !Number.isSafeInteger(d) || d < -1)) throw bad();
  if (allowzero && target.includes(0) && target.includes(-1)) throw invalid(`${where}: with allowzero=1 the target shape ${fmt(target)} may not hold both 0 and -1`);
  const out = target.map((d, i) => {
    if (d !== 0 || allowzero) return d;
    if (i >= x.length) throw invalid(`${where}: the target shape ${fmt(target)} copies dimension ${i} (a 0), which ${fmt(x)} does not have`);
    return x[i]!;
  });
  const total = x.reduce((a, b) => a * b, 1);
  const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const filled = out.map((d) => (d === -1 ? (known === 0 ? NaN : total / known) : d));
  if (filled.some((d) => !Number.isSafeInteger(d)) || filled.reduce((a, b) => a * b, 1) !== total) throw bad();
  return filled;
}

function nodeShapes(n: GraphNode, s: (i: number) => number[], consts: Map<string, TensorValue>, opset: number): number[] {
  const where = nodeLabel(n);
  const a = n.attributes;
  switch (n.opType) {
    case 'Identity':
    case 'Sqrt':
    case 'Erf':
    case 'Relu':
    case 'Sigmoid':
    case 'Tanh':
    case 'Gelu':
      return s(0);
    case 'Softmax': {
      const x = s(0);
      normalizeAxis(int(a.axis, opset >= 13 ? -1 : 1), x.length, where);
      return x;
    }
    case 'LayerNormalization': {
      const x = s(0);
      const axis = normalizeAxis(int(a.axis, -1), x.length, where);
      if (a.epsilon !== undefined && !(typeof a.epsilon === 'number' && Number.isFinite(a.epsilon) && a.epsilon >= 0)) throw invalid(`${where}: epsilon must be a finite number ≥ 0`);
      const inner = x.slice(axis).reduce((p, q) => p * q, 1);
      for (const [i, what] of [[1, 'scale'], [2, 'bias']] as const) {
        if (!n.inputs[i]) continue;
        const size = s(i).reduce((p, q) => p * q, 1);
        if (size !== inner) throw new ShapeError('UNSUPPORTED_MODEL', `${where}: ${what} ${fmt(s(i))} must hold one value per normalized element (${inner})`);
      }
      return x;
    }
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
    case 'Pow':
      return broadcast(s(0), s(1), where);
    case 'MatMul': {
      const x = s(0);
      const y = s(1);
      if (x.length === 0 || y.length === 0) throw invalid(`${where}: MatMul takes tensors of rank ≥ 1, got ${fmt(x)} · ${fmt(y)}`);
      const a2 = x.length === 1 ? [1, x[0]!] : x;
      const b2 = y.length === 1 ? [y[0]!, 1] : y;
      const [m, k] = a2.slice(-2) as [number, number];
      const [kb, nn] = b2.slice(-2) as [number, number];
      if (k !== kb) throw invalid(`${where}: inner sizes differ, ${fmt(x)} · ${fmt(y)}`);
      const batch = broadcast(a2.slice(0, -2), b2.slice(0, -2), where);
      return [...batch, ...(x.length === 1 ? [] : [m]), ...(y.length === 1 ? [] : [nn])];
    }
    case 'Gemm': {
      const x = s(0);
      const y = s(1);
      if (x.length !== 2 || y.length !== 2) throw invalid(`${where}: Gemm takes 2-D inputs, got ${fmt(x)} and ${fmt(y)}`);
      const [m, k] = int(a.transA, 0) ? [x[1]!, x[0]!] : [x[0]!, x[1]!];
      const [kb, nn] = int(a.transB, 0) ? [y[1]!, y[0]!] : [y[0]!, y[1]!];
      if (k !== kb) throw invalid(`${where}: inner sizes differ, ${m}×${k} · ${kb}×${nn}`);
      if (n.inputs[2]) {
        const c = s(2);
        if (c.length > 2 || broadcast([m, nn], c, where).join() !== `${m},${nn}`) throw invalid(`${where}: C ${fmt(c)} does not broadcast to ${m}×${nn}`);
      }
      for (const key of ['alpha', 'beta'] as const) {
        if (a[key] !== undefined && (typeof a[key] !== 'number' || !Number.isFinite(a[key]))) throw invalid(`${where}: ${key} must be a finite number`);
      }
      return [m, nn];
    }
    case 'Transpose': {
      const x = s(0);
      const perm = ints(a.perm);
      return perm ? checkPerm(perm, x.length, where).map((p) => x[p]!) : [...x].reverse();
    }
    case 'Flatten': {
      const x = s(0);
      const axis = normalizeAxis(int(a.axis, 1), x.length, where, 'axis', true);
      return [x.slice(0, axis).reduce((p, q) => p * q, 1), x.slice(axis).reduce((p, q) => p * q, 1)];
    }
    case 'Reshape': {
      const target = constantInts(n.inputs[1] ?? '', consts, where);
      if (!target) throw new ShapeError('UNSUPPORTED_MODEL', `${where}: the target shape must be a constant int64 tensor (an initializer or a Constant node)`);
      return reshape(s(0), target, int(a.allowzero, 0) !== 0, where);
    }
    case 'Unsqueeze': {
      const x = s(0);
      if (opset < 13 && n.inputs[1]) throw invalid(`${where}: before opset 13 Unsqueeze takes its axes as an attribute, not an input`);
      const axes = (opset >= 13 ? constantInts(n.inputs[1] ?? '', consts, where) : undefined) ?? ints(a.axes);
      if (!axes) throw new ShapeError('UNSUPPORTED_MODEL', `${where}: the axes must be a constant int64 tensor`);
      const rank = x.length + axes.length;
      if (rank > MAX_TENSOR_RANK) throw invalid(`${where}: the output would have rank ${rank}, over ${MAX_TENSOR_RANK}`);
      const at = new Set(normalizeAxes(axes, rank, where));
      const out: number[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) out.push(at.has(i) ? 1 : x[j++]!);
      return out;
    }
    case 'ReduceMean': {
      const x = s(0);
      if (n.inputs[1] && opset < 18) throw invalid(`${where}: before opset 18 ReduceMean takes its axes as an attribute, not an input`);
      const fromInput = n.inputs[1] ? constantInts(n.inputs[1], consts, where) : undefined;
      if (n.inputs[1] && !fromInput) throw new ShapeError('UNSUPPORTED_MODEL', `${where}: the axes must be a constant int64 tensor`);
      const at = new Set(meanAxes(n, x.length, fromInput, where));
      const keep = int(a.keepdims, 1);
      return x.flatMap((d, i) => (at.has(i) ? (keep ? [1] : []) : [d]));
    }
    case 'Constant': {
      const v = a.value;
      if (v && typeof v === 'object' && !Array.isArray(v)) return v.dims;
      if (typeof a.value_float === 'number') return [];
      const list = ints(a.value_ints) ?? ints(a.value_floats);
      if (list) return [list.length];
      throw new ShapeError('UNSUPPORTED_MODEL', `${where}: only tensor, value_float, value_floats and value_ints constants are supported`);
    }
    default:
      throw new ShapeError('UNSUPPORTED_MODEL', `${where}: unsupported operator`);
  }
}

/** A computed shape the rest of the pipeline can do arithmetic on, or an error naming the node. */
function checkShape(dims: number[], n: GraphNode): number[] {
  const where = nodeLabel(n);
  if (dims.length > MAX_TENSOR_RANK) throw invalid(`${where}: its output has rank ${dims.length}, over ${MAX_TENSOR_RANK}`);
  let size = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw invalid(`${where}: its output would have shape ${fmt(dims)}`);
    size *= d;
  }
  // Constants may be empty (a Reshape to a scalar takes an empty shape); computed values may not.
  if (size === 0 && n.opType !== 'Constant') throw new ShapeError('UNSUPPORTED_MODEL', `${where}: its output ${fmt(dims)} is empty; empty tensors are not supported`);
  if (size > MAX_VALUE_ELEMENTS) throw invalid(`${where}: its output ${fmt(dims)} would hold ${size.toExponential(2)} values, more than any GPU buffer holds`);
  return dims;
}

/** Shapes of every value with the batch fixed; throws ModelError naming the first node whose shapes cannot work. */
export function inferShapes(graph: ModelGraph, batch: number): Shapes {
  if (!Number.isSafeInteger(batch) || batch < 1) throw new RangeError(`batch ${batch} is not a whole number ≥ 1`);
  const shapes: Shapes = new Map();
  const consts = new Map(graph.initializers);
  for (const [name, t] of graph.initializers) shapes.set(name, t.dims);
  for (const v of graph.inputs) {
    const dims = v.dims.map((d, i) => (i === 0 ? batch : (d as number)));
    if (dims.reduce((a, b) => a * b, 1) > MAX_VALUE_ELEMENTS) throw new ModelError('INVALID_MODEL', [`input ${quoteName(v.name)} ${fmt(dims)} would hold more than ${MAX_VALUE_ELEMENTS} values`]);
    shapes.set(v.name, dims);
  }
  for (const n of graph.nodes) {
    try {
      const s = (i: number) => {
        const name = n.inputs[i];
        const shape = name ? shapes.get(name) : undefined;
        if (!shape) throw invalid(`${nodeLabel(n)}: input ${i} ${quoteName(name ?? '')} is not produced by any earlier node`);
        return shape;
      };
      shapes.set(n.outputs[0]!, checkShape(nodeShapes(n, s, consts, graph.opset), n));
      if (n.opType === 'Constant') {
        const { value, value_ints } = n.attributes;
        if (value && typeof value === 'object' && !Array.isArray(value)) consts.set(n.outputs[0]!, value);
        else if (Array.isArray(value_ints) && value_ints.length <= MAX_TENSOR_RANK) {
          consts.set(n.outputs[0]!, { name: n.outputs[0]!, dims: [value_ints.length], data: BigInt64Array.from(value_ints, (v) => BigInt(v)) });
        }
      }
    } catch (err) {
      if (err instanceof ShapeError) throw new ModelError(err.code, [err.message]);
      throw err;
    }
  }
  return shapes;
}
