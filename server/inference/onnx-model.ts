/**
 * Reads an uploaded ONNX model (protobuf, via onnx-proto) into a plain graph
 * and checks it against what the network can run: float32 tensors, the
 * supported operators, and shapes that are static once the batch size (the
 * first dimension of each input) is fixed. Every problem is reported, each
 * naming its node or tensor, so a requester fixes the export once.
 *
 * Nothing the model describes is allocated before it is checked: a tensor's
 * dimensions are validated and its element count bounded before its data is
 * copied, and the node count before any node is read.
 */
import onnxProto from 'onnx-proto';
import { MODEL_LIMITS, type ModelLimits } from '../../shared/model-limits';
import { clip, ModelError, ModelProblems, nodeLabel, quoteName, type AttributeValue, type GraphNode, type GraphValue, type ModelGraph, type TensorValue } from '../../shared/model-graph';

const { onnx } = onnxProto;
type Long = { toNumber(): number };

/**
 * Enough for an MLP and a transformer encoder block as PyTorch exports them,
 * with how many inputs each takes (fewest, most; trailing optional inputs may be empty).
 */
export const OP_INPUTS = {
  MatMul: [2, 2], Gemm: [2, 3], Add: [2, 2], Sub: [2, 2], Mul: [2, 2], Div: [2, 2], Pow: [2, 2],
  Sqrt: [1, 1], Erf: [1, 1], Relu: [1, 1], Sigmoid: [1, 1], Tanh: [1, 1], Gelu: [1, 1],
  Softmax: [1, 1], LayerNormalization: [2, 3], ReduceMean: [1, 2], Transpose: [1, 1], Reshape: [2, 2],
  Flatten: [1, 1], Unsqueeze: [1, 2], Identity: [1, 1], Constant: [0, 0],
} as const satisfies Record<string, readonly [number, number]>;
export type SupportedOp = keyof typeof OP_INPUTS;
export const SUPPORTED_OPS = Object.keys(OP_INPUTS) as SupportedOp[];

export { ModelError, type AttributeValue, type GraphNode, type GraphValue, type ModelGraph, type TensorValue } from '../../shared/model-graph';

const num = (x: number | Long | null | undefined): number => (x === null || x === undefined ? 0 : typeof x === 'number' ? x : x.toNumber());
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const dtypeName = (t: number | null | undefined) => onnx.TensorProto.DataType[t ?? 0] ?? String(t);
const fmtDims = (dims: readonly number[]) => `[${dims.length > 10 ? `${dims.slice(0, 10).join(', ')}, …` : dims.join(', ')}]`;

/**
 * A tensor's values, after its dimensions and size are checked; undefined
 * (with the problem recorded) when it cannot be used.
 */
function tensorValue(t: onnxProto.onnx.ITensorProto, problems: ModelProblems, where: string, limits: ModelLimits): TensorValue | undefined {
  const name = t.name ?? '';
  const label = `${where}: tensor ${quoteName(name)}`;
  const rawDims = t.dims ?? [];
  if (rawDims.length > limits.maxRank) {
    problems.add('MODEL_TOO_LARGE', `${label} has ${rawDims.length} dimensions; the network takes tensors of rank up to ${limits.maxRank}`);
    return undefined;
  }
  const dims = rawDims.map(num);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    problems.add('INVALID_MODEL', `${label} has dimensions ${fmtDims(dims)}; each must be a whole number ≥ 0`);
    return undefined;
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (count > limits.maxTensorElements) {
    problems.add('MODEL_TOO_LARGE', `${label} ${fmtDims(dims)} holds ${count.toLocaleString('en-US')} values; the network takes tensors of up to ${limits.maxTensorElements.toLocaleString('en-US')} (MAX_TENSOR_ELEMENTS)`);
    return undefined;
  }
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    problems.add('UNSUPPORTED_MODEL', `${label} keeps its data in an external file; export with the weights inside the .onnx`);
    return undefined;
  }
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  const width = t.dataType === FLOAT ? 4 : t.dataType === INT64 ? 8 : 0;
  if (width === 0) {
    problems.add('UNSUPPORTED_MODEL', `${label} is ${dtypeName(t.dataType)}; only float32 (and int64 shapes/axes) are supported`);
    return undefined;
  }
  const held = raw ? raw.length / width : t.dataType === FLOAT ? (t.floatData?.length ?? 0) : (t.int64Data?.length ?? 0);
  if (held !== count) {
    problems.add('INVALID_MODEL', `${label} has ${raw ? `${raw.length} bytes` : `${held} values`} for shape ${fmtDims(dims)}, which needs ${count} ${dtypeName(t.dataType).toLowerCase()} values`);
    return undefined;
  }
  // A copy with its own aligned buffer: in Node the decoded bytes are a view into a larger, pooled one.
  if (t.dataType === FLOAT) return { name, dims, data: raw ? new Float32Array(Uint8Array.from(raw).buffer) : Float32Array.from(t.floatData ?? []) };
  return { name, dims, data: raw ? new BigInt64Array(Uint8Array.from(raw).buffer) : BigInt64Array.from((t.int64Data ?? []).map((x) => BigInt(num(x)))) };
}

