import { randomUUID } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import type { Database, Statement } from 'better-sqlite3';
import type { JobStatus, JobType } from '../../shared/api';
import type { TrustRecord, TrustStatus } from '../trust/reputation';
import { CONTRIBUTOR_PROBATION } from './probation-sql';
import { migrate } from './migrations';
import { MAX_LISTED_REGIONS, quotaViolation } from './store';
import type {
  BenchmarkRunGrant,
  BenchmarkRunLookup,
  BenchmarkRunRecord,
  BenchmarkRunFilter,
  BenchmarkRunState,
  NewBenchmarkJob,
  AcceptOutcome,
  ApiKeyRecord,
  ContributorRecord,
  KeyLimits,
  LeaderRow,
  OwnerUsage,
  ProfileChange,
  TeamRow,
  GrantedLease,
  JobRecord,
  LeaseGrantRequest,
  LeaseLookup,
  LeaseState,
  NewJob,
  PanelRecord,
  PendingResult,
  ShardRegion,
  VerificationMethod,
  RejectOutcome,
  RevokedKey,
  ShardWork,
  Store,
} from './store';

interface JobRow {
  id: string;
  type: string;
  status: string;
  owner: string | null;
  priority: number;
  verification: string;
  hidden: number;
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
  result_deleted: number;
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
  returned: number;
}

interface KeyRow {
  id: string;
  name: string;
  key_hash: string;
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

function toJob(r: JobRow): JobRecord {
  return {
    id: r.id,
    type: r.type as JobType,
    status: r.status as JobStatus,
    owner: r.owner,
    priority: r.priority,
    verification: r.verification as VerificationMethod,
    hidden: r.hidden === 1,
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
    resultDeleted: r.result_deleted === 1,
    replicaWaitMs: r.replica_wait_ms,
  };
}

const ACTIVE_JOB = `status IN ('queued','running')`;
const EXPIRED_COOLDOWN_MS = 60_000;

/** SQLite (better-sqlite3) engine: the default, embedded, zero-service store. */
export class SqliteStore implements Store {
  private readonly db: Database;

  constructor(file: string) {
    this.db = new BetterSqlite3(file);
    // WAL + synchronous=NORMAL: a committed transaction survives a killed process;
    // FULL would add an fsync per commit to survive power loss as well.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${process.env.TESSERA_SQLITE_SYNC === 'full' ? 'FULL' : 'NORMAL'}`);
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
  }

  close(): void {
    this.db.close();
  }

  private readonly statements = new Map<string, Statement>();

  /** Prepared statements are compiled once and reused: preparing per call was a tenth of the coordinator's CPU under load. */
  private stmt(sql: string): Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  async createJob(job: NewJob): Promise<void> {
    const insertJob = this.stmt(
      `INSERT INTO jobs (id, type, status, owner, priority, verification, hidden, m, k, n, tile_rows, tile_cols, total_shards, input_bytes, result_bytes, created_at, updated_at, replica_wait_ms)
       VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const insertPanel = this.stmt(`INSERT INTO job_panels (job_id, side, idx, sha256, bytes) VALUES (?, ?, ?, ?, ?)`);
    const insertShard = this.stmt(
      `INSERT INTO shards (id, job_id, idx, row_panel, col_panel, row0, col0, rows, cols, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued')`,
    );
    this.db.transaction(() => {
      // Inside the write transaction (IMMEDIATE: other writers wait), so parallel submits are counted one after another.
      const over = job.quota && job.owner !== null ? quotaViolation(job, this.usageOf(job.owner)) : undefined;
      if (over) throw over;
      insertJob.run(job.id, job.type, job.owner, job.priority, job.verification, job.hidden ? 1 : 0, job.m, job.k, job.n, job.tileRows, job.tileCols, job.shards.length, job.inputBytes ?? 0, job.resultBytes ?? 0, job.now, job.now, job.replicaWaitMs ?? null);
      for (const p of job.panels) insertPanel.run(job.id, p.side, p.idx, p.sha256, p.bytes);
      for (const s of job.shards) insertShard.run(s.id, job.id, s.idx, s.rowPanel, s.colPanel, s.row0, s.col0, s.rows, s.cols);
      if (job.spec !== undefined) this.stmt(`INSERT INTO job_specs (job_id, spec) VALUES (?, ?)`).run(job.id, job.spec);
    }).immediate();
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    return this.jobById(id);
  }

  async jobSpec(jobId: string): Promise<string | undefined> {
    return (this.stmt(`SELECT spec FROM job_specs WHERE job_id = ?`).get(jobId) as { spec: string } | undefined)?.spec;
  }

  private jobById(id: string): JobRecord | undefined {
    const row = this.stmt(`SELECT * FROM jobs WHERE id = ?`).get(id) as JobRow | undefined;
    return row ? toJob(row) : undefined;
  }

  async listJobs(filter: { owner?: string | null; limit: number }): Promise<JobRecord[]> {
    const rows =
      filter.owner === undefined
        ? this.stmt(`SELECT * FROM jobs WHERE hidden = 0 ORDER BY created_at DESC LIMIT ?`).all(filter.limit)
        : this.stmt(`SELECT * FROM jobs WHERE hidden = 0 AND owner IS ? ORDER BY created_at DESC LIMIT ?`).all(filter.owner, filter.limit);
    return (rows as JobRow[]).map(toJob);
  }

  async jobPanels(jobId: string): Promise<PanelRecord[]> {
    return this.stmt(`SELECT side, idx, sha256, bytes FROM job_panels WHERE job_id = ? ORDER BY side, idx`).all(jobId) as PanelRecord[];
  }

  private panel(jobId: string, side: PanelRecord['side'], idx: number): PanelRecord {
    const p = this.panelOrNull(jobId, side, idx);
    if (!p) throw new Error(`job ${jobId} has no ${side} panel ${idx}`);
    return p;
  }

  private panelOrNull(jobId: string, side: PanelRecord['side'], idx: number): PanelRecord | null {
    const p = this.stmt(`SELECT side, idx, sha256, bytes FROM job_panels WHERE job_id = ? AND side = ? AND idx = ?`).get(jobId, side, idx) as
      | PanelRecord
      | undefined;
    return p ?? null;
  }

  async cancelJob(id: string, now: number, reason: string) {
    return this.db
      .transaction(() => {
        const job = this.jobById(id);
        if (!job) return undefined;
        if (job.status !== 'queued' && job.status !== 'running') return { job, revoked: [] };
        const revoked = this.stmt(
            `SELECT l.session_id AS sessionId, l.shard_id AS shardId FROM leases l JOIN shards s ON s.id = l.shard_id
             WHERE s.job_id = ? AND l.state = 'active'`,
          )
          .all(id) as { sessionId: string; shardId: string }[];
        this.stmt(`UPDATE leases SET state = 'cancelled', ended_at = ? WHERE state = 'active' AND shard_id IN (SELECT id FROM shards WHERE job_id = ?)`)
          .run(now, id);
        this.stmt(`UPDATE shards SET state = 'cancelled' WHERE job_id = ? AND state IN ('queued','leased')`).run(id);
        this.stmt(`UPDATE benchmark_runs SET state = 'cancelled', ended_at = ? WHERE job_id = ? AND state = 'active'`).run(now, id);
        this.stmt(`UPDATE jobs SET status = 'cancelled', reason = ?, leased_shards = 0, updated_at = ?, completed_at = ? WHERE id = ?`)
          .run(reason, now, now, id);
        return { job: this.jobById(id)!, revoked };
      })
      .immediate();
  }

  async finishJob(id: string, status: 'completed' | 'failed', now: number, reason?: string): Promise<void> {
    this.db.transaction(() => {
      this.stmt(`UPDATE jobs SET status = ?, reason = ?, updated_at = ?, completed_at = ?, leased_shards = 0 WHERE id = ? AND ${ACTIVE_JOB}`)
        .run(status, reason ?? null, now, now, id);
      // A benchmark finishing on its deadline leaves no run behind: late answers are refused.
      this.stmt(`UPDATE benchmark_runs SET state = 'cancelled', ended_at = ? WHERE job_id = ? AND state = 'active'`).run(now, id);
      if (status === 'failed') {
        this.stmt(`UPDATE leases SET state = 'cancelled', ended_at = ? WHERE state = 'active' AND shard_id IN (SELECT id FROM shards WHERE job_id = ?)`)
          .run(now, id);
        this.stmt(`UPDATE shards SET state = 'cancelled' WHERE job_id = ? AND state IN ('queued','leased')`).run(id);
      }
    }).immediate();
  }

  async shardCounts(): Promise<Record<string, number>> {
    const rows = this.stmt(
      `SELECT s.state, count(*) AS n FROM shards s JOIN jobs j ON j.id = s.job_id WHERE j.${ACTIVE_JOB} AND j.hidden = 0 GROUP BY s.state`,
    ).all() as { state: string; n: number }[];
    const out: Record<string, number> = { queued: 0, leased: 0, verified: 0 };
    for (const r of rows) out[r.state] = r.n;
    return out;
  }

  async jobCounts(): Promise<Record<string, number>> {
    const rows = this.stmt(`SELECT status, count(*) AS n FROM jobs WHERE hidden = 0 GROUP BY status`).all() as { status: string; n: number }[];
    const out: Record<string, number> = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const r of rows) out[r.status] = r.n;
    return out;
  }

