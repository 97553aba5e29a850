/**
 * Coordinator load benchmark: `npm run bench:coordinator [-- --n 100,1000,5000]`.
 * Starts the real coordinator as a child process, connects N simulated
 * contributors (socket.io-client) that answer with precomputed tiles, so the
 * coordinator — leasing, verification, storage — is what is measured. Prints
 * a table and writes bench-results/coordinator.json.
 *
 * `--nodes N` measures networked mode instead: a throwaway PostgreSQL and
 * Redis (test/support), N coordinator processes on them, the contributors
 * spread over the nodes round-robin; it adds PostgreSQL transactions per shard
 * and the CPU of every process, and writes bench-results/coordinator-nodes-<N>.json.
 * `--nodes 1` is the networked baseline for `--nodes 2`, not the embedded run.
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { io } from 'socket.io-client';
import { PROTOCOL_VERSION, type MatmulLease } from '../shared/protocol';
import { WEBGPU_DEFAULT_LIMITS } from '../shared/tiling';
import { makeDataDir, submitMatmul, waitForJob } from '../test/support/coordinator';
import { spawnCoordinator } from '../test/support/coordinator-process';
import { startCluster, startClusterServices, type ClusterServices } from '../test/support/cluster';
import { randomMatrix } from '../test/support/matrices';
import type { SimSocket } from '../test/support/sim-contributor';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '100,1000,5000' }, big: { type: 'string', default: '4096' }, 'big-contributors': { type: 'string', default: '16' }, nodes: { type: 'string' } },
});
const counts = values.n.split(',').map(Number);
const nodeCount = values.nodes === undefined ? undefined : Number(values.nodes);
if (nodeCount !== undefined && !(Number.isInteger(nodeCount) && nodeCount >= 1)) throw new Error('--nodes takes a whole number ≥ 1');

/** A = random M×K, B = K×N with B[p][j] = (j mod K == p): C[i][j] = A[i][j mod K], so any tile is a slice of A. */
function problem(m: number, k: number, n: number) {
  const a = randomMatrix(m, k, 1);
  const b = new Float32Array(k * n);
  for (let j = 0; j < n; j++) b[(j % k) * n + j] = 1;
  return { a, b };
}

function tileOf(a: Float32Array, k: number, lease: MatmulLease, row0: number, col0: number): Float32Array {
  const c = new Float32Array(lease.rows * lease.cols);
  for (let i = 0; i < lease.rows; i++) for (let j = 0; j < lease.cols; j++) c[i * lease.cols + j] = a[(row0 + i) * k + ((col0 + j) % k)]!;
  return c;
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function connect(urls: string[], n: number): Promise<SimSocket[]> {
  const sockets: SimSocket[] = [];
  for (let i = 0; i < n; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, async (_, j) => {
        // Round-robin over the nodes, as a load balancer spreading contributors would.
        const s: SimSocket = io(urls[(i + j) % urls.length]!, { transports: ['websocket'], reconnection: false, forceNew: true });
        await new Promise<void>((res, rej) => (s.once('connect', () => res()), s.once('connect_error', rej)));
        const r = await s.timeout(60_000).emitWithAck('hello', {
          protocol: PROTOCOL_VERSION,
          agent: { kind: 'simulated', userAgent: 'bench' },
          adapter: { vendor: 'bench', architecture: '', device: '', description: '' },
          limits: WEBGPU_DEFAULT_LIMITS,
        });
        if (!r.ok) throw new Error(r.error.message);
        return s;
      }),
    );
    sockets.push(...batch);
  }
  return sockets;
}

interface RunResult {
  contributors: number;
  shards: number;
  seconds: number;
  shardsPerSecond: number;
  leaseRttP50Ms: number;
  leaseRttP99Ms: number;
  coordinatorRssMiB: number;
  bytesToContributors: number;
  flops: number;
}

interface Layout {
  k: number;
  n: number;
  tileRows: number;
  tileCols: number;
}

