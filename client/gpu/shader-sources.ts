/** The matmul family's WGSL, bundled into the page by Vite (the agent reads the same files from disk). */
import naive from '../../shaders/matmul-naive.wgsl?raw';
import registerVec4 from '../../shaders/matmul-register-vec4.wgsl?raw';
import subgroup from '../../shaders/matmul-subgroup.wgsl?raw';
import tiledVec4 from '../../shaders/matmul-tiled-vec4.wgsl?raw';
import tiled from '../../shaders/matmul-tiled.wgsl?raw';
import type { ShaderSources } from './matmul-kernel';

export const SHADER_SOURCES: ShaderSources = {
  naive,
  tiled,
  'tiled-vec4': tiledVec4,
  'register-vec4': registerVec4,
  subgroup,
};