  /** Keeps the per-day and per-team aggregates the leaderboards read. */
  private addCredits(contributorId: string, credits: number, now: number): void {
    const day = Math.floor(now / 86_400_000);
    this.stmt(
      `INSERT INTO contributor_days (contributor_id, day, credits) VALUES (?, ?, ?) ON CONFLICT (day, contributor_id) DO UPDATE SET credits = credits + excluded.credits`,
    ).run(contributorId, day, credits);
    const team = (this.stmt(`SELECT team_id FROM contributors WHERE id = ?`).get(contributorId) as { team_id: string | null } | undefined)?.team_id;
    if (!team) return;
    this.stmt(`UPDATE teams SET credits = credits + ? WHERE id = ?`).run(credits, team);
    this.stmt(
      `INSERT INTO team_days (team_id, day, credits) VALUES (?, ?, ?) ON CONFLICT (day, team_id) DO UPDATE SET credits = credits + excluded.credits`,
    ).run(team, day, credits);
  }

  async setProfile(contributorId: string, change: ProfileChange, now: number) {
    return this.db
      .transaction((): { ok: true; name: string | null; team: string | null } | { ok: false; taken: 'name' } => {
        if (change.name !== undefined) {
          if (change.name) {
            const other = this.stmt(`SELECT id FROM contributors WHERE name_skeleton = ? AND id != ?`).get(change.name.skeleton, contributorId);
            if (other) return { ok: false, taken: 'name' };
          }
          this.stmt(`UPDATE contributors SET display_name = ?, name_skeleton = ? WHERE id = ?`).run(change.name?.display ?? null, change.name?.skeleton ?? null, contributorId);
        }
        if (change.team !== undefined) {
          let teamId: string | null = null;
          if (change.team) {
            const existing = this.stmt(`SELECT id FROM teams WHERE skeleton = ?`).get(change.team.skeleton) as { id: string } | undefined;
            teamId = existing?.id ?? randomUUID();
            if (!existing) this.stmt(`INSERT INTO teams (id, name, skeleton, created_at) VALUES (?, ?, ?, ?)`).run(teamId, change.team.display, change.team.skeleton, now);
          }
          this.stmt(`UPDATE contributors SET team_id = ? WHERE id = ?`).run(teamId, contributorId);
        }
        const r = this.stmt(
          `SELECT c.display_name AS name, t.name AS team FROM contributors c LEFT JOIN teams t ON t.id = c.team_id WHERE c.id = ?`,
        ).get(contributorId) as { name: string | null; team: string | null };
        return { ok: true, name: r.name, team: r.team };
      })
      .immediate();
  }

  async leaderboard(sinceDay: number | null, limit: number) {
    if (sinceDay === null) {
      const contributors = this.stmt(
        `SELECT c.id, c.display_name AS name, t.name AS team, c.credits FROM contributors c LEFT JOIN teams t ON t.id = c.team_id
         WHERE c.credits > 0 AND c.status != 'banned' ORDER BY c.credits DESC LIMIT ?`,
      ).all(limit) as LeaderRow[];
      const teams = this.stmt(
        `SELECT t.name, (SELECT count(*) FROM contributors m WHERE m.team_id = t.id) AS members, t.credits FROM teams t
         WHERE t.credits > 0 ORDER BY t.credits DESC LIMIT ?`,
      ).all(limit) as TeamRow[];
      return { contributors, teams };
    }
    const contributors = this.stmt(
      `SELECT c.id, c.display_name AS name, t.name AS team, sum(d.credits) AS credits
       FROM contributor_days d JOIN contributors c ON c.id = d.contributor_id LEFT JOIN teams t ON t.id = c.team_id
       WHERE d.day >= ? AND c.status != 'banned' GROUP BY d.contributor_id ORDER BY credits DESC LIMIT ?`,
    ).all(sinceDay, limit) as LeaderRow[];
    const teams = this.stmt(
      `SELECT t.name, (SELECT count(*) FROM contributors m WHERE m.team_id = t.id) AS members, sum(d.credits) AS credits
       FROM team_days d JOIN teams t ON t.id = d.team_id WHERE d.day >= ? GROUP BY d.team_id ORDER BY credits DESC LIMIT ?`,
    ).all(sinceDay, limit) as TeamRow[];
    return { contributors, teams };
  }

