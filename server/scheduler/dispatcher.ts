import type { AdapterInfo, DeviceLimits, Lease } from '../../shared/protocol';
import type { BenchmarkService } from '../benchmarks/benchmark-service';
import type { Logger } from '../logger';
import type { GrantedLease, ShardWork, Store } from '../store/store';
import type { CanaryPool } from '../trust/canary-pool';
import type { InferenceCanaries } from '../trust/inference-canaries';
import type { TrustKeeper } from '../trust/trust-keeper';
import type { Metrics } from '../metrics/metrics';
import type { KernelTuning } from '../../shared/matmul-configs';
import type { BlobCapability } from '../http/blob-capability';
import { leaseDurationMs, shardFlops, updateEstimate, type LeasePolicy, type ThroughputEstimate } from './lease-policy';

/** Who sent a result: all that the result path needs (a result sent over HTTP has no socket). */
export interface Submitter {
  contributorId: string;
  sessionId: string;
  /** The sender's network (server/trust/network-prefix.ts), when known: replicas from one network are not independent. */
  network?: string;
}

export interface ContributorSession extends Submitter {
  limits: DeviceLimits;
  /** Self-benchmark from hello, if the contributor sent one. */
  reportedGflops?: number;
  /** Autotuned kernels from hello: speed per tile size class. */
  tuning?: KernelTuning;
  adapter?: AdapterInfo;
  agentKind?: string;
  /** Lease kinds it runs (hello `accepts`). */
  accepts?: readonly ('matmul' | 'benchmark' | 'inference')[];
  /** Model packages (sha256) it said it keeps (hello `models`). */
  models?: readonly string[];
}

export interface DispatcherNotifier {
  /** `shards` more shards can be leased now. */
  workAvailable(shards: number): void;
}

export interface DispatcherDeps {
  store: Store;
  trust: TrustKeeper;
  /** Absent when canaries are switched off. */
  canaries?: CanaryPool;
  /** Makes inference canaries (with `canaries`). */
  inferenceCanaries?: InferenceCanaries;
  policy: LeasePolicy;
  sweepMs: number;
  metrics: Metrics;
  maxLeasesPerSession: number;
  speculateAfterMs: number;
  log: Logger;
  notify: DispatcherNotifier;
  /** Network benchmark runs go first to contributors that accept them. */
  benchmarks?: BenchmarkService;
  /**
   * For this long after an inference job is queued, a contributor without its model is not given
   * the job while an online contributor holds the model: the weights need not travel again.
   */
  modelAffinityMs?: number;
  /** Signs the blob URLs a lease carries: only lease holders can read a requester's panels. */
  blobUrls: BlobCapability;
}

function toLease(g: GrantedLease, blobUrls: BlobCapability): Lease {
  const ref = (p: GrantedLease['a']) => ({ sha256: p.sha256, bytes: p.bytes, url: blobUrls.url(p.sha256, g.deadline) });
  if (g.jobType === 'inference') {
    return { kind: 'inference', shardId: g.shardId, leaseToken: g.token, jobId: g.jobId, rows: g.rows, outputsPerSample: g.cols, model: ref(g.b), input: ref(g.a), deadline: g.deadline };
  }
  return { kind: 'matmul', shardId: g.shardId, leaseToken: g.token, jobId: g.jobId, rows: g.rows, cols: g.cols, k: g.k, a: ref(g.a), b: ref(g.b), deadline: g.deadline };
}

const DEFAULT_MODEL_AFFINITY_MS = 3_000;
/** How long after its deadline a lapsed canary is kept, so that a result racing the deadline still finds it. */
const CANARY_GRACE_MS = 60_000;


