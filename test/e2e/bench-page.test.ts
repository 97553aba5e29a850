/**
 * The /bench page as a researcher uses it, in real Chromium: choose kernels
 * and sizes, run, read the checked table and chart, export JSON and CSV,
 * paste a kernel (a broken one shows the compiler's messages with line
 * numbers), and the explanation when WebGPU is missing. Screenshots go to
 * test-artifacts/.
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../support/browser';
import type { JobView } from '../../shared/api';
import { benchmarkReport, postBenchmark, startTestCoordinator, waitForJob, type TestCoordinator } from '../support/coordinator';

const clientDir = fileURLToPath(new URL('../../dist/client', import.meta.url));
const artifacts = fileURLToPath(new URL('../../test-artifacts', import.meta.url));

let coord: TestCoordinator;
let browser: Browser;
let page: Page;
let downloads: string;
const pageErrors: string[] = [];

beforeAll(async () => {
  await mkdir(artifacts, { recursive: true });
  downloads = await mkdtemp(join(tmpdir(), 'tessera-downloads-'));
  coord = await startTestCoordinator({ clientDir });
  browser = await launchBrowser();
  page = await browser.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  const cdp = await page.createCDPSession();
  await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
  await page.setViewport({ width: 1200, height: 900 });
  await page.goto(`${coord.url}/bench`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
});

afterAll(async () => {
  await browser?.close();
  await coord?.dispose();
  await rm(downloads, { recursive: true, force: true });
});

async function setChecked(container: string, values: string[]): Promise<void> {
  await page.$$eval(
    `#${container} input[type=checkbox]`,
    (inputs, wanted) => inputs.forEach((i) => ((i as HTMLInputElement).checked = wanted.includes((i as HTMLInputElement).value))),
    values,
  );
}

async function waitForDownload(suffix: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const f = (await readdir(downloads)).find((x) => x.endsWith(suffix));
    if (f) return readFile(join(downloads, f), 'utf8');
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${suffix} download`);
}

describe('/bench page in Chromium', () => {
  it('runs the chosen kernels and sizes, and fills the table and chart with checked results', async () => {
    expect(await page.$eval('#gpu-adapter', (el) => el.textContent?.length ?? 0)).toBeGreaterThan(0);
    expect(await page.$eval('#gpu-timing', (el) => el.textContent)).toMatch(/timestamp|wall clock/);
    await setChecked('kernels', ['autotuned', 'naive-16x16', 'register-r8', 'tiled-64']);
    await setChecked('sizes', ['256']);
    await page.type('#shapes', '130x70x90');
    await page.$eval('#reps', (el) => ((el as HTMLInputElement).value = '2'));
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('progress')?.textContent?.startsWith('Done'), { timeout: 120_000 });
    const rows = await page.$$eval('#table tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    expect(rows).toHaveLength(8);
    for (const r of rows) {
      expect(r[6]).toMatch(/^pass \(full/);
      expect(Number(r[3])).toBeGreaterThan(0);
    }
    expect(rows.map((r) => r[1])).toEqual(expect.arrayContaining(['256×256×256', '130×70×90']));
    expect(rows.find((r) => r[0]!.startsWith('autotuned'))?.[0]).toMatch(/^autotuned → /);
    expect(await page.$('#chart .uplot')).not.toBeNull();
    await page.screenshot({ path: join(artifacts, 'bench-results.png'), fullPage: true });
  }, 180_000);

  it('exports the run as JSON and CSV', async () => {
    await page.click('#export-json');
    const json = JSON.parse(await waitForDownload('.json')) as { rows: { subject: string; check: { ok: boolean } }[]; environment: { adapter: unknown } };
    expect(json.rows).toHaveLength(8);
    expect(json.rows.every((r) => r.check.ok)).toBe(true);
    expect(json.environment.adapter).toBeTruthy();
    await page.click('#export-csv');
    const csv = (await waitForDownload('.csv')).trim().split('\n');
    expect(csv[0]).toMatch(/^subject,resolved,group,m,k,n,wall_ms_median/);
    expect(csv).toHaveLength(9);
    expect(csv.slice(1).every((line) => line.includes(',pass,'))).toBe(true);
  });

  it('times the inference ops and checks each against a CPU reference', async () => {
    const offered = await page.$$eval('#ops input', (inputs) => inputs.map((i) => (i as HTMLInputElement).value));
    expect(offered).toEqual(['op-softmax', 'op-layernorm', 'op-gelu', 'op-add-broadcast', 'op-transpose', 'op-matmul-bias-gelu']);
    const report = (await page.evaluate(
      (subjects) => window.tesseraBench!.run({ subjects, shapes: [{ m: 37, k: 130, n: 9 }, { m: 1, k: 1, n: 1 }], warmup: 1, reps: 2 }),
      offered,
    )) as { rows: { subject: string; error?: string; check?: { ok: boolean; method: string }; wallGflops?: number }[] };
    expect(report.rows).toHaveLength(12);
    for (const r of report.rows) {
      expect(r.error, r.subject).toBeUndefined();
      expect(r.check, r.subject).toMatchObject({ ok: true, method: 'full' });
      expect(r.wallGflops).toBeGreaterThan(0);
    }
  }, 120_000);

  it('shows the WGSL compiler’s messages with line numbers for a broken kernel', async () => {
    const broken = (await page.$eval('#custom-code', (el) => (el as HTMLTextAreaElement).value)).replace('var acc = 0.0;', 'var acc = 0.0\n  let oops: u32 = 1.5;');
    await page.$eval('#custom-code', (el, code) => ((el as HTMLTextAreaElement).value = code), broken);
    await page.click('#custom-compile');
    await page.waitForFunction(() => (document.getElementById('custom-messages')?.textContent ?? '').length > 0, { timeout: 30_000 });
    const text = await page.$eval('#custom-messages', (el) => el.textContent ?? '');
    const line = broken.split('\n').findIndex((l) => l.includes('var acc = 0.0')) + 1;
    expect(text).toMatch(new RegExp(`error at line (${line}|${line + 1}), column \\d+`));
    expect(await page.$eval('#custom-messages', (el) => el.classList.contains('error'))).toBe(true);
    await page.screenshot({ path: join(artifacts, 'bench-compile-error.png'), fullPage: true });
  });

  it('times and checks a pasted kernel like its own', async () => {
    // A vec4 kernel of our own family, pasted as a researcher would, with its declared layout and block.
    const code = await readFile(fileURLToPath(new URL('../../shaders/matmul-register-vec4.wgsl', import.meta.url)), 'utf8');
    await page.$eval('#custom-code', (el, c) => ((el as HTMLTextAreaElement).value = c), code);
    await page.$eval('#custom-rows', (el) => ((el as HTMLInputElement).value = '64'));
    await page.$eval('#custom-cols', (el) => ((el as HTMLInputElement).value = '64'));
    await page.select('#custom-pad', 'kn');
    await page.click('#custom-compile');
    await page.waitForFunction(() => document.getElementById('custom-messages')?.textContent?.startsWith('Compiled'), { timeout: 30_000 });
    await page.click('#custom-include');
    await setChecked('kernels', ['register-r8']);
    await setChecked('sizes', []);
    await page.$eval('#shapes', (el) => ((el as HTMLInputElement).value = '99x70x131'));
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('progress')?.textContent?.startsWith('Done'), { timeout: 120_000 });
    const rows = await page.$$eval('#table tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    expect(rows.map((r) => r[0])).toEqual(['register-r8', 'custom']);
    for (const r of rows) expect(r[6]).toMatch(/^pass/);
  }, 120_000);

  it('a contributor page runs a network benchmark; the report groups it by adapter and the bench page shows it', async () => {
    const contributor = await browser.newPage();
    contributor.on('pageerror', (err) => pageErrors.push(String(err)));
    await contributor.goto(`${coord.url}/?autostart=1`);
    const res = await postBenchmark(coord.url, { kernel: 'autotuned', sizes: '64', shapes: '40x30x50', contributors: '1', reps: '2' });
    expect(res.status).toBe(201);
    const job = (await res.json()) as JobView;
    expect((await waitForJob(coord.url, job.id, 120_000)).status).toBe('completed');
    const report = await benchmarkReport(coord.url, job.id);
    expect(report.runs).toHaveLength(1);
    const run = report.runs[0]!;
    expect(run.agent).toBe('page');
    expect(run.adapter.vendor.length).toBeGreaterThan(0);
    for (const s of run.shapes) {
      expect(s.error).toBeUndefined();
      expect(s.gflops).toBeGreaterThan(0);
      expect(s.runs).toBe(2);
    }
    expect(report.groups).toHaveLength(1);
    expect(report.groups[0]!.shapes.map((s) => s.samples)).toEqual([1, 1]);
    await contributor.close();

    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    await page.waitForSelector('#network-results table');
    const cells = await page.$$eval('#network-results tbody td', (tds) => tds.map((td) => td.textContent ?? ''));
    expect(cells).toContain(`${report.groups[0]!.vendor} ${report.groups[0]!.architecture}`);
    expect(cells).toContain('40×30×50');
    await page.screenshot({ path: join(artifacts, 'bench-network.png'), fullPage: true });
  }, 180_000);

  it('reads well on a phone', async () => {
    await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2 });
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(artifacts, 'bench-phone.png'), fullPage: true });
  });

  it('explains what to do when the browser has no WebGPU', async () => {
    const plain = await launchBrowser({ webgpu: false });
    try {
      const p = await plain.newPage();
      await p.goto(`${coord.url}/bench`);
      await p.waitForFunction(() => document.getElementById('gpu-status')?.classList.contains('warning'), { timeout: 30_000 });
      expect(await p.$eval('#gpu-status', (el) => el.textContent)).toMatch(/WebGPU is not available.*Chrome/);
      expect(await p.$eval('#run', (el) => (el as HTMLButtonElement).disabled)).toBe(true);
      await p.screenshot({ path: join(artifacts, 'bench-no-webgpu.png'), fullPage: true });
    } finally {
      await plain.close();
    }
  });

  it('raised no page errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
