/**
 * Grammar-based ONNX models for fuzzing the upload path: a seeded generator
 * writes a valid small graph from the supported operators (tracking shapes
 * so every node fits), then mutates it the ways exporters, hand-edited files
 * and attackers do — attributes, dimensions, data types, wiring, external
 * data, the operator set, the bytes themselves. The same seed always gives
 * the same model, so a failure replays from its seed alone.
 */
import onnxProto from 'onnx-proto';
import type { HostTensor } from './inference';
import { attribute, floatTensor, int64Tensor, node, value } from './onnx-builder';
import { prng } from './prng';

const { onnx } = onnxProto;
type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type ValueProto = onnxProto.onnx.IValueInfoProto;
const { DataType } = onnx.TensorProto;

/** The fuzzer's PRNG (seeded, replayable). */
export const rng = prng;

class Dice {
  constructor(readonly next: () => number) {}
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }
}

export interface FuzzCase {
  index: number;
  /** What the generator built and what it broke, for the failure message. */
  story: string[];
  bytes: Uint8Array;
  /** The .npy files sent with the model: form field → tensor. */
  files: Record<string, HostTensor>;
  /** The batch size sent (the first dimension of every file). */
  batch: number;
}

/** A value the generator can feed to the next node: its name and full shape (the batch first). */
interface Val {
  name: string;
  dims: number[];
}

interface Graph {
  opset: number;
  inputs: ValueProto[];
  outputs: ValueProto[];
  initializers: TensorProto[];
  nodes: NodeProto[];
}

