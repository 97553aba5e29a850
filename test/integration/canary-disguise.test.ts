import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, type Coordinator } from '../../server/coordinator';
import { createLogger } from '../../server/logger';
import type { MatmulLease, ResultReply } from '../../shared/protocol';
import { makeDataDir, registerLocalKey, startTestCoordinator, submitMatmul, testConfig, waitForJob, type TestCoordinator } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';
import { computeCanaryTile } from '../../server/trust/canary-factory';
import { canaryMismatch } from '../../server/workers/verify-tasks';
import { productRows, SUMMATION_ORDERS } from '../support/float32-orders';

/** What a contributor was handed, and what the coordinator knows it to be. */
interface Handed {
  lease: MatmulLease;
  grant: number;
  /** The hidden job behind a canary; undefined for a real tile. */
  canaryJob?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const M = 256;
const K = 48;
const N = 200;

let coord: TestCoordinator;
const sims: SimContributor[] = [];
/** Real jobs submitted here; the last test finishes them all. */
const submitted: string[] = [];

async function contributor(): Promise<SimContributor> {
  const sim = await new SimContributor(coord.url).connect();
  sims.push(sim);
  return sim;
}

async function submit(seed: number): Promise<string> {
  const { id } = await submitMatmul(coord.url, { rows: M, cols: K, data: randomMatrix(M, K, seed) }, { rows: K, cols: N, data: randomMatrix(K, N, seed + 1) });
  submitted.push(id);
  return id;
}

/** One lease request; each lease told apart on the coordinator's side (its store), never from the message. */
async function request(sim: SimContributor, grant: number, max = 2): Promise<Handed[]> {
  const reply = await sim.socket.timeout(10_000).emitWithAck('lease:request', { max });
  if (!reply.ok) throw new Error(reply.error.message);
  const out: Handed[] = [];
  for (const lease of reply.leases) {
    if (lease.kind !== 'matmul') throw new Error(`unexpected ${lease.kind} lease`);
    const found = await coord.store.findLease(lease.leaseToken);
    if (!found) throw new Error('a granted lease is not in the store');
    out.push({ lease, grant, ...(found.job.hidden ? { canaryJob: found.job.id } : {}) });
  }
  return out;
}

const release = (sim: SimContributor, l: MatmulLease) => sim.socket.timeout(10_000).emitWithAck('lease:release', { shardId: l.shardId, leaseToken: l.leaseToken });

beforeAll(async () => {
  coord = await startTestCoordinator({ targetTiles: 16, speculateAfterMs: 1e12, leaseBaseMs: 600_000, rateLimit: { perSecond: 1_000, burst: 1_000 } });
});
afterAll(async () => {
  for (const s of sims) s.disconnect();
  await coord?.dispose();
});

describe('canaries look like the real work they come with', () => {
  it('carry the real job id and tile shape, opaque shard ids, and arrive only beside real tiles', async () => {
    const jobId = await submit(1);
    const sim = await contributor();
    const handed: Handed[] = [];
    // A new identity is due a canary at 0.15 per grant; asked this fast, the pool's two per shape run dry and some grants go
    // without (measured: 3 to 8 canaries in 150 grants), but none at all would take 150 grants in a row without one ready.
    for (let grant = 0; grant < 150; grant++) {
      const got = await request(sim, grant);
      handed.push(...got);
      for (const h of got) await release(sim, h.lease);
    }
    const canaries = handed.filter((h) => h.canaryJob);
    const real = handed.filter((h) => !h.canaryJob);
    expect(canaries.length).toBeGreaterThan(0);
    const realShapes = new Set(real.map((h) => `${h.lease.rows}x${h.lease.cols}x${h.lease.k}`));
    for (const c of canaries) {
      expect(c.lease.jobId).toBe(jobId);
      expect(c.canaryJob).not.toBe(jobId);
      expect(realShapes).toContain(`${c.lease.rows}x${c.lease.cols}x${c.lease.k}`);
      // In the same grant as a real tile of that job (the grant asked for two; a canary takes one place).
      const beside = real.filter((r) => r.grant === c.grant);
      expect(beside.length).toBe(1);
      expect(beside[0]!.lease.jobId).toBe(jobId);
      // Its deadline comes from the same policy as the real tile's.
      expect(Math.abs(c.lease.deadline - beside[0]!.lease.deadline)).toBeLessThan(5_000);
      expect(c.lease.a.url).toMatch(/^\/api\/v1\/blobs\/[0-9a-f]{64}\?exp=\d+&sig=/);
    }
    for (const h of handed) {
      expect(h.lease.jobId).toBe(jobId);
      expect(h.lease.shardId).toMatch(UUID);
      expect(h.lease.shardId).not.toContain(jobId);
      if (h.canaryJob) expect(h.lease.shardId).not.toContain(h.canaryJob);
    }
    // Every grant held at most what was asked for.
    const perGrant = new Map<number, number>();
    for (const h of handed) perGrant.set(h.grant, (perGrant.get(h.grant) ?? 0) + 1);
    expect(Math.max(...perGrant.values())).toBeLessThanOrEqual(2);
  }, 120_000);

  it('answers a wrong canary exactly as it answers a wrong real tile', async () => {
    const jobId = await submit(3);
    const sim = await contributor();
    let canary: MatmulLease | undefined;
    let real: MatmulLease | undefined;
    for (let grant = 0; grant < 300 && !(canary && real); grant++) {
      for (const h of await request(sim, grant)) {
        if (h.canaryJob && !canary) canary = h.lease;
        else if (!h.canaryJob && !real && h.lease.jobId === jobId) real = h.lease;
        else await release(sim, h.lease);
      }
    }
    expect(canary && real).toBeTruthy();
    const wrong = async (l: MatmulLease): Promise<ResultReply> => {
      const c = await sim.compute(l);
      c[Math.floor(c.length / 2)]! += 1 + Math.abs(c[Math.floor(c.length / 2)]!);
      return sim.socket.timeout(30_000).emitWithAck('lease:result', { shardId: l.shardId, leaseToken: l.leaseToken, computeMs: 1, c: new Uint8Array(c.buffer) });
    };
    const realReply = await wrong(real!);
    const canaryReply = await wrong(canary!);
    expect(realReply).toEqual({ ok: false, error: { code: 'VERIFICATION_FAILED', message: 'result rejected: it failed verification' } });
    expect(canaryReply).toEqual(realReply);
  }, 120_000);

  it('hands no canary when there is no real work, though canaries are ready', async () => {
    // Finish every job: honest contributors take the rest (and the canaries that come with it).
    const workers = await Promise.all([contributor(), contributor()]);
    for (const w of workers) void w.run().catch(() => undefined);
    for (const id of submitted) expect((await waitForJob(coord.url, id, 90_000)).status).toBe('completed');
    for (const w of workers) w.stop();
    expect((await coord.store.activeHiddenJobs()).length).toBeGreaterThan(0);
    const idle = await contributor();
    let leases = 0;
    // At 0.15 per request, 60 requests would draw about 9 canaries if they were handed out without work.
    for (let grant = 0; grant < 60; grant++) leases += (await request(idle, grant)).length;
    expect(leases).toBe(0);
  }, 120_000);
});

describe('lease tokens in the request log', () => {
  let logged = '';
  let node: Coordinator | undefined;
  let dataDir = '';
  afterAll(async () => {
    await node?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('shows a result PUT with its token cut to 8 characters, and no token in full anywhere', async () => {
    dataDir = await makeDataDir();
    const lines: string[] = [];
    node = await startCoordinator(testConfig(dataDir, { targetTiles: 4, canaries: false }), createLogger('debug', { write: (s: string) => void lines.push(s) }));
    await registerLocalKey(node.url, dataDir);
    const job = await submitMatmul(node.url, { rows: 8, cols: 8, data: randomMatrix(8, 8, 5) }, { rows: 8, cols: 8, data: randomMatrix(8, 8, 6) });
    const sim = await new SimContributor(node.url, { kind: 'honest' }, { transport: 'http' }).connect();
    sims.push(sim);
    void sim.run().catch(() => undefined);
    expect((await waitForJob(node.url, job.id, 60_000)).status).toBe('completed');
    sim.stop();
    logged = lines.join('');
    expect(sim.leases.length).toBeGreaterThan(0);
    for (const l of sim.leases) {
      expect(logged).not.toContain(l.leaseToken);
      expect(logged).toContain(`"path":"/leases/${l.leaseToken.slice(0, 8)}…/result"`);
    }
  }, 90_000);
});

describe("a canary's known answer", () => {
  it('passes every honest float32 summation order and catches an element changed by 10⁻⁴ of its magnitude', () => {
    for (const shape of [{ rows: 8, cols: 16, k: 256 }, { rows: 8, cols: 8, k: 4096 }]) {
      const t = computeCanaryTile(shape);
      const rowIds = Array.from({ length: shape.rows }, (_, i) => i);
      for (const order of SUMMATION_ORDERS) {
        const c = productRows(order, t.a, t.b, rowIds, shape.k, shape.cols);
        expect(canaryMismatch({ c, want: t.answer, tolerance: t.tolerance }), `${order.id} k=${shape.k}`).toBe(-1);
        const at = (shape.rows * shape.cols) >> 1;
        let magnitude = 0;
        const i = Math.floor(at / shape.cols);
        const j = at % shape.cols;
        for (let p = 0; p < shape.k; p++) magnitude += Math.abs(t.a[i * shape.k + p]! * t.b[p * shape.cols + j]!);
        c[at]! += 1e-4 * magnitude;
        expect(canaryMismatch({ c, want: t.answer, tolerance: t.tolerance }), `${order.id} k=${shape.k}`).toBe(at);
      }
    }
  });
});
