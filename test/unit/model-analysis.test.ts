/** The upload analysis of inference models: plain data in and out, refusals as values, limits, shard sizing, samples kept apart. */
import { describe, expect, it } from 'vitest';
import { analyzeModel, type ModelAnalysisInput } from '../../server/jobs/model-analysis';
import { MAX_RESULT_BYTES } from '../../shared/protocol';
import { encoderBlockModel, floatTensor, int64Tensor, mlpModel, model, node, outerProductModel, value } from '../support/onnx-builder';

const sizing = { gflops: 5, shardSeconds: 2, targetTiles: 4, maxDim: 65536, maxElements: 2 ** 28 };
const analyze = (bytes: Uint8Array, files: ModelAnalysisInput['files'], extra: Partial<ModelAnalysisInput> = {}) => analyzeModel({ model: bytes, files, ...sizing, ...extra });

/** x [batch, ...dims] → the given nodes → y, for refusals that name one node. */
const oneInput = (dims: number[], nodes: ReturnType<typeof node>[], initializers: ReturnType<typeof floatTensor>[] = []) =>
  model({ inputs: [value('x', ['batch', ...dims])], outputs: [value('y', ['batch'])], initializers, nodes });

describe('model analysis', () => {
  it('takes and gives plain data: the answer survives structuredClone unchanged, for the worker pool', () => {
    const ok = analyze(mlpModel(), [{ field: 'x', shape: [37, 16] }]);
    expect(ok).toMatchObject({ ok: true, inputFields: ['x'], batch: 37, width: 4, samplesPerShard: 10, model: { nodes: 5 } });
    expect(structuredClone(ok)).toEqual(ok);
    const refused = analyze(oneInput([4], [node('Transpose', ['x'], ['y'], 't', { perm: [0, 7] })]), [{ field: 'x', shape: [3, 4] }]);
    expect(refused).toEqual({
      ok: false,
      status: 400,
      code: 'INVALID_MODEL',
      message: "the model is not valid ONNX (check the export with onnx.checker.check_model): node t (Transpose): perm [0, 7] is not a permutation of the input's 2 axes",
    });
    expect(structuredClone(refused)).toEqual(refused);
  });

  it('matches files to inputs as before: by name, or "input" for a one-input model, naming what is missing or extra', () => {
    expect(analyze(mlpModel(), [{ field: 'input', shape: [5, 16] }])).toMatchObject({ ok: true, inputFields: ['input'] });
    expect(analyze(mlpModel(), [{ field: 'input', shape: [5, 16] }, { field: 'x', shape: [5, 16] }])).toMatchObject({ ok: false, code: 'DUPLICATE_FILE' });
    expect(analyze(mlpModel(), [])).toMatchObject({ ok: false, code: 'MISSING_FILE', message: expect.stringMatching(/missing file "x"/) });
    expect(analyze(mlpModel(), [{ field: 'x', shape: [5, 16] }, { field: 'constructor', shape: [5, 16] }])).toMatchObject({ ok: false, code: 'UNEXPECTED_FILE' });
    expect(analyze(mlpModel(), [{ field: 'x', shape: [70000, 16] }])).toMatchObject({ ok: false, status: 413, code: 'TOO_LARGE' });
  });

  it('cuts shards no larger than one result message carries', () => {
    // 4 MiB of outputs per sample: at most 4 samples in a 16 MiB result, whatever the spread asks.
    const r = analyze(outerProductModel(1024), [{ field: 'x', shape: [40, 1024, 1] }], { targetTiles: 1 });
    expect(r).toMatchObject({ ok: true, samplesPerShard: 4 });
    if (r.ok) expect(r.samplesPerShard * r.width * 4).toBeLessThanOrEqual(MAX_RESULT_BYTES);
  });

  it('sizes shards by time and memory with finite whole numbers, whatever the speed it is told', () => {
    const slow = analyze(encoderBlockModel(), [{ field: 'x', shape: [64, 8, 16] }], { gflops: 1e-6, targetTiles: 1 });
    expect(slow).toMatchObject({ ok: true, samplesPerShard: 1 });
    for (const gflops of [NaN, Infinity, -1, 0]) {
      const r = analyze(encoderBlockModel(), [{ field: 'x', shape: [64, 8, 16] }], { gflops, targetTiles: 1 });
      expect(r.ok && Number.isSafeInteger(r.samplesPerShard) && r.samplesPerShard >= 1 && r.samplesPerShard <= 64).toBe(true);
    }
    // 8 MiB of temporaries per sample (x·c, then Relu): 512 MiB of shard memory holds a few dozen samples, not 1,000.
    const wide = model({
      inputs: [value('x', ['batch', 1024, 1])],
      outputs: [value('y', ['batch', 1])],
      initializers: [floatTensor('c', [1, 2048]), int64Tensor('axes', [1, 2])],
      nodes: [node('Mul', ['x', 'c'], ['p'], 'outer'), node('Relu', ['p'], ['r'], 'relu'), node('ReduceMean', ['r'], ['m'], 'mean', { axes: [1, 2], keepdims: 0 }), node('Unsqueeze', ['m', 'axes'], ['u'], 'u'), node('Flatten', ['u'], ['y'], 'f')],
    });
    const r = analyze(wide, [{ field: 'x', shape: [1000, 1024, 1] }], { targetTiles: 1, gflops: 1e6 });
    expect(r.ok, r.ok ? '' : r.message).toBe(true);
    if (r.ok) expect(r.samplesPerShard).toBeGreaterThan(8);
    if (r.ok) expect(r.samplesPerShard).toBeLessThan(64);
  });

  it('counts the values a model moves as work: 100 transposes of a million values are over MAX_FLOPS_PER_SAMPLE', () => {
    const nodes = Array.from({ length: 100 }, (_, i) => node('Transpose', [i === 0 ? 'x' : `t${i - 1}`], [i === 99 ? 'y' : `t${i}`], `t${i}`, { perm: [0, 2, 1] }));
    const r = analyze(model({ inputs: [value('x', ['batch', 1000, 1000])], outputs: [value('y', ['batch', 1000, 1000])], initializers: [], nodes }), [{ field: 'x', shape: [1, 1000, 1000] }]);
    expect(r).toMatchObject({ ok: false, code: 'MODEL_TOO_LARGE', message: expect.stringMatching(/one sample takes 1\.6\d GFLOP of work; the network takes up to 1 GFLOP per sample \(MAX_FLOPS_PER_SAMPLE\)/) });
  });

  it('names every limit a model is over in one refusal', () => {
    // 4500² outputs per sample, written four times: over the output limit and the work limit at once.
    const bytes = model({
      inputs: [value('x', ['batch', 4500, 1])],
      outputs: [value('y', ['batch', 4500, 4500])],
      initializers: [floatTensor('c', [1, 4500])],
      nodes: [node('Mul', ['x', 'c'], ['p'], 'outer'), node('Relu', ['p'], ['r'], 'relu'), node('Sigmoid', ['r'], ['s'], 'sigmoid'), node('Tanh', ['s'], ['y'], 'tanh')],
    });
    const r = analyze(bytes, [{ field: 'x', shape: [1, 4500, 1] }]);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.message).toMatch(/MAX_FLOPS_PER_SAMPLE/);
      expect(r.message).toMatch(/MAX_OUTPUT_BYTES_PER_SAMPLE/);
    }
  });

  it('refuses models that mix the samples of a batch, naming the node: shards would not match their single-sample checks', () => {
    const w = floatTensor('w', [4, 4]);
    const cases: [ReturnType<typeof node>[], RegExp][] = [
      [[node('Softmax', ['x'], ['y'], 'over_batch', { axis: 0 })], /node over_batch \(Softmax\) mixes the samples of a batch \(a softmax over the batch axis\)/],
      [[node('LayerNormalization', ['x', 'x'], ['y'], 'ln_all', { axis: 0 })], /node ln_all \(LayerNormalization\) mixes the samples/],
      [[node('Transpose', ['x'], ['xt'], 'flip', { perm: [1, 0] }), node('MatMul', ['xt', 'x'], ['g2'], 'gram'), node('MatMul', ['x', 'g2'], ['y'], 'mm')], /node flip \(Transpose\) moves the batch off the first axis/],
      [[node('ReduceMean', ['x'], ['m'], 'batch_mean', { axes: [0], keepdims: 1 }), node('Add', ['x', 'm'], ['y'], 'add')], /node batch_mean \(ReduceMean\) moves the batch off the first axis/],
      [[node('Gemm', ['x', 'x'], ['g2'], 'gemm', { transA: 1 }), node('MatMul', ['x', 'g2'], ['y'], 'mm')], /node gemm \(Gemm\) mixes the samples/],
    ];
    for (const [nodes, message] of cases) {
      const r = analyze(oneInput([4], nodes, [w]), [{ field: 'x', shape: [4, 4] }]);
      expect(r.ok ? 'accepted' : r.message).toMatch(message);
      expect(r).toMatchObject({ ok: false, code: 'UNSUPPORTED_MODEL' });
    }
    expect(analyze(encoderBlockModel(), [{ field: 'x', shape: [3, 8, 16] }]).ok).toBe(true);
  });
});
