/** The CPU reference runs real ONNX models like onnxruntime-node does. */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../server/inference/onnx-model';
import { runReference } from '../../server/inference/reference-executor';
import { encoderBlockModel, mlpModel, remainingOpsModel, twoOutputModel } from '../support/onnx-builder';
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
    const bytes = remainingOpsModel();
    await expectMatchesOnnxRuntime(bytes, 'x', [7, 4, 6]);
  });

  it('Gemm with transB, alpha and beta; Softmax and ReduceMean along a middle axis; two outputs', async () => {
    await expectMatchesOnnxRuntime(twoOutputModel(), 'x', [4, 12]);
  });
});
