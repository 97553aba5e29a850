/**
 * Concrete shapes of every value in a checked model once the batch size is
 * fixed, following the ONNX operator definitions of the supported set. A
 * shape that cannot work (a MatMul whose inner sizes differ, a Reshape that
 * does not fit) is reported with its node, before any work is queued.
 */
import { ModelError, type AttributeValue, type GraphNode, type ModelGraph, type TensorValue } from './model-graph';
import { broadcastShapes } from './tensor-shape';

export type Shapes = Map<string, number[]>;

function broadcast(a: number[], b: number[], where: string): number[] {
  try {
    return broadcastShapes(a, b);
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
}

const int = (v: AttributeValue | undefined, dflt: number): number => (typeof v === 'number' ? v : dflt);
const ints = (v: AttributeValue | undefined): number[] | undefined => (Array.isArray(v) ? v : undefined);
const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** An int64 tensor known before running (an initializer or a Constant's value): Reshape shapes, axes. */
function constantInts(name: string, consts: Map<string, TensorValue>): number[] | undefined {
  const t = consts.get(name);
  return t && t.data instanceof BigInt64Array ? Array.from(t.data, Number) : undefined;
}

function nodeShapes(n: GraphNode, s: (i: number) => number[], consts: Map<string, TensorValue>, opset: number): number[] {
  const where = `node ${n.name} (${n.opType})`;
  switch (n.opType) {
    case 'Identity':
    case 'Sqrt':
    case 'Erf':
    case 'Relu':
    case 'Sigmoid':
    case 'Tanh':
    case 'Gelu':
    case 'Softmax':
    case 'LayerNormalization':
      return s(0);
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
    case 'Pow':
      return broadcast(s(0), s(1), where);
    case 'MatMul': {
      const a = s(0);
      const b = s(1);
      const a2 = a.length === 1 ? [1, a[0]!] : a;
      const b2 = b.length === 1 ? [b[0]!, 1] : b;
      const [m, k] = a2.slice(-2) as [number, number];
      const [kb, nn] = b2.slice(-2) as [number, number];
      if (k !== kb) throw new Error(`${where}: inner sizes differ, [${a.join(', ')}] · [${b.join(', ')}]`);
      const batch = broadcast(a2.slice(0, -2), b2.slice(0, -2), where);
      return [...batch, ...(a.length === 1 ? [] : [m]), ...(b.length === 1 ? [] : [nn])];
    }
    case 'Gemm': {
      const a = s(0);
      const b = s(1);
      if (a.length !== 2 || b.length !== 2) throw new Error(`${where}: Gemm takes 2-D inputs, got [${a.join(', ')}] and [${b.join(', ')}]`);
      const [m, k] = int(n.attributes.transA, 0) ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
      const [kb, nn] = int(n.attributes.transB, 0) ? [b[1]!, b[0]!] : [b[0]!, b[1]!];
      if (k !== kb) throw new Error(`${where}: inner sizes differ, ${m}×${k} · ${kb}×${nn}`);
      if (n.inputs[2]) broadcast([m, nn], s(2), where);
      return [m, nn];
    }
    case 'Transpose': {
      const x = s(0);
      const perm = ints(n.attributes.perm) ?? x.map((_, i) => x.length - 1 - i);
      return perm.map((p) => x[p]!);
    }
    case 'Flatten': {
      const x = s(0);
      const axis = norm(int(n.attributes.axis, 1), x.length);
      return [x.slice(0, axis).reduce((a, b) => a * b, 1), x.slice(axis).reduce((a, b) => a * b, 1)];
    }
    case 'Reshape': {
      const x = s(0);
      const target = constantInts(n.inputs[1] ?? '', consts);
      if (!target) throw new Error(`${where}: the target shape must be a constant (an initializer or a Constant node)`);
      const total = x.reduce((a, b) => a * b, 1);
      const out = target.map((d, i) => (d === 0 && !int(n.attributes.allowzero, 0) ? x[i]! : d));
      const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
      const filled = out.map((d) => (d === -1 ? total / known : d));
      if (filled.reduce((a, b) => a * b, 1) !== total || filled.some((d) => !Number.isInteger(d))) throw new Error(`${where}: cannot reshape [${x.join(', ')}] to [${target.join(', ')}]`);
      return filled;
    }
    case 'Unsqueeze': {
      const x = s(0);
      const axes = (opset >= 13 ? constantInts(n.inputs[1] ?? '', consts) : ints(n.attributes.axes)) ?? ints(n.attributes.axes);
      if (!axes) throw new Error(`${where}: the axes must be a constant`);
      const rank = x.length + axes.length;
      const at = new Set(axes.map((a) => norm(a, rank)));
      const out: number[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) out.push(at.has(i) ? 1 : x[j++]!);
      return out;
    }
    case 'ReduceMean': {
      const x = s(0);
      const axes = (opset >= 18 ? constantInts(n.inputs[1] ?? '', consts) : undefined) ?? ints(n.attributes.axes) ?? x.map((_, i) => i);
      const at = new Set(axes.map((a) => norm(a, x.length)));
      const keep = int(n.attributes.keepdims, 1);
      return x.flatMap((d, i) => (at.has(i) ? (keep ? [1] : []) : [d]));
    }
    case 'Constant': {
      const v = n.attributes.value;
      if (v && typeof v === 'object' && !Array.isArray(v)) return v.dims;
      if (typeof n.attributes.value_float === 'number') return [];
      const list = ints(n.attributes.value_ints) ?? ints(n.attributes.value_floats);
      if (list) return [list.length];
      throw new Error(`${where}: only tensor, value_float, value_floats and value_ints constants are supported`);
    }
    default:
      throw new Error(`${where}: unsupported operator`);
  }
}

/** Shapes of every value with the batch fixed; throws ModelError listing the first node whose shapes cannot work. */
export function inferShapes(graph: ModelGraph, batch: number): Shapes {
  const shapes: Shapes = new Map();
  const consts = new Map(graph.initializers);
  for (const [name, t] of graph.initializers) shapes.set(name, t.dims);
  for (const v of graph.inputs) shapes.set(v.name, v.dims.map((d, i) => (i === 0 ? batch : (d as number))));
  for (const n of graph.nodes) {
    try {
      const s = (i: number) => {
        const name = n.inputs[i];
        const shape = name ? shapes.get(name) : undefined;
        if (!shape) throw new Error(`node ${n.name} (${n.opType}): input ${i} "${name ?? ''}" is not produced by any earlier node`);
        return shape;
      };
      shapes.set(n.outputs[0]!, nodeShapes(n, s, consts, graph.opset));
      if (n.opType === 'Constant' && n.attributes.value && typeof n.attributes.value === 'object' && !Array.isArray(n.attributes.value)) consts.set(n.outputs[0]!, n.attributes.value);
    } catch (err) {
      throw new ModelError('UNSUPPORTED_MODEL', [err instanceof Error ? err.message : String(err)]);
    }
  }
  return shapes;
}
