import type { Database } from 'better-sqlite3';

/**
 * Schema migrations, applied in order inside one transaction each; the
 * database's user_version records how many have run.
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
    hidden INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    m INTEGER NOT NULL, k INTEGER NOT NULL, n INTEGER NOT NULL,
    tile_rows INTEGER NOT NULL, tile_cols INTEGER NOT NULL,
    total_shards INTEGER NOT NULL,
    returned_shards INTEGER NOT NULL DEFAULT 0,
    leased_shards INTEGER NOT NULL DEFAULT 0,
    last_granted_at INTEGER NOT NULL DEFAULT 0,
    verified_shards INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    input_bytes INTEGER NOT NULL DEFAULT 0,
    result_bytes INTEGER NOT NULL DEFAULT 0,
    -- the result file was deleted (expired, or deleted by its owner)
    result_deleted INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    completed_at INTEGER
  );
  CREATE INDEX jobs_status ON jobs (status, priority DESC, created_at);
  CREATE INDEX jobs_owner ON jobs (owner, created_at);

  CREATE TABLE job_panels (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    -- a/b: input panels; answer/tolerance: a canary's known result and its per-element tolerance
    side TEXT NOT NULL CHECK (side IN ('a','b','answer','tolerance')),
    idx INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
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
    returned INTEGER NOT NULL DEFAULT 0,
    verified_by TEXT,
    verified_at INTEGER,
    UNIQUE (job_id, idx)
  );
  CREATE INDEX shards_queue ON shards (state, job_id, idx);

  CREATE TABLE leases (
    token TEXT PRIMARY KEY,
    shard_id TEXT NOT NULL REFERENCES shards(id) ON DELETE CASCADE,
    contributor_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active','returned','rejected','expired','released','superseded','cancelled')),
    granted_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    ended_at INTEGER
  );
  CREATE INDEX leases_active ON leases (state, deadline);
  CREATE INDEX leases_session ON leases (session_id, state);
  CREATE INDEX leases_shard ON leases (shard_id, state);

  -- results waiting for a matching replica (replicated verification)
  CREATE TABLE shard_results (
    token TEXT PRIMARY KEY,
    shard_id TEXT NOT NULL REFERENCES shards(id) ON DELETE CASCADE,
    contributor_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX shard_results_shard ON shard_results (shard_id);
  CREATE INDEX shard_results_contributor ON shard_results (contributor_id);

  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    max_concurrent_jobs INTEGER NOT NULL,
    max_stored_bytes INTEGER NOT NULL,
    max_upload_bytes INTEGER NOT NULL,
    requests_per_minute INTEGER NOT NULL
  );

  CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    skeleton TEXT NOT NULL UNIQUE,
    credits REAL NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX teams_credits ON teams (credits DESC);

  CREATE TABLE contributors (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    adapter TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    verified_shards INTEGER NOT NULL DEFAULT 0,
    rejected_shards INTEGER NOT NULL DEFAULT 0,
    flops REAL NOT NULL DEFAULT 0,
    credits REAL NOT NULL DEFAULT 0,
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

  -- aggregates kept as results are verified, so public pages never recompute them
  CREATE TABLE contributor_days (
    contributor_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    credits REAL NOT NULL,
    PRIMARY KEY (day, contributor_id)
  );
  CREATE TABLE team_days (
    team_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    credits REAL NOT NULL,
    PRIMARY KEY (day, team_id)
  );
  CREATE TABLE network_minutes (
    minute INTEGER PRIMARY KEY,
    flops REAL NOT NULL
  );
  `,
  // v2: network benchmark jobs. A run is one contributor timing the job's kernel;
  // the partial unique index keeps a contributor to one live or finished run per job.
  `
  CREATE TABLE benchmark_specs (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    wait_until INTEGER NOT NULL
  );
  CREATE TABLE benchmark_runs (
    token TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    contributor_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active','done','declined','rejected','expired','released','cancelled')),
    adapter TEXT NOT NULL,
    agent_kind TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    ended_at INTEGER,
    result TEXT
  );
  CREATE UNIQUE INDEX benchmark_runs_once ON benchmark_runs (job_id, contributor_id) WHERE state IN ('active','done','declined','rejected');
  CREATE INDEX benchmark_runs_state ON benchmark_runs (state, deadline);
  CREATE INDEX benchmark_runs_session ON benchmark_runs (session_id, state);
  `,
  // v3: inference jobs. Their spec (model, inputs, outputs, tolerance) is kept as JSON beside the
  // job, and 'recompute' joins the verification methods; SQLite cannot alter a CHECK, so the
  // jobs table is rebuilt (foreign keys are off while migrations run, see migrate()).
  `
  CREATE TABLE job_specs (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    spec TEXT NOT NULL
  );
  CREATE TABLE jobs_v3 (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed','cancelled')),
    owner TEXT,
    verification TEXT NOT NULL DEFAULT 'freivalds' CHECK (verification IN ('freivalds','replication','recompute')),
    hidden INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    m INTEGER NOT NULL, k INTEGER NOT NULL, n INTEGER NOT NULL,
    tile_rows INTEGER NOT NULL, tile_cols INTEGER NOT NULL,
    total_shards INTEGER NOT NULL,
    returned_shards INTEGER NOT NULL DEFAULT 0,
    leased_shards INTEGER NOT NULL DEFAULT 0,
    last_granted_at INTEGER NOT NULL DEFAULT 0,
    verified_shards INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    input_bytes INTEGER NOT NULL DEFAULT 0,
    result_bytes INTEGER NOT NULL DEFAULT 0,
    result_deleted INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    completed_at INTEGER
  );
  INSERT INTO jobs_v3 (id, type, status, owner, verification, hidden, priority, m, k, n, tile_rows, tile_cols, total_shards, returned_shards,
                       leased_shards, last_granted_at, verified_shards, reason, input_bytes, result_bytes, result_deleted, created_at, updated_at, completed_at)
    SELECT id, type, status, owner, verification, hidden, priority, m, k, n, tile_rows, tile_cols, total_shards, returned_shards,
           leased_shards, last_granted_at, verified_shards, reason, input_bytes, result_bytes, result_deleted, created_at, updated_at, completed_at FROM jobs;
  DROP TABLE jobs;
  ALTER TABLE jobs_v3 RENAME TO jobs;
  CREATE INDEX jobs_status ON jobs (status, priority DESC, created_at);
  CREATE INDEX jobs_owner ON jobs (owner, created_at);
  `,
  // Who assembles a job's result: one coordinator here, but the store interface is shared with PostgreSQL's.
  `
  CREATE TABLE finalize_claims (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    claimed_at INTEGER NOT NULL
  );
  `,
  // Network-wide settings decided once (the blob URL signing key), kept across restarts.
  `
  CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  `,
  // Trust against patient cheaters: where contributors come from (a network prefix, /24 or /64),
  // prefixes a banned identity came from, the distinct jobs a contributor's verified work spans,
  // and where a parked replica came from (two replicas from one prefix are not independent).
  `
  ALTER TABLE contributors ADD COLUMN address TEXT;
  ALTER TABLE contributors ADD COLUMN verified_jobs INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE contributors ADD COLUMN last_verified_job TEXT;
  ALTER TABLE contributors ADD COLUMN first_verified_at INTEGER;
  CREATE INDEX contributors_address ON contributors (address);
  CREATE TABLE address_bans (
    prefix TEXT PRIMARY KEY,
    contributor_id TEXT NOT NULL,
    banned_at INTEGER NOT NULL
  );
  ALTER TABLE shard_results ADD COLUMN address TEXT;
  -- a result re-sent for its lease gets the reply it got the first time
  ALTER TABLE leases ADD COLUMN result_digest TEXT;
  ALTER TABLE leases ADD COLUMN result_reply TEXT;
  -- replication: how long a Freivalds-checked tile may wait for a second contributor before it is assembled on that check alone (null: forever)
  ALTER TABLE jobs ADD COLUMN replica_wait_ms INTEGER;
  `,
];

/**
 * Foreign keys are off while migrations run (the pragma has no effect inside a transaction),
 * so a table can be rebuilt without cascading deletes; each migration checks them before it commits.
 */
export function migrate(db: Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current >= MIGRATIONS.length) return;
  const enforced = db.pragma('foreign_keys', { simple: true }) === 1;
  db.pragma('foreign_keys = OFF');
  try {
    for (let v = current; v < MIGRATIONS.length; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v]!);
        const broken = db.pragma('foreign_key_check') as unknown[];
        if (broken.length > 0) throw new Error(`migration ${v + 1} left ${broken.length} broken foreign key references`);
        db.pragma(`user_version = ${v + 1}`);
      }).immediate();
    }
  } finally {
    if (enforced) db.pragma('foreign_keys = ON');
  }
}
