/**
 * Coordinator load benchmark: `npm run bench:coordinator [-- --n 100,1000,5000]`.
 * Starts the real coordinator as a child process, connects N simulated
 * contributors (socket.io-client) that answer with precomputed tiles, so the
 * coordinator — leasing, verification, storage — is what is measured. Prints
 * a table and writes bench-results/coordinator.json.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { io } from 'socket.io-client';
import { PROTOCOL_VERSION, type MatmulLease } from '../shared/protocol';
import { WEBGPU_DEFAULT_LIMITS } from '../shared/tiling';
import { makeDataDir, submitMatmul, waitForJob } from '../test/support/coordinator';
import { spawnCoordinator } from '../test/support/coordinator-process';
import { randomMatrix } from '../test/support/matrices';
import type { SimSocket } from '../test/support/sim-contributor';

const { values } = parseArgs({ options: { n: { type: 'string', default: '100,1000,5000' }, big: { type: 'string', default: '4096' }, 'big-contributors': { type: 'string', default: '16' } } });
const counts = values.n.split(',').map(Number);

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

async function connect(url: string, n: number): Promise<SimSocket[]> {
  const sockets: SimSocket[] = [];
  for (let i = 0; i < n; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, async () => {
        const s: SimSocket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
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
async function drive(sockets: SimSocket[], a: Float32Array, layout: Layout, isDone: () => Promise<boolean>, pid: number): Promise<Omit<RunResult, 'contributors'>> {
  const perRow = Math.ceil(layout.n / layout.tileCols);
  const rtts: number[] = [];
  let shards = 0;
  let bytes = 0;
  let flops = 0;
  let peakRss = 0;
  let done = false;
  const sampler = setInterval(() => void rssMiB(pid).then((r) => (peakRss = Math.max(peakRss, r))), 200);
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
  return { shards, seconds, shardsPerSecond: shards / seconds, leaseRttP50Ms: pct(rtts, 50), leaseRttP99Ms: pct(rtts, 99), coordinatorRssMiB: peakRss, bytesToContributors: bytes, flops };
}

async function runOnce(contributors: number, m: number, k: number, n: number, env: Record<string, string>): Promise<RunResult & { tile: number }> {
  const dataDir = await makeDataDir();
  const proc = await spawnCoordinator(dataDir, env);
  proc.child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[coordinator] ${d.toString()}`));
  void proc.exited.then((code) => code !== null && console.error(`[coordinator] exited with ${code}`));
  try {
    const { a, b } = problem(m, k, n);
    const job = await submitMatmul(proc.url, { rows: m, cols: k, data: a }, { rows: k, cols: n, data: b });
    const sockets = await connect(proc.url, contributors);
    const layout = { k, n, tileRows: job.tile.rows, tileCols: job.tile.cols };
    const isDone = async () => (await waitForJob(proc.url, job.id, 1, () => true)).status !== 'running' && (await waitForJob(proc.url, job.id, 1, () => true)).status !== 'queued';
    const r = await drive(sockets, a, layout, isDone, proc.child.pid!);
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

async function main(): Promise<void> {
  const rows: (RunResult & { tile: number })[] = [];
  for (const n of counts) {
    // 64×64×64 tiles: each shard is cheap, so leasing and verification dominate.
    const r = await runOnce(n, 64 * 64, 64, 64 * 48, { TESSERA_TARGET_TILES: '1000000', TESSERA_MAX_PANEL_BYTES: String(64 * 64 * 4), TESSERA_CANARIES: 'off' });
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
