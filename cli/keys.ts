/**
 * Operator's key management: `npm run keys -- create --name alice`,
 * `npm run keys -- list`, `npm run keys -- revoke --name alice`.
 * Works on the coordinator's store directly: the data directory's SQLite
 * (TESSERA_DATA_DIR, default ./data), or the shared PostgreSQL when
 * TESSERA_DATABASE_URL is set. Coordinators may be running: each notices a
 * revocation within a second, closes the key's event streams and cancels its
 * queued and running jobs.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { createApiKey } from '../server/auth/api-keys';
import { loadConfig } from '../server/config';
import { PostgresStore } from '../server/store/postgres-store';
import { SqliteStore } from '../server/store/sqlite-store';
import type { Store } from '../server/store/store';

const positive = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
};

/** Runs `work` on the store the coordinator uses, and closes it. */
async function withStore(work: (store: Store) => Promise<void>): Promise<void> {
  const config = loadConfig();
  if (config.cluster) {
    const store = await PostgresStore.open(config.cluster.databaseUrl, { max: 1 });
    try {
      await work(store);
    } finally {
      await store.end();
    }
    return;
  }
  mkdirSync(config.dataDir, { recursive: true });
  const store = new SqliteStore(join(config.dataDir, 'tessera.db'));
  try {
    await work(store);
  } finally {
    store.close();
  }
}

const program = new Command('keys').description('manage requester API keys');

program
  .command('create')
  .requiredOption('--name <name>', 'who the key is for (letters, digits, . _ -)')
  .option('--max-jobs <n>', 'jobs queued or running at once', positive)
  .option('--max-stored-bytes <n>', 'inputs and results kept at once', positive)
  .option('--max-upload-bytes <n>', 'largest uploaded file', positive)
  .option('--requests-per-minute <n>', 'REST requests per minute', positive)
  .action(async (opts: { name: string; maxJobs?: number; maxStoredBytes?: number; maxUploadBytes?: number; requestsPerMinute?: number }) => {
    const d = loadConfig().keyDefaults;
    await withStore(async (store) => {
      try {
        const { key, secret } = await createApiKey(store, opts.name, {
          maxConcurrentJobs: opts.maxJobs ?? d.maxConcurrentJobs,
          maxStoredBytes: opts.maxStoredBytes ?? d.maxStoredBytes,
          maxUploadBytes: opts.maxUploadBytes ?? d.maxUploadBytes,
          requestsPerMinute: opts.requestsPerMinute ?? d.requestsPerMinute,
        });
        console.log(`created key "${key.name}" (${key.id}). Store it now; it is not shown again:\n${secret}`);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        console.error(/UNIQUE|duplicate key/i.test(message) ? `a key named "${opts.name}" already exists` : message);
        process.exitCode = 1;
      }
    });
  });

program.command('list').action(async () => {
  await withStore(async (store) => {
    for (const k of await store.listApiKeys()) {
      const state = k.revokedAt ? `revoked ${new Date(k.revokedAt).toISOString()}` : 'active';
      console.log(`${k.name}\t${k.id}\t${state}\tjobs ≤ ${k.maxConcurrentJobs}, stored ≤ ${k.maxStoredBytes} B, upload ≤ ${k.maxUploadBytes} B, ${k.requestsPerMinute}/min`);
    }
  });
});

program
  .command('revoke')
  .description("revoke a key: requests with it get 401, and running coordinators close its event streams and cancel its queued and running jobs")
  .requiredOption('--name <name>')
  .action(async (opts: { name: string }) => {
    await withStore(async (store) => {
      if (await store.revokeApiKey(opts.name, Date.now())) console.log(`revoked "${opts.name}"; its queued and running jobs will be cancelled`);
      else {
        console.error(`no active key named "${opts.name}"`);
        process.exitCode = 1;
      }
    });
  });

await program.parseAsync();
