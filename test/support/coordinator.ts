import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCAL_KEY_FILE } from '../../server/auth/api-keys';
import { loadConfig, type Config } from '../../server/config';
import { startCoordinator, type Coordinator } from '../../server/coordinator';
import { createLogger } from '../../server/logger';
import { decodeNpy } from '../../shared/npy';
import type { BenchmarkReport, JobView } from '../../shared/api';
import { npyBlob } from './matrices';

const keys = new Map<string, string>();

/** Remembers the API key of the coordinator at `url`; the helpers below send it. */
export async function registerLocalKey(url: string, dataDir: string): Promise<string> {
  const key = (await readFile(join(dataDir, LOCAL_KEY_FILE), 'utf8')).trim();
  keys.set(url, key);
  return key;
}

export function authHeaders(url: string): Record<string, string> {
  const key = keys.get(url);
  return key ? { authorization: `Bearer ${key}` } : {};
}

export interface TestCoordinator extends Coordinator {
  dataDir: string;
  config: Config;
  /** The local API key the coordinator created on first start. */
  apiKey: string;
  /** Closes the coordinator and deletes its data directory. */
  dispose(): Promise<void>;
}

export async function makeDataDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'tessera-test-'));
}

export function testConfig(dataDir: string, overrides: Partial<Config> = {}): Config {
  // Tile shapes stay as each test asks (targetTiles), whatever kernels the test's contributors tuned.
  return { ...loadConfig({ TESSERA_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1' }), tilesFollowKernels: false, ...overrides };
}

export async function startTestCoordinator(overrides: Partial<Config> = {}, dataDir?: string): Promise<TestCoordinator> {
  const dir = dataDir ?? (await makeDataDir());
  const config = testConfig(dir, overrides);
  const c = await startCoordinator(config, createLogger(process.env.TESSERA_TEST_LOG ?? 'silent'));
  const apiKey = await registerLocalKey(c.url, dir);
  return {
    ...c,
    dataDir: dir,
    config,
    apiKey,
    async dispose() {
      await c.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function submitMatmul(url: string, a: { rows: number; cols: number; data: Float32Array }, b: { rows: number; cols: number; data: Float32Array }): Promise<JobView> {
  const form = new FormData();
  form.set('type', 'matmul');
  form.set('a', npyBlob(a.rows, a.cols, a.data), 'a.npy');
  form.set('b', npyBlob(b.rows, b.cols, b.data), 'b.npy');
  const res = await fetch(`${url}/api/v1/jobs`, { method: 'POST', body: form, headers: authHeaders(url) });
  if (res.status !== 201) throw new Error(`submit failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as JobView;
}

export async function getJob(url: string, id: string): Promise<JobView> {
  const res = await fetch(`${url}/api/v1/jobs/${id}`, { headers: authHeaders(url) });
  if (!res.ok) throw new Error(`GET job ${id}: ${res.status}`);
  return (await res.json()) as JobView;
}

export async function waitForJob(
  url: string,
  id: string,
  timeoutMs = 60_000,
  until: (j: JobView) => boolean = (j) => j.status !== 'queued' && j.status !== 'running',
  pollMs = 50,
): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await getJob(url, id);
    if (until(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status} after ${timeoutMs} ms (${JSON.stringify(job.progress)})`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export async function downloadResult(url: string, id: string): Promise<{ shape: number[]; data: Float32Array }> {
  const res = await fetch(`${url}/api/v1/jobs/${id}/result`, { headers: authHeaders(url) });
  if (!res.ok) throw new Error(`result ${id}: ${res.status} ${await res.text()}`);
  return decodeNpy(new Uint8Array(await res.arrayBuffer()));
}

/** POST /api/v1/jobs with type=benchmark and these fields; returns the raw response. */
export async function postBenchmark(url: string, fields: Record<string, string>, files: Record<string, Blob> = {}): Promise<Response> {
  const form = new FormData();
  form.set('type', 'benchmark');
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  for (const [k, v] of Object.entries(files)) form.set(k, v, `${k}.npy`);
  return fetch(`${url}/api/v1/jobs`, { method: 'POST', body: form, headers: authHeaders(url) });
}

export async function benchmarkReport(url: string, id: string): Promise<BenchmarkReport> {
  const res = await fetch(`${url}/api/v1/jobs/${id}/result`, { headers: authHeaders(url) });
  if (!res.ok) throw new Error(`benchmark report ${id}: ${res.status} ${await res.text()}`);
  return (await res.json()) as BenchmarkReport;
}
