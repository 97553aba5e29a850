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
    priority INTEGER NOT NULL DEFAULT 0,
    m INTEGER NOT NULL, k INTEGER NOT NULL, n INTEGER NOT NULL,
    tile_rows INTEGER NOT NULL, tile_cols INTEGER NOT NULL,
    total_shards INTEGER NOT NULL,
    returned_shards INTEGER NOT NULL DEFAULT 0,
    leased_shards INTEGER NOT NULL DEFAULT 0,
    last_granted_at INTEGER NOT NULL DEFAULT 0,
    verified_shards INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    completed_at INTEGER
  );
  CREATE INDEX jobs_status ON jobs (status, priority DESC, created_at);
  CREATE INDEX jobs_owner ON jobs (owner, created_at);

  CREATE TABLE job_panels (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    side TEXT NOT NULL CHECK (side IN ('a','b')),
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

  CREATE TABLE contributors (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    adapter TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    verified_shards INTEGER NOT NULL DEFAULT 0,
    rejected_shards INTEGER NOT NULL DEFAULT 0,
    flops REAL NOT NULL DEFAULT 0
  );
  `,
];

export function migrate(db: Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
