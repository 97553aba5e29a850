import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/logger';
import { TokenBucket } from '../../server/realtime/rate-limiter';
import { LocalBlobStore } from '../../server/storage/blob-store';
import { SqliteStore } from '../../server/store/sqlite-store';
import { IdentityLimits } from '../../server/trust/identity-limits';
import {
  applyTrustEvent,
  BAN_STRIKES,
  CANARY_RATES,
  canaryRate,
  DECAY_AFTER,
  DEFAULT_TRUST_THRESHOLDS,
  FRESH,
  NEW_CONTRIBUTOR_RESULTS,
  trustLevel,
  type TrustEvent,
  type TrustRecord,
} from '../../server/trust/reputation';
import { TrustKeeper } from '../../server/trust/trust-keeper';
import { resultsAgree } from '../../shared/result-compare';
import { matmulReference } from '../../shared/matmul-reference';
import { randomMatrix } from '../support/matrices';

const apply = (events: TrustEvent[], from: TrustRecord = FRESH) => events.reduce((rec, e) => applyTrustEvent(rec, e), from);
const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 0, 1);
const T = DEFAULT_TRUST_THRESHOLDS;

/** A record that has done exactly what the default thresholds ask for to be trusted, first verified `hours` ago. */
function earned(over: Partial<TrustRecord> = {}, times = 1): TrustRecord {
  return {
    ...FRESH,
    verified: 200 * times,
    verifiedFlops: T.gflop * 1e9 * times,
    verifiedJobs: T.jobs * times,
    lastVerifiedJob: 'job',
    firstVerifiedAt: NOW - T.hours * HOUR * times,
    canariesPassed: T.canaries * times,
    ...over,
  };
}

describe('reputation policy', () => {
  it('quarantines on the first strike and bans on the third', () => {
    expect(apply(['rejected']).status).toBe('quarantined');
    expect(apply(['rejected', 'protocol-violation']).status).toBe('quarantined');
    expect(apply(['rejected', 'protocol-violation', 'flood']).status).toBe('banned');
    expect(apply(['canary-failed', 'rejected']).strikes).toBe(BAN_STRIKES);
  });

  it('never bans a contributor that only does verified work', () => {
    const rec = apply(Array.from({ length: 1000 }, () => 'verified' as const));
    expect(rec).toMatchObject({ status: 'active', strikes: 0 });
  });

  it('forgives a strike after enough clean work, and a banned contributor stays banned', () => {
    const glitch = apply(['rejected', ...Array.from({ length: DECAY_AFTER }, () => 'verified' as const)]);
    expect(glitch).toMatchObject({ status: 'active', strikes: 0 });
    const banned = apply(['rejected', 'rejected', 'rejected', ...Array.from({ length: 500 }, () => 'verified' as const)]);
    expect(banned.status).toBe('banned');
  });

  it('counts distinct jobs and the first verified time from the verified work', () => {
    let rec = FRESH;
    for (const [jobId, at] of [['a', 1], ['a', 2], ['b', 3], ['b', 4], ['c', 5]] as const) rec = applyTrustEvent(rec, 'verified', { flops: 1e9, jobId, now: NOW + at });
    expect(rec).toMatchObject({ verifiedJobs: 3, lastVerifiedJob: 'c', firstVerifiedAt: NOW + 1 });
    // A benchmark's 'verified' carries no job: it forgives strikes but spans no job.
    expect(applyTrustEvent(rec, 'verified').verifiedJobs).toBe(3);
  });
});

