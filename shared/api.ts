/** REST payloads of /api/v1, shared by the server, the CLI and tests. */

export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const JOB_TYPES = ['matmul'] as const;
export type JobType = (typeof JOB_TYPES)[number];

export interface JobProgress {
  /** Shards in the job. */
  total: number;
  /** Shards whose result came back (verified or rejected at least once). */
  done: number;
  /** Shards whose result passed verification and was assembled. */
  verified: number;
}

export interface JobView {
  id: string;
  type: JobType;
  status: JobStatus;
  /** -10..10; higher runs first. Jobs of equal priority share contributors evenly. */
  priority: number;
  /** How results are checked: Freivalds' test on every tile, or agreement of two contributors. */
  verification: 'freivalds' | 'replication';
  progress: JobProgress;
  /** M×K · K×N → M×N */
  shape: { m: number; k: number; n: number };
  tile: { rows: number; cols: number };
  createdAt: string;
  updatedAt: string;
  completedAt?: string;
  /** Why the job failed or was cancelled. */
  reason?: string;
  links: { self: string; result: string };
}

export interface JobList {
  jobs: JobView[];
}

export interface ApiErrorBody {
  error: { code: string; message: string };
}

export interface ContributorStats {
  id: string;
  /** active, quarantined (every result double-checked) or banned */
  status: 'active' | 'quarantined' | 'banned';
  verifiedShards: number;
  rejectedShards: number;
  /** One credit per GFLOP of verified work; rejected work earns none. */
  credits: number;
  verifiedGflop: number;
  since: string;
}
