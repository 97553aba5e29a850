import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../server/store/postgres-migrations';
import { PostgresStore } from '../../server/store/postgres-store';
import { SqliteStore } from '../../server/store/sqlite-store';
import { QuotaExceededError, type GrantedLease, type LeaseGrantRequest, type NewJob, type Store } from '../../server/store/store';
import { startPostgres, type PostgresCluster } from '../support/postgres';

/**
 * One contract, run against every store engine, driving each only through the
 * Store interface: what the coordinator relies on must not depend on the engine.
 * Times are 2023 epoch milliseconds, past 2^31, so an engine that truncates or
 * returns them as strings fails.
 */

const NOW = 1_700_000_000_000;
const DAY = 86_400_000;
const TILE = 16;
const K = 32;

interface JobShape {
  owner?: string | null;
  priority?: number;
  rowPanels?: number;
  colPanels?: number;
  panelBytes?: number;
  verification?: NewJob['verification'];
  hidden?: boolean;
  now?: number;
  /** Overrides the panels' hashes, to share blobs between jobs. */
  sha?: (side: 'a' | 'b', idx: number) => string;
}

function matmulJob(id: string, shape: JobShape = {}): NewJob {
  const rowPanels = shape.rowPanels ?? 2;
  const colPanels = shape.colPanels ?? 2;
  const bytes = shape.panelBytes ?? TILE * K * 4;
  const sha = shape.sha ?? ((side, idx) => `${id}-${side}${idx}`);
  const panels: NewJob['panels'] = [];
  for (let i = 0; i < rowPanels; i++) panels.push({ side: 'a', idx: i, sha256: sha('a', i), bytes });
  for (let i = 0; i < colPanels; i++) panels.push({ side: 'b', idx: i, sha256: sha('b', i), bytes });
  const shards: NewJob['shards'] = [];
  for (let r = 0; r < rowPanels; r++) {
    for (let c = 0; c < colPanels; c++) {
      const idx = r * colPanels + c;
      shards.push({ id: `${id}-s${idx}`, idx, rowPanel: r, colPanel: c, row0: r * TILE, col0: c * TILE, rows: TILE, cols: TILE });
    }
  }
  return {
    id,
    type: 'matmul',
    owner: shape.owner === undefined ? 'alice' : shape.owner,
    priority: shape.priority ?? 0,
    verification: shape.verification ?? 'freivalds',
    inputBytes: (rowPanels + colPanels) * bytes,
    resultBytes: rowPanels * colPanels * TILE * TILE * 4,
    hidden: shape.hidden ?? false,
    m: rowPanels * TILE,
    k: K,
    n: colPanels * TILE,
    tileRows: TILE,
    tileCols: TILE,
    panels,
    shards,
    now: shape.now ?? NOW,
  };
}

function grantReq(over: Partial<LeaseGrantRequest> = {}): LeaseGrantRequest {
  return {
    contributorId: 'c1',
    sessionId: 's1',
    max: 1,
    now: NOW,
    leaseMsFor: () => 30_000,
    maxPanelBytes: 1 << 30,
    maxActivePerSession: 100,
    speculateAfterMs: Infinity,
    jobTypes: ['matmul'],
    ...over,
  };
}

async function contributors(store: Store, ...ids: string[]): Promise<void> {
  for (const id of ids) await store.registerContributor({ id, tokenHash: `hash-${id}`, kind: 'browser', adapter: '{}', now: NOW });
}

/** Grants one lease (failing the test if none comes). */
async function lease(store: Store, over: Partial<LeaseGrantRequest> = {}): Promise<GrantedLease> {
  const [g] = await store.grantLeases(grantReq({ ...over, max: 1 }));
  if (!g) throw new Error(`no lease for ${over.contributorId ?? 'c1'}`);
  return g;
}

const FLOPS = 2 * TILE * TILE * K;

interface Opened {
  store: Store;
  close: () => Promise<void>;
}