const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Builds a valid graph of 1–10 nodes on one or two inputs, every shape tracked. */
function validGraph(d: Dice, story: string[]): { graph: Graph; inputs: Val[] } {
  const opset = d.pick([13, 17, 18, 20]);
  const rank = d.between(2, 4);
  const x: Val = { name: 'x', dims: [1, ...Array.from({ length: rank - 1 }, () => d.between(1, 6))] };
  const inputs = [x];
  if (d.chance(0.15)) inputs.push({ name: 'z', dims: [...x.dims] });
  const vals: Val[] = [...inputs];
  const g: Graph = { opset, inputs: [], outputs: [], initializers: [], nodes: [] };
  let counter = 0;
  const fresh = (p: string) => `${p}${counter++}`;
  const weight = (dims: number[]) => {
    const t = floatTensor(fresh('w'), dims, Float32Array.from({ length: size(dims) }, () => d.next() * 2 - 1));
    g.initializers.push(t);
    return t.name!;
  };
  const emit = (op: string, ins: string[], dims: number[], attrs: Parameters<typeof node>[4] = {}) => {
    const out = fresh('v');
    g.nodes.push(node(op, ins, [out], fresh(op.toLowerCase()), attrs));
    vals.push({ name: out, dims });
    story.push(`${op}(${ins.join(', ')}) → [${dims.join(', ')}]`);
  };
  const steps = d.between(1, 10);
  for (let s = 0; s < steps; s++) {
    const v = d.chance(0.6) ? vals[vals.length - 1]! : d.pick(vals);
    const r = v.dims.length;
    const last = v.dims[r - 1]!;
    switch (d.int(13)) {
      case 0:
        emit(d.pick(['Relu', 'Sigmoid', 'Tanh', 'Erf', 'Identity', 'Sqrt']), [v.name], v.dims);
        break;
      case 1:
        emit('Gelu', [v.name], v.dims, d.chance(0.5) ? { approximate: d.pick(['none', 'tanh']) } : {});
        break;
      case 2: {
        const op = d.pick(['Add', 'Sub', 'Mul', 'Div', 'Pow']);
        const same = vals.filter((o) => o.dims.join() === v.dims.join());
        const other = d.chance(0.4) && same.length > 1 ? d.pick(same).name : weight(d.chance(0.3) ? [] : v.dims.slice(d.between(1, r - 1)));
        emit(op, d.chance(0.8) ? [v.name, other] : [other, v.name], v.dims);
        break;
      }
      case 3:
      case 4: {
        const n = d.between(1, 8);
        emit('MatMul', [v.name, weight([last, n])], [...v.dims.slice(0, -1), n]);
        break;
      }
      case 5: {
        if (r !== 2) break;
        const n = d.between(1, 8);
        const transB = d.chance(0.5) ? 1 : 0;
        const ins = [v.name, weight(transB ? [n, last] : [last, n])];
        if (d.chance(0.7)) ins.push(weight(d.chance(0.8) ? [n] : [1, n]));
        const attrs: Record<string, number> = { transB };
        if (d.chance(0.3)) attrs.alpha = d.pick([0.5, 2.5, -1.5]);
        if (d.chance(0.3)) attrs.beta = d.pick([0.5, 1.5, 0.25]);
        emit('Gemm', ins, [v.dims[0]!, n], attrs);
        break;
      }
      case 6:
        emit('Softmax', [v.name], v.dims, { axis: d.chance(0.5) ? -1 : d.between(1, r - 1) });
        break;
      case 7:
        emit('LayerNormalization', [v.name, weight([last]), ...(d.chance(0.7) ? [weight([last])] : [])], v.dims, { axis: -1, epsilon: 1e-5 });
        break;
      case 8: {
        if (r < 2) break;
        const axes = d.shuffle(Array.from({ length: r - 1 }, (_, i) => i + 1)).slice(0, d.between(1, r - 1)).sort();
        // keepdims=0 down to rank 1 would leave only the batch axis, which later nodes would then mix.
        const keep = d.chance(0.6) || r - axes.length < 2 ? 1 : 0;
        const dims = v.dims.flatMap((n, i) => (axes.includes(i) ? (keep ? [1] : []) : [n]));
        if (opset >= 18) {
          const t = int64Tensor(fresh('axes'), axes);
          g.initializers.push(t);
          emit('ReduceMean', [v.name, t.name!], dims, { keepdims: keep });
        } else emit('ReduceMean', [v.name], dims, { axes, keepdims: keep });
        break;
      }
      case 9: {
        if (r < 3) break;
        const perm = [0, ...d.shuffle(Array.from({ length: r - 1 }, (_, i) => i + 1))];
        emit('Transpose', [v.name], perm.map((p) => v.dims[p]!), { perm });
        break;
      }
      case 10: {
        const rest = size(v.dims.slice(1));
        const target = d.chance(0.5) ? [0, -1] : [0, ...(rest % 2 === 0 ? [2, rest / 2] : [rest, 1])];
        const t = int64Tensor(fresh('shape'), target);
        g.initializers.push(t);
        emit('Reshape', [v.name, t.name!], target[1] === -1 ? [v.dims[0]!, rest] : [v.dims[0]!, ...target.slice(1)]);
        break;
      }
      case 11:
        emit('Flatten', [v.name], [v.dims[0]!, size(v.dims.slice(1))], { axis: 1 });
        break;
      case 12: {
        if (r >= 5) break;
        const t = int64Tensor(fresh('axes'), [r]);
        g.initializers.push(t);
        emit('Unsqueeze', [v.name, t.name!], [...v.dims, 1]);
        break;
      }
    }
  }
  // One or two outputs: the last value, and sometimes an earlier one.
  const outs = [vals[vals.length - 1]!];
  if (d.chance(0.2) && vals.length > 2) {
    const other = d.pick(vals.slice(inputs.length, -1));
    if (other) outs.push(other);
  }
  g.inputs = inputs.map((v) => value(v.name, ['batch', ...v.dims.slice(1)]));
  g.outputs = outs.map((v) => value(v.name, ['batch', ...v.dims.slice(1)]));
  return { graph: g, inputs };
}

/** A model heavy on purpose: near or over a limit, with a small file. */
function heavyGraph(d: Dice, story: string[]): { graph: Graph; inputs: Val[] } {
  const kind = d.int(3);
  if (kind === 0) {
    // Outer product: n² outputs per sample from n weights (over MAX_OUTPUT_BYTES_PER_SAMPLE from n ≈ 2048).
    const n = d.pick([1500, 2100, 4500]);
    story.push(`heavy: outer product, ${n}² outputs per sample`);
    return {
      graph: {
        opset: 17,
        inputs: [value('x', ['batch', n, 1])],
        outputs: [value('y', ['batch', n, n])],
        initializers: [floatTensor('c', [1, n], new Float32Array(n).fill(0.5))],
        nodes: [node('Mul', ['x', 'c'], ['y'], 'outer')],
      },
      inputs: [{ name: 'x', dims: [1, n, 1] }],
    };
  }
  if (kind === 1) {
    // Many MatMuls on one weight: FLOPs per sample near MAX_FLOPS_PER_SAMPLE.
    const [count, width] = d.pick([[200, 256], [500, 512], [60, 1024]] as const);
    story.push(`heavy: ${count} MatMuls on ${width}×${width}`);
    const nodes = Array.from({ length: count }, (_, i) => node('MatMul', [i === 0 ? 'x' : `h${i - 1}`, 'w'], [i === count - 1 ? 'y' : `h${i}`], `mm${i}`));
    return {
      graph: { opset: 17, inputs: [value('x', ['batch', width])], outputs: [value('y', ['batch', width])], initializers: [floatTensor('w', [width, width], new Float32Array(width * width).fill(1 / width))], nodes },
      inputs: [{ name: 'x', dims: [1, width] }],
    };
  }
  // Many nodes: near MAX_MODEL_NODES.
  const count = d.pick([3000, 9999, 10001]);
  story.push(`heavy: ${count} Relu nodes`);
  const nodes = Array.from({ length: count }, (_, i) => node('Relu', [i === 0 ? 'x' : `h${i - 1}`], [i === count - 1 ? 'y' : `h${i}`], `r${i}`));
  return { graph: { opset: 17, inputs: [value('x', ['batch', 4])], outputs: [value('y', ['batch', 4])], initializers: [], nodes }, inputs: [{ name: 'x', dims: [1, 4] }] };
}