  async networkSeries(sinceMinute: number) {
    return this.stmt(`SELECT minute, flops FROM network_minutes WHERE minute >= ? ORDER BY minute`).all(sinceMinute) as { minute: number; flops: number }[];
  }

  async activeHiddenJobs(): Promise<string[]> {
    return (this.stmt(`SELECT id FROM jobs WHERE ${ACTIVE_JOB} AND hidden = 1`).all() as { id: string }[]).map((r) => r.id);
  }

  async jobsAwaitingFinalize(): Promise<JobRecord[]> {
    const rows = this.stmt(`SELECT * FROM jobs WHERE ${ACTIVE_JOB} AND hidden = 0 AND type IN ('matmul','inference') AND verified_shards = total_shards`).all() as JobRow[];
    return rows.map(toJob);
  }

  async releaseJobPanels(jobId: string): Promise<string[]> {
    return this.db
      .transaction(() => {
        const shas = (
          this.stmt(
            `SELECT sha256 FROM job_panels WHERE job_id = ?
             UNION SELECT r.sha256 FROM shard_results r JOIN shards s ON s.id = r.shard_id WHERE s.job_id = ?`,
          ).all(jobId, jobId) as { sha256: string }[]
        ).map((r) => r.sha256);
        this.stmt(`DELETE FROM job_panels WHERE job_id = ?`).run(jobId);
        this.stmt(`DELETE FROM shard_results WHERE shard_id IN (SELECT id FROM shards WHERE job_id = ?)`).run(jobId);
        return shas.filter((sha) => !this.blobInUse(sha));
      })
      .immediate();
  }

  private blobInUse(sha: string): boolean {
    return (
      this.stmt(`SELECT 1 FROM job_panels WHERE sha256 = ? LIMIT 1`).get(sha) !== undefined ||
      this.stmt(`SELECT 1 FROM shard_results WHERE sha256 = ? LIMIT 1`).get(sha) !== undefined
    );
  }

  async referencedBlobs(among?: readonly string[]): Promise<Set<string>> {
    const rows = (
      among
        ? this.stmt(
            `SELECT sha256 FROM job_panels WHERE sha256 IN (SELECT value FROM json_each(@among)) UNION SELECT sha256 FROM shard_results WHERE sha256 IN (SELECT value FROM json_each(@among))`,
          ).all({ among: JSON.stringify(among) })
        : this.stmt(`SELECT sha256 FROM job_panels UNION SELECT sha256 FROM shard_results`).all()
    ) as { sha256: string }[];
    return new Set(rows.map((r) => r.sha256));
  }

  async grantLeases(req: LeaseGrantRequest): Promise<GrantedLease[]> {
    // Requesters of equal priority take turns (the one served longest ago goes next), and so do
    // each requester's jobs: a requester with ten jobs gets no more than one with a single job.
    const pickJob = this.stmt(
      `SELECT j.id, j.k, j.type FROM jobs j
       WHERE j.${ACTIVE_JOB} AND j.hidden = 0 AND EXISTS (SELECT 1 FROM shards s WHERE s.state = 'queued' AND s.job_id = j.id)
         AND j.id NOT IN (SELECT value FROM json_each(?)) AND j.type IN (SELECT value FROM json_each(?))
       ORDER BY j.priority DESC,
         EXISTS (SELECT 1 FROM job_panels p WHERE p.job_id = j.id AND p.side = 'b' AND p.sha256 IN (SELECT value FROM json_each(?))) DESC,
         (SELECT max(o.last_granted_at) FROM jobs o WHERE o.owner IS j.owner AND o.${ACTIVE_JOB}) ASC,
         j.last_granted_at ASC, j.created_at ASC LIMIT 1`,
    );
    // A contributor never gets back a shard it returned a rejected result for, nor, for a while,
    // one whose lease it let lapse (a lone slow contributor may retry after the cool-down);
    // among the rest, tiles sharing the row or column panel of its last lease come first.
    const pickShard = this.stmt(
      `SELECT * FROM shards s WHERE s.state = 'queued' AND s.job_id = ?
         AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.shard_id = s.id AND l.contributor_id = ?
                         AND (l.state = 'rejected' OR (l.state = 'expired' AND l.ended_at > ?)))
         AND NOT EXISTS (SELECT 1 FROM shard_results p WHERE p.shard_id = s.id AND (p.contributor_id = ? OR p.address = ?))
       ORDER BY (s.row_panel = ?) + (s.col_panel = ?) DESC, s.idx LIMIT 1`,
    );
    const pickStraggler = this.stmt(
      `SELECT s.*, j.k, j.type AS job_type FROM leases l JOIN shards s ON s.id = l.shard_id JOIN jobs j ON j.id = s.job_id
       WHERE l.state = 'active' AND l.granted_at < ? AND l.contributor_id != ? AND s.state = 'leased' AND j.${ACTIVE_JOB} AND j.hidden = 0
         AND j.id NOT IN (SELECT value FROM json_each(?)) AND j.type IN (SELECT value FROM json_each(?))
         AND (SELECT count(*) FROM leases x WHERE x.shard_id = s.id AND x.state = 'active') = 1
         AND NOT EXISTS (SELECT 1 FROM leases r WHERE r.shard_id = s.id AND r.contributor_id = ?
                         AND (r.state = 'rejected' OR (r.state = 'expired' AND r.ended_at > ?)))
         AND NOT EXISTS (SELECT 1 FROM shard_results p WHERE p.shard_id = s.id AND (p.contributor_id = ? OR p.address = ?))
       ORDER BY j.priority DESC, l.granted_at ASC LIMIT 1`,
    );
    const activeInSession = this.stmt(`SELECT count(*) AS n FROM leases WHERE session_id = ? AND state = 'active'`);
    const insertLease = this.stmt(
      `INSERT INTO leases (token, shard_id, contributor_id, session_id, state, granted_at, deadline) VALUES (?, ?, ?, ?, 'active', ?, ?)`,
    );
    const markLeased = this.stmt(`UPDATE shards SET state = 'leased', attempts = attempts + 1 WHERE id = ?`);
    const countLeased = this.stmt(
      `UPDATE jobs SET status = 'running', leased_shards = leased_shards + 1, last_granted_at = ?, updated_at = ? WHERE id = ?`,
    );
    return this.db
      .transaction(() => {
        const active = (activeInSession.get(req.sessionId) as { n: number }).n;
        const want = Math.min(req.max, req.maxActivePerSession - active);
        const types = JSON.stringify(req.jobTypes);
        const held = JSON.stringify(req.heldBlobs ?? []);
        const granted: GrantedLease[] = [];
        const skipped: string[] = [...(req.deferJobs ?? [])];
        const toWork = (shard: ShardRow, k: number, jobType: JobType): ShardWork => ({
          shardId: shard.id,
          jobId: shard.job_id,
          jobType,
          rowPanel: shard.row_panel,
          colPanel: shard.col_panel,
          rows: shard.rows,
          cols: shard.cols,
          k,
          a: this.panel(shard.job_id, 'a', shard.row_panel),
          b: this.panel(shard.job_id, 'b', shard.col_panel),
        });
        const fits = (w: ShardWork) => w.a.bytes <= req.maxPanelBytes && w.b.bytes <= req.maxPanelBytes;
        const grant = (work: ShardWork) => {
          const token = randomUUID();
          const deadline = req.now + req.leaseMsFor(work);
          insertLease.run(token, work.shardId, req.contributorId, req.sessionId, req.now, deadline);
          granted.push({ ...work, token, deadline });
        };
        let prefer = req.prefer;
        while (granted.length < want) {
          const job = pickJob.get(JSON.stringify(skipped), types, held) as { id: string; k: number; type: JobType } | undefined;
          if (!job) break;
          const same = prefer?.jobId === job.id;
          const shard = pickShard.get(job.id, req.contributorId, req.now - EXPIRED_COOLDOWN_MS, req.contributorId, req.network ?? null, same ? prefer!.rowPanel : -1, same ? prefer!.colPanel : -1) as ShardRow | undefined;
          if (!shard) {
            skipped.push(job.id);
            continue;
          }
          const work = toWork(shard, job.k, job.type);
          if (!fits(work)) {
            skipped.push(job.id); // this device cannot bind the job's panels; leave it to bigger ones
            continue;
          }
          grant(work);
          markLeased.run(shard.id);
          countLeased.run(req.now, req.now, job.id);
          prefer = { jobId: job.id, rowPanel: shard.row_panel, colPanel: shard.col_panel };
        }
        const tooLarge: string[] = [];
        while (granted.length < want && Number.isFinite(req.speculateAfterMs)) {
          const s = pickStraggler.get(req.now - req.speculateAfterMs, req.contributorId, JSON.stringify(tooLarge), types, req.contributorId, req.now - EXPIRED_COOLDOWN_MS, req.contributorId, req.network ?? null) as
            | (ShardRow & { k: number; job_type: JobType })
            | undefined;
          if (!s) break;
          const work = toWork(s, s.k, s.job_type);
          if (!fits(work)) {
            tooLarge.push(s.job_id);
            continue;
          }
          grant(work);
          this.stmt(`UPDATE shards SET attempts = attempts + 1 WHERE id = ?`).run(s.id);
        }
        return granted;
      })
      .immediate();
  }