function storeContract(engine: string, open: () => Promise<Opened>): void {
  describe(`store contract: ${engine}`, () => {
    let opened: Opened;
    let store: Store;
    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });
    afterEach(async () => opened.close());

    it('creates, reads, lists and counts jobs', async () => {
      await store.createJob(matmulJob('j1', { now: NOW }));
      await store.createJob(matmulJob('j2', { owner: 'bob', now: NOW + 1 }));
      await store.createJob(matmulJob('j3', { owner: null, now: NOW + 2 }));
      await store.createJob(matmulJob('canary', { hidden: true, rowPanels: 1, colPanels: 1, now: NOW + 3 }));
      const j1 = await store.getJob('j1');
      expect(j1).toEqual({
        id: 'j1', type: 'matmul', status: 'queued', owner: 'alice', priority: 0, verification: 'freivalds', hidden: false,
        m: 32, k: K, n: 32, tileRows: TILE, tileCols: TILE, totalShards: 4, returnedShards: 0, verifiedShards: 0,
        reason: null, createdAt: NOW, updatedAt: NOW, completedAt: null, resultDeleted: false, replicaWaitMs: null,
      });
      expect(await store.getJob('nope')).toBeUndefined();
      expect((await store.jobPanels('j1')).map((p) => `${p.side}${p.idx}:${p.bytes}`)).toEqual(['a0:2048', 'a1:2048', 'b0:2048', 'b1:2048']);
      expect((await store.listJobs({ limit: 10 })).map((j) => j.id)).toEqual(['j3', 'j2', 'j1']);
      expect((await store.listJobs({ owner: 'bob', limit: 10 })).map((j) => j.id)).toEqual(['j2']);
      expect((await store.listJobs({ owner: null, limit: 10 })).map((j) => j.id)).toEqual(['j3']);
      expect((await store.listJobs({ limit: 2 })).length).toBe(2);
      expect(await store.jobCounts()).toEqual({ queued: 3, running: 0, completed: 0, failed: 0, cancelled: 0 });
      expect(await store.shardCounts()).toEqual({ queued: 12, leased: 0, verified: 0 });
      expect(await store.activeHiddenJobs()).toEqual(['canary']);
    });

    it('grants leases up to max, with deadlines, panels and lookups', async () => {
      await store.createJob(matmulJob('j1'));
      const granted = await store.grantLeases(grantReq({ max: 3, now: NOW + 5, leaseMsFor: (w) => 1000 + w.rows }));
      expect(granted).toHaveLength(3);
      expect(new Set(granted.map((g) => g.shardId)).size).toBe(3);
      for (const g of granted) {
        expect(g.deadline).toBe(NOW + 5 + 1000 + TILE);
        expect(g.k).toBe(K);
        expect(g.a).toEqual({ side: 'a', idx: g.rowPanel, sha256: `j1-a${g.rowPanel}`, bytes: 2048 });
        expect(g.b).toEqual({ side: 'b', idx: g.colPanel, sha256: `j1-b${g.colPanel}`, bytes: 2048 });
      }
      expect((await store.getJob('j1'))!.status).toBe('running');
      expect(await store.shardCounts()).toEqual({ queued: 1, leased: 3, verified: 0 });
      const found = await store.findLease(granted[0]!.token);
      expect(found).toMatchObject({
        token: granted[0]!.token, state: 'active', contributorId: 'c1', sessionId: 's1', grantedAt: NOW + 5, deadline: granted[0]!.deadline,
        shardId: granted[0]!.shardId, shardState: 'leased', rows: TILE, cols: TILE, a: granted[0]!.a, b: granted[0]!.b,
      });
      expect(found!.job.id).toBe('j1');
      expect(await store.findLease('no-such-token')).toBeUndefined();
      expect(await store.grantLeases(grantReq({ max: 5 }))).toHaveLength(1);
      expect(await store.grantLeases(grantReq({ max: 5 }))).toEqual([]);
    });

    it('applies back-pressure per session and skips panels too large for the device', async () => {
      await store.createJob(matmulJob('big', { panelBytes: 4096, priority: 5 }));
      await store.createJob(matmulJob('small', { panelBytes: 1024 }));
      const first = await store.grantLeases(grantReq({ max: 5, maxActivePerSession: 2, maxPanelBytes: 2048 }));
      expect(first.map((g) => g.jobId)).toEqual(['small', 'small']);
      expect(await store.grantLeases(grantReq({ max: 5, maxActivePerSession: 2, maxPanelBytes: 2048 }))).toEqual([]);
      const other = await store.grantLeases(grantReq({ sessionId: 's2', max: 5, maxActivePerSession: 2 }));
      expect(other.map((g) => g.jobId)).toEqual(['big', 'big']);
    });

    it('prefers tiles sharing the last panels, and higher priority first', async () => {
      await store.createJob(matmulJob('low', { rowPanels: 1, colPanels: 1, priority: 0 }));
      await store.createJob(matmulJob('grid', { rowPanels: 3, colPanels: 3, priority: 1 }));
      const [g1, g2] = await store.grantLeases(grantReq({ max: 2, prefer: { jobId: 'grid', rowPanel: 2, colPanel: 1 } }));
      expect(g1).toMatchObject({ jobId: 'grid', rowPanel: 2, colPanel: 1 });
      expect(g2!.jobId).toBe('grid');
      expect(g2!.rowPanel === 2 || g2!.colPanel === 1).toBe(true);
    });

    it('lets requesters of equal priority take turns within one grant', async () => {
      await store.createJob(matmulJob('a1', { owner: 'alice', now: NOW }));
      await store.createJob(matmulJob('a2', { owner: 'alice', now: NOW + 1 }));
      await store.createJob(matmulJob('b1', { owner: 'bob', now: NOW + 2 }));
      const granted = await store.grantLeases(grantReq({ max: 4, now: NOW + 10 }));
      expect(granted.map((g) => g.jobId)).toEqual(['a1', 'b1', 'a2', 'a1']);
    });

    it('leases a straggler a second time only when speculation allows it', async () => {
      await contributors(store, 'c1', 'c2', 'c3');
      await store.createJob(matmulJob('j', { rowPanels: 1, colPanels: 1 }));
      const first = await lease(store, { contributorId: 'c1' });
      const later = NOW + 10_000;
      expect(await store.grantLeases(grantReq({ contributorId: 'c2', sessionId: 's2', now: later }))).toEqual([]);
      expect(await store.grantLeases(grantReq({ contributorId: 'c1', sessionId: 's1b', now: later, speculateAfterMs: 5_000 }))).toEqual([]);
      expect(await store.grantLeases(grantReq({ contributorId: 'c2', sessionId: 's2', now: NOW + 1_000, speculateAfterMs: 5_000 }))).toEqual([]);
      const backup = await lease(store, { contributorId: 'c2', sessionId: 's2', now: later, speculateAfterMs: 5_000 });
      expect(backup.shardId).toBe(first.shardId);
      expect(await store.grantLeases(grantReq({ contributorId: 'c3', sessionId: 's3', now: later, speculateAfterMs: 5_000 }))).toEqual([]);
    });

    it('accepts a shard once and credits it once', async () => {
      await contributors(store, 'c1', 'c2', 'c3');
      await store.createJob(matmulJob('j', { rowPanels: 1, colPanels: 2 }));
      const l1 = await lease(store, { contributorId: 'c1' });
      const last = await lease(store, { contributorId: 'c1', now: NOW + 1 });
      const l2 = await lease(store, { contributorId: 'c2', sessionId: 's2', now: NOW + 10_000, speculateAfterMs: 5_000 });
      expect(l2.shardId).toBe(l1.shardId); // the longest-running lease gets the backup copy
      const at = NOW + 20_000;
      expect(await store.acceptResult(l1.token, at, FLOPS, ['c3'])).toEqual({ accepted: true, jobVerified: false });
      expect(await store.acceptResult(l2.token, at, FLOPS)).toEqual({ accepted: false, reason: 'ALREADY_VERIFIED' });
      expect(await store.acceptResult(l1.token, at, FLOPS)).toEqual({ accepted: false, reason: 'ALREADY_VERIFIED' });
      expect(await store.acceptResult('nope', at, FLOPS)).toEqual({ accepted: false, reason: 'LEASE_UNKNOWN' });
      expect((await store.findLease(l1.token))).toMatchObject({ state: 'returned', shardState: 'verified' });
      expect((await store.findLease(l2.token))!.state).toBe('superseded');
      const c1 = await store.getContributor('c1');
      expect(c1).toMatchObject({ verifiedShards: 1, flops: FLOPS, credits: FLOPS / 1e9 });
      expect(await store.getContributor('c2')).toMatchObject({ verifiedShards: 0, credits: 0 });
      expect(await store.getContributor('c3')).toMatchObject({ verifiedShards: 1, credits: FLOPS / 1e9 });
      expect(await store.getJob('j')).toMatchObject({ verifiedShards: 1, returnedShards: 1, updatedAt: at });
      expect(await store.jobsAwaitingFinalize()).toEqual([]);
      expect(await store.acceptResult(last.token, at + 1, FLOPS)).toEqual({ accepted: true, jobVerified: true });
      expect((await store.jobsAwaitingFinalize()).map((j) => j.id)).toEqual(['j']);
      await store.finishJob('j', 'completed', at + 2);
      expect(await store.getJob('j')).toMatchObject({ status: 'completed', completedAt: at + 2, verifiedShards: 2 });
      expect(await store.jobsAwaitingFinalize()).toEqual([]);
      await store.finishJob('j', 'failed', at + 3, 'too late');
      expect((await store.getJob('j'))!.status).toBe('completed');
    });

    it('refuses results for jobs no longer active', async () => {
      await contributors(store, 'c1');
      await store.createJob(matmulJob('j'));
      const l = await lease(store);
      const cancelled = await store.cancelJob('j', NOW + 1, 'requester cancelled');
      expect(cancelled!.revoked).toEqual([{ sessionId: 's1', shardId: l.shardId }]);
      expect(cancelled!.job).toMatchObject({ status: 'cancelled', reason: 'requester cancelled', completedAt: NOW + 1 });
      expect(await store.acceptResult(l.token, NOW + 2, FLOPS)).toEqual({ accepted: false, reason: 'JOB_NOT_ACTIVE' });
      expect((await store.findLease(l.token))).toMatchObject({ state: 'cancelled', shardState: 'cancelled' });
      expect(await store.grantLeases(grantReq({ sessionId: 's2', max: 4 }))).toEqual([]);
      expect(await store.cancelJob('j', NOW + 3, 'again')).toMatchObject({ job: { status: 'cancelled', reason: 'requester cancelled' }, revoked: [] });
      expect(await store.cancelJob('nope', NOW, 'x')).toBeUndefined();
      expect(await store.shardCounts()).toEqual({ queued: 0, leased: 0, verified: 0 });
    });

    it('rejects results, keeps the rejected contributor away, and fails the job after maxFailures', async () => {
      await contributors(store, 'c1', 'c2');
      await store.createJob(matmulJob('j', { rowPanels: 1, colPanels: 1 }));
      const l1 = await lease(store, { contributorId: 'c1' });
      expect(await store.rejectResult(l1.token, NOW + 1, 2, 'Freivalds')).toEqual({});
      expect(await store.rejectResult(l1.token, NOW + 1, 2, 'Freivalds')).toEqual({}); // no longer active
      expect(await store.shardCounts()).toEqual({ queued: 1, leased: 0, verified: 0 });
      expect(await store.getJob('j')).toMatchObject({ returnedShards: 1, status: 'running' });
      expect(await store.grantLeases(grantReq({ contributorId: 'c1', sessionId: 's1b', now: NOW + 100 * DAY }))).toEqual([]);
      const l2 = await lease(store, { contributorId: 'c2', sessionId: 's2' });
      const out = await store.rejectResult(l2.token, NOW + 2, 2, 'bad values');
      expect(out.jobFailed).toMatch(/failed verification 2 times \(last: bad values\)/);
      expect(await store.getContributor('c1')).toMatchObject({ rejectedShards: 1, verifiedShards: 0 });
      await store.finishJob('j', 'failed', NOW + 3, out.jobFailed);
      expect(await store.getJob('j')).toMatchObject({ status: 'failed', reason: out.jobFailed, completedAt: NOW + 3 });
      expect(await store.jobCounts()).toMatchObject({ failed: 1, running: 0 });
      expect(await store.grantLeases(grantReq({ contributorId: 'c3', sessionId: 's3' }))).toEqual([]);
    });

    it('releases leases by token, session, contributor and deadline, and all at start-up', async () => {
      await contributors(store, 'c1', 'c2');
      await store.createJob(matmulJob('j', { rowPanels: 2, colPanels: 3 }));
      const [a, b] = await store.grantLeases(grantReq({ max: 2, leaseMsFor: () => 1_000 }));
      expect(await store.releaseLease(a!.token, 'other-session', NOW)).toBe(false);
      expect(await store.releaseLease(a!.token, 's1', NOW)).toBe(true);
      expect(await store.releaseLease(a!.token, 's1', NOW)).toBe(false);
      expect((await store.findLease(a!.token))).toMatchObject({ state: 'released', shardState: 'queued' });
      expect(await store.releaseSession('s1', NOW)).toBe(1);
      expect((await store.findLease(b!.token))!.state).toBe('released');
      expect(await store.shardCounts()).toEqual({ queued: 6, leased: 0, verified: 0 });

      const [e] = await store.grantLeases(grantReq({ contributorId: 'c2', sessionId: 's2', leaseMsFor: () => 1_000 }));
      expect(await store.expireLeases(NOW + 1_000)).toBe(0);
      expect(await store.expireLeases(NOW + 1_001)).toBe(1);
      expect((await store.findLease(e!.token))).toMatchObject({ state: 'expired', shardState: 'queued' });
      // the lapsed contributor gets other shards during the cool-down, and its old one after it
      const retry = await store.grantLeases(grantReq({ contributorId: 'c2', sessionId: 's3', now: NOW + 2_000, max: 6 }));
      expect(retry.map((g) => g.shardId)).not.toContain(e!.shardId);
      expect(retry).toHaveLength(5);
      expect(await store.releaseContributor('c2', NOW + 3_000)).toBe(5);
      const after = await store.grantLeases(grantReq({ contributorId: 'c2', sessionId: 's4', now: NOW + 120_000, max: 6 }));
      expect(after.map((g) => g.shardId)).toContain(e!.shardId);

      await store.createBenchmarkJob({ id: 'bench', owner: null, priority: 0, spec: '{}', m: 8, k: 8, n: 8, contributors: 2, waitUntil: NOW + DAY, now: NOW });
      await store.grantBenchmarkRun({ contributorId: 'c1', sessionId: 's5', adapter: '{}', agentKind: 'browser', now: NOW, leaseMs: () => 1_000 });
      expect(await store.releaseAllActiveLeases(NOW + 200_000)).toBe(7);
      expect(await store.shardCounts()).toEqual({ queued: 6, leased: 0, verified: 0 });
      expect(await store.getJob('bench')).toMatchObject({ verifiedShards: 0 });
    });

    it('releases at start-up only the leases of sessions with a node prefix, when given one', async () => {
      await contributors(store, 'c1', 'c2');
      await store.createJob(matmulJob('j'));
      const mine = await store.grantLeases(grantReq({ sessionId: 'node-a:x1', max: 2 }));
      const theirs = await store.grantLeases(grantReq({ contributorId: 'c2', sessionId: 'node-ab:x2', max: 2 }));
      await store.createBenchmarkJob({ id: 'bench', owner: null, priority: 0, spec: '{}', m: 8, k: 8, n: 8, contributors: 2, waitUntil: NOW + DAY, now: NOW });
      await store.grantBenchmarkRun({ contributorId: 'c1', sessionId: 'node-a:x1', adapter: '{}', agentKind: 'browser', now: NOW, leaseMs: () => 1_000 });
      await store.grantBenchmarkRun({ contributorId: 'c2', sessionId: 'node-ab:x2', adapter: '{}', agentKind: 'browser', now: NOW, leaseMs: () => 1_000 });
      expect(await store.releaseAllActiveLeases(NOW + 1, 'node-a:')).toBe(3);
      for (const l of mine) expect((await store.findLease(l.token))!.state).toBe('released');
      for (const l of theirs) expect((await store.findLease(l.token))!.state).toBe('active');
      expect(await store.shardCounts()).toEqual({ queued: 2, leased: 2, verified: 0 });
      expect(await store.releaseAllActiveLeases(NOW + 2, 'node-a:')).toBe(0);
      expect(await store.releaseAllActiveLeases(NOW + 3)).toBe(3);
    });

    it('lets one node claim the assembly of a job, and another take over only a stale claim', async () => {
      await store.createJob(matmulJob('j'));
      expect(await store.claimFinalize('j', 'a', NOW, 60_000)).toBe(true);
      expect(await store.claimFinalize('j', 'b', NOW + 1, 60_000)).toBe(false);
      expect(await store.claimFinalize('j', 'a', NOW + 2, 60_000)).toBe(true);
      expect(await store.claimFinalize('j', 'b', NOW + 60_001, 60_000)).toBe(false);
      expect(await store.claimFinalize('j', 'b', NOW + 60_003, 60_000)).toBe(true);
      expect(await store.claimFinalize('j', 'a', NOW + 60_004, 60_000)).toBe(false);
      expect(await store.claimFinalize('missing', 'a', NOW, 60_000)).toBe(false);
      await store.finishJob('j', 'completed', NOW + 70_000);
      expect(await store.claimFinalize('j', 'b', NOW + 70_001, 60_000)).toBe(false);
      await store.createJob(matmulJob('r'));
      const wins = await Promise.all(['x', 'y', 'z', 'w'].map((node) => store.claimFinalize('r', node, NOW, 60_000)));
      expect(wins.filter(Boolean)).toHaveLength(1);
    });

    it('parks results for replication and drops them with their blobs', async () => {
      await contributors(store, 'c1', 'c2', 'c3');
      await store.createJob(matmulJob('j', { rowPanels: 1, colPanels: 1, verification: 'replication' }));
      const l1 = await lease(store, { contributorId: 'c1' });
      expect(await store.addPendingResult(l1.token, 'r1', 1024, NOW + 1)).toEqual([{ token: l1.token, contributorId: 'c1', sha256: 'r1', bytes: 1024, network: null, createdAt: NOW + 1 }]);
      expect(await store.getJob('j')).toMatchObject({ returnedShards: 1 });
      expect((await store.findLease(l1.token))).toMatchObject({ state: 'returned', shardState: 'queued' });
      expect(await store.grantLeases(grantReq({ contributorId: 'c1', sessionId: 's1b' }))).toEqual([]);
      const l2 = await lease(store, { contributorId: 'c2', sessionId: 's2' });
      const l3 = await lease(store, { contributorId: 'c3', sessionId: 's3', now: NOW + 60_000, speculateAfterMs: 1 });
      expect(l3.shardId).toBe(l2.shardId);
      await store.addPendingResult(l2.token, 'r2', 1024, NOW + 1);
      expect((await store.pendingResults(l1.shardId)).map((p) => p.contributorId)).toEqual(['c1', 'c2']);
      await store.addPendingResult(l1.token, 'r1', 1024, NOW + 2); // resent: moves behind c2's
      expect((await store.pendingResults(l1.shardId)).map((p) => p.contributorId)).toEqual(['c2', 'c1']);
      expect((await store.findLease(l3.token))!.shardState).toBe('leased'); // c3 still computes it
      expect(await store.getJob('j')).toMatchObject({ returnedShards: 1 });
      expect(await store.referencedBlobs()).toEqual(new Set(['j-a0', 'j-b0', 'r1', 'r2']));
      expect(await store.dropPendingResults({})).toEqual([]);
      expect(await store.dropPendingResults({ tokens: [l1.token] })).toEqual(['r1']);
      expect(await store.dropPendingResults({ contributorId: 'c2', shardId: l1.shardId })).toEqual(['r2']);
      expect(await store.pendingResults(l1.shardId)).toEqual([]);
      expect(await store.acceptResult(l3.token, NOW + 2, FLOPS, ['c2'])).toEqual({ accepted: true, jobVerified: true });
    });

    it('keeps what trust needs: replies per lease, independent replicas, visible waits, work of banned contributors', async () => {
      await contributors(store, 'c1', 'c2', 'c3', 'c4');
      await store.createJob({ ...matmulJob('j', { rowPanels: 1, colPanels: 2, verification: 'replication' }), replicaWaitMs: 5_000 });
      expect(await store.getJob('j')).toMatchObject({ replicaWaitMs: 5_000 });
      const l1 = await lease(store, { contributorId: 'c1', network: '10.0.0.0/24' });
      expect(await store.findLease(l1.token)).not.toHaveProperty('answered');
      await store.addPendingResult(l1.token, 'r1', 1024, NOW + 1, '10.0.0.0/24');
      await store.rememberReply(l1.token, 'digest-1', '{"ok":true,"status":"pending"}');
      expect((await store.findLease(l1.token))!.answered).toEqual({ digest: 'digest-1', reply: '{"ok":true,"status":"pending"}' });
      expect(await store.pendingResults(l1.shardId)).toEqual([{ token: l1.token, contributorId: 'c1', sha256: 'r1', bytes: 1024, network: '10.0.0.0/24', createdAt: NOW + 1 }]);
      expect(await store.awaitingReplicas('j')).toEqual({ shards: 1, oldest: NOW + 1 });
      // Another identity on the same network is not given the parked shard; one on another network is.
      const same = await lease(store, { contributorId: 'c2', sessionId: 's2', network: '10.0.0.0/24' });
      expect(same.shardId).not.toBe(l1.shardId);
      const other = await lease(store, { contributorId: 'c3', sessionId: 's3', network: '10.0.1.0/24' });
      expect(other.shardId).toBe(l1.shardId);
      expect(await store.parkedOlderThan(NOW + 4_000)).toEqual([]);
      expect(await store.parkedOlderThan(NOW + 5_001)).toMatchObject([{ token: l1.token, shardId: l1.shardId, contributorId: 'c1', sha256: 'r1', network: '10.0.0.0/24' }]);
      expect(await store.acceptResult(l1.token, NOW + 6_000, FLOPS)).toEqual({ accepted: true, jobVerified: false });
      await store.dropPendingResults({ shardId: l1.shardId });
      expect(await store.awaitingReplicas('j')).toEqual({ shards: 0, oldest: null });
      expect(await store.parkedOlderThan(NOW + 10_000)).toEqual([]);
      expect(await store.shardsFromBanned('j')).toEqual({ shards: 0, contributors: 0, regions: [] });
      await store.updateTrust('c1', (r) => ({ ...r, status: 'banned', strikes: 3 }), 'caught');
      const at = (await store.findLease(l1.token))!;
      expect(await store.shardsFromBanned('j')).toEqual({ shards: 1, contributors: 1, regions: [{ row0: at.row0, col0: at.col0, rows: TILE, cols: TILE }] });

      // A caught contributor's inference shards accepted on a sampled check go back to the queue; the rest stay.
      await store.createJob({ ...matmulJob('inf', { rowPanels: 2, colPanels: 1 }), type: 'inference', verification: 'recompute' });
      const jobTypes = ['inference' as const];
      const i1 = await lease(store, { contributorId: 'c4', sessionId: 's4', jobTypes });
      const i2 = await lease(store, { contributorId: 'c4', sessionId: 's4', jobTypes });
      await store.acceptResult(i1.token, NOW + 1, FLOPS);
      expect(await store.getJob('inf')).toMatchObject({ verifiedShards: 1 });
      expect(await store.requeueUnconfirmed('c4', NOW + 2)).toBe(1);
      expect(await store.getJob('inf')).toMatchObject({ verifiedShards: 0, updatedAt: NOW + 2 });
      expect((await store.findLease(i1.token))!.shardState).toBe('queued');
      expect((await store.findLease(i2.token))!.shardState).toBe('leased');
      expect(await store.requeueUnconfirmed('c4', NOW + 3)).toBe(0);
      expect(await store.requeueUnconfirmed('c1', NOW + 3)).toBe(0); // matmul tiles were checked on their own
      // s4 and s2 hold active leases (i2, `same`); s1's only lease was returned.
      expect(await store.sessionsWithoutLeases(['s4', 's2', 'nobody', 's1'])).toEqual(['nobody', 's1']);
    });

    it('keeps job specs and leases by job type, held model blobs and deferred jobs', async () => {
      await store.createJob({ ...matmulJob('spec', { rowPanels: 1, colPanels: 1 }), verification: 'recompute', spec: '{"model":"m"}' });
      await store.createJob(matmulJob('plain', { rowPanels: 1, colPanels: 1, sha: (side, i) => `model-${side}${i}`, now: NOW + 1 }));
      expect(await store.jobSpec('spec')).toBe('{"model":"m"}');
      expect(await store.jobSpec('plain')).toBeUndefined();
      expect((await store.getJob('spec'))!.verification).toBe('recompute');
      expect(await store.grantLeases(grantReq({ max: 2, jobTypes: ['inference'] }))).toEqual([]);
      const held = await store.grantLeases(grantReq({ max: 2, sessionId: 's2', heldBlobs: ['model-b0'] }));
      expect(held.map((g) => [g.jobId, g.jobType])).toEqual([['plain', 'matmul'], ['spec', 'matmul']]);
      expect(await store.releaseSession('s2', NOW)).toBe(2);
      expect((await store.grantLeases(grantReq({ max: 2, sessionId: 's3' }))).map((g) => g.jobId)).toEqual(['spec', 'plain']);
      expect(await store.releaseSession('s3', NOW)).toBe(2);
      expect((await store.grantLeases(grantReq({ max: 2, sessionId: 's4', deferJobs: ['spec'] }))).map((g) => g.jobId)).toEqual(['plain']);
    });

    it('releases job panels, reporting only blobs nothing else refers to', async () => {
      const shared = (side: 'a' | 'b', idx: number) => (side === 'a' ? `shared-a${idx}` : `own-b${idx}`);
      await store.createJob(matmulJob('j1', { rowPanels: 1, colPanels: 1, sha: shared }));
      await store.createJob(matmulJob('j2', { rowPanels: 1, colPanels: 1, sha: (side, idx) => (side === 'a' ? `shared-a${idx}` : `j2-b${idx}`) }));
      expect(await store.releaseJobPanels('j1')).toEqual(['own-b0']);
      expect(await store.jobPanels('j1')).toEqual([]);
      expect(await store.referencedBlobs()).toEqual(new Set(['shared-a0', 'j2-b0']));
      expect([...(await store.releaseJobPanels('j2'))].sort()).toEqual(['j2-b0', 'shared-a0']);
      expect((await store.referencedBlobs()).size).toBe(0);
    });

    it('leases canary shards only through leaseShard', async () => {
      await store.createJob(matmulJob('canary', { hidden: true, rowPanels: 1, colPanels: 1 }));
      expect(await store.grantLeases(grantReq({ max: 5 }))).toEqual([]);
      const req = { contributorId: 'c1', sessionId: 's1', now: NOW, maxPanelBytes: 1 << 30, leaseMsFor: () => 500 };
      const l = await store.leaseShard('canary-s0', req);
      expect(l).toMatchObject({ shardId: 'canary-s0', jobId: 'canary', deadline: NOW + 500, a: { sha256: 'canary-a0' } });
      expect(await store.leaseShard('canary-s0', req)).toBeUndefined();
      expect(await store.listJobs({ limit: 10 })).toEqual([]);
      expect(await store.shardCounts()).toEqual({ queued: 0, leased: 0, verified: 0 });
    });

    it('keeps contributors, trust and profiles', async () => {
      await store.registerContributor({ id: 'c1', tokenHash: 'h1', kind: 'browser', adapter: '{"vendor":"x"}', now: NOW });
      await contributors(store, 'c2');
      expect(await store.findContributorByTokenHash('h1')).toMatchObject({ id: 'c1', kind: 'browser', createdAt: NOW, lastSeenAt: NOW, name: null, team: null });
      expect(await store.findContributorByTokenHash('nope')).toBeUndefined();
      await store.touchContributor('c1', 'agent', '{}', NOW + DAY);
      expect(await store.getContributor('c1')).toMatchObject({ kind: 'agent', lastSeenAt: NOW + DAY, createdAt: NOW });
      await expect(store.registerContributor({ id: 'c3', tokenHash: 'h1', kind: 'browser', adapter: '{}', now: NOW })).rejects.toThrow();

      const next = await store.updateTrust('c1', (r) => ({ ...r, status: 'quarantined', strikes: r.strikes + 2 }), 'failed canary');
      expect(next).toMatchObject({ status: 'quarantined', strikes: 2 });
      expect(await store.getContributor('c1')).toMatchObject({ trust: { status: 'quarantined', strikes: 2 }, statusReason: 'failed canary' });
      await store.updateTrust('c1', (r) => ({ ...r, strikes: 1 }), 'decay');
      expect(await store.getContributor('c1')).toMatchObject({ trust: { strikes: 1 }, statusReason: 'failed canary' });
      await expect(store.updateTrust('ghost', (r) => r, 'x')).rejects.toThrow(/no contributor/);

      const tessa = { display: 'Tessa', skeleton: 'tessa' };
      expect(await store.setProfile('c1', { name: tessa, team: { display: 'Rig Room', skeleton: 'rigroom' } }, NOW)).toEqual({ ok: true, name: 'Tessa', team: 'Rig Room' });
      expect(await store.setProfile('c2', { name: { display: 'TESSA', skeleton: 'tessa' } }, NOW)).toEqual({ ok: false, taken: 'name' });
      expect(await store.setProfile('c1', { name: { display: 'Tessa!', skeleton: 'tessa' } }, NOW)).toMatchObject({ ok: true, name: 'Tessa!' });
      expect(await store.setProfile('c2', { team: { display: 'rig room', skeleton: 'rigroom' } }, NOW)).toEqual({ ok: true, name: null, team: 'Rig Room' });
      expect(await store.setProfile('c1', { name: null }, NOW)).toEqual({ ok: true, name: null, team: 'Rig Room' });
      expect(await store.setProfile('c2', { name: tessa, team: null }, NOW)).toEqual({ ok: true, name: 'Tessa', team: null });
      expect(await store.getContributor('c2')).toMatchObject({ name: 'Tessa', team: null });
    });

    it('keeps leaderboards and the network series as results are verified', async () => {
      await contributors(store, 'c1', 'c2', 'c3');
      await store.setProfile('c1', { name: { display: 'One', skeleton: 'one' }, team: { display: 'Team', skeleton: 'team' } }, NOW);
      await store.setProfile('c2', { team: { display: 'Team', skeleton: 'team' } }, NOW);
      await store.createJob(matmulJob('j', { rowPanels: 2, colPanels: 2 }));
      const day0 = NOW - (NOW % DAY);
      const accept = async (who: string, at: number, flops: number) => {
        const l = await lease(store, { contributorId: who, sessionId: `s-${who}-${at}`, now: at });
        expect((await store.acceptResult(l.token, at, flops)).accepted).toBe(true);
      };
      await accept('c1', day0 + 1_000, 4e9);
      await accept('c2', day0 + 61_000, 1e9);
      await accept('c3', day0 + DAY + 5_000, 2e9);
      await accept('c1', day0 + DAY + 6_000, 1e9);
      const all = await store.leaderboard(null, 10);
      expect(all.contributors).toEqual([
        { id: 'c1', name: 'One', team: 'Team', credits: 5 },
        { id: 'c3', name: null, team: null, credits: 2 },
        { id: 'c2', name: null, team: 'Team', credits: 1 },
      ]);
      expect(all.teams).toEqual([{ name: 'Team', members: 2, credits: 6 }]);
      const today = await store.leaderboard(Math.floor((day0 + DAY) / DAY), 10);
      expect(today.contributors.map((r) => [r.id, r.credits])).toEqual([['c3', 2], ['c1', 1]]);
      expect(today.teams).toEqual([{ name: 'Team', members: 2, credits: 1 }]);
      expect((await store.leaderboard(null, 1)).contributors).toHaveLength(1);
      await store.updateTrust('c1', (r) => ({ ...r, status: 'banned' }), 'cheating');
      expect((await store.leaderboard(null, 10)).contributors.map((r) => r.id)).toEqual(['c3', 'c2']);
      const m0 = Math.floor(day0 / 60_000);
      expect(await store.networkSeries(m0)).toEqual([
        { minute: m0, flops: 4e9 },
        { minute: m0 + 1, flops: 1e9 },
        { minute: m0 + 1440, flops: 3e9 },
      ]);
      expect(await store.networkSeries(m0 + 2)).toEqual([{ minute: m0 + 1440, flops: 3e9 }]);
    });

    it('keeps API keys, owner usage and result expiry', async () => {
      const limits = { maxConcurrentJobs: 2, maxStoredBytes: 5 * 2 ** 32, maxUploadBytes: 2 ** 33, requestsPerMinute: 60 };
      await store.createApiKey({ ...limits, id: 'k1', name: 'lab', keyHash: 'kh1', now: NOW });
      await store.createApiKey({ ...limits, id: 'k2', name: 'ci', keyHash: 'kh2', now: NOW + 1 });
      await expect(store.createApiKey({ ...limits, id: 'k3', name: 'lab', keyHash: 'kh3', now: NOW })).rejects.toThrow();
      expect(await store.findApiKeyByHash('kh1')).toEqual({ ...limits, id: 'k1', name: 'lab', createdAt: NOW, revokedAt: null });
      expect((await store.listApiKeys()).map((k) => k.name)).toEqual(['lab', 'ci']);
      expect(await store.revokeApiKey('lab', NOW + 5)).toBe(true);
      expect(await store.revokeApiKey('lab', NOW + 6)).toBe(false);
      expect(await store.findApiKeyByHash('kh1')).toBeUndefined();
      expect((await store.listApiKeys())[0]!.revokedAt).toBe(NOW + 5);

      expect(await store.ownerUsage('k1')).toEqual({ activeJobs: 0, storedBytes: 0 });
      const j1 = matmulJob('j1', { owner: 'k1', rowPanels: 1, colPanels: 1 });
      await store.createJob(j1);
      await store.createJob(matmulJob('j2', { owner: 'k1', now: NOW + 1 }));
      await store.createJob(matmulJob('other', { owner: 'k2', now: NOW + 2 }));
      const j2 = matmulJob('j2', { owner: 'k1' });
      expect(await store.ownerUsage('k1')).toEqual({ activeJobs: 2, storedBytes: j1.inputBytes! + j1.resultBytes! + j2.inputBytes! + j2.resultBytes! });
      const l = await lease(store);
      expect(l.jobId).toBe('j1');
      await store.acceptResult(l.token, NOW + 10, FLOPS);
      await store.finishJob('j1', 'completed', NOW + 10);
      await store.cancelJob('j2', NOW + 11, 'no longer needed');
      expect(await store.ownerUsage('k1')).toEqual({ activeJobs: 0, storedBytes: j1.resultBytes! });
      expect(await store.resultsToExpire(NOW + 10)).toEqual([]);
      expect(await store.resultsToExpire(NOW + 11)).toEqual(['j1']);
      await store.markResultDeleted('j1');
      expect(await store.getJob('j1')).toMatchObject({ resultDeleted: true });
      expect(await store.resultsToExpire(NOW + 11)).toEqual([]);
      expect(await store.ownerUsage('k1')).toEqual({ activeJobs: 0, storedBytes: 0 });
    });

    it('tells which of some blobs are referenced, without listing them all', async () => {
      await store.createJob(matmulJob('refs', { owner: 'k-refs', now: NOW }));
      expect([...(await store.referencedBlobs(['refs-a0', 'refs-b1', 'nobody-a0']))].sort()).toEqual(['refs-a0', 'refs-b1']);
      expect(await store.referencedBlobs([])).toEqual(new Set());
      expect((await store.referencedBlobs()).has('refs-a0')).toBe(true);
    });

    it('counts benchmark jobs against the same quota, in the committing transaction', async () => {
      const quota = { maxActiveJobs: 2, maxStoredBytes: Number.POSITIVE_INFINITY };
      await store.createJob({ ...matmulJob('qb-matmul', { owner: 'k-bench', now: NOW }), quota });
      const settled = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) =>
          store.createBenchmarkJob({ id: `qb${i}`, owner: 'k-bench', priority: 0, spec: '{}', m: 8, k: 8, n: 8, contributors: 2, waitUntil: NOW + DAY, now: NOW + i, quota }),
        ),
      );
      expect(settled.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of settled.filter((x) => x.status === 'rejected')) expect((r as PromiseRejectedResult).reason).toMatchObject({ limit: 'jobs', usage: { activeJobs: 2 } });
      expect(await store.ownerUsage('k-bench')).toMatchObject({ activeJobs: 2 });
    });

    it('takes an owner’s quota in the transaction that commits the job, so parallel creates cannot pass it together', async () => {
      const outcomes = async (jobs: NewJob[]) => {
        const settled = await Promise.allSettled(jobs.map((j) => store.createJob(j)));
        return {
          created: jobs.filter((_, i) => settled[i]!.status === 'fulfilled').map((j) => j.id),
          refused: settled.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : [])),
        };
      };
      const byJobs = { maxActiveJobs: 3, maxStoredBytes: 1e12 };
      const a = await outcomes(Array.from({ length: 8 }, (_, i) => ({ ...matmulJob(`qj${i}`, { owner: 'k-jobs', now: NOW + i }), quota: byJobs })));
      expect(a.created).toHaveLength(3);
      expect(a.refused).toHaveLength(5);
      for (const err of a.refused) {
        expect(err).toBeInstanceOf(QuotaExceededError);
        expect(err).toMatchObject({ limit: 'jobs', usage: { activeJobs: 3 }, quota: byJobs });
      }
      expect(await store.ownerUsage('k-jobs')).toMatchObject({ activeJobs: 3 });
      // A refused job left nothing: not listed, its panels refer to no blob.
      expect((await store.listJobs({ owner: 'k-jobs', limit: 100 })).map((j) => j.id).sort()).toEqual([...a.created].sort());
      expect([...(await store.referencedBlobs())].filter((sha) => sha.startsWith('qj')).map((sha) => sha.split('-')[0]).sort()).toEqual(
        a.created.flatMap((id) => [id, id, id, id]).sort(),
      );
      // A job that ends gives its place back.
      await store.cancelJob(a.created[0]!, NOW + 20, 'make room');
      await store.createJob({ ...matmulJob('qj-after', { owner: 'k-jobs', now: NOW + 21 }), quota: byJobs });

      const one = matmulJob('probe');
      const jobBytes = one.inputBytes! + one.resultBytes!;
      const byBytes = { maxActiveJobs: 100, maxStoredBytes: 2 * jobBytes + jobBytes / 2 };
      const b = await outcomes(Array.from({ length: 8 }, (_, i) => ({ ...matmulJob(`qb${i}`, { owner: 'k-bytes', now: NOW + i }), quota: byBytes })));
      expect(b.created).toHaveLength(2);
      for (const err of b.refused) expect(err).toMatchObject({ limit: 'bytes', neededBytes: jobBytes, usage: { storedBytes: 2 * jobBytes } });
      expect((await store.ownerUsage('k-bytes')).storedBytes).toBe(2 * jobBytes);
      // Jobs without a quota (canaries, another owner) are not counted against it.
      await store.createJob(matmulJob('free', { owner: 'k-bytes', now: NOW + 30 }));
      expect((await store.ownerUsage('k-bytes')).storedBytes).toBe(3 * jobBytes);
    });

    it('lists keys revoked since a time and the active jobs of revoked keys', async () => {
      const limits = { maxConcurrentJobs: 9, maxStoredBytes: 1e9, maxUploadBytes: 1e9, requestsPerMinute: 60 };
      for (const [id, name] of [['k1', 'lab'], ['k2', 'ci'], ['k3', 'ops']] as const) await store.createApiKey({ ...limits, id, name, keyHash: `kh-${id}`, now: NOW });
      expect(await store.apiKeysRevokedSince(0)).toEqual([]);
      await store.createJob(matmulJob('running', { owner: 'k1', now: NOW + 1 }));
      await store.createJob(matmulJob('queued', { owner: 'k1', now: NOW + 2 }));
      await store.createJob(matmulJob('done', { owner: 'k1', rowPanels: 1, colPanels: 1, now: NOW }));
      await store.createJob(matmulJob('others', { owner: 'k2', now: NOW + 3 }));
      await store.createJob(matmulJob('anonymous', { owner: null, now: NOW + 4 }));
      const l = await lease(store);
      expect(l.jobId).toBe('done');
      await store.acceptResult(l.token, NOW + 5, FLOPS);
      await store.finishJob('done', 'completed', NOW + 5);
      await lease(store, { contributorId: 'c2', sessionId: 's2' });
      expect(await store.getJob('running')).toMatchObject({ status: 'running' });
      expect(await store.activeJobsOfRevokedKeys()).toEqual([]);

      await store.revokeApiKey('lab', NOW + 10);
      await store.revokeApiKey('ops', NOW + 20);
      expect(await store.apiKeysRevokedSince(0)).toEqual([
        { id: 'k1', name: 'lab', revokedAt: NOW + 10 },
        { id: 'k3', name: 'ops', revokedAt: NOW + 20 },
      ]);
      expect(await store.apiKeysRevokedSince(NOW + 10)).toHaveLength(2);
      expect(await store.apiKeysRevokedSince(NOW + 11)).toEqual([{ id: 'k3', name: 'ops', revokedAt: NOW + 20 }]);
      expect(await store.apiKeysRevokedSince(NOW + 21)).toEqual([]);
      expect(await store.activeJobsOfRevokedKeys()).toEqual([
        { jobId: 'running', owner: 'k1' },
        { jobId: 'queued', owner: 'k1' },
      ]);
      const cancelled = await store.cancelJob('running', NOW + 30, 'API key revoked');
      expect(cancelled?.revoked).toEqual([{ sessionId: 's2', shardId: expect.stringMatching(/^running-s/) }]);
      expect(await store.activeJobsOfRevokedKeys()).toEqual([{ jobId: 'queued', owner: 'k1' }]);
    });

    it('runs benchmark jobs: one run per contributor, counted when done, due when full or late', async () => {
      const spec = JSON.stringify({ kernel: 'matmul', sizes: [64] });
      await store.createBenchmarkJob({ id: 'b1', owner: 'alice', priority: 0, spec, m: 64, k: 64, n: 64, contributors: 2, waitUntil: NOW + DAY, now: NOW });
      expect(await store.benchmarkSpec('b1')).toEqual({ spec, waitUntil: NOW + DAY });
      expect(await store.benchmarkSpec('nope')).toBeUndefined();
      const run = (contributorId: string, sessionId: string, now = NOW) =>
        store.grantBenchmarkRun({ contributorId, sessionId, adapter: `{"gpu":"${contributorId}"}`, agentKind: 'browser', now, leaseMs: (s) => s.length * 10 });
      const r1 = await run('c1', 's1');
      expect(r1).toMatchObject({ jobId: 'b1', spec, deadline: NOW + spec.length * 10 });
      expect(await run('c1', 's1b')).toBeUndefined();
      const r2 = await run('c2', 's2');
      expect(r2).toBeDefined();
      expect(await run('c3', 's3')).toBeUndefined(); // both runs taken
      expect(await store.getJob('b1')).toMatchObject({ status: 'running', type: 'benchmark', totalShards: 2 });
      expect(await store.findBenchmarkRun(r1!.token)).toMatchObject({ token: r1!.token, state: 'active', contributorId: 'c1', sessionId: 's1', spec, job: { id: 'b1' } });
      expect(await store.findBenchmarkRun('nope')).toBeUndefined();

      expect(await store.endBenchmarkRun(r1!.token, 'done', NOW + 5, '{"gflops":1}')).toEqual({ ended: true, done: 1, total: 2 });
      expect(await store.endBenchmarkRun(r1!.token, 'done', NOW + 6, '{"gflops":1}')).toEqual({ ended: false, done: 0, total: 0 });
      expect(await store.endActiveBenchmarkRuns({ sessionId: 's2', token: 'other' }, NOW + 7)).toBe(0);
      expect(await store.endActiveBenchmarkRuns({ sessionId: 's2' }, NOW + 7)).toBe(1);
      expect((await store.findBenchmarkRun(r2!.token))!.state).toBe('released');
      expect(await run('c1', 's1c')).toBeUndefined(); // c1 has run it
      expect(await store.benchmarkJobsDue(NOW + 8)).toEqual([]);
      const r3 = await run('c3', 's3', NOW + 8);
      expect(await store.endActiveBenchmarkRuns({ deadlineBefore: NOW + 8 }, NOW + 9)).toBe(0);
      expect(await store.endActiveBenchmarkRuns({ deadlineBefore: r3!.deadline + 1 }, r3!.deadline + 1)).toBe(1);
      expect((await store.findBenchmarkRun(r3!.token))!.state).toBe('expired');
      const r4 = await run('c4', 's4', NOW + 9);
      expect(await store.endBenchmarkRun(r4!.token, 'declined', NOW + 10, '{"error":"no f16"}')).toMatchObject({ ended: true, done: 1 });
      expect(await run('c4', 's4b', NOW + 11)).toBeUndefined();
      const r5 = await run('c5', 's5', NOW + 11);
      expect(await store.endBenchmarkRun(r5!.token, 'done', NOW + 12, '{"gflops":2}')).toEqual({ ended: true, done: 2, total: 2 });
      expect(await store.benchmarkJobsDue(NOW + 13)).toEqual(['b1']);
      expect((await store.benchmarkRuns('b1')).map((r) => [r.contributorId, r.endedAt, r.agentKind, r.adapter])).toEqual([
        ['c1', NOW + 5, 'browser', '{"gpu":"c1"}'],
        ['c5', NOW + 12, 'browser', '{"gpu":"c5"}'],
      ]);
      await store.finishJob('b1', 'completed', NOW + 14);
      expect(await store.recentBenchmarks(5)).toMatchObject([{ job: { id: 'b1', status: 'completed', verifiedShards: 2 }, spec }]);

      await store.createBenchmarkJob({ id: 'b2', owner: null, priority: 0, spec, m: 8, k: 8, n: 8, contributors: 3, waitUntil: NOW + 100, now: NOW });
      const late = await run('c1', 's1', NOW + 1);
      expect(await store.benchmarkJobsDue(NOW + 99)).toEqual([]);
      expect(await store.benchmarkJobsDue(NOW + 100)).toEqual(['b2']);
      await store.finishJob('b2', 'failed', NOW + 100, 'nobody came');
      expect((await store.findBenchmarkRun(late!.token))!.state).toBe('cancelled');
      expect(await store.endBenchmarkRun(late!.token, 'done', NOW + 101)).toMatchObject({ ended: false });
      expect(await store.getJob('b2')).toMatchObject({ status: 'failed', reason: 'nobody came' });
    });

    it('keeps the first value of a network-wide setting', async () => {
      expect(await store.initSetting('blob-url-key', 'first')).toBe('first');
      expect(await store.initSetting('blob-url-key', 'second')).toBe('first');
      expect(await store.initSetting('other', 'x')).toBe('x');
    });
  });
}

