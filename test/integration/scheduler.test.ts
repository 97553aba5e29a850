import { describe, expect, it } from 'vitest';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { authHeaders, downloadResult, getJob, submitMatmul, waitForJob } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';
import { SimContributor, type Behaviour } from '../support/sim-contributor';
import { useCoordinatorHarness } from '../support/harness';

const h = useCoordinatorHarness({ targetTiles: 16 });

const start = h.start;

const spawn = h.spawn;

function problem(m: number, k: number, n: number, seed: number) {
  const a = { rows: m, cols: k, data: randomMatrix(m, k, seed) };
  const b = { rows: k, cols: n, data: randomMatrix(k, n, seed + 1) };
  return { a, b, ref: () => matmulReference(a.data, b.data, m, k, n) };
}

async function expectCorrect(id: string, ref: Float32Array): Promise<void> {
  const done = await getJob(h.coord.url, id);
  expect(done.status).toBe('completed');
  expect(maxToleranceRatio((await downloadResult(h.coord.url, id)).data, ref, 1e-5, 1e-5)).toBeLessThanOrEqual(1);
}

describe('scheduler under faults', () => {
  it('completes every job when 30% of contributors vanish mid-shard', async () => {
    await start();
    const jobs = [problem(256, 32, 256, 1), problem(200, 24, 180, 3), problem(128, 40, 300, 5)];
    const crowd: SimContributor[] = [];
    for (let i = 0; i < 10; i++) crowd.push(await spawn(i % 3 === 0 && i < 9 ? { kind: 'vanish', afterShards: i % 2 } : { kind: 'honest', delayMs: 5 }));
    const submitted = await Promise.all(jobs.map((p) => submitMatmul(h.coord.url, p.a, p.b)));
    for (const [i, job] of submitted.entries()) {
      await waitForJob(h.coord.url, job.id, 60_000);
      await expectCorrect(job.id, jobs[i]!.ref());
    }
    expect(crowd.filter((s) => !s.socket.connected).length).toBe(3);
  });

  it('keeps fast and 10× slower contributors busy and finishes without waiting on the slow tail', async () => {
    await start({ speculateAfterMs: 400, targetTiles: 64 });
    // 64 tiles: enough that the tiles the slow contributors grab at the start do not decide the count.
    const p = problem(512, 32, 512, 7);
    const fast = [await spawn({ kind: 'honest', delayMs: 20 }, { gflops: 100 }), await spawn({ kind: 'honest', delayMs: 20 }, { gflops: 100 })];
    const slow = [await spawn({ kind: 'honest', delayMs: 200 }, { gflops: 10 }), await spawn({ kind: 'honest', delayMs: 200 }, { gflops: 10 })];
    const job = await submitMatmul(h.coord.url, p.a, p.b);
    await waitForJob(h.coord.url, job.id, 30_000);
    await expectCorrect(job.id, p.ref());
    const fastDone = fast.reduce((n, s) => n + s.stats.verified, 0);
    const slowDone = slow.reduce((n, s) => n + s.stats.verified, 0);
    expect(slowDone).toBeGreaterThan(0);
    expect(fastDone).toBeGreaterThan(slowDone * 2);
  });

  it('completes a job whose shards a silent contributor holds, by backup leases and lease expiry', async () => {
    await start({ speculateAfterMs: 300, leaseBaseMs: 60_000 });
    const p = problem(128, 16, 128, 9);
    const silent = await spawn({ kind: 'silent' }, { max: 4 });
    const job = await submitMatmul(h.coord.url, p.a, p.b);
    await waitForJob(h.coord.url, job.id, 5_000, () => silent.leases.length === 4);
    await spawn();
    const t0 = Date.now();
    await waitForJob(h.coord.url, job.id, 30_000);
    expect(Date.now() - t0).toBeLessThan(20_000); // far sooner than the 60 s leases would lapse
    await expectCorrect(job.id, p.ref());
  });

  it('returns the shards of a silent contributor when its leases lapse', async () => {
    await start({ speculateAfterMs: 1e12, leaseBaseMs: 500, leaseSweepMs: 50 });
    const p = problem(128, 16, 128, 11);
    const silent = await spawn({ kind: 'silent' }, { max: 4 });
    const job = await submitMatmul(h.coord.url, p.a, p.b);
    await waitForJob(h.coord.url, job.id, 5_000, () => silent.leases.length >= 4);
    await spawn();
    await waitForJob(h.coord.url, job.id, 20_000);
    await expectCorrect(job.id, p.ref());
  });

  it('lets two requesters progress at once', async () => {
    await start();
    const p1 = problem(256, 32, 256, 13);
    const p2 = problem(256, 32, 256, 15);
    await spawn({ kind: 'honest', delayMs: 30 });
    const [j1, j2] = await Promise.all([submitMatmul(h.coord.url, p1.a, p1.b), submitMatmul(h.coord.url, p2.a, p2.b)]);
    // Before either finishes, both must have verified tiles.
    const midway = await waitForJob(h.coord.url, j1!.id, 30_000, (j) => j.progress.verified >= j.progress.total / 2);
    const other = await getJob(h.coord.url, j2!.id);
    expect(midway.status).toBe('running');
    expect(other.progress.verified).toBeGreaterThan(0);
    expect(Math.abs(other.progress.verified - midway.progress.verified)).toBeLessThanOrEqual(2);
    await waitForJob(h.coord.url, j1!.id);
    await waitForJob(h.coord.url, j2!.id);
    await expectCorrect(j1!.id, p1.ref());
    await expectCorrect(j2!.id, p2.ref());
  });

  it('serves a higher-priority job first', async () => {
    await start();
    const p = problem(64, 8, 64, 17);
    const low = await submitMatmul(h.coord.url, p.a, p.b);
    const form = new FormData();
    const { npyBlob } = await import('../support/matrices');
    form.set('type', 'matmul');
    form.set('priority', '5');
    form.set('a', npyBlob(64, 8, p.a.data), 'a.npy');
    form.set('b', npyBlob(8, 64, p.b.data), 'b.npy');
    const res = await fetch(`${h.coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: authHeaders(h.coord.url) });
    const high = (await res.json()) as { id: string; priority: number };
    expect(high.priority).toBe(5);
    const worker = await spawn();
    await waitForJob(h.coord.url, low.id);
    expect(worker.leases.find((l) => l.jobId === high.id || l.jobId === low.id)!.jobId).toBe(high.id);
    const bad = new FormData();
    bad.set('type', 'matmul');
    bad.set('priority', 'urgent');
    expect((await fetch(`${h.coord.url}/api/v1/jobs`, { method: 'POST', body: bad, headers: authHeaders(h.coord.url) })).status).toBe(400);
  });

  it('pipelines leases, caps them per contributor, and prefers tiles that reuse held panels', async () => {
    await start({ maxLeasesPerContributor: 3, canaries: false });
    const p = problem(256, 16, 256, 19);
    const job = await submitMatmul(h.coord.url, p.a, p.b);
    expect(job.progress.total).toBe(16);
    const greedy = await spawn({ kind: 'honest', delayMs: 10 }, { max: 8 });
    await waitForJob(h.coord.url, job.id);
    await expectCorrect(job.id, p.ref());
    expect(greedy.leases.length).toBe(16);
    // Never more than 3 held at once: the first request got 3.
    const firstBatch = greedy.leases.slice(0, 3);
    expect(new Set(firstBatch.map((l) => l.shardId)).size).toBe(3);
    // Consecutive tiles share a panel (same row or same column) almost always.
    let shared = 0;
    for (let i = 1; i < greedy.leases.length; i++) {
      const [x, y] = [greedy.leases[i - 1]!, greedy.leases[i]!];
      if (x.a.sha256 === y.a.sha256 || x.b.sha256 === y.b.sha256) shared++;
    }
    expect(shared).toBeGreaterThanOrEqual(greedy.leases.length - 4);
  });
});

describe('fair sharing between requesters', () => {
  it('gives a requester with one job as much as one with three', async () => {
    await h.start({ targetTiles: 16, canaries: false });
    const { createApiKey } = await import('../../server/auth/api-keys');
    const { npyBlob } = await import('../support/matrices');
    const limits = { maxConcurrentJobs: 10, maxStoredBytes: 1e9, maxUploadBytes: 1e8, requestsPerMinute: 1000 };
    const busy = (await createApiKey(h.coord.store, 'busy', limits)).secret;
    const quiet = (await createApiKey(h.coord.store, 'quiet', limits)).secret;
    const submitAs = async (key: string, seed: number) => {
      const f = new FormData();
      f.set('type', 'matmul');
      f.set('a', npyBlob(256, 16, randomMatrix(256, 16, seed)), 'a.npy');
      f.set('b', npyBlob(16, 256, randomMatrix(16, 256, seed + 1)), 'b.npy');
      const res = await fetch(`${h.coord.url}/api/v1/jobs`, { method: 'POST', body: f, headers: { authorization: `Bearer ${key}` } });
      return ((await res.json()) as { id: string }).id;
    };
    const busyJobs = [await submitAs(busy, 1), await submitAs(busy, 3), await submitAs(busy, 5)];
    const quietJob = await submitAs(quiet, 7);
    const worker = await spawn({ kind: 'honest', delayMs: 5 });
    for (let i = 0; i < 200 && worker.leases.length < 16; i++) await new Promise((r) => setTimeout(r, 25));
    const first16 = worker.leases.slice(0, 16);
    const quietShare = first16.filter((l) => l.jobId === quietJob).length;
    expect(quietShare).toBeGreaterThanOrEqual(7); // about half, although it has one job in four
    for (const id of [...busyJobs, quietJob]) {
      const job = await h.coord.store.getJob(id);
      expect(job).toBeDefined();
    }
  });
});