  async findLease(token: string): Promise<LeaseLookup | undefined> {
    const lease = this.stmt(`SELECT * FROM leases WHERE token = ?`).get(token) as LeaseRow | undefined;
    if (!lease) return undefined;
    const shard = this.stmt(`SELECT * FROM shards WHERE id = ?`).get(lease.shard_id) as ShardRow;
    const job = this.jobById(shard.job_id)!;
    return {
      token: lease.token,
      state: lease.state as LeaseState,
      contributorId: lease.contributor_id,
      sessionId: lease.session_id,
      grantedAt: lease.granted_at,
      deadline: lease.deadline,
      shardId: shard.id,
      shardState: shard.state as LeaseLookup['shardState'],
      row0: shard.row0,
      col0: shard.col0,
      rows: shard.rows,
      cols: shard.cols,
      job,
      a: this.panelOrNull(job.id, 'a', shard.row_panel),
      b: this.panelOrNull(job.id, 'b', shard.col_panel),
      ...(lease.result_digest !== null && lease.result_reply !== null ? { answered: { digest: lease.result_digest, reply: lease.result_reply } } : {}),
    };
  }

  async requeueUnconfirmed(contributorId: string, now: number): Promise<number> {
    return this.db
      .transaction(() => {
        const shards = this.stmt(
          `SELECT s.id, s.job_id FROM shards s JOIN jobs j ON j.id = s.job_id
           WHERE s.verified_by = ? AND s.state = 'verified' AND j.${ACTIVE_JOB} AND j.type = 'inference' AND j.verification = 'recompute'`,
        ).all(contributorId) as { id: string; job_id: string }[];
        const requeue = this.stmt(`UPDATE shards SET state = 'queued', verified_by = NULL, verified_at = NULL WHERE id = ?`);
        const uncount = this.stmt(`UPDATE jobs SET verified_shards = verified_shards - 1, updated_at = ? WHERE id = ?`);
        for (const s of shards) {
          requeue.run(s.id);
          uncount.run(now, s.job_id);
        }
        return shards.length;
      })
      .immediate();
  }

  async sessionsWithoutLeases(sessionIds: readonly string[]): Promise<string[]> {
    const busy = new Set(
      (this.stmt(`SELECT DISTINCT session_id FROM leases WHERE state = 'active' AND session_id IN (SELECT value FROM json_each(?))`).all(JSON.stringify(sessionIds)) as { session_id: string }[]).map(
        (r) => r.session_id,
      ),
    );
    return sessionIds.filter((id) => !busy.has(id));
  }

  async rememberReply(token: string, digest: string, reply: string): Promise<void> {
    this.stmt(`UPDATE leases SET result_digest = ?, result_reply = ? WHERE token = ?`).run(digest, reply, token);
  }

  /** Ends a lease; if it was the shard's only active lease and the shard is still leased, requeues the shard. */
  private endLease(lease: LeaseRow, state: LeaseState, now: number): void {
    this.stmt(`UPDATE leases SET state = ?, ended_at = ? WHERE token = ?`).run(state, now, lease.token);
    const others = this.stmt(`SELECT count(*) AS n FROM leases WHERE shard_id = ? AND state = 'active'`).get(lease.shard_id) as { n: number };
    if (others.n > 0) return;
    const res = this.stmt(`UPDATE shards SET state = 'queued' WHERE id = ? AND state = 'leased'`).run(lease.shard_id);
    if (res.changes > 0) {
      this.stmt(`UPDATE jobs SET leased_shards = max(leased_shards - 1, 0), updated_at = ? WHERE id = (SELECT job_id FROM shards WHERE id = ?)`)
        .run(now, lease.shard_id);
    }
  }

