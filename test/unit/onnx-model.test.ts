import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { loadModel, ModelError, parseModel } from '../../server/inference/onnx-model';
import { MODEL_LIMITS } from '../../shared/model-limits';
import { inferShapes } from '../../shared/shape-inference';
import { attribute, encoderBlockModel, floatTensor, matmulChainModel, mlpModel, model, node, rawTensor, value } from '../support/onnx-builder';

const { DataType } = onnxProto.onnx.TensorProto;

function problemsOf(bytes: Uint8Array, limits = MODEL_LIMITS): { code: string; problems: string[] } {
  try {
    inferShapes(loadModel(bytes, limits), 2);
  } catch (err) {
    if (err instanceof ModelError) return { code: err.code, problems: err.problems };
    throw err;
  }
  return { code: 'OK', problems: [] };
}

/** x [batch, 4] → MatMul by the initializer `w` → y [batch, 4]. */
const withWeight = (w: onnxProto.onnx.ITensorProto) =>
  model({ inputs: [value('x', ['batch', 4])], outputs: [value('y', ['batch', 4])], initializers: [w], nodes: [node('MatMul', ['x', w.name!], ['y'], 'mm')] });

describe('ONNX models at upload', () => {
  it('reads an MLP: its input, weights and the output shape for a batch size', () => {
    const g = loadModel(mlpModel());
    expect(g.inputs.map((v) => [v.name, v.dims])).toEqual([['x', ['batch', 16]]]);
    expect([...g.initializers.keys()]).toEqual(['w1', 'b1', 'w2', 'b2']);
    const w1 = g.initializers.get('w1')!.data;
    expect(w1).toHaveLength(16 * 32);
    expect(w1[5]).toBeCloseTo(Math.sin(5 * 12.9898 + 2) * 0.5, 6); // the weights themselves, not just their count
    expect(inferShapes(g, 5).get('y')).toEqual([5, 4]);
  });

  it('reads a transformer encoder block (self-attention with MatMul + Softmax, GELU via Erf) and infers every shape', () => {
    const shapes = inferShapes(loadModel(encoderBlockModel()), 3);
    expect(shapes.get('l0_q_h')).toEqual([3, 2, 8, 8]);
    expect(shapes.get('l0_k_h')).toEqual([3, 2, 8, 8]);
    expect(shapes.get('l0_scores')).toEqual([3, 2, 8, 8]);
    expect(shapes.get('l0_ctx_m')).toEqual([3, 8, 16]);
    expect(shapes.get('l0_f1b')).toEqual([3, 8, 32]);
    expect(shapes.get('y')).toEqual([3, 8, 16]);
  });

  it('names every unsupported operator and its node', () => {
    const bytes = model({
      inputs: [value('x', ['batch', 3, 8, 8])],
      outputs: [value('y', ['batch', 4])],
      initializers: [floatTensor('w', [4, 3, 3, 3])],
      nodes: [node('Conv', ['x', 'w'], ['c'], 'conv1'), node('Shape', ['c'], ['s'], 'shape0'), node('Relu', ['c'], ['y'], 'relu'), node('FusedThing', ['y'], ['z'], 'custom', {}, 'com.example')],
    });
    const { code, problems } = problemsOf(bytes);
    expect(code).toBe('UNSUPPORTED_MODEL');
    expect(problems).toEqual(['unsupported operator Conv (node conv1)', 'unsupported operator Shape (node shape0)', 'unsupported operator com.example.FusedThing (node custom)']);
  });

  it('groups many nodes of one unsupported operator into one line, and lists at most 12 problems', () => {
    const convs = Array.from({ length: 40 }, (_, i) => node('Conv', [i === 0 ? 'x' : `c${i - 1}`, 'w'], [`c${i}`], `conv${i}`));
    const odd = Array.from({ length: 20 }, (_, i) => node(`Op${i}`, ['c39'], [`o${i}`], `odd${i}`));
    const bytes = model({ inputs: [value('x', ['batch', 3])], outputs: [value('c39', ['batch', 3])], initializers: [floatTensor('w', [3, 3])], nodes: [...convs, ...odd] });
    const { code, problems } = problemsOf(bytes);
    expect(code).toBe('UNSUPPORTED_MODEL');
    expect(problems[0]).toBe('unsupported operator Conv in 40 nodes (conv0, conv1, conv2, …)');
    expect(problems).toHaveLength(13);
    expect(problems.at(-1)).toBe('and 9 more problems');
    expect(problems.join('; ').length).toBeLessThan(1000);
  });

  it('refuses a model over MAX_MODEL_NODES before reading its nodes', () => {
    const { code, problems } = problemsOf(matmulChainModel(30), { ...MODEL_LIMITS, maxNodes: 29 });
    expect(code).toBe('MODEL_TOO_LARGE');
    expect(problems).toEqual(['the model has 30 nodes; the network takes models of up to 29 nodes (MAX_MODEL_NODES)']);
    expect(problemsOf(matmulChainModel(30), { ...MODEL_LIMITS, maxNodes: 30 }).code).toBe('OK');
  });

  it('checks every initializer\'s dimensions and size before allocating it, and names the tensor', () => {
    const cases: [onnxProto.onnx.ITensorProto, string, RegExp][] = [
      [rawTensor('w', [1e6, 1e6], { external: 'w.bin' }), 'MODEL_TOO_LARGE', /tensor "w" \[1000000, 1000000\] holds 1,000,000,000,000 values; .* \(MAX_TENSOR_ELEMENTS\)/],
      [rawTensor('w', [-1, 3], { external: 'w.bin' }), 'INVALID_MODEL', /tensor "w" has dimensions \[-1, 3\]; each must be a whole number ≥ 0/],
      [rawTensor('w', [1e6, 1e6], { dataType: DataType.DOUBLE }), 'MODEL_TOO_LARGE', /tensor "w" \[1000000, 1000000\] holds/],
      [rawTensor('w', [2 ** 60, 2 ** 60]), 'INVALID_MODEL', /tensor "w" has dimensions/],
      [rawTensor('w', [4, 4], { external: 'w.bin' }), 'UNSUPPORTED_MODEL', /tensor "w" keeps its data in an external file/],
      [rawTensor('w', [4, 4], { dataType: DataType.DOUBLE, raw: new Uint8Array(128) }), 'UNSUPPORTED_MODEL', /tensor "w" is DOUBLE; only float32/],
      [rawTensor('w', [4, 4], { raw: new Uint8Array(10) }), 'INVALID_MODEL', /tensor "w" has 10 bytes for shape \[4, 4\], which needs 16 float values/],
      [rawTensor('w', [4, 4], { raw: new Uint8Array(64 * 4) }), 'INVALID_MODEL', /has 256 bytes for shape \[4, 4\]/],
      [rawTensor('w', [1, 2, 3, 4, 5, 6, 7, 8, 9]), 'MODEL_TOO_LARGE', /tensor "w" has 9 dimensions/],
    ];
    for (const [w, code, message] of cases) {
      const got = problemsOf(withWeight(w));
      expect(got.code, got.problems.join('; ')).toBe(code);
      expect(got.problems.join('; ')).toMatch(message);
    }
  });

  it('refuses graphs wired against the standard: values read before they exist, cycles, values produced twice, missing outputs', () => {
    const x = value('x', ['batch', 4]);
    const y = value('y', ['batch', 4]);
    const w = floatTensor('w', [4, 4]);
    const cases: [onnxProto.onnx.INodeProto[], onnxProto.onnx.IValueInfoProto[], RegExp][] = [
      [[node('Relu', ['ghost'], ['y'], 'dangling')], [y], /node dangling \(Relu\) reads "ghost" before any input, initializer or earlier node produces it/],
      [[node('Relu', ['h'], ['y'], 'second'), node('Relu', ['x'], ['h'], 'first')], [y], /node second \(Relu\) reads "h" before/],
      [[node('Add', ['x', 'b'], ['a'], 'loop_a'), node('Relu', ['a'], ['b'], 'loop_b'), node('Relu', ['b'], ['y'], 'out')], [y], /node loop_a \(Add\) reads "b" before/],
      [[node('Relu', ['x'], ['y'], 'one'), node('Sigmoid', ['x'], ['y'], 'two')], [y], /node two \(Sigmoid\) writes "y", which is already produced elsewhere/],
      [[node('Relu', ['x'], ['w'], 'shadow'), node('MatMul', ['x', 'w'], ['y'], 'mm')], [y], /node shadow \(Relu\) writes "w", which is already produced/],
      [[node('Relu', ['x'], ['h'], 'r')], [y], /output "y" is not produced by any node/],
      [[node('Relu', ['x'], ['y'], 'r')], [y, y], /output "y" is declared twice/],
      [[node('MatMul', ['x'], ['y'], 'half')], [y], /node half \(MatMul\) has 1 inputs; MatMul takes 2/],
      [[node('Relu', ['x'], [''], 'mute'), node('Relu', ['x'], ['y'], 'r')], [y], /node mute \(Relu\) has no output/],
    ];
    for (const [nodes, outputs, message] of cases) {
      const got = problemsOf(model({ inputs: [x], outputs, initializers: [w], nodes }));
      expect(got.code, got.problems.join('; ')).toBe('INVALID_MODEL');
      expect(got.problems.join('; ')).toMatch(message);
    }
  });

  it('reads attributes without a prototype, refuses one given twice, and cuts long names in messages', () => {
    const relu = node('Relu', ['x'], ['y'], 'r');
    relu.attribute = [attribute('__proto__', [1, 0]), attribute('constructor', 3)];
    const g = loadModel(model({ inputs: [value('x', ['batch', 4])], outputs: [value('y', ['batch', 4])], initializers: [], nodes: [relu] }));
    expect(Object.getPrototypeOf(g.nodes[0]!.attributes)).toBeNull();
    expect(g.nodes[0]!.attributes['__proto__']).toEqual([1, 0]);
    const t = node('Transpose', ['x'], ['y'], 'n'.repeat(5000), { perm: [1, 0] });
    t.attribute!.push(attribute('perm', [0, 1]));
    const { code, problems } = problemsOf(model({ inputs: [value('x', ['batch', 4])], outputs: [value('y', ['batch', 4])], initializers: [], nodes: [t] }));
    expect(code).toBe('INVALID_MODEL');
    expect(problems[0]).toMatch(/^node n{63}… \(Transpose\): attribute "perm" is given twice$/);
  });

  it('refuses negative or non-integer declared input dimensions', () => {
    const bytes = model({ inputs: [value('x', ['batch', -3])], outputs: [value('y', ['batch', 4])], initializers: [], nodes: [node('Relu', ['x'], ['y'], 'r')] });
    expect(problemsOf(bytes)).toEqual({ code: 'INVALID_MODEL', problems: ['input "x" has dimension 1 = -3; each must be a whole number ≥ 0'] });
  });

  it('refuses non-float32 inputs and dynamic dimensions other than the batch', () => {
    const bytes = model({
      inputs: [value('ids', ['batch', 'seq'], 7 /* INT64 */), value('x', ['batch', 'features'])],
      outputs: [value('y', ['batch', 4])],
      initializers: [],
      nodes: [node('Identity', ['x'], ['y'], 'id')],
    });
    expect(problemsOf(bytes).problems).toEqual([
      'input "ids" is INT64; only float32 is supported',
      'input "ids" has a dynamic dimension 1 (seq); only the first (batch) dimension may vary',
      'input "x" has a dynamic dimension 1 (features); only the first (batch) dimension may vary',
    ]);
  });

  it('reports a shape that cannot work, with its node', () => {
    const bytes = model({
      inputs: [value('x', ['batch', 16])],
      outputs: [value('y', ['batch', 4])],
      initializers: [floatTensor('w', [17, 4])],
      nodes: [node('MatMul', ['x', 'w'], ['y'], 'mm')],
    });
    expect(problemsOf(bytes).problems).toEqual(['node mm (MatMul): inner sizes differ, [2, 16] · [17, 4]']);
  });

  it('says plainly when the file is not ONNX', () => {
    expect(() => parseModel(new TextEncoder().encode('PK\u0003\u0004 definitely a zip, not a model'))).toThrow(ModelError);
    try {
      parseModel(new Uint8Array([0x08, 0x07]));
    } catch (err) {
      expect((err as ModelError).code).toBe('NOT_ONNX');
      expect((err as ModelError).message).toMatch(/no graph|not an ONNX protobuf/);
    }
  });
});
