/**
 * Soak: `npm run bench:soak [-- --minutes 30 --contributors 4]`.
 * Runs the real coordinator as a child process for the given time with honest
 * work flowing (matmul and inference jobs submitted back to back, computed by
 * simulated contributors, each answer checked against a CPU reference) while
 * hostile traffic keeps coming: every attack of the hardening issue (hanging
 * and quadratic models, heavy recompute, huge outputs, external and DOUBLE
 * initializers, overflowing products, NumPy-refused headers, hex numbers,
 * aborted uploads, quota races, blob reads without a lease, malformed socket
 * messages, invisible and reserved names). Every 2 s it samples the
 * coordinator's event-loop lag (p99, from its Prometheus gauge), RSS, open
 * descriptors, temporary upload files and /healthz latency. Writes
 * bench-results/soak-<time>.json and a chart of the series, soak-<time>.html.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import { matmulReference } from '../shared/matmul-reference';
import { runReference } from '../server/inference/reference-executor';
import { loadModel } from '../server/inference/onnx-model';
import { decodeNpy } from '../shared/npy';
import { authHeaders, downloadResult, makeDataDir, submitMatmul, waitForJob } from '../test/support/coordinator';
import { spawnCoordinator } from '../test/support/coordinator-process';
import { randomMatrix } from '../test/support/matrices';
import { mlpModel } from '../test/support/onnx-builder';
import { prng } from '../test/support/prng';
import { SimContributor } from '../test/support/sim-contributor';
import * as attack from './soak-attacks';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '30' }, contributors: { type: 'string', default: '4' }, seed: { type: 'string', default: '1' } } });
const minutes = Number(values.minutes);
const contributorCount = Number(values.contributors);
if (!(minutes > 0) || !(contributorCount >= 1)) throw new Error('--minutes takes a positive number and --contributors a whole number ≥ 1');

const rand = prng(Number(values.seed));
const run = promisify(execFile);

interface Sample {
  t: number;
  lagP99Ms: number;
  rssMiB: number;
  fds: number;
  uploads: number;
  healthzMs: number;
}

async function createKey(dataDir: string, name: string, limits: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'cli/keys.ts', 'create', '--name', name, ...limits], { env: { ...process.env, TESSERA_DATA_DIR: dataDir } });
  const secret = stdout.trim().split('\n').at(-1)!.trim();
  if (!/^\S{20,}$/.test(secret)) throw new Error(`could not read the new key from: ${stdout}`);
  return secret;
}

async function sample(url: string, pid: number, dataDir: string, t0: number): Promise<Sample> {
  const h0 = performance.now();
  const health = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.status).catch(() => 0);
  const healthzMs = health === 200 ? performance.now() - h0 : Infinity;
  const metrics = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text()).catch(() => '');
  const lag = Number(/^tessera_nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(metrics)?.[1] ?? NaN);
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  const uploads = (await readdir(join(dataDir, 'uploads')).catch(() => [])).length;
  return { t: (Date.now() - t0) / 1000, lagP99Ms: lag * 1000, rssMiB: rss, fds, uploads, healthzMs };
}

const pct = (xs: number[], p: number) => {
  const s = xs.filter(Number.isFinite).sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function main(): Promise<void> {
  const dataDir = await makeDataDir();
  // Per-key upload slots above the quota race's 8 parallel submits, so that the race reaches the quota check.
  const coord = await spawnCoordinator(dataDir, { TESSERA_KEY_REQUESTS_PER_MINUTE: '100000', TESSERA_KEY_MAX_CONCURRENT_UPLOADS: '8', TESSERA_MAX_CONCURRENT_UPLOADS: '16' });
  // Whatever ends the soak (an exception included), the coordinator it started goes with it.
  process.once('exit', () => coord.child.kill('SIGKILL'));
  const url = coord.url;
  const pid = coord.child.pid!;
  const attacker = await createKey(dataDir, 'attacker', ['--requests-per-minute', '100000']);
  const limited = await createKey(dataDir, 'limited', ['--max-jobs', '3', '--max-stored-bytes', '2000000', '--requests-per-minute', '100000']);
  const stopAt = Date.now() + minutes * 60_000;
  const t0 = Date.now();
  console.log(`soak: ${minutes} min against ${url} (pid ${pid}), ${contributorCount} honest contributors; data in ${dataDir}`);

  const contributors = await Promise.all(Array.from({ length: contributorCount }, () => new SimContributor(url, { kind: 'honest' }, { inference: true, max: 2 }).connect()));
  const working = contributors.map((c) => c.run());

  // Honest requesters: a matmul and an inference job at a time, each answer checked.
  const honest = { submitted: 0, completed: 0, correct: 0, failed: 0, latenciesMs: [] as number[] };
  let lastBlob: string | undefined;
  const mlp = mlpModel();
  const mlpGraph = loadModel(mlp);
  const honestLoop = async (kind: 'matmul' | 'inference') => {
    for (let i = 0; Date.now() < stopAt; i++) {
      const started = Date.now();
      honest.submitted++;
      try {
        if (kind === 'matmul') {
          const [m, k, n] = [96 + (i % 5) * 16, 128, 112];
          const a = randomMatrix(m, k, i + 1);
          const b = randomMatrix(k, n, i + 1000);
          const job = await submitMatmul(url, { rows: m, cols: k, data: a }, { rows: k, cols: n, data: b });
          const done = await waitForJob(url, job.id, 120_000, undefined, 200);
          if (done.status !== 'completed') throw new Error(`matmul ${job.id} ${done.status}: ${done.reason ?? ''}`);
          const c = await downloadResult(url, job.id);
          const want = matmulReference(a, b, m, k, n);
          honest.completed++;
          if (c.data.every((v, j) => Math.abs(v - want[j]!) <= 1e-4 * Math.max(1, Math.abs(want[j]!)))) honest.correct++;
        } else {
          const batch = 48;
          const x = randomMatrix(batch, 16, i + 7);
          const form = new FormData();
          form.set('type', 'inference');
          form.set('model', new Blob([new Uint8Array(mlp)]), 'model.onnx');
          form.set('x', attack.npy([batch, 16], x), 'x.npy');
          const res = await fetch(`${url}/api/v1/jobs`, { method: 'POST', body: form, headers: authHeaders(url) });
          if (res.status !== 201) throw new Error(`inference submit ${res.status}: ${await res.text()}`);
          const job = (await res.json()) as { id: string; inference?: { model?: { sha256?: string } } };
          lastBlob = job.inference?.model?.sha256 ?? lastBlob;
          const done = await waitForJob(url, job.id, 120_000, undefined, 200);
          if (done.status !== 'completed') throw new Error(`inference ${job.id} ${done.status}: ${done.reason ?? ''}`);
          const out = await fetch(`${url}/api/v1/jobs/${job.id}/result`, { headers: authHeaders(url) });
          const y = decodeNpy(new Uint8Array(await out.arrayBuffer()));
          const want = runReference(mlpGraph, { x: { dims: [batch, 16], data: x } }).y!.data;
          honest.completed++;
          if (y.data.every((v, j) => Math.abs(v - want[j]!) <= 1e-4 * Math.max(1, Math.abs(want[j]!)))) honest.correct++;
        }
        honest.latenciesMs.push(Date.now() - started);
      } catch (err) {
        honest.failed++;
        console.error(`honest ${kind} job failed: ${(err as Error).message}`);
      }
    }
  };

  // Hostile traffic: one attack at a time per lane, two lanes, chosen at random with the heavy ones rarer.
  const outcomes: Record<string, Record<string, number>> = {};
  const count = (name: string, outcome: string | number) => {
    const o = (outcomes[name] ??= {});
    o[String(outcome)] = (o[String(outcome)] ?? 0) + 1;
  };
  let quotaViolations = 0;
  const models = {
    hang: attack.transposeHangModel(),
    chain: attack.longChainModel(20_000),
    heavy: attack.heavyRecomputeModel(800, 2048),
    hugeOut: attack.hugeOutputModel(4472),
    external: attack.externalHugeInitializerModel(),
    double: attack.doubleHugeInitializerModel(),
  };
  const attacks: [string, number, () => Promise<string | number>][] = [
    ['transpose-hang', 4, () => attack.postModel(url, attacker, models.hang, { shape: [2, 4] })],
    ['20k-node-chain', 1, () => attack.postModel(url, attacker, models.chain, { shape: [2, 4] })],
    ['heavy-recompute', 1, () => attack.postModel(url, attacker, models.heavy, { shape: [2, 2048] })],
    ['80MB-output', 2, () => attack.postModel(url, attacker, models.hugeOut, { shape: [2, 4472] })],
    ['external-initializer', 3, () => attack.postModel(url, attacker, models.external, { shape: [2, 4] })],
    ['double-initializer', 3, () => attack.postModel(url, attacker, models.double, { shape: [2, 4] })],
    ['overflowing-product', 3, () => attack.overflowMatmul(url, attacker)],
    ['duplicate-npy-key', 3, () => attack.duplicateKeyNpy(url, attacker)],
    ['hex-priority', 3, () => attack.hexPriority(url, attacker)],
    ['aborted-upload', 4, () => attack.abortedUpload(url, attacker, 8 << 20, 1 << 20)],
    ['blob-without-lease', 3, () => (lastBlob ? attack.blobWithoutLease(url, lastBlob) : Promise.resolve('no-blob-yet'))],
    ['socket-junk', 4, () => attack.socketJunk(url, 200, rand)],
    ['invisible-name', 2, () => attack.badName(url, rand() < 0.5 ? 'ㅤㅤ' : 'Tessera Admin')],
    [
      'quota-race',
      1,
      async () => {
        const m = attack.npy([256, 256], new Float32Array(256 * 256).fill(1));
        const form = () => ({ type: 'matmul', a: m, b: m });
        const statuses = await Promise.all(Array.from({ length: 8 }, () => attack.postFormKeep(url, limited, form())));
        const accepted = statuses.filter((s) => s.status === 201);
        // 3 jobs and 2 MB: each job stores 3 × 256 KiB, so at most 2 fit.
        if (accepted.length > 2) quotaViolations++;
        await Promise.all(accepted.map((s) => fetch(`${url}/api/v1/jobs/${s.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${limited}` } }).then((r) => r.arrayBuffer())));
        return `${accepted.length}-accepted`;
      },
    ],
  ];
  const totalWeight = attacks.reduce((s, a) => s + a[1], 0);
  const pick = () => {
    let r = rand() * totalWeight;
    for (const a of attacks) if ((r -= a[1]) < 0) return a;
    return attacks[0]!;
  };
  const lane = async () => {
    while (Date.now() < stopAt) {
      const [name, , fire] = pick();
      try {
        count(name, await fire());
      } catch (err) {
        count(name, `threw: ${(err as Error).message.slice(0, 60)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const samples: Sample[] = [];
  const sampler = (async () => {
    while (Date.now() < stopAt) {
      const s = await sample(url, pid, dataDir, t0);
      samples.push(s);
      if (samples.length % 30 === 0) {
        console.log(`t=${s.t.toFixed(0)}s lag p99 ${s.lagP99Ms.toFixed(1)} ms, RSS ${s.rssMiB.toFixed(0)} MiB, fds ${s.fds}, uploads ${s.uploads}, healthz ${s.healthzMs.toFixed(1)} ms; honest ${honest.correct}/${honest.submitted}`);
      }
      await new Promise((r) => setTimeout(r, 2_000));
    }
  })();

  await Promise.all([honestLoop('matmul'), honestLoop('inference'), lane(), lane(), sampler]);
  // The honest contributors' standing: hostile traffic must not have cost them strikes.
  const standing = await Promise.all(
    contributors.map(async (c) => {
      const res = await fetch(`${url}/api/v1/contributors/${c.contributorId}`);
      const body = (await res.json()) as { status?: string; rejectedShards?: number };
      return { status: body.status ?? `HTTP ${res.status}`, rejected: body.rejectedShards ?? NaN, verified: c.stats.verified, rateLimited: c.stats.errors.filter((e) => e.includes('RATE') || e.includes('slow down')).length };
    }),
  );
  for (const c of contributors) c.stop();
  for (const c of contributors) c.socket.close();
  await Promise.all(working);
  await new Promise((r) => setTimeout(r, 2_000));
  const after = await sample(url, pid, dataDir, t0);
  coord.child.kill('SIGTERM');
  // A coordinator whose event loop is stuck never handles SIGTERM.
  const killer = setTimeout(() => coord.child.kill('SIGKILL'), 15_000);
  await coord.exited;
  clearTimeout(killer);
  await rm(dataDir, { recursive: true, force: true });

  const fiveXX = Object.values(outcomes).reduce((s, o) => s + Object.entries(o).filter(([k]) => /^5\d\d$/.test(k)).reduce((x, [, v]) => x + v, 0), 0);
  const lags = samples.map((s) => s.lagP99Ms);
  const summary = {
    minutes,
    contributors: contributorCount,
    honest: { ...honest, latenciesMs: undefined, p50Ms: pct(honest.latenciesMs, 50), p99Ms: pct(honest.latenciesMs, 99), contributors: standing },
    hostileRequests: Object.values(outcomes).reduce((s, o) => s + Object.values(o).reduce((x, v) => x + v, 0), 0),
    fiveXX,
    quotaViolations,
    lagP99Ms: { median: pct(lags, 50), p99: pct(lags, 99), max: Math.max(...lags.filter(Number.isFinite)) },
    healthzMs: { median: pct(samples.map((s) => s.healthzMs), 50), max: Math.max(...samples.map((s) => s.healthzMs)) },
    rssMiB: { first: samples[0]?.rssMiB, max: Math.max(...samples.map((s) => s.rssMiB)), last: samples.at(-1)?.rssMiB },
    fds: { first: samples[0]?.fds, max: Math.max(...samples.map((s) => s.fds)), afterContributorsLeft: after.fds },
    uploadsLeftAtEnd: after.uploads,
    outcomes,
  };
  await mkdir('bench-results', { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const jsonPath = join('bench-results', `soak-${stamp}.json`);
  const htmlPath = join('bench-results', `soak-${stamp}.html`);
  await writeFile(jsonPath, JSON.stringify({ summary, samples }, null, 2));
  await writeFile(htmlPath, await chartPage(summary, samples));
  console.log(JSON.stringify(summary, null, 2));
  console.log(`wrote ${jsonPath} and ${htmlPath}`);
  const struck = standing.filter((c) => c.status !== 'active' || c.rejected > 0).length;
  if (fiveXX > 0 || quotaViolations > 0 || honest.failed > 0 || honest.correct !== honest.completed || struck > 0) process.exitCode = 1;
}

/** One self-contained page (uPlot inlined from node_modules): lag, RSS, descriptors and /healthz over the run. */
async function chartPage(summary: object, samples: Sample[]): Promise<string> {
  const uplotJs = await readFile('node_modules/uplot/dist/uPlot.iife.min.js', 'utf8');
  const uplotCss = await readFile('node_modules/uplot/dist/uPlot.min.css', 'utf8');
  const series = {
    t: samples.map((s) => s.t),
    lag: samples.map((s) => s.lagP99Ms),
    rss: samples.map((s) => s.rssMiB),
    fds: samples.map((s) => s.fds),
    healthz: samples.map((s) => (Number.isFinite(s.healthzMs) ? s.healthzMs : null)),
  };
  return `<!doctype html><html><head><meta charset="utf-8"><title>Tessera soak</title><style>${uplotCss} body{font-family:sans-serif;margin:20px} pre{font-size:11px}</style></head><body>
<h1>Tessera soak: ${(summary as { minutes: number }).minutes} min of honest jobs and hostile traffic</h1>
<div id="charts"></div><pre>${JSON.stringify(summary, null, 2).replace(/</g, '&lt;')}</pre>
<script>${uplotJs}</script><script>
const s = ${JSON.stringify(series)};
const charts = [['Event-loop lag p99 (ms)', s.lag, '#c0392b'], ['RSS (MiB)', s.rss, '#2980b9'], ['Open descriptors', s.fds, '#27ae60'], ['/healthz (ms)', s.healthz, '#8e44ad']];
for (const [title, ys, color] of charts) {
  new uPlot({ title, width: 900, height: 220, scales: { x: { time: false } }, axes: [{ label: 'seconds' }, {}], series: [{ label: 's' }, { label: title, stroke: color, width: 1.5 }] }, [s.t, ys], document.getElementById('charts'));
}
</script></body></html>`;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
