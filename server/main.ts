import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from './config';
import { startCoordinator } from './coordinator';
import { createLogger } from './logger';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const clientDir = join(root, 'dist', 'client');

/** `npm start` serves the built page; on a fresh clone we build it once first. */
async function ensureClientBuilt(log: ReturnType<typeof createLogger>): Promise<void> {
  if (existsSync(join(clientDir, 'index.html'))) return;
  log.info('building the contributor page (first start)');
  const { build } = await import('vite');
  await build({ configFile: join(root, 'vite.config.ts'), logLevel: 'warn' });
}

async function main(): Promise<void> {
  let config;
  try {
    config = { ...loadConfig(), clientDir };
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  await ensureClientBuilt(log);
  const coordinator = await startCoordinator(config, log);
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down; in-flight leases go back to the queue');
    coordinator.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
