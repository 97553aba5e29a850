/**
 * The matmul kernel family in headless Chromium (WebGPU on SwiftShader
 * without a GPU), through the /bench page's own runner: each configuration's
 * product on the page's seeded inputs, checked against float64 per element.
 * The page reports the largest |e_ij| / (γ_k·Σ_p|a_ip·b_pj|), which is the
 * bench's "elem/ku" column (γ_k ≈ k·u). Needs the built page (`npm run build`)
 * and Chromium (scripts/ensure-chromium.sh).
 */
import { fileURLToPath } from 'node:url';
import type { Browser } from 'puppeteer-core';
import type { BenchReport } from '../client/bench/page';
import { launchBrowser, openBenchPage } from '../test/support/browser';
import { startTestCoordinator } from '../test/support/coordinator';

export interface ChromiumRow {
  config: string;
  tile: string;
  /** max |e_ij| / (γ_k·(|A||B|)_ij) over the checked elements */
  elemOverWorstCase: number;
  checked: number;
  adapter: string;
}

const SHAPES = [
  { m: 64, k: 256, n: 64 },
  { m: 128, k: 2048, n: 128 },
  { m: 128, k: 4096, n: 128 },
];

export async function runChromiumKernels(): Promise<ChromiumRow[] | string> {
  const coord = await startTestCoordinator({ clientDir: fileURLToPath(new URL('../dist/client', import.meta.url)) });
  let browser: Browser;
  try {
    browser = await launchBrowser({ protocolTimeoutMs: 600_000 });
  } catch (err) {
    await coord.dispose();
    return `not run: ${err instanceof Error ? err.message : String(err)}`;
  }
  try {
    const page = await openBenchPage(browser, coord.url);
    page.setDefaultTimeout(0);
    const configs = await page.evaluate(() => window.tesseraBench!.configs());
    const report: BenchReport = await page.evaluate((r) => window.tesseraBench!.run(r), { subjects: configs.map((c) => c.id), shapes: SHAPES, warmup: 0, reps: 1 });
    const a = report.environment.adapter;
    const adapter = [a.vendor, a.architecture, a.description].filter(Boolean).join(' · ');
    return report.rows
      .filter((r) => r.check)
      .map((r) => ({ config: r.subject, tile: `${r.m}×${r.k}×${r.n}`, elemOverWorstCase: r.check!.worstRatio, checked: r.check!.checked, adapter }));
  } finally {
    await browser.close();
    await coord.dispose();
  }
}

export function printChromium(rows: ChromiumRow[] | string): void {
  if (typeof rows === 'string') return void console.log(`\nChromium: ${rows}`);
  console.log(`\nWGSL kernels in Chromium (${rows[0]?.adapter ?? ''}): max |e_ij| / (γ_k·(|A||B|)_ij), page's seeded inputs`);
  for (const r of rows) console.log(`${r.config.padEnd(20)}${r.tile.padEnd(15)}${r.elemOverWorstCase.toFixed(4).padStart(8)}  (${r.checked} elements)`);
}
