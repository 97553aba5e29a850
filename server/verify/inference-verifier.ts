import type { InferenceSpec } from '../../shared/inference-job';
import { firstNonFinite } from '../../shared/result-compare';
import type { Store } from '../store/store';
import type { WorkerPool } from '../workers/pool';
import { NON_FINITE_ROWS_CHECKED, type InferenceShardCheck } from '../workers/verify-tasks';
import type { PanelCache } from './panel-cache';
import type { ReplicaRules } from './replication-verifier';
import type { LiveLease, ResultVerifier, Verdict } from './verdict';

/** An inference job's spec, loaded once per job. */
export class InferenceJobs {
  private readonly specs = new Map<string, Promise<InferenceSpec>>();

  constructor(private readonly store: Store) {}

  spec(jobId: string): Promise<InferenceSpec> {
    let p = this.specs.get(jobId);
    if (!p) {
      p = this.store.jobSpec(jobId).then((s) => {
        if (!s) throw new Error(`inference job ${jobId} has no spec`);
        return JSON.parse(s) as InferenceSpec;
      });
      p.catch(() => this.specs.delete(jobId));
      this.specs.set(jobId, p);
      if (this.specs.size > 64) this.specs.delete(this.specs.keys().next().value!);
    }
    return p;
  }
}

/**
 * Recomputes rows `check` of a shard (and up to NON_FINITE_ROWS_CHECKED rows
 * holding NaN or ±Infinity) on the pool. The model package and the shard's
 * inputs come from the panel cache, in shared memory; each thread decodes a
 * model once.
 */
async function recompute(panels: PanelCache, pool: WorkerPool, spec: InferenceSpec, lease: LiveLease, tile: Float32Array, check: number[]): Promise<InferenceShardCheck> {
  const [input, pkg] = await Promise.all([panels.get(lease.a.sha256, lease.a.bytes), panels.get(lease.b.sha256, lease.b.bytes)]);
  const bytes = new Uint8Array(pkg.buffer, pkg.byteOffset, pkg.byteLength);
  // Always on a thread: the spec's FLOPs per sample leave out work a model does once per run (a subgraph on
  // constants, transposes of large weights), so no estimate from it can safely put a check on the event loop.
  return pool.run(
    'inferenceShard',
    { model: { sha256: lease.b.sha256, bytes }, inputs: spec.inputs, outputs: spec.outputs, tolerance: spec.tolerance, input, tile, rows: lease.rows, width: lease.cols, check },
    Number.POSITIVE_INFINITY,
  );
}

function mismatchVerdict(c: Extract<InferenceShardCheck, { kind: 'mismatch' }>, lease: LiveLease): Verdict {
  return reject(`sample ${lease.row0 + c.row}, output "${c.output}" element ${c.index}: got ${c.got}, the coordinator computed ${c.want}`);
}

/**
 * Verifies an inference shard by recomputing some of its samples with the
 * reference executor (itself checked against onnxruntime) on the worker pool,
 * and comparing within the job's tolerance. Which samples are checked is
 * drawn after the result arrives, so a contributor cannot know which ones to
 * compute honestly: one that fakes a share f of its samples is caught with
 * probability about 1 − (1 − f)^checks per shard, and every catch costs it a
 * strike (quarantine, then ban, as for matmul). Samples whose outputs hold
 * NaN or ±Infinity are recomputed too, and pass only where the reference
 * yields them as well: a model that overflows is not the contributor's fault.
 */
export class InferenceVerifier implements ResultVerifier {
  constructor(
    private readonly jobs: InferenceJobs,
    private readonly panels: PanelCache,
    private readonly pool: WorkerPool,
    private readonly random: () => number = Math.random,
  ) {}

  async verify(lease: LiveLease, tile: Float32Array): Promise<Verdict> {
    const spec = await this.jobs.spec(lease.job.id);
    const check = pick(lease.rows, Math.min(spec.checksPerShard, lease.rows), this.random);
    const result = await recompute(this.panels, this.pool, spec, lease, tile, check);
    return result.kind === 'ok' ? { kind: 'accept' } : mismatchVerdict(result, lease);
  }
}

const reject = (message: string): Verdict => ({ kind: 'reject', code: 'VERIFICATION_FAILED', message });

/** `count` distinct indices below `n`. */
function pick(n: number, count: number, random: () => number): number[] {
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(Math.floor(random() * n));
  return [...chosen];
}

/**
 * Replicated inference: a result holding NaN or ±Infinity has those samples
 * recomputed first (they pass only where the reference yields them too); two
 * contributors' results agree when every sample's outputs are within the
 * job's tolerance, non-finite only where both are.
 */
export function inferenceReplicaRules(jobs: InferenceJobs, panels: PanelCache, pool: WorkerPool): ReplicaRules {
  return {
    async screen(lease, tile) {
      if (firstNonFinite(tile) < 0) return undefined;
      const result = await recompute(panels, pool, await jobs.spec(lease.job.id), lease, tile, []);
      return result.kind === 'ok' ? undefined : mismatchVerdict(result, lease);
    },
    async agree(lease, x, y) {
      const spec = await jobs.spec(lease.job.id);
      return pool.run('inferenceReplicas', { outputs: spec.outputs, tolerance: spec.tolerance, x, y, rows: lease.rows, width: lease.cols }, 4 * x.length);
    },
    async arbitrate(lease, mine, theirs) {
      const spec = await jobs.spec(lease.job.id);
      const differ = await disputedSamples(pool, spec, lease, mine, theirs);
      const checked = differ.slice(0, DISPUTED_SAMPLES_CHECKED);
      const [m, t] = await Promise.all([recompute(panels, pool, spec, lease, mine, checked), recompute(panels, pool, spec, lease, theirs, checked)]);
      return { mineOk: m.kind === 'ok', theirsOk: t.kind === 'ok', allChecked: checked.length === differ.length };
    },
  };
}

/** Samples the coordinator recomputes to settle a dispute between two replicas. */
export const DISPUTED_SAMPLES_CHECKED = 8;

/**
 * The samples where two replicas disagree, in random order (the first
 * DISPUTED_SAMPLES_CHECKED are checked, so neither sender can steer which).
 */
async function disputedSamples(pool: WorkerPool, spec: InferenceSpec, lease: LiveLease, x: Float32Array, y: Float32Array): Promise<number[]> {
  const w = lease.cols;
  const differ: number[] = [];
  await Promise.all(
    Array.from({ length: lease.rows }, async (_, r) => {
      const same = await pool.run(
        'inferenceReplicas',
        { outputs: spec.outputs, tolerance: spec.tolerance, x: x.slice(r * w, (r + 1) * w), y: y.slice(r * w, (r + 1) * w), rows: 1, width: w },
        4 * w,
      );
      if (!same) differ.push(r);
    }),
  );
  for (let i = differ.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [differ[i], differ[j]] = [differ[j]!, differ[i]!];
  }
  return differ;
}