  async acceptResult(token: string, now: number, flops: number, alsoCredit: string[] = []): Promise<AcceptOutcome> {
    return this.db
      .transaction((): AcceptOutcome => {
        const lease = this.stmt(`SELECT * FROM leases WHERE token = ?`).get(token) as LeaseRow | undefined;
        if (!lease) return { accepted: false, reason: 'LEASE_UNKNOWN' };
        const shard = this.stmt(`SELECT * FROM shards WHERE id = ?`).get(lease.shard_id) as ShardRow;
        const job = this.jobById(shard.job_id)!;
        if (job.status !== 'queued' && job.status !== 'running') return { accepted: false, reason: 'JOB_NOT_ACTIVE' };
        if (shard.state === 'verified') return { accepted: false, reason: 'ALREADY_VERIFIED' };
        const wasLeased = shard.state === 'leased';
        this.stmt(`UPDATE leases SET state = 'returned', ended_at = ? WHERE token = ?`).run(now, token);
        this.stmt(`UPDATE leases SET state = 'superseded', ended_at = ? WHERE shard_id = ? AND state = 'active'`)
          .run(now, shard.id);
        this.stmt(`UPDATE shards SET state = 'verified', verified_by = ?, verified_at = ?, returned = 1 WHERE id = ?`)
          .run(lease.contributor_id, now, shard.id);
        this.stmt(
            `UPDATE jobs SET verified_shards = verified_shards + 1, returned_shards = returned_shards + ?,
               leased_shards = max(leased_shards - ?, 0), updated_at = ? WHERE id = ?`,
          )
          .run(shard.returned ? 0 : 1, wasLeased ? 1 : 0, now, job.id);
        const credit = this.stmt(`UPDATE contributors SET verified_shards = verified_shards + 1, flops = flops + ?, credits = credits + ? WHERE id = ?`);
        for (const id of new Set([lease.contributor_id, ...alsoCredit])) {
          credit.run(flops, flops / 1e9, id);
          this.addCredits(id, flops / 1e9, now);
        }
        this.stmt(`INSERT INTO network_minutes (minute, flops) VALUES (?, ?) ON CONFLICT (minute) DO UPDATE SET flops = flops + excluded.flops`).run(
          Math.floor(now / 60_000),
          flops,
        );
        const after = this.jobById(job.id)!;
        return { accepted: true, jobVerified: after.verifiedShards === after.totalShards };
      })
      .immediate();
  }

  async rejectResult(token: string, now: number, maxFailures: number, reason: string): Promise<RejectOutcome> {
    return this.db
      .transaction((): RejectOutcome => {
        const lease = this.stmt(`SELECT * FROM leases WHERE token = ?`).get(token) as LeaseRow | undefined;
        if (!lease || (lease.state !== 'active' && lease.state !== 'expired')) return {};
        const shard = this.stmt(`SELECT * FROM shards WHERE id = ?`).get(lease.shard_id) as ShardRow;
        this.endLease(lease, 'rejected', now);
        this.stmt(`UPDATE shards SET failures = failures + 1, returned = 1 WHERE id = ?`).run(shard.id);
        this.stmt(`UPDATE jobs SET returned_shards = returned_shards + ?, updated_at = ? WHERE id = ?`)
          .run(shard.returned ? 0 : 1, now, shard.job_id);
        this.stmt(`UPDATE contributors SET rejected_shards = rejected_shards + 1 WHERE id = ?`).run(lease.contributor_id);
        if (shard.failures + 1 >= maxFailures && shard.state !== 'verified') {
          return { jobFailed: `shard ${shard.id} failed verification ${shard.failures + 1} times (last: ${reason})` };
        }
        return {};
      })
      .immediate();
  }

  async releaseLease(token: string, sessionId: string, now: number): Promise<boolean> {
    return this.db
      .transaction(() => {
        const lease = this.stmt(`SELECT * FROM leases WHERE token = ? AND session_id = ? AND state = 'active'`).get(token, sessionId) as
          | LeaseRow
          | undefined;
        if (!lease) return false;
        this.endLease(lease, 'released', now);
        return true;
      })
      .immediate();
  }

  private endLeasesWhere(where: string, params: unknown[], state: LeaseState, now: number): number {
    return this.db
      .transaction(() => {
        const leases = this.stmt(`SELECT * FROM leases WHERE state = 'active' AND ${where}`).all(...params) as LeaseRow[];
        for (const l of leases) this.endLease(l, state, now);
        return leases.length;
      })
      .immediate();
  }

  async releaseSession(sessionId: string, now: number): Promise<number> {
    return this.endLeasesWhere('session_id = ?', [sessionId], 'released', now);
  }

  async expireLeases(now: number): Promise<number> {
    return this.endLeasesWhere('deadline < ?', [now], 'expired', now);
  }

  async createBenchmarkJob(job: NewBenchmarkJob): Promise<void> {
    this.db.transaction(() => {
      const over = job.quota && job.owner !== null ? quotaViolation(job, this.usageOf(job.owner)) : undefined;
      if (over) throw over;
      this.stmt(
        `INSERT INTO jobs (id, type, status, owner, verification, priority, m, k, n, tile_rows, tile_cols, total_shards, created_at, updated_at)
         VALUES (?, 'benchmark', 'queued', ?, 'freivalds', ?, ?, ?, ?, 0, 0, ?, ?, ?)`,
      ).run(job.id, job.owner, job.priority, job.m, job.k, job.n, job.contributors, job.now, job.now);
      this.stmt(`INSERT INTO benchmark_specs (job_id, spec, wait_until) VALUES (?, ?, ?)`).run(job.id, job.spec, job.waitUntil);
    }).immediate();
  }

  async benchmarkSpec(jobId: string) {
    const r = this.stmt(`SELECT spec, wait_until FROM benchmark_specs WHERE job_id = ?`).get(jobId) as { spec: string; wait_until: number } | undefined;
    return r ? { spec: r.spec, waitUntil: r.wait_until } : undefined;
  }

  async grantBenchmarkRun(req: { contributorId: string; sessionId: string; adapter: string; agentKind: string; now: number; leaseMs: (spec: string) => number }) {
    return this.db
      .transaction((): BenchmarkRunGrant | undefined => {
        const job = this.stmt(
          `SELECT j.id, b.spec FROM jobs j JOIN benchmark_specs b ON b.job_id = j.id
           WHERE j.type = 'benchmark' AND j.${ACTIVE_JOB}
             AND (SELECT count(*) FROM benchmark_runs r WHERE r.job_id = j.id AND r.state IN ('active','done')) < j.total_shards
             AND NOT EXISTS (SELECT 1 FROM benchmark_runs r WHERE r.job_id = j.id AND r.contributor_id = ? AND r.state IN ('active','done','declined','rejected'))
           ORDER BY j.priority DESC, j.created_at ASC LIMIT 1`,
        ).get(req.contributorId) as { id: string; spec: string } | undefined;
        if (!job) return undefined;
        const token = randomUUID();
        const deadline = req.now + req.leaseMs(job.spec);
        this.stmt(
          `INSERT INTO benchmark_runs (token, job_id, contributor_id, session_id, state, adapter, agent_kind, granted_at, deadline) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?)`,
        ).run(token, job.id, req.contributorId, req.sessionId, req.adapter, req.agentKind, req.now, deadline);
        this.stmt(`UPDATE jobs SET status = 'running', leased_shards = leased_shards + 1, last_granted_at = ?, updated_at = ? WHERE id = ?`).run(req.now, req.now, job.id);
        return { token, jobId: job.id, spec: job.spec, deadline };
      })
      .immediate();
  }

