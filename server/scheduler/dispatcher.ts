import type { DeviceLimits, Lease, ProtocolError, ResultReply } from '../../shared/protocol';
import type { Logger } from '../logger';
import type { JobFinisher } from '../jobs/job-finisher';
import type { ResultFiles } from '../storage/result-files';
import type { GrantedLease, Store } from '../store/store';
import type { MatmulVerifier } from '../verify/matmul-verifier';
import { leaseDurationMs, shardFlops, updateEstimate, type LeasePolicy, type ThroughputEstimate } from './lease-policy';

export interface ContributorSession {
  contributorId: string;
  sessionId: string;
  limits: DeviceLimits;
  /** Self-benchmark from hello, if the contributor sent one. */
  reportedGflops?: number;
}

export interface DispatcherNotifier {
  /** `shards` more shards can be leased now. */
  workAvailable(shards: number): void;
  revoke(sessionId: string, shardId: string, reason: string): void;
}

export interface DispatcherDeps {
  store: Store;
  verifier: MatmulVerifier;
  results: ResultFiles;
  finisher: JobFinisher;
  policy: LeasePolicy;
  maxShardFailures: number;
  sweepMs: number;
  maxLeasesPerSession: number;
  speculateAfterMs: number;
  log: Logger;
  notify: DispatcherNotifier;
}

const err = (code: ProtocolError['code'], message: string): { ok: false; error: ProtocolError } => ({ ok: false, error: { code, message } });

function toLease(g: GrantedLease): Lease {
  const ref = (p: GrantedLease['a']) => ({ sha256: p.sha256, bytes: p.bytes, url: `/api/v1/blobs/${p.sha256}` });
  return { kind: 'matmul', shardId: g.shardId, leaseToken: g.token, jobId: g.jobId, rows: g.rows, cols: g.cols, k: g.k, a: ref(g.a), b: ref(g.b), deadline: g.deadline };
}

function asFloat32(bytes: Uint8Array | ArrayBuffer): Float32Array | undefined {
  const u8 = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
  if (u8.byteLength % 4 !== 0) return undefined;
  if (u8.byteOffset % 4 === 0) return new Float32Array(u8.buffer, u8.byteOffset, u8.byteLength / 4);
  return new Float32Array(new Uint8Array(u8).buffer); // copy: socket.io hands out views into shared, unaligned buffers
}

/** Hands out shard leases, takes results back through verification, and returns lapsed leases to the queue. */
export class Dispatcher {
  private sweeper: NodeJS.Timeout | undefined;
  /** Per connected session: measured speed, and the panels of its last lease (to prefer tiles that reuse them). */
  private readonly sessions = new Map<string, { speed: ThroughputEstimate; last?: { jobId: string; rowPanel: number; colPanel: number } }>();

  private sessionState(session: ContributorSession) {
    let st = this.sessions.get(session.sessionId);
    if (!st) {
      st = { speed: session.reportedGflops ? { reportedGflops: session.reportedGflops } : {} };
      this.sessions.set(session.sessionId, st);
    }
    return st;
  }

  /** The measured speed of a session, for tests and monitoring. */
  speedOf(sessionId: string): ThroughputEstimate | undefined {
    return this.sessions.get(sessionId)?.speed;
  }

  constructor(private readonly deps: DispatcherDeps) {}

  async grant(session: ContributorSession, max: number): Promise<Lease[]> {
    const maxPanelBytes = Math.min(session.limits.maxStorageBufferBindingSize, session.limits.maxBufferSize);
    const st = this.sessionState(session);
    const granted = await this.deps.store.grantLeases({
      contributorId: session.contributorId,
      sessionId: session.sessionId,
      max,
      now: Date.now(),
      maxPanelBytes,
      maxActivePerSession: this.deps.maxLeasesPerSession,
      speculateAfterMs: this.deps.speculateAfterMs,
      ...(st.last ? { prefer: st.last } : {}),
      leaseMsFor: (work) => leaseDurationMs(this.deps.policy, work, st.speed),
    });
    const last = granted.at(-1);
    if (last) st.last = { jobId: last.jobId, rowPanel: last.rowPanel, colPanel: last.colPanel };
    for (const g of granted) this.deps.log.debug({ shardId: g.shardId, contributorId: session.contributorId }, 'lease granted');
    return granted.map(toLease);
  }

