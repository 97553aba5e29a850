/**
 * Whole models through the contributor's ModelRunner in real Chromium
 * (WebGPU on SwiftShader): the plan (fusion, aliases, slot reuse) and the
 * kernels together, against onnxruntime-node on the same ONNX bytes.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { planInference } from '../../shared/inference-plan';
import { encodeModelPackage } from '../../shared/model-package';
import { loadModel } from '../../server/inference/onnx-model';
import { useBenchPage } from '../support/bench-page';
import { randomMatrix } from '../support/matrices';
import { encoderBlockModel, mlpModel, remainingOpsModel, twoOutputModel } from '../support/onnx-builder';

const bench = useBenchPage();

/** Max |ours − onnxruntime| relative to the output's largest magnitude, per output. */
async function compare(bytes: Uint8Array, batch: number) {
  const graph = loadModel(bytes);
  const session = await ort.InferenceSession.create(bytes);
  const feeds: Record<string, ort.Tensor> = {};
  const inputs: number[][] = [];
  graph.inputs.forEach((v, i) => {
    const dims = [batch, ...(v.dims.slice(1) as number[])];
    const data = randomMatrix(1, dims.reduce((a, b) => a * b, 1), 7 + i);
    feeds[v.name] = new ort.Tensor('float32', data, dims);
    inputs.push(Array.from(data));
  });
  const want = await session.run(feeds);
  await session.release();
  const packageBase64 = Buffer.from(encodeModelPackage(graph)).toString('base64');
  const got = await bench.page.evaluate((req) => window.tesseraBench!.model(req), { packageBase64, batch, inputs });
  return graph.outputs.map((o, i) => {
    const ref = want[o.name]!.data as Float32Array;
    const ours = got.outputs[i]!;
    expect(ours.length).toBe(ref.length);
    const scale = Math.max(...Array.from(ref, Math.abs), 1e-6);
    let worst = 0;
    for (let j = 0; j < ref.length; j++) worst = Math.max(worst, Math.abs(ours[j]! - ref[j]!) / scale);
    return worst;
  });
}

describe('models on the GPU vs onnxruntime-node', () => {
  it('an MLP: Gemm with fused bias and Relu, MatMul with fused bias, softmax', async () => {
    const plan = planInference(loadModel(mlpModel()), 5);
    expect(plan.steps.map((s) => s.kind)).toEqual(['matmul', 'matmul', 'softmax']);
    expect(plan.steps[0]).toMatchObject({ act: 'relu' });
    for (const batch of [1, 5, 33]) for (const err of await compare(mlpModel(), batch)) expect(err).toBeLessThan(1e-5);
  });

  it('a transformer encoder block: attention, layer norms, GELU via Erf, residuals; temporaries share slots', async () => {
    const plan = planInference(loadModel(encoderBlockModel()), 3);
    const temps = plan.buffers.filter((b) => b.role === 'temp').length;
    expect(plan.slotElements.length).toBeLessThan(temps / 2);
    for (const batch of [1, 6]) for (const err of await compare(encoderBlockModel(), batch)) expect(err).toBeLessThan(1e-5);
  });

  it('every other operator, and Gemm transB/alpha/beta with softmax and mean along a middle axis (two outputs)', async () => {
    for (const err of await compare(remainingOpsModel(), 7)) expect(err).toBeLessThan(1e-5);
    const errs = await compare(twoOutputModel(), 4);
    expect(errs).toHaveLength(2);
    for (const err of errs) expect(err).toBeLessThan(1e-5);
  });
});
