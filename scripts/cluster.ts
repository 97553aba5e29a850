/**
 * A networked Tessera on one machine, for a developer: `npm run cluster [-- --nodes 2 --port 8080]`.
 *
 * Starts PostgreSQL and Redis from Debian's packages (installed when missing,
 * by scripts/ensure-postgres.sh and scripts/ensure-redis.sh), N coordinators
 * sharing them, and Debian's nginx in front on one port with the configuration
 * of scripts/nginx-config.ts (docs/deploy-nginx.md). The database and each
 * node's data directory live under --dir (./cluster-data), so jobs survive a
 * restart; Redis holds nothing that must survive (Socket.IO broadcasts, rate
 * limit counters) and runs without persistence. Ctrl-C or SIGTERM stops
 * everything and removes nginx's temp directory.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { LOCAL_KEY_FILE } from '../server/auth/api-keys';
import { freePort } from '../test/support/free-port';
import { startNginx, type NginxProxy } from '../test/support/nginx';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '2' },
    port: { type: 'string', default: '8080' },
    host: { type: 'string', default: '127.0.0.1' },
    dir: { type: 'string', default: './cluster-data' },
  },
});
const nodeCount = Number(values.nodes);
const port = Number(values.port);
if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 32) throw new Error('--nodes: 1 to 32');
if (!Number.isInteger(port) || port < 1 || port + nodeCount > 65535) throw new Error('--port: the nginx port; nodes take the next N ports');
const dir = resolve(values.dir);
const repo = resolve(new URL('..', import.meta.url).pathname);
const logDir = join(dir, 'logs');

/** What stop() undoes, in reverse order of starting. */
const cleanups: (() => Promise<void>)[] = [];

function script(name: string): void {
  execFileSync('bash', [join(repo, 'scripts', name)], { stdio: 'inherit' });
}

function postgresBin(): string {
  script('ensure-postgres.sh');
  const root = '/usr/lib/postgresql';
  const version = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a))[0];
  if (!version) throw new Error(`no PostgreSQL under ${root} after scripts/ensure-postgres.sh`);
  return join(root, version, 'bin');
}

/** Waits for a child to print a line that `ready` recognises; its output goes to `logFile`. */
function waitForLine(child: ChildProcess, logFile: string, ready: (line: string) => boolean, what: string): Promise<void> {
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stderr?.pipe(log);
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start in 90 s; see ${logFile}`)), 90_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log.write(`${line}\n`);
      if (ready(line)) {
        clearTimeout(timer);
        resolvePromise();
      }
    });
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code} at start; see ${logFile}`)));
  });
}

/**
 * PostgreSQL in dir/postgres: created on first start, started with pg_ctl (no systemd), a fresh free port each time.
 * The server refuses to run as root, so under root every command runs as the postgres user.
 */
async function startPostgres(): Promise<string> {
  const bin = postgresBin();
  const home = join(dir, 'postgres');
  const data = join(home, 'data');
  await mkdir(home, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await chown(home, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })));
  const run = (tool: string, args: string[]) =>
    asRoot
      ? execFileSync('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], { cwd: home, stdio: ['ignore', 'ignore', 'inherit'] })
      : execFileSync(join(bin, tool), args, { cwd: home, stdio: ['ignore', 'ignore', 'inherit'] });
  if (!existsSync(join(data, 'PG_VERSION'))) {
    console.log(`creating the database cluster in ${data}`);
    run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C']);
  }
  const pgPort = await freePort();
  // Durable settings (unlike the tests' throwaway server): this data is meant to survive a crash of the machine.
  run('pg_ctl', ['-D', data, '-l', join(home, 'server.log'), '-o', `-p ${pgPort} -k ${home} -c listen_addresses=127.0.0.1 -c max_connections=200`, '-w', '-t', '60', 'start']);
  cleanups.push(async () => void run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']));
  const admin = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${pgPort}/postgres` });
  await admin.connect();
  const { rowCount } = await admin.query(`SELECT 1 FROM pg_database WHERE datname = 'tessera'`);
  if (!rowCount) await admin.query('CREATE DATABASE tessera');
  await admin.end();
  return `postgresql://postgres@127.0.0.1:${pgPort}/tessera`;
}

async function startRedis(): Promise<string> {
  script('ensure-redis.sh');
  const redisPort = await freePort();
  const child = spawnOwned('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {});
  await waitForLine(child, join(logDir, 'redis.log'), (l) => l.includes('Ready to accept connections'), 'redis-server');
  cleanups.push(() => stopChild(child, 'SIGTERM'));
  return `redis://127.0.0.1:${redisPort}`;
}

/**
 * A child in its own process group: Ctrl-C in the terminal reaches only this script, which stops the
 * children in order (nginx first, the database last). If this script dies, they die with it.
 */
function spawnOwned(command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv }): ChildProcess {
  const child = spawn(command, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.removeListener('exit', kill));
  return child;
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => (clearTimeout(force), resolvePromise()));
    child.kill(signal);
  });
}

