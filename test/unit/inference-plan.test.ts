/** The model package and the inference plan, on the CPU: what contributors receive and what their GPU will launch. */
import { describe, expect, it } from 'vitest';
import { inferenceMismatch, interleaveOutputs, splitShardInputs } from '../../shared/inference-job';
import { planInference } from '../../shared/inference-plan';
import { ModelError } from '../../shared/model-graph';
import { decodeModelPackage, encodeModelPackage, ModelPackageError } from '../../shared/model-package';
import { loadModel } from '../../server/inference/onnx-model';
import { runReference } from '../../server/inference/reference-executor';
import { encoderBlockModel, floatTensor, int64Tensor, matmulChainModel, mlpModel, model, node, remainingOpsModel, twoOutputModel, value } from '../support/onnx-builder';
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

/** One node on x [batch, ...dims] (plus the given initializers), planned for 2 samples; the error it gives, or 'OK'. */
function planOne(dims: number[], n: ReturnType<typeof node>, initializers: ReturnType<typeof floatTensor>[] = [], opset = 17): { code: string; message: string } {
  const bytes = model({ inputs: [value('x', ['batch', ...dims])], outputs: [value(n.output![0]!, ['batch'])], initializers, nodes: [n] }, opset);
  try {
    const plan = planInference(loadModel(bytes), 2);
    expect(Number.isFinite(plan.flops) && Number.isFinite(plan.totalBytes)).toBe(true);
    return { code: 'OK', message: '' };
  } catch (err) {
    // Never a RangeError or a NaN downstream: every refusal is a ModelError naming the node.
    expect(err).toBeInstanceOf(ModelError);
    return { code: (err as ModelError).code, message: (err as ModelError).message };
  }
}

