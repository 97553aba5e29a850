/**
 * Network benchmark jobs (`type=benchmark`): one named kernel, timed at given
 * shapes on up to K distinct contributors. Inputs are generated from a seed
 * by a counter-based hash, so contributors build them locally and the
 * coordinator can recompute any element of C to check a run's answers
 * without holding the matrices.
 */
import { z } from 'zod';
import { MATMUL_CONFIG_IDS } from './matmul-configs';
import { BENCHMARK_PROBES } from './seeded';

export * from './seeded';

export const BENCHMARK_KERNELS = [...MATMUL_CONFIG_IDS, 'autotuned'] as [string, ...string[]];

/** Largest dimension of a benchmark shape; 2·4096³ FLOPs is minutes on a CPU "GPU" already. */
export const BENCHMARK_MAX_DIM = 4096;

const dim = z.number().int().min(1).max(BENCHMARK_MAX_DIM);
export const BenchmarkShapeSchema = z.object({ m: dim, k: dim, n: dim });

export const BenchmarkSpecSchema = z.object({
  kernel: z.enum(BENCHMARK_KERNELS),
  shapes: z.array(BenchmarkShapeSchema).min(1).max(8),
  /** At most this many distinct contributors run it. */
  contributors: z.number().int().min(1).max(256),
  warmup: z.number().int().min(0).max(10),
  reps: z.number().int().min(1).max(50),
  seed: z.number().int().min(0).max(0xffffffff),
});
export type BenchmarkSpec = z.infer<typeof BenchmarkSpecSchema>;

const ms = z.number().nonnegative().max(3_600_000);
const SpreadSchema = z.object({ median: ms, min: ms, max: ms });

/** One shape's outcome on one contributor: timings and the probed elements of C, or why it could not run. */
export const BenchmarkShapeResultSchema = z.union([
  z.object({
    config: z.enum(MATMUL_CONFIG_IDS).describe('the configuration that ran (the tuned one for "autotuned")'),
    runs: z.number().int().min(1).max(50),
    wallMs: SpreadSchema,
    gpuMs: SpreadSchema.optional(),
    probes: z.array(z.number()).length(BENCHMARK_PROBES),
  }),
  z.object({ error: z.string().max(500) }),
]);
export type BenchmarkShapeResult = z.infer<typeof BenchmarkShapeResultSchema>;

export const BenchmarkResultSchema = z.object({ shapes: z.array(BenchmarkShapeResultSchema).min(1).max(8) });
export type BenchmarkResult = z.infer<typeof BenchmarkResultSchema>;

