import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../server/auth/api-keys';
import { PostgresStore } from '../../server/store/postgres-store';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import type { MatmulLease } from '../../shared/protocol';
import { authHeaders, downloadResult, submitMatmul, waitForJob } from '../support/coordinator';
import { startCluster, startClusterServices, type ClusterServices, type TestCluster } from '../support/cluster';
import { inferenceResult, onnxRuntime, postInference, randomTensor, worstRelativeError } from '../support/inference';
import { randomMatrix } from '../support/matrices';
import { twoOutputModel } from '../support/onnx-builder';
import { SimContributor, type SimSocket } from '../support/sim-contributor';

/**
 * Two coordinator processes on one PostgreSQL database and one Redis, as an
 * operator runs them behind a load balancer: whatever node a requester or a
 * contributor talks to, the job is the same job.
 */

let services: ClusterServices;
let cluster: TestCluster;
const sims: SimContributor[] = [];

// One cluster for the file: starting two coordinators costs seconds, and each test has jobs of its own.
beforeAll(async () => {
  services = await startClusterServices();
  cluster = await startCluster(services, 2, { TESSERA_CANARIES: 'off', TESSERA_TARGET_TILES: '16' });
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
  await services?.stop();
});
afterEach(() => {
  for (const s of sims.splice(0)) s.disconnect();
});

const nextEvent = <T>(socket: SimSocket, event: 'work:available' | 'lease:revoked', timeoutMs = 5_000) =>
  new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    socket.once(event, ((msg: T) => {
      clearTimeout(timer);
      resolve(msg);
    }) as never);
  });

async function rawResult(url: string, jobId: string): Promise<Uint8Array> {
  const res = await fetch(`${url}/api/v1/jobs/${jobId}/result`, { headers: authHeaders(url) });
  expect(res.status).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
}

