/**
 * The matmul kernel family in real Chromium (WebGPU on SwiftShader): every
 * configuration against a float64 CPU reference on awkward shapes, and the
 * per-device autotuning, through the /bench page's own runner.
 */
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport, BenchRequest } from '../../client/bench/page';
import type { TuningRecord } from '../../client/gpu/autotune';
import { MATMUL_CONFIG_IDS, SIZE_CLASSES } from '../../shared/matmul-configs';
import { launchBrowser } from '../support/browser';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator';

const clientDir = fileURLToPath(new URL('../../dist/client', import.meta.url));

let coord: TestCoordinator;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  coord = await startTestCoordinator({ clientDir });
  browser = await launchBrowser();
  page = await browser.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  await page.goto(`${coord.url}/bench`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
});

afterAll(async () => {
  await browser?.close();
  await coord?.dispose();
});

const run = (req: BenchRequest) => page.evaluate((r) => window.tesseraBench!.run(r), req) as Promise<BenchReport>;

describe('matmul kernel family in Chromium', () => {
  it('offers every configuration the adapter can run, the subgroup one included where subgroups exist', async () => {
    const configs = await page.evaluate(() => window.tesseraBench!.configs());
    const hasSubgroups = await page.$eval('#gpu-subgroups', (el) => el.textContent?.startsWith('yes'));
    const ids = configs.map((c) => c.id);
    expect(ids).toContain('naive-16x16');
    expect(ids).toContain('register-r8');
    expect(ids).toContain('tiled-vec4-32');
    expect(ids.includes('subgroup-r8')).toBe(hasSubgroups);
    for (const id of ids) expect(MATMUL_CONFIG_IDS).toContain(id);
  });

  it('every configuration matches the CPU reference on awkward shapes (odd sizes, size-1 dimensions, K and N not multiples of 4)', async () => {
    const configs = await page.evaluate(() => window.tesseraBench!.configs());
    const shapes = [
      { m: 1, k: 1, n: 1 },
      { m: 3, k: 5, n: 7 },
      { m: 1, k: 300, n: 129 },
      { m: 65, k: 33, n: 1 },
      { m: 127, k: 61, n: 67 },
      { m: 200, k: 130, n: 150 },
    ];
    const report = await run({ subjects: configs.map((c) => c.id), shapes, warmup: 0, reps: 1 });
    expect(report.rows).toHaveLength(configs.length * shapes.length);
    const failures = report.rows.filter((r) => r.error || !r.check?.ok).map((r) => `${r.subject} ${r.m}×${r.k}×${r.n}: ${r.error ?? `worst ${r.check?.worstRatio}`}`);
    expect(failures).toEqual([]);
    for (const r of report.rows) expect(r.check?.method).toBe('full');
  }, 240_000);

  it('a wrong kernel is caught by the check, not reported as fast', async () => {
    // Drops the last k step: plausible-looking numbers, wrong answer.
    const code = (await page.$eval('#custom-code', (el) => (el as HTMLTextAreaElement).value)).replace('k < dims.K', 'k + 1u < dims.K');
    const report = await run({
      subjects: ['custom'],
      shapes: [{ m: 40, k: 30, n: 20 }],
      warmup: 0,
      reps: 1,
      custom: { code, entryPoint: 'main', bindings: { a: 0, b: 1, c: 2, dims: 3 }, block: { rows: 16, cols: 16 }, pad: 'none' },
    });
    expect(report.rows[0]?.error).toBeUndefined();
    expect(report.rows[0]?.check?.ok).toBe(false);
    expect(report.rows[0]?.check?.worstRatio).toBeGreaterThan(1);
  });

  it('TF.js and ONNX Runtime Web, the benchmark’s contenders, give checked answers in the same page', async () => {
    const report = await run({ subjects: ['tfjs-webgpu', 'ort-webgpu'], shapes: [{ m: 64, k: 48, n: 80 }], warmup: 0, reps: 1 });
    expect(report.rows.map((r) => [r.subject, r.error, r.check?.ok])).toEqual([
      ['tfjs-webgpu', undefined, true],
      ['ort-webgpu', undefined, true],
    ]);
  }, 120_000);

  it('autotunes once per device: a configuration per size class, kept in IndexedDB across a reload', async () => {
    const tuning = (await page.evaluate(() => window.tesseraBench!.tune())) as TuningRecord;
    for (const c of SIZE_CLASSES) {
      expect(MATMUL_CONFIG_IDS).toContain(tuning.configs[c]);
      expect(tuning.gflops[c]).toBeGreaterThan(0);
    }
    // Every candidate was timed at every size class, and the winner is the fastest correct one.
    const candidates = (await page.evaluate(() => window.tesseraBench!.configs())).filter((c) => c.production);
    expect(tuning.measured).toHaveLength(candidates.length * SIZE_CLASSES.length);
    for (const c of SIZE_CLASSES) {
      const best = tuning.measured.filter((x) => x.sizeClass === c && x.ok).sort((a, b) => b.gflops - a.gflops)[0];
      expect(best?.config).toBe(tuning.configs[c]);
    }

    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
    expect(await page.$eval('#gpu-tuning', (el) => el.textContent)).toContain(tuning.configs.large);
    const t0 = Date.now();
    const again = (await page.evaluate(() => window.tesseraBench!.tune())) as TuningRecord;
    expect(again.tunedAt).toBe(tuning.tunedAt); // kept, not re-measured
    expect(Date.now() - t0).toBeLessThan(2_000);

    // The autotuned subject runs the configuration tuned for the shape's size class.
    const report = await run({ subjects: ['autotuned'], shapes: [{ m: 100, k: 64, n: 90 }, { m: 300, k: 64, n: 500 }], warmup: 0, reps: 1 });
    expect(report.rows.map((r) => r.resolved)).toEqual([tuning.configs.small, tuning.configs.large]);
    expect(report.rows.every((r) => r.check?.ok)).toBe(true);
  }, 180_000);

  it('raised no page errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
