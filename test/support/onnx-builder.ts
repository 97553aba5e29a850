/** Builds real ONNX protobuf models in tests (onnx-proto), as an exporter would write them. */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type Dim = number | string;

export const floatTensor = (name: string, dims: number[], data?: Float32Array): onnxProto.onnx.ITensorProto => {
  const values = data ?? Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 12.9898 + dims.length) * 0.5);
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)) };
};

export const int64Tensor = (name: string, values: number[]): onnxProto.onnx.ITensorProto => ({
  name,
  dims: [values.length],
  dataType: onnx.TensorProto.DataType.INT64,
  rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer),
});

export const value = (name: string, dims: Dim[], elemType = onnx.TensorProto.DataType.FLOAT): onnxProto.onnx.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
});

type Attr = number | number[] | string | onnxProto.onnx.ITensorProto;

/** Integers are INT/INTS, other numbers FLOAT/FLOATS, strings STRING, tensors TENSOR. */
export function attribute(k: string, v: Attr): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (Array.isArray(v)) return v.every(Number.isInteger) ? { name: k, type: T.INTS, ints: v } : { name: k, type: T.FLOATS, floats: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { name: k, type: T.INT, i: v } : { name: k, type: T.FLOAT, f: v };
  if (typeof v === 'string') return { name: k, type: T.STRING, s: new TextEncoder().encode(v) };
  return { name: k, type: T.TENSOR, t: v };
}

export function node(opType: string, inputs: string[], outputs: string[], name: string, attrs: Record<string, Attr> = {}, domain = ''): onnxProto.onnx.INodeProto {
  return { opType, input: inputs, output: outputs, name, attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)), domain };
}

export function model(graph: { nodes: onnxProto.onnx.INodeProto[]; inputs: onnxProto.onnx.IValueInfoProto[]; outputs: onnxProto.onnx.IValueInfoProto[]; initializers: onnxProto.onnx.ITensorProto[] }, opset = 17): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'tessera-tests',
    opsetImport: [{ domain: '', version: opset }],
    graph: { name: 'g', node: graph.nodes, input: graph.inputs, output: graph.outputs, initializer: graph.initializers },
  }).finish();
}

/** x [batch, 16] → Gemm → Relu → MatMul → Add → Softmax → y [batch, 4]. */
export function mlpModel(): Uint8Array {
  return model({
    inputs: [value('x', ['batch', 16])],
    outputs: [value('y', ['batch', 4])],
    initializers: [floatTensor('w1', [16, 32]), floatTensor('b1', [32]), floatTensor('w2', [32, 4]), floatTensor('b2', [4])],
    nodes: [
      node('Gemm', ['x', 'w1', 'b1'], ['h'], 'fc1'),
      node('Relu', ['h'], ['hr'], 'relu'),
      node('MatMul', ['hr', 'w2'], ['o'], 'fc2'),
      node('Add', ['o', 'b2'], ['ob'], 'bias2'),
      node('Softmax', ['ob'], ['y'], 'softmax', { axis: -1 }),
    ],
  });
}

/** One transformer encoder block as PyTorch exports it: x [batch, 8, 16], 2 heads of 8, feed-forward 32, GELU via Erf. */
export function encoderBlockModel(): Uint8Array {
  return encoderStackModel({ layers: 1, d: 16, heads: 2, seq: 8, ff: 32 });
}

/** Every other supported operator in one chain: x [batch, 4, 6] → y [batch, 6]. */
export function remainingOpsModel(): Uint8Array {
  return model(
    {
      inputs: [value('x', ['batch', 4, 6])],
      outputs: [value('y', ['batch', 6])],
      initializers: [floatTensor('c', [6, 1]), floatTensor('two', [], Float32Array.of(2)), int64Tensor('axes2', [2]), int64Tensor('axes1', [1])],
      nodes: [
        node('Transpose', ['x'], ['t'], 'transpose', { perm: [0, 2, 1] }),
        node('Sigmoid', ['t'], ['s'], 'sigmoid'),
        node('Sub', ['s', 'c'], ['d'], 'sub'),
        node('Pow', ['d', 'two'], ['p'], 'pow'),
        node('Sqrt', ['p'], ['q'], 'sqrt'),
        node('Constant', [], ['k'], 'const', { value: floatTensor('k', [4], Float32Array.of(1, 2, 3, 4)) }),
        node('Mul', ['q', 'k'], ['m'], 'mul'),
        node('Div', ['m', 'two'], ['dv'], 'div'),
        node('ReduceMean', ['dv', 'axes2'], ['r'], 'mean', { keepdims: 1 }),
        node('Unsqueeze', ['r', 'axes1'], ['u'], 'unsqueeze'),
        node('Flatten', ['u'], ['f'], 'flatten', { axis: 1 }),
        node('Tanh', ['f'], ['th'], 'tanh'),
        node('Gelu', ['th'], ['g'], 'gelu'),
        node('Identity', ['g'], ['y'], 'id'),
      ],
    },
    20,
  );
}

