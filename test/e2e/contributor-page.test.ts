import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { launchBrowser } from '../support/browser';
import { downloadResult, makeDataDir, startTestCoordinator, submitMatmul, waitForJob, type TestCoordinator } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';
import { spawnAgent, type AgentProcess } from '../support/agent-process';

const clientDir = fileURLToPath(new URL('../../dist/client', import.meta.url));

const agents: AgentProcess[] = [];
let coord: TestCoordinator;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  coord = await startTestCoordinator({ clientDir, targetTiles: 6 });
  browser = await launchBrowser();
  page = await browser.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  await page.goto(`${coord.url}/?autostart=1`);
});

afterAll(async () => {
  await browser?.close();
  await coord?.dispose();
});

async function runInBrowser(m: number, k: number, n: number, seed: number) {
  const a = randomMatrix(m, k, seed);
  const b = randomMatrix(k, n, seed + 1);
  const job = await submitMatmul(coord.url, { rows: m, cols: k, data: a }, { rows: k, cols: n, data: b });
  const done = await waitForJob(coord.url, job.id, 120_000);
  const result = await downloadResult(coord.url, job.id);
  return { job, done, result, ref: matmulReference(a, b, m, k, n) };
}

describe('contributor page in Chromium (WebGPU, real WGSL)', () => {
  afterAll(() => {
    for (const a of agents) a.child.kill('SIGKILL');
  });

  it('shows the adapter and starts working with ?autostart=1', async () => {
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'idle', { timeout: 60_000 });
    const adapter = await page.$eval('#gpu-adapter', (el) => el.textContent);
    expect(adapter?.length).toBeGreaterThan(0);
    expect(await page.$eval('#toggle', (el) => el.textContent)).toBe('Pause');
  });

  it('computes a multi-tile job whose dimensions are not multiples of the tile', async () => {
    const { job, done, result, ref } = await runInBrowser(200, 130, 150, 11);
    expect(job.progress.total).toBeGreaterThan(1);
    expect(job.tile.rows % 64).toBe(0);
    expect(200 % job.tile.rows).not.toBe(0);
    expect(done.status).toBe('completed');
    expect(result.shape).toEqual([200, 150]);
    expect(maxToleranceRatio(result.data, ref, 1e-4, 1e-4)).toBeLessThanOrEqual(1);
  });

  it('computes a job made of several whole tiles', async () => {
    const { job, done, result, ref } = await runInBrowser(256, 96, 128, 21);
    expect(job.progress.total).toBeGreaterThan(1);
    expect(done.status).toBe('completed');
    expect(maxToleranceRatio(result.data, ref, 1e-4, 1e-4)).toBeLessThanOrEqual(1);
    const verified = Number(await page.$eval('#verified', (el) => el.textContent));
    expect(verified).toBeGreaterThanOrEqual(job.progress.total);
    expect(pageErrors).toEqual([]);
  });

  it('works side by side with a headless agent on one job, and both earn credit', async () => {
    const dir = await makeDataDir();
    const agent = spawnAgent(['--server', coord.url, '--token-file', join(dir, 'token'), '--summary-every', '3600']);
    agents.push(agent);
    const agentId = (await agent.waitFor(/joined .* as contributor (\S+)/))[1]!;
    const pageId = (await page.$eval('#contributor', (el) => el.textContent))!;
    const before = (await coord.store.getContributor(pageId))!.verifiedShards;
    const { done, result, ref } = await runInBrowser(384, 256, 384, 41);
    expect(done.status).toBe('completed');
    expect(maxToleranceRatio(result.data, ref, 1e-4, 1e-4)).toBeLessThanOrEqual(1);
    const pageAfter = (await coord.store.getContributor(pageId))!;
    const agentAfter = (await coord.store.getContributor(agentId))!;
    expect(agentAfter.kind).toBe('agent');
    expect(pageAfter.kind).toBe('page');
    expect(agentAfter.verifiedShards).toBeGreaterThan(0);
    expect(pageAfter.verifiedShards).toBeGreaterThan(before);
    expect(agentAfter.credits).toBeGreaterThan(0);
    agent.child.kill('SIGTERM');
    await agent.exited;
  }, 180_000);
});
