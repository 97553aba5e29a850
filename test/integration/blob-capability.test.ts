import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../server/config';
import { startCoordinator } from '../../server/coordinator';
import type { Config } from '../../server/config';
import { BlobCapability, loadBlobKey } from '../../server/http/blob-capability';
import { createLogger } from '../../server/logger';
import type { Lease, MatmulLease } from '../../shared/protocol';
import { makeDataDir, registerLocalKey, startTestCoordinator, submitMatmul, testConfig, type TestCoordinator } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';
import { startPostgres, type PostgresCluster } from '../support/postgres';
import { SimContributor } from '../support/sim-contributor';
import type { Coordinator } from '../../server/coordinator';

/**
 * A requester's panels are read only through the signed, expiring URLs that
 * leases carry: not by hash alone, not with a signature made for another blob
 * or by another key, not after the URL expires; and a URL handed out before a
 * restart still works after it.
 */

let coord: TestCoordinator;
let jobId: string;
let a: Float32Array;
let b: Float32Array;
let lease: MatmulLease;
/** The restart test closes the shared coordinator itself. */
let closed = false;

const sha256 = (m: Float32Array) => createHash('sha256').update(new Uint8Array(m.buffer, m.byteOffset, m.byteLength)).digest('hex');
const blob = (path: string) => fetch(new URL(path, coord.url));

async function expectForbidden(path: string, code: 'BLOB_FORBIDDEN' | 'BLOB_URL_EXPIRED'): Promise<void> {
  const res = await blob(path);
  expect(res.status).toBe(403);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message).toMatch(/lease/);
}

/**
 * Takes leases (handing back canaries and others) until one on `job`, with panel `aSha`, comes; its URLs
 * are what a contributor gets. A canary carries the real job's id, so the panel tells the real tile apart.
 */
async function leaseOn(url: string, job: string, aSha: string): Promise<MatmulLease> {
  const sim = await new SimContributor(url).connect();
  try {
    for (let i = 0; i < 20; i++) {
      const reply = await sim.socket.timeout(10_000).emitWithAck('lease:request', { max: 4 });
      if (!reply.ok) throw new Error(reply.error.message);
      const mine = reply.leases.find((l: Lease): l is MatmulLease => l.kind === 'matmul' && l.jobId === job && l.a.sha256 === aSha);
      for (const l of reply.leases) await sim.socket.timeout(10_000).emitWithAck('lease:release', { shardId: l.shardId, leaseToken: l.leaseToken });
      if (mine) return mine;
    }
    throw new Error(`no lease on job ${job} in 20 requests`);
  } finally {
    sim.disconnect();
  }
}

beforeAll(async () => {
  coord = await startTestCoordinator();
  a = randomMatrix(8, 16, 1);
  b = randomMatrix(16, 4, 2);
  jobId = (await submitMatmul(coord.url, { rows: 8, cols: 16, data: a }, { rows: 16, cols: 4, data: b })).id;
  lease = await leaseOn(coord.url, jobId, sha256(a));
});
afterAll(async () => {
  if (!closed) await coord?.dispose();
  else await rm(coord.dataDir, { recursive: true, force: true });
});