/** Each contributor keeps one lease at a time, as a page does; runs until the coordinator has no more work. */
async function drive(sockets: SimSocket[], a: Float32Array, layout: Layout, isDone: () => Promise<boolean>, pids: number[]): Promise<Omit<RunResult, 'contributors'> & { rssMiB: number[] }> {
  const perRow = Math.ceil(layout.n / layout.tileCols);
  const rtts: number[] = [];
  let shards = 0;
  let bytes = 0;
  let flops = 0;
  const peakRss = pids.map(() => 0);
  let done = false;
  const sampler = setInterval(() => pids.forEach((pid, i) => void rssMiB(pid).then((r) => (peakRss[i] = Math.max(peakRss[i]!, r)), () => undefined)), 200);
  const watcher = setInterval(() => void isDone().then((d) => (done ||= d), () => undefined), 250);
  const t0 = performance.now();
  try {
    await Promise.all(
      sockets.map(async (s) => {
        const held = new Set<string>();
        let wake: (() => void) | undefined;
        s.on('work:available', () => wake?.());
        while (!done) {
          const t = performance.now();
          const reply = await s.timeout(300_000).emitWithAck('lease:request', { max: 1 });
          rtts.push(performance.now() - t);
          if (!reply.ok) throw new Error(reply.error.message);
          if (reply.leases.length === 0) {
            // As the page does: wait for work:available, or retry after the coordinator's hint.
            await new Promise<void>((r) => {
              const t = setTimeout(r, reply.retryAfterMs ?? 5_000);
              wake = () => (clearTimeout(t), r());
            });
            continue;
          }
          for (const lease of reply.leases) {
            // What a contributor that caches panels by hash would download.
            for (const ref of [lease.a, lease.b]) {
              if (held.has(ref.sha256)) continue;
              held.add(ref.sha256);
              bytes += ref.bytes;
            }
            const idx = Number(lease.shardId.split('.')[1]);
            const c = tileOf(a, layout.k, lease, Math.floor(idx / perRow) * layout.tileRows, (idx % perRow) * layout.tileCols);
            const res = await s.timeout(300_000).emitWithAck('lease:result', { shardId: lease.shardId, leaseToken: lease.leaseToken, c: new Uint8Array(c.buffer) });
            if (!res.ok) continue;
            shards++;
            flops += 2 * lease.rows * lease.cols * lease.k;
          }
        }
      }),
    );
  } finally {
    clearInterval(sampler);
    clearInterval(watcher);
  }
  const seconds = (performance.now() - t0) / 1000;
  return { shards, seconds, shardsPerSecond: shards / seconds, leaseRttP50Ms: pct(rtts, 50), leaseRttP99Ms: pct(rtts, 99), coordinatorRssMiB: Math.max(...peakRss), rssMiB: peakRss, bytesToContributors: bytes, flops };
}

