import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll } from 'vitest';
import { launchBrowser, openBenchPage } from './browser';
import { startTestCoordinator, type TestCoordinator } from './coordinator';

const clientDir = fileURLToPath(new URL('../../dist/client', import.meta.url));

/** A coordinator serving the built pages and one Chromium tab on its /bench page (window.tesseraBench), for the whole test file. */
export function useBenchPage(): { readonly page: Page } {
  let coord: TestCoordinator | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  beforeAll(async () => {
    coord = await startTestCoordinator({ clientDir });
    browser = await launchBrowser();
    page = await openBenchPage(browser, coord.url);
  });
  afterAll(async () => {
    await browser?.close();
    await coord?.dispose();
  });
  return {
    get page() {
      if (!page) throw new Error('the bench page opens in beforeAll');
      return page;
    },
  };
}