async function startNode(i: number, shared: Record<string, string>): Promise<void> {
  const name = `node-${i}`;
  const dataDir = join(dir, name);
  await mkdir(dataDir, { recursive: true });
  const child = spawnOwned(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: repo,
    env: { ...process.env, ...shared, PORT: String(port + 1 + i), HOST: '127.0.0.1', TESSERA_DATA_DIR: dataDir, TESSERA_NODE_ID: name },
  });
  await waitForLine(child, join(logDir, `${name}.log`), (l) => l.includes('"coordinator listening"'), name);
  // SIGTERM: the coordinator closes its sockets and store cleanly; its contributors move to the other nodes.
  cleanups.push(() => stopChild(child, 'SIGTERM'));
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`${name} exited (${signal ?? code}); the other nodes carry on. Its log: ${join(logDir, `${name}.log`)}`);
  });
}

let stopping = false;

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('\nstopping…');
  for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => console.error(String(err)));
  console.log(`stopped; data kept in ${dir}`);
}

async function main(): Promise<void> {
  await mkdir(logDir, { recursive: true });
  process.once('SIGINT', () => void stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stop().then(() => process.exit(0)));

  const [databaseUrl, redisUrl] = [await startPostgres(), await startRedis()];
  const shared = { TESSERA_DATABASE_URL: databaseUrl, TESSERA_REDIS_URL: redisUrl };
  // The first node applies migrations and creates the local API key; the others start together after it.
  await startNode(0, shared);
  await Promise.all(Array.from({ length: nodeCount - 1 }, (_, i) => startNode(i + 1, shared)));

  // nginx's temp files belong to this run: a fresh temp directory, removed on stop.
  const nginxDir = await mkdtemp(join(tmpdir(), 'tessera-cluster-nginx-'));
  const upstreams = Array.from({ length: nodeCount }, (_, i) => `127.0.0.1:${port + 1 + i}`);
  const proxy: NginxProxy = await startNginx(upstreams, { port, host: values.host, dir: nginxDir });
  cleanups.push(async () => {
    await proxy.stop();
    await rm(nginxDir, { recursive: true, force: true });
  });

  const key = (await readFile(join(dir, 'node-0', LOCAL_KEY_FILE), 'utf8')).trim();
  console.log(`
Tessera cluster: ${nodeCount} coordinator(s) behind nginx
  URL          ${proxy.url}   (contributor page: ${proxy.url}/)
  API key      ${key}
  submit       curl -H "Authorization: Bearer ${key}" -F type=matmul -F a=@a.npy -F b=@b.npy ${proxy.url}/api/v1/jobs
  nodes        ${upstreams.join(', ')}
  PostgreSQL   ${databaseUrl}
  Redis        ${redisUrl}
  data         ${dir} (kept across restarts; delete it to start afresh)
  logs         ${logDir}
Stop with Ctrl-C (or kill -TERM ${process.pid}).`);
}

main().catch(async (err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  await stop();
  process.exit(1);
});
