import { openDB, type DBSchema, type IDBPDatabase } from 'idb';

/** What the contributor keeps across reloads, in IndexedDB. */
interface TesseraDB extends DBSchema {
  settings: { key: string; value: unknown };
}

let dbPromise: Promise<IDBPDatabase<TesseraDB>> | undefined;

function db(): Promise<IDBPDatabase<TesseraDB>> {
  dbPromise ??= openDB<TesseraDB>('tessera', 1, {
    upgrade(database) {
      database.createObjectStore('settings');
    },
  });
  return dbPromise;
}

export async function loadToken(): Promise<string | undefined> {
  const v = await (await db()).get('settings', 'token');
  return typeof v === 'string' ? v : undefined;
}

export async function saveToken(token: string): Promise<void> {
  await (await db()).put('settings', token, 'token');
}