/** Hands out shard leases, takes results back through verification, and returns lapsed leases to the queue. */
export class Dispatcher {
  private sweeper: NodeJS.Timeout | undefined;
  /** Per connected session: measured speed, and the panels of its last lease (to prefer tiles that reuse them). */
  private readonly sessions = new Map<string, { speed: ThroughputEstimate; last?: { jobId: string; rowPanel: number; colPanel: number }; models: Set<string> }>();
  /** Inference jobs queued lately, with their model: the window in which holders of the model go first. */
  private readonly newModelJobs = new Map<string, { sha256: string; queuedAt: number }>();
  /** Connected sessions by the model packages they hold: asked on every grant while a new inference job is recent. */
  private readonly modelHolders = new Map<string, Set<string>>();

  /**
   * Canary leases out now, by the real job each is shown as: when that job is
   * cancelled its canaries must be withdrawn with its real leases, or the one
   * lease of the job that was not revoked would be known for a canary.
   */
  private readonly shownAs = new Map<string, { sessionId: string; shardId: string; canaryJobId: string; deadline: number }[]>();

  private holds(sessionId: string, models: Set<string>, sha256: string): void {
    models.add(sha256);
    let holders = this.modelHolders.get(sha256);
    if (!holders) {
      holders = new Set();
      this.modelHolders.set(sha256, holders);
    }
    holders.add(sessionId);
  }

  private sessionState(sessionId: string, reportedGflops?: number, tuning?: KernelTuning, models?: readonly string[]) {
    let st = this.sessions.get(sessionId);
    if (!st) {
      st = { speed: { ...(reportedGflops ? { reportedGflops } : {}), ...(tuning ? { tunedGflops: tuning.gflops } : {}) }, models: new Set() };
      this.sessions.set(sessionId, st);
      for (const sha of models ?? []) this.holds(sessionId, st.models, sha);
    }
    return st;
  }

  /** An inference job was queued: for a moment, contributors already holding its model go first. */
  inferenceQueued(jobId: string, modelSha: string): void {
    this.newModelJobs.set(jobId, { sha256: modelSha, queuedAt: Date.now() });
  }

  /**
   * New inference jobs this session should leave to others for now: it lacks the model, and an
   * online session that has it is free to take them (holds no lease). Holding the model decides
   * the order, never who may work: once every holder is busy, a contributor without it gets shards.
   */
  private async deferredFor(models: Set<string>, now: number): Promise<string[]> {
    const window = this.deps.modelAffinityMs ?? DEFAULT_MODEL_AFFINITY_MS;
    const deferred: string[] = [];
    for (const [jobId, j] of this.newModelJobs) {
      if (now - j.queuedAt >= window) {
        this.newModelJobs.delete(jobId);
        continue;
      }
      // This session is not among the holders (it lacks the model), so any holder is another session.
      const holders = this.modelHolders.get(j.sha256);
      if (models.has(j.sha256) || !holders || holders.size === 0) continue;
      if ((await this.deps.store.sessionsWithoutLeases([...holders])).length > 0) deferred.push(jobId);
    }
    return deferred;
  }

  constructor(private readonly deps: DispatcherDeps) {}

  /** Called for each verified result: keeps this session's measured speed current. */
  recordVerified(sessionId: string, flops: number, elapsedMs: number): void {
    const st = this.sessionState(sessionId);
    st.speed = updateEstimate(st.speed, flops, elapsedMs);
  }