function attribute(a: onnxProto.onnx.IAttributeProto, problems: ModelProblems, where: string, limits: ModelLimits): AttributeValue | undefined {
  const T = onnx.AttributeProto.AttributeType;
  const length = a.type === T.INTS ? (a.ints?.length ?? 0) : a.type === T.FLOATS ? (a.floats?.length ?? 0) : 0;
  if (length > limits.maxTensorElements) {
    problems.add('MODEL_TOO_LARGE', `${where}: attribute ${quoteName(a.name ?? '')} holds ${length} values; the network takes up to ${limits.maxTensorElements} (MAX_TENSOR_ELEMENTS)`);
    return undefined;
  }
  switch (a.type) {
    case T.FLOAT:
      return a.f ?? 0;
    case T.INT:
      return num(a.i);
    case T.STRING:
      return new TextDecoder().decode(a.s ?? new Uint8Array());
    case T.INTS:
      return (a.ints ?? []).map(num);
    case T.FLOATS:
      return a.floats ?? [];
    case T.TENSOR:
      if (a.t) return tensorValue(a.t, problems, where, limits);
      problems.add('INVALID_MODEL', `${where}: attribute ${quoteName(a.name ?? '')} is a tensor without a value`);
      return undefined;
    default:
      problems.add('UNSUPPORTED_MODEL', `${where}: attribute ${quoteName(a.name ?? '')} of type ${T[a.type ?? 0] ?? a.type} is not supported`);
      return undefined;
  }
}

function graphValue(v: onnxProto.onnx.IValueInfoProto, problems: ModelProblems, kind: string, limits: ModelLimits): GraphValue {
  const t = v.type?.tensorType;
  const name = v.name ?? '';
  const rawDims = t?.shape?.dim ?? [];
  if (rawDims.length > limits.maxRank) {
    problems.add('MODEL_TOO_LARGE', `${kind} ${quoteName(name)} has ${rawDims.length} dimensions; the network takes tensors of rank up to ${limits.maxRank}`);
  }
  const dims = rawDims.slice(0, limits.maxRank).map((d, i) => {
    if (d.dimValue === null || d.dimValue === undefined) return d.dimParam || null;
    const n = num(d.dimValue);
    if (!Number.isSafeInteger(n) || n < 0) {
      problems.add('INVALID_MODEL', `${kind} ${quoteName(name)} has dimension ${i} = ${n}; each must be a whole number ≥ 0`);
      return null;
    }
    return n > 0 ? n : null;
  });
  return { name, elemType: t?.elemType ?? 0, dims };
}

/**
 * Parses the protobuf; throws ModelError: NOT_ONNX when the bytes are not an
 * ONNX model, MODEL_TOO_LARGE over a limit, INVALID_MODEL or
 * UNSUPPORTED_MODEL for tensors and attributes it cannot take.
 */
