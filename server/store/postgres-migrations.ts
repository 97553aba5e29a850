import type { Pool } from 'pg';

/**
 * PostgreSQL schema, the same tables as migrations.ts (SQLite) with PostgreSQL
 * types: epoch-millisecond times and byte counts are BIGINT (an INTEGER would
 * overflow), credits and FLOPs DOUBLE PRECISION, flags BOOLEAN.
 *
 * Several coordinators may start at once against one database, so the run is
 * serialised by a session advisory lock; each migration is its own transaction
 * and records its version in schema_migrations, so a crash leaves the schema at
 * a whole version.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed','cancelled')),
    owner TEXT,
    verification TEXT NOT NULL DEFAULT 'freivalds' CHECK (verification IN ('freivalds','replication')),
    -- canary jobs: known-answer work mixed into the stream, never listed or assembled
    hidden BOOLEAN NOT NULL DEFAULT FALSE,
    priority INTEGER NOT NULL DEFAULT 0,
    m INTEGER NOT NULL, k INTEGER NOT NULL, n INTEGER NOT NULL,
    tile_rows INTEGER NOT NULL, tile_cols INTEGER NOT NULL,
    total_shards INTEGER NOT NULL,
    returned_shards INTEGER NOT NULL DEFAULT 0,
    leased_shards INTEGER NOT NULL DEFAULT 0,
    last_granted_at BIGINT NOT NULL DEFAULT 0,
    verified_shards INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    input_bytes BIGINT NOT NULL DEFAULT 0,
    result_bytes BIGINT NOT NULL DEFAULT 0,
    -- the result file was deleted (expired, or deleted by its owner)
    result_deleted BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT
  );
  CREATE INDEX jobs_status ON jobs (status, priority DESC, created_at);
  CREATE INDEX jobs_owner ON jobs (owner, created_at);

  CREATE TABLE job_panels (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    -- a/b: input panels; answer/tolerance: a canary's known result and its per-element tolerance
    side TEXT NOT NULL CHECK (side IN ('a','b','answer','tolerance')),
    idx INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    PRIMARY KEY (job_id, side, idx)
  );
  CREATE INDEX job_panels_sha ON job_panels (sha256);

  CREATE TABLE shards (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    row_panel INTEGER NOT NULL, col_panel INTEGER NOT NULL,
    row0 INTEGER NOT NULL, col0 INTEGER NOT NULL,
    rows INTEGER NOT NULL, cols INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued','leased','verified','cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    returned BOOLEAN NOT NULL DEFAULT FALSE,
    verified_by TEXT,
    verified_at BIGINT,
    UNIQUE (job_id, idx)
  );
  CREATE INDEX shards_queue ON shards (state, job_id, idx);

  CREATE TABLE leases (
    token TEXT PRIMARY KEY,
    shard_id TEXT NOT NULL REFERENCES shards(id) ON DELETE CASCADE,
    contributor_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active','returned','rejected','expired','released','superseded','cancelled')),
    granted_at BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    ended_at BIGINT
  );
  CREATE INDEX leases_active ON leases (state, deadline);
  CREATE INDEX leases_session ON leases (session_id, state);
  CREATE INDEX leases_shard ON leases (shard_id, state);
  CREATE INDEX leases_contributor ON leases (contributor_id, state);

  -- results waiting for a matching replica (replicated verification); seq keeps
  -- results parked in the same millisecond in arrival order, as SQLite's rowid does
  CREATE TABLE shard_results (
    token TEXT PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    shard_id TEXT NOT NULL REFERENCES shards(id) ON DELETE CASCADE,
    contributor_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL
  );
  CREATE INDEX shard_results_shard ON shard_results (shard_id);
  CREATE INDEX shard_results_contributor ON shard_results (contributor_id);
  CREATE INDEX shard_results_sha ON shard_results (sha256);

  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    max_concurrent_jobs INTEGER NOT NULL,
    max_stored_bytes BIGINT NOT NULL,
    max_upload_bytes BIGINT NOT NULL,
    requests_per_minute INTEGER NOT NULL
  );

  CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    skeleton TEXT NOT NULL UNIQUE,
    credits DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
  );
  CREATE INDEX teams_credits ON teams (credits DESC);

  CREATE TABLE contributors (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    adapter TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    verified_shards INTEGER NOT NULL DEFAULT 0,
    rejected_shards INTEGER NOT NULL DEFAULT 0,
    flops DOUBLE PRECISION NOT NULL DEFAULT 0,
    credits DOUBLE PRECISION NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','quarantined','banned')),
    status_reason TEXT,
    strikes INTEGER NOT NULL DEFAULT 0,
    clean_since_strike INTEGER NOT NULL DEFAULT 0,
    canaries_passed INTEGER NOT NULL DEFAULT 0,
    canaries_failed INTEGER NOT NULL DEFAULT 0,
    display_name TEXT,
    name_skeleton TEXT UNIQUE,
    team_id TEXT REFERENCES teams(id)
  );
  CREATE INDEX contributors_credits ON contributors (credits DESC);
  CREATE INDEX contributors_team ON contributors (team_id);

  -- aggregates kept as results are verified, so public pages never recompute them
  CREATE TABLE contributor_days (
    contributor_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    credits DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (day, contributor_id)
  );
  CREATE TABLE team_days (
    team_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    credits DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (day, team_id)
  );
  CREATE TABLE network_minutes (
    minute BIGINT PRIMARY KEY,
    flops DOUBLE PRECISION NOT NULL
  );
  `,
  // v2: network benchmark jobs. A run is one contributor timing the job's kernel;
  // the partial unique index keeps a contributor to one live or finished run per job.
  `
  CREATE TABLE benchmark_specs (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    wait_until BIGINT NOT NULL
  );
  CREATE TABLE benchmark_runs (
    token TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    contributor_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active','done','declined','rejected','expired','released','cancelled')),
    adapter TEXT NOT NULL,
    agent_kind TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    ended_at BIGINT,
    result TEXT
  );
  CREATE UNIQUE INDEX benchmark_runs_once ON benchmark_runs (job_id, contributor_id) WHERE state IN ('active','done','declined','rejected');
  CREATE INDEX benchmark_runs_state ON benchmark_runs (state, deadline);
  CREATE INDEX benchmark_runs_session ON benchmark_runs (session_id, state);
  `,
  // v3: inference jobs. Their spec (model, inputs, outputs, tolerance) is kept as JSON beside the
  // job, and 'recompute' joins the verification methods.
  `
  CREATE TABLE job_specs (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    spec TEXT NOT NULL
  );
  ALTER TABLE jobs DROP CONSTRAINT jobs_verification_check;
  ALTER TABLE jobs ADD CONSTRAINT jobs_verification_check CHECK (verification IN ('freivalds','replication','recompute'));
  `,
  // v4: several coordinators. Exactly one node assembles a job's result (finalize_claims); blobs and
  // results live in the database, in chunks of bytea, so any node serves them without a shared disk.
  `
  CREATE TABLE finalize_claims (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    claimed_at BIGINT NOT NULL
  );
  CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL,
    -- refreshed by every put, so garbage collection spares a blob an upload on another node is about to reference
    touched_at BIGINT NOT NULL
  );
  CREATE TABLE blob_chunks (
    sha256 TEXT NOT NULL REFERENCES blobs(sha256) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (sha256, idx)
  );
  CREATE TABLE result_shapes (
    job_id TEXT PRIMARY KEY,
    m INTEGER NOT NULL,
    n INTEGER NOT NULL
  );
  CREATE TABLE result_tiles (
    job_id TEXT NOT NULL,
    row0 INTEGER NOT NULL,
    col0 INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    cols INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (job_id, row0, col0)
  );
  CREATE TABLE result_files (
    job_id TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL
  );
  CREATE TABLE result_chunks (
    job_id TEXT NOT NULL REFERENCES result_files(job_id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (job_id, idx)
  );
  `,
  // v5: network-wide settings decided once by the first node to start (the blob URL signing key).
  `
  CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
  );
  `,
  // v6: trust against patient cheaters (see the SQLite migration of the same purpose).
  `
  ALTER TABLE contributors ADD COLUMN address TEXT;
  ALTER TABLE contributors ADD COLUMN verified_jobs INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE contributors ADD COLUMN last_verified_job TEXT;
  ALTER TABLE contributors ADD COLUMN first_verified_at BIGINT;
  CREATE INDEX contributors_address ON contributors (address);
  CREATE TABLE address_bans (
    prefix TEXT PRIMARY KEY,
    contributor_id TEXT NOT NULL,
    banned_at BIGINT NOT NULL
  );
  ALTER TABLE shard_results ADD COLUMN address TEXT;
  ALTER TABLE leases ADD COLUMN result_digest TEXT;
  ALTER TABLE leases ADD COLUMN result_reply TEXT;
  ALTER TABLE jobs ADD COLUMN replica_wait_ms BIGINT;
  `,
];

/** The advisory lock key that serialises migration runs across coordinators ("tess" in ASCII). */
const MIGRATION_LOCK = 0x74657373;

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Applies the migrations this database lacks; safe to call from several processes at once. */
export async function migratePostgres(pool: Pool): Promise<void> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      // Created under the lock: concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog.
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`);
      const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
      const applied = new Set(rows.map((r) => r.version));
      for (let v = 1; v <= MIGRATIONS.length; v++) {
        if (applied.has(v)) continue;
        await client.query('BEGIN');
        try {
          await client.query(MIGRATIONS[v - 1]!);
          await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [v, Date.now()]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {
        broken = true; // a session that cannot unlock is discarded below, which releases the lock
      });
    }
  } finally {
    client.release(broken);
  }
}