async function runOnce(contributors: number, m: number, k: number, n: number, env: Record<string, string>): Promise<RunResult & { tile: number }> {
  const dataDir = await makeDataDir();
  const proc = await spawnCoordinator(dataDir, env);
  proc.child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[coordinator] ${d.toString()}`));
  void proc.exited.then((code) => code !== null && console.error(`[coordinator] exited with ${code}`));
  try {
    const { a, b } = problem(m, k, n);
    const job = await submitMatmul(proc.url, { rows: m, cols: k, data: a }, { rows: k, cols: n, data: b });
    const sockets = await connect([proc.url], contributors);
    const layout = { k, n, tileRows: job.tile.rows, tileCols: job.tile.cols };
    const isDone = async () => (await waitForJob(proc.url, job.id, 1, () => true)).status !== 'running' && (await waitForJob(proc.url, job.id, 1, () => true)).status !== 'queued';
    const { rssMiB: _perNode, ...r } = await drive(sockets, a, layout, isDone, [proc.child.pid!]);
    const final = await waitForJob(proc.url, job.id, 600_000);
    if (final.status !== 'completed') throw new Error(`job ended ${final.status}: ${final.reason ?? ''}`);
    for (const s of sockets) s.disconnect();
    return { contributors, tile: job.tile.rows, ...r };
  } finally {
    proc.child.kill('SIGTERM'); // graceful, so NODE_OPTIONS=--cpu-prof can write its profile
    await proc.exited;
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** The same cut for both modes: 64×64×64 tiles, so each shard is cheap and leasing and verification dominate. */
const SMALL_TILES = { m: 64 * 64, k: 64, n: 64 * 48, env: { TESSERA_TARGET_TILES: '1000000', TESSERA_MAX_PANEL_BYTES: String(64 * 64 * 4), TESSERA_CANARIES: 'off' } };

/** Linux reports process CPU in clock ticks of 1/100 s (USER_HZ, the same on every architecture Node runs on). */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  ppid: number;
  cpuTicks: number;
}

async function procStat(pid: number): Promise<ProcStat | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return undefined;
  // Fields after the command name (which may hold spaces), from field 3 (state): ppid is 4, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]) };
}

async function allPids(): Promise<number[]> {
  return (await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map(Number);
}

async function cmdline(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
}

/** PostgreSQL's postmaster on `port` and its children (one backend per pool connection, plus its workers). */
async function postgresPids(port: string): Promise<number[]> {
  const pids = await allPids();
  let postmaster: number | undefined;
  for (const pid of pids) if (/\/bin\/postgres /.test(await cmdline(pid)) && (await cmdline(pid)).includes(`-p ${port}`)) postmaster = pid;
  if (postmaster === undefined) return [];
  const children: number[] = [];
  for (const pid of pids) if ((await procStat(pid))?.ppid === postmaster) children.push(pid);
  return [postmaster, ...children];
}

async function redisPids(port: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await allPids()) if (new RegExp(`^redis-server \\S*:${port}\\b`).test(await cmdline(pid))) found.push(pid);
  return found;
}

/** CPU ticks of each group of processes; processes that started within a window count whole, those that ended are lost (pools keep theirs). */
async function cpuTicks(groups: number[][]): Promise<Map<number, number>[]> {
  return Promise.all(
    groups.map(async (pids) => {
      const m = new Map<number, number>();
      for (const pid of pids) {
        const st = await procStat(pid);
        if (st) m.set(pid, st.cpuTicks);
      }
      return m;
    }),
  );
}

function coresUsed(before: Map<number, number>, after: Map<number, number>, seconds: number): number {
  let ticks = 0;
  for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0);
  return ticks / TICKS_PER_SECOND / seconds;
}

interface NetworkedRun {
  contributors: number;
  shards: number;
  seconds: number;
  shardsPerSecond: number;
  leaseRttP50Ms: number;
  leaseRttP99Ms: number;
  /** xact_commit of the job's database over the run (every node's transactions, sweeps and polls included). */
  transactions: number;
  transactionsPerShard: number;
  transactionsPerSecond: number;
  /** Per node: peak RSS and the CPU it used over the run, in cores (1 = one core busy all along). */
  nodes: { rssMiB: number; cpuCores: number }[];
  postgresCpuCores: number;
  redisCpuCores: number;
  /** This process, which plays every contributor: on a small machine it competes with what it measures. */
  driverCpuCores: number;
  /** The machine's 1-minute load average at the end: other work on a shared machine shows here. */
  loadAverage1m: number;
}

async function xactCommits(db: pg.Pool): Promise<number> {
  // Backends flush their statistics at most once a second when idle: wait, then read a fresh snapshot.
  await new Promise((r) => setTimeout(r, 1_500));
  await db.query('SELECT pg_stat_clear_snapshot()');
  const { rows } = await db.query<{ n: string }>('SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()');
  return Number(rows[0]!.n);
}

async function networkedRun(services: ClusterServices, nodes: number, contributors: number): Promise<NetworkedRun> {
  const { m, k, n, env } = SMALL_TILES;
  const cluster = await startCluster(services, nodes, env);
  try {
    const urls = cluster.nodes.map((c) => c.url);
    const { a, b } = problem(m, k, n);
    const job = await submitMatmul(urls[0]!, { rows: m, cols: k, data: a }, { rows: k, cols: n, data: b });
    const sockets = await connect(urls, contributors);
    const layout = { k, n, tileRows: job.tile.rows, tileCols: job.tile.cols };
    const status = async () => (await waitForJob(urls[0]!, job.id, 1, () => true)).status;
    const isDone = async () => !['queued', 'running'].includes(await status());
    const pgPort = (await cluster.db.query<{ port: string }>("SELECT current_setting('port') AS port")).rows[0]!.port;
    const groups = [...cluster.nodes.map((c) => [c.child.pid!]), await postgresPids(pgPort), await redisPids(new URL(services.redis.url).port)];
    const xact0 = await xactCommits(cluster.db);
    const [cpu0, own0, t0] = [await cpuTicks(groups), process.cpuUsage(), performance.now()];
    const r = await drive(sockets, a, layout, isDone, cluster.nodes.map((c) => c.child.pid!));
    const seconds = (performance.now() - t0) / 1000;
    const [cpu1, own1] = [await cpuTicks(groups), process.cpuUsage(own0)];
    const final = await waitForJob(urls[0]!, job.id, 600_000);
    if (final.status !== 'completed') throw new Error(`job ended ${final.status}: ${final.reason ?? ''}`);
    const transactions = (await xactCommits(cluster.db)) - xact0;
    for (const s of sockets) s.disconnect();
    const cores = groups.map((_, i) => coresUsed(cpu0[i]!, cpu1[i]!, seconds));
    return {
      contributors,
      shards: r.shards,
      seconds: r.seconds,
      shardsPerSecond: r.shardsPerSecond,
      leaseRttP50Ms: r.leaseRttP50Ms,
      leaseRttP99Ms: r.leaseRttP99Ms,
      transactions,
      transactionsPerShard: transactions / r.shards,
      transactionsPerSecond: transactions / r.seconds,
      nodes: cluster.nodes.map((_, i) => ({ rssMiB: r.rssMiB[i]!, cpuCores: cores[i]! })),
      postgresCpuCores: cores[nodes]!,
      redisCpuCores: cores[nodes + 1]!,
      driverCpuCores: (own1.user + own1.system) / 1e6 / seconds,
      loadAverage1m: os.loadavg()[0]!,
    };
  } finally {
    await cluster.stop();
  }
}

async function networkedMain(nodes: number): Promise<void> {
  const services = await startClusterServices();
  const rows: NetworkedRun[] = [];
  try {
    for (const c of counts) {
      const r = await networkedRun(services, nodes, c);
      rows.push(r);
      console.log(`nodes=${nodes} N=${c}: ${r.shards} shards in ${r.seconds.toFixed(1)} s`);
    }
  } finally {
    await services.stop();
  }
  console.log(`\n${nodes} node(s), PostgreSQL + Redis, ${os.cpus().length} CPU cores on this machine`);
  console.log('contributors | shards/s | lease RTT p50 ms | p99 ms | PG xact/shard | PG xact/s | node CPU cores (RSS MiB) | PG CPU | Redis CPU | driver CPU');
  for (const r of rows) {
    const perNode = r.nodes.map((x) => `${x.cpuCores.toFixed(2)} (${x.rssMiB.toFixed(0)})`).join(', ');
    console.log(
      `${String(r.contributors).padStart(12)} | ${r.shardsPerSecond.toFixed(0).padStart(8)} | ${r.leaseRttP50Ms.toFixed(1).padStart(16)} | ${r.leaseRttP99Ms.toFixed(1).padStart(6)} | ` +
        `${r.transactionsPerShard.toFixed(2).padStart(13)} | ${r.transactionsPerSecond.toFixed(0).padStart(9)} | ${perNode} | ${r.postgresCpuCores.toFixed(2)} | ${r.redisCpuCores.toFixed(2)} | ${r.driverCpuCores.toFixed(2)}`,
    );
  }
  await mkdir('bench-results', { recursive: true });
  const file = `bench-results/coordinator-nodes-${nodes}.json`;
  await writeFile(file, JSON.stringify({ date: new Date().toISOString(), nodes, cpuCores: os.cpus().length, tile: 64, runs: rows }, null, 2));
  console.log(`wrote ${file}`);
}

async function main(): Promise<void> {
  if (nodeCount !== undefined) {
    await networkedMain(nodeCount);
    return;
  }
  const rows: (RunResult & { tile: number })[] = [];
  for (const n of counts) {
    const r = await runOnce(n, SMALL_TILES.m, SMALL_TILES.k, SMALL_TILES.n, SMALL_TILES.env);
    rows.push(r);
    console.log(`N=${n}: ${r.shards} shards in ${r.seconds.toFixed(1)} s`);
  }
  const big = Number(values.big);
  const bigRun = await runOnce(Number(values['big-contributors']), big, big, big, { TESSERA_CANARIES: 'off' });
  const bytesPerFlop = bigRun.bytesToContributors / bigRun.flops;
  const perTileBound = 4 / bigRun.tile; // a t×t tile with full K needs 2·t·K·4 bytes for 2·t²·K FLOPs
  console.log('\ncontributors | shards | shards/s | lease RTT p50 ms | p99 ms | coordinator RSS MiB');
  for (const r of rows) {
    console.log(
      `${String(r.contributors).padStart(12)} | ${String(r.shards).padStart(6)} | ${r.shardsPerSecond.toFixed(0).padStart(8)} | ${r.leaseRttP50Ms.toFixed(1).padStart(16)} | ${r.leaseRttP99Ms.toFixed(1).padStart(6)} | ${r.coordinatorRssMiB.toFixed(0)}`,
    );
  }
  console.log(
    `\n${big}³ job, ${bigRun.contributors} contributors, ${bigRun.tile}² tiles: ${bigRun.shardsPerSecond.toFixed(1)} shards/s; ` +
      `bytes to contributors per FLOP ${bytesPerFlop.toExponential(3)} vs per-tile lower bound 4/t = ${perTileBound.toExponential(3)} (ratio ${(bytesPerFlop / perTileBound).toFixed(2)})`,
  );
  await mkdir('bench-results', { recursive: true });
  const out = { date: new Date().toISOString(), runs: rows, big: { ...bigRun, bytesPerFlop, perTileBound } };
  await writeFile('bench-results/coordinator.json', JSON.stringify(out, null, 2));
  console.log('wrote bench-results/coordinator.json');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
