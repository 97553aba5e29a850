/**
 * A real browser contributor (the contributor page in Chromium, WebGPU on
 * SwiftShader, real WGSL) connected to node B finishes jobs submitted to
 * node A, two coordinator processes sharing PostgreSQL and Redis: A wakes it
 * through the shared channel, B serves it A's blobs from the database, and
 * A serves the result that B's node assembled or A did.
 */
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { launchBrowser } from '../support/browser';
import { startCluster, startClusterServices, type ClusterServices, type TestCluster } from '../support/cluster';
import { downloadResult, submitMatmul, waitForJob } from '../support/coordinator';
import { inferenceResult, onnxRuntime, postInference, randomTensor, worstRelativeError } from '../support/inference';
import { randomMatrix } from '../support/matrices';
import { mlpModel } from '../support/onnx-builder';
import type { JobView } from '../../shared/api';

let services: ClusterServices;
let cluster: TestCluster;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  services = await startClusterServices();
  cluster = await startCluster(services, 2, { TESSERA_CANARIES: 'off', TESSERA_TARGET_TILES: '4' });
  browser = await launchBrowser();
  page = await browser.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  await page.goto(`${cluster.nodes[1]!.url}/?autostart=1`);
  await page.waitForFunction(() => document.getElementById('state')?.textContent === 'idle', { timeout: 120_000 });
}, 240_000);
afterAll(async () => {
  await browser?.close();
  await cluster?.stop();
  await services?.stop();
});

describe('a browser on node B, jobs on node A', () => {
  it('computes a matmul job submitted to node A; node A serves the right C', async () => {
    const [a] = cluster.nodes;
    const [m, k, n] = [130, 70, 90];
    const A = randomMatrix(m, k, 31);
    const B = randomMatrix(k, n, 32);
    const job = await submitMatmul(a!.url, { rows: m, cols: k, data: A }, { rows: k, cols: n, data: B });
    expect(job.progress.total).toBeGreaterThan(1);
    expect((await waitForJob(a!.url, job.id, 120_000)).status).toBe('completed');
    const c = await downloadResult(a!.url, job.id);
    expect(c.shape).toEqual([m, n]);
    expect(maxToleranceRatio(c.data, matmulReference(A, B, m, k, n), 1e-4, 1e-4)).toBeLessThanOrEqual(1);
    // Every tile was computed through node B's socket.
    const { rows } = await cluster.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM leases l JOIN shards s ON s.id = l.shard_id WHERE s.job_id = $1 AND l.session_id NOT LIKE 'node-1:%'`, [job.id]);
    expect(rows[0]!.n).toBe(0);
  });

  it('runs an inference job submitted to node A; the .npy from node A matches onnxruntime-node', async () => {
    const [a] = cluster.nodes;
    const x = randomTensor([11, 16], 33);
    const res = await postInference(a!.url, mlpModel(), { x });
    expect(res.status).toBe(201);
    const job = (await res.json()) as JobView;
    expect((await waitForJob(a!.url, job.id, 120_000)).status).toBe('completed');
    const { outputs } = await inferenceResult(a!.url, job.id);
    expect(worstRelativeError(outputs['*']!, (await onnxRuntime(mlpModel(), { x })).y!)).toBeLessThan(1e-5);
    expect(pageErrors).toEqual([]);
  });
});
