import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { TuningRecord } from '../gpu/autotune';

/** What the contributor keeps across reloads, in IndexedDB (shared by the page and its worker). */
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

/** The kernel tuning for this device, if one was kept under the same key (adapter, browser, kernels). */
export async function loadTuning(key: string): Promise<TuningRecord | undefined> {
  const v = (await (await db()).get('settings', 'kernel-tuning')) as TuningRecord | undefined;
  return v && typeof v === 'object' && v.key === key ? v : undefined;
}

export async function saveTuning(t: TuningRecord): Promise<void> {
  await (await db()).put('settings', t, 'kernel-tuning');
}

export async function loadToken(): Promise<string | undefined> {
  const v = await (await db()).get('settings', 'token');
  return typeof v === 'string' ? v : undefined;
}

export async function saveToken(token: string): Promise<void> {
  await (await db()).put('settings', token, 'token');
}

export interface PageSettings {
  /** Share of time the GPU may be busy: 0.25, 0.5 or 1. */
  duty: number;
  /** Keep working while the tab is hidden. */
  background: boolean;
}

export interface PageTotals {
  verified: number;
  rejected: number;
  gflop: number;
  busyMs: number;
}

const DEFAULT_SETTINGS: PageSettings = { duty: 1, background: false };
const ZERO: PageTotals = { verified: 0, rejected: 0, gflop: 0, busyMs: 0 };

async function load<T extends object>(key: string, fallback: T): Promise<T> {
  const v = await (await db()).get('settings', key);
  return v && typeof v === 'object' ? { ...fallback, ...(v as Partial<T>) } : { ...fallback };
}

export const loadSettings = () => load('page-settings', DEFAULT_SETTINGS);
export const loadTotals = () => load('page-totals', ZERO);

export async function saveSettings(s: PageSettings): Promise<void> {
  await (await db()).put('settings', s, 'page-settings');
}

export async function saveTotals(t: PageTotals): Promise<void> {
  await (await db()).put('settings', t, 'page-totals');
}
