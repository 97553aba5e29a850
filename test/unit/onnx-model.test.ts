import { describe, expect, it } from 'vitest';
import { loadModel, ModelError, parseModel } from '../../server/inference/onnx-model';
import { inferShapes } from '../../shared/shape-inference';
import { encoderBlockModel, floatTensor, mlpModel, model, node, value } from '../support/onnx-builder';

function problemsOf(bytes: Uint8Array): { code: string; problems: string[] } {
  try {
    inferShapes(loadModel(bytes), 2);
  } catch (err) {
    if (err instanceof ModelError) return { code: err.code, problems: err.problems };
    throw err;
  }
  return { code: 'OK', problems: [] };
}

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
