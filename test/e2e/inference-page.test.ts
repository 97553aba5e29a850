/**
 * Inference end to end through a real browser contributor: requests go over
 * REST, the contributor page runs the model's plan in WGSL on WebGPU
 * (SwiftShader), results come back as .npy/.npz and match onnxruntime-node.
 * The model's weights are downloaded once per browser: later jobs on the
 * same model, even after a reload, fetch no weights (counted on the server).
 */
import type { IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../../shared/api';
import { launchBrowser } from '../support/browser';
import { startTestCoordinator, waitForJob, type TestCoordinator } from '../support/coordinator';
import { inferenceResult, onnxRuntime, postInference, randomTensor, worstRelativeError } from '../support/inference';
import { encoderBlockModel, mlpModel, remainingOpsModel, twoOutputModel } from '../support/onnx-builder';

const clientDir = fileURLToPath(new URL('../../dist/client', import.meta.url));
let coord: TestCoordinator;
let browser: Browser;
let page: Page;
const blobGets: string[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  coord = await startTestCoordinator({ clientDir, targetTiles: 3, canaries: false });
  coord.http.on('request', (req: IncomingMessage) => {
    // Express has already routed the request when this listener runs: req.url is relative to the mount point.
    const m = /\/blobs\/([0-9a-f]{64})/.exec(req.url ?? '');
    if (m) blobGets.push(m[1]!);
  });
  browser = await launchBrowser();
  page = await browser.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  await page.goto(`${coord.url}/?autostart=1`);
  await page.waitForFunction(() => document.getElementById('state')?.textContent === 'idle', { timeout: 90_000 });
});

afterAll(async () => {
  await browser?.close();
  await coord?.dispose();
});

async function run(model: Uint8Array, x: { dims: number[]; data: Float32Array }) {
  const res = await postInference(coord.url, model, { x });
  expect(res.status).toBe(201);
  const job = (await res.json()) as JobView;
  const done = await waitForJob(coord.url, job.id, 120_000);
  expect(done.status, done.reason).toBe('completed');
  return { job, result: await inferenceResult(coord.url, job.id), want: await onnxRuntime(model, { x }) };
}

describe('inference in a real browser contributor', () => {
  it('runs an MLP batch in shards on the GPU; the .npy matches onnxruntime-node', async () => {
    const { job, result, want } = await run(mlpModel(), randomTensor([29, 16], 21));
    expect(job.progress.total).toBe(3);
    expect(result.filename).toBe(`${job.id}.npy`);
    expect(worstRelativeError(result.outputs['*']!, want.y!)).toBeLessThan(1e-5);
  });

  it('runs a transformer encoder block (attention, layer norm, GELU); matches onnxruntime-node', async () => {
    const { result, want } = await run(encoderBlockModel(), randomTensor([7, 8, 16], 22));
    expect(worstRelativeError(result.outputs['*']!, want.y!)).toBeLessThan(1e-5);
  });

  it('returns a two-output model as .npz', async () => {
    const { job, result, want } = await run(twoOutputModel(), randomTensor([5, 12], 23));
    expect(result.filename).toBe(`${job.id}.npz`);
    expect(worstRelativeError(result.outputs.probs!, want.probs!)).toBeLessThan(1e-5);
    expect(worstRelativeError(result.outputs.mean!, want.mean!)).toBeLessThan(1e-5);
  });

  it('downloads a model once: a second job on it, and a third after a reload, fetch no weights', async () => {
    // A model no earlier test used, so its first job here is its first download.
    const model = remainingOpsModel();
    const first = await run(model, randomTensor([6, 4, 6], 24));
    const sha = first.job.inference!.model.sha256;
    expect(worstRelativeError(first.result.outputs['*']!, first.want.y!)).toBeLessThan(1e-5);
    expect(blobGets.filter((b) => b === sha)).toHaveLength(1);

    const second = await run(model, randomTensor([9, 4, 6], 25));
    expect(second.job.inference!.model.sha256).toBe(sha);
    expect(worstRelativeError(second.result.outputs['*']!, second.want.y!)).toBeLessThan(1e-5);
    expect(blobGets.filter((b) => b === sha)).toHaveLength(1);

    // The worker keeps the package in IndexedDB, where the reloaded page finds it.
    const kept = await page.evaluate(
      () =>
        new Promise<string[]>((resolve, reject) => {
          const req = indexedDB.open('tessera-models');
          req.onerror = () => reject(new Error('no tessera-models database'));
          req.onsuccess = () => {
            const keys = req.result.transaction('packages').objectStore('packages').getAllKeys();
            keys.onsuccess = () => resolve(keys.result.map(String));
          };
        }),
    );
    expect(kept).toContain(sha);
    await page.reload();
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'idle', { timeout: 90_000 });
    const third = await run(model, randomTensor([4, 4, 6], 26));
    expect(worstRelativeError(third.result.outputs['*']!, third.want.y!)).toBeLessThan(1e-5);
    expect(blobGets.filter((b) => b === sha)).toHaveLength(1);
    expect(pageErrors).toEqual([]);
  });
});