describe('trust levels', () => {
  it('is earned with GFLOP, jobs, hours and canaries, each of them needed', () => {
    expect(trustLevel(FRESH, NOW)).toBe('new');
    expect(trustLevel({ ...FRESH, verified: NEW_CONTRIBUTOR_RESULTS - 1 }, NOW)).toBe('new');
    expect(trustLevel({ ...FRESH, verified: NEW_CONTRIBUTOR_RESULTS }, NOW)).toBe('established');
    expect(trustLevel(earned(), NOW)).toBe('trusted');
    const short: Partial<TrustRecord>[] = [
      { verifiedFlops: T.gflop * 1e9 - 1 },
      { verifiedJobs: T.jobs - 1 },
      { firstVerifiedAt: NOW - T.hours * HOUR + 1 },
      { firstVerifiedAt: null },
      { canariesPassed: T.canaries - 1 },
    ];
    for (const missing of short) expect(trustLevel(earned(missing), NOW), JSON.stringify(missing)).toBe('established');
  });

  it('does not trust a burst of tiny tiles (the cheater of issue 19: 50 tiles, 0.06 GFLOP, one job, seconds)', () => {
    let rec: TrustRecord = { ...FRESH, canariesPassed: 10 };
    for (let i = 0; i < 50; i++) rec = { ...applyTrustEvent(rec, 'verified', { flops: 1.2e6, jobId: 'one-job', now: NOW + i * 20 }), verified: i + 1, verifiedFlops: (i + 1) * 1.2e6 };
    expect(trustLevel(rec, NOW + 1_000)).toBe('established');
    expect(canaryRate(rec, NOW + 1_000)).toBe(CANARY_RATES.established);
  });

  it('is lost at once: any strike means new until it decays', () => {
    const trusted = earned();
    const struck = applyTrustEvent(trusted, 'rejected');
    expect(trustLevel(struck, NOW)).toBe('new');
    expect(canaryRate(struck, NOW)).toBe(CANARY_RATES.quarantined);
    const forgiven = apply(Array.from({ length: DECAY_AFTER }, () => 'verified' as const), struck);
    expect(forgiven.strikes).toBe(0);
    expect(trustLevel(forgiven, NOW)).toBe('trusted');
  });

  it('puts probation identities at the bottom until they meet double the thresholds', () => {
    expect(trustLevel({ ...FRESH, verified: 500, probation: true }, NOW)).toBe('new');
    expect(trustLevel(earned({ probation: true }), NOW)).toBe('new');
    expect(canaryRate(earned({ probation: true }), NOW)).toBe(CANARY_RATES.new);
    expect(trustLevel(earned({ probation: true }, 2), NOW)).toBe('trusted');
    expect(trustLevel(earned({ probation: true, canariesPassed: 2 * T.canaries - 1 }, 2), NOW)).toBe('new');
  });

  it('follows the configured thresholds', () => {
    const quick = { gflop: 0.001, jobs: 1, hours: 0, canaries: 0 };
    const rec: TrustRecord = { ...FRESH, verified: 1, verifiedFlops: 1e6, verifiedJobs: 1, lastVerifiedJob: 'j', firstVerifiedAt: NOW };
    expect(trustLevel(rec, NOW, quick)).toBe('trusted');
    expect(trustLevel(rec, NOW)).toBe('new');
  });

  it('tests quarantined, new, established and trusted contributors less and less often', () => {
    const rates = [applyTrustEvent(earned(), 'rejected'), FRESH, { ...FRESH, verified: NEW_CONTRIBUTOR_RESULTS }, earned()].map((r) => canaryRate(r, NOW));
    expect(rates).toEqual([CANARY_RATES.quarantined, CANARY_RATES.new, CANARY_RATES.established, CANARY_RATES.trusted]);
    expect([...rates].sort((a, b) => b - a)).toEqual(rates);
  });
});

