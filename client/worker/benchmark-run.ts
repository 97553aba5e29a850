/**
 * A network benchmark run on this contributor's GPU: the lease's kernel at
 * each shape on seeded inputs, warm-up then timed runs (wall clock, and GPU
 * time where timestamp queries exist), and the probed elements of C the
 * coordinator checks.
 */
import type { BenchmarkResult, BenchmarkShapeResult } from '../../shared/benchmark';
import { configRunsOn, MATMUL_CONFIGS } from '../../shared/matmul-configs';
import type { BenchmarkLease } from '../../shared/protocol';
import { inputSeeds, probePositions, seededMatrix } from '../../shared/seeded';
import type { MatmulKernel } from '../gpu/matmul-kernel';

function spread(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { median: s[s.length >> 1]!, min: s[0]!, max: s[s.length - 1]! };
}

export async function runBenchmarkLease(kernel: MatmulKernel, lease: BenchmarkLease): Promise<BenchmarkResult> {
  const shapes: BenchmarkShapeResult[] = [];
  for (const [index, shape] of lease.shapes.entries()) {
    const { m, k, n } = shape;
    const config = lease.kernel === 'autotuned' ? kernel.configFor(m, n) : MATMUL_CONFIGS.find((c) => c.id === lease.kernel);
    if (!config || !configRunsOn(config, kernel.capabilities)) {
      shapes.push({ error: `this device cannot run ${lease.kernel}` });
      continue;
    }
    const seeds = inputSeeds(lease.seed, index);
    try {
      const prepared = await kernel.prepare(config, m, k, n, seededMatrix(m * k, seeds.a), seededMatrix(k * n, seeds.b));
      try {
        for (let i = 0; i < lease.warmup; i++) await prepared.run();
        const wall: number[] = [];
        const gpu: number[] = [];
        for (let i = 0; i < lease.reps; i++) {
          const t0 = performance.now();
          await prepared.run();
          wall.push(performance.now() - t0);
          const g = await prepared.gpuMs?.();
          if (g !== undefined) gpu.push(g);
        }
        const c = await prepared.read();
        shapes.push({
          config: config.id,
          runs: wall.length,
          wallMs: spread(wall),
          ...(gpu.length === wall.length ? { gpuMs: spread(gpu) } : {}),
          probes: probePositions(shape, lease.seed, index).map((p) => c[p]!),
        });
      } finally {
        await prepared.dispose();
      }
    } catch (err) {
      shapes.push({ error: (err instanceof Error ? err.message : String(err)).slice(0, 500) });
    }
  }
  return { shapes };
}
