import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores here: the browser tests and CPU-heavy simulated contributors share them.
    maxWorkers: 2,
    globalSetup: ['test/support/build-client.ts'],
  },
});