describe('identities and bans on the store', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const openStore = () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-trust-'));
    return new SqliteStore(join(dir, 'db.sqlite'));
  };
  let n = 0;
  const mint = (store: SqliteStore, limits: IdentityLimits, ip: string, network: string | undefined, now: number) => {
    const id = `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
    return limits.mint(ip, network, async () => {
      await store.registerContributor({ id, tokenHash: `h${id}`, kind: 'agent', adapter: '{}', now, ...(network ? { address: network } : {}) });
      return id;
    });
  };

  it('limits new identities per address and per network for an hour, and not where no network is known', async () => {
    const store = openStore();
    let now = NOW;
    const limits = new IdentityLimits(store, { perNetworkHour: 6, perIpHour: 4 }, () => now);
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await mint(store, limits, '198.51.100.1', '198.51.100.0/24', now));
    expect(results.map((r) => r.ok)).toEqual([true, true, true, true, false]);
    expect(results[4]).toMatchObject({ ok: false, retryAfterS: 3600 });
    // Another address on that /24: two more, then the network is full.
    const more = await Promise.all(Array.from({ length: 4 }, () => mint(store, limits, '198.51.100.2', '198.51.100.0/24', now)));
    expect(more.filter((r) => r.ok).length).toBe(2);
    expect((await mint(store, limits, '198.51.101.1', '198.51.101.0/24', now)).ok).toBe(true);
    for (let i = 0; i < 20; i++) expect((await mint(store, limits, '127.0.0.1', undefined, now)).ok).toBe(true);
    now += 3_600_001;
    expect((await mint(store, limits, '198.51.100.1', '198.51.100.0/24', now)).ok).toBe(true);
    store.close();
  });

  it('records a banned identity\'s networks, and puts identities minted there next on probation', async () => {
    const store = openStore();
    const keeper = new TrustKeeper({ store, blobs: new LocalBlobStore(join(dir!, 'blobs')), log: createLogger('silent'), cacheSize: 2, onBanned: () => undefined, onRequeued: () => undefined });
    const now = Date.now();
    await store.registerContributor({ id: 'cheat', tokenHash: 'h1', kind: 'agent', adapter: '{}', now: now - 1000, address: '203.0.113.0/24' });
    await store.registerContributor({ id: 'older', tokenHash: 'h2', kind: 'agent', adapter: '{}', now: now - 40 * 24 * HOUR, address: '203.0.113.0/24' });
    keeper.noteNetwork('cheat', '2001:db8:1:2::/64');
    for (const _ of [1, 2, 3]) await keeper.record('cheat', 'rejected', 'test');
    expect((await store.getContributor('cheat'))!.trust.status).toBe('banned');
    expect(await store.addressBan('203.0.113.0/24')).toMatchObject({ contributorId: 'cheat' });
    expect(await store.addressBan('2001:db8:1:2::/64')).toMatchObject({ contributorId: 'cheat' });
    await store.registerContributor({ id: 'next', tokenHash: 'h3', kind: 'agent', adapter: '{}', now: now + 1000, address: '203.0.113.0/24' });
    await store.registerContributor({ id: 'elsewhere', tokenHash: 'h4', kind: 'agent', adapter: '{}', now: now + 1000, address: '198.51.100.0/24' });
    expect((await keeper.current('next')).probation).toBe(true);
    expect((await keeper.current('elsewhere')).probation).toBe(false);
    // A network caught cheating also marks identities minted there before the ban: they may be the cheater's spares.
    expect((await keeper.current('older')).probation).toBe(true);
    store.close();
  });

  it('stores the distinct-job count through updateTrust, and keeps a bounded cache that reads back from the store', async () => {
    const store = openStore();
    const keeper = new TrustKeeper({ store, blobs: new LocalBlobStore(join(dir!, 'blobs')), log: createLogger('silent'), cacheSize: 2, onBanned: () => undefined, onRequeued: () => undefined });
    for (const id of ['a', 'b', 'c']) await store.registerContributor({ id, tokenHash: `h${id}`, kind: 'agent', adapter: '{}', now: NOW });
    await keeper.record('a', 'verified', 's1', { flops: 1e9, jobId: 'j1', now: NOW + 5 });
    await keeper.record('a', 'verified', 's2', { flops: 1e9, jobId: 'j2', now: NOW + 6 });
    await keeper.record('b', 'rejected', 's3');
    await keeper.record('c', 'canary-passed', 's4');
    expect((await store.getContributor('a'))!.trust).toMatchObject({ verifiedJobs: 2, lastVerifiedJob: 'j2', firstVerifiedAt: NOW + 5 });
    expect(await keeper.current('a')).toMatchObject({ verifiedJobs: 2, strikes: 0 });
    expect(await keeper.current('b')).toMatchObject({ strikes: 1, status: 'quarantined' });
    expect(keeper.cachedContributors).toBeLessThanOrEqual(2);
    store.close();
  });
});

describe('a caught contributor', () => {
  it('has the inference shards a sampled check accepted from it computed again, at its first failed check', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-trust-'));
    const store = new SqliteStore(join(dir, 'db.sqlite'));
    try {
      let requeued = 0;
      const keeper = new TrustKeeper({ store, blobs: new LocalBlobStore(join(dir, 'blobs')), log: createLogger('silent'), onBanned: () => undefined, onRequeued: (n) => (requeued += n) });
      await store.registerContributor({ id: 'c', tokenHash: 'h', kind: 'agent', adapter: '{}', now: NOW });
      const shards = [0, 1, 2].map((i) => ({ id: `s${i}`, idx: i, rowPanel: i, colPanel: 0, row0: i * 4, col0: 0, rows: 4, cols: 2 }));
      const panels = [...shards.map((_, i) => ({ side: 'a' as const, idx: i, sha256: `in${i}`, bytes: 64 })), { side: 'b' as const, idx: 0, sha256: 'model', bytes: 64 }];
      await store.createJob({ id: 'inf', type: 'inference', owner: null, priority: 0, verification: 'recompute', m: 12, k: 1, n: 2, tileRows: 4, tileCols: 2, panels, shards, now: NOW });
      const grant = () => store.grantLeases({ contributorId: 'c', sessionId: 's', max: 1, now: NOW, leaseMsFor: () => 60_000, maxPanelBytes: 1 << 20, maxActivePerSession: 8, speculateAfterMs: Infinity, jobTypes: ['inference'] });
      const [l1] = await grant();
      const [l2] = await grant();
      await store.acceptResult(l1!.token, NOW + 1, 16);
      await store.acceptResult(l2!.token, NOW + 2, 16);
      expect(await store.getJob('inf')).toMatchObject({ verifiedShards: 2 });
      await keeper.record('c', 'rejected', 'failed a recompute on its third shard');
      expect(requeued).toBe(2);
      expect(await store.getJob('inf')).toMatchObject({ verifiedShards: 0 });
      expect((await store.findLease(l1!.token))!.shardState).toBe('queued');
      // A protocol slip is a strike, but says nothing about its results.
      await store.acceptResult((await grant())[0]!.token, NOW + 3, 16);
      await keeper.record('c', 'protocol-violation', 'a wrong size');
      expect(await store.getJob('inf')).toMatchObject({ verifiedShards: 1 });
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('token bucket', () => {
  it('allows a burst, then the refill rate', () => {
    let t = 0;
    const bucket = new TokenBucket(10, 5, () => t);
    expect(Array.from({ length: 8 }, () => bucket.take()).filter(Boolean).length).toBe(5);
    t += 300; // 3 tokens
    expect(Array.from({ length: 5 }, () => bucket.take()).filter(Boolean).length).toBe(3);
  });
});

describe('replica comparison', () => {
  const [m, k, n] = [32, 512, 32];
  const a = randomMatrix(m, k, 5);
  const b = randomMatrix(k, n, 6);
  const exact = matmulReference(a, b, m, k, n);

  it('accepts two honest float32 results computed in different orders', () => {
    const forward = new Float32Array(m * n);
    const backward = new Float32Array(m * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let f = 0;
        let r = 0;
        for (let p = 0; p < k; p++) f = Math.fround(f + Math.fround(a[i * k + p]! * b[p * n + j]!));
        for (let p = k - 1; p >= 0; p--) r = Math.fround(r + Math.fround(a[i * k + p]! * b[p * n + j]!));
        forward[i * n + j] = f;
        backward[i * n + j] = r;
      }
    expect(resultsAgree(forward, backward, k)).toBe(true);
    expect(resultsAgree(forward, exact, k)).toBe(true);
  });

  it('rejects a scaled, a perturbed or a non-finite result', () => {
    expect(resultsAgree(exact, exact.map((x) => x * 1.001), k)).toBe(false);
    const one = exact.slice();
    one[7]! += 0.01;
    expect(resultsAgree(exact, one, k)).toBe(false);
    const nan = exact.slice();
    nan[0] = NaN;
    expect(resultsAgree(nan, nan, k)).toBe(false);
  });
});
