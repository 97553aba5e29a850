/**
 * Builds a small ONNX model and an input batch, as any framework's exporter
 * would: x [batch, 32] → Linear(32, 64) → GELU → Linear(64, 10) → Softmax.
 * Usage: npx tsx examples/inference/make-model.ts <dir> [batch]
 * Writes <dir>/model.onnx and <dir>/x.npy (float32).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { encodeNpy } from '../../shared/npy';

const { onnx } = onnxProto;
const [dir = 'inference-example', batchText = '100'] = process.argv.slice(2);
const batch = Number(batchText);

let seed = 7;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
const tensor = (name: string, dims: number[], scale: number): onnxProto.onnx.ITensorProto => {
  const data = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => random() * scale);
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(data.buffer) };
};
const io = (name: string, dims: (number | string)[]): onnxProto.onnx.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
});
const T = onnx.AttributeProto.AttributeType;

const model = onnx.ModelProto.encode({
  irVersion: 8,
  producerName: 'tessera-example',
  opsetImport: [{ domain: '', version: 20 }],
  graph: {
    name: 'classifier',
    input: [io('x', ['batch', 32])],
    output: [io('probs', ['batch', 10])],
    // torch.nn.Linear stores W as [out, in] and exports Gemm with transB=1.
    initializer: [tensor('w1', [64, 32], 0.2), tensor('b1', [64], 0.1), tensor('w2', [10, 64], 0.15), tensor('b2', [10], 0.1)],
    node: [
      { opType: 'Gemm', input: ['x', 'w1', 'b1'], output: ['h'], name: 'fc1', attribute: [{ name: 'transB', type: T.INT, i: 1 }] },
      { opType: 'Gelu', input: ['h'], output: ['g'], name: 'gelu' },
      { opType: 'Gemm', input: ['g', 'w2', 'b2'], output: ['logits'], name: 'fc2', attribute: [{ name: 'transB', type: T.INT, i: 1 }] },
      { opType: 'Softmax', input: ['logits'], output: ['probs'], name: 'softmax', attribute: [{ name: 'axis', type: T.INT, i: -1 }] },
    ],
  },
}).finish();

const x = Float32Array.from({ length: batch * 32 }, () => random() * 2);
await mkdir(dir, { recursive: true });
await writeFile(join(dir, 'model.onnx'), model);
await writeFile(join(dir, 'x.npy'), encodeNpy({ shape: [batch, 32], data: x }));
console.log(`wrote ${join(dir, 'model.onnx')} (${model.byteLength} bytes) and ${join(dir, 'x.npy')} (${batch} samples)`);
