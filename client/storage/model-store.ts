import { openDB, type DBSchema, type IDBPDatabase } from 'idb';

/**
 * Model packages the contributor keeps across reloads, in IndexedDB, by
 * sha256: a model's weights are downloaded once per browser, whichever job
 * or session asks for them. Least recently used packages go first when the
 * kept total passes the budget.
 */
interface ModelDB extends DBSchema {
  packages: { key: string; value: { sha256: string; bytes: ArrayBuffer; size: number; usedAt: number } };
}

const BUDGET_BYTES = 1024 * 1024 * 1024;

let dbPromise: Promise<IDBPDatabase<ModelDB>> | undefined;

function db(): Promise<IDBPDatabase<ModelDB>> {
  dbPromise ??= openDB<ModelDB>('tessera-models', 1, {
    upgrade(database) {
      database.createObjectStore('packages', { keyPath: 'sha256' });
    },
  });
  return dbPromise;
}

export interface ModelStore {
  get(sha256: string): Promise<ArrayBuffer | undefined>;
  put(sha256: string, bytes: ArrayBuffer): Promise<void>;
  /** Every kept package's sha256, told to the coordinator in hello. */
  list(): Promise<string[]>;
}

export const indexedDbModelStore: ModelStore = {
  async get(sha256) {
    const d = await db();
    const rec = await d.get('packages', sha256);
    if (!rec) return undefined;
    await d.put('packages', { ...rec, usedAt: Date.now() });
    return rec.bytes;
  },
  async put(sha256, bytes) {
    const d = await db();
    await d.put('packages', { sha256, bytes, size: bytes.byteLength, usedAt: Date.now() });
    const all = (await d.getAll('packages')).sort((a, b) => a.usedAt - b.usedAt);
    let total = all.reduce((s, r) => s + r.size, 0);
    for (const r of all) {
      if (total <= BUDGET_BYTES || r.sha256 === sha256) break;
      await d.delete('packages', r.sha256);
      total -= r.size;
    }
  },
  async list() {
    return (await db()).getAllKeys('packages');
  },
};