  async submit(session: ContributorSession, msg: { shardId: string; leaseToken: string; c: Uint8Array | ArrayBuffer }): Promise<ResultReply> {
    const { store, log } = this.deps;
    const lease = await store.findLease(msg.leaseToken);
    if (!lease || lease.shardId !== msg.shardId || lease.contributorId !== session.contributorId) {
      return err('LEASE_UNKNOWN', `you hold no lease ${msg.leaseToken} for shard ${msg.shardId}`);
    }
    if (lease.job.status !== 'queued' && lease.job.status !== 'running') {
      return err('JOB_CANCELLED', `job ${lease.job.id} is ${lease.job.status}; drop this shard`);
    }
    if (lease.state !== 'active' && lease.state !== 'expired') {
      return err('LEASE_UNKNOWN', `lease ${msg.leaseToken} already ended (${lease.state}); a result is accepted once per lease`);
    }
    if (lease.shardState === 'verified') return err('LEASE_EXPIRED', `shard ${msg.shardId} was already completed by another contributor`);
    const tile = asFloat32(msg.c);
    const outcome = tile
      ? await this.deps.verifier.verify(lease, tile)
      : ({ ok: false, code: 'SHAPE_MISMATCH', message: `result length ${msg.c.byteLength} is not a whole number of float32 values` } as const);
    if (!outcome.ok) {
      const rejected = await store.rejectResult(msg.leaseToken, Date.now(), this.deps.maxShardFailures, outcome.message);
      log.warn({ shardId: msg.shardId, contributorId: session.contributorId, reason: outcome.message }, 'result rejected');
      if (rejected.jobFailed) await this.deps.finisher.fail(lease.job.id, rejected.jobFailed);
      else this.deps.notify.workAvailable(1);
      return err(outcome.code, outcome.message);
    }
    await this.deps.results.writeTile(lease.job.id, lease.job.m, lease.job.n, { row0: lease.row0, col0: lease.col0, rows: lease.rows, cols: lease.cols, data: tile! });
    const accepted = await store.acceptResult(msg.leaseToken, Date.now(), shardFlops({ rows: lease.rows, cols: lease.cols, k: lease.job.k }));
    if (!accepted.accepted) {
      if (accepted.reason === 'ALREADY_VERIFIED') return err('LEASE_EXPIRED', `shard ${msg.shardId} was already completed by another contributor`);
      return err('JOB_CANCELLED', `job ${lease.job.id} is no longer running`);
    }
    const st = this.sessionState(session);
    st.speed = updateEstimate(st.speed, shardFlops({ rows: lease.rows, cols: lease.cols, k: lease.job.k }), Date.now() - lease.grantedAt);
    log.debug({ shardId: msg.shardId, contributorId: session.contributorId }, 'tile verified');
    if (accepted.jobVerified) {
      const job = await store.getJob(lease.job.id);
      if (job) await this.deps.finisher.complete(job);
    }
    return { ok: true, status: 'verified' };
  }

  async release(session: ContributorSession, shardId: string, token: string): Promise<boolean> {
    const lease = await this.deps.store.findLease(token);
    if (!lease || lease.shardId !== shardId) return false;
    const released = await this.deps.store.releaseLease(token, session.sessionId, Date.now());
    if (released) this.deps.notify.workAvailable(1);
    return released;
  }

  async sessionClosed(sessionId: string): Promise<void> {
    this.sessions.delete(sessionId);
    const n = await this.deps.store.releaseSession(sessionId, Date.now());
    if (n > 0) {
      this.deps.log.info({ sessionId, leases: n }, 'contributor left; its shards are queued again');
      this.deps.notify.workAvailable(n);
    }
  }

  async sweep(): Promise<number> {
    const n = await this.deps.store.expireLeases(Date.now());
    if (n > 0) {
      this.deps.log.info({ leases: n }, 'leases expired; shards queued again');
      this.deps.notify.workAvailable(n);
    }
    return n;
  }

  start(): void {
    this.sweeper = setInterval(() => {
      this.sweep().catch((e: unknown) => this.deps.log.error({ err: e }, 'lease sweep failed'));
    }, this.deps.sweepMs);
    this.sweeper.unref();
  }

  stop(): void {
    clearInterval(this.sweeper);
  }
}