export function parseModel(bytes: Uint8Array, limits: ModelLimits = MODEL_LIMITS): ModelGraph {
  if (bytes.byteLength > limits.maxModelBytes) {
    throw new ModelError('MODEL_TOO_LARGE', [`the model file has ${bytes.byteLength} bytes; the network takes models of up to ${limits.maxModelBytes} (MAX_MODEL_BYTES)`]);
  }
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new ModelError('NOT_ONNX', [`the model file is not an ONNX protobuf (${clip(err instanceof Error ? err.message : String(err), 120)})`]);
  }
  if (!model.graph || !model.graph.node?.length) throw new ModelError('NOT_ONNX', ['the model file has no graph; export it with torch.onnx.export or an ONNX converter']);
  const g = model.graph;
  const nodeCount = g.node?.length ?? 0;
  if (nodeCount > limits.maxNodes) {
    throw new ModelError('MODEL_TOO_LARGE', [`the model has ${nodeCount} nodes; the network takes models of up to ${limits.maxNodes} nodes (MAX_MODEL_NODES)`]);
  }
  const problems = new ModelProblems();
  const opset = num(model.opsetImport?.find((o) => !o.domain || o.domain === 'ai.onnx')?.version);
  const initializers = new Map<string, TensorValue>();
  for (const t of g.initializer ?? []) {
    const name = t.name ?? '';
    if (initializers.has(name)) problems.add('INVALID_MODEL', `initializer ${quoteName(name)} is given twice`);
    const v = tensorValue(t, problems, 'initializer', limits);
    if (v) initializers.set(name, v);
  }
  const nodes = (g.node ?? []).map((n, i): GraphNode => {
    const name = n.name || `#${i}`;
    const where = nodeLabel({ name, opType: n.opType ?? '' });
    // No prototype: an attribute named "__proto__" or "constructor" is only an unknown attribute.
    const attributes = Object.create(null) as Record<string, AttributeValue>;
    for (const a of n.attribute ?? []) {
      const key = a.name ?? '';
      if (Object.hasOwn(attributes, key)) problems.add('INVALID_MODEL', `${where}: attribute ${quoteName(key)} is given twice`);
      const v = attribute(a, problems, where, limits);
      if (v !== undefined) attributes[key] = v;
    }
    return { name, opType: n.opType ?? '', domain: n.domain ?? '', inputs: n.input ?? [], outputs: n.output ?? [], attributes };
  });
  const inputs = (g.input ?? []).map((v) => graphValue(v, problems, 'input', limits));
  const outputs = (g.output ?? []).map((v) => graphValue(v, problems, 'output', limits));
  problems.throwIfAny();
  return {
    opset,
    // Graph inputs that are also initializers are weights with defaults, not inputs the requester sends.
    inputs: inputs.filter((v) => !initializers.has(v.name)),
    outputs,
    initializers,
    nodes,
  };
}