  async findBenchmarkRun(token: string): Promise<BenchmarkRunLookup | undefined> {
    const r = this.stmt(
      `SELECT r.token, r.state, r.contributor_id, r.session_id, r.deadline, r.job_id, b.spec FROM benchmark_runs r JOIN benchmark_specs b ON b.job_id = r.job_id WHERE r.token = ?`,
    ).get(token) as { token: string; state: BenchmarkRunState; contributor_id: string; session_id: string; deadline: number; job_id: string; spec: string } | undefined;
    const job = r ? this.jobById(r.job_id) : undefined;
    if (!r || !job) return undefined;
    return { token: r.token, state: r.state, contributorId: r.contributor_id, sessionId: r.session_id, deadline: r.deadline, job, spec: r.spec };
  }

  async endBenchmarkRun(token: string, state: 'done' | 'declined' | 'rejected', now: number, result?: string) {
    return this.db
      .transaction(() => {
        const r = this.stmt(`SELECT job_id FROM benchmark_runs WHERE token = ? AND state = 'active'`).get(token) as { job_id: string } | undefined;
        if (!r) return { ended: false, done: 0, total: 0 };
        this.stmt(`UPDATE benchmark_runs SET state = ?, ended_at = ?, result = ? WHERE token = ?`).run(state, now, result ?? null, token);
        const counted = state === 'done' ? 1 : 0;
        this.stmt(
          `UPDATE jobs SET leased_shards = max(leased_shards - 1, 0), returned_shards = returned_shards + 1, verified_shards = verified_shards + ?, updated_at = ? WHERE id = ?`,
        ).run(counted, now, r.job_id);
        const job = this.jobById(r.job_id)!;
        return { ended: true, done: job.verifiedShards, total: job.totalShards };
      })
      .immediate();
  }

  async endActiveBenchmarkRuns(filter: BenchmarkRunFilter, now: number): Promise<number> {
    const [where, params, state]: [string, unknown[], BenchmarkRunState] =
      'sessionId' in filter
        ? filter.token !== undefined
          ? ['session_id = ? AND token = ?', [filter.sessionId, filter.token], 'released']
          : ['session_id = ?', [filter.sessionId], 'released']
        : 'deadlineBefore' in filter
          ? ['deadline < ?', [filter.deadlineBefore], 'expired']
          : filter.sessionPrefix !== undefined
            ? ['substr(session_id, 1, ?) = ?', [filter.sessionPrefix.length, filter.sessionPrefix], 'released']
            : ['1 = 1', [], 'released'];
    return this.db
      .transaction(() => {
        const jobs = this.stmt(`SELECT job_id, count(*) AS n FROM benchmark_runs WHERE state = 'active' AND ${where} GROUP BY job_id`).all(...params) as { job_id: string; n: number }[];
        for (const j of jobs) this.stmt(`UPDATE jobs SET leased_shards = max(leased_shards - ?, 0), updated_at = ? WHERE id = ?`).run(j.n, now, j.job_id);
        return this.stmt(`UPDATE benchmark_runs SET state = ?, ended_at = ? WHERE state = 'active' AND ${where}`).run(state, now, ...params).changes;
      })
      .immediate();
  }

  async benchmarkJobsDue(now: number): Promise<string[]> {
    const rows = this.stmt(
      `SELECT j.id FROM jobs j JOIN benchmark_specs b ON b.job_id = j.id
       WHERE j.type = 'benchmark' AND j.${ACTIVE_JOB} AND (j.verified_shards >= j.total_shards OR b.wait_until <= ?)`,
    ).all(now) as { id: string }[];
    return rows.map((r) => r.id);
  }

  async benchmarkRuns(jobId: string): Promise<BenchmarkRunRecord[]> {
    const rows = this.stmt(
      `SELECT contributor_id, adapter, agent_kind, result, ended_at FROM benchmark_runs WHERE job_id = ? AND state = 'done' ORDER BY ended_at`,
    ).all(jobId) as { contributor_id: string; adapter: string; agent_kind: string; result: string; ended_at: number }[];
    return rows.map((r) => ({ contributorId: r.contributor_id, adapter: r.adapter, agentKind: r.agent_kind, result: r.result, endedAt: r.ended_at }));
  }

  async recentBenchmarks(limit: number) {
    const rows = this.stmt(
      `SELECT j.*, b.spec AS bench_spec FROM jobs j JOIN benchmark_specs b ON b.job_id = j.id
       WHERE j.type = 'benchmark' AND j.status = 'completed' AND j.hidden = 0 ORDER BY j.completed_at DESC LIMIT ?`,
    ).all(limit) as (JobRow & { bench_spec: string })[];
    return rows.map((r) => ({ job: toJob(r), spec: r.bench_spec }));
  }

  async releaseAllActiveLeases(now: number, sessionPrefix?: string): Promise<number> {
    if (sessionPrefix === undefined) {
      const runs = await this.endActiveBenchmarkRuns({ all: true }, now);
      return runs + this.endLeasesWhere('1 = 1', [], 'released', now);
    }
    const runs = await this.endActiveBenchmarkRuns({ all: true, sessionPrefix }, now);
    return runs + this.endLeasesWhere('substr(session_id, 1, ?) = ?', [sessionPrefix.length, sessionPrefix], 'released', now);
  }

  async claimFinalize(jobId: string, nodeId: string, now: number, staleMs: number): Promise<boolean> {
    const row = this.stmt(
      `INSERT INTO finalize_claims (job_id, node_id, claimed_at)
       SELECT id, @nodeId, @now FROM jobs WHERE id = @jobId AND ${ACTIVE_JOB}
       ON CONFLICT (job_id) DO UPDATE SET node_id = excluded.node_id, claimed_at = excluded.claimed_at
         WHERE finalize_claims.node_id = excluded.node_id OR finalize_claims.claimed_at < @staleBefore
       RETURNING job_id`,
    ).get({ jobId, nodeId, now, staleBefore: now - staleMs });
    return row !== undefined;
  }

  async initSetting(name: string, value: string): Promise<string> {
    this.stmt(`INSERT INTO settings (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`).run(name, value, Date.now());
    return (this.stmt(`SELECT value FROM settings WHERE name = ?`).get(name) as { value: string }).value;
  }

