/** The inference kernels' WGSL, bundled by Vite. */
import binary from '../../shaders/inference-binary.wgsl?raw';
import layernorm from '../../shaders/inference-layernorm.wgsl?raw';
import matmul from '../../shaders/inference-matmul.wgsl?raw';
import softmax from '../../shaders/inference-softmax.wgsl?raw';
import transpose from '../../shaders/inference-transpose.wgsl?raw';
import unary from '../../shaders/inference-unary.wgsl?raw';
import type { InferenceSources } from './inference-ops';

export const INFERENCE_SOURCES: InferenceSources = { unary, binary, softmax, layernorm, transpose, matmul };