/** Unsupported operators grouped by kind: one line each, with how many nodes and the first few names. */
function unsupportedOperators(graph: ModelGraph): string[] {
  const groups = new Map<string, string[]>();
  for (const n of graph.nodes) {
    const standard = n.domain === '' || n.domain === 'ai.onnx' || (n.domain === 'com.microsoft' && n.opType === 'Gelu');
    if (standard && Object.hasOwn(OP_INPUTS, n.opType)) continue;
    const op = clip(`${n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.` : ''}${n.opType}`, 64);
    let names = groups.get(op);
    if (!names) groups.set(op, (names = []));
    names.push(n.name);
  }
  return [...groups].map(([op, names]) => {
    if (names.length === 1) return `unsupported operator ${op} (node ${clip(names[0]!)})`;
    const shown = names.slice(0, 3).map((s) => clip(s, 32));
    return `unsupported operator ${op} in ${names.length} nodes (${shown.join(', ')}${names.length > 3 ? ', …' : ''})`;
  });
}

/**
 * Every value read before anything produces it, produced twice, or never
 * produced for a graph output; nodes must be in topological order (which
 * also rules out cycles). Linear in the graph.
 */
function wiringProblems(graph: ModelGraph, problems: ModelProblems): void {
  const produced = new Set<string>(graph.initializers.keys());
  for (const v of graph.inputs) {
    if (produced.has(v.name)) problems.add('INVALID_MODEL', `input ${quoteName(v.name)} is declared twice`);
    produced.add(v.name);
  }
  for (const n of graph.nodes) {
    const where = nodeLabel(n);
    const arity: readonly [number, number] | undefined = Object.hasOwn(OP_INPUTS, n.opType) ? OP_INPUTS[n.opType as SupportedOp] : undefined;
    if (arity && (n.inputs.length < arity[0] || n.inputs.length > arity[1])) {
      problems.add('INVALID_MODEL', `${where} has ${n.inputs.length} inputs; ${n.opType} takes ${arity[0] === arity[1] ? arity[0] : `${arity[0]} to ${arity[1]}`}`);
    }
    for (const i of n.inputs) {
      if (i && !produced.has(i)) problems.add('INVALID_MODEL', `${where} reads ${quoteName(i)} before any input, initializer or earlier node produces it (nodes must be in topological order)`);
    }
    if (!n.outputs[0]) problems.add('INVALID_MODEL', `${where} has no output`);
    for (const o of n.outputs) {
      if (!o) continue;
      if (produced.has(o)) problems.add('INVALID_MODEL', `${where} writes ${quoteName(o)}, which is already produced elsewhere`);
      produced.add(o);
    }
  }
  const seen = new Set<string>();
  for (const o of graph.outputs) {
    if (seen.has(o.name)) problems.add('INVALID_MODEL', `output ${quoteName(o.name)} is declared twice`);
    seen.add(o.name);
    if (!produced.has(o.name)) problems.add('INVALID_MODEL', `output ${quoteName(o.name)} is not produced by any node`);
  }
}

/**
 * Everything in the graph the network cannot run, one line per problem:
 * unsupported operators (grouped, with their nodes), broken wiring,
 * non-float32 inputs or outputs, symbolic dimensions other than the batch,
 * and too many inputs or outputs.
 */
export function modelProblems(graph: ModelGraph, limits: ModelLimits = MODEL_LIMITS): ModelProblems {
  const problems = new ModelProblems();
  for (const p of unsupportedOperators(graph)) problems.add('UNSUPPORTED_MODEL', p);
  if (graph.inputs.length === 0) problems.add('UNSUPPORTED_MODEL', 'the model has no inputs to send; it would compute the same for every sample');
  if (graph.inputs.length > limits.maxInputs) problems.add('MODEL_TOO_LARGE', `the model has ${graph.inputs.length} inputs; the network takes up to ${limits.maxInputs} (MAX_MODEL_INPUTS)`);
  if (graph.outputs.length === 0) problems.add('INVALID_MODEL', 'the model declares no outputs');
  if (graph.outputs.length > limits.maxOutputs) problems.add('MODEL_TOO_LARGE', `the model has ${graph.outputs.length} outputs; the network takes up to ${limits.maxOutputs} (MAX_MODEL_OUTPUTS)`);
  wiringProblems(graph, problems);
  const values: [GraphValue, string][] = [...graph.inputs.map((v): [GraphValue, string] => [v, 'input']), ...graph.outputs.map((v): [GraphValue, string] => [v, 'output'])];
  for (const [v, kind] of values) {
    if (v.elemType !== FLOAT) problems.add('UNSUPPORTED_MODEL', `${kind} ${quoteName(v.name)} is ${dtypeName(v.elemType)}; only float32 is supported`);
  }
  for (const v of graph.inputs) {
    if (v.dims.length === 0) problems.add('UNSUPPORTED_MODEL', `input ${quoteName(v.name)} is a scalar; inputs need a batch dimension first`);
    v.dims.slice(1).forEach((d, i) => {
      if (typeof d !== 'number') problems.add('UNSUPPORTED_MODEL', `input ${quoteName(v.name)} has a dynamic dimension ${i + 1} (${clip(d ?? 'unnamed', 32)}); only the first (batch) dimension may vary`);
    });
  }
  if (graph.opset < 7) problems.add('UNSUPPORTED_MODEL', `opset ${graph.opset} is too old; export with opset 13 or newer`);
  return problems;
}

/** Parses and checks; throws ModelError listing every problem. */
export function loadModel(bytes: Uint8Array, limits: ModelLimits = MODEL_LIMITS): ModelGraph {
  const graph = parseModel(bytes, limits);
  modelProblems(graph, limits).throwIfAny();
  return graph;
}