storeContract('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-store-'));
  const store = new SqliteStore(join(dir, 'tessera.db'));
  return {
    store,
    close: async () => {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
});
afterAll(async () => cluster?.stop());

storeContract('PostgreSQL', async () => {
  const store = await PostgresStore.open(await cluster.createDatabase());
  return { store, close: () => store.end() };
});

describe('PostgreSQL with several coordinators', () => {
  it('lets no owner pass its quota when coordinators commit its jobs at once', async () => {
    const url = await cluster.createDatabase();
    const stores = await Promise.all([1, 2, 3, 4].map(() => PostgresStore.open(url, { max: 2 })));
    try {
      const quota = { maxActiveJobs: 3, maxStoredBytes: 1e12 };
      const settled = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) => stores[i % 4]!.createJob({ ...matmulJob(`race${i}`, { owner: 'k1', now: NOW + i }), quota })),
      );
      expect(settled.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
      expect(settled.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof QuotaExceededError)).toBe(true);
      expect(await stores[0]!.ownerUsage('k1')).toMatchObject({ activeJobs: 3 });
    } finally {
      await Promise.all(stores.map((s) => s.end()));
    }
  });

  it('gives every coordinator the same setting when they start at once', async () => {
    const url = await cluster.createDatabase();
    const stores = await Promise.all([1, 2, 3, 4].map(() => PostgresStore.open(url, { max: 2 })));
    try {
      const values = await Promise.all(stores.map((s, i) => s.initSetting('blob-url-key', `node-${i}`)));
      expect(new Set(values).size).toBe(1);
      expect(values[0]).toMatch(/^node-[0-3]$/);
    } finally {
      await Promise.all(stores.map((s) => s.end()));
    }
  });

  it('migrates an empty database from several coordinators starting at once', async () => {
    const url = await cluster.createDatabase();
    const stores = await Promise.all([1, 2, 3, 4].map(() => PostgresStore.open(url, { max: 2 })));
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      const { rows } = await pool.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
      await stores[0]!.createJob(matmulJob('j'));
      expect((await stores[3]!.getJob('j'))!.totalShards).toBe(4);
      const again = await PostgresStore.open(url, { max: 1 });
      await again.end();
      expect((await pool.query('SELECT count(*)::int AS n FROM schema_migrations')).rows[0].n).toBe(SCHEMA_VERSION);
    } finally {
      await pool.end();
      await Promise.all(stores.map((s) => s.end()));
    }
  });

  it('never grants a queued shard twice and verifies and credits each exactly once under racing coordinators', async () => {
    const url = await cluster.createDatabase();
    const coordinators = [await PostgresStore.open(url, { max: 8 }), await PostgresStore.open(url, { max: 8 })];
    const [a, b] = coordinators as [PostgresStore, PostgresStore];
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      const workers = Array.from({ length: 50 }, (_, i) => `w${i}`);
      await contributors(a, ...workers);
      await a.createJob(matmulJob('big', { rowPanels: 10, colPanels: 10 }));
      await b.createJob(matmulJob('other', { rowPanels: 5, colPanels: 10, owner: 'bob' }));
      await a.createJob(matmulJob('third', { rowPanels: 5, colPanels: 10, owner: 'carol', priority: 1 }));
      const total = 200;
      const granted: string[] = [];
      let accepted = 0;
      let lost = 0;
      const stopAt = Date.now() + 20_000;
      await Promise.all(
        workers.map(async (id, i) => {
          const mine = coordinators[i % 2]!;
          for (let round = 0; Date.now() < stopAt; round++) {
            const leases = await mine.grantLeases(grantReq({ contributorId: id, sessionId: `${id}-${round}`, max: 1 + (i % 3), now: Date.now() }));
            if (leases.length === 0) {
              if ((await a.shardCounts()).queued === 0) return;
              continue;
            }
            for (const l of leases) {
              granted.push(l.shardId);
              // Both coordinators take the same result at once (a retried upload landing on each).
              const outcomes = await Promise.all([a.acceptResult(l.token, Date.now(), FLOPS), b.acceptResult(l.token, Date.now(), FLOPS)]);
              accepted += outcomes.filter((o) => o.accepted).length;
              lost += outcomes.filter((o) => !o.accepted && o.reason === 'ALREADY_VERIFIED').length;
            }
          }
        }),
      );
      expect(granted).toHaveLength(total);
      expect(new Set(granted).size).toBe(total);
      expect(accepted).toBe(total);
      expect(lost).toBe(total);
      const perShard = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM leases GROUP BY shard_id');
      expect(perShard.rows).toHaveLength(total);
      expect(perShard.rows.every((r) => r.n === 1)).toBe(true);
      const verified = await pool.query(`SELECT count(*)::int AS n FROM shards WHERE state = 'verified'`);
      expect(verified.rows[0].n).toBe(total);
      for (const id of ['big', 'other', 'third']) {
        const job = (await b.getJob(id))!;
        expect(job.verifiedShards).toBe(job.totalShards);
      }
      let credited = 0;
      let credits = 0;
      for (const id of workers) {
        const c = (await b.getContributor(id))!;
        credited += c.verifiedShards;
        credits += c.credits;
      }
      expect(credited).toBe(total);
      expect(credits).toBeCloseTo((total * FLOPS) / 1e9, 9);
      expect((await a.networkSeries(0)).reduce((s, m) => s + m.flops, 0)).toBe(total * FLOPS);
    } finally {
      await pool.end();
      await Promise.all(coordinators.map((s) => s.end()));
    }
  });
});
