/**
 * The event-loop attack of issue 18: results whose verification is heavy —
 * an inference model that costs hundreds of milliseconds of CPU recompute per
 * checked sample, and 512×512 matmul tiles with K = 4096 for Freivalds — are
 * returned as fast as contributors can send them, to a coordinator running as
 * its own process (as `npm start` runs it). Verification runs on the worker
 * pool, so meanwhile /healthz answers at once and the event loop's p99 lag,
 * read from the coordinator's own Prometheus gauge, stays low (see LAG_LIMIT_S).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../../shared/api';
import { getJob, submitMatmul, waitForJob } from '../support/coordinator';
import { spawnCoordinator, type CoordinatorProcess } from '../support/coordinator-process';
import { identityChainModel } from '../support/heavy-models';
import { postInference, randomTensor } from '../support/inference';
import { randomMatrix } from '../support/matrices';
import { ShortcutContributor, identityAnswer, identityBlocks, leadingColumnsAnswer, type Shortcut } from '../support/shortcut-contributor';

/** 280 MatMuls on a 512×512 weight: 0.15 GFLOP, a few hundred ms of reference recompute, per checked sample. */
const CHAIN = { count: 280, width: 512 };
const CHECKS = 3;
/**
 * The bound is 50 ms, and `npm run bench:soak` measures it on a machine the coordinator has to itself.
 * Here other test files share the 2 cores, which alone stalls any process by tens of milliseconds, so the
 * suite asserts a bound that a blocked loop breaks (verification on the loop: p99 windows of 1.3–2.8 s)
 * and noise does not; TESSERA_LAG_LIMIT_MS=50 holds the test to the figure on a quiet machine.
 */
const LAG_LIMIT_S = Number(process.env.TESSERA_LAG_LIMIT_MS ?? 300) / 1000;
/** How often the test scrapes /metrics, as Prometheus would (each scrape starts a new lag window). */
const SCRAPE_MS = 5_000;

let coord: CoordinatorProcess;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'tessera-verify-pool-'));
  coord = await spawnCoordinator(dataDir, {
    TESSERA_CANARIES: 'off',
    TESSERA_TILES_FOLLOW_KERNELS: 'off',
    TESSERA_TARGET_TILES: '4',
    TESSERA_INFERENCE_CHECKS: String(CHECKS),
  });
}, 90_000);

afterAll(async () => {
  coord?.child.kill('SIGTERM');
  await coord?.exited;
  await rm(dataDir, { recursive: true, force: true });
});

/** The lag gauges since the previous scrape (each scrape resets the histogram they are read from). */
async function lagSinceLastScrape(): Promise<{ p99: number; max: number }> {
  const res = await fetch(`${coord.url}/metrics`);
  const families = new Map(parsePrometheusTextFormat(await res.text()).map((f) => [f.name, f]));
  const gauge = (name: string) => Number(families.get(name)?.metrics[0]?.value ?? NaN);
  return { p99: gauge('tessera_nodejs_eventloop_lag_p99_seconds'), max: gauge('tessera_nodejs_eventloop_lag_max_seconds') };
}

async function submitInference(seed: number): Promise<JobView> {
  const res = await postInference(coord.url, identityChainModel(CHAIN.count, CHAIN.width), { x: randomTensor([24, CHAIN.width], seed) });
  expect(res.status).toBe(201);
  return (await res.json()) as JobView;
}

const quantile = (xs: number[], q: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

describe('verification under attack', () => {
  it('keeps /healthz answering and the event loop unblocked while heavy results are verified', async () => {
    const [m, k, n] = [1024, 4096, 1024];
    const jobs: JobView[] = [];
    for (let i = 0; i < 3; i++) jobs.push(await submitInference(i + 1));
    for (let i = 0; i < 2; i++) jobs.push(await submitMatmul(coord.url, { rows: m, cols: k, data: randomMatrix(m, k, 10 + i) }, { rows: k, cols: n, data: identityBlocks(k, n, 512) }));
    expect(jobs.filter((j) => j.type === 'matmul').every((j) => j.tile?.rows === 512 && j.tile.cols === 512)).toBe(true);

    const answer: Shortcut = (lease, panel) => (lease.kind === 'inference' ? identityAnswer : leadingColumnsAnswer)(lease, panel);
    await lagSinceLastScrape(); // uploads and planning are another part's; measure verification from here
    // A control: this process's own loop, which only sends and polls. When it lags too, the machine is overloaded.
    const control = monitorEventLoopDelay({ resolution: 10 });
    control.enable();
    const contributors = await Promise.all(Array.from({ length: 4 }, () => new ShortcutContributor(coord.url, answer, { max: 2 }).connect()));
    for (const c of contributors) void c.run().catch(() => undefined);

    const healthz: number[] = [];
    const windows: { p99: number; max: number }[] = [];
    let running = true;
    const prober = (async () => {
      while (running) {
        const t0 = performance.now();
        const res = await fetch(`${coord.url}/healthz`);
        await res.arrayBuffer();
        healthz.push(performance.now() - t0);
        expect(res.status).toBe(200);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const scraper = (async () => {
      while (running) {
        await new Promise((r) => setTimeout(r, SCRAPE_MS));
        windows.push(await lagSinceLastScrape());
      }
    })();
    try {
      for (const job of jobs) expect((await waitForJob(coord.url, job.id, 150_000, undefined, 250)).status).toBe('completed');
    } finally {
      running = false;
      await Promise.all([prober, scraper]);
      for (const c of contributors) c.disconnect();
    }
    windows.push(await lagSinceLastScrape());
    control.disable();

    const verified = contributors.reduce((s, c) => s + c.stats.verified, 0);
    const p99s = windows.map((w) => w.p99 * 1000);
    const maxes = windows.map((w) => w.max * 1000);
    const summary = {
      shardsVerified: verified,
      windows: windows.length,
      lagP99Ms: { median: quantile(p99s, 0.5), worst: Math.max(...p99s) },
      lagMaxMs: { median: quantile(maxes, 0.5), worst: Math.max(...maxes) },
      healthzMs: { n: healthz.length, p50: quantile(healthz, 0.5), p99: quantile(healthz, 0.99), max: Math.max(...healthz) },
      testProcessLagMs: { p99: control.percentile(99) / 1e6, max: control.max / 1e6 },
      loadAverage: loadavg()[0],
    };
    console.log(`event loop under verification load: ${JSON.stringify(summary)}`);
    expect(verified).toBe(3 * 4 + 2 * 4);
    expect(contributors.every((c) => c.stats.rejected === 0)).toBe(true);
    // The summary goes with a failure: testProcessLagMs near the coordinator's lag means the machine, not the coordinator, stalled.
    for (const w of windows) expect(w.p99, JSON.stringify(summary)).toBeLessThan(LAG_LIMIT_S);
    expect(summary.healthzMs.p99, JSON.stringify(summary)).toBeLessThan(Math.max(250, 3 * LAG_LIMIT_S * 1000));
    // The jobs' own view: every shard verified, none failed.
    for (const job of jobs) expect((await getJob(coord.url, job.id)).progress.verified).toBe(job.progress.total);
  }, 240_000);
});