const WEIRD_INTS = [-(2 ** 40), -9, -3, -2, -1, 0, 1, 2, 3, 5, 9, 2 ** 31, 2 ** 53];
const WEIRD_FLOATS = [NaN, Infinity, -Infinity, 0, -0.5, 1e38, 3.5];
const WEIRD_NAMES = ['', '__proto__', 'constructor', 'toString', 'x', 'y', 'ghost', 'n'.repeat(3000), 'ünï/cødé:名'];
const DTYPES = [DataType.DOUBLE, DataType.INT64, DataType.FLOAT16, DataType.INT32, DataType.STRING, DataType.BOOL, DataType.UNDEFINED, DataType.UINT8, 999];
const ATTRS = ['perm', 'axis', 'axes', 'alpha', 'beta', 'transA', 'transB', 'epsilon', 'keepdims', 'allowzero', 'approximate', 'noop_with_empty_axes', 'value', 'value_ints', 'value_floats'];
const OPS = ['MatMul', 'Gemm', 'Add', 'Relu', 'Softmax', 'LayerNormalization', 'ReduceMean', 'Transpose', 'Reshape', 'Flatten', 'Unsqueeze', 'Constant', 'Identity', 'Conv', 'Loop', 'If', 'Shape', ''];

function weirdDims(d: Dice): number[] {
  switch (d.int(8)) {
    case 0:
      return [0];
    case 1:
      return [-1, 3];
    case 2:
      return [1e6, 1e6];
    case 3:
      return [2 ** 40];
    case 4:
      return Array.from({ length: 9 }, () => 2);
    case 5:
      return [];
    case 6:
      return [d.between(1, 5), d.between(1, 5), 0];
    default:
      return [2 ** 62, 4];
  }
}

