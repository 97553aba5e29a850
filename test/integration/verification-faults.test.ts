/**
 * Whose fault it is. A result holding Infinity where the exact answer itself
 * overflows float32 is honest: inference accepts it (the reference overflows
 * there too), a matrix product that cannot be represented fails the job with
 * the bound, and neither strikes the sender; a NaN injected into a normal job
 * is still rejected. A check that runs past its time limit requeues the shard
 * without a strike, and a job whose checks keep running out of time fails
 * with the reason.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContributorStats, JobView } from '../../shared/api';
import { getJob, startTestCoordinator, submitMatmul, waitForJob, type TestCoordinator } from '../support/coordinator';
import { identityChainModel, overflowingModel } from '../support/heavy-models';
import { inferenceResult, onnxRuntime, postInference, randomTensor } from '../support/inference';
import { npyBlob, randomMatrix } from '../support/matrices';
import { ShortcutContributor, identityAnswer } from '../support/shortcut-contributor';
import { SimContributor, type Behaviour } from '../support/sim-contributor';

/** Checks on a thread may run 150 ms: the identity chain below needs several times that per sample. */
const TASK_MS = 150;

let coord: TestCoordinator;
const sims: SimContributor[] = [];

beforeAll(async () => {
  coord = await startTestCoordinator({ canaries: false, targetTiles: 4, verifyTaskMs: TASK_MS });
});

afterAll(async () => {
  for (const s of sims) s.disconnect();
  await coord?.dispose();
});

async function contributor(behaviour: Behaviour = { kind: 'honest' }, make?: () => SimContributor): Promise<SimContributor> {
  const sim = await (make?.() ?? new SimContributor(coord.url, behaviour, { inference: true })).connect();
  sims.push(sim);
  void sim.run().catch(() => undefined);
  return sim;
}

function retire(...list: SimContributor[]): void {
  for (const s of list) s.disconnect();
}

async function standing(sim: SimContributor): Promise<ContributorStats> {
  const res = await fetch(`${coord.url}/api/v1/contributors/${sim.contributorId}`);
  expect(res.status).toBe(200);
  return (await res.json()) as ContributorStats;
}

async function submitInference(model: Uint8Array, x: { dims: number[]; data: Float32Array }, fields: Record<string, string> = {}): Promise<JobView> {
  const res = await postInference(coord.url, model, { x }, fields);
  expect(res.status).toBe(201);
  return (await res.json()) as JobView;
}

/** Positive inputs in [0, 1): y[:, 0] = 3·10³⁸·Σx overflows for most samples, the other outputs stay finite. */
function overflowBatch(batch: number): { dims: number[]; data: Float32Array } {
  const t = randomTensor([batch, 4], 7);
  return { dims: t.dims, data: t.data.map(Math.abs) };
}

/**
 * A matmul job whose exact product overflows float32. The upload refuses such
 * inputs (max|a|·max|b|·K past float32), so this is a job accepted before that
 * check: a valid job whose A panels are then rewritten in place with 3·10³⁸.
 */
async function overflowingMatmul(verification: 'freivalds' | 'replication'): Promise<JobView> {
  const [m, k, n] = [48, 16, 32];
  const form = new FormData();
  form.set('type', 'matmul');
  form.set('verification', verification);
  form.set('a', npyBlob(m, k, randomMatrix(m, k, 31 + (verification === 'replication' ? 1 : 0))), 'a.npy');
  form.set('b', npyBlob(k, n, new Float32Array(k * n).fill(1)), 'b.npy');
  const res = await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: { authorization: `Bearer ${coord.apiKey}` } });
  expect(res.status).toBe(201);
  const job = (await res.json()) as JobView;
  for (const p of (await coord.store.jobPanels(job.id)).filter((p) => p.side === 'a')) {
    const path = join(coord.dataDir, 'blobs', p.sha256);
    const huge = new Float32Array((await readFile(path)).byteLength / 4).fill(3e38);
    await writeFile(path, huge);
  }
  return job;
}

