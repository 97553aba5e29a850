import { describe, expect, it } from 'vitest';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { PROTOCOL_VERSION } from '../../shared/protocol';
import { WEBGPU_DEFAULT_LIMITS } from '../../shared/tiling';
import { authHeaders, downloadResult, submitMatmul, waitForJob } from '../support/coordinator';
import { npyBlob, randomMatrix } from '../support/matrices';
import { SimContributor, type Behaviour } from '../support/sim-contributor';
import { useCoordinatorHarness } from '../support/harness';

const h = useCoordinatorHarness({ targetTiles: 9 });

const start = h.start;

const spawn = h.spawn;

async function submit(m: number, k: number, n: number, seed: number, verification?: 'replication') {
  const a = randomMatrix(m, k, seed);
  const b = randomMatrix(k, n, seed + 1);
  const form = new FormData();
  form.set('type', 'matmul');
  if (verification) form.set('verification', verification);
  form.set('a', npyBlob(m, k, a), 'a.npy');
  form.set('b', npyBlob(k, n, b), 'b.npy');
  const res = await fetch(`${h.coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: authHeaders(h.coord.url) });
  expect(res.status).toBe(201);
  const job = (await res.json()) as { id: string };
  return { id: job.id, ref: matmulReference(a, b, m, k, n) };
}

async function statusOf(s: SimContributor) {
  return (await h.coord.store.getContributor(s.contributorId))!.trust;
}

describe('adversarial contributors', () => {
  it('assembles no wrong result, completes every job, bans every cheater and no honest contributor', async () => {
    await start();
    const honest = await Promise.all(Array.from({ length: 6 }, () => spawn({ kind: 'honest', delayMs: 15 })));
    const cheaters = [
      await spawn({ kind: 'noise', scale: 1 }),
      await spawn({ kind: 'flip-one' }),
      await spawn({ kind: 'other-shard' }, { max: 2 }),
      await spawn({ kind: 'replay' }),
      await spawn({ kind: 'scale', factor: 1 + 1e-3 }),
    ];
    let jobs = 0;
    let wrong = 0;
    for (let round = 0; round < 16; round++) {
      const replicated = round % 4 === 3;
      const { id, ref } = await submit(192, 64, 192, 100 + round, replicated ? 'replication' : undefined);
      const done = await waitForJob(h.coord.url, id, 60_000);
      expect(done.status).toBe('completed');
      jobs++;
      const result = await downloadResult(h.coord.url, id);
      if (maxToleranceRatio(result.data, ref, 1e-4, 1e-4) > 1) wrong++;
      const states = await Promise.all(cheaters.map(statusOf));
      if (round >= 3 && states.every((t) => t.status === 'banned')) break;
    }
    expect(wrong).toBe(0);
    expect(jobs).toBeGreaterThanOrEqual(4);
    for (const c of cheaters) expect((await statusOf(c)).status).toBe('banned');
    for (const h of honest) {
      const t = await statusOf(h);
      expect(t.status).toBe('active');
      expect(t.strikes).toBe(0);
    }
    // Credits follow verified FLOPs; banned cheaters cannot rejoin with their token.
    const someone = (await h.coord.store.getContributor(honest[0]!.contributorId))!;
    expect(someone.credits).toBeCloseTo(someone.flops / 1e9, 6);
    const pub = (await (await fetch(`${h.coord.url}/api/v1/contributors/${someone.id}`)).json()) as { credits: number; status: string };
    expect(pub).toMatchObject({ status: 'active' });
    expect(pub.credits).toBeGreaterThan(0);
    const banned = (await (await fetch(`${h.coord.url}/api/v1/contributors/${cheaters[0]!.contributorId}`)).json()) as { credits: number; status: string };
    expect(banned.status).toBe('banned');
    const again = new SimContributor(h.coord.url, { kind: 'honest' }, { token: cheaters[0]!.token! });
    h.track(again);
    await expect(again.connect()).rejects.toThrow(/banned/);
  });

  it('replicated jobs assemble only results two contributors agree on', async () => {
    await start({ canaries: false });
    await Promise.all(Array.from({ length: 3 }, () => spawn({ kind: 'honest' })));
    const liar = await spawn({ kind: 'scale', factor: 1.5 });
    const { id, ref } = await submit(128, 32, 128, 7, 'replication');
    const done = await waitForJob(h.coord.url, id, 30_000);
    expect(done.status).toBe('completed');
    expect(maxToleranceRatio((await downloadResult(h.coord.url, id)).data, ref, 1e-4, 1e-4)).toBeLessThanOrEqual(1);
    expect(liar.stats.verified).toBe(0);
  });
});

describe('malformed and hostile messages', () => {
  it('rejects each with a code, counts it against the sender, and keeps serving honest contributors', async () => {
    await start({ canaries: false, rateLimit: { perSecond: 20, burst: 40 } });
    const honest = [await spawn({ kind: 'honest', delayMs: 20 }), await spawn({ kind: 'honest', delayMs: 20 })];
    const { id, ref } = await submit(256, 32, 256, 31);

    const hostile = new SimContributor(h.coord.url, { kind: 'silent' });
    h.track(hostile);
    const s = hostile.socket;
    await new Promise<void>((r) => s.once('connect', () => r()));
    const raw = (event: string, payload: unknown) => (s.timeout(5_000) as unknown as { emitWithAck(e: string, p: unknown): Promise<{ ok: boolean; error?: { code: string } }> }).emitWithAck(event, payload);

    expect((await raw('lease:request', { max: 1 })).error?.code).toBe('NOT_INTRODUCED');
    expect((await raw('hello', { protocol: 'one' })).error?.code).toBe('BAD_MESSAGE');
    expect((await raw('hello', 'x'.repeat(100_000))).error?.code).toBe('BAD_MESSAGE');
    expect((await raw('hello', { protocol: 99, agent: { kind: 'page' }, adapter: {}, limits: WEBGPU_DEFAULT_LIMITS })).error?.code).toBe('PROTOCOL_VERSION');
    await hostile.connect();
    expect((await raw('lease:request', { max: 1000 })).error?.code).toBe('BAD_MESSAGE');
    expect((await raw('lease:result', { shardId: 'x', leaseToken: 'y', c: [1, 2, 3] })).error?.code).toBe('BAD_MESSAGE');
    expect((await raw('lease:result', { shardId: `${id}.0`, leaseToken: 'forged-token', c: new Uint8Array(16) })).error?.code).toBe('LEASE_UNKNOWN');
    (s as unknown as { emit(e: string, p: unknown): void }).emit('lease:request', { max: 1 }); // no ack callback: dropped
    // By now it has struck out: banned and disconnected.
    await new Promise<void>((r) => (s.connected ? s.once('disconnect', () => r()) : r()));
    expect((await h.coord.store.getContributor(hostile.contributorId))!.trust.status).toBe('banned');

    // A flood is refused and counted.
    const flooder = await new SimContributor(h.coord.url, { kind: 'silent' }).connect();
    h.track(flooder);
    const replies = await Promise.all(
      Array.from({ length: 200 }, () => flooder.socket.timeout(5_000).emitWithAck('lease:release', { shardId: 'a', leaseToken: 'b' }).catch(() => null)),
    );
    expect(replies.filter((r) => r && !r.ok && r.error.code === 'RATE_LIMITED').length).toBeGreaterThan(100);
    expect((await h.coord.store.getContributor(flooder.contributorId))!.trust.strikes).toBeGreaterThan(0);

    // Wrong sizes and NaNs for a lease it really holds.
    const sloppy = await new SimContributor(h.coord.url, { kind: 'silent' }).connect();
    h.track(sloppy);
    const got = await sloppy.socket.timeout(5_000).emitWithAck('lease:request', { max: 2 });
    expect(got.ok && got.leases.length).toBe(2);
    if (!got.ok) throw new Error('no leases');
    const [l1, l2] = got.leases as [(typeof got.leases)[0], (typeof got.leases)[0]];
    const short = await sloppy.socket.timeout(5_000).emitWithAck('lease:result', { shardId: l1.shardId, leaseToken: l1.leaseToken, c: new Uint8Array(8) });
    expect(!short.ok && short.error.code).toBe('SHAPE_MISMATCH');
    const nan = new Float32Array(l2.rows * l2.cols).fill(NaN);
    const bad = await sloppy.socket.timeout(5_000).emitWithAck('lease:result', { shardId: l2.shardId, leaseToken: l2.leaseToken, c: new Uint8Array(nan.buffer) });
    expect(!bad.ok && bad.error.code).toBe('VERIFICATION_FAILED');

    // An oversized payload closes that connection only.
    const big = await new SimContributor(h.coord.url, { kind: 'silent' }).connect();
    h.track(big);
    const closed = new Promise<void>((r) => big.socket.once('disconnect', () => r()));
    big.socket.emit('lease:result', { shardId: 'x', leaseToken: 'y', c: new Uint8Array(17 * 1024 * 1024) }, () => undefined);
    await closed;

    const done = await waitForJob(h.coord.url, id, 30_000);
    expect(done.status).toBe('completed');
    expect(maxToleranceRatio((await downloadResult(h.coord.url, id)).data, ref, 1e-5, 1e-5)).toBeLessThanOrEqual(1);
    expect((await fetch(`${h.coord.url}/healthz`)).status).toBe(200);
    for (const c of honest) expect((await h.coord.store.getContributor(c.contributorId))!.trust.status).toBe('active');
    expect(PROTOCOL_VERSION).toBe(1);
  });
});
