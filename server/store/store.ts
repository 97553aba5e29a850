/**
 * The coordinator's one store interface. Every job, shard, lease and
 * contributor transition goes through it, each one atomic, so that an engine
 * other than SQLite (PostgreSQL for several coordinators) can take its place.
 * Methods are async for that reason even though SQLite answers synchronously.
 */
import type { JobStatus, JobType } from '../../shared/api';
import type { TrustRecord } from '../trust/reputation';

export interface PanelRecord {
  side: 'a' | 'b' | 'answer' | 'tolerance';
  idx: number;
  sha256: string;
  bytes: number;
}

export interface NewShard {
  id: string;
  idx: number;
  rowPanel: number;
  colPanel: number;
  row0: number;
  col0: number;
  rows: number;
  cols: number;
}

/** freivalds: matmul's algebraic check; replication: two contributors agree; recompute: the coordinator recomputes sampled rows (inference). */
export type VerificationMethod = 'freivalds' | 'replication' | 'recompute';

export interface KeyLimits {
  maxConcurrentJobs: number;
  maxStoredBytes: number;
  maxUploadBytes: number;
  requestsPerMinute: number;
}

export interface ApiKeyRecord extends KeyLimits {
  id: string;
  name: string;
  createdAt: number;
  revokedAt: number | null;
}

export interface RevokedKey {
  id: string;
  name: string;
  revokedAt: number;
}

export interface OwnerUsage {
  /** Queued or running jobs. */
  activeJobs: number;
  /** Inputs of unfinished jobs plus results not yet deleted. */
  storedBytes: number;
}

/** An owner's limits, checked by createJob against the owner's usage in the transaction that commits the job. */
export interface JobQuota {
  maxActiveJobs: number;
  maxStoredBytes: number;
}

/** createJob refused a job because committing it would take its owner over a limit; nothing was written. */
export class QuotaExceededError extends Error {
  constructor(
    readonly limit: 'jobs' | 'bytes',
    readonly usage: OwnerUsage,
    readonly quota: JobQuota,
    /** Bytes the refused job would have added to the owner's storage. */
    readonly neededBytes: number,
  ) {
    super(limit === 'jobs' ? `owner has ${usage.activeJobs} of ${quota.maxActiveJobs} active jobs` : `owner stores ${usage.storedBytes} of ${quota.maxStoredBytes} bytes; the job needs ${neededBytes}`);
    this.name = 'QuotaExceededError';
  }
}

/** The check both engines run inside createJob's transaction, so parallel submits cannot pass it together. */
export function quotaViolation(job: { quota?: JobQuota; inputBytes?: number; resultBytes?: number }, usage: OwnerUsage): QuotaExceededError | undefined {
  if (!job.quota) return undefined;
  const needed = (job.inputBytes ?? 0) + (job.resultBytes ?? 0);
  if (usage.activeJobs + 1 > job.quota.maxActiveJobs) return new QuotaExceededError('jobs', usage, job.quota, needed);
  if (usage.storedBytes + needed > job.quota.maxStoredBytes) return new QuotaExceededError('bytes', usage, job.quota, needed);
  return undefined;
}

export interface NewJob {
  id: string;
  type: JobType;
  owner: string | null;
  priority: number;
  verification: VerificationMethod;
  /** Bytes of the inputs and of the result, counted against the owner's storage quota. */
  inputBytes?: number;
  resultBytes?: number;
  /** A canary: never listed, never assembled; leased only through leaseCanary. */
  hidden?: boolean;
  m: number;
  k: number;
  n: number;
  tileRows: number;
  tileCols: number;
  panels: PanelRecord[];
  shards: NewShard[];
  /** JSON of the job type's own description (inference: shared/inference-job.ts), kept beside the job. */
  spec?: string;
  /** Refuse the job (QuotaExceededError) if, counted with the owner's committed jobs, it exceeds these limits. */
  quota?: JobQuota;
  /** Replicated matmul: a tile that passed Freivalds' check is assembled on that check alone after waiting this long for a second contributor. */
  replicaWaitMs?: number;
  now: number;
}