describe('overflow is decided by the reference', () => {
  it('accepts inference outputs that overflow where the reference overflows, and strikes no one', async () => {
    const honest = await contributor();
    const x = overflowBatch(9);
    const job = await submitInference(overflowingModel(), x);
    expect((await waitForJob(coord.url, job.id, 30_000, undefined, 200)).status).toBe('completed');
    const got = (await inferenceResult(coord.url, job.id)).outputs['*']!;
    const want = (await onnxRuntime(overflowingModel(), { x })).y!;
    const overflowed = [...want.data].filter((v) => !Number.isFinite(v)).length;
    expect(overflowed).toBeGreaterThan(0);
    expect([...got.data].map((v, i) => Number.isFinite(v) === Number.isFinite(want.data[i]!))).not.toContain(false);
    expect(await standing(honest)).toMatchObject({ status: 'active', rejectedShards: 0 });
    expect(honest.stats.rejected).toBe(0);
    retire(honest);
  });

  it('with replication, two honest results that overflow at the same places agree', async () => {
    const [a, b] = [await contributor(), await contributor()];
    const job = await submitInference(overflowingModel(), overflowBatch(6), { verification: 'replication' });
    expect((await waitForJob(coord.url, job.id, 30_000, undefined, 200)).status).toBe('completed');
    for (const sim of [a, b]) expect(await standing(sim)).toMatchObject({ status: 'active', rejectedShards: 0 });
    expect(a.stats.pending + b.stats.pending).toBeGreaterThan(0);
    retire(a, b);
  });

  it('still rejects NaN injected into a normal inference job or matrix product', async () => {
    const liar = await contributor({ kind: 'scale', factor: NaN });
    const honest = await contributor({ kind: 'honest', delayMs: 150 });
    const inference = await submitInference(identityChainModel(2, 8), randomTensor([8, 8], 3));
    const matmul = await submitMatmul(coord.url, { rows: 64, cols: 16, data: randomMatrix(64, 16, 5) }, { rows: 16, cols: 64, data: randomMatrix(16, 64, 6) });
    for (const job of [inference, matmul]) expect((await waitForJob(coord.url, job.id, 30_000, undefined, 200)).status).toBe('completed');
    expect(liar.stats.rejected).toBeGreaterThan(0);
    expect(new Set(liar.stats.errors)).toEqual(new Set(['VERIFICATION_FAILED']));
    expect((await standing(liar)).rejectedShards).toBe(liar.stats.rejected);
    expect((await standing(liar)).status).not.toBe('active');
    retire(liar, honest);
  });

  for (const verification of ['freivalds', 'replication'] as const) {
    it(`fails a matrix product that cannot be represented in float32 with the bound, without a strike (${verification})`, async () => {
      const job = await overflowingMatmul(verification); // before any contributor can fetch the panels
      const honest = await contributor();
      const done = await waitForJob(coord.url, job.id, 30_000, undefined, 200);
      expect(done.status).toBe('failed');
      expect(done.reason).toMatch(/^A·B cannot be represented in float32: at C\[\d+\]\[\d+\] the terms .* add up to 4\.80e\+39, over float32's largest value 3\.40e\+38 \(max\|A\|·max\|B\|·K is 4\.80e\+39/);
      expect(done.reason).toMatch(/divide A or B by a power of two/);
      expect(await standing(honest)).toMatchObject({ status: 'active', rejectedShards: 0 });
      expect(honest.stats.errors.every((e) => e === 'JOB_CANCELLED')).toBe(true);
      retire(honest);
    });
  }
});

describe('verification time limits', () => {
  it('requeues a shard whose check runs past its limit without a strike, and fails the job after three', async () => {
    // 240 MatMuls on a 1024×1024 identity: 0.5 GFLOP, far more than 150 ms of recompute, per sample.
    const sim = await contributor({ kind: 'honest' }, () => new ShortcutContributor(coord.url, identityAnswer));
    const job = await submitInference(identityChainModel(240, 1024), randomTensor([1, 1024], 4));
    expect(job.progress.total).toBe(1);
    const done = await waitForJob(coord.url, job.id, 60_000, undefined, 200);
    expect(done.status).toBe('failed');
    expect(done.reason).toBe(
      `verifying this job's results ran past the coordinator's limit of ${TASK_MS / 1000} s per check 3 times, so they cannot be checked here; ` +
        'for an inference job, submit a lighter model (fewer FLOPs per sample) or use verification=replication',
    );
    // The one shard was leased three times: each time-out put it back in the queue.
    expect(sim.inferenceLeases.map((l) => l.shardId)).toEqual([0, 1, 2].map(() => sim.inferenceLeases[0]!.shardId));
    await expect.poll(() => sim.stats.errors, { timeout: 5_000 }).toEqual(['LEASE_EXPIRED', 'LEASE_EXPIRED', 'JOB_CANCELLED']); // the last reply follows the job's failure
    // Sending a timed-out lease's result again is refused without a check, and without a strike.
    const first = sim.inferenceLeases[0]!;
    const again = await sim.socket.timeout(10_000).emitWithAck('lease:result', { shardId: first.shardId, leaseToken: first.leaseToken, computeMs: 1, c: new Uint8Array(4 * 1024) });
    expect(again).toMatchObject({ ok: false });
    expect(await standing(sim)).toMatchObject({ status: 'active', rejectedShards: 0 });
    expect((await getJob(coord.url, job.id)).progress.verified).toBe(0);
    const metrics = await (await fetch(`${coord.url}/metrics`)).text();
    expect(metrics).toMatch(/^tessera_verification_unavailable_total\{reason="timeout"\} 3$/m);
    retire(sim);
  });
});
