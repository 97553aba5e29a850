import puppeteer, { type Browser } from 'puppeteer-core';

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
