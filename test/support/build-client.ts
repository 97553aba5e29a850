import { build } from 'vite';

/** vitest globalSetup: builds the pages once so browser tests load the code under test. */
export default async function setup(): Promise<void> {
  await build({ configFile: new URL('../../vite.config.ts', import.meta.url).pathname, logLevel: 'warn' });
}
