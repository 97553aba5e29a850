/** Models and matrices whose verification is heavy or whose exact answer overflows, with answers a simulated contributor gets without computing. */
import { loadModel } from '../../server/inference/onnx-model';
import { encodeModelPackage } from '../../shared/model-package';
import { floatTensor, model, node, value } from './onnx-builder';

/**
 * `count` MatMuls in a row on one `width`×`width` identity weight: the
 * coordinator's recompute costs 2·count·width² FLOPs per sample, yet the
 * output is the input, exactly (every sum is x·1 plus zeros), so an honest
 * contributor can answer at no cost.
 */
export function identityChainModel(count: number, width: number): Uint8Array {
  const eye = new Float32Array(width * width);
  for (let i = 0; i < width; i++) eye[i * width + i] = 1;
  const nodes = Array.from({ length: count }, (_, i) => node('MatMul', [i === 0 ? 'x' : `h${i - 1}`, 'w'], [i === count - 1 ? 'y' : `h${i}`], `mm${i}`));
  return model({ inputs: [value('x', ['batch', width])], outputs: [value('y', ['batch', width])], initializers: [floatTensor('w', [width, width], eye)], nodes });
}

/** x [batch, 4] → MatMul by a weight whose first column is 3·10³⁸ → y [batch, 4]: y[:, 0] overflows float32 wherever Σx > 1.2. */
export function overflowingModel(): Uint8Array {
  const w = new Float32Array(16).fill(1);
  for (let i = 0; i < 4; i++) w[i * 4] = 3e38;
  return model({ inputs: [value('x', ['batch', 4])], outputs: [value('y', ['batch', 4])], initializers: [floatTensor('w', [4, 4], w)], nodes: [node('MatMul', ['x', 'w'], ['y'], 'mm')] });
}

/** The package the coordinator keeps for a model (what its verification threads decode). */
export const modelPackage = (onnx: Uint8Array): Uint8Array => encodeModelPackage(loadModel(onnx));
