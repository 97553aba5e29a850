import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../logger';
import { sha256Hex } from '../sha256';
import type { ApiKeyRecord, KeyLimits, Store } from '../store/store';

const PREFIX = 'tsk_';

export function looksLikeApiKey(secret: string): boolean {
  return /^tsk_[A-Za-z0-9_-]{43}$/.test(secret);
}

/** Creates a key and returns its secret, which is shown once and never stored. */
export async function createApiKey(store: Store, name: string, limits: KeyLimits): Promise<{ key: ApiKeyRecord; secret: string }> {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new Error('a key name is 1–64 letters, digits, dots, dashes or underscores');
  const secret = PREFIX + randomBytes(32).toString('base64url');
  const id = randomUUID();
  await store.createApiKey({ id, name, keyHash: sha256Hex(secret), now: Date.now(), ...limits });
  const key = (await store.listApiKeys()).find((k) => k.id === id)!;
  return { key, secret };
}

// Keys are 256-bit random secrets, stored as SHA-256 only: no slow hash is needed.

export const LOCAL_KEY_FILE = 'local-api-key';

/**
 * A fresh coordinator with no key would accept no job: create one named
 * "local", print it once, and keep it in the data directory (mode 0600) so
 * the owner of the machine can read it again.
 */
export async function ensureLocalKey(store: Store, dataDir: string, limits: KeyLimits, log: Logger, announce = true): Promise<string | undefined> {
  if ((await store.listApiKeys()).length > 0) return undefined;
  const { secret } = await createApiKey(store, 'local', limits);
  const file = join(dataDir, LOCAL_KEY_FILE);
  await writeFile(file, secret + '\n', { mode: 0o600 });
  await chmod(file, 0o600);
  // The secret goes to the terminal once, not into the JSON log that may be shipped elsewhere.
  if (announce) process.stderr.write(`\nTessera: created the requester API key "local" (also saved in ${file}):\n  ${secret}\nSend it as "Authorization: Bearer <key>".\n\n`);
  log.warn({ file }, 'created the requester API key "local"');
  return secret;
}