export interface JobRecord {
  id: string;
  type: JobType;
  status: JobStatus;
  owner: string | null;
  priority: number;
  verification: VerificationMethod;
  hidden: boolean;
  m: number;
  k: number;
  n: number;
  tileRows: number;
  tileCols: number;
  totalShards: number;
  returnedShards: number;
  verifiedShards: number;
  reason: string | null;
  createdAt: number;
  updatedAt: number;
  completedAt: number | null;
  resultDeleted: boolean;
  /** See NewJob.replicaWaitMs; null: a replicated tile waits for its second contributor however long it takes. */
  replicaWaitMs: number | null;
}

/** A shard as the dispatcher needs it to build a lease message. */
export interface ShardWork {
  shardId: string;
  jobId: string;
  jobType: JobType;
  rowPanel: number;
  colPanel: number;
  rows: number;
  cols: number;
  k: number;
  a: PanelRecord;
  b: PanelRecord;
}

export interface GrantedLease extends ShardWork {
  token: string;
  deadline: number;
}

export interface LeaseGrantRequest {
  contributorId: string;
  sessionId: string;
  max: number;
  now: number;
  /** Milliseconds the contributor gets for this shard. */
  leaseMsFor: (work: ShardWork) => number;
  /** Skips shards whose panels exceed what the contributor's device can bind. */
  maxPanelBytes: number;
  /** Back-pressure: a session never holds more active leases than this. */
  maxActivePerSession: number;
  /** Prefer tiles that reuse panels the contributor already holds (its last lease's row and column). */
  prefer?: { jobId: string; rowPanel: number; colPanel: number };
  /**
   * When nothing is queued, a shard leased to someone else longer ago than this may be
   * leased a second time (a backup copy, as MapReduce does for stragglers); the first
   * verified result wins. Infinity disables it.
   */
  speculateAfterMs: number;
  /** Job types this contributor runs (hello `accepts`); others are never leased to it. */
  jobTypes: readonly JobType[];
  /**
   * Blobs the contributor already holds (inference model packages): among jobs of equal priority,
   * those whose B panel is one of them come first, so weights are not downloaded again.
   */
  heldBlobs?: readonly string[];
  /** Jobs not to lease from this time (left to contributors that hold their model). */
  deferJobs?: readonly string[];
  /** The contributor's network prefix: a shard whose parked replica came from this network is not leased to it (the second opinion must be independent). */
  network?: string;
}

export type LeaseState = 'active' | 'returned' | 'rejected' | 'expired' | 'released' | 'superseded' | 'cancelled';

export interface LeaseLookup {
  token: string;
  state: LeaseState;
  contributorId: string;
  sessionId: string;
  grantedAt: number;
  deadline: number;
  shardId: string;
  shardState: 'queued' | 'leased' | 'verified' | 'cancelled';
  row0: number;
  col0: number;
  rows: number;
  cols: number;
  job: JobRecord;
  /** Null once the job ended and its inputs were released. */
  a: PanelRecord | null;
  b: PanelRecord | null;
  /** The first result sent for this lease (a SHA-256 of its bytes) and the reply it got, once it had one. */
  answered?: { digest: string; reply: string };
}

/** Where a shard's result sits in its job's result: rows row0.. and columns col0.. (inference: samples row0..). */
export interface ShardRegion {
  row0: number;
  col0: number;
  rows: number;
  cols: number;
}

/** Regions a job view lists at most. */
export const MAX_LISTED_REGIONS = 1000;

export interface PendingResult {
  token: string;
  contributorId: string;
  sha256: string;
  bytes: number;
  /** The sender's network prefix, when known. */
  network: string | null;
  createdAt: number;
}

export type AcceptOutcome =
  | { accepted: true; jobVerified: boolean }
  | { accepted: false; reason: 'ALREADY_VERIFIED' | 'JOB_NOT_ACTIVE' | 'LEASE_UNKNOWN' };

export interface RejectOutcome {
  /** Set when this rejection made the job fail. */
  jobFailed?: string;
}

