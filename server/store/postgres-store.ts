import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { PoolClient, QueryResultRow } from 'pg';
import type { JobStatus, JobType } from '../../shared/api';
import type { TrustRecord, TrustStatus } from '../trust/reputation';
import { CONTRIBUTOR_PROBATION } from './probation-sql';
import { migratePostgres } from './postgres-migrations';
import { inTransaction, RETRYABLE_SQLSTATES } from '../storage/pg-transaction';
import { MAX_LISTED_REGIONS, quotaViolation } from './store';
import type {
  AcceptOutcome,
  ApiKeyRecord,
  BenchmarkRunGrant,
  BenchmarkRunLookup,
  BenchmarkRunRecord,
  BenchmarkRunFilter,
  BenchmarkRunState,
  ContributorRecord,
  GrantedLease,
  JobRecord,
  KeyLimits,
  LeaderRow,
  LeaseGrantRequest,
  LeaseLookup,
  LeaseState,
  NewBenchmarkJob,
  NewJob,
  OwnerUsage,
  PanelRecord,
  PendingResult,
  ShardRegion,
  ProfileChange,
  RejectOutcome,
  RevokedKey,
  ShardWork,
  Store,
  TeamRow,
  VerificationMethod,
} from './store';

/*
 * Concurrency. Several coordinators share one database, so every method that
 * changes state is one READ COMMITTED transaction that locks what it changes,
 * and all of them take row locks in one global order, so two of them never
 * wait on each other in a cycle:
 *
 *   benchmark_runs (by token) → shards (by id) → leases → jobs (by id)
 *     → contributors (by id) → contributor_days → teams → team_days → network_minutes
 *
 * A lease row is only changed by a transaction holding its shard's lock, so the
 * shard lock guards the shard's leases. A benchmark run is granted under its
 * job's lock, and nobody waits on a row not yet committed. Grants lock queued shards with
 * FOR UPDATE SKIP LOCKED (two coordinators never take the same one, and never
 * wait on each other's picks) and update their jobs' counters last, in id order.
 * Deadlocks and serialization failures are retried all the same.
 */

type Db = pg.Pool | PoolClient;
type LeaseShardRequest = Omit<LeaseGrantRequest, 'max' | 'prefer' | 'speculateAfterMs' | 'maxActivePerSession' | 'jobTypes' | 'heldBlobs' | 'deferJobs'>;

interface JobRow {
  id: string;
  type: string;
  status: string;
  owner: string | null;
  priority: number;
  verification: string;
  hidden: boolean;
  m: number;
  k: number;
  n: number;
  tile_rows: number;
  tile_cols: number;
  total_shards: number;
  returned_shards: number;
  verified_shards: number;
  reason: string | null;
  created_at: number;
  updated_at: number;
  completed_at: number | null;
  result_deleted: boolean;
  replica_wait_ms: number | null;
}

interface ShardRow {
  id: string;
  job_id: string;
  row_panel: number;
  col_panel: number;
  row0: number;
  col0: number;
  rows: number;
  cols: number;
  state: string;
  failures: number;
  returned: boolean;
}

interface LeaseRow {
  token: string;
  state: string;
  contributor_id: string;
  session_id: string;
  granted_at: number;
  deadline: number;
  shard_id: string;
  result_digest: string | null;
  result_reply: string | null;
}

interface KeyRow {
  id: string;
  name: string;
  created_at: number;
  revoked_at: number | null;
  max_concurrent_jobs: number;
  max_stored_bytes: number;
  max_upload_bytes: number;
  requests_per_minute: number;
}

interface ContributorRow {
  id: string;
  kind: string;
  created_at: number;
  last_seen_at: number;
  verified_shards: number;
  rejected_shards: number;
  flops: number;
  credits: number;
  status: string;
  status_reason: string | null;
  strikes: number;
  clean_since_strike: number;
  canaries_passed: number;
  canaries_failed: number;
  display_name: string | null;
  team_id: string | null;
  address: string | null;
  verified_jobs: number;
  last_verified_job: string | null;
  first_verified_at: number | null;
  /** From CONTRIBUTOR_PROBATION: non-zero when its network has a ban that puts it on probation. */
  probation: number;
}


function toJob(r: JobRow): JobRecord {
  return {
    id: r.id,
    type: r.type as JobType,
    status: r.status as JobStatus,
    owner: r.owner,
    priority: r.priority,
    verification: r.verification as VerificationMethod,
    hidden: r.hidden,
    m: r.m,
    k: r.k,
    n: r.n,
    tileRows: r.tile_rows,
    tileCols: r.tile_cols,
    totalShards: r.total_shards,
    returnedShards: r.returned_shards,
    verifiedShards: r.verified_shards,
    reason: r.reason,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    completedAt: r.completed_at,
    resultDeleted: r.result_deleted,
    replicaWaitMs: r.replica_wait_ms,
  };
}

function toTrust(r: ContributorRow): TrustRecord {
  return {
    status: r.status as TrustStatus,
    strikes: r.strikes,
    cleanSinceStrike: r.clean_since_strike,
    verified: r.verified_shards,
    verifiedFlops: r.flops,
    verifiedJobs: r.verified_jobs,
    lastVerifiedJob: r.last_verified_job,
    firstVerifiedAt: r.first_verified_at,
    canariesPassed: r.canaries_passed,
    canariesFailed: r.canaries_failed,
    probation: r.probation > 0,
  };
}

function toContributor(r: ContributorRow & { team_name: string | null }): ContributorRecord {
  return {
    id: r.id,
    kind: r.kind,
    createdAt: r.created_at,
    lastSeenAt: r.last_seen_at,
    verifiedShards: r.verified_shards,
    rejectedShards: r.rejected_shards,
    flops: r.flops,
    credits: r.credits,
    trust: toTrust(r),
    statusReason: r.status_reason,
    name: r.display_name,
    team: r.team_name,
    address: r.address,
  };
}

function toKey(r: KeyRow): ApiKeyRecord {
  return {
    id: r.id,
    name: r.name,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
    maxConcurrentJobs: r.max_concurrent_jobs,
    maxStoredBytes: r.max_stored_bytes,
    maxUploadBytes: r.max_upload_bytes,
    requestsPerMinute: r.requests_per_minute,
  };
}

const ACTIVE_JOB = `status IN ('queued','running')`;
const EXPIRED_COOLDOWN_MS = 60_000;

/** int8 (epoch milliseconds, byte counts, count(*)) and numeric (sum of int8) come back as numbers, as SQLite gives them. */
const INT8_OID = 20;
const NUMERIC_OID = 1700;
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID || oid === NUMERIC_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/** serialization_failure, deadlock_detected: the transaction did nothing and may simply run again. */
const RETRYABLE = RETRYABLE_SQLSTATES;
const UNIQUE_VIOLATION = '23505';
const MAX_ATTEMPTS = 5;

const byKey = <T>(m: Map<string, T>): [string, T][] => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** PostgreSQL (node-postgres) engine: several coordinators on one database. */
export class PostgresStore implements Store {
  private readonly pool: pg.Pool;
  private ending: Promise<void> | undefined;

  /** Opens a pool without touching the schema; use open() to migrate as well. */
  constructor(url: string, options: { max?: number } = {}) {
    this.pool = new pg.Pool({ connectionString: url, types, max: options.max ?? 10 });
    // An idle connection that breaks (server restart) must not crash the process; the next query reports it.
    this.pool.on('error', () => undefined);
  }

  static async open(url: string, options: { max?: number } = {}): Promise<PostgresStore> {
    const store = new PostgresStore(url, options);
    try {
      await migratePostgres(store.pool);
    } catch (err) {
      await store.end();
      throw err;
    }
    return store;
  }

  /**
   * The interface's close() is synchronous: this starts ending the pool and
   * returns; queries still running finish first. Await end() to know it is done.
   */
  close(): void {
    void this.end().catch(() => undefined);
  }

  end(): Promise<void> {
    this.ending ??= this.pool.end();
    return this.ending;
  }

  private async rows<T extends QueryResultRow>(db: Db, sql: string, params: unknown[] = []): Promise<T[]> {
    return (await db.query<T>(sql, params)).rows;
  }

  private async row<T extends QueryResultRow>(db: Db, sql: string, params: unknown[] = []): Promise<T | undefined> {
    return (await db.query<T>(sql, params)).rows[0];
  }

