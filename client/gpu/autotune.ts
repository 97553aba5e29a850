/**
 * Per-device autotuning of the matmul family: time every configuration the
 * device can run on one tile shape per size class, keep the fastest whose
 * answer is right. A few seconds on first start; the result is kept (keyed
 * by adapter, browser and kernel version) so later starts skip it.
 */
import { MATMUL_CONFIGS, SIZE_CLASS_EDGE, SIZE_CLASSES, type KernelTuning, type MatmulConfig, type SizeClass } from '../../shared/matmul-configs';
import type { AdapterInfo } from '../../shared/protocol';
import { dotErrorRatio, seededMatrix } from '../../shared/seeded';
import type { MatmulKernel, ShaderSources } from './matmul-kernel';

export interface TuningProgress {
  done: number;
  total: number;
  sizeClass: SizeClass;
  config: string;
}

export interface TuningRecord extends KernelTuning {
  /** What the tuning is valid for: see tuningKey. */
  key: string;
  tunedAt: string;
  /** Wall time the tuning took. */
  ms: number;
  /** Every candidate's figure, for the page and for debugging a surprising choice. */
  measured: { sizeClass: SizeClass; config: string; gflops: number; ok: boolean }[];
}

/** Depth of the tuning products: long enough to reach steady state, short enough to stay quick. */
const TUNE_K = 256;

/** FNV-1a over the kernels' sources and the configuration table, so any kernel change retunes. */
export function kernelVersion(sources: ShaderSources): string {
  let h = 0x811c9dc5;
  const text = Object.values(sources).join('\0') + JSON.stringify(MATMUL_CONFIGS);
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

export function tuningKey(adapter: AdapterInfo, userAgent: string, sources: ShaderSources): string {
  return JSON.stringify([adapter.vendor, adapter.architecture, adapter.device, adapter.description, userAgent, kernelVersion(sources)]);
}

/** Checks a few elements against a float64 dot product: catches a configuration the driver miscompiles. */
function spotCheck(c: Float32Array, a: Float32Array, b: Float32Array, m: number, k: number, n: number): boolean {
  for (let s = 0; s < 16; s++) {
    const i = (s * 7919) % m;
    const j = (s * 104729 + 13) % n;
    if (!(dotErrorRatio(c[i * n + j]!, k, a, i * k, 1, b, j, n) <= 1)) return false;
  }
  return true;
}

async function timeConfig(kernel: MatmulKernel, config: MatmulConfig, m: number, k: number, n: number, a: Float32Array, b: Float32Array, bestMs: number) {
  const prepared = await kernel.prepare(config, m, k, n, a, b); // compiles the pipeline: not timed
  try {
    const samples: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      await prepared.run();
      samples.push(performance.now() - t0);
      // Far behind the leader: one run is enough to know it lost (on a slow device, a loser's run costs seconds).
      if (samples[0]! > 2 * bestMs) break;
    }
    samples.sort((x, y) => x - y);
    const ms = samples[samples.length >> 1]!;
    const ok = spotCheck(await prepared.read(), a, b, m, k, n);
    return { ms, ok };
  } finally {
    await prepared.dispose();
  }
}

export async function autotune(kernel: MatmulKernel, key: string, onProgress?: (p: TuningProgress) => void): Promise<TuningRecord> {
  const started = performance.now();
  const candidates = kernel.configs({ productionOnly: true });
  const total = candidates.length * SIZE_CLASSES.length;
  const measured: TuningRecord['measured'] = [];
  const configs = {} as Record<SizeClass, string>;
  const gflops = {} as Record<SizeClass, number>;
  let done = 0;
  for (const sizeClass of SIZE_CLASSES) {
    const edge = SIZE_CLASS_EDGE[sizeClass];
    const a = seededMatrix(edge * TUNE_K, 1);
    const b = seededMatrix(TUNE_K * edge, 2);
    const flops = 2 * edge * edge * TUNE_K;
    let best: { id: string; ms: number } | undefined;
    // The previous class's winner first: it is usually near the top, so losers are cut after one run.
    const previous = configs[SIZE_CLASSES[SIZE_CLASSES.indexOf(sizeClass) - 1] ?? sizeClass];
    const ordered = [...candidates].sort((x, y) => Number(y.id === previous) - Number(x.id === previous));
    for (const config of ordered) {
      onProgress?.({ done, total, sizeClass, config: config.id });
      const r = await timeConfig(kernel, config, edge, TUNE_K, edge, a, b, best?.ms ?? Infinity).catch(() => ({ ms: Infinity, ok: false }));
      done++;
      measured.push({ sizeClass, config: config.id, gflops: Number.isFinite(r.ms) ? flops / (r.ms * 1e6) : 0, ok: r.ok });
      if (r.ok && (!best || r.ms < best.ms)) best = { id: config.id, ms: r.ms };
    }
    if (!best) throw new Error(`no matmul configuration gave a correct ${edge}×${TUNE_K}×${edge} product on this device`);
    configs[sizeClass] = best.id;
    gflops[sizeClass] = flops / (best.ms * 1e6);
  }
  onProgress?.({ done, total, sizeClass: 'large', config: configs.large });
  return { key, configs, gflops, measured, tunedAt: new Date().toISOString(), ms: performance.now() - started };
}