export interface ContributorRecord {
  id: string;
  kind: string;
  createdAt: number;
  lastSeenAt: number;
  verifiedShards: number;
  rejectedShards: number;
  flops: number;
  /** One credit per GFLOP of verified work. */
  credits: number;
  trust: TrustRecord;
  statusReason: string | null;
  name: string | null;
  team: string | null;
  /** The network prefix (server/trust/network-prefix.ts) it was minted from; null when unknown. Never shown publicly. */
  address: string | null;
}

export interface LeaderRow {
  id: string;
  name: string | null;
  team: string | null;
  credits: number;
}

export interface TeamRow {
  name: string;
  members: number;
  credits: number;
}

export interface ProfileChange {
  /** Validated display name and its look-alike skeleton; null clears it. */
  name?: { display: string; skeleton: string } | null;
  team?: { display: string; skeleton: string } | null;
}

export interface NewBenchmarkJob {
  id: string;
  owner: string | null;
  priority: number;
  /** JSON of the BenchmarkSpec (shared/benchmark.ts). */
  spec: string;
  /** Largest dimensions among the shapes, shown as the job's shape. */
  m: number;
  k: number;
  n: number;
  contributors: number;
  /** The job completes at this time with the runs it has, if fewer than `contributors` came. */
  waitUntil: number;
  now: number;
  /** Refuse the job (QuotaExceededError) if it would take its owner over these limits, counted in the committing transaction. */
  quota?: JobQuota;
}

/** Which active benchmark runs endActiveBenchmarkRuns ends. */
export type BenchmarkRunFilter = { sessionId: string; token?: string } | { deadlineBefore: number } | { all: true; sessionPrefix?: string };

export type BenchmarkRunState = 'active' | 'done' | 'declined' | 'rejected' | 'expired' | 'released' | 'cancelled';

export interface BenchmarkRunGrant {
  token: string;
  jobId: string;
  spec: string;
  deadline: number;
}

export interface BenchmarkRunLookup {
  token: string;
  state: BenchmarkRunState;
  contributorId: string;
  sessionId: string;
  deadline: number;
  job: JobRecord;
  spec: string;
}

export interface BenchmarkRunRecord {
  contributorId: string;
  /** JSON of the contributor's AdapterInfo at the time of the run. */
  adapter: string;
  agentKind: string;
  /** JSON of the BenchmarkResult. */
  result: string;
  endedAt: number;
}

export interface Store {
  /** Records the job, its panels and shards in one transaction; with `job.quota`, throws QuotaExceededError instead when over it. */
  createJob(job: NewJob): Promise<void>;
  getJob(id: string): Promise<JobRecord | undefined>;
  /** The job's spec (NewJob.spec), if it was created with one. */
  jobSpec(jobId: string): Promise<string | undefined>;
  listJobs(filter: { owner?: string | null; limit: number }): Promise<JobRecord[]>;
  jobPanels(jobId: string): Promise<PanelRecord[]>;
  /** Cancels the job and its unfinished shards and leases; returns the sessions holding revoked leases. */
  cancelJob(id: string, now: number, reason: string): Promise<{ job: JobRecord; revoked: { sessionId: string; shardId: string }[] } | undefined>;
  finishJob(id: string, status: 'completed' | 'failed', now: number, reason?: string): Promise<void>;
  /** Shards of active (queued or running) jobs, by shard state. */
  shardCounts(): Promise<Record<string, number>>;
  /** Listed jobs by status. */
  jobCounts(): Promise<Record<string, number>>;
  /** Canary jobs not yet answered. */
  activeHiddenJobs(): Promise<string[]>;
  /** Jobs still marked active although every shard is verified (a crash hit between the two steps). */
  jobsAwaitingFinalize(): Promise<JobRecord[]>;
  /** Drops the job's panel references; returns blobs that no other job refers to any more. */
  releaseJobPanels(jobId: string): Promise<string[]>;
  /** Every blob any job still refers to (for garbage collection at start). */
  /** Blobs some job's panels or a parked replica refer to; with `among`, only those of these (an index lookup, not a scan). */
  referencedBlobs(among?: readonly string[]): Promise<Set<string>>;

