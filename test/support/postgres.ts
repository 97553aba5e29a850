import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { chown, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './free-port';

/**
 * A throwaway PostgreSQL cluster for tests: Debian's server binaries (installed
 * by scripts/ensure-postgres.sh when missing), a data directory and socket in a
 * temp directory, a free port on 127.0.0.1, durability off (nothing here must
 * survive a power cut), stopped and deleted by stop() or, failing that, when
 * the test process exits.
 */
export interface PostgresCluster {
  /** Creates an empty database and returns its connection URL. */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
}

const run = promisify(execFile);
const PG_ROOT = '/usr/lib/postgresql';

function findBinDir(): string | undefined {
  if (!existsSync(PG_ROOT)) return undefined;
  const versions = readdirSync(PG_ROOT)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(PG_ROOT, v, 'bin')).find((bin) => existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl')));
}

function serverBinaries(): string {
  const found = findBinDir();
  if (found) return found;
  execFileSync('bash', [new URL('../../scripts/ensure-postgres.sh', import.meta.url).pathname], { stdio: 'inherit' });
  const installed = findBinDir();
  if (!installed) throw new Error(`no PostgreSQL server binaries under ${PG_ROOT} after scripts/ensure-postgres.sh`);
  return installed;
}


export async function startPostgres(): Promise<PostgresCluster> {
  const bin = serverBinaries();
  const dir = await mkdtemp(join(tmpdir(), 'tessera-pg-'));
  const data = join(dir, 'data');
  // The server refuses to run as root: as root (CI), every server command runs as the postgres user.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    await chown(dir, uid, gid);
  }
  const command = (tool: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]] : [join(bin, tool), args];
  // Run from the temp directory: the postgres user may not be allowed into the caller's.
  const exec = (tool: string, args: string[]) => run(...command(tool, args), { cwd: dir });
  const pgCtl = (...args: string[]) => exec('pg_ctl', ['-D', data, ...args]);

  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    spawnSync(...command('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']), { stdio: 'ignore', cwd: dir });
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopNow);

  let port = 0;
  try {
    await exec('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    // A port found free may be taken before the server binds it: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
      try {
        await pgCtl('-l', join(dir, 'server.log'), '-o', opts, '-w', '-t', '60', 'start');
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  } catch (err) {
    stopNow();
    throw err;
  }

  const url = (db: string) => `postgresql://postgres@127.0.0.1:${port}/${db}`;
  const admin = new pg.Client({ connectionString: url('postgres') });
  admin.on('error', () => undefined); // the server goes away in stop()
  await admin.connect();
  let databases = 0;
  return {
    async createDatabase() {
      const name = `tessera_test_${++databases}`;
      await admin.query(`CREATE DATABASE ${name}`);
      return url(name);
    },
    async stop() {
      await admin.end().catch(() => undefined);
      if (stopped) return;
      await pgCtl('-m', 'fast', '-w', 'stop').catch(() => undefined);
      stopNow();
      process.removeListener('exit', stopNow);
    },
  };
}