/** One mutation of the graph (before encoding); returns what it did. */
function mutate(g: Graph, d: Dice): string {
  const T = onnx.AttributeProto.AttributeType;
  const someNode = () => (g.nodes.length ? d.pick(g.nodes) : undefined);
  switch (d.int(12)) {
    case 0: {
      // An attribute set to a strange value (or a new one): perms, axes, scales.
      const n = someNode();
      if (!n) return 'none';
      const key = d.pick(ATTRS);
      const v = d.chance(0.4)
        ? Array.from({ length: d.int(10) }, () => d.pick(WEIRD_INTS))
        : d.chance(0.5)
          ? d.pick(WEIRD_INTS)
          : d.chance(0.5)
            ? d.pick(WEIRD_FLOATS)
            : d.pick(['tanh', 'none', '', 'x'.repeat(100)]);
      const a = typeof v === 'number' && !Number.isInteger(v) ? { name: key, type: T.FLOAT, f: v } : attribute(key, v);
      n.attribute = [...(n.attribute ?? []).filter((x) => x.name !== key || d.chance(0.2)), a];
      return `attribute ${key} = ${JSON.stringify(v)?.slice(0, 40)} on ${n.opType}`;
    }
    case 1: {
      // An attribute of the wrong type, or a type the parser does not take.
      const n = someNode();
      if (!n) return 'none';
      const key = d.pick(ATTRS);
      const type = d.pick([T.FLOATS, T.STRING, T.STRINGS, T.GRAPH, T.TENSOR, T.SPARSE_TENSOR, T.UNDEFINED, 77]);
      const t = type === T.TENSOR ? { name: 't', dims: weirdDims(d), dataType: d.pick(DTYPES) } : undefined;
      n.attribute = [...(n.attribute ?? []), { name: key, type, ...(t ? { t } : {}), floats: [1.5], strings: [new Uint8Array(2)] }];
      return `attribute ${key} of type ${type} on ${n.opType}`;
    }
    case 2: {
      const t = g.initializers.length ? d.pick(g.initializers) : undefined;
      if (!t) return 'none';
      t.dims = weirdDims(d);
      return `initializer ${t.name} dims [${t.dims.join(', ')}]`;
    }
    case 3: {
      const t = g.initializers.length ? d.pick(g.initializers) : undefined;
      if (!t) return 'none';
      t.dataType = d.pick(DTYPES);
      if (d.chance(0.3)) t.rawData = undefined;
      return `initializer ${t.name} dtype ${t.dataType}`;
    }
    case 4: {
      const t = g.initializers.length ? d.pick(g.initializers) : undefined;
      if (!t) return 'none';
      if (d.chance(0.5)) {
        t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
        t.externalData = [{ key: 'location', value: d.pick(['w.bin', '../../etc/passwd', '/dev/zero']) }, { key: 'length', value: String(d.pick([0, 64, 2 ** 40])) }];
        if (d.chance(0.5)) t.rawData = undefined;
        if (d.chance(0.5)) t.dims = weirdDims(d);
        return `initializer ${t.name} external, dims [${(t.dims ?? []).join(', ')}]`;
      }
      const raw = t.rawData ?? new Uint8Array();
      t.rawData = d.chance(0.5) ? raw.subarray(0, d.int(raw.length + 1)) : new Uint8Array([...raw, ...new Uint8Array(d.between(1, 9))]);
      return `initializer ${t.name} data of ${t.rawData.length} bytes`;
    }
    case 5: {
      // Declared input dimensions: empty, negative, huge, symbolic, absent.
      const v = d.pick(g.inputs);
      const tensorType = v.type!.tensorType!;
      tensorType.shape ??= { dim: [] };
      const dims = (tensorType.shape.dim ??= []);
      const i = d.int(dims.length + 1);
      const what = d.pick<onnxProto.onnx.TensorShapeProto.IDimension | 'drop' | 'rank9' | 'noshape'>([{ dimValue: 0 }, { dimValue: -5 }, { dimValue: 2 ** 40 }, { dimParam: 'N' }, {}, 'drop', 'rank9', 'noshape']);
      if (what === 'noshape') tensorType.shape = undefined;
      else if (what === 'drop') dims.splice(i, 1);
      else if (what === 'rank9') tensorType.shape.dim = Array.from({ length: 9 }, () => ({ dimValue: 2 }));
      else dims[Math.min(i, dims.length - 1)] = what;
      return `input ${v.name} dim ${i}: ${JSON.stringify(what)}`;
    }
    case 6: {
      const v = d.pick([...g.inputs, ...g.outputs]);
      v.type!.tensorType!.elemType = d.pick(DTYPES);
      return `value ${v.name} elemType ${v.type!.tensorType!.elemType}`;
    }
    case 7: {
      // Wiring: dangling inputs, cycles, values produced twice, missing initializers, nodes out of order.
      const n = someNode();
      if (!n) return 'none';
      const outputsOf = g.nodes.flatMap((m) => m.output ?? []);
      switch (d.int(7)) {
        case 0:
          n.input = (n.input ?? []).map((i) => (d.chance(0.5) ? d.pick(WEIRD_NAMES) : i));
          return `${n.name} inputs renamed`;
        case 1:
          if (outputsOf.length) n.input = [d.pick(outputsOf), ...(n.input ?? []).slice(1)];
          return `${n.name} reads a later value (a cycle)`;
        case 2:
          if (outputsOf.length) n.output = [d.pick([...outputsOf, ...g.initializers.map((t) => t.name!), 'x'])];
          return `${n.name} writes an existing value`;
        case 3:
          if (g.initializers.length) g.initializers.splice(d.int(g.initializers.length), 1);
          return 'an initializer removed';
        case 4:
          d.shuffle(g.nodes);
          return 'nodes shuffled';
        case 5:
          n.input = [...(n.input ?? []), ...Array.from({ length: d.between(1, 3) }, () => d.pick(['x', '', 'ghost']))];
          return `${n.name} given extra inputs`;
        default:
          n.output = d.chance(0.5) ? [] : [''];
          return `${n.name} without outputs`;
      }
    }
    case 8: {
      const n = someNode();
      if (!n) return 'none';
      if (d.chance(0.7)) n.opType = d.pick(OPS);
      else n.domain = d.pick(['com.microsoft', 'ai.onnx.ml', 'ai.onnx', 'evil']);
      return `${n.name} is now ${n.domain ?? ''}.${n.opType}`;
    }
    case 9: {
      switch (d.int(4)) {
        case 0:
          g.outputs = [];
          return 'no outputs';
        case 1:
          g.outputs = [...g.outputs, ...g.outputs];
          return 'outputs declared twice';
        case 2:
          g.outputs = [value(d.pick(['x', ...g.initializers.map((t) => t.name!), 'ghost']), ['batch', 4])];
          return 'output names an input, a weight or nothing';
        default:
          g.inputs = [...g.inputs, value(d.pick(WEIRD_NAMES) || 'extra', ['batch', 2])];
          return 'an extra input';
      }
    }
    case 10:
      g.opset = d.pick([0, 1, 6, 7, 12, 21, 99]);
      return `opset ${g.opset}`;
    default: {
      const n = someNode();
      if (!n) return 'none';
      n.name = d.pick(WEIRD_NAMES);
      if (d.chance(0.3)) g.nodes.push({ ...n, output: [`${n.output?.[0] ?? 'o'}_copy`] });
      return 'node renamed';
    }
  }
}

