import type { JobView } from '../../shared/api';
import type { InferenceSpec } from '../../shared/inference-job';
import type { JobRecord } from '../store/store';

const iso = (ms: number) => new Date(ms).toISOString();

/** `spec`: an inference job's spec, shown as its `inference` section. */
export function toJobView(job: JobRecord, spec?: InferenceSpec): JobView {
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
  if (spec) {
    view.inference = {
      model: spec.model,
      inputs: spec.inputs,
      outputs: spec.outputs,
      samplesPerShard: spec.samplesPerShard,
      gflopPerSample: spec.flopsPerSample / 1e9,
      tolerance: spec.tolerance,
    };
  }
  return view;
}