  /** Runs fn in one transaction on one pooled connection; retried whole on deadlock or serialization failure. */
  private async tx<T>(fn: (c: PoolClient) => Promise<T>, retryOn: readonly string[] = RETRYABLE): Promise<T> {
    return inTransaction(this.pool, fn, { on: retryOn, attempts: MAX_ATTEMPTS });
  }

  async createJob(job: NewJob): Promise<void> {
    await this.tx(async (c) => {
      if (job.quota && job.owner !== null) {
        // One owner's commits take turns on an advisory lock, taken before any row lock (so it joins no lock cycle);
        // each then counts the usage the previous ones committed.
        await c.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`tessera.quota:${job.owner}`]);
        const over = quotaViolation(job, await this.usageOf(c, job.owner));
        if (over) throw over;
      }
      await c.query(
        `INSERT INTO jobs (id, type, status, owner, priority, verification, hidden, m, k, n, tile_rows, tile_cols, total_shards, input_bytes, result_bytes, created_at, updated_at, replica_wait_ms)
         VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16)`,
        [job.id, job.type, job.owner, job.priority, job.verification, job.hidden ?? false, job.m, job.k, job.n, job.tileRows, job.tileCols, job.shards.length, job.inputBytes ?? 0, job.resultBytes ?? 0, job.now, job.replicaWaitMs ?? null],
      );
      const p = job.panels;
      if (p.length > 0) {
        await c.query(`INSERT INTO job_panels (job_id, side, idx, sha256, bytes) SELECT $1::text, * FROM unnest($2::text[], $3::int[], $4::text[], $5::bigint[])`, [
          job.id,
          p.map((x) => x.side),
          p.map((x) => x.idx),
          p.map((x) => x.sha256),
          p.map((x) => x.bytes),
        ]);
      }
      const s = job.shards;
      if (s.length > 0) {
        await c.query(
          `INSERT INTO shards (id, job_id, idx, row_panel, col_panel, row0, col0, rows, cols, state)
           SELECT u.id, $1::text, u.idx, u.row_panel, u.col_panel, u.row0, u.col0, u.rows, u.cols, 'queued'
           FROM unnest($2::text[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[], $8::int[], $9::int[]) AS u(id, idx, row_panel, col_panel, row0, col0, rows, cols)`,
          [job.id, s.map((x) => x.id), s.map((x) => x.idx), s.map((x) => x.rowPanel), s.map((x) => x.colPanel), s.map((x) => x.row0), s.map((x) => x.col0), s.map((x) => x.rows), s.map((x) => x.cols)],
        );
      }
      if (job.spec !== undefined) await c.query(`INSERT INTO job_specs (job_id, spec) VALUES ($1, $2)`, [job.id, job.spec]);
    });
  }

  async jobSpec(jobId: string): Promise<string | undefined> {
    return (await this.row<{ spec: string }>(this.pool, `SELECT spec FROM job_specs WHERE job_id = $1`, [jobId]))?.spec;
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    return this.jobById(this.pool, id);
  }

  private async jobById(db: Db, id: string, forUpdate = false): Promise<JobRecord | undefined> {
    const r = await this.row<JobRow>(db, `SELECT * FROM jobs WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [id]);
    return r ? toJob(r) : undefined;
  }

  async listJobs(filter: { owner?: string | null; limit: number }): Promise<JobRecord[]> {
    const rows =
      filter.owner === undefined
        ? await this.rows<JobRow>(this.pool, `SELECT * FROM jobs WHERE NOT hidden ORDER BY created_at DESC LIMIT $1`, [filter.limit])
        : await this.rows<JobRow>(this.pool, `SELECT * FROM jobs WHERE NOT hidden AND owner IS NOT DISTINCT FROM $1::text ORDER BY created_at DESC LIMIT $2`, [
            filter.owner,
            filter.limit,
          ]);
    return rows.map(toJob);
  }

  async jobPanels(jobId: string): Promise<PanelRecord[]> {
    return this.rows<PanelRecord>(this.pool, `SELECT side, idx, sha256, bytes FROM job_panels WHERE job_id = $1 ORDER BY side, idx`, [jobId]);
  }

  /** Locks rows in key order (the order a SELECT … ORDER BY … FOR UPDATE takes them). */
  private async lockShards(c: PoolClient, where: string, params: unknown[]): Promise<ShardRow[]> {
    return this.rows<ShardRow>(c, `SELECT * FROM shards WHERE ${where} ORDER BY id FOR UPDATE`, params);
  }

  async cancelJob(id: string, now: number, reason: string) {
    return this.tx(async (c) => {
      const job = await this.jobById(c, id);
      if (!job) return undefined;
      if (job.status !== 'queued' && job.status !== 'running') return { job, revoked: [] };
      await c.query(`SELECT token FROM benchmark_runs WHERE job_id = $1 AND state = 'active' ORDER BY token FOR UPDATE`, [id]);
      await this.lockShards(c, `job_id = $1 AND state IN ('queued','leased')`, [id]);
      const locked = (await this.jobById(c, id, true))!;
      if (locked.status !== 'queued' && locked.status !== 'running') return { job: locked, revoked: [] };
      const revoked = await this.rows<{ sessionId: string; shardId: string }>(
        c,
        `SELECT l.session_id AS "sessionId", l.shard_id AS "shardId" FROM leases l JOIN shards s ON s.id = l.shard_id
         WHERE s.job_id = $1 AND l.state = 'active'`,
        [id],
      );
      await c.query(`UPDATE leases SET state = 'cancelled', ended_at = $1 WHERE state = 'active' AND shard_id IN (SELECT id FROM shards WHERE job_id = $2)`, [now, id]);
      await c.query(`UPDATE shards SET state = 'cancelled' WHERE job_id = $1 AND state IN ('queued','leased')`, [id]);
      await c.query(`UPDATE benchmark_runs SET state = 'cancelled', ended_at = $1 WHERE job_id = $2 AND state = 'active'`, [now, id]);
      const r = await this.row<JobRow>(
        c,
        `UPDATE jobs SET status = 'cancelled', reason = $1, leased_shards = 0, updated_at = $2, completed_at = $2 WHERE id = $3 RETURNING *`,
        [reason, now, id],
      );
      return { job: toJob(r!), revoked };
    });
  }

  async finishJob(id: string, status: 'completed' | 'failed', now: number, reason?: string): Promise<void> {
    await this.tx(async (c) => {
      // A benchmark finishing on its deadline leaves no run behind: late answers are refused.
      await c.query(`SELECT token FROM benchmark_runs WHERE job_id = $1 AND state = 'active' ORDER BY token FOR UPDATE`, [id]);
      await c.query(`UPDATE benchmark_runs SET state = 'cancelled', ended_at = $1 WHERE job_id = $2 AND state = 'active'`, [now, id]);
      if (status === 'failed') {
        await this.lockShards(c, `job_id = $1 AND state IN ('queued','leased')`, [id]);
        await c.query(`UPDATE leases SET state = 'cancelled', ended_at = $1 WHERE state = 'active' AND shard_id IN (SELECT id FROM shards WHERE job_id = $2)`, [now, id]);
        await c.query(`UPDATE shards SET state = 'cancelled' WHERE job_id = $1 AND state IN ('queued','leased')`, [id]);
      }
      await c.query(`UPDATE jobs SET status = $1, reason = $2, updated_at = $3, completed_at = $3, leased_shards = 0 WHERE id = $4 AND ${ACTIVE_JOB}`, [
        status,
        reason ?? null,
        now,
        id,
      ]);
    });
  }

  async shardCounts(): Promise<Record<string, number>> {
    const rows = await this.rows<{ state: string; n: number }>(
      this.pool,
      `SELECT s.state, count(*) AS n FROM shards s JOIN jobs j ON j.id = s.job_id WHERE j.${ACTIVE_JOB} AND NOT j.hidden GROUP BY s.state`,
    );
    const out: Record<string, number> = { queued: 0, leased: 0, verified: 0 };
    for (const r of rows) out[r.state] = r.n;
    return out;
  }

  async jobCounts(): Promise<Record<string, number>> {
    const rows = await this.rows<{ status: string; n: number }>(this.pool, `SELECT status, count(*) AS n FROM jobs WHERE NOT hidden GROUP BY status`);
    const out: Record<string, number> = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const r of rows) out[r.status] = r.n;
    return out;
  }

  async activeHiddenJobs(): Promise<string[]> {
    return (await this.rows<{ id: string }>(this.pool, `SELECT id FROM jobs WHERE ${ACTIVE_JOB} AND hidden`)).map((r) => r.id);
  }

  async jobsAwaitingFinalize(): Promise<JobRecord[]> {
    const rows = await this.rows<JobRow>(
      this.pool,
      `SELECT * FROM jobs WHERE ${ACTIVE_JOB} AND NOT hidden AND type IN ('matmul','inference') AND verified_shards = total_shards`,
    );
    return rows.map(toJob);
  }

  async releaseJobPanels(jobId: string): Promise<string[]> {
    return this.tx(async (c) => {
      const shas = await this.rows<{ sha256: string }>(
        c,
        `SELECT sha256 FROM job_panels WHERE job_id = $1
         UNION SELECT r.sha256 FROM shard_results r JOIN shards s ON s.id = r.shard_id WHERE s.job_id = $1`,
        [jobId],
      );
      await c.query(`DELETE FROM job_panels WHERE job_id = $1`, [jobId]);
      await c.query(`DELETE FROM shard_results WHERE shard_id IN (SELECT id FROM shards WHERE job_id = $1)`, [jobId]);
      return this.unreferenced(c, shas.map((r) => r.sha256));
    });
  }

  /** The blobs among `shas` that no panel and no parked result refers to. */
  private async unreferenced(c: PoolClient, shas: string[]): Promise<string[]> {
    if (shas.length === 0) return [];
    const rows = await this.rows<{ sha: string }>(
      c,
      `SELECT u.sha FROM unnest($1::text[]) AS u(sha)
       WHERE NOT EXISTS (SELECT 1 FROM job_panels WHERE sha256 = u.sha) AND NOT EXISTS (SELECT 1 FROM shard_results WHERE sha256 = u.sha)`,
      [shas],
    );
    return rows.map((r) => r.sha);
  }

  async referencedBlobs(among?: readonly string[]): Promise<Set<string>> {
    const rows = among
      ? await this.rows<{ sha256: string }>(
          this.pool,
          `SELECT sha256 FROM job_panels WHERE sha256 = ANY($1::text[]) UNION SELECT sha256 FROM shard_results WHERE sha256 = ANY($1::text[])`,
          [[...among]],
        )
      : await this.rows<{ sha256: string }>(this.pool, `SELECT sha256 FROM job_panels UNION SELECT sha256 FROM shard_results`);
    return new Set(rows.map((r) => r.sha256));
  }

  private async toWork(c: PoolClient, shard: ShardRow, k: number, jobType: JobType): Promise<ShardWork> {
    const panels = await this.rows<PanelRecord>(
      c,
      `SELECT side, idx, sha256, bytes FROM job_panels WHERE job_id = $1 AND ((side = 'a' AND idx = $2) OR (side = 'b' AND idx = $3))`,
      [shard.job_id, shard.row_panel, shard.col_panel],
    );
    const a = panels.find((p) => p.side === 'a');
    const b = panels.find((p) => p.side === 'b');
    if (!a) throw new Error(`job ${shard.job_id} has no a panel ${shard.row_panel}`);
    if (!b) throw new Error(`job ${shard.job_id} has no b panel ${shard.col_panel}`);
    return { shardId: shard.id, jobId: shard.job_id, jobType, rowPanel: shard.row_panel, colPanel: shard.col_panel, rows: shard.rows, cols: shard.cols, k, a, b };
  }

  private async insertLease(c: PoolClient, work: ShardWork, req: LeaseShardRequest): Promise<GrantedLease> {
    const token = randomUUID();
    const deadline = Math.ceil(req.now + req.leaseMsFor(work));
    await c.query(`INSERT INTO leases (token, shard_id, contributor_id, session_id, state, granted_at, deadline) VALUES ($1, $2, $3, $4, 'active', $5, $6)`, [
      token,
      work.shardId,
      req.contributorId,
      req.sessionId,
      req.now,
      deadline,
    ]);
    return { ...work, token, deadline };
  }

  async grantLeases(req: LeaseGrantRequest): Promise<GrantedLease[]> {
    return this.tx(async (c) => {
      const held = (await this.row<{ n: number }>(c, `SELECT count(*) AS n FROM leases WHERE session_id = $1 AND state = 'active'`, [req.sessionId]))!.n;
      const want = Math.min(req.max, req.maxActivePerSession - held);
      const granted: GrantedLease[] = [];
      const skipped: string[] = [...(req.deferJobs ?? [])];
      /** Jobs granted from in this call, with how many: their counters are written at the end, in id order. */
      const touched = new Map<string, number>();
      const cooldown = req.now - EXPIRED_COOLDOWN_MS;
      const fits = (w: ShardWork) => w.a.bytes <= req.maxPanelBytes && w.b.bytes <= req.maxPanelBytes;
      let prefer = req.prefer;
      while (granted.length < want) {
        // Requesters of equal priority take turns (the one served longest ago goes next), and so do each
        // requester's jobs. Jobs granted from in this call count as served now, as if already written.
        // Among equal priorities, jobs whose B panel (an inference model) the contributor holds come first.
        const job = await this.row<{ id: string; k: number; type: JobType }>(
          c,
          `SELECT j.id, j.k, j.type FROM jobs j
           WHERE j.${ACTIVE_JOB} AND NOT j.hidden AND EXISTS (SELECT 1 FROM shards s WHERE s.state = 'queued' AND s.job_id = j.id)
             AND NOT (j.id = ANY($1::text[])) AND j.type = ANY($4::text[])
           ORDER BY j.priority DESC,
             EXISTS (SELECT 1 FROM job_panels p WHERE p.job_id = j.id AND p.side = 'b' AND p.sha256 = ANY($5::text[])) DESC,
             (SELECT max(CASE WHEN o.id = ANY($2::text[]) THEN $3::bigint ELSE o.last_granted_at END) FROM jobs o
               WHERE o.owner IS NOT DISTINCT FROM j.owner AND o.${ACTIVE_JOB}) ASC,
             CASE WHEN j.id = ANY($2::text[]) THEN $3::bigint ELSE j.last_granted_at END ASC, j.created_at ASC
           LIMIT 1`,
          [skipped, [...touched.keys()], req.now, req.jobTypes, req.heldBlobs ?? []],
        );
        if (!job) break;
        const same = prefer?.jobId === job.id;
        // SKIP LOCKED: a shard another coordinator is granting right now is not ours to take, nor to wait for.
        const shard = await this.row<ShardRow>(
          c,
          `SELECT s.* FROM shards s WHERE s.state = 'queued' AND s.job_id = $1
             AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.shard_id = s.id AND l.contributor_id = $2
                             AND (l.state = 'rejected' OR (l.state = 'expired' AND l.ended_at > $3)))
             AND NOT EXISTS (SELECT 1 FROM shard_results p WHERE p.shard_id = s.id AND (p.contributor_id = $2 OR p.address = $6))
           ORDER BY (s.row_panel = $4)::int + (s.col_panel = $5)::int DESC, s.idx
           LIMIT 1 FOR UPDATE OF s SKIP LOCKED`,
          [job.id, req.contributorId, cooldown, same ? prefer!.rowPanel : -1, same ? prefer!.colPanel : -1, req.network ?? null],
        );
        if (!shard) {
          skipped.push(job.id);
          continue;
        }
        const work = await this.toWork(c, shard, job.k, job.type);
        if (!fits(work)) {
          skipped.push(job.id); // this device cannot bind the job's panels; leave it to bigger ones
          continue;
        }
        granted.push(await this.insertLease(c, work, req));
        await c.query(`UPDATE shards SET state = 'leased', attempts = attempts + 1 WHERE id = $1`, [shard.id]);
        touched.set(job.id, (touched.get(job.id) ?? 0) + 1);
        prefer = { jobId: job.id, rowPanel: shard.row_panel, colPanel: shard.col_panel };
      }
      if (granted.length < want && Number.isFinite(req.speculateAfterMs)) await this.speculate(c, req, want, granted, fits);
      for (const [id, n] of byKey(touched)) {
        await c.query(`UPDATE jobs SET status = 'running', leased_shards = leased_shards + $1, last_granted_at = $2, updated_at = $2 WHERE id = $3`, [n, req.now, id]);
      }
      return granted;
    });
  }

  /** Backup copies of straggling shards (see LeaseGrantRequest.speculateAfterMs), appended to `granted`. */
  private async speculate(c: PoolClient, req: LeaseGrantRequest, want: number, granted: GrantedLease[], fits: (w: ShardWork) => boolean): Promise<void> {
    const tooLarge: string[] = [];
    const raced: string[] = [];
    while (granted.length < want) {
      const s = await this.row<ShardRow & { k: number; job_type: JobType }>(
        c,
        `SELECT s.*, j.k, j.type AS job_type FROM leases l JOIN shards s ON s.id = l.shard_id JOIN jobs j ON j.id = s.job_id
         WHERE l.state = 'active' AND l.granted_at < $1 AND l.contributor_id <> $2 AND s.state = 'leased' AND j.${ACTIVE_JOB} AND NOT j.hidden
           AND NOT (j.id = ANY($3::text[])) AND NOT (s.id = ANY($5::text[])) AND j.type = ANY($6::text[])
           AND (SELECT count(*) FROM leases x WHERE x.shard_id = s.id AND x.state = 'active') = 1
           AND NOT EXISTS (SELECT 1 FROM leases r WHERE r.shard_id = s.id AND r.contributor_id = $2
                           AND (r.state = 'rejected' OR (r.state = 'expired' AND r.ended_at > $4)))
           AND NOT EXISTS (SELECT 1 FROM shard_results p WHERE p.shard_id = s.id AND (p.contributor_id = $2 OR p.address = $7))
         ORDER BY j.priority DESC, l.granted_at ASC LIMIT 1
         FOR UPDATE OF s SKIP LOCKED`,
        [req.now - req.speculateAfterMs, req.contributorId, tooLarge, req.now - EXPIRED_COOLDOWN_MS, raced, req.jobTypes, req.network ?? null],
      );
      if (!s) return;
      // The count above is from the statement's snapshot; now that the shard is locked, its leases cannot change under us.
      const active = (await this.row<{ n: number }>(c, `SELECT count(*) AS n FROM leases WHERE shard_id = $1 AND state = 'active'`, [s.id]))!.n;
      if (active !== 1) {
        raced.push(s.id);
        continue;
      }
      const work = await this.toWork(c, s, s.k, s.job_type);
      if (!fits(work)) {
        tooLarge.push(s.job_id);
        continue;
      }
      granted.push(await this.insertLease(c, work, req));
      await c.query(`UPDATE shards SET attempts = attempts + 1 WHERE id = $1`, [s.id]);
    }
  }

  async findLease(token: string): Promise<LeaseLookup | undefined> {
    // One statement, so the lease, shard, job and panels are one consistent snapshot.
    const r = await this.row<
      JobRow &
        Omit<LeaseRow, 'shard_id'> & {
          shard_id: string;
          shard_state: string;
          row_panel: number;
          col_panel: number;
          row0: number;
          col0: number;
          rows: number;
          cols: number;
          a_sha256: string | null;
          a_bytes: number | null;
          b_sha256: string | null;
          b_bytes: number | null;
        }
    >(
      this.pool,
      `SELECT j.*, l.token, l.state, l.contributor_id, l.session_id, l.granted_at, l.deadline, l.result_digest, l.result_reply,
              s.id AS shard_id, s.state AS shard_state, s.row_panel, s.col_panel, s.row0, s.col0, s.rows, s.cols,
              pa.sha256 AS a_sha256, pa.bytes AS a_bytes, pb.sha256 AS b_sha256, pb.bytes AS b_bytes
       FROM leases l JOIN shards s ON s.id = l.shard_id JOIN jobs j ON j.id = s.job_id
       LEFT JOIN job_panels pa ON pa.job_id = j.id AND pa.side = 'a' AND pa.idx = s.row_panel
       LEFT JOIN job_panels pb ON pb.job_id = j.id AND pb.side = 'b' AND pb.idx = s.col_panel
       WHERE l.token = $1`,
      [token],
    );
    if (!r) return undefined;
    return {
      token: r.token,
      state: r.state as LeaseState,
      contributorId: r.contributor_id,
      sessionId: r.session_id,
      grantedAt: r.granted_at,
      deadline: r.deadline,
      shardId: r.shard_id,
      shardState: r.shard_state as LeaseLookup['shardState'],
      row0: r.row0,
      col0: r.col0,
      rows: r.rows,
      cols: r.cols,
      job: toJob(r),
      a: r.a_sha256 === null ? null : { side: 'a', idx: r.row_panel, sha256: r.a_sha256, bytes: r.a_bytes! },
      b: r.b_sha256 === null ? null : { side: 'b', idx: r.col_panel, sha256: r.b_sha256, bytes: r.b_bytes! },
      ...(r.result_digest !== null && r.result_reply !== null ? { answered: { digest: r.result_digest, reply: r.result_reply } } : {}),
    };
  }

  async requeueUnconfirmed(contributorId: string, now: number): Promise<number> {
    return this.tx(async (c) => {
      // Shards first, then their jobs in id order: the store's lock order.
      const shards = await this.rows<{ id: string; job_id: string }>(
        c,
        `SELECT s.id, s.job_id FROM shards s JOIN jobs j ON j.id = s.job_id
         WHERE s.verified_by = $1 AND s.state = 'verified' AND j.${ACTIVE_JOB} AND j.type = 'inference' AND j.verification = 'recompute'
         ORDER BY s.id FOR UPDATE OF s`,
        [contributorId],
      );
      if (shards.length === 0) return 0;
      await c.query(`UPDATE shards SET state = 'queued', verified_by = NULL, verified_at = NULL WHERE id = ANY($1::text[])`, [shards.map((s) => s.id)]);
      const perJob = new Map<string, number>();
      for (const s of shards) perJob.set(s.job_id, (perJob.get(s.job_id) ?? 0) + 1);
      for (const [jobId, n] of [...perJob].sort(([x], [y]) => (x < y ? -1 : 1))) {
        await c.query(`UPDATE jobs SET verified_shards = verified_shards - $1, updated_at = $2 WHERE id = $3`, [n, now, jobId]);
      }
      return shards.length;
    });
  }

  async sessionsWithoutLeases(sessionIds: readonly string[]): Promise<string[]> {
    const rows = await this.rows<{ session_id: string }>(this.pool, `SELECT DISTINCT session_id FROM leases WHERE state = 'active' AND session_id = ANY($1::text[])`, [sessionIds]);
    const busy = new Set(rows.map((r) => r.session_id));
    return sessionIds.filter((id) => !busy.has(id));
  }

  async rememberReply(token: string, digest: string, reply: string): Promise<void> {
    await this.pool.query(`UPDATE leases SET result_digest = $1, result_reply = $2 WHERE token = $3`, [digest, reply, token]);
  }

  /**
   * Ends leases whose shards the caller has locked; a shard left with no active lease
   * and still leased goes back to the queue. Returns, per job, how many shards were requeued.
   */
  private async endLeases(c: PoolClient, tokens: string[], state: LeaseState, now: number): Promise<Map<string, number>> {
    const requeued = new Map<string, number>();
    if (tokens.length === 0) return requeued;
    const ended = await this.rows<{ shard_id: string }>(c, `UPDATE leases SET state = $1, ended_at = $2 WHERE token = ANY($3::text[]) RETURNING shard_id`, [
      state,
      now,
      tokens,
    ]);
    const shards = await this.rows<{ job_id: string }>(
      c,
      `UPDATE shards s SET state = 'queued' WHERE s.id = ANY($1::text[]) AND s.state = 'leased'
         AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.shard_id = s.id AND l.state = 'active')
       RETURNING s.job_id`,
      [[...new Set(ended.map((r) => r.shard_id))]],
    );
    for (const s of shards) requeued.set(s.job_id, (requeued.get(s.job_id) ?? 0) + 1);
    return requeued;
  }

  private async uncountLeased(c: PoolClient, requeued: Map<string, number>, now: number): Promise<void> {
    for (const [id, n] of byKey(requeued)) {
      await c.query(`UPDATE jobs SET leased_shards = GREATEST(leased_shards - $1, 0), updated_at = $2 WHERE id = $3`, [n, now, id]);
    }
  }

  async acceptResult(token: string, now: number, flops: number, alsoCredit: string[] = []): Promise<AcceptOutcome> {
    return this.tx(async (c): Promise<AcceptOutcome> => {
      const lease = await this.row<LeaseRow>(c, `SELECT * FROM leases WHERE token = $1`, [token]);
      if (!lease) return { accepted: false, reason: 'LEASE_UNKNOWN' };
      // The shard lock makes two accepts of the same shard (a speculative copy, another coordinator) take turns.
      const shard = (await this.row<ShardRow>(c, `SELECT * FROM shards WHERE id = $1 FOR UPDATE`, [lease.shard_id]))!;
      const job = (await this.jobById(c, shard.job_id, true))!;
      if (job.status !== 'queued' && job.status !== 'running') return { accepted: false, reason: 'JOB_NOT_ACTIVE' };
      if (shard.state === 'verified') return { accepted: false, reason: 'ALREADY_VERIFIED' };
      const verified = await c.query(`UPDATE shards SET state = 'verified', verified_by = $1, verified_at = $2, returned = TRUE WHERE id = $3 AND state <> 'verified'`, [
        lease.contributor_id,
        now,
        shard.id,
      ]);
      if (verified.rowCount !== 1) return { accepted: false, reason: 'ALREADY_VERIFIED' };
      await c.query(`UPDATE leases SET state = 'returned', ended_at = $1 WHERE token = $2`, [now, token]);
      await c.query(`UPDATE leases SET state = 'superseded', ended_at = $1 WHERE shard_id = $2 AND state = 'active'`, [now, shard.id]);
      const after = (await this.row<{ verified_shards: number; total_shards: number }>(
        c,
        `UPDATE jobs SET verified_shards = verified_shards + 1, returned_shards = returned_shards + $1,
           leased_shards = GREATEST(leased_shards - $2, 0), updated_at = $3 WHERE id = $4 RETURNING verified_shards, total_shards`,
        [shard.returned ? 0 : 1, shard.state === 'leased' ? 1 : 0, now, job.id],
      ))!;
      await this.credit(c, [...new Set([lease.contributor_id, ...alsoCredit])].sort(), flops, now);
      return { accepted: true, jobVerified: after.verified_shards === after.total_shards };
    });
  }

  /** Credits verified work to contributors (sorted ids), their teams and the public aggregates. */
  private async credit(c: PoolClient, ids: string[], flops: number, now: number): Promise<void> {
    const credits = flops / 1e9;
    const day = Math.floor(now / 86_400_000);
    await c.query(`SELECT id FROM contributors WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`, [ids]);
    const members = await this.rows<{ team_id: string | null }>(
      c,
      `UPDATE contributors SET verified_shards = verified_shards + 1, flops = flops + $1, credits = credits + $2 WHERE id = ANY($3::text[]) RETURNING team_id`,
      [flops, credits, ids],
    );
    await c.query(
      `INSERT INTO contributor_days (contributor_id, day, credits) SELECT u.id, $2, $3 FROM unnest($1::text[]) AS u(id) ORDER BY u.id
       ON CONFLICT (day, contributor_id) DO UPDATE SET credits = contributor_days.credits + excluded.credits`,
      [ids, day, credits],
    );
    const teams = new Map<string, number>();
    for (const m of members) if (m.team_id) teams.set(m.team_id, (teams.get(m.team_id) ?? 0) + credits);
    for (const [team, amount] of byKey(teams)) await c.query(`UPDATE teams SET credits = credits + $1 WHERE id = $2`, [amount, team]);
    for (const [team, amount] of byKey(teams)) {
      await c.query(
        `INSERT INTO team_days (team_id, day, credits) VALUES ($1, $2, $3) ON CONFLICT (day, team_id) DO UPDATE SET credits = team_days.credits + excluded.credits`,
        [team, day, amount],
      );
    }
    await c.query(
      `INSERT INTO network_minutes (minute, flops) VALUES ($1, $2) ON CONFLICT (minute) DO UPDATE SET flops = network_minutes.flops + excluded.flops`,
      [Math.floor(now / 60_000), flops],
    );
  }

  async rejectResult(token: string, now: number, maxFailures: number, reason: string): Promise<RejectOutcome> {
    return this.tx(async (c): Promise<RejectOutcome> => {
      const found = await this.row<LeaseRow>(c, `SELECT * FROM leases WHERE token = $1`, [token]);
      if (!found) return {};
      const shard = (await this.row<ShardRow>(c, `SELECT * FROM shards WHERE id = $1 FOR UPDATE`, [found.shard_id]))!;
      const lease = (await this.row<LeaseRow>(c, `SELECT * FROM leases WHERE token = $1`, [token]))!; // as of the lock
      if (lease.state !== 'active' && lease.state !== 'expired') return {};
      const requeued = await this.endLeases(c, [token], 'rejected', now);
      await c.query(`UPDATE shards SET failures = failures + 1, returned = TRUE WHERE id = $1`, [shard.id]);
      await c.query(`UPDATE jobs SET returned_shards = returned_shards + $1, leased_shards = GREATEST(leased_shards - $2, 0), updated_at = $3 WHERE id = $4`, [
        shard.returned ? 0 : 1,
        requeued.get(shard.job_id) ?? 0,
        now,
        shard.job_id,
      ]);
      await c.query(`UPDATE contributors SET rejected_shards = rejected_shards + 1 WHERE id = $1`, [lease.contributor_id]);
      if (shard.failures + 1 >= maxFailures && shard.state !== 'verified') {
        return { jobFailed: `shard ${shard.id} failed verification ${shard.failures + 1} times (last: ${reason})` };
      }
      return {};
    });
  }

  async releaseLease(token: string, sessionId: string, now: number): Promise<boolean> {
    return this.tx(async (c) => {
      const active = `SELECT shard_id FROM leases WHERE token = $1 AND session_id = $2 AND state = 'active'`;
      const lease = await this.row<{ shard_id: string }>(c, active, [token, sessionId]);
      if (!lease) return false;
      await this.lockShards(c, 'id = $1', [lease.shard_id]);
      if (!(await this.row(c, active, [token, sessionId]))) return false;
      await this.uncountLeased(c, await this.endLeases(c, [token], 'released', now), now);
      return true;
    });
  }

  /** Ends the active leases matching `where`, whose parameters are numbered from `p` on. */
  private async endLeasesWhere(where: (p: number) => string, params: unknown[], state: LeaseState, now: number): Promise<number> {
    return this.tx(async (c) => {
      const shards = await this.rows<{ shard_id: string }>(c, `SELECT DISTINCT shard_id FROM leases WHERE state = 'active' AND ${where(1)}`, params);
      if (shards.length === 0) return 0;
      const ids = shards.map((s) => s.shard_id);
      await this.lockShards(c, 'id = ANY($1::text[])', [ids]);
      // Read again under the locks: only leases of locked shards are ended.
      const leases = await this.rows<{ token: string }>(c, `SELECT token FROM leases WHERE state = 'active' AND shard_id = ANY($1::text[]) AND ${where(2)}`, [ids, ...params]);
      await this.uncountLeased(c, await this.endLeases(c, leases.map((l) => l.token), state, now), now);
      return leases.length;
    });
  }

  async releaseSession(sessionId: string, now: number): Promise<number> {
    return this.endLeasesWhere((p) => `session_id = $${p}`, [sessionId], 'released', now);
  }

  async expireLeases(now: number): Promise<number> {
    return this.endLeasesWhere((p) => `deadline < $${p}`, [now], 'expired', now);
  }

  async releaseContributor(contributorId: string, now: number): Promise<number> {
    return this.endLeasesWhere((p) => `contributor_id = $${p}`, [contributorId], 'released', now);
  }

  async releaseAllActiveLeases(now: number, sessionPrefix?: string): Promise<number> {
    if (sessionPrefix === undefined) {
      const runs = await this.endActiveBenchmarkRuns({ all: true }, now);
      return runs + (await this.endLeasesWhere(() => 'TRUE', [], 'released', now));
    }
    const runs = await this.endActiveBenchmarkRuns({ all: true, sessionPrefix }, now);
    return runs + (await this.endLeasesWhere((p) => `starts_with(session_id, $${p})`, [sessionPrefix], 'released', now));
  }

  async claimFinalize(jobId: string, nodeId: string, now: number, staleMs: number): Promise<boolean> {
    // One statement: the upsert's row lock makes two nodes' claims on the same job serialise.
    const rows = await this.rows<{ job_id: string }>(
      this.pool,
      `INSERT INTO finalize_claims (job_id, node_id, claimed_at)
       SELECT id, $2, $3 FROM jobs WHERE id = $1 AND ${ACTIVE_JOB}
       ON CONFLICT (job_id) DO UPDATE SET node_id = EXCLUDED.node_id, claimed_at = EXCLUDED.claimed_at
         WHERE finalize_claims.node_id = EXCLUDED.node_id OR finalize_claims.claimed_at < $4
       RETURNING job_id`,
      [jobId, nodeId, now, now - staleMs],
    );
    return rows.length > 0;
  }

  async initSetting(name: string, value: string): Promise<string> {
    // A node racing this insert waits on the key's lock, then reads the winner's value.
    await this.pool.query(`INSERT INTO settings (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`, [name, value, Date.now()]);
    return (await this.row<{ value: string }>(this.pool, `SELECT value FROM settings WHERE name = $1`, [name]))!.value;
  }

  async leaseShard(shardId: string, req: LeaseShardRequest): Promise<GrantedLease | undefined> {
    return this.tx(async (c) => {
      const shard = await this.row<ShardRow>(c, `SELECT * FROM shards WHERE id = $1 AND state = 'queued' FOR UPDATE SKIP LOCKED`, [shardId]);
      if (!shard) return undefined;
      const job = (await this.jobById(c, shard.job_id))!;
      const lease = await this.insertLease(c, await this.toWork(c, shard, job.k, job.type), req);
      await c.query(`UPDATE shards SET state = 'leased', attempts = attempts + 1 WHERE id = $1`, [shardId]);
      await c.query(`UPDATE jobs SET status = 'running', leased_shards = leased_shards + 1, updated_at = $1 WHERE id = $2`, [req.now, job.id]);
      return lease;
    });
  }

  async addPendingResult(token: string, sha256: string, bytes: number, now: number, network?: string): Promise<PendingResult[]> {
    return this.tx(async (c) => {
      const lease = await this.row<LeaseRow>(c, `SELECT * FROM leases WHERE token = $1`, [token]);
      if (!lease) return [];
      const shard = (await this.row<ShardRow>(c, `SELECT * FROM shards WHERE id = $1 FOR UPDATE`, [lease.shard_id]))!;
      // Delete and insert, as SQLite's INSERT OR REPLACE does: a replaced result moves to the end of the line.
      await c.query(`DELETE FROM shard_results WHERE token = $1`, [token]);
      await c.query(`INSERT INTO shard_results (token, shard_id, contributor_id, sha256, bytes, created_at, address) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
        token,
        lease.shard_id,
        lease.contributor_id,
        sha256,
        bytes,
        now,
        network ?? null,
      ]);
      if (!shard.returned) await c.query(`UPDATE shards SET returned = TRUE WHERE id = $1`, [shard.id]);
      const requeued = (await this.endLeases(c, [token], 'returned', now)).get(shard.job_id) ?? 0; // the shard is queued again for a replica
      await c.query(
        `UPDATE jobs SET returned_shards = returned_shards + $1, leased_shards = GREATEST(leased_shards - $2, 0),
           updated_at = CASE WHEN $2 > 0 THEN $3 ELSE updated_at END WHERE id = $4`,
        [shard.returned ? 0 : 1, requeued, now, shard.job_id],
      );
      return this.pendingFor(c, lease.shard_id);
    });
  }

  private async pendingFor(db: Db, shardId: string): Promise<PendingResult[]> {
    return this.rows<PendingResult>(
      db,
      `SELECT token, contributor_id AS "contributorId", sha256, bytes, address AS network, created_at AS "createdAt" FROM shard_results WHERE shard_id = $1 ORDER BY created_at, seq`,
      [shardId],
    );
  }

  async awaitingReplicas(jobId: string): Promise<{ shards: number; oldest: number | null }> {
    const r = await this.row<{ shards: number; oldest: number | null }>(
      this.pool,
      `SELECT count(DISTINCT p.shard_id)::int AS shards, min(p.created_at) AS oldest FROM shard_results p JOIN shards s ON s.id = p.shard_id
       WHERE s.job_id = $1 AND s.state != 'verified'`,
      [jobId],
    );
    return { shards: r?.shards ?? 0, oldest: r?.oldest ?? null };
  }

  async parkedOlderThan(now: number): Promise<(PendingResult & { shardId: string })[]> {
    return this.rows<PendingResult & { shardId: string }>(
      this.pool,
      `SELECT p.token, p.shard_id AS "shardId", p.contributor_id AS "contributorId", p.sha256, p.bytes, p.address AS network, p.created_at AS "createdAt"
       FROM shard_results p JOIN shards s ON s.id = p.shard_id JOIN jobs j ON j.id = s.job_id
       WHERE j.replica_wait_ms IS NOT NULL AND j.${ACTIVE_JOB} AND s.state != 'verified' AND p.created_at + j.replica_wait_ms <= $1
       ORDER BY p.created_at LIMIT 100`,
      [now],
    );
  }

  async shardsFromBanned(jobId: string): Promise<{ shards: number; contributors: number; regions: ShardRegion[] }> {
    const r = await this.row<{ shards: number; contributors: number }>(
      this.pool,
      `SELECT count(*)::int AS shards, count(DISTINCT s.verified_by)::int AS contributors FROM shards s JOIN contributors c ON c.id = s.verified_by
       WHERE s.job_id = $1 AND s.state = 'verified' AND c.status = 'banned'`,
      [jobId],
    );
    const shards = r?.shards ?? 0;
    const regions =
      shards === 0
        ? []
        : await this.rows<ShardRegion>(
            this.pool,
            `SELECT s.row0, s.col0, s.rows, s.cols FROM shards s JOIN contributors c ON c.id = s.verified_by
             WHERE s.job_id = $1 AND s.state = 'verified' AND c.status = 'banned' ORDER BY s.row0, s.col0 LIMIT $2`,
            [jobId, MAX_LISTED_REGIONS],
          );
    return { shards, contributors: r?.contributors ?? 0, regions };
  }

  async pendingResults(shardId: string): Promise<PendingResult[]> {
    return this.pendingFor(this.pool, shardId);
  }

  async dropPendingResults(filter: { shardId?: string; contributorId?: string; tokens?: string[] }): Promise<string[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (filter.shardId) add('shard_id = ?', filter.shardId);
    if (filter.contributorId) add('contributor_id = ?', filter.contributorId);
    if (filter.tokens) add('token = ANY(?::text[])', filter.tokens);
    if (where.length === 0) return [];
    const clause = where.join(' AND ');
    return this.tx(async (c) => {
      const shas = await this.rows<{ sha256: string }>(c, `DELETE FROM shard_results WHERE ${clause} RETURNING sha256`, params);
      return this.unreferenced(c, [...new Set(shas.map((r) => r.sha256))]);
    });
  }

  async updateTrust(contributorId: string, change: (rec: TrustRecord) => TrustRecord, reason: string): Promise<TrustRecord> {
    return this.tx(async (c) => {
      const r = await this.row<ContributorRow>(c, `SELECT c.*, ${CONTRIBUTOR_PROBATION} FROM contributors c WHERE c.id = $1 FOR UPDATE OF c`, [contributorId]);
      if (!r) throw new Error(`no contributor ${contributorId}`);
      const before = toTrust(r);
      const next = change(before);
      await c.query(
        `UPDATE contributors SET status = $1, strikes = $2, clean_since_strike = $3, canaries_passed = $4, canaries_failed = $5,
           verified_jobs = $8, last_verified_job = $9, first_verified_at = $10,
           status_reason = CASE WHEN $1 <> status THEN $6 ELSE status_reason END WHERE id = $7`,
        [next.status, next.strikes, next.cleanSinceStrike, next.canariesPassed, next.canariesFailed, reason, contributorId, next.verifiedJobs, next.lastVerifiedJob, next.firstVerifiedAt],
      );
      // What the store counts itself (with the credit, from address_bans) is as stored, whatever `change` did to it.
      return { ...next, verified: before.verified, verifiedFlops: before.verifiedFlops, probation: before.probation };
    });
  }

  async setProfile(contributorId: string, change: ProfileChange, now: number) {
    // Two contributors taking look-alike names at once: the loser hits the unique skeleton, runs
    // again, and then sees the winner's name, as it would had they come one after the other.
    return this.tx(async (c): Promise<{ ok: true; name: string | null; team: string | null } | { ok: false; taken: 'name' }> => {
      if (change.name !== undefined) {
        if (change.name && (await this.row(c, `SELECT id FROM contributors WHERE name_skeleton = $1 AND id <> $2`, [change.name.skeleton, contributorId]))) {
          return { ok: false, taken: 'name' };
        }
        await c.query(`UPDATE contributors SET display_name = $1, name_skeleton = $2 WHERE id = $3`, [change.name?.display ?? null, change.name?.skeleton ?? null, contributorId]);
      }
      if (change.team !== undefined) {
        let teamId: string | null = null;
        if (change.team) {
          await c.query(`INSERT INTO teams (id, name, skeleton, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (skeleton) DO NOTHING`, [
            randomUUID(),
            change.team.display,
            change.team.skeleton,
            now,
          ]);
          teamId = (await this.row<{ id: string }>(c, `SELECT id FROM teams WHERE skeleton = $1`, [change.team.skeleton]))!.id;
        }
        await c.query(`UPDATE contributors SET team_id = $1 WHERE id = $2`, [teamId, contributorId]);
      }
      const r = await this.row<{ name: string | null; team: string | null }>(
        c,
        `SELECT c.display_name AS name, t.name AS team FROM contributors c LEFT JOIN teams t ON t.id = c.team_id WHERE c.id = $1`,
        [contributorId],
      );
      if (!r) throw new Error(`no contributor ${contributorId}`);
      return { ok: true, name: r.name, team: r.team };
    }, [...RETRYABLE, UNIQUE_VIOLATION]);
  }

  async leaderboard(sinceDay: number | null, limit: number) {
    if (sinceDay === null) {
      const contributors = await this.rows<LeaderRow>(
        this.pool,
        `SELECT c.id, c.display_name AS name, t.name AS team, c.credits FROM contributors c LEFT JOIN teams t ON t.id = c.team_id
         WHERE c.credits > 0 AND c.status <> 'banned' ORDER BY c.credits DESC LIMIT $1`,
        [limit],
      );
      const teams = await this.rows<TeamRow>(
        this.pool,
        `SELECT t.name, (SELECT count(*) FROM contributors m WHERE m.team_id = t.id) AS members, t.credits FROM teams t
         WHERE t.credits > 0 ORDER BY t.credits DESC LIMIT $1`,
        [limit],
      );
      return { contributors, teams };
    }
    const contributors = await this.rows<LeaderRow>(
      this.pool,
      `SELECT c.id, c.display_name AS name, t.name AS team, sum(d.credits) AS credits
       FROM contributor_days d JOIN contributors c ON c.id = d.contributor_id LEFT JOIN teams t ON t.id = c.team_id
       WHERE d.day >= $1 AND c.status <> 'banned' GROUP BY c.id, t.id ORDER BY credits DESC LIMIT $2`,
      [sinceDay, limit],
    );
    const teams = await this.rows<TeamRow>(
      this.pool,
      `SELECT t.name, (SELECT count(*) FROM contributors m WHERE m.team_id = t.id) AS members, sum(d.credits) AS credits
       FROM team_days d JOIN teams t ON t.id = d.team_id WHERE d.day >= $1 GROUP BY t.id ORDER BY credits DESC LIMIT $2`,
      [sinceDay, limit],
    );
    return { contributors, teams };
  }

  async networkSeries(sinceMinute: number) {
    return this.rows<{ minute: number; flops: number }>(this.pool, `SELECT minute, flops FROM network_minutes WHERE minute >= $1 ORDER BY minute`, [sinceMinute]);
  }

  async createApiKey(k: KeyLimits & { id: string; name: string; keyHash: string; now: number }): Promise<void> {
    await this.pool.query(
      `INSERT INTO api_keys (id, name, key_hash, created_at, max_concurrent_jobs, max_stored_bytes, max_upload_bytes, requests_per_minute)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [k.id, k.name, k.keyHash, k.now, k.maxConcurrentJobs, k.maxStoredBytes, k.maxUploadBytes, k.requestsPerMinute],
    );
  }

  async findApiKeyByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const r = await this.row<KeyRow>(this.pool, `SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`, [keyHash]);
    return r ? toKey(r) : undefined;
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return (await this.rows<KeyRow>(this.pool, `SELECT * FROM api_keys ORDER BY created_at`)).map(toKey);
  }

  async revokeApiKey(name: string, now: number): Promise<boolean> {
    return ((await this.pool.query(`UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL`, [now, name])).rowCount ?? 0) > 0;
  }

  async apiKeysRevokedSince(since: number): Promise<RevokedKey[]> {
    return this.rows<RevokedKey>(this.pool, `SELECT id, name, revoked_at AS "revokedAt" FROM api_keys WHERE revoked_at >= $1 ORDER BY revoked_at, id`, [since]);
  }

  async activeJobsOfRevokedKeys(): Promise<{ jobId: string; owner: string }[]> {
    return this.rows<{ jobId: string; owner: string }>(
      this.pool,
      `SELECT jobs.id AS "jobId", jobs.owner AS owner FROM jobs JOIN api_keys ON api_keys.id = jobs.owner
       WHERE jobs.${ACTIVE_JOB} AND api_keys.revoked_at IS NOT NULL ORDER BY jobs.created_at, jobs.id`,
    );
  }

  async ownerUsage(owner: string): Promise<OwnerUsage> {
    return this.usageOf(this.pool, owner);
  }

  private async usageOf(db: Db, owner: string): Promise<OwnerUsage> {
    const r = (await this.row<{ active: number | null; bytes: number | null }>(
      db,
      `SELECT
         sum(CASE WHEN ${ACTIVE_JOB} THEN 1 ELSE 0 END) AS active,
         sum(CASE WHEN ${ACTIVE_JOB} THEN input_bytes ELSE 0 END)
           + sum(CASE WHEN NOT result_deleted AND status IN ('queued','running','completed') THEN result_bytes ELSE 0 END) AS bytes
       FROM jobs WHERE owner = $1 AND NOT hidden`,
      [owner],
    ))!;
    return { activeJobs: r.active ?? 0, storedBytes: r.bytes ?? 0 };
  }

  async resultsToExpire(before: number): Promise<string[]> {
    const rows = await this.rows<{ id: string }>(
      this.pool,
      `SELECT id FROM jobs WHERE status = 'completed' AND NOT result_deleted AND NOT hidden AND completed_at < $1`,
      [before],
    );
    return rows.map((r) => r.id);
  }

  async markResultDeleted(jobId: string): Promise<void> {
    await this.pool.query(`UPDATE jobs SET result_deleted = TRUE, updated_at = $1 WHERE id = $2`, [Date.now(), jobId]);
  }

  async registerContributor(c: { id: string; tokenHash: string; kind: string; adapter: string; now: number; address?: string }): Promise<void> {
    await this.pool.query(`INSERT INTO contributors (id, token_hash, kind, adapter, created_at, last_seen_at, address) VALUES ($1, $2, $3, $4, $5, $5, $6)`, [
      c.id,
      c.tokenHash,
      c.kind,
      c.adapter,
      c.now,
      c.address ?? null,
    ]);
  }

  async identitiesMintedSince(address: string, since: number): Promise<{ count: number; oldestAt: number | null }> {
    const r = await this.row<{ count: number; oldest: number | null }>(
      this.pool,
      `SELECT COUNT(*) AS count, MIN(created_at) AS oldest FROM contributors WHERE address = $1 AND created_at >= $2`,
      [address, since],
    );
    return { count: r?.count ?? 0, oldestAt: r?.oldest ?? null };
  }

  async recordAddressBan(prefix: string, contributorId: string, now: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO address_bans (prefix, contributor_id, banned_at) VALUES ($1, $2, $3)
       ON CONFLICT (prefix) DO UPDATE SET contributor_id = EXCLUDED.contributor_id, banned_at = EXCLUDED.banned_at WHERE EXCLUDED.banned_at >= address_bans.banned_at`,
      [prefix, contributorId, now],
    );
  }

  async addressBan(prefix: string): Promise<{ contributorId: string; bannedAt: number } | undefined> {
    const r = await this.row<{ contributor_id: string; banned_at: number }>(this.pool, `SELECT contributor_id, banned_at FROM address_bans WHERE prefix = $1`, [prefix]);
    return r ? { contributorId: r.contributor_id, bannedAt: r.banned_at } : undefined;
  }

  private async contributorWhere(where: string, value: string): Promise<ContributorRecord | undefined> {
    const r = await this.row<ContributorRow & { team_name: string | null }>(
      this.pool,
      `SELECT c.*, t.name AS team_name, ${CONTRIBUTOR_PROBATION} FROM contributors c LEFT JOIN teams t ON t.id = c.team_id WHERE ${where}`,
      [value],
    );
    return r ? toContributor(r) : undefined;
  }

  async findContributorByTokenHash(tokenHash: string): Promise<ContributorRecord | undefined> {
    return this.contributorWhere('c.token_hash = $1', tokenHash);
  }

  async getContributor(id: string): Promise<ContributorRecord | undefined> {
    return this.contributorWhere('c.id = $1', id);
  }

  async touchContributor(id: string, kind: string, adapter: string, now: number): Promise<void> {
    await this.pool.query(`UPDATE contributors SET kind = $1, adapter = $2, last_seen_at = $3 WHERE id = $4`, [kind, adapter, now, id]);
  }

  async createBenchmarkJob(job: NewBenchmarkJob): Promise<void> {
    await this.tx(async (c) => {
      if (job.quota && job.owner !== null) {
        // The same per-owner turn as createJob's, so benchmark and other submits are counted one after another.
        await c.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`tessera.quota:${job.owner}`]);
        const over = quotaViolation(job, await this.usageOf(c, job.owner));
        if (over) throw over;
      }
      await c.query(
        `INSERT INTO jobs (id, type, status, owner, verification, priority, m, k, n, tile_rows, tile_cols, total_shards, created_at, updated_at)
         VALUES ($1, 'benchmark', 'queued', $2, 'freivalds', $3, $4, $5, $6, 0, 0, $7, $8, $8)`,
        [job.id, job.owner, job.priority, job.m, job.k, job.n, job.contributors, job.now],
      );
      await c.query(`INSERT INTO benchmark_specs (job_id, spec, wait_until) VALUES ($1, $2, $3)`, [job.id, job.spec, job.waitUntil]);
    });
  }

  async benchmarkSpec(jobId: string) {
    const r = await this.row<{ spec: string; wait_until: number }>(this.pool, `SELECT spec, wait_until FROM benchmark_specs WHERE job_id = $1`, [jobId]);
    return r ? { spec: r.spec, waitUntil: r.wait_until } : undefined;
  }

  async grantBenchmarkRun(req: { contributorId: string; sessionId: string; adapter: string; agentKind: string; now: number; leaseMs: (spec: string) => number }) {
    const open = `j.type = 'benchmark' AND j.${ACTIVE_JOB}
      AND (SELECT count(*) FROM benchmark_runs r WHERE r.job_id = j.id AND r.state IN ('active','done')) < j.total_shards
      AND NOT EXISTS (SELECT 1 FROM benchmark_runs r WHERE r.job_id = j.id AND r.contributor_id = $1 AND r.state IN ('active','done','declined','rejected'))`;
    return this.tx(async (c): Promise<BenchmarkRunGrant | undefined> => {
      const tried: string[] = [];
      for (;;) {
        const pick = await this.row<{ id: string }>(
          c,
          `SELECT j.id FROM jobs j JOIN benchmark_specs b ON b.job_id = j.id WHERE ${open} AND NOT (j.id = ANY($2::text[]))
           ORDER BY j.priority DESC, j.created_at ASC LIMIT 1`,
          [req.contributorId, tried],
        );
        if (!pick) return undefined;
        // Lock the job, then look again: a run another coordinator granted meanwhile is visible to this new statement.
        await c.query(`SELECT id FROM jobs WHERE id = $1 FOR UPDATE`, [pick.id]);
        const job = await this.row<{ id: string; spec: string }>(c, `SELECT j.id, b.spec FROM jobs j JOIN benchmark_specs b ON b.job_id = j.id WHERE ${open} AND j.id = $2`, [
          req.contributorId,
          pick.id,
        ]);
        if (!job) {
          tried.push(pick.id);
          continue;
        }
        const token = randomUUID();
        const deadline = Math.ceil(req.now + req.leaseMs(job.spec));
        await c.query(
          `INSERT INTO benchmark_runs (token, job_id, contributor_id, session_id, state, adapter, agent_kind, granted_at, deadline) VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8)`,
          [token, job.id, req.contributorId, req.sessionId, req.adapter, req.agentKind, req.now, deadline],
        );
        await c.query(`UPDATE jobs SET status = 'running', leased_shards = leased_shards + 1, last_granted_at = $1, updated_at = $1 WHERE id = $2`, [req.now, job.id]);
        return { token, jobId: job.id, spec: job.spec, deadline };
      }
    });
  }

  async findBenchmarkRun(token: string): Promise<BenchmarkRunLookup | undefined> {
    const r = await this.row<JobRow & { run_token: string; run_state: BenchmarkRunState; contributor_id: string; session_id: string; deadline: number; spec: string }>(
      this.pool,
      `SELECT j.*, r.token AS run_token, r.state AS run_state, r.contributor_id, r.session_id, r.deadline, b.spec
       FROM benchmark_runs r JOIN benchmark_specs b ON b.job_id = r.job_id JOIN jobs j ON j.id = r.job_id WHERE r.token = $1`,
      [token],
    );
    if (!r) return undefined;
    return { token: r.run_token, state: r.run_state, contributorId: r.contributor_id, sessionId: r.session_id, deadline: r.deadline, job: toJob(r), spec: r.spec };
  }

  async endBenchmarkRun(token: string, state: 'done' | 'declined' | 'rejected', now: number, result?: string) {
    return this.tx(async (c) => {
      const r = await this.row<{ job_id: string }>(c, `SELECT job_id FROM benchmark_runs WHERE token = $1 AND state = 'active' FOR UPDATE`, [token]);
      if (!r) return { ended: false, done: 0, total: 0 };
      await c.query(`UPDATE benchmark_runs SET state = $1, ended_at = $2, result = $3 WHERE token = $4`, [state, now, result ?? null, token]);
      const job = (await this.row<{ verified_shards: number; total_shards: number }>(
        c,
        `UPDATE jobs SET leased_shards = GREATEST(leased_shards - 1, 0), returned_shards = returned_shards + 1, verified_shards = verified_shards + $1, updated_at = $2
         WHERE id = $3 RETURNING verified_shards, total_shards`,
        [state === 'done' ? 1 : 0, now, r.job_id],
      ))!;
      return { ended: true, done: job.verified_shards, total: job.total_shards };
    });
  }

  async endActiveBenchmarkRuns(filter: BenchmarkRunFilter, now: number): Promise<number> {
    const [where, params, state]: [string, unknown[], BenchmarkRunState] =
      'sessionId' in filter
        ? filter.token !== undefined
          ? ['session_id = $1 AND token = $2', [filter.sessionId, filter.token], 'released']
          : ['session_id = $1', [filter.sessionId], 'released']
        : 'deadlineBefore' in filter
          ? ['deadline < $1', [filter.deadlineBefore], 'expired']
          : filter.sessionPrefix !== undefined
            ? ['starts_with(session_id, $1)', [filter.sessionPrefix], 'released']
            : ['TRUE', [], 'released'];
    return this.tx(async (c) => {
      const runs = await this.rows<{ token: string; job_id: string }>(c, `SELECT token, job_id FROM benchmark_runs WHERE state = 'active' AND ${where} ORDER BY token FOR UPDATE`, params);
      if (runs.length === 0) return 0;
      const perJob = new Map<string, number>();
      for (const r of runs) perJob.set(r.job_id, (perJob.get(r.job_id) ?? 0) + 1);
      await c.query(`UPDATE benchmark_runs SET state = $1, ended_at = $2 WHERE token = ANY($3::text[])`, [state, now, runs.map((r) => r.token)]);
      await this.uncountLeased(c, perJob, now);
      return runs.length;
    });
  }

  async benchmarkJobsDue(now: number): Promise<string[]> {
    const rows = await this.rows<{ id: string }>(
      this.pool,
      `SELECT j.id FROM jobs j JOIN benchmark_specs b ON b.job_id = j.id
       WHERE j.type = 'benchmark' AND j.${ACTIVE_JOB} AND (j.verified_shards >= j.total_shards OR b.wait_until <= $1)`,
      [now],
    );
    return rows.map((r) => r.id);
  }

  async benchmarkRuns(jobId: string): Promise<BenchmarkRunRecord[]> {
    const rows = await this.rows<{ contributor_id: string; adapter: string; agent_kind: string; result: string; ended_at: number }>(
      this.pool,
      `SELECT contributor_id, adapter, agent_kind, result, ended_at FROM benchmark_runs WHERE job_id = $1 AND state = 'done' ORDER BY ended_at`,
      [jobId],
    );
    return rows.map((r) => ({ contributorId: r.contributor_id, adapter: r.adapter, agentKind: r.agent_kind, result: r.result, endedAt: r.ended_at }));
  }

  async recentBenchmarks(limit: number) {
    const rows = await this.rows<JobRow & { bench_spec: string }>(
      this.pool,
      `SELECT j.*, b.spec AS bench_spec FROM jobs j JOIN benchmark_specs b ON b.job_id = j.id
       WHERE j.type = 'benchmark' AND j.status = 'completed' AND NOT j.hidden ORDER BY j.completed_at DESC LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({ job: toJob(r), spec: r.bench_spec }));
  }
}