  async grant(session: ContributorSession, max: number): Promise<Lease[]> {
    const trust = await this.deps.trust.current(session.contributorId);
    if (trust.status === 'banned') return [];
    const maxPanelBytes = Math.min(session.limits.maxStorageBufferBindingSize, session.limits.maxBufferSize);
    const st = this.sessionState(session.sessionId, session.reportedGflops, session.tuning, session.models);
    const accepts = session.accepts ?? ['matmul'];
    // Only contributors in good standing time benchmarks: a quarantined one's figures would need checking twice.
    if (this.deps.benchmarks && session.accepts?.includes('benchmark') && trust.status === 'active') {
      const gflops = session.tuning?.gflops.large ?? session.reportedGflops;
      const run = await this.deps.benchmarks.grant({
        contributorId: session.contributorId,
        sessionId: session.sessionId,
        adapter: session.adapter ?? { vendor: '', architecture: '', device: '', description: '' },
        agentKind: session.agentKind ?? 'unknown',
        ...(gflops ? { gflops } : {}),
      });
      if (run) return [run];
    }
    const leaseMsFor = (work: Parameters<typeof leaseDurationMs>[1]) => leaseDurationMs(this.deps.policy, work, st.speed);
    const now = Date.now();
    const granted = await this.deps.store.grantLeases({
      contributorId: session.contributorId,
      sessionId: session.sessionId,
      max,
      now,
      jobTypes: accepts.filter((t) => t !== 'benchmark'),
      heldBlobs: [...st.models],
      deferJobs: await this.deferredFor(st.models, now),
      maxPanelBytes,
      maxActivePerSession: this.deps.maxLeasesPerSession,
      ...(session.network ? { network: session.network } : {}),
      speculateAfterMs: this.deps.speculateAfterMs,
      ...(st.last ? { prefer: st.last } : {}),
      leaseMsFor,
    });
    for (const g of granted) {
      this.deps.metrics.shardsLeased.inc({ job_type: g.jobType });
      // It fetches the model with this lease and keeps it: later shards of the model should come here.
      if (g.jobType === 'inference') this.holds(session.sessionId, st.models, g.b.sha256);
    }
    const last = granted.at(-1);
    if (last) st.last = { jobId: last.jobId, rowPanel: last.rowPanel, colPanel: last.colPanel };
    for (const g of granted) this.deps.log.debug({ shardId: g.shardId, contributorId: session.contributorId }, 'lease granted');
    const leases = granted.map((g) => toLease(g, this.deps.blobUrls));
    const canary = await this.canaryAmong(session, granted, max, this.deps.trust.canaryRate(trust), { maxPanelBytes, leaseMsFor });
    if (!canary) return leases;
    if (canary.replaces !== undefined) leases.splice(leases.findIndex((l) => l.shardId === canary.replaces), 1);
    // Anywhere in the grant: its place says nothing either.
    leases.splice(Math.floor(Math.random() * (leases.length + 1)), 0, canary.lease);
    return leases;
  }

  /**
   * A canary to go with this grant, dressed as a shard of the real matmul job
   * the contributor was last given here: that job's id, that tile's exact
   * shape, a deadline from the same policy. Only with real work: a grant
   * without a matmul tile never carries one. When the grant is full (the
   * contributor asked for no more), the canary takes the place of one of that
   * job's tiles, which goes back to the queue, so the count of leases never
   * gives it away. When no canary of the shape is ready, there is none this time.
   */
  private async canaryAmong(
    session: ContributorSession,
    granted: readonly GrantedLease[],
    max: number,
    rate: number,
    req: { maxPanelBytes: number; leaseMsFor: (work: ShardWork) => number },
  ): Promise<{ lease: Lease; replaces?: string } | undefined> {
    const pool = this.deps.canaries;
    if (!pool) return undefined;
    const host = granted.findLast((g) => g.jobType === 'matmul') ?? granted.findLast((g) => g.jobType === 'inference');
    if (!host) return undefined;
    let shardId: string | undefined;
    if (host.jobType === 'matmul') {
      const shape = { rows: host.rows, cols: host.cols, k: host.k };
      pool.observe(shape);
      if (!(Math.random() < rate)) return undefined;
      shardId = pool.take(shape)?.shardId;
    } else {
      // Inference canaries are cut from the job's own samples when one is due: nothing to prepare.
      if (!(Math.random() < rate)) return undefined;
      shardId = await this.deps.inferenceCanaries?.make(host).catch((err: unknown) => {
        this.deps.log.warn({ err, jobId: host.jobId }, 'could not make an inference canary');
        return undefined;
      });
    }
    if (!shardId) return undefined;
    const lease = await this.deps.store.leaseShard(shardId, { contributorId: session.contributorId, sessionId: session.sessionId, now: Date.now(), ...req });
    if (!lease) return undefined;
    this.deps.metrics.shardsLeased.inc({ job_type: host.jobType });
    let replaces: string | undefined;
    if (granted.length >= max && (await this.deps.store.releaseLease(host.token, session.sessionId, Date.now()))) {
      replaces = host.shardId;
      this.deps.notify.workAvailable(1);
    }
    const out = this.shownAs.get(host.jobId) ?? [];
    out.push({ sessionId: session.sessionId, shardId: lease.shardId, canaryJobId: lease.jobId, deadline: lease.deadline });
    this.shownAs.set(host.jobId, out);
    this.deps.log.debug({ shardId: lease.shardId, canaryJobId: lease.jobId, shownAsJobId: host.jobId, contributorId: session.contributorId }, 'canary granted');
    // The store keeps the canary under its hidden job; only the message carries the real job's id.
    return { lease: toLease({ ...lease, jobId: host.jobId }, this.deps.blobUrls), ...(replaces ? { replaces } : {}) };
  }

