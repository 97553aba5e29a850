import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../support/browser';
import { startTestCoordinator, submitMatmul, waitForJob, type TestCoordinator } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';

const clientDir = fileURLToPath(new URL('../../dist/client', import.meta.url));
const artifacts = fileURLToPath(new URL('../../test-artifacts', import.meta.url));
let coord: TestCoordinator;
let browser: Browser;
const sims: SimContributor[] = [];

beforeAll(async () => {
  await mkdir(artifacts, { recursive: true });
  coord = await startTestCoordinator({ clientDir, targetTiles: 16, canaries: false });
  browser = await launchBrowser();
});
afterAll(async () => {
  for (const s of sims) s.disconnect();
  await browser?.close();
  await coord?.dispose();
});

describe('/network page in Chromium', () => {
  it('shows live counts, a moving chart and leaderboards as plain text', async () => {
    const page = await browser.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.setViewport({ width: 1200, height: 900 });
    await page.goto(`${coord.url}/network`);
    await page.waitForFunction(() => Number(document.body.dataset.updates ?? 0) >= 1, { timeout: 15_000 });
    expect(await page.$eval('#online', (el) => el.textContent)).toBe('0');

    for (const [name, team] of [['Ada Lovelace', 'Engines'], ['Grace', 'Engines']] as const) {
      const s = await new SimContributor(coord.url, { kind: 'honest', delayMs: 40 }).connect();
      sims.push(s);
      await s.socket.timeout(5_000).emitWithAck('profile', { name, team });
      void s.run().catch(() => undefined);
    }
    const hostile = sims[0]!;
    const refused = await hostile.socket.timeout(5_000).emitWithAck('profile', { name: '<img src=x onerror="alert(document.domain)">' });
    expect(refused.ok).toBe(false);

    const job = await submitMatmul(coord.url, { rows: 256, cols: 256, data: randomMatrix(256, 256, 1) }, { rows: 256, cols: 256, data: randomMatrix(256, 256, 2) });
    await page.waitForFunction(() => document.getElementById('online')?.textContent === '2', { timeout: 15_000 });
    await page.waitForFunction(() => Number(document.getElementById('gflops')?.textContent ?? 0) > 0, { timeout: 30_000 });
    const pointsBefore = Number(await page.$eval('#chart', (el) => (el as HTMLElement).dataset.points));
    expect(pointsBefore).toBeGreaterThan(0);
    const updatesBefore = Number(await page.evaluate(() => document.body.dataset.updates));
    await waitForJob(coord.url, job.id, 60_000);
    await page.waitForFunction((u) => Number(document.body.dataset.updates) > u + 1, { timeout: 15_000 }, updatesBefore);
    await page.waitForFunction(() => document.querySelectorAll('#people tbody tr').length === 2, { timeout: 15_000 });
    await page.waitForFunction(() => document.getElementById('jobs')?.textContent === '1', { timeout: 15_000 });
    const names = await page.$$eval('#people tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
    expect(new Set(names)).toEqual(new Set(['Ada Lovelace', 'Grace']));
    expect(await page.$$eval('#teams tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent))).toEqual(['Engines']);
    expect(await page.$$eval('table img, table script', (els) => els.length)).toBe(0);
    expect(await page.$eval('#vendors', (el) => el.textContent)).toMatch(/other · 2/);
    expect(dialogs).toEqual([]);
    await page.screenshot({ path: `${artifacts}/network-desktop.png`, fullPage: true });
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await new Promise((r) => setTimeout(r, 300));
    await page.screenshot({ path: `${artifacts}/network-phone.png`, fullPage: true });
    await page.close();
  }, 120_000);
});
