/**
 * Network benchmark jobs: a requester names a kernel and shapes; up to K
 * distinct contributors each time it on their GPU and report timings with
 * probed elements of C, which are checked before the timings count. The job
 * completes when K runs are in, or when its wait is over with at least one.
 */
import { randomInt, randomUUID } from 'node:crypto';
import type { BenchmarkList, BenchmarkReport } from '../../shared/api';
import { BenchmarkFieldsSchema } from '../../shared/api';
import { BENCHMARK_KERNELS, BenchmarkResultSchema, BenchmarkSpecSchema, inputSeeds, probeIsRight, probePositions, type BenchmarkShape, type BenchmarkSpec } from '../../shared/benchmark';
import { REJECTED_MESSAGE, type AdapterInfo, type BenchmarkLease, type BenchmarkReply } from '../../shared/protocol';
import { describeZodError } from '../../shared/protocol-schemas';
import { parseShapeText } from '../../shared/tensor-shape';
import { HttpError } from '../http/http-error';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics/metrics';
import { tooManyActiveJobs } from '../jobs/job-commit';
import { QuotaExceededError, type JobQuota, type JobRecord, type Store } from '../store/store';
import type { TrustKeeper } from '../trust/trust-keeper';
import { benchmarkReport } from './benchmark-report';

export interface BenchmarkServiceDeps {
  store: Store;
  trust: TrustKeeper;
  metrics: Metrics;
  log: Logger;
  /** Fixed part of a run's lease, as for shards. */
  leaseBaseMs: number;
}

/** Speed assumed for a contributor that reported none: a CPU-emulated GPU. */
const ASSUMED_GFLOPS = 0.5;
/** Faster than this is not a GPU timing but a lie or a broken clock (a petaflop per contributor). */
const MAX_PLAUSIBLE_GFLOPS = 1e6;