describe('blob URLs are capabilities', () => {
  it("serves a panel through its lease's URL, privately cacheable", async () => {
    expect(lease.a.url).toMatch(/^\/api\/v1\/blobs\/[0-9a-f]{64}\?exp=\d+&sig=[A-Za-z0-9_-]{43}$/);
    const res = await blob(lease.a.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('private, max-age=31536000, immutable');
    expect(res.headers.get('etag')).toBeTruthy();
    expect(new Float32Array(await res.arrayBuffer())).toEqual(a);
    const exp = Number(new URL(lease.a.url, coord.url).searchParams.get('exp'));
    // Valid past the deadline (a grace), but not for long after it.
    expect(exp * 1000).toBeGreaterThan(lease.deadline);
    expect(exp * 1000).toBeLessThanOrEqual(lease.deadline + 15 * 60_000);
    expect(new Float32Array(await (await blob(lease.b.url)).arrayBuffer())).toEqual(b);
  });

  it('refuses a bare hash, a wrong signature, a signature for another blob and an altered expiry', async () => {
    const shaA = sha256(a);
    const params = new URL(lease.a.url, coord.url).searchParams;
    const exp = params.get('exp')!;
    const sig = params.get('sig')!;
    await expectForbidden(`/api/v1/blobs/${shaA}`, 'BLOB_FORBIDDEN');
    await expectForbidden(`/api/v1/blobs/${shaA}?exp=${exp}`, 'BLOB_FORBIDDEN');
    await expectForbidden(`/api/v1/blobs/${shaA}?sig=${sig}`, 'BLOB_FORBIDDEN');
    const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    await expectForbidden(`/api/v1/blobs/${shaA}?exp=${exp}&sig=${flipped}`, 'BLOB_FORBIDDEN');
    await expectForbidden(`/api/v1/blobs/${shaA}?exp=${exp}&sig=${sig.slice(0, 20)}`, 'BLOB_FORBIDDEN');
    await expectForbidden(`/api/v1/blobs/${sha256(b)}?exp=${exp}&sig=${sig}`, 'BLOB_FORBIDDEN');
    await expectForbidden(`/api/v1/blobs/${shaA}?exp=${Number(exp) + 86_400}&sig=${sig}`, 'BLOB_FORBIDDEN');
    await expectForbidden(`/api/v1/blobs/${shaA}?exp=${exp}&exp=${exp}&sig=${sig}`, 'BLOB_FORBIDDEN');
    // Signed with a key that is not this network's.
    await expectForbidden(new BlobCapability(randomBytes(32)).url(shaA, Date.now() + 60_000), 'BLOB_FORBIDDEN');
    // A Range request is no way around it either.
    const ranged = await fetch(new URL(`/api/v1/blobs/${shaA}`, coord.url), { headers: { range: 'bytes=0-3' } });
    expect(ranged.status).toBe(403);
  });

  it('refuses an expired URL, and says it expired only of URLs this network signed', async () => {
    const network = new BlobCapability(await loadBlobKey(coord.store));
    await expectForbidden(network.url(sha256(a), Date.now() - 3_600_000), 'BLOB_URL_EXPIRED');
    // The same key signs what the lease carries: a fresh URL made with it reads the panel.
    expect((await blob(network.url(sha256(a), Date.now()))).status).toBe(200);
  });

  it('tells no one without a signature whether a blob exists', async () => {
    const absent = sha256(new Float32Array([42]));
    await expectForbidden(`/api/v1/blobs/${absent}`, 'BLOB_FORBIDDEN');
    const signed = new BlobCapability(await loadBlobKey(coord.store)).url(absent, Date.now());
    const res = await blob(signed);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BLOB_NOT_FOUND');
  });

  it('uses TESSERA_BLOB_SECRET when set, and refuses one too short to be a key', async () => {
    const secret = 'an operator-chosen secret of 32+ chars';
    expect(loadConfig({ TESSERA_BLOB_SECRET: secret }).blobSecret).toBe(secret);
    expect(() => loadConfig({ TESSERA_BLOB_SECRET: 'short' })).toThrow(ConfigError);
    expect(await loadBlobKey(coord.store, secret)).toEqual(Buffer.from(secret, 'utf8'));
    // Without it, the key kept in the store (the same on every start).
    expect(await loadBlobKey(coord.store)).toEqual(await loadBlobKey(coord.store));
  });

  it("still serves a lease's URL after the coordinator restarts", async () => {
    await coord.close();
    closed = true;
    const restarted = await startCoordinator(testConfig(coord.dataDir), createLogger('silent'));
    try {
      const res = await fetch(new URL(lease.a.url, restarted.url));
      expect(res.status).toBe(200);
      expect(new Float32Array(await res.arrayBuffer())).toEqual(a);
    } finally {
      await restarted.close();
    }
  });
});

describe('blob URLs in networked mode', () => {
  let postgres: PostgresCluster;
  const nodes: { coord: Coordinator; dataDir: string }[] = [];
  beforeAll(async () => {
    postgres = await startPostgres();
    const databaseUrl = await postgres.createDatabase();
    for (const nodeId of ['node-a', 'node-b']) {
      const dataDir = await makeDataDir();
      const cluster: Config['cluster'] = { databaseUrl, nodeId, finalizePollMs: 5_000 };
      nodes.push({ coord: await startCoordinator(testConfig(dataDir, { cluster }), createLogger('silent')), dataDir });
    }
    // The first node created the requester key, in its data directory.
    await registerLocalKey(nodes[0]!.coord.url, nodes[0]!.dataDir);
  });
  afterAll(async () => {
    for (const n of nodes) {
      await n.coord.close();
      await rm(n.dataDir, { recursive: true, force: true });
    }
    await postgres?.stop();
  });

  it('a URL granted by one node reads the blob from any node; a bare hash from none', async () => {
    const [nodeA, nodeB] = [nodes[0]!.coord, nodes[1]!.coord];
    const m = randomMatrix(4, 8, 3);
    const job = await submitMatmul(nodeA.url, { rows: 4, cols: 8, data: m }, { rows: 8, cols: 2, data: randomMatrix(8, 2, 4) });
    const granted = await leaseOn(nodeB.url, job.id, sha256(m));
    for (const node of [nodeA, nodeB]) {
      const res = await fetch(new URL(granted.a.url, node.url));
      expect(res.status).toBe(200);
      expect(new Float32Array(await res.arrayBuffer())).toEqual(m);
      expect((await fetch(new URL(`/api/v1/blobs/${granted.a.sha256}`, node.url))).status).toBe(403);
    }
  });
});