/**
 * x [batch, 12] → Gemm (transB, alpha 0.5, beta 1.5, as torch.nn.Linear exports with scaling) → [batch, 15]
 * → Reshape [batch, 3, 5] → Softmax over axis 1 (not the last) → probs, and ReduceMean over axis 1 → mean [batch, 5].
 */
export function twoOutputModel(): Uint8Array {
  return model({
    inputs: [value('x', ['batch', 12])],
    outputs: [value('probs', ['batch', 3, 5]), value('mean', ['batch', 5])],
    initializers: [floatTensor('w', [15, 12]), floatTensor('b', [15]), int64Tensor('shape', [0, 3, 5])],
    nodes: [
      node('Gemm', ['x', 'w', 'b'], ['h'], 'linear', { transB: 1, alpha: 0.5, beta: 1.5 }),
      node('Reshape', ['h', 'shape'], ['h3'], 'reshape'),
      node('Softmax', ['h3'], ['probs'], 'softmax_mid', { axis: 1 }),
      node('ReduceMean', ['h3'], ['mean'], 'mean_mid', { axes: [1], keepdims: 0 }),
    ],
  }, 17);
}

/** x [batch, widths[0]] → (Gemm as torch.nn.Linear exports it: transB) → Relu … → logits [batch, widths.at(-1)]. */
export function deepMlpModel(widths: number[]): Uint8Array {
  const initializers: onnxProto.onnx.ITensorProto[] = [];
  const nodes: onnxProto.onnx.INodeProto[] = [];
  let x = 'x';
  for (let i = 0; i + 1 < widths.length; i++) {
    const scale = 1 / Math.sqrt(widths[i]!);
    const w = floatTensor(`w${i}`, [widths[i + 1]!, widths[i]!]);
    w.rawData = new Uint8Array(new Float32Array(w.rawData!.buffer.slice(0)).map((v) => v * scale).buffer);
    initializers.push(w, floatTensor(`b${i}`, [widths[i + 1]!]));
    const last = i + 2 === widths.length;
    nodes.push(node('Gemm', [x, `w${i}`, `b${i}`], [last ? 'logits' : `h${i}`], `fc${i}`, { transB: 1 }));
    if (!last) nodes.push(node('Relu', [`h${i}`], [`r${i}`], `relu${i}`));
    x = `r${i}`;
  }
  return model({ inputs: [value('x', ['batch', widths[0]!])], outputs: [value('logits', ['batch', widths.at(-1)!])], initializers, nodes });
}

/**
 * A stack of pre-norm transformer encoder blocks as PyTorch exports them (attention with MatMul + Softmax,
 * GELU via Erf): x [batch, seq, d] → y [batch, seq, d]. Weights are scaled by 1/√fan-in so activations stay O(1).
 */
