import { join } from 'node:path';
import pg from 'pg';
import type { Config } from '../config';
import { PostgresStore } from '../store/postgres-store';
import { SqliteStore } from '../store/sqlite-store';
import type { Store } from '../store/store';
import { LocalBlobStore, type BlobStore } from './blob-store';
import { PostgresBlobStore } from './postgres-blob-store';
import { PostgresResultFiles } from './postgres-result-files';
import { LocalResultFiles, type ResultFiles } from './result-files';

/** Where a coordinator keeps its state: one engine for the store, the blobs and the results. */
export interface Storage {
  store: Store;
  blobs: BlobStore;
  results: ResultFiles;
  /** Networked mode's connections for blobs, results and notifications; absent in embedded mode. */
  pool?: pg.Pool;
  close(): Promise<void>;
}

/**
 * Embedded mode: SQLite and files under the data directory. Networked mode
 * (a database URL): everything in PostgreSQL, the data directory holding only
 * this node's caches and scratch files.
 */
export async function openStorage(config: Config): Promise<Storage> {
  const dir = config.dataDir;
  if (!config.cluster) {
    const store = new SqliteStore(join(dir, 'tessera.db'));
    const storage = { store, blobs: new LocalBlobStore(join(dir, 'blobs')), results: new LocalResultFiles(join(dir, 'results')) };
    await init(storage);
    return { ...storage, close: async () => store.close() };
  }
  const store = await PostgresStore.open(config.cluster.databaseUrl);
  const pool = new pg.Pool({ connectionString: config.cluster.databaseUrl, max: 6 });
  // An idle connection that breaks (database restart) must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  const storage = {
    store,
    blobs: new PostgresBlobStore(pool, new LocalBlobStore(join(dir, 'blob-cache'))),
    results: new PostgresResultFiles(pool, new LocalResultFiles(join(dir, 'results'))),
  };
  try {
    await init(storage);
  } catch (err) {
    await Promise.allSettled([store.end(), pool.end()]);
    throw err;
  }
  return {
    ...storage,
    pool,
    async close() {
      await Promise.allSettled([store.end(), pool.end()]);
    },
  };
}

async function init(s: { blobs: BlobStore; results: ResultFiles }): Promise<void> {
  await s.blobs.init();
  await s.results.init();
}
