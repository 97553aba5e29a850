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

type Attr = number | number[] | onnxProto.onnx.ITensorProto;

export function node(opType: string, inputs: string[], outputs: string[], name: string, attrs: Record<string, Attr> = {}, domain = ''): onnxProto.onnx.INodeProto {
  const T = onnx.AttributeProto.AttributeType;
  const attribute = Object.entries(attrs).map(([k, v]): onnxProto.onnx.IAttributeProto =>
    Array.isArray(v) ? { name: k, type: T.INTS, ints: v } : typeof v === 'number' ? (Number.isInteger(v) ? { name: k, type: T.INT, i: v } : { name: k, type: T.FLOAT, f: v }) : { name: k, type: T.TENSOR, t: v },
  );
  return { opType, input: inputs, output: outputs, name, attribute, domain };
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
  const d = 16;
  const heads = 2;
  const hd = 8;
  const init = [
    floatTensor('ln1_s', [d]), floatTensor('ln1_b', [d]), floatTensor('ln2_s', [d]), floatTensor('ln2_b', [d]),
    floatTensor('wq', [d, d]), floatTensor('bq', [d]), floatTensor('wk', [d, d]), floatTensor('bk', [d]), floatTensor('wv', [d, d]), floatTensor('bv', [d]),
    floatTensor('wo', [d, d]), floatTensor('bo', [d]), floatTensor('w1', [d, 32]), floatTensor('b1', [32]), floatTensor('w2', [32, d]), floatTensor('b2', [d]),
    int64Tensor('heads_shape', [0, 0, heads, hd]), int64Tensor('merge_shape', [0, 0, d]),
    floatTensor('scale', [], Float32Array.of(Math.sqrt(hd))), floatTensor('sqrt2', [], Float32Array.of(Math.SQRT2)),
    floatTensor('one', [], Float32Array.of(1)), floatTensor('half', [], Float32Array.of(0.5)),
  ];
  const proj = (w: string, b: string, out: string) => [node('MatMul', ['n1', w], [`${out}_mm`], `${out}_mm`), node('Add', [`${out}_mm`, b], [out], `${out}_add`)];
  const split = (x: string, perm: number[]) => [
    node('Reshape', [x, 'heads_shape'], [`${x}_r`], `${x}_reshape`),
    node('Transpose', [`${x}_r`], [`${x}_h`], `${x}_transpose`, { perm }),
  ];
  return model({
    inputs: [value('x', ['batch', 8, d])],
    outputs: [value('y', ['batch', 8, d])],
    initializers: init,
    nodes: [
      node('LayerNormalization', ['x', 'ln1_s', 'ln1_b'], ['n1'], 'ln1', { axis: -1, epsilon: 1e-5 }),
      ...proj('wq', 'bq', 'q'), ...proj('wk', 'bk', 'k'), ...proj('wv', 'bv', 'v'),
      ...split('q', [0, 2, 1, 3]), ...split('k', [0, 2, 3, 1]), ...split('v', [0, 2, 1, 3]),
      node('MatMul', ['q_h', 'k_h'], ['scores'], 'qk'),
      node('Div', ['scores', 'scale'], ['scaled'], 'scale'),
      node('Softmax', ['scaled'], ['attn'], 'softmax', { axis: -1 }),
      node('MatMul', ['attn', 'v_h'], ['ctx'], 'attn_v'),
      node('Transpose', ['ctx'], ['ctx_t'], 'merge_transpose', { perm: [0, 2, 1, 3] }),
      node('Reshape', ['ctx_t', 'merge_shape'], ['ctx_m'], 'merge_reshape'),
      node('MatMul', ['ctx_m', 'wo'], ['o_mm'], 'out_mm'),
      node('Add', ['o_mm', 'bo'], ['o'], 'out_add'),
      node('Add', ['x', 'o'], ['r1'], 'residual1'),
      node('LayerNormalization', ['r1', 'ln2_s', 'ln2_b'], ['n2'], 'ln2', { axis: -1, epsilon: 1e-5 }),
      node('MatMul', ['n2', 'w1'], ['f1'], 'ff1_mm'),
      node('Add', ['f1', 'b1'], ['f1b'], 'ff1_add'),
      node('Div', ['f1b', 'sqrt2'], ['g1'], 'gelu_div'),
      node('Erf', ['g1'], ['g2'], 'gelu_erf'),
      node('Add', ['g2', 'one'], ['g3'], 'gelu_add'),
      node('Mul', ['f1b', 'g3'], ['g4'], 'gelu_mul'),
      node('Mul', ['g4', 'half'], ['g5'], 'gelu_half'),
      node('MatMul', ['g5', 'w2'], ['f2'], 'ff2_mm'),
      node('Add', ['f2', 'b2'], ['f2b'], 'ff2_add'),
      node('Add', ['r1', 'f2b'], ['y'], 'residual2'),
    ],
  });
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
