import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../support/browser';
import { startTestCoordinator, submitMatmul, waitForJob, type TestCoordinator } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';

const clientDir = fileURLToPath(new URL('../../dist/client', import.meta.url));
const artifacts = fileURLToPath(new URL('../../test-artifacts', import.meta.url));
let coord: TestCoordinator;
let browser: Browser;

beforeAll(async () => {
  await mkdir(artifacts, { recursive: true });
  coord = await startTestCoordinator({ clientDir, targetTiles: 16, canaries: false });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await coord?.dispose();
});

const text = (page: Page, sel: string) => page.$eval(sel, (el) => el.textContent ?? '');

/** Runs a 16-tile job and returns the page's GPU-busy time while it ran over the time it took once queued. */
async function busyFraction(page: Page, seed: number): Promise<number> {
  // K = 8192 keeps each tile's compute well above the per-tile fixed costs (lease, downloads, result upload).
  const a = randomMatrix(512, 8192, seed);
  const b = randomMatrix(8192, 512, seed + 1);
  const job = await submitMatmul(coord.url, { rows: 512, cols: 8192, data: a }, { rows: 8192, cols: 512, data: b });
  // The clock starts once the job is queued: the 32 MB upload is the requester's time, not the contributor's.
  const busy0 = Number(await page.evaluate(() => document.body.dataset.busyMs ?? 0));
  const t0 = Date.now();
  // Polled at 4 Hz: a job that runs longer than 30 s on a loaded machine would take the local key past its 600 requests a minute at 20 Hz.
  expect((await waitForJob(coord.url, job.id, 120_000, undefined, 250)).status).toBe('completed');
  const busy1 = Number(await page.evaluate(() => document.body.dataset.busyMs ?? 0));
  return (busy1 - busy0) / (Date.now() - t0);
}

describe('contributor page controls', () => {
  it('starts, throttles to the chosen duty cycle, pauses, and keeps identity and totals across a reload', async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 1000 });
    await page.goto(`${coord.url}/`);
    await page.waitForFunction(() => !(document.getElementById('toggle') as HTMLButtonElement).disabled, { timeout: 30_000 });
    await page.screenshot({ path: `${artifacts}/contributor-ready.png`, fullPage: true });
    await page.click('#toggle');
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'idle', { timeout: 90_000 });
    const id = await text(page, '#contributor');

    const full = await busyFraction(page, 1);
    await page.select('#duty', '0.25');
    const quarter = await busyFraction(page, 3);
    expect(quarter).toBeLessThan(0.32);
    expect(quarter).toBeGreaterThan(0.1);
    expect(quarter).toBeLessThan(full * 0.6);
    await page.screenshot({ path: `${artifacts}/contributor-working.png`, fullPage: true });

    // Hidden tab: pauses unless background work is allowed, resumes when visible again.
    const setHidden = (hidden: boolean) =>
      page.evaluate((h) => {
        Object.defineProperty(document, 'hidden', { value: h, configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      }, hidden);
    await setHidden(true);
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'paused', { timeout: 10_000 });
    await setHidden(false);
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'idle', { timeout: 30_000 });

    await page.click('#toggle');
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'paused', { timeout: 10_000 });
    expect(await text(page, '#toggle')).toBe('Start');
    await page.screenshot({ path: `${artifacts}/contributor-paused.png`, fullPage: true });

    const verified = await text(page, '#verified');
    expect(Number(verified)).toBeGreaterThanOrEqual(32);
    await page.reload();
    await page.waitForFunction((v) => document.getElementById('verified')?.textContent === v, { timeout: 10_000 }, verified);
    expect(await page.$eval('#duty', (el) => (el as HTMLSelectElement).value)).toBe('0.25');
    await page.waitForFunction(() => !(document.getElementById('toggle') as HTMLButtonElement).disabled, { timeout: 30_000 });
    await page.click('#toggle');
    await page.waitForFunction((want) => document.getElementById('contributor')?.textContent === want, { timeout: 30_000 }, id);
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await page.screenshot({ path: `${artifacts}/contributor-phone.png`, fullPage: true });
    await page.close();
  }, 300_000);

  it('explains what to do when the browser has no WebGPU', async () => {
    const plain = await launchBrowser({ webgpu: false });
    try {
      const page = await plain.newPage();
      await page.goto(`${coord.url}/`);
      await page.waitForFunction(() => /cannot run WebGPU/.test(document.getElementById('gpu-status')?.textContent ?? ''), { timeout: 30_000 });
      expect(await text(page, '#gpu-status')).toMatch(/Chrome or Edge/);
      expect(await page.$eval('#toggle', (el) => (el as HTMLButtonElement).disabled)).toBe(true);
      await page.screenshot({ path: `${artifacts}/contributor-no-webgpu.png`, fullPage: true });
    } finally {
      await plain.close();
    }
  }, 60_000);
});
