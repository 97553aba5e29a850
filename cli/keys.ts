/**
 * Operator's key management: `npm run keys -- create --name alice`,
 * `npm run keys -- list`, `npm run keys -- revoke --name alice`.
 * Works on the data directory (TESSERA_DATA_DIR, default ./data) directly;
 * the coordinator may be running.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { createApiKey } from '../server/auth/api-keys';
import { loadConfig } from '../server/config';
import { SqliteStore } from '../server/store/sqlite-store';

const positive = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
};

function openStore(): SqliteStore {
  const config = loadConfig();
  mkdirSync(config.dataDir, { recursive: true });
  return new SqliteStore(join(config.dataDir, 'tessera.db'));
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
    const store = openStore();
    try {
      const { key, secret } = await createApiKey(store, opts.name, {
        maxConcurrentJobs: opts.maxJobs ?? d.maxConcurrentJobs,
        maxStoredBytes: opts.maxStoredBytes ?? d.maxStoredBytes,
        maxUploadBytes: opts.maxUploadBytes ?? d.maxUploadBytes,
        requestsPerMinute: opts.requestsPerMinute ?? d.requestsPerMinute,
      });
      console.log(`created key "${key.name}" (${key.id}). Store it now; it is not shown again:\n${secret}`);
    } catch (err) {
      console.error(err instanceof Error && /UNIQUE/.test(err.message) ? `a key named "${opts.name}" already exists` : String(err instanceof Error ? err.message : err));
      process.exitCode = 1;
    } finally {
      store.close();
    }
  });

program.command('list').action(async () => {
  const store = openStore();
  try {
    for (const k of await store.listApiKeys()) {
      const state = k.revokedAt ? `revoked ${new Date(k.revokedAt).toISOString()}` : 'active';
      console.log(`${k.name}\t${k.id}\t${state}\tjobs ≤ ${k.maxConcurrentJobs}, stored ≤ ${k.maxStoredBytes} B, upload ≤ ${k.maxUploadBytes} B, ${k.requestsPerMinute}/min`);
    }
  } finally {
    store.close();
  }
});

program
  .command('revoke')
  .requiredOption('--name <name>')
  .action(async (opts: { name: string }) => {
    const store = openStore();
    try {
      if (await store.revokeApiKey(opts.name, Date.now())) console.log(`revoked "${opts.name}"`);
      else {
        console.error(`no active key named "${opts.name}"`);
        process.exitCode = 1;
      }
    } finally {
      store.close();
    }
  });

await program.parseAsync();