  grantLeases(req: LeaseGrantRequest): Promise<GrantedLease[]>;
  findLease(token: string): Promise<LeaseLookup | undefined>;
  /** Marks the shard verified and credits the lease's contributor (and `alsoCredit`, replicas that agreed). */
  acceptResult(token: string, now: number, flops: number, alsoCredit?: string[]): Promise<AcceptOutcome>;
  /** Leases one specific shard (a canary) to a contributor. */
  leaseShard(shardId: string, req: Omit<LeaseGrantRequest, 'max' | 'prefer' | 'speculateAfterMs' | 'maxActivePerSession' | 'jobTypes' | 'heldBlobs' | 'deferJobs'>): Promise<GrantedLease | undefined>;
  /** Parks a result until a replica agrees with it; the shard goes back to the queue for another contributor. */
  addPendingResult(token: string, sha256: string, bytes: number, now: number, network?: string): Promise<PendingResult[]>;
  pendingResults(shardId: string): Promise<PendingResult[]>;
  /** Shards of the job with a parked result still waiting for a second opinion, and since when the oldest waits. */
  awaitingReplicas(jobId: string): Promise<{ shards: number; oldest: number | null }>;
  /** Parked results of active jobs with a replica wait, older than it (oldest first, at most 100). */
  parkedOlderThan(now: number): Promise<(PendingResult & { shardId: string })[]>;
  /** Verified shards of the job whose result came from a contributor that is banned now, and where they are (at most MAX_LISTED_REGIONS). */
  shardsFromBanned(jobId: string): Promise<{ shards: number; contributors: number; regions: ShardRegion[] }>;
  /**
   * A contributor was caught: shards of active jobs it alone vouched for (accepted on a sampled
   * check — inference with verification=recompute) go back to the queue, so someone else computes
   * them before the job assembles. Returns the shards requeued.
   */
  requeueUnconfirmed(contributorId: string, now: number): Promise<number>;
  /** Those of these sessions that hold no active lease. */
  sessionsWithoutLeases(sessionIds: readonly string[]): Promise<string[]>;
  /** Records the digest of the first result sent for a lease and the reply it got, so a re-send gets the same reply. */
  rememberReply(token: string, digest: string, reply: string): Promise<void>;
  /** Drops parked results (of a shard, or of a banned contributor); returns blobs no longer referenced. */
  dropPendingResults(filter: { shardId?: string; contributorId?: string; tokens?: string[] }): Promise<string[]>;
  /**
   * Applies a reputation change atomically; returns the new record. It stores the strikes, status, canary
   * counts and the distinct-job fields; `verified` and `verifiedFlops` are counted by acceptResult with
   * the credit, and `probation` comes from address_bans, so changes to those three are not stored.
   */
  updateTrust(contributorId: string, change: (rec: TrustRecord) => TrustRecord, reason: string): Promise<TrustRecord>;
  /** Releases every active lease a contributor holds (on ban). */
  releaseContributor(contributorId: string, now: number): Promise<number>;
  rejectResult(token: string, now: number, maxFailures: number, reason: string): Promise<RejectOutcome>;
  releaseLease(token: string, sessionId: string, now: number): Promise<boolean>;
  releaseSession(sessionId: string, now: number): Promise<number>;
  expireLeases(now: number): Promise<number>;
  /**
   * Marks leases active at start-up as released: their sockets died with the old process.
   * With `sessionPrefix`, only sessions whose id starts with it (this node's, when several
   * coordinators share the store); without, every active lease (a single coordinator).
   */
  releaseAllActiveLeases(now: number, sessionPrefix?: string): Promise<number>;
  /**
   * Claims the assembly of an active job's result for `nodeId`, atomically: true when this node
   * holds the claim (just taken, already its own, or taken over from a claim older than `staleMs`,
   * whose node presumably died), false when another node holds a fresh one or the job has ended.
   */
  claimFinalize(jobId: string, nodeId: string, now: number, staleMs: number): Promise<boolean>;