export function encoderStackModel(o: { layers: number; d: number; heads: number; seq: number; ff: number }): Uint8Array {
  const { d, heads, ff } = o;
  const hd = d / heads;
  const scaled = (name: string, dims: number[]) => {
    const t = floatTensor(name, dims);
    const s = 1 / Math.sqrt(dims[0]!);
    t.rawData = new Uint8Array(new Float32Array(t.rawData!.buffer.slice(0)).map((v) => v * s).buffer);
    return t;
  };
  const initializers: onnxProto.onnx.ITensorProto[] = [
    int64Tensor('heads_shape', [0, 0, heads, hd]), int64Tensor('merge_shape', [0, 0, d]),
    floatTensor('scale', [], Float32Array.of(Math.sqrt(hd))), floatTensor('sqrt2', [], Float32Array.of(Math.SQRT2)),
    floatTensor('one', [], Float32Array.of(1)), floatTensor('half', [], Float32Array.of(0.5)),
  ];
  const nodes: onnxProto.onnx.INodeProto[] = [];
  let x = 'x';
  for (let l = 0; l < o.layers; l++) {
    const p = (n: string) => `l${l}_${n}`;
    initializers.push(
      floatTensor(p('ln1_s'), [d], new Float32Array(d).fill(1)), floatTensor(p('ln1_b'), [d], new Float32Array(d)),
      floatTensor(p('ln2_s'), [d], new Float32Array(d).fill(1)), floatTensor(p('ln2_b'), [d], new Float32Array(d)),
      scaled(p('wq'), [d, d]), floatTensor(p('bq'), [d]), scaled(p('wk'), [d, d]), floatTensor(p('bk'), [d]),
      scaled(p('wv'), [d, d]), floatTensor(p('bv'), [d]), scaled(p('wo'), [d, d]), floatTensor(p('bo'), [d]),
      scaled(p('w1'), [d, ff]), floatTensor(p('b1'), [ff]), scaled(p('w2'), [ff, d]), floatTensor(p('b2'), [d]),
    );
    const proj = (w: string, b: string, out: string) => [node('MatMul', [p('n1'), p(w)], [p(`${out}_mm`)], p(`${out}_mm`)), node('Add', [p(`${out}_mm`), p(b)], [p(out)], p(`${out}_add`))];
    const split = (v: string, perm: number[]) => [
      node('Reshape', [p(v), 'heads_shape'], [p(`${v}_r`)], p(`${v}_reshape`)),
      node('Transpose', [p(`${v}_r`)], [p(`${v}_h`)], p(`${v}_transpose`), { perm }),
    ];
    nodes.push(
      node('LayerNormalization', [x, p('ln1_s'), p('ln1_b')], [p('n1')], p('ln1'), { axis: -1, epsilon: 1e-5 }),
      ...proj('wq', 'bq', 'q'), ...proj('wk', 'bk', 'k'), ...proj('wv', 'bv', 'v'),
      ...split('q', [0, 2, 1, 3]), ...split('k', [0, 2, 3, 1]), ...split('v', [0, 2, 1, 3]),
      node('MatMul', [p('q_h'), p('k_h')], [p('scores')], p('qk')),
      node('Div', [p('scores'), 'scale'], [p('scaled')], p('scale')),
      node('Softmax', [p('scaled')], [p('attn')], p('softmax'), { axis: -1 }),
      node('MatMul', [p('attn'), p('v_h')], [p('ctx')], p('attn_v')),
      node('Transpose', [p('ctx')], [p('ctx_t')], p('merge_transpose'), { perm: [0, 2, 1, 3] }),
      node('Reshape', [p('ctx_t'), 'merge_shape'], [p('ctx_m')], p('merge_reshape')),
      node('MatMul', [p('ctx_m'), p('wo')], [p('o_mm')], p('out_mm')),
      node('Add', [p('o_mm'), p('bo')], [p('o')], p('out_add')),
      node('Add', [x, p('o')], [p('r1')], p('residual1')),
      node('LayerNormalization', [p('r1'), p('ln2_s'), p('ln2_b')], [p('n2')], p('ln2'), { axis: -1, epsilon: 1e-5 }),
      node('MatMul', [p('n2'), p('w1')], [p('f1')], p('ff1_mm')),
      node('Add', [p('f1'), p('b1')], [p('f1b')], p('ff1_add')),
      node('Div', [p('f1b'), 'sqrt2'], [p('g1')], p('gelu_div')),
      node('Erf', [p('g1')], [p('g2')], p('gelu_erf')),
      node('Add', [p('g2'), 'one'], [p('g3')], p('gelu_add')),
      node('Mul', [p('f1b'), p('g3')], [p('g4')], p('gelu_mul')),
      node('Mul', [p('g4'), 'half'], [p('g5')], p('gelu_half')),
      node('MatMul', [p('g5'), p('w2')], [p('f2')], p('ff2_mm')),
      node('Add', [p('f2'), p('b2')], [p('f2b')], p('ff2_add')),
      node('Add', [p('r1'), p('f2b')], [l + 1 === o.layers ? 'y' : p('out')], p('residual2')),
    );
    x = p('out');
  }
  return model({ inputs: [value('x', ['batch', o.seq, d])], outputs: [value('y', ['batch', o.seq, d])], initializers, nodes });
}

/**
 * A tensor exactly as given, checked by nothing: any data type, any dimensions (negative, huge),
 * data inline, absent, or said to be in an external file. For the hostile models of the attack tests.
 */
export function rawTensor(
  name: string,
  dims: number[],
  o: { dataType?: number; raw?: Uint8Array; external?: string } = {},
): onnxProto.onnx.ITensorProto {
  return {
    name,
    dims,
    dataType: o.dataType ?? onnx.TensorProto.DataType.FLOAT,
    ...(o.raw ? { rawData: o.raw } : {}),
    ...(o.external
      ? { dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: [{ key: 'location', value: o.external }, { key: 'length', value: '0' }] }
      : {}),
  };
}

/** `count` MatMuls in a row on one small weight: x [batch, 4] → … → y [batch, 4]. A big graph with a tiny file. */
export function matmulChainModel(count: number): Uint8Array {
  const nodes = Array.from({ length: count }, (_, i) => node('MatMul', [i === 0 ? 'x' : `h${i - 1}`, 'w'], [i === count - 1 ? 'y' : `h${i}`], `mm${i}`));
  return model({ inputs: [value('x', ['batch', 4])], outputs: [value('y', ['batch', 4])], initializers: [floatTensor('w', [4, 4])], nodes });
}

/** x [batch, n, 1] · c [1, n] (broadcast) → y [batch, n, n]: n² output values per sample from n inputs and n weights. */
export function outerProductModel(n: number): Uint8Array {
  return model({
    inputs: [value('x', ['batch', n, 1])],
    outputs: [value('y', ['batch', n, n])],
    initializers: [floatTensor('c', [1, n])],
    nodes: [node('Mul', ['x', 'c'], ['y'], 'outer')],
  });
}
