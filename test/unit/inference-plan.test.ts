/** The model package and the inference plan, on the CPU: what contributors receive and what their GPU will launch. */
import { describe, expect, it } from 'vitest';
import { inferenceMismatch, interleaveOutputs, splitShardInputs } from '../../shared/inference-job';
import { planInference } from '../../shared/inference-plan';
import { ModelError } from '../../shared/model-graph';
import { decodeModelPackage, encodeModelPackage, ModelPackageError } from '../../shared/model-package';
import { loadModel } from '../../server/inference/onnx-model';
import { runReference } from '../../server/inference/reference-executor';
import { encoderBlockModel, floatTensor, mlpModel, model, node, remainingOpsModel, twoOutputModel, value } from '../support/onnx-builder';
import { randomMatrix } from '../support/matrices';

describe('model package', () => {
  it('round-trips a graph (initializers, int64 shapes, Constant tensors) so that it computes the same outputs', () => {
    for (const bytes of [encoderBlockModel(), remainingOpsModel(), twoOutputModel()]) {
      const graph = loadModel(bytes);
      const pkg = encodeModelPackage(graph);
      expect(encodeModelPackage(graph)).toEqual(pkg); // deterministic: its hash names the weights
      const back = decodeModelPackage(pkg);
      expect(back.nodes.map((n) => n.opType)).toEqual(graph.nodes.map((n) => n.opType));
      const v = graph.inputs[0]!;
      const dims = [3, ...(v.dims.slice(1) as number[])];
      const x = { dims, data: randomMatrix(1, dims.reduce((a, b) => a * b, 1), 9) };
      const want = runReference(graph, { [v.name]: x });
      const got = runReference(back, { [v.name]: x });
      for (const o of graph.outputs) expect(got[o.name]!.data).toEqual(want[o.name]!.data);
    }
  });

  it('refuses bytes that are not a package, or that are cut short', () => {
    const pkg = encodeModelPackage(loadModel(mlpModel()));
    expect(() => decodeModelPackage(new TextEncoder().encode('hello, world'))).toThrow(ModelPackageError);
    expect(() => decodeModelPackage(pkg.subarray(0, pkg.length - 64))).toThrow(/runs past the end/);
  });
});

describe('inference plan', () => {
  it('fuses MatMul + bias Add + Relu/Gelu into one launch and makes reshapes free', () => {
    const graph = loadModel(encoderBlockModel());
    const plan = planInference(graph, 4);
    const matmuls = plan.steps.filter((s) => s.kind === 'matmul');
    expect(matmuls).toHaveLength(8); // q, k, v, scores, context, out, ff1, ff2
    expect(matmuls.filter((s) => s.bias !== null)).toHaveLength(6); // every projection's bias Add is fused
    const reshapes = graph.nodes.filter((n) => n.opType === 'Reshape').length;
    expect(plan.steps).toHaveLength(graph.nodes.length - reshapes - 6);
    const mlp = planInference(loadModel(mlpModel()), 4);
    expect(mlp.steps).toHaveLength(3);
    expect(mlp.steps[0]).toMatchObject({ kind: 'matmul', act: 'relu', m: 4, k: 16, n: 32 });
    expect(mlp.flops).toBe(2 * 4 * 16 * 32 + 2 * 4 * 32 * 4 + 5 * 4 * 4);
  });

  it('never lets a step write the slot it reads, and keeps outputs in buffers of their own', () => {
    const plan = planInference(loadModel(encoderBlockModel()), 2);
    for (const s of plan.steps) {
      const reads = 'a' in s ? [s.a, s.b] : 'x' in s ? [s.x] : [];
      const outSlot = plan.buffers[s.out]!.slot;
      for (const r of reads) if (outSlot !== undefined) expect(plan.buffers[r]!.slot === outSlot && r !== s.out).toBe(false);
    }
    expect(plan.outputs.map((o) => plan.buffers[o.buffer]!.role)).toEqual(['output']);
  });

  it('names the node it cannot run', () => {
    const bad = model({
      inputs: [value('x', ['batch', 4]), value('w', ['batch', 4])],
      outputs: [value('y', ['batch', 'batch'])],
      initializers: [],
      nodes: [node('Gemm', ['x', 'w'], ['y'], 'scaled_gemm', { transB: 1, alpha: 0.5 })],
    });
    expect(() => planInference(loadModel(bad), 2)).toThrow(ModelError);
    expect(() => planInference(loadModel(bad), 2)).toThrow(/node scaled_gemm \(Gemm\): alpha ≠ 1 is supported when B is a constant/);
    const identityOut = model({ inputs: [value('x', ['batch', 3])], outputs: [value('y', ['batch', 3])], initializers: [floatTensor('unused', [1])], nodes: [node('Identity', ['x'], ['y'], 'id')] });
    const p = planInference(loadModel(identityOut), 2);
    expect(p.steps).toEqual([expect.objectContaining({ kind: 'unary', op: 'Identity' })]); // an input is copied into the output's own buffer
  });
});

describe('shard layouts and tolerance', () => {
  it('splits a shard input per graph input and interleaves outputs per sample', () => {
    const blob = Float32Array.from({ length: 2 * 3 + 2 * 1 }, (_, i) => i);
    const [a, b] = splitShardInputs(blob, [3, 1], 2);
    expect(Array.from(a!)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(Array.from(b!)).toEqual([6, 7]);
    expect(() => splitShardInputs(blob, [3, 2], 2)).toThrow(RangeError);
    expect(Array.from(interleaveOutputs([Float32Array.of(1, 2, 3, 4), Float32Array.of(9, 8)], [2, 1], 2))).toEqual([1, 2, 9, 3, 4, 8]);
  });

  it('agrees within the tolerance and not beyond it; NaN never agrees', () => {
    const tol = { abs: 1e-4, rel: 1e-3 };
    const want = Float32Array.of(10, -5, 0.001);
    expect(inferenceMismatch(Float32Array.of(10.001, -5.0049, 0.0019), want, tol)).toBeUndefined();
    expect(inferenceMismatch(Float32Array.of(10, -5.02, 0.001), want, tol)).toMatchObject({ index: 1 });
    expect(inferenceMismatch(Float32Array.of(10, -5, NaN), want, tol)).toMatchObject({ index: 2 });
  });
});