describe('two coordinators on PostgreSQL and Redis', () => {
  it('wakes and revokes a contributor on node B for a job queued and cancelled on node A', async () => {
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
    const idle = await new SimContributor(b.url).connect();
    sims.push(idle);
    const nothing = await idle.socket.timeout(5_000).emitWithAck('lease:request', { max: 1 });
    expect(nothing).toMatchObject({ ok: true, leases: [] });

    const woken = nextEvent<void>(idle.socket, 'work:available');
    const job = await submitMatmul(a.url, { rows: 32, cols: 16, data: randomMatrix(32, 16, 1) }, { rows: 16, cols: 32, data: randomMatrix(16, 32, 2) });
    await woken;

    const granted = await idle.socket.timeout(5_000).emitWithAck('lease:request', { max: 1 });
    if (!granted.ok) throw new Error(granted.error.message);
    const lease = granted.leases[0] as MatmulLease;
    expect(lease.jobId).toBe(job.id);
    // The panels were stored through node A; node B serves them from the database.
    const panel = await fetch(`${b.url}${lease.a.url}`);
    expect(panel.status).toBe(200);
    expect((await panel.arrayBuffer()).byteLength).toBe(lease.a.bytes);

    const revoked = nextEvent<{ shardId: string }>(idle.socket, 'lease:revoked');
    const cancel = await fetch(`${a.url}/api/v1/jobs/${job.id}`, { method: 'DELETE', headers: authHeaders(a.url) });
    expect(cancel.status).toBe(200);
    expect((await revoked).shardId).toBe(lease.shardId);
  }, 60_000);

  it('computes a job submitted to node A with contributors on node B, and serves the same result from both', async () => {
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
    for (let i = 0; i < 3; i++) {
      const s = await new SimContributor(b.url).connect();
      sims.push(s);
      void s.run().catch(() => undefined);
    }
    const [m, k, n] = [192, 40, 160];
    const am = randomMatrix(m, k, 11);
    const bm = randomMatrix(k, n, 12);
    const job = await submitMatmul(a.url, { rows: m, cols: k, data: am }, { rows: k, cols: n, data: bm });
    expect((await waitForJob(a.url, job.id, 30_000)).status).toBe('completed');
    const fromA = await downloadResult(a.url, job.id);
    expect(fromA.shape).toEqual([m, n]);
    expect(maxToleranceRatio(fromA.data, matmulReference(am, bm, m, k, n), 1e-5, 1e-5)).toBeLessThanOrEqual(1);
    expect(await rawResult(b.url, job.id)).toEqual(await rawResult(a.url, job.id));
    const claims = await cluster.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM finalize_claims WHERE job_id = $1`, [job.id]);
    expect(claims.rows[0]!.n).toBe(1);
  }, 60_000);

  it('runs an inference job submitted to node A on contributors of node B, replicated, and serves its .npz from both', async () => {
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
    for (let i = 0; i < 2; i++) {
      const s = await new SimContributor(b.url, { kind: 'honest' }, { inference: true }).connect();
      sims.push(s);
      void s.run().catch(() => undefined);
    }
    const x = randomTensor([9, 12], 31);
    // Replication parks the first result of each shard as a blob until a second contributor agrees.
    const res = await postInference(a.url, twoOutputModel(), { input: x }, { verification: 'replication' });
    expect(res.status).toBe(201);
    const job = (await res.json()) as { id: string };
    expect((await waitForJob(a.url, job.id, 30_000)).status).toBe('completed');
    const want = await onnxRuntime(twoOutputModel(), { x });
    for (const url of [a.url, b.url]) {
      const { filename, outputs } = await inferenceResult(url, job.id);
      expect(filename).toBe(`${job.id}.npz`);
      expect(worstRelativeError(outputs.probs!, want.probs!)).toBeLessThan(1e-5);
      expect(worstRelativeError(outputs.mean!, want.mean!)).toBeLessThan(1e-5);
    }
  }, 60_000);

  it('counts a key\'s requests per minute over both nodes', async () => {
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
    const store = await PostgresStore.open(cluster.databaseUrl, { max: 1 });
    const { secret } = await createApiKey(store, 'limited', { maxConcurrentJobs: 1, maxStoredBytes: 1 << 30, maxUploadBytes: 1 << 30, requestsPerMinute: 4 }).finally(() => store.end());
    const list = (url: string) => fetch(`${url}/api/v1/jobs`, { headers: { authorization: `Bearer ${secret}` } });
    const statuses: number[] = [];
    for (const url of [a.url, b.url, a.url, b.url, a.url, b.url]) statuses.push((await list(url)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
  });

  // Last in the file: it kills and restarts node A.
  it('a node started again releases the leases of its own old sessions and leaves the other node\'s alone', async () => {
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
    const onA = await new SimContributor(a.url).connect();
    const onB = await new SimContributor(b.url).connect();
    sims.push(onA, onB);
    const job = await submitMatmul(a.url, { rows: 128, cols: 16, data: randomMatrix(128, 16, 5) }, { rows: 16, cols: 128, data: randomMatrix(16, 128, 6) });
    const held: Record<string, string> = {};
    for (const [name, sim] of [['a', onA], ['b', onB]] as const) {
      const reply = await sim.socket.timeout(5_000).emitWithAck('lease:request', { max: 1 });
      if (!reply.ok || reply.leases.length !== 1) throw new Error(`no lease for the contributor on node ${name}`);
      held[name] = reply.leases[0]!.leaseToken;
    }
    a.child.kill('SIGKILL');
    await a.exited;
    await cluster.startNode(0);
    const state = async (token: string) =>
      (await cluster.db.query<{ state: string; session_id: string }>(`SELECT state, session_id FROM leases WHERE token = $1`, [token])).rows[0]!;
    expect(await state(held.a!)).toMatchObject({ state: 'released', session_id: expect.stringMatching(/^node-0:/) });
    expect(await state(held.b!)).toMatchObject({ state: 'active', session_id: expect.stringMatching(/^node-1:/) });
    const cancel = await fetch(`${b.url}/api/v1/jobs/${job.id}`, { method: 'DELETE', headers: authHeaders(b.url) });
    expect(cancel.status).toBe(200);
  }, 60_000);
});