/** The bytes themselves: cut, flipped, padded, or noise. */
function mutateBytes(bytes: Uint8Array, d: Dice): { bytes: Uint8Array; story: string } {
  switch (d.int(5)) {
    case 0: {
      const at = d.int(bytes.length);
      return { bytes: bytes.slice(0, at), story: `truncated at ${at} of ${bytes.length}` };
    }
    case 1: {
      const out = bytes.slice();
      const flips = d.between(1, 8);
      for (let i = 0; i < flips; i++) out[d.int(out.length)] = d.int(256);
      return { bytes: out, story: `${flips} bytes flipped` };
    }
    case 2:
      return { bytes: new Uint8Array([...bytes, ...Array.from({ length: d.between(1, 64) }, () => d.int(256))]), story: 'junk appended' };
    case 3:
      return { bytes: Uint8Array.from({ length: d.int(400) }, () => d.int(256)), story: 'random bytes' };
    default:
      return { bytes: new Uint8Array(0), story: 'empty file' };
  }
}

function encode(g: Graph): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'tessera-fuzz',
    opsetImport: [{ domain: '', version: g.opset }],
    graph: { name: 'g', node: g.nodes, input: g.inputs, output: g.outputs, initializer: g.initializers },
  }).finish();
}

/**
 * The model and input files for case `index` of the run seeded `seed`:
 * about a quarter valid as generated, a few heavy, the rest mutated 1–3
 * times, some of those in their bytes too.
 */
export function fuzzCase(seed: number, index: number): FuzzCase {
  const d = new Dice(rng(Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)));
  const story: string[] = [];
  const { graph, inputs } = d.chance(0.03) ? heavyGraph(d, story) : validGraph(d, story);
  const mutations = d.chance(0.25) ? 0 : d.between(1, 3);
  for (let i = 0; i < mutations; i++) story.push(`mutation: ${mutate(graph, d)}`);
  let bytes = encode(graph);
  if (mutations > 0 && d.chance(0.12)) {
    const m = mutateBytes(bytes, d);
    bytes = m.bytes;
    story.push(`bytes: ${m.story}`);
  }
  const batch = d.between(1, 5);
  const files: Record<string, HostTensor> = {};
  for (const v of inputs) {
    const dims = [batch, ...v.dims.slice(1)];
    files[v.name] = { dims, data: Float32Array.from({ length: size(dims) }, () => d.next() * 2 - 1) };
  }
  // Now and then the files do not match: a wrong shape, the alias "input", an extra file.
  if (d.chance(0.05)) {
    const f = files.x!;
    files.x = { dims: [...f.dims, 1], data: f.data };
    story.push('files: x has an extra dimension');
  } else if (d.chance(0.03) && inputs.length === 1) {
    files.input = files.x!;
    delete files.x;
    story.push('files: x sent as "input"');
  } else if (d.chance(0.02)) {
    files.extra = { dims: [batch, 1], data: new Float32Array(batch) };
    story.push('files: an extra file');
  }
  return { index, story, bytes, files, batch };
}
