import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { authHeaders, downloadResult, getJob, startTestCoordinator, submitMatmul, waitForJob, type TestCoordinator } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';

let coord: TestCoordinator;
let sims: SimContributor[] = [];

beforeEach(async () => {
  coord = await startTestCoordinator({ targetTiles: 8 });
  sims = [];
});
afterEach(async () => {
  for (const s of sims) s.disconnect();
  await coord.dispose();
});

async function spawn(n: number, behaviour?: ConstructorParameters<typeof SimContributor>[1]): Promise<SimContributor[]> {
  const out: SimContributor[] = [];
  for (let i = 0; i < n; i++) {
    const s = await new SimContributor(coord.url, behaviour).connect();
    sims.push(s);
    out.push(s);
    void s.run().catch(() => undefined);
  }
  return out;
}

function problem(m: number, k: number, n: number, seed = 1) {
  const a = { rows: m, cols: k, data: randomMatrix(m, k, seed) };
  const b = { rows: k, cols: n, data: randomMatrix(k, n, seed + 1) };
  return { a, b, ref: matmulReference(a.data, b.data, m, k, n) };
}

describe('matmul jobs with simulated contributors', () => {
  it('completes a multi-tile job and returns the right product', async () => {
    const { a, b, ref } = problem(300, 70, 200);
    await spawn(3);
    const job = await submitMatmul(coord.url, a, b);
    expect(job.status).toBe('queued');
    expect(job.progress.total).toBeGreaterThan(1);
    const done = await waitForJob(coord.url, job.id);
    expect(done.status).toBe('completed');
    expect(done.progress).toEqual({ total: job.progress.total, done: job.progress.total, verified: job.progress.total });
    const result = await downloadResult(coord.url, job.id);
    expect(result.shape).toEqual([300, 200]);
    expect(maxToleranceRatio(result.data, ref, 1e-5, 1e-5)).toBeLessThanOrEqual(1);
  });

  it('finishes when a contributor disconnects mid-shard', async () => {
    const { a, b, ref } = problem(256, 64, 256, 7);
    const [quitter] = await spawn(1, { kind: 'vanish' });
    const job = await submitMatmul(coord.url, a, b);
    // Let the quitter take a lease and drop it before honest help arrives.
    await new Promise<void>((resolve) => quitter!.socket.once('disconnect', () => resolve()));
    await spawn(2);
    const done = await waitForJob(coord.url, job.id);
    expect(done.status).toBe('completed');
    expect(maxToleranceRatio((await downloadResult(coord.url, job.id)).data, ref, 1e-5, 1e-5)).toBeLessThanOrEqual(1);
  });

  it('catches a contributor that returns a wrong tile and reassigns the shard', async () => {
    const { a, b, ref } = problem(128, 40, 128, 3);
    const [liar] = await spawn(1, { kind: 'flip-one' });
    const job = await submitMatmul(coord.url, a, b);
    await waitForJob(coord.url, job.id, 10_000, () => liar!.stats.rejected > 0);
    liar!.disconnect();
    await spawn(2);
    const done = await waitForJob(coord.url, job.id);
    expect(done.status).toBe('completed');
    expect(liar!.stats.verified).toBe(0);
    expect(liar!.stats.errors).toContain('VERIFICATION_FAILED');
    expect(maxToleranceRatio((await downloadResult(coord.url, job.id)).data, ref, 1e-5, 1e-5)).toBeLessThanOrEqual(1);
  });

  it('returns the shard of a contributor that never answers once its lease lapses', async () => {
    await coord.dispose();
    coord = await startTestCoordinator({ targetTiles: 1, leaseBaseMs: 300, leaseSweepMs: 50 });
    const { a, b, ref } = problem(20, 10, 30, 5);
    const [silent] = await spawn(1, { kind: 'silent' });
    const job = await submitMatmul(coord.url, a, b);
    await waitForJob(coord.url, job.id, 5_000, (j) => j.status === 'running');
    silent!.stop();
    await spawn(1);
    const done = await waitForJob(coord.url, job.id);
    expect(done.status).toBe('completed');
    expect(maxToleranceRatio((await downloadResult(coord.url, job.id)).data, ref, 1e-5, 1e-5)).toBeLessThanOrEqual(1);
  });

  it('cancels a job: status cancelled, no result, leases revoked', async () => {
    const { a, b } = problem(64, 8, 64);
    const job = await submitMatmul(coord.url, a, b);
    const res = await fetch(`${coord.url}/api/v1/jobs/${job.id}`, { method: 'DELETE', headers: authHeaders(coord.url) });
    expect(res.status).toBe(200);
    expect((await getJob(coord.url, job.id)).status).toBe('cancelled');
    const result = await fetch(`${coord.url}/api/v1/jobs/${job.id}/result`, { headers: authHeaders(coord.url) });
    expect(result.status).toBe(409);
    expect(((await result.json()) as { error: { code: string } }).error.code).toBe('RESULT_NOT_READY');
  });

  it('takes result tiles over HTTP as well, with the same checks', async () => {
    const { a, b, ref } = problem(192, 48, 160, 13);
    const workers: SimContributor[] = [];
    for (let i = 0; i < 2; i++) {
      const s = await new SimContributor(coord.url, { kind: 'honest' }, { transport: 'http' }).connect();
      sims.push(s);
      workers.push(s);
      void s.run().catch(() => undefined);
    }
    const job = await submitMatmul(coord.url, a, b);
    expect((await waitForJob(coord.url, job.id)).status).toBe('completed');
    expect(maxToleranceRatio((await downloadResult(coord.url, job.id)).data, ref, 1e-5, 1e-5)).toBeLessThanOrEqual(1);
    expect(workers.reduce((n, w) => n + w.stats.verified, 0)).toBeGreaterThanOrEqual(job.progress.total);

    const put = (token: string, body: Uint8Array<ArrayBuffer> | string, type = 'application/octet-stream', shard = 'x.0') =>
      fetch(`${coord.url}/api/v1/leases/${token}/result`, { method: 'PUT', body, headers: { 'content-type': type, 'x-shard-id': shard } });
    const forged = await put('00000000-0000-4000-8000-000000000000', new Uint8Array(16));
    expect(forged.status).toBe(404);
    expect(((await forged.json()) as { error: { code: string } }).error.code).toBe('LEASE_UNKNOWN');
    expect((await put('t', new Uint8Array(17 * 1024 * 1024))).status).toBe(413);
    expect((await put('t', '1,2,3', 'text/plain')).status).toBe(415);
  });
});
