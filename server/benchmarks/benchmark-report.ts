import type { BenchmarkReport } from '../../shared/api';
import { BenchmarkResultSchema, type BenchmarkSpec } from '../../shared/benchmark';
import { AdapterInfoSchema } from '../../shared/protocol-schemas';
import type { BenchmarkRunRecord, JobRecord } from '../store/store';

const WHAT =
  'GFLOPS = 2·M·N·K / the median wall-clock time of a contributor’s timed runs (launch to GPU completion, inputs resident; ' +
  'no upload, compilation or readback); gpuGflops from timestamp queries where the GPU has them. Timings are reported by ' +
  'contributors; every run’s answers were checked at 16 elements of C per shape against a float64 reference.';

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const mid = s.length >> 1;
  return {
    median: s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2,
    min: s[0]!,
    max: s[s.length - 1]!,
    mean,
    stdev: Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / s.length),
  };
}

/** The requester's view of a benchmark: every run, and the runs grouped by GPU vendor and architecture with their spread. */
export function benchmarkReport(job: JobRecord, spec: BenchmarkSpec, records: BenchmarkRunRecord[]): BenchmarkReport {
  const runs = records.map((r) => {
    const adapter = AdapterInfoSchema.parse(JSON.parse(r.adapter));
    const result = BenchmarkResultSchema.parse(JSON.parse(r.result));
    return {
      contributorId: r.contributorId,
      adapter,
      agent: r.agentKind,
      shapes: spec.shapes.map((shape, i) => {
        const x = result.shapes[i];
        if (!x || 'error' in x) return { ...shape, error: x?.error ?? 'missing' };
        const flops = 2 * shape.m * shape.n * shape.k;
        return {
          ...shape,
          config: x.config,
          runs: x.runs,
          wallMs: x.wallMs,
          ...(x.gpuMs ? { gpuMs: x.gpuMs, gpuGflops: flops / (Math.max(x.gpuMs.median, 1e-6) * 1e6) } : {}),
          gflops: flops / (Math.max(x.wallMs.median, 1e-6) * 1e6),
        };
      }),
    };
  });
  const groups = new Map<string, typeof runs>();
  for (const r of runs) {
    const key = JSON.stringify([r.adapter.vendor || 'unknown', r.adapter.architecture || 'unknown']);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return {
    jobId: job.id,
    status: job.status,
    kernel: spec.kernel,
    shapes: spec.shapes,
    warmup: spec.warmup,
    reps: spec.reps,
    contributorsWanted: spec.contributors,
    contributorsRan: runs.length,
    what: WHAT,
    groups: [...groups.entries()].map(([key, members]) => {
      const [vendor, architecture] = JSON.parse(key) as [string, string];
      return {
        vendor,
        architecture,
        contributors: members.length,
        shapes: spec.shapes
          .map((shape, i) => {
            const timed = members.map((r) => r.shapes[i]!).flatMap((x) => ('gflops' in x ? [x] : []));
            return timed.length ? { ...shape, samples: timed.length, gflops: stats(timed.map((x) => x.gflops)), configs: [...new Set(timed.map((x) => x.config))] } : undefined;
          })
          .filter((x) => x !== undefined),
      };
    }),
    runs,
  };
}
