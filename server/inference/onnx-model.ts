/**
 * Reads an uploaded ONNX model (protobuf, via onnx-proto) into a plain graph
 * and checks it against what the network can run: float32 tensors, the
 * supported operators, and shapes that are static once the batch size (the
 * first dimension of each input) is fixed. Every problem is reported, each
 * naming its node, so a requester fixes the export once.
 */
import onnxProto from 'onnx-proto';
import { ModelError, type AttributeValue, type GraphNode, type GraphValue, type ModelGraph, type TensorValue } from '../../shared/model-graph';

const { onnx } = onnxProto;
type Long = { toNumber(): number };

/** Enough for an MLP and a transformer encoder block as PyTorch exports them. */
export const SUPPORTED_OPS = [
  'MatMul', 'Gemm', 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sqrt', 'Erf', 'Relu', 'Sigmoid', 'Tanh', 'Gelu',
  'Softmax', 'LayerNormalization', 'ReduceMean', 'Transpose', 'Reshape', 'Flatten', 'Unsqueeze', 'Identity', 'Constant',
] as const;
export type SupportedOp = (typeof SUPPORTED_OPS)[number];

export { ModelError, type AttributeValue, type GraphNode, type GraphValue, type ModelGraph, type TensorValue } from '../../shared/model-graph';

const num = (x: number | Long | null | undefined): number => (x === null || x === undefined ? 0 : typeof x === 'number' ? x : x.toNumber());
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

function tensorValue(t: onnxProto.onnx.ITensorProto, problems: string[], where: string): TensorValue {
  const name = t.name ?? '';
  const dims = (t.dims ?? []).map(num);
  const count = dims.reduce((a, b) => a * b, 1);
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    problems.push(`${where}: tensor "${name}" keeps its data in an external file; export with the weights inside the .onnx`);
    return { name, dims, data: new Float32Array(count) };
  }
  // A copy with its own aligned buffer: in Node the decoded bytes are a view into a larger, pooled one.
  const raw = t.rawData && t.rawData.length > 0 ? Uint8Array.from(t.rawData) : undefined;
  if (t.dataType === FLOAT) {
    const data = raw ? new Float32Array(raw.buffer, 0, raw.length / 4) : Float32Array.from(t.floatData ?? []);
    if (data.length !== count) problems.push(`${where}: tensor "${name}" has ${data.length} values for shape [${dims.join(', ')}]`);
    return { name, dims, data };
  }
  if (t.dataType === INT64) {
    const data = raw ? new BigInt64Array(raw.buffer, 0, raw.length / 8) : BigInt64Array.from((t.int64Data ?? []).map((x) => BigInt(num(x))));
    return { name, dims, data };
  }
  problems.push(`${where}: tensor "${name}" is ${onnx.TensorProto.DataType[t.dataType ?? 0] ?? t.dataType}; only float32 (and int64 shapes/axes) are supported`);
  return { name, dims, data: new Float32Array(count) };
}

function attribute(a: onnxProto.onnx.IAttributeProto, problems: string[], where: string): AttributeValue | undefined {
  const T = onnx.AttributeProto.AttributeType;
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
      return a.t ? tensorValue(a.t, problems, where) : undefined;
    default:
      problems.push(`${where}: attribute "${a.name}" of type ${T[a.type ?? 0] ?? a.type} is not supported`);
      return undefined;
  }
}

function graphValue(v: onnxProto.onnx.IValueInfoProto): GraphValue {
  const t = v.type?.tensorType;
  return {
    name: v.name ?? '',
    elemType: t?.elemType ?? 0,
    dims: (t?.shape?.dim ?? []).map((d) => (d.dimValue !== null && d.dimValue !== undefined && num(d.dimValue) > 0 ? num(d.dimValue) : d.dimParam || null)),
  };
}

/** Parses the protobuf; throws ModelError('NOT_ONNX') when the bytes are not an ONNX model. */
export function parseModel(bytes: Uint8Array): ModelGraph {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new ModelError('NOT_ONNX', [`the model file is not an ONNX protobuf (${err instanceof Error ? err.message : String(err)})`]);
  }
  if (!model.graph || !model.graph.node?.length) throw new ModelError('NOT_ONNX', ['the model file has no graph; export it with torch.onnx.export or an ONNX converter']);
  const problems: string[] = [];
  const opset = num(model.opsetImport?.find((o) => !o.domain || o.domain === 'ai.onnx')?.version);
  const g = model.graph;
  const initializers = new Map<string, TensorValue>();
  for (const t of g.initializer ?? []) initializers.set(t.name ?? '', tensorValue(t, problems, 'initializer'));
  const nodes = (g.node ?? []).map((n, i): GraphNode => {
    const name = n.name || `#${i}`;
    const attributes: Record<string, AttributeValue> = {};
    for (const a of n.attribute ?? []) {
      const v = attribute(a, problems, `node ${name} (${n.opType})`);
      if (v !== undefined) attributes[a.name ?? ''] = v;
    }
    return { name, opType: n.opType ?? '', domain: n.domain ?? '', inputs: n.input ?? [], outputs: n.output ?? [], attributes };
  });
  if (problems.length) throw new ModelError('UNSUPPORTED_MODEL', problems);
  return {
    opset,
    // Graph inputs that are also initializers are weights with defaults, not inputs the requester sends.
    inputs: (g.input ?? []).map(graphValue).filter((v) => !initializers.has(v.name)),
    outputs: (g.output ?? []).map(graphValue),
    initializers,
    nodes,
  };
}

/**
 * Everything in the graph the network cannot run, one line per problem:
 * unsupported operators (each with its node), non-float32 inputs or outputs,
 * and symbolic dimensions other than the batch.
 */
export function modelProblems(graph: ModelGraph): string[] {
  const problems: string[] = [];
  const supported = new Set<string>(SUPPORTED_OPS);
  for (const n of graph.nodes) {
    const standard = n.domain === '' || n.domain === 'ai.onnx' || (n.domain === 'com.microsoft' && n.opType === 'Gelu');
    if (!standard || !supported.has(n.opType)) problems.push(`unsupported operator ${n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.` : ''}${n.opType} (node ${n.name})`);
  }
  for (const v of [...graph.inputs, ...graph.outputs]) {
    if (v.elemType !== FLOAT) problems.push(`${graph.inputs.includes(v) ? 'input' : 'output'} "${v.name}" is ${onnx.TensorProto.DataType[v.elemType] ?? v.elemType}; only float32 is supported`);
  }
  for (const v of graph.inputs) {
    if (v.dims.length === 0) problems.push(`input "${v.name}" is a scalar; inputs need a batch dimension first`);
    v.dims.slice(1).forEach((d, i) => {
      if (typeof d !== 'number') problems.push(`input "${v.name}" has a dynamic dimension ${i + 1} (${d ?? 'unnamed'}); only the first (batch) dimension may vary`);
    });
  }
  if (graph.opset < 7) problems.push(`opset ${graph.opset} is too old; export with opset 13 or newer`);
  return problems;
}

/** Parses and checks; throws ModelError('UNSUPPORTED_MODEL') listing every problem. */
export function loadModel(bytes: Uint8Array): ModelGraph {
  const graph = parseModel(bytes);
  const problems = modelProblems(graph);
  if (problems.length) throw new ModelError('UNSUPPORTED_MODEL', problems);
  return graph;
}
