/**
 * The matmul kernel family: every configuration a contributor may run, by a
 * stable id. Shared by the page's worker, the agent, the benchmark runner
 * and the coordinator (which checks the ids contributors report).
 */

export const MATMUL_SHADERS = ['naive', 'tiled', 'tiled-vec4', 'register-vec4', 'subgroup'] as const;
export type MatmulShader = (typeof MATMUL_SHADERS)[number];

export interface MatmulConfig {
  id: string;
  shader: MatmulShader;
  /** One line for tables and the bench page. */
  label: string;
  /** Values for the shader's `override` constants. */
  constants: Readonly<Record<string, number>>;
  /** The block of C one workgroup computes: the dispatch is ceil(N / cols) × ceil(M / rows). */
  block: { rows: number; cols: number };
  /**
   * Which operands are vec4-packed, so the host pads the dimension to a
   * multiple of 4: 'kn' pads K and N (A and B rows), 'n' pads N only.
   */
  pad: 'none' | 'n' | 'kn';
  /** What the device must offer. */
  needs: { subgroups: boolean; workgroupStorageBytes: number; invocations: number };
  /** False for kernels kept only as benchmark baselines. */
  production: boolean;
}

export const MATMUL_CONFIGS: readonly MatmulConfig[] = [
  {
    id: 'naive-16x16',
    shader: 'naive',
    label: 'naive, 1 output per thread, 16×16 threads',
    constants: { WG_X: 16, WG_Y: 16 },
    block: { rows: 16, cols: 16 },
    pad: 'none',
    needs: { subgroups: false, workgroupStorageBytes: 0, invocations: 256 },
    production: false,
  },
  {
    id: 'tiled-64',
    shader: 'tiled',
    label: 'workgroup tiles 64×64, 4×4 scalar per thread',
    constants: { TK: 16 },
    block: { rows: 64, cols: 64 },
    pad: 'none',
    needs: { subgroups: false, workgroupStorageBytes: 8192, invocations: 256 },
    production: true,
  },
  {
    id: 'tiled-vec4-32',
    shader: 'tiled-vec4',
    label: 'workgroup tiles 32×32, 4 rows × vec4 per thread',
    constants: { W: 8 },
    block: { rows: 32, cols: 32 },
    pad: 'kn',
    needs: { subgroups: false, workgroupStorageBytes: 8192, invocations: 64 },
    production: true,
  },
  {
    id: 'tiled-vec4-64',
    shader: 'tiled-vec4',
    label: 'workgroup tiles 64×64, 4 rows × vec4 per thread',
    constants: { W: 16 },
    block: { rows: 64, cols: 64 },
    pad: 'kn',
    needs: { subgroups: false, workgroupStorageBytes: 32768, invocations: 256 },
    production: true,
  },
  {
    id: 'register-r4',
    shader: 'register-vec4',
    label: 'registers only, 4 rows × 8 columns per thread, 8×8 threads',
    constants: { WG_X: 8, WG_Y: 8, ROWS: 4 },
    block: { rows: 32, cols: 64 },
    pad: 'kn',
    needs: { subgroups: false, workgroupStorageBytes: 0, invocations: 64 },
    production: true,
  },
  {
    id: 'register-r8',
    shader: 'register-vec4',
    label: 'registers only, 8 rows × 8 columns per thread, 8×8 threads',
    constants: { WG_X: 8, WG_Y: 8, ROWS: 8 },
    block: { rows: 64, cols: 64 },
    pad: 'kn',
    needs: { subgroups: false, workgroupStorageBytes: 0, invocations: 64 },
    production: true,
  },
  {
    id: 'register-r8-16x4',
    shader: 'register-vec4',
    label: 'registers only, 8 rows × 8 columns per thread, 16×4 threads',
    constants: { WG_X: 16, WG_Y: 4, ROWS: 8 },
    block: { rows: 32, cols: 128 },
    pad: 'kn',
    needs: { subgroups: false, workgroupStorageBytes: 0, invocations: 64 },
    production: true,
  },
  {
    id: 'subgroup-r8',
    shader: 'subgroup',
    label: 'subgroup shuffles, 8 rows × vec4 per thread, 64 threads',
    constants: { WG: 64, ROWS: 8 },
    block: { rows: 8, cols: 256 },
    pad: 'n',
    needs: { subgroups: true, workgroupStorageBytes: 0, invocations: 64 },
    production: true,
  },
];

export const MATMUL_CONFIG_IDS = MATMUL_CONFIGS.map((c) => c.id) as [string, ...string[]];

/** The configuration contributors run before (or without) tuning: correct for any shape on any device. */
export const DEFAULT_MATMUL_CONFIG_ID = 'tiled-64';

export function matmulConfig(id: string): MatmulConfig {
  const c = MATMUL_CONFIGS.find((x) => x.id === id);
  if (!c) throw new RangeError(`unknown matmul configuration "${id}" (known: ${MATMUL_CONFIG_IDS.join(', ')})`);
  return c;
}

export interface DeviceCapabilities {
  subgroups: boolean;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
}

export function configRunsOn(c: MatmulConfig, caps: DeviceCapabilities): boolean {
  return (
    (!c.needs.subgroups || caps.subgroups) &&
    c.needs.workgroupStorageBytes <= caps.maxComputeWorkgroupStorageSize &&
    c.needs.invocations <= caps.maxComputeInvocationsPerWorkgroup
  );
}

/**
 * Tiles are tuned per size class: the longer side of the C tile decides
 * (the coordinator cuts tiles with edges 64–512; K is the job's).
 */
export const SIZE_CLASSES = ['small', 'medium', 'large'] as const;
export type SizeClass = (typeof SIZE_CLASSES)[number];

/** The tile edge that stands for each class when tuning, and the largest edge in it. */
export const SIZE_CLASS_EDGE: Readonly<Record<SizeClass, number>> = { small: 128, medium: 256, large: 512 };

export function sizeClassOf(rows: number, cols: number): SizeClass {
  const edge = Math.max(rows, cols);
  if (edge <= SIZE_CLASS_EDGE.small) return 'small';
  if (edge <= SIZE_CLASS_EDGE.medium) return 'medium';
  return 'large';
}

/** What a contributor found fastest on its device, per size class, and how fast it was. */
export interface KernelTuning {
  configs: Record<SizeClass, string>;
  gflops: Record<SizeClass, number>;
}
