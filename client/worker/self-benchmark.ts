import type { MatmulKernel } from '../gpu/matmul-kernel';

/**
 * A quick matmul timing before joining (well under a second on any real GPU),
 * so the coordinator can size this contributor's first leases before it has
 * measured real throughput.
 */
export async function selfBenchmarkGflops(kernel: MatmulKernel, n = 256, runs = 3): Promise<number> {
  const a = new Float32Array(n * n).map((_, i) => ((i * 7919) % 13) / 13 - 0.5);
  const b = a.slice().reverse();
  await kernel.run(a, b, n, n, n); // warm-up: first dispatch pays for pipeline setup
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await kernel.run(a, b, n, n, n);
    best = Math.min(best, performance.now() - t0);
  }
  return (2 * n * n * n) / (Math.max(best, 0.01) * 1e6);
}
