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
import { timeRuns } from '../bench/runner';
import type { MatmulKernel } from '../gpu/matmul-kernel';

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
        const t = await timeRuns(prepared, lease.warmup, lease.reps);
        const c = await prepared.read();
        shapes.push({ config: config.id, ...t, probes: probePositions(shape, lease.seed, index).map((p) => c[p]!) });
      } finally {
        await prepared.dispose();
      }
    } catch (err) {
      shapes.push({ error: (err instanceof Error ? err.message : String(err)).slice(0, 500) });
    }
  }
  return { shapes };
}
