import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nginxConfig } from '../../scripts/nginx-config';
import { freePort } from './free-port';

/** Debian's nginx in front of coordinators, with the configuration from scripts/nginx-config.ts. */
export interface NginxProxy {
  url: string;
  port: number;
  /** The generated nginx.conf, as nginx read it. */
  config: string;
  stop(): Promise<void>;
}

export const NGINX = '/usr/sbin/nginx';

export function ensureNginx(): void {
  execFileSync('bash', [new URL('../../scripts/ensure-nginx.sh', import.meta.url).pathname], { stdio: 'inherit' });
}


async function accepting(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => (s.end(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nginx is not accepting connections on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts nginx in the foreground on 127.0.0.1:`port` (a free one by default), its pid file, logs and
 * temp files in `dir` (a fresh temp directory by default, deleted by stop()).
 */
export async function startNginx(upstreams: string[], opts: { port?: number; dir?: string; host?: string } = {}): Promise<NginxProxy> {
  ensureNginx();
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'tessera-nginx-')));
  // Under root, nginx's workers run as www-data and must be able to enter the prefix (mkdtemp makes it 0700).
  await chmod(dir, 0o755);
  const port = opts.port ?? (await freePort());
  const host = opts.host ?? '127.0.0.1';
  const config = nginxConfig({ listen: `${host}:${port}`, upstreams, prefix: dir });
  const file = join(dir, 'nginx.conf');
  await writeFile(file, config);
  // -e: the error log before the configuration is read would otherwise be /var/log/nginx/error.log.
  const child = spawn(NGINX, ['-e', join(dir, 'error.log'), '-p', dir, '-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const owned = opts.dir === undefined;
  try {
    await Promise.race([accepting(port, 15_000), exited.then(() => Promise.reject(new Error(`nginx exited at start: ${stderr.join('')}`)))]);
  } catch (err) {
    kill();
    if (owned) await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `http://${host}:${port}`,
    port,
    config,
    async stop() {
      child.kill('SIGQUIT'); // graceful: workers finish what they serve, then exit
      const timer = setTimeout(kill, 5_000);
      await exited;
      clearTimeout(timer);
      process.removeListener('exit', kill);
      if (owned) await rm(dir, { recursive: true, force: true });
    },
  };
}
