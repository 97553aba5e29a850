import { describe, expect, it } from 'vitest';
import type { JobView } from '../../shared/api';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { REJECTED_MESSAGE, type MatmulLease } from '../../shared/protocol';
import { toJobView } from '../../server/http/job-view';
import { authHeaders, downloadResult, waitForJob } from '../support/coordinator';
import { useCoordinatorHarness } from '../support/harness';
import { npyBlob, randomMatrix } from '../support/matrices';
import { DocContributor } from '../support/doc-contributor';
import { SimContributor } from '../support/sim-contributor';

const h = useCoordinatorHarness({ targetTiles: 4, canaries: false });

async function submit(fields: Record<string, string>, seed = 1, m = 64, k = 32, n = 64) {
  const a = randomMatrix(m, k, seed);
  const b = randomMatrix(k, n, seed + 1);
  const form = new FormData();
  form.set('type', 'matmul');
  for (const [name, value] of Object.entries(fields)) form.set(name, value);
  form.set('a', npyBlob(m, k, a), 'a.npy');
  form.set('b', npyBlob(k, n, b), 'b.npy');
  const res = await fetch(`${h.coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: authHeaders(h.coord.url) });
  return { res, ref: matmulReference(a, b, m, k, n) };
}

async function view(id: string): Promise<JobView> {
  return (await (await fetch(`${h.coord.url}/api/v1/jobs/${id}`, { headers: authHeaders(h.coord.url) })).json()) as JobView;
}

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function panel(ref: { url: string }): Promise<Float32Array> {
  return new Float32Array(await (await fetch(new URL(ref.url, h.coord.url))).arrayBuffer());
}

describe('replication is a floor', () => {
  it('assembles nothing on one contributor’s word however trusted it is, says so, and completes when a second one comes', async () => {
    await h.start();
    const first = await h.spawn({ kind: 'honest' });
    // Standing first: a plain job's tiles all verify.
    const warmup = await submit({}, 3);
    expect(warmup.res.status).toBe(201);
    await waitForJob(h.coord.url, ((await warmup.res.json()) as JobView).id, 20_000);

    const { res, ref } = await submit({ verification: 'replication' }, 5);
    const job = (await res.json()) as JobView;
    const waiting = await until(async () => {
      const v = await view(job.id);
      return v.replication && v.replication.awaitingSecondOpinion === v.progress.total ? v : undefined;
    });
    expect(waiting.status).toBe('running');
    expect(waiting.progress.verified).toBe(0);
    expect(waiting.replication?.waitingSince).toBeDefined();
    expect(first.stats.pending).toBe(job.progress.total);

    const second = await h.spawn({ kind: 'honest' });
    const done = await waitForJob(h.coord.url, job.id, 20_000);
    expect(done.status).toBe('completed');
    expect(maxToleranceRatio((await downloadResult(h.coord.url, job.id)).data, ref, 1e-5, 1e-5)).toBeLessThanOrEqual(1);
    expect(second.stats.verified).toBe(job.progress.total);
  });

  it('takes two identities on one network for one opinion: the second opinion must come from another network', async () => {
    await h.start();
    const docs: DocContributor[] = [];
    const join = async (forwardedFor: string) => {
      const c = new DocContributor(h.coord.url, { forwardedFor });
      docs.push(c);
      const joined = await c.join();
      if (!joined.ok) throw new Error(joined.message);
      void c.run();
      return c;
    };
    try {
      const { res, ref } = await submit({ verification: 'replication' }, 7);
      const job = (await res.json()) as JobView;
      const [x, y] = [await join('203.0.113.7'), await join('203.0.113.8')];
      const waiting = await until(async () => {
        const v = await view(job.id);
        return v.replication?.awaitingSecondOpinion === v.progress.total ? v : undefined;
      });
      // Each shard went to one of the two only: the other, on the same /24, is never handed a shard parked from it.
      await new Promise((r) => setTimeout(r, 500));
      expect((await view(job.id)).progress.verified).toBe(0);
      expect(x.results.length + y.results.length).toBe(waiting.progress.total);
      await join('198.51.100.9');
      expect((await waitForJob(h.coord.url, job.id, 20_000)).status).toBe('completed');
      expect(maxToleranceRatio((await downloadResult(h.coord.url, job.id)).data, ref, 1e-5, 1e-5)).toBeLessThanOrEqual(1);
    } finally {
      for (const c of docs) c.stop();
    }
  });

  it('with replicaWait, a tile that passed Freivalds’ check is assembled on it alone once the wait is over', async () => {
    await h.start({ leaseSweepMs: 200 });
    await h.spawn({ kind: 'honest' });
    const { res, ref } = await submit({ verification: 'replication', replicaWait: '1' }, 9);
    expect(res.status).toBe(201);
    const job = (await res.json()) as JobView;
    const done = await waitForJob(h.coord.url, job.id, 20_000);
    expect(done.status).toBe('completed');
    expect(maxToleranceRatio((await downloadResult(h.coord.url, job.id)).data, ref, 1e-5, 1e-5)).toBeLessThanOrEqual(1);

    const refused = await submit({ replicaWait: '30' }, 11);
    expect(refused.res.status).toBe(400);
    expect(await refused.res.text()).toMatch(/replicaWait applies only to verification=replication/);
  });

  it('says, once the wait is long, what the requester can do about it', () => {
    const now = Date.now();
    const record = {
      id: 'j',
      type: 'matmul' as const,
      status: 'running' as const,
      owner: null,
      priority: 0,
      verification: 'replication' as const,
      hidden: false,
      m: 4,
      k: 4,
      n: 4,
      tileRows: 2,
      tileCols: 2,
      totalShards: 4,
      returnedShards: 4,
      verifiedShards: 0,
      reason: null,
      createdAt: now - 120_000,
      updatedAt: now,
      completedAt: null,
      resultDeleted: false,
      replicaWaitMs: null,
    };
    const v = toJobView(record, undefined, { awaiting: { shards: 4, oldest: now - 90_000 } }, now);
    expect(v.replication?.note).toMatch(/4 shard\(s\) have waited over a minute.*replicaWait=/);
    const fresh = toJobView(record, undefined, { awaiting: { shards: 4, oldest: now - 5_000 } }, now);
    expect(fresh.replication?.note).toBeUndefined();
  });
});

describe('what a contributor hears back', () => {
  it('a rejection names only its category; the same bytes sent again get the same reply at no cost; other bytes are a strike', async () => {
    await h.start();
    const { res, ref } = await submit({}, 13, 128, 32, 128);
    const job = (await res.json()) as JobView;
    expect(job.progress.total).toBeGreaterThanOrEqual(2);
    const sim = h.track(await new SimContributor(h.coord.url, { kind: 'silent' }).connect());
    const leases: MatmulLease[] = [];
    while (leases.length < 2) {
      await new Promise((r) => setTimeout(r, 100));
      const got = await sim.socket.timeout(5_000).emitWithAck('lease:request', { max: 2 - leases.length });
      if (!got.ok) throw new Error(got.error.message);
      leases.push(...(got.leases as MatmulLease[]));
    }
    const [bad, good] = leases as [MatmulLease, MatmulLease];
    const strikes = async () => (await h.coord.store.getContributor(sim.contributorId))!.trust.strikes;

    const wrong = new Float32Array(bad.rows * bad.cols).fill(42);
    const send = (l: MatmulLease, tile: Float32Array) =>
      sim.socket.timeout(5_000).emitWithAck('lease:result', { shardId: l.shardId, leaseToken: l.leaseToken, c: new Uint8Array(tile.buffer.slice(0)) });
    const first = await send(bad, wrong);
    expect(first).toEqual({ ok: false, error: { code: 'VERIFICATION_FAILED', message: REJECTED_MESSAGE } });
    expect(await strikes()).toBe(1);
    expect(await send(bad, wrong)).toEqual(first);
    expect(await strikes()).toBe(1);

    const [a, b] = await Promise.all([panel(good.a), panel(good.b)]);
    const tile = matmulReference(a, b, good.rows, good.k, good.cols);
    // Sent twice at once, as a retry racing a slow reply would be, and once more after: one verdict.
    const [r1, r2] = await Promise.all([send(good, tile), send(good, tile)]);
    expect(r1).toEqual({ ok: true, status: 'verified' });
    expect(r2).toEqual(r1);
    expect(await send(good, tile)).toEqual(r1);
    expect(await strikes()).toBe(1);

    const altered = tile.slice();
    altered[0]! += 1;
    const replay = await send(good, altered);
    expect(!replay.ok && replay.error.code).toBe('LEASE_UNKNOWN');
    expect(await strikes()).toBe(2);
    expect(ref.length).toBe(job.shape.m * job.shape.n);
  });
});

describe('results from a contributor banned later', () => {
  it('are listed in the job view, with where they sit in the result', async () => {
    await h.start();
    const sim = await h.spawn({ kind: 'honest' });
    const { res } = await submit({}, 17, 128, 32, 128);
    const job = (await res.json()) as JobView;
    expect((await waitForJob(h.coord.url, job.id, 20_000)).status).toBe('completed');
    expect((await view(job.id)).fromBannedContributors).toBeUndefined();
    await h.coord.store.updateTrust(sim.contributorId, (r) => ({ ...r, status: 'banned', strikes: 3 }), 'caught elsewhere');
    const after = await view(job.id);
    expect(after.fromBannedContributors).toMatchObject({ shards: job.progress.total, contributors: 1 });
    const regions = after.fromBannedContributors!.regions;
    expect(regions).toHaveLength(job.progress.total);
    expect(regions.reduce((s, r) => s + r.rows * r.cols, 0)).toBe(job.shape.m * job.shape.n);
  });
});