  async createApiKey(k: KeyLimits & { id: string; name: string; keyHash: string; now: number }): Promise<void> {
    this.stmt(
      `INSERT INTO api_keys (id, name, key_hash, created_at, max_concurrent_jobs, max_stored_bytes, max_upload_bytes, requests_per_minute)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(k.id, k.name, k.keyHash, k.now, k.maxConcurrentJobs, k.maxStoredBytes, k.maxUploadBytes, k.requestsPerMinute);
  }

  private static toKey(r: KeyRow): ApiKeyRecord {
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

  async findApiKeyByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const r = this.stmt(`SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL`).get(keyHash) as KeyRow | undefined;
    return r ? SqliteStore.toKey(r) : undefined;
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return (this.stmt(`SELECT * FROM api_keys ORDER BY created_at`).all() as KeyRow[]).map((r) => SqliteStore.toKey(r));
  }

  async revokeApiKey(name: string, now: number): Promise<boolean> {
    return this.stmt(`UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`).run(now, name).changes > 0;
  }

  async apiKeysRevokedSince(since: number): Promise<RevokedKey[]> {
    return this.stmt(`SELECT id, name, revoked_at AS revokedAt FROM api_keys WHERE revoked_at >= ? ORDER BY revoked_at, id`).all(since) as RevokedKey[];
  }

  async activeJobsOfRevokedKeys(): Promise<{ jobId: string; owner: string }[]> {
    return this.stmt(
      `SELECT jobs.id AS jobId, jobs.owner AS owner FROM jobs JOIN api_keys ON api_keys.id = jobs.owner
       WHERE jobs.${ACTIVE_JOB} AND api_keys.revoked_at IS NOT NULL ORDER BY jobs.created_at, jobs.id`,
    ).all() as { jobId: string; owner: string }[];
  }

  async ownerUsage(owner: string): Promise<OwnerUsage> {
    return this.usageOf(owner);
  }

  private usageOf(owner: string): OwnerUsage {
    const r = this.stmt(
      `SELECT
         sum(CASE WHEN status IN ('queued','running') THEN 1 ELSE 0 END) AS active,
         sum(CASE WHEN status IN ('queued','running') THEN input_bytes ELSE 0 END)
           + sum(CASE WHEN result_deleted = 0 AND status IN ('queued','running','completed') THEN result_bytes ELSE 0 END) AS bytes
       FROM jobs WHERE owner = ? AND hidden = 0`,
    ).get(owner) as { active: number | null; bytes: number | null };
    return { activeJobs: r.active ?? 0, storedBytes: r.bytes ?? 0 };
  }

  async resultsToExpire(before: number): Promise<string[]> {
    return (
      this.stmt(`SELECT id FROM jobs WHERE status = 'completed' AND result_deleted = 0 AND hidden = 0 AND completed_at < ?`).all(before) as { id: string }[]
    ).map((r) => r.id);
  }

  async markResultDeleted(jobId: string): Promise<void> {
    this.stmt(`UPDATE jobs SET result_deleted = 1, updated_at = ? WHERE id = ?`).run(Date.now(), jobId);
  }

  async registerContributor(c: { id: string; tokenHash: string; kind: string; adapter: string; now: number; address?: string }): Promise<void> {
    this.stmt(`INSERT INTO contributors (id, token_hash, kind, adapter, created_at, last_seen_at, address) VALUES (?, ?, ?, ?, ?, ?, ?)`)
      .run(c.id, c.tokenHash, c.kind, c.adapter, c.now, c.now, c.address ?? null);
  }

  async identitiesMintedSince(address: string, since: number): Promise<{ count: number; oldestAt: number | null }> {
    const r = this.stmt(`SELECT COUNT(*) AS count, MIN(created_at) AS oldest FROM contributors WHERE address = ? AND created_at >= ?`).get(address, since) as {
      count: number;
      oldest: number | null;
    };
    return { count: r.count, oldestAt: r.oldest };
  }

  async recordAddressBan(prefix: string, contributorId: string, now: number): Promise<void> {
    this.stmt(
      `INSERT INTO address_bans (prefix, contributor_id, banned_at) VALUES (?, ?, ?)
       ON CONFLICT (prefix) DO UPDATE SET contributor_id = excluded.contributor_id, banned_at = excluded.banned_at WHERE excluded.banned_at >= address_bans.banned_at`,
    ).run(prefix, contributorId, now);
  }

  async addressBan(prefix: string): Promise<{ contributorId: string; bannedAt: number } | undefined> {
    const r = this.stmt(`SELECT contributor_id, banned_at FROM address_bans WHERE prefix = ?`).get(prefix) as { contributor_id: string; banned_at: number } | undefined;
    return r ? { contributorId: r.contributor_id, bannedAt: r.banned_at } : undefined;
  }

  async findContributorByTokenHash(tokenHash: string): Promise<ContributorRecord | undefined> {
    const row = this.stmt(`SELECT id FROM contributors WHERE token_hash = ?`).get(tokenHash) as { id: string } | undefined;
    return row ? this.getContributor(row.id) : undefined;
  }

  async touchContributor(id: string, kind: string, adapter: string, now: number): Promise<void> {
    this.stmt(`UPDATE contributors SET kind = ?, adapter = ?, last_seen_at = ? WHERE id = ?`).run(kind, adapter, now, id);
  }

  async getContributor(id: string): Promise<ContributorRecord | undefined> {
    const r = this.stmt(`SELECT c.*, t.name AS team_name, ${CONTRIBUTOR_PROBATION} FROM contributors c LEFT JOIN teams t ON t.id = c.team_id WHERE c.id = ?`).get(id) as
      | (ContributorRow & { team_name: string | null })
      | undefined;
    if (!r) return undefined;
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

  async updateTrust(contributorId: string, change: (rec: TrustRecord) => TrustRecord, reason: string): Promise<TrustRecord> {
    return this.db
      .transaction(() => {
        const r = this.stmt(`SELECT c.*, ${CONTRIBUTOR_PROBATION} FROM contributors c WHERE c.id = ?`).get(contributorId) as ContributorRow | undefined;
        if (!r) throw new Error(`no contributor ${contributorId}`);
        const before = toTrust(r);
        const next = change(before);
        this.stmt(
          `UPDATE contributors SET status = ?, strikes = ?, clean_since_strike = ?, canaries_passed = ?, canaries_failed = ?,
             verified_jobs = ?, last_verified_job = ?, first_verified_at = ?,
             status_reason = CASE WHEN ? != status THEN ? ELSE status_reason END WHERE id = ?`,
        ).run(
          next.status,
          next.strikes,
          next.cleanSinceStrike,
          next.canariesPassed,
          next.canariesFailed,
          next.verifiedJobs,
          next.lastVerifiedJob,
          next.firstVerifiedAt,
          next.status,
          reason,
          contributorId,
        );
        // What the store counts itself (with the credit, from address_bans) is as stored, whatever `change` did to it.
        return { ...next, verified: before.verified, verifiedFlops: before.verifiedFlops, probation: before.probation };
      })
      .immediate();
  }

  async releaseContributor(contributorId: string, now: number): Promise<number> {
    return this.endLeasesWhere('contributor_id = ?', [contributorId], 'released', now);
  }

  async leaseShard(
    shardId: string,
    req: Omit<LeaseGrantRequest, 'max' | 'prefer' | 'speculateAfterMs' | 'maxActivePerSession' | 'jobTypes' | 'heldBlobs' | 'deferJobs'>,
  ): Promise<GrantedLease | undefined> {
    return this.db
      .transaction(() => {
        const shard = this.stmt(`SELECT * FROM shards WHERE id = ? AND state = 'queued'`).get(shardId) as ShardRow | undefined;
        if (!shard) return undefined;
        const job = this.jobById(shard.job_id)!;
        const work: ShardWork = {
          shardId,
          jobId: job.id,
          jobType: job.type,
          rowPanel: shard.row_panel,
          colPanel: shard.col_panel,
          rows: shard.rows,
          cols: shard.cols,
          k: job.k,
          a: this.panel(job.id, 'a', shard.row_panel),
          b: this.panel(job.id, 'b', shard.col_panel),
        };
        const token = randomUUID();
        const deadline = req.now + req.leaseMsFor(work);
        this.stmt(
          `INSERT INTO leases (token, shard_id, contributor_id, session_id, state, granted_at, deadline) VALUES (?, ?, ?, ?, 'active', ?, ?)`,
        ).run(token, shardId, req.contributorId, req.sessionId, req.now, deadline);
        this.stmt(`UPDATE shards SET state = 'leased', attempts = attempts + 1 WHERE id = ?`).run(shardId);
        this.stmt(`UPDATE jobs SET status = 'running', leased_shards = leased_shards + 1, updated_at = ? WHERE id = ?`).run(req.now, job.id);
        return { ...work, token, deadline };
      })
      .immediate();
  }

  async addPendingResult(token: string, sha256: string, bytes: number, now: number, network?: string): Promise<PendingResult[]> {
    return this.db
      .transaction(() => {
        const lease = this.stmt(`SELECT * FROM leases WHERE token = ?`).get(token) as LeaseRow | undefined;
        if (!lease) return [];
        this.stmt(`INSERT OR REPLACE INTO shard_results (token, shard_id, contributor_id, sha256, bytes, created_at, address) VALUES (?, ?, ?, ?, ?, ?, ?)`).run(
          token,
          lease.shard_id,
          lease.contributor_id,
          sha256,
          bytes,
          now,
          network ?? null,
        );
        const shard = this.stmt(`SELECT * FROM shards WHERE id = ?`).get(lease.shard_id) as ShardRow;
        if (!shard.returned) {
          this.stmt(`UPDATE shards SET returned = 1 WHERE id = ?`).run(shard.id);
          this.stmt(`UPDATE jobs SET returned_shards = returned_shards + 1 WHERE id = ?`).run(shard.job_id);
        }
        this.endLease(lease, 'returned', now); // the shard is queued again for a replica
        return this.pendingFor(lease.shard_id);
      })
      .immediate();
  }

  private pendingFor(shardId: string): PendingResult[] {
    return this.stmt(
      `SELECT token, contributor_id AS contributorId, sha256, bytes, address AS network, created_at AS createdAt FROM shard_results WHERE shard_id = ? ORDER BY created_at`,
    ).all(shardId) as PendingResult[];
  }

  async awaitingReplicas(jobId: string): Promise<{ shards: number; oldest: number | null }> {
    const r = this.stmt(
      `SELECT count(DISTINCT p.shard_id) AS shards, min(p.created_at) AS oldest FROM shard_results p JOIN shards s ON s.id = p.shard_id
       WHERE s.job_id = ? AND s.state != 'verified'`,
    ).get(jobId) as { shards: number; oldest: number | null };
    return r;
  }

  async parkedOlderThan(now: number): Promise<(PendingResult & { shardId: string })[]> {
    return this.stmt(
      `SELECT p.token, p.shard_id AS shardId, p.contributor_id AS contributorId, p.sha256, p.bytes, p.address AS network, p.created_at AS createdAt
       FROM shard_results p JOIN shards s ON s.id = p.shard_id JOIN jobs j ON j.id = s.job_id
       WHERE j.replica_wait_ms IS NOT NULL AND j.${ACTIVE_JOB} AND s.state != 'verified' AND p.created_at + j.replica_wait_ms <= ?
       ORDER BY p.created_at LIMIT 100`,
    ).all(now) as (PendingResult & { shardId: string })[];
  }

  async shardsFromBanned(jobId: string): Promise<{ shards: number; contributors: number; regions: ShardRegion[] }> {
    const counts = this.stmt(
      `SELECT count(*) AS shards, count(DISTINCT s.verified_by) AS contributors FROM shards s JOIN contributors c ON c.id = s.verified_by
       WHERE s.job_id = ? AND s.state = 'verified' AND c.status = 'banned'`,
    ).get(jobId) as { shards: number; contributors: number };
    const regions =
      counts.shards === 0
        ? []
        : (this.stmt(
            `SELECT s.row0, s.col0, s.rows, s.cols FROM shards s JOIN contributors c ON c.id = s.verified_by
             WHERE s.job_id = ? AND s.state = 'verified' AND c.status = 'banned' ORDER BY s.row0, s.col0 LIMIT ?`,
          ).all(jobId, MAX_LISTED_REGIONS) as ShardRegion[]);
    return { ...counts, regions };
  }

  async pendingResults(shardId: string): Promise<PendingResult[]> {
    return this.pendingFor(shardId);
  }

  async dropPendingResults(filter: { shardId?: string; contributorId?: string; tokens?: string[] }): Promise<string[]> {
    return this.db
      .transaction(() => {
        const where: string[] = [];
        const params: unknown[] = [];
        if (filter.shardId) (where.push('shard_id = ?'), params.push(filter.shardId));
        if (filter.contributorId) (where.push('contributor_id = ?'), params.push(filter.contributorId));
        if (filter.tokens) (where.push('token IN (SELECT value FROM json_each(?))'), params.push(JSON.stringify(filter.tokens)));
        if (where.length === 0) return [];
        const clause = where.join(' AND ');
        const shas = (this.stmt(`SELECT DISTINCT sha256 FROM shard_results WHERE ${clause}`).all(...params) as { sha256: string }[]).map((r) => r.sha256);
        this.stmt(`DELETE FROM shard_results WHERE ${clause}`).run(...params);
        return shas.filter((sha) => !this.blobInUse(sha));
      })
      .immediate();
  }

}
