/**
 * The inference kernels' WGSL, bundled by Vite. WGSL has no includes, so the
 * helpers several kernels share (erf, workgroup reductions) live in their own
 * files and are prepended here.
 */
import binary from '../../shaders/inference-binary.wgsl?raw';
import erf from '../../shaders/inference-erf.wgsl?raw';
import mean from '../../shaders/inference-mean.wgsl?raw';
import layernorm from '../../shaders/inference-layernorm.wgsl?raw';
import matmul from '../../shaders/inference-matmul.wgsl?raw';
import matmul4 from '../../shaders/inference-matmul-vec4.wgsl?raw';
import reduce from '../../shaders/inference-reduce.wgsl?raw';
import softmax from '../../shaders/inference-softmax.wgsl?raw';
import softmaxRows from '../../shaders/inference-softmax-rows.wgsl?raw';
import layernormRows from '../../shaders/inference-layernorm-rows.wgsl?raw';
import transpose from '../../shaders/inference-transpose.wgsl?raw';
import unary from '../../shaders/inference-unary.wgsl?raw';
import type { InferenceSources } from './inference-ops';

export const INFERENCE_SOURCES: InferenceSources = {
  unary: `${erf}\n${unary}`,
  binary,
  softmax: `${reduce}\n${softmax}`,
  softmaxRows,
  layernormRows,
  layernorm: `${reduce}\n${layernorm}`,
  transpose,
  mean: `${reduce}\n${mean}`,
  matmul: `${erf}\n${matmul}`,
  matmul4: `${erf}\n${matmul4}`,
};
