import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { authHeaders, downloadResult, submitMatmul, waitForJob } from '../support/coordinator';
import { startCluster, startClusterServices, type ClusterServices, type TestCluster } from '../support/cluster';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';

let services: ClusterServices;
let cluster: TestCluster | undefined;
const sims: SimContributor[] = [];

beforeAll(async () => {
  services = await startClusterServices();
}, 120_000);
afterAll(async () => services?.stop());
afterEach(async () => {
  for (const s of sims.splice(0)) s.disconnect();
  await cluster?.stop();
  cluster = undefined;
});

async function contribute(url: string, delayMs: number): Promise<void> {
  const s = await new SimContributor(url, { kind: 'honest', delayMs }).connect();
  sims.push(s);
  void s.run().catch(() => undefined);
}

async function resultBytes(url: string, jobId: string): Promise<Uint8Array> {
  const res = await fetch(`${url}/api/v1/jobs/${jobId}/result`, { headers: authHeaders(url) });
  expect(res.status).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
}

describe('losing a coordinator', () => {
  it('finishes the job on the surviving node after the other is SIGKILLed mid-job, assembling and crediting every tile once', async () => {
    // Short leases: those held through the dead node lapse, and the survivor's sweep queues them again.
    cluster = await startCluster(services, 2, { TESSERA_CANARIES: 'off', TESSERA_LEASE_BASE_MS: '1500', TESSERA_FINALIZE_POLL_MS: '500' });
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
    const [m, k, n] = [256, 48, 256];
    const am = randomMatrix(m, k, 21);
    const bm = randomMatrix(k, n, 22);
    const job = await submitMatmul(a.url, { rows: m, cols: k, data: am }, { rows: k, cols: n, data: bm });
    for (const url of [a.url, a.url, b.url, b.url]) await contribute(url, 250);
    const before = await waitForJob(b.url, job.id, 30_000, (j) => j.progress.verified >= 3);
    expect(before.progress.verified).toBeLessThan(before.progress.total);

    a.child.kill('SIGKILL');
    await a.exited;
    // A's contributors come back through the node still up, as the page and the agent do with a coordinator list.
    await contribute(b.url, 50);
    await contribute(b.url, 50);
    expect((await waitForJob(b.url, job.id, 40_000)).status).toBe('completed');
    const fromB = await downloadResult(b.url, job.id);
    expect(maxToleranceRatio(fromB.data, matmulReference(am, bm, m, k, n), 1e-5, 1e-5)).toBeLessThanOrEqual(1);

    const total = before.progress.total;
    const count = async (sql: string, params: unknown[] = [job.id]) => (await cluster!.db.query<{ n: number }>(sql, params)).rows[0]!.n;
    expect(await count(`SELECT count(*)::int AS n FROM shards WHERE job_id = $1 AND state = 'verified'`)).toBe(total);
    expect(await count(`SELECT count(*)::int AS n FROM leases l JOIN shards s ON s.id = l.shard_id WHERE s.job_id = $1 AND l.state = 'returned'`)).toBe(total);
    expect(await count(`SELECT count(DISTINCT shard_id)::int AS n FROM leases l JOIN shards s ON s.id = l.shard_id WHERE s.job_id = $1 AND l.state = 'returned'`)).toBe(total);
    expect(await count(`SELECT coalesce(sum(verified_shards), 0)::int AS n FROM contributors`, [])).toBe(total);
    expect(await count(`SELECT count(*)::int AS n FROM finalize_claims WHERE job_id = $1`)).toBe(1);

    // Started again under its old name, the lost node serves the same bytes.
    const again = await cluster.startNode(0);
    expect(await resultBytes(again.url, job.id)).toEqual(await resultBytes(b.url, job.id));
  }, 90_000);
});