describe('attributes and shapes that feed arithmetic', () => {
  it('refuses a perm that is not a permutation of the input\'s axes (the 149-byte hang), naming the node', () => {
    expect(planOne([4], node('Transpose', ['x'], ['y'], 't', { perm: [0, 7] }))).toEqual({
      code: 'INVALID_MODEL',
      message: "node t (Transpose): perm [0, 7] is not a permutation of the input's 2 axes",
    });
    for (const perm of [[0, 0], [1], [0, 1, 2], [0, -1], [0, 2 ** 40]]) expect(planOne([4], node('Transpose', ['x'], ['y'], 't', { perm })).code).toBe('INVALID_MODEL');
    expect(planOne([4, 5], node('Transpose', ['x'], ['y'], 't', { perm: [0, 2, 1] })).code).toBe('OK');
  });

  it('refuses axes out of range or named twice, for every operator that takes them', () => {
    const cases: [number[], ReturnType<typeof node>, RegExp][] = [
      [[4], node('Softmax', ['x'], ['y'], 's', { axis: 2 }), /node s \(Softmax\): axis 2 is out of range for rank 2 \(allowed -2..1\)/],
      [[4], node('Softmax', ['x'], ['y'], 's', { axis: -3 }), /axis -3 is out of range/],
      [[4], node('LayerNormalization', ['x', 'g'], ['y'], 'ln', { axis: 5 }), /node ln \(LayerNormalization\): axis 5 is out of range/],
      [[4], node('Flatten', ['x'], ['y'], 'f', { axis: 3 }), /node f \(Flatten\): axis 3 is out of range for rank 2 \(allowed -2..2\)/],
      [[4], node('ReduceMean', ['x'], ['y'], 'm', { axes: [1, 9] }), /node m \(ReduceMean\): axes 9 is out of range/],
      [[4], node('ReduceMean', ['x'], ['y'], 'm', { axes: [1, -1] }), /axes \[1, -1\] name an axis twice/],
      [[4], node('Unsqueeze', ['x', 'ax'], ['y'], 'u'), /node u \(Unsqueeze\): axes 7 is out of range for rank 3/],
    ];
    for (const [dims, n, message] of cases) {
      const got = planOne(dims, n, [floatTensor('g', [4]), int64Tensor('ax', [7])]);
      expect(got.code, got.message).toBe('INVALID_MODEL');
      expect(got.message).toMatch(message);
    }
  });

  it('refuses Reshape targets that are not consistent, and sizes that would overflow, instead of computing NaN', () => {
    const reshape = (target: number[], dims = [4, 6]) => planOne(dims, node('Reshape', ['x', 'shape'], ['y'], 'r'), [int64Tensor('shape', target)]);
    expect(reshape([0, -1, -1]).message).toMatch(/node r \(Reshape\): the target shape \[0, -1, -1\] has more than one -1/);
    expect(reshape([0, 5, -1]).message).toMatch(/cannot reshape \[2, 4, 6\] to \[0, 5, -1\]/);
    expect(reshape([0, 0, 0, 0]).message).toMatch(/copies dimension 3 \(a 0\), which \[2, 4, 6\] does not have/);
    expect(reshape([0, -2, 12]).code).toBe('INVALID_MODEL');
    expect(reshape([0, 2 ** 31, 2 ** 31, -1]).code).toBe('INVALID_MODEL');
    expect(reshape([0, 24, 0, 0, 0, 0, 0, 0, 0]).message).toMatch(/holds 9 values; a shape or axes list has at most 8/);
    expect(reshape([0, 3, -1])).toEqual({ code: 'OK', message: '' });
    // Values past 2^40 elements (here 2^61, from two declared inputs broadcast) are refused by the shape, before any plan arithmetic.
    const outer = model({
      inputs: [value('x', ['batch', 2 ** 30, 1]), value('z', ['batch', 1, 2 ** 30])],
      outputs: [value('y', ['batch', 2 ** 30, 2 ** 30])],
      initializers: [],
      nodes: [node('Mul', ['x', 'z'], ['y'], 'outer')],
    });
    expect(() => planInference(loadModel(outer), 2)).toThrow(/node outer \(Mul\): its output \[2, 1073741824, 1073741824\] would hold 2.31e\+18 values/);
    const unsq = planOne([4], node('Unsqueeze', ['x', 'ax'], ['y'], 'u'), [int64Tensor('ax', [1, 2, 3, 4, 5, 6, 7])]);
    expect(unsq.message).toMatch(/rank 9, over 8/);
  });

  it('refuses a MatMul on a scalar, empty tensors, and a LayerNormalization scale that does not match', () => {
    expect(planOne([4], node('MatMul', ['x', 's'], ['y'], 'mm'), [floatTensor('s', [], Float32Array.of(2))]).message).toMatch(/node mm \(MatMul\): MatMul takes tensors of rank ≥ 1/);
    expect(planOne([4], node('Mul', ['x', 'e'], ['y'], 'mul'), [floatTensor('e', [0], new Float32Array(0))]).message).toMatch(/do not broadcast/);
    expect(planOne([1], node('Mul', ['x', 'e'], ['y'], 'mul'), [floatTensor('e', [0], new Float32Array(0))]).message).toMatch(/node mul \(Mul\): its output \[2, 0\] is empty/);
    expect(planOne([4], node('LayerNormalization', ['x', 'g'], ['y'], 'ln'), [floatTensor('g', [3])]).message).toMatch(/scale \[3\] must hold one value per normalized element \(4\)/);
  });

  it('plans linearly in the graph: 10,000 nodes in well under a second, about 4× the time of 2,500', () => {
    // The fastest of five runs: other processes on the machine only ever add time.
    const time = (graph: ReturnType<typeof loadModel>) => {
      let best = Infinity;
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        planInference(graph, 2);
        best = Math.min(best, performance.now() - t);
      }
      return best;
    };
    const small = loadModel(matmulChainModel(2_500));
    const large = loadModel(matmulChainModel(10_000));
    time(small); // warm up the JIT
    const [ts, tl] = [time(small), time(large)];
    expect(tl, `${tl.toFixed(1)} ms for 10,000 nodes`).toBeLessThan(1000);
    // Quadratic planning (a scan of the node list per node) made this ratio 16.
    expect(tl / ts, `${ts.toFixed(1)} ms for 2,500 nodes, ${tl.toFixed(1)} ms for 10,000`).toBeLessThan(8);
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
