/** The CPU reference runs real ONNX models like onnxruntime-node does. */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../server/inference/onnx-model';
import { runReference } from '../../server/inference/reference-executor';
import { encoderBlockModel, floatTensor, int64Tensor, mlpModel, model, node, value } from '../support/onnx-builder';
import { randomMatrix } from '../support/matrices';

/** Every element within 1e-5 of onnxruntime's, relative to the output's largest magnitude (float32 rounding across op orders). */
async function expectMatchesOnnxRuntime(bytes: Uint8Array, inputName: string, dims: number[]) {
  const x = randomMatrix(1, dims.reduce((a, b) => a * b, 1), 42);
  const ours = runReference(loadModel(bytes), { [inputName]: { dims, data: x } });
  const session = await ort.InferenceSession.create(bytes);
  const theirs = await session.run({ [inputName]: new ort.Tensor('float32', x, dims) });
  for (const [name, t] of Object.entries(ours)) {
    const ref = theirs[name]!.data as Float32Array;
    expect(t.dims).toEqual(theirs[name]!.dims);
    const scale = Math.max(...Array.from(ref, Math.abs), 1e-6);
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(t.data[i]! - ref[i]!) / scale);
    expect(worst).toBeLessThan(1e-5);
  }
  await session.release();
}

describe('reference executor vs onnxruntime-node', () => {
  it('an MLP (Gemm, Relu, MatMul, Add, Softmax)', async () => {
    await expectMatchesOnnxRuntime(mlpModel(), 'x', [5, 16]);
  });

  it('a transformer encoder block (LayerNorm, attention with Reshape/Transpose/MatMul/Softmax, GELU via Erf)', async () => {
    await expectMatchesOnnxRuntime(encoderBlockModel(), 'x', [3, 8, 16]);
  });

  it('the remaining operators: Transpose, Sigmoid, Sub, Pow, Sqrt, Div, Mul, ReduceMean, Unsqueeze, Flatten, Tanh, Gelu, Constant, Identity', async () => {
    const bytes = model(
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
    await expectMatchesOnnxRuntime(bytes, 'x', [7, 4, 6]);
  });
});