  /** Sets a contributor's name and team; refuses a name that looks like another contributor's. */
  setProfile(contributorId: string, change: ProfileChange, now: number): Promise<{ ok: true; name: string | null; team: string | null } | { ok: false; taken: 'name' }>;
  /** Top contributors and teams by credits since `sinceDay` (epoch day), or of all time when null. */
  leaderboard(sinceDay: number | null, limit: number): Promise<{ contributors: LeaderRow[]; teams: TeamRow[] }>;
  /** Verified FLOPs per minute since `sinceMinute` (epoch minute). */
  networkSeries(sinceMinute: number): Promise<{ minute: number; flops: number }[]>;

  createApiKey(k: KeyLimits & { id: string; name: string; keyHash: string; now: number }): Promise<void>;
  findApiKeyByHash(keyHash: string): Promise<ApiKeyRecord | undefined>;
  listApiKeys(): Promise<ApiKeyRecord[]>;
  revokeApiKey(name: string, now: number): Promise<boolean>;
  /** Keys revoked at or after `since` (their revokedAt), oldest first: what a coordinator polls to notice a revocation. */
  apiKeysRevokedSince(since: number): Promise<RevokedKey[]>;
  /** Queued or running jobs whose owner's key is revoked (left over when the revocation came from another process). */
  activeJobsOfRevokedKeys(): Promise<{ jobId: string; owner: string }[]>;
  ownerUsage(owner: string): Promise<OwnerUsage>;
  /** Finished jobs whose result is older than `before` and still stored. */
  resultsToExpire(before: number): Promise<string[]>;
  markResultDeleted(jobId: string): Promise<void>;

  /** `address`: the network prefix the identity is minted from, when known (counted by identitiesMintedSince). */
  registerContributor(c: { id: string; tokenHash: string; kind: string; adapter: string; now: number; address?: string }): Promise<void>;
  /** Identities minted from this network prefix at or after `since`, and when the oldest of them was. */
  identitiesMintedSince(address: string, since: number): Promise<{ count: number; oldestAt: number | null }>;
  /** Records that an identity from this network prefix was banned (a later ban replaces the time). */
  recordAddressBan(prefix: string, contributorId: string, now: number): Promise<void>;
  /** The latest ban recorded on this network prefix, if any. */
  addressBan(prefix: string): Promise<{ contributorId: string; bannedAt: number } | undefined>;
  findContributorByTokenHash(tokenHash: string): Promise<ContributorRecord | undefined>;
  touchContributor(id: string, kind: string, adapter: string, now: number): Promise<void>;
  getContributor(id: string): Promise<ContributorRecord | undefined>;

  createBenchmarkJob(job: NewBenchmarkJob): Promise<void>;
  benchmarkSpec(jobId: string): Promise<{ spec: string; waitUntil: number } | undefined>;
  /** Hands this contributor a run of the oldest open benchmark it has not run yet, if any. */
  grantBenchmarkRun(req: { contributorId: string; sessionId: string; adapter: string; agentKind: string; now: number; leaseMs: (spec: string) => number }): Promise<BenchmarkRunGrant | undefined>;
  findBenchmarkRun(token: string): Promise<BenchmarkRunLookup | undefined>;
  /** Ends an active run as done (counted), declined (could not run the kernel) or rejected (wrong answers). */
  endBenchmarkRun(token: string, state: 'done' | 'declined' | 'rejected', now: number, result?: string): Promise<{ ended: boolean; done: number; total: number }>;
  /**
   * Ends active runs: one handed back by its session or all of a session (released), past their deadline (expired),
   * or at start-up all of them, or those of sessions starting with `sessionPrefix` (released).
   */
  endActiveBenchmarkRuns(filter: BenchmarkRunFilter, now: number): Promise<number>;
  /** Open benchmark jobs that have all their runs, or whose wait is over. */
  benchmarkJobsDue(now: number): Promise<string[]>;
  benchmarkRuns(jobId: string): Promise<BenchmarkRunRecord[]>;
  /** The latest completed, listed benchmark jobs with their specs. */
  recentBenchmarks(limit: number): Promise<{ job: JobRecord; spec: string }[]>;

  /**
   * Stores `value` under `name` unless a value is stored already, and returns the stored one:
   * the first coordinator to start decides a network-wide setting (the blob URL key) for all.
   */
  initSetting(name: string, value: string): Promise<string>;

  close(): void;
}
