import type { JobView } from '../../shared/api';
import type { InferenceSpec } from '../../shared/inference-job';
import type { JobRecord, ShardRegion, Store } from '../store/store';

/** What the store knows of a job's checks beyond its record: the second opinions it waits for, and results from contributors banned since. */
export interface JobTrustFacts {
  awaiting?: { shards: number; oldest: number | null };
  fromBanned?: { shards: number; contributors: number; regions: ShardRegion[] };
}

export async function jobTrustFacts(store: Store, job: JobRecord): Promise<JobTrustFacts> {
  const facts: JobTrustFacts = {};
  if (job.verification === 'replication' && (job.status === 'queued' || job.status === 'running')) facts.awaiting = await store.awaitingReplicas(job.id);
  if (job.type !== 'benchmark') {
    const banned = await store.shardsFromBanned(job.id);
    if (banned.shards > 0) facts.fromBanned = banned;
  }
  return facts;
}

/** A parked result waiting this long with no second opinion is worth telling the requester about. */
const LONG_WAIT_MS = 60_000;

const iso = (ms: number) => new Date(ms).toISOString();

/** `spec`: an inference job's spec, shown as its `inference` section. */
export function toJobView(job: JobRecord, spec?: InferenceSpec, facts: JobTrustFacts = {}, now = Date.now()): JobView {
  const view: JobView = {
    id: job.id,
    type: job.type,
    status: job.status,
    priority: job.priority,
    verification: job.verification,
    progress: { total: job.totalShards, done: job.returnedShards, verified: job.verifiedShards },
    shape: { m: job.m, k: job.k, n: job.n },
    tile: { rows: job.tileRows, cols: job.tileCols },
    createdAt: iso(job.createdAt),
    updatedAt: iso(job.updatedAt),
    links: { self: `/api/v1/jobs/${job.id}`, result: `/api/v1/jobs/${job.id}/result`, events: `/api/v1/jobs/${job.id}/events` },
  };
  if (job.completedAt !== null) view.completedAt = iso(job.completedAt);
  if (job.reason !== null) view.reason = job.reason;
  if (job.resultDeleted) view.resultDeleted = true;
  if (facts.awaiting) {
    const { shards, oldest } = facts.awaiting;
    view.replication = { awaitingSecondOpinion: shards };
    if (oldest !== null && shards > 0) view.replication.waitingSince = iso(oldest);
    if (job.replicaWaitMs !== null) view.replication.replicaWaitSeconds = Math.round(job.replicaWaitMs / 1000);
    if (oldest !== null && shards > 0 && now - oldest > LONG_WAIT_MS) {
      view.replication.note =
        job.replicaWaitMs !== null
          ? `${shards} tile(s) have waited over a minute for a second, independent contributor; each passed Freivalds' check and is assembled on it alone after ${Math.round(job.replicaWaitMs / 1000)} s`
          : `${shards} shard(s) have waited over a minute for a second, independent contributor (another identity on another network); the job completes when one comes online. A matmul job can be submitted with replicaWait=<seconds> to finish on Freivalds' check alone after that wait`;
    }
  }
  if (facts.fromBanned) view.fromBannedContributors = facts.fromBanned;
  if (spec) {
    view.inference = {
      model: spec.model,
      inputs: spec.inputs,
      outputs: spec.outputs,
      samplesPerShard: spec.samplesPerShard,
      gflopPerSample: spec.flopsPerSample / 1e9,
      tolerance: spec.tolerance,
      checksPerShard: Math.min(spec.checksPerShard, spec.samplesPerShard),
      residualRisk: job.verification === 'replication' ? 0 : oneAlteredSamplePasses(spec),
    };
  }
  return view;
}

/**
 * Recompute checks `checks` of a shard's `samples` samples, drawn uniformly after the shard came back,
 * so one altered sample escapes when it is not among them. (The last shard may hold fewer samples;
 * its risk is lower, so the full shard's figure is the job's bound.)
 */
export function oneAlteredSamplePasses(spec: Pick<InferenceSpec, 'checksPerShard' | 'samplesPerShard'>): number {
  const checks = Math.min(spec.checksPerShard, spec.samplesPerShard);
  return (spec.samplesPerShard - checks) / spec.samplesPerShard;
}
