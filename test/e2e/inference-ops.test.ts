/**
 * Each inference kernel (shaders/inference-*.wgsl) in real Chromium against
 * the CPU reference executor (itself checked against onnxruntime-node), on
 * awkward shapes: odd sizes, size-1 dimensions, broadcasting, rows longer
 * than a workgroup, large logits.
 */
import { describe, expect, it } from 'vitest';
import type { OpRequest } from '../../client/bench/page';
import { loadModel } from '../../server/inference/onnx-model';
import { runReference } from '../../server/inference/reference-executor';
import { useBenchPage } from '../support/bench-page';
import { randomMatrix } from '../support/matrices';
import { floatTensor, model, node, value } from '../support/onnx-builder';

const bench = useBenchPage();

const size = (d: number[]) => d.reduce((a, b) => a * b, 1);
let seed = 1;
const tensor = (dims: number[], scale = 1, positive = false) => {
  const data = randomMatrix(1, size(dims), seed++).map((v) => (positive ? Math.abs(v) + 0.01 : v) * scale);
  return { dims, data };
};

/** The reference: the same computation as a small ONNX graph run by the CPU executor. */
function reference(nodes: ReturnType<typeof node>[], x: { dims: number[]; data: Float32Array }, weights: Record<string, { dims: number[]; data: Float32Array }>, outDims: (number | string)[], opset = 20) {
  const bytes = model({ inputs: [value('x', x.dims)], outputs: [value('y', outDims)], initializers: Object.entries(weights).map(([n, t]) => floatTensor(n, t.dims, t.data)), nodes }, opset);
  return runReference(loadModel(bytes), { x })['y']!;
}

async function gpu(req: OpRequest) {
  return bench.page.evaluate((r) => window.tesseraBench!.op(r), req);
}

function expectClose(got: { dims: number[]; data: number[] }, want: { dims: number[]; data: Float32Array }) {
  expect(got.dims).toEqual(want.dims);
  const scale = Math.max(1, ...Array.from(want.data, Math.abs));
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - want.data[i]!) / scale);
  expect(worst).toBeLessThan(2e-6 * Math.max(1, Math.sqrt(want.data.length)));
}

const wire = (t: { dims: number[]; data: Float32Array }) => ({ dims: t.dims, data: Array.from(t.data) });

describe('inference kernels in Chromium vs the CPU reference', () => {
  it.each(['Relu', 'Sigmoid', 'Tanh', 'Sqrt', 'Erf', 'Gelu'] as const)('%s on [3, 5, 7] and [1]', async (op) => {
    for (const dims of [[3, 5, 7], [1]]) {
      const x = tensor(dims, 4, op === 'Sqrt');
      expectClose(await gpu({ op, inputs: [wire(x)] }), reference([node(op, ['x'], ['y'], 'n')], x, {}, dims));
    }
  });

  it.each([
    ['Add', [2, 3, 4], [4]],
    ['Sub', [3, 1], [1, 5]],
    ['Mul', [2, 1, 3], [4, 1]],
    ['Div', [5, 2], [1]],
    ['Pow', [3, 4], [4]],
  ] as const)('%s broadcasting %j with %j', async (op, ad, bd) => {
    const a = tensor([...ad], 2, op === 'Pow');
    const b = tensor([...bd], op === 'Pow' ? 1.5 : 2, op === 'Div');
    const out = ad.length >= bd.length ? [...ad] : [...bd];
    const want = reference([node(op, ['x', 'w'], ['y'], 'n')], a, { w: b }, out.map(() => 'd'));
    expectClose(await gpu({ op, inputs: [wire(a), wire(b)] }), want);
  });

  it('Softmax over rows shorter and longer than a workgroup, and past the one-invocation-per-row kernel, stable with logits in the hundreds', async () => {
    for (const [dims, scale] of [[[3, 7], 1], [[2, 3, 130], 1], [[4, 65], 300], [[3, 301], 50]] as const) {
      const x = tensor([...dims], scale);
      expectClose(await gpu({ op: 'Softmax', inputs: [wire(x)] }), reference([node('Softmax', ['x'], ['y'], 'n', { axis: -1 })], x, {}, [...dims]));
    }
  });

  it('LayerNormalization with scale and bias over odd row lengths, short (a row per invocation) and long (a workgroup per row)', async () => {
    for (const dims of [[2, 5, 67], [4, 1], [3, 299]]) {
      const x = tensor(dims, 3);
      const inner = dims[dims.length - 1]!;
      const s = tensor([inner]);
      const b = tensor([inner]);
      const want = reference([node('LayerNormalization', ['x', 's', 'b'], ['y'], 'n', { axis: -1, epsilon: 1e-5 })], x, { s, b }, dims, 17);
      expectClose(await gpu({ op: 'LayerNormalization', inputs: [wire(x), wire(s), wire(b)], attrs: { axis: -1, epsilon: 1e-5 } }), want);
    }
  });

  it('Transpose of 4-D and 3-D tensors', async () => {
    for (const [dims, perm] of [[[2, 3, 4, 5], [0, 2, 3, 1]], [[7, 1, 3], [2, 0, 1]]] as const) {
      const x = tensor([...dims]);
      const out = perm.map((p) => dims[p]!);
      expectClose(await gpu({ op: 'Transpose', inputs: [wire(x)], attrs: { perm: [...perm] } }), reference([node('Transpose', ['x'], ['y'], 'n', { perm: [...perm] })], x, {}, out));
    }
  });

  it('MatMul with fused bias and activation, batched and broadcast weights, any size', async () => {
    const cases = [
      { a: [3, 17, 33], b: [33, 9], bias: true, act: 'relu' as const },
      { a: [2, 5, 7], b: [2, 7, 3], bias: false, act: 'none' as const },
      { a: [4, 10], b: [10, 37], bias: true, act: 'gelu' as const },
      { a: [1, 1], b: [1, 1], bias: false, act: 'none' as const },
      // K and N multiples of 4: the register-blocked vec4 kernel, with M not a multiple of its 64-row block.
      { a: [70, 12], b: [12, 136], bias: true, act: 'gelu' as const },
      { a: [3, 9, 8], b: [3, 8, 4], bias: false, act: 'relu' as const },
    ];
    for (const c of cases) {
      const x = tensor(c.a);
      const w = tensor(c.b);
      const n = c.b[c.b.length - 1]!;
      const bias = c.bias ? tensor([n]) : undefined;
      const nodes = [node('MatMul', ['x', 'w'], [bias || c.act !== 'none' ? 'mm' : 'y'], 'mm')];
      if (bias) nodes.push(node('Add', ['mm', 'bias'], [c.act !== 'none' ? 'biased' : 'y'], 'add'));
      if (c.act !== 'none') nodes.push(node(c.act === 'relu' ? 'Relu' : 'Gelu', [bias ? 'biased' : 'mm'], ['y'], 'act'));
      const out = [...c.a.slice(0, -1), n];
      const want = reference(nodes, x, { w, ...(bias ? { bias } : {}) }, out);
      expectClose(await gpu({ op: 'MatMul', inputs: [wire(x), wire(w)], attrs: { ...(bias ? { bias: Array.from(bias.data) } : {}), activation: c.act } }), want);
    }
  });
});
