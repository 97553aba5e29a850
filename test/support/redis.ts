import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from './free-port';

/** A throwaway Redis for tests: Debian's redis-server (installed by scripts/ensure-redis.sh when missing), no persistence, a free port. */
export interface RedisServer {
  url: string;
  stop(): Promise<void>;
}


export async function startRedis(): Promise<RedisServer> {
  execFileSync('bash', [new URL('../../scripts/ensure-redis.sh', import.meta.url).pathname], { stdio: 'inherit' });
  const dir = await mkdtemp(join(tmpdir(), 'tessera-redis-'));
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start')), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => reject(new Error('redis-server exited at start')));
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      process.removeListener('exit', kill);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
