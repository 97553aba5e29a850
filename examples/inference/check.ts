/**
 * Checks a Tessera inference result against onnxruntime-node on this machine.
 * Usage: npx tsx examples/inference/check.ts <dir>   (reads model.onnx, x.npy, probs.npy)
 * Exits 1 when any element differs by more than 1e-4 of the output's scale.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { decodeNpy } from '../../shared/npy';

const [dir = 'inference-example'] = process.argv.slice(2);
const x = decodeNpy(new Uint8Array(await readFile(join(dir, 'x.npy'))));
const ours = decodeNpy(new Uint8Array(await readFile(join(dir, 'probs.npy'))));
const session = await ort.InferenceSession.create(join(dir, 'model.onnx'));
const want = (await session.run({ x: new ort.Tensor('float32', x.data, x.shape) })).probs!;
const ref = want.data as Float32Array;
if (ours.shape.join() !== want.dims.join()) {
  console.error(`shape (${ours.shape.join(', ')}) differs from onnxruntime's (${want.dims.join(', ')})`);
  process.exit(1);
}
const scale = Math.max(...Array.from(ref, Math.abs));
let worst = 0;
for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ours.data[i]! - ref[i]!) / scale);
console.log(`probs (${ours.shape.join(', ')}): largest difference from onnxruntime-node ${worst.toExponential(2)} of the output's scale`);
process.exit(worst <= 1e-4 ? 0 : 1);