  /**
   * The real job `jobId` was cancelled: the canaries shown as its shards are
   * withdrawn too. Returns their leases, to be revoked like the job's own.
   */
  async withdrawCanaries(jobId: string): Promise<{ sessionId: string; shardId: string }[]> {
    const out = this.shownAs.get(jobId) ?? [];
    this.shownAs.delete(jobId);
    for (const c of out) await this.deps.canaries?.discard(c.canaryJobId);
    return out.map(({ sessionId, shardId }) => ({ sessionId, shardId }));
  }

  /**
   * Forgets canary leases a while past their deadline, when no result can
   * still be on its way: an answered canary is already retired (retiring is
   * idempotent), a lapsed one would otherwise wait in the store forever.
   */
  private async retireLapsedCanaries(now: number): Promise<void> {
    for (const [jobId, out] of this.shownAs) {
      const live = out.filter((c) => c.deadline + CANARY_GRACE_MS > now);
      for (const c of out) if (!live.includes(c)) await this.deps.canaries?.discard(c.canaryJobId);
      if (live.length === 0) this.shownAs.delete(jobId);
      else this.shownAs.set(jobId, live);
    }
  }

  async release(session: ContributorSession, shardId: string, token: string): Promise<boolean> {
    const lease = await this.deps.store.findLease(token);
    if (!lease) return shardId === token && ((await this.deps.benchmarks?.release(session.sessionId, token)) ?? false);
    if (lease.shardId !== shardId) return false;
    const released = await this.deps.store.releaseLease(token, session.sessionId, Date.now());
    // A canary handed back is not handed out again (its panels have been seen): it goes.
    if (released && lease.job.hidden) await this.deps.canaries?.discard(lease.job.id);
    else if (released) this.deps.notify.workAvailable(1);
    return released;
  }

  async sessionClosed(sessionId: string): Promise<void> {
    for (const sha of this.sessions.get(sessionId)?.models ?? []) {
      const holders = this.modelHolders.get(sha);
      holders?.delete(sessionId);
      if (holders?.size === 0) this.modelHolders.delete(sha);
    }
    this.sessions.delete(sessionId);
    await this.deps.benchmarks?.sessionClosed(sessionId);
    const n = await this.deps.store.releaseSession(sessionId, Date.now());
    if (n > 0) {
      this.deps.log.info({ sessionId, leases: n }, 'contributor left; its shards are queued again');
      this.deps.notify.workAvailable(n);
    }
  }

  async sweep(): Promise<number> {
    await this.deps.benchmarks?.sweep();
    await this.retireLapsedCanaries(Date.now());
    const n = await this.deps.store.expireLeases(Date.now());
    if (n > 0) {
      this.deps.metrics.leaseExpiries.inc(n);
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