function parseShapes(sizes: string | undefined, shapes: string | undefined): BenchmarkShape[] {
  const out: BenchmarkShape[] = [];
  for (const s of (sizes ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
    if (!/^\d+$/.test(s)) throw new HttpError(400, 'BAD_REQUEST', `sizes: "${s}" is not a whole number; write e.g. sizes=256,512,1024`);
    out.push({ m: Number(s), k: Number(s), n: Number(s) });
  }
  for (const s of (shapes ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
    const shape = parseShapeText(s);
    if (!shape) throw new HttpError(400, 'BAD_REQUEST', `shapes: "${s}" is not M×K×N; write e.g. shapes=1000x700x1300`);
    out.push(shape);
  }
  if (out.length === 0) throw new HttpError(400, 'MISSING_FIELD', 'give the sizes to time: sizes=256,512 (square) and/or shapes=1000x700x1300');
  return out;
}

export interface BenchmarkSession {
  contributorId: string;
  sessionId: string;
  adapter: AdapterInfo;
  agentKind: string;
  /** The contributor's tuned speed, to size the run's deadline. */
  gflops?: number;
}

export class BenchmarkService {
  constructor(private readonly deps: BenchmarkServiceDeps) {}

  async accept(fields: Record<string, string>, owner: string, quota?: JobQuota, now = Date.now()): Promise<JobRecord> {
    const parsed = BenchmarkFieldsSchema.safeParse(fields);
    if (!parsed.success) throw new HttpError(400, 'BAD_REQUEST', `form field ${describeZodError(parsed.error)}`);
    const f = parsed.data;
    if (!BENCHMARK_KERNELS.includes(f.kernel)) {
      throw new HttpError(400, 'UNKNOWN_KERNEL', `unknown kernel ${JSON.stringify(f.kernel)}; one of: ${BENCHMARK_KERNELS.join(', ')}`);
    }
    const spec = BenchmarkSpecSchema.safeParse({
      kernel: f.kernel,
      shapes: parseShapes(f.sizes, f.shapes),
      contributors: f.contributors,
      warmup: f.warmup,
      reps: f.reps,
      seed: randomInt(0, 0xffffffff),
    });
    if (!spec.success) throw new HttpError(400, 'BAD_REQUEST', `${describeZodError(spec.error)} (each dimension from 1 to 4096, at most 8 shapes)`);
    const id = randomUUID();
    const max = (d: 'm' | 'k' | 'n') => Math.max(...spec.data.shapes.map((s) => s[d]));
    try {
      await this.deps.store.createBenchmarkJob({
        id,
        owner,
        priority: f.priority,
        spec: JSON.stringify(spec.data),
        m: max('m'),
        k: max('k'),
        n: max('n'),
        contributors: spec.data.contributors,
        waitUntil: now + f.wait * 1000,
        now,
        ...(quota ? { quota } : {}),
      });
    } catch (err) {
      // A benchmark stores nothing of the requester's, so only its job count can be over.
      if (err instanceof QuotaExceededError) throw tooManyActiveJobs(err.usage.activeJobs);
      throw err;
    }
    return (await this.deps.store.getJob(id))!;
  }

  /** A run of the oldest open benchmark this contributor has not done, or undefined. */
  async grant(s: BenchmarkSession): Promise<BenchmarkLease | undefined> {
    const g = await this.deps.store.grantBenchmarkRun({
      contributorId: s.contributorId,
      sessionId: s.sessionId,
      adapter: JSON.stringify(s.adapter),
      agentKind: s.agentKind,
      now: Date.now(),
      leaseMs: (specJson) => {
        const spec = JSON.parse(specJson) as BenchmarkSpec;
        const flops = spec.shapes.reduce((sum, x) => sum + 2 * x.m * x.n * x.k, 0) * (spec.warmup + spec.reps + 1);
        return Math.ceil(this.deps.leaseBaseMs + (4 * flops) / ((s.gflops ?? ASSUMED_GFLOPS) * 1e6));
      },
    });
    if (!g) return undefined;
    this.deps.metrics.shardsLeased.inc({ job_type: 'benchmark' });
    const spec = JSON.parse(g.spec) as BenchmarkSpec;
    return { kind: 'benchmark', shardId: g.token, leaseToken: g.token, jobId: g.jobId, kernel: spec.kernel, shapes: spec.shapes, warmup: spec.warmup, reps: spec.reps, seed: spec.seed, deadline: g.deadline };
  }

  async submit(token: string, body: unknown): Promise<BenchmarkReply> {
    const { store, trust, metrics, log } = this.deps;
    const run = await store.findBenchmarkRun(token);
    if (!run) return { ok: false, error: { code: 'LEASE_UNKNOWN', message: 'no such benchmark run' } };
    if (run.job.status !== 'queued' && run.job.status !== 'running') return { ok: false, error: { code: 'JOB_CANCELLED', message: `the benchmark is ${run.job.status}` } };
    if (run.state !== 'active' || run.deadline < Date.now()) return { ok: false, error: { code: 'LEASE_EXPIRED', message: 'this run is no longer active' } };
    metrics.shardsReturned.inc({ job_type: 'benchmark' });
    const parsed = BenchmarkResultSchema.safeParse(body);
    const spec = JSON.parse(run.spec) as BenchmarkSpec;
    if (!parsed.success || parsed.data.shapes.length !== spec.shapes.length) {
      const why = parsed.success ? `${parsed.data.shapes.length} shapes reported, the run has ${spec.shapes.length}` : describeZodError(parsed.error);
      await store.endBenchmarkRun(token, 'rejected', Date.now());
      await trust.record(run.contributorId, 'protocol-violation', `benchmark result: ${why}`);
      metrics.shardsRejected.inc({ job_type: 'benchmark' });
      return { ok: false, error: { code: 'BAD_MESSAGE', message: why } };
    }
    const result = parsed.data;
    if (result.shapes.every((x) => 'error' in x)) {
      await store.endBenchmarkRun(token, 'declined', Date.now(), JSON.stringify(result));
      return { ok: true, status: 'declined' };
    }
    for (const [i, x] of result.shapes.entries()) {
      if ('error' in x) continue;
      const shape = spec.shapes[i]!;
      const seeds = inputSeeds(spec.seed, i);
      const positions = probePositions(shape, spec.seed, i);
      const wrong = positions.findIndex((p, j) => !probeIsRight(x.probes[j]!, shape, seeds, p));
      const gflops = (2 * shape.m * shape.n * shape.k) / (Math.max(x.wallMs.median, 1e-9) * 1e6);
      const problem =
        wrong >= 0
          ? `element ${positions[wrong]} of C at ${shape.m}×${shape.k}×${shape.n} is wrong`
          : !(x.wallMs.min <= x.wallMs.median && x.wallMs.median <= x.wallMs.max) || gflops > MAX_PLAUSIBLE_GFLOPS
            ? `implausible timing at ${shape.m}×${shape.k}×${shape.n}`
            : undefined;
      if (problem) {
        await store.endBenchmarkRun(token, 'rejected', Date.now());
        await trust.record(run.contributorId, 'rejected', `benchmark ${run.job.id}: ${problem}`);
        metrics.shardsRejected.inc({ job_type: 'benchmark' });
        log.warn({ jobId: run.job.id, contributorId: run.contributorId, problem }, 'benchmark run rejected');
        return { ok: false, error: { code: 'VERIFICATION_FAILED', message: REJECTED_MESSAGE } };
      }
    }
    const ended = await store.endBenchmarkRun(token, 'done', Date.now(), JSON.stringify(result));
    if (!ended.ended) return { ok: false, error: { code: 'LEASE_EXPIRED', message: 'this run is no longer active' } };
    metrics.shardsVerified.inc({ job_type: 'benchmark' });
    await trust.record(run.contributorId, 'verified', `benchmark ${run.job.id}`);
    log.info({ jobId: run.job.id, contributorId: run.contributorId, done: ended.done, total: ended.total }, 'benchmark run accepted');
    if (ended.done >= ended.total) await this.finish(run.job.id);
    return { ok: true, status: 'accepted' };
  }

  private async finish(jobId: string): Promise<void> {
    const job = await this.deps.store.getJob(jobId);
    if (!job || (job.status !== 'queued' && job.status !== 'running')) return;
    if (job.verifiedShards > 0) await this.deps.store.finishJob(jobId, 'completed', Date.now());
    else {
      const spec = await this.deps.store.benchmarkSpec(jobId);
      const waited = spec ? Math.round((spec.waitUntil - job.createdAt) / 1000) : 0;
      await this.deps.store.finishJob(jobId, 'failed', Date.now(), `no contributor able to run it answered within ${waited} s`);
    }
    this.deps.log.info({ jobId, runs: job.verifiedShards }, 'benchmark finished');
  }

  /** Lapsed runs end; benchmarks with all their runs, or out of time, finish. */
  async sweep(now = Date.now()): Promise<void> {
    await this.deps.store.endActiveBenchmarkRuns({ deadlineBefore: now }, now);
    for (const id of await this.deps.store.benchmarkJobsDue(now)) await this.finish(id);
  }

  /** A run handed back unfinished (the contributor paused): another contributor, or this one later, may take it. */
  async release(sessionId: string, token: string): Promise<boolean> {
    return (await this.deps.store.endActiveBenchmarkRuns({ sessionId, token }, Date.now())) > 0;
  }

  async sessionClosed(sessionId: string): Promise<void> {
    await this.deps.store.endActiveBenchmarkRuns({ sessionId }, Date.now());
  }

  async report(job: JobRecord): Promise<BenchmarkReport> {
    const spec = await this.deps.store.benchmarkSpec(job.id);
    if (!spec) throw new HttpError(404, 'JOB_NOT_FOUND', `job ${job.id} is not a benchmark`);
    return benchmarkReport(job, JSON.parse(spec.spec) as BenchmarkSpec, await this.deps.store.benchmarkRuns(job.id));
  }

  /** Completed benchmarks for the public bench page: adapters and figures only, no requester or contributor ids. */
  async recent(limit: number): Promise<BenchmarkList> {
    const out: BenchmarkList['benchmarks'] = [];
    for (const { job, spec } of await this.deps.store.recentBenchmarks(limit)) {
      const { runs: _runs, ...summary } = benchmarkReport(job, JSON.parse(spec) as BenchmarkSpec, await this.deps.store.benchmarkRuns(job.id));
      out.push(summary);
    }
    return { benchmarks: out };
  }
}
