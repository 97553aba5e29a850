import puppeteer, { type Browser, type Page } from 'puppeteer-core';

export const CHROME_PATH = process.env.CHROME_PATH ?? '/usr/bin/chromium';

/** Headless system Chromium with WebGPU; on machines without a GPU it runs on SwiftShader. */
export async function launchBrowser(opts: { webgpu?: boolean; protocolTimeoutMs?: number } = {}): Promise<Browser> {
  const webgpu = opts.webgpu ?? true;
  return puppeteer.launch({
    executablePath: CHROME_PATH,
    headless: true,
    ...(opts.protocolTimeoutMs ? { protocolTimeout: opts.protocolTimeoutMs } : {}),
    args: [
      '--no-sandbox',
      ...(webgpu ? ['--enable-unsafe-webgpu', '--enable-features=Vulkan'] : ['--disable-features=WebGPU,Vulkan']),
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/** A new tab on the coordinator's /bench page, once `window.tesseraBench` is ready. */
export async function openBenchPage(browser: Browser, coordinatorUrl: string, onPageError?: (err: unknown) => void): Promise<Page> {
  const page = await browser.newPage();
  if (onPageError) page.on('pageerror', onPageError);
  await page.goto(`${coordinatorUrl}/bench`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  return page;
}
