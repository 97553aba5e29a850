import { REJECTED_MESSAGE, type ProtocolError, type ResultReply } from '../../shared/protocol';
import type { JobFinisher } from '../jobs/job-finisher';
import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import type { ResultFiles } from '../storage/result-files';
import type { LeaseLookup, PendingResult, Store } from '../store/store';
import type { JobType } from '../../shared/api';
import type { TrustKeeper } from '../trust/trust-keeper';
import type { LiveLease, ResultVerifier, Verdict } from '../verify/verdict';
import type { Submitter } from './dispatcher';
import { shardFlops } from './lease-policy';
import type { Metrics } from '../metrics/metrics';
import { TaskUnavailable } from '../workers/pool';
import { webcrypto } from 'node:crypto';
import { redactToken } from '../http/redact';

export interface ResultIntakeDeps {
  store: Store;
  results: ResultFiles;
  finisher: JobFinisher;
  trust: TrustKeeper;
  verifiers: { freivalds: ResultVerifier; replication: ResultVerifier; canary: ResultVerifier; inference: ResultVerifier; inferenceReplication: ResultVerifier };
  maxShardFailures: number;
  log: Logger;
  metrics: Metrics;
  onRequeued(shards: number): void;
  onVerified(sessionId: string, flops: number, elapsedMs: number): void;
  /** Seconds a verification task may run (for the reason a job fails with). */
  verifyTaskSeconds: number;
  /** Where parked replicas are kept. */
  blobs: BlobStore;
}

/** Verifications of one job that may run past their time limit (or crash) before the job fails. */
export const MAX_UNVERIFIABLE = 3;
/** Lease tokens remembered as unverifiable, so a resent result is not checked again. */
const UNVERIFIABLE_TOKENS_KEPT = 10_000;

const err = (code: ProtocolError['code'], message: string): { ok: false; error: ProtocolError } => ({ ok: false, error: { code, message } });

function asFloat32(bytes: Uint8Array | ArrayBuffer): Float32Array | undefined {
  const u8 = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
  if (u8.byteLength % 4 !== 0) return undefined;
  if (u8.byteOffset % 4 === 0) return new Float32Array(u8.buffer, u8.byteOffset, u8.byteLength / 4);
  return new Float32Array(new Uint8Array(u8).buffer); // copy: socket.io hands out views into shared, unaligned buffers
}

/**
 * Takes a contributor's result through the checks every result must pass —
 * the lease is its own and still open, the size is right — and then through
 * the verification method of its job, before anything is assembled or
 * credited. Every cheat it sees is recorded against the sender.
 */
export class ResultIntake {
  /** Per job: verifications that ran out of time or failed, towards MAX_UNVERIFIABLE. */
  private readonly unverifiable = new Map<string, number>();
  /** Leases whose result could not be verified: their shard went back to the queue. */
  private readonly unverifiableTokens = new Set<string>();

  constructor(private readonly deps: ResultIntakeDeps) {}

  /** Results being taken in now, by lease token: a copy sent again meanwhile waits for the first one's reply. */
  private readonly inFlight = new Map<string, Promise<unknown>>();

  async submit(session: Submitter, msg: { shardId: string; leaseToken: string; c: Uint8Array | ArrayBuffer }): Promise<ResultReply> {
    const before = this.inFlight.get(msg.leaseToken);
    const mine = (before ?? Promise.resolve()).catch(() => undefined).then(() => this.take(session, msg));
    this.inFlight.set(msg.leaseToken, mine);
    try {
      return await mine;
    } finally {
      if (this.inFlight.get(msg.leaseToken) === mine) this.inFlight.delete(msg.leaseToken);
    }
  }

  private async take(session: Submitter, msg: { shardId: string; leaseToken: string; c: Uint8Array | ArrayBuffer }): Promise<ResultReply> {
    const { store, trust } = this.deps;
    const lease = await store.findLease(msg.leaseToken);
    if (!lease || lease.shardId !== msg.shardId || lease.contributorId !== session.contributorId) {
      await trust.record(session.contributorId, 'protocol-violation', `result for a lease it does not hold (shard ${redactToken(msg.shardId)})`);
      return err('LEASE_UNKNOWN', `you hold no lease ${redactToken(msg.leaseToken)} for shard ${msg.shardId}`);
    }
    const digest = await resultDigest(msg.c);
    // A reply lost on the way makes an honest contributor send the same bytes again: it hears the same verdict, at no cost.
    if (lease.answered?.digest === digest) return JSON.parse(lease.answered.reply) as ResultReply;
    // Before the job's status: a canary's job ends with its one result, and a reply naming that would give it away.
    if (lease.state === 'returned' || lease.state === 'rejected') {
      await trust.record(session.contributorId, 'protocol-violation', `sent a different result for lease ${redactToken(lease.token)}, which had already ended (${lease.state})`);
      return err('LEASE_UNKNOWN', `lease ${redactToken(msg.leaseToken)} already ended (${lease.state}); a result is accepted once per lease`);
    }
    if (lease.job.status !== 'queued' && lease.job.status !== 'running') return err('JOB_CANCELLED', `this shard's job is ${lease.job.status}; drop this shard`);
    if (lease.shardState === 'verified') return err('LEASE_EXPIRED', `shard ${msg.shardId} was already completed by another contributor`);
    if (this.unverifiableTokens.has(lease.token)) return err('LEASE_EXPIRED', `lease ${redactToken(msg.leaseToken)} was withdrawn: its result could not be verified and the shard was queued again`);
    if (lease.state === 'superseded' || lease.state === 'cancelled') return err('LEASE_EXPIRED', `lease ${redactToken(msg.leaseToken)} was withdrawn (${lease.state})`);
    if (!lease.a || !lease.b) return err('JOB_CANCELLED', `this shard's job has ended; drop this shard`);
    const live: LiveLease = { ...lease, a: lease.a, b: lease.b, ...(session.network ? { senderNetwork: session.network } : {}) };
    const tile = asFloat32(msg.c);
    if (!tile || tile.length !== lease.rows * lease.cols) {
      const message = `tile must be ${lease.rows}×${lease.cols} float32 (${lease.rows * lease.cols * 4} bytes), got ${msg.c.byteLength} bytes`;
      await this.reject(session, lease, 'protocol-violation', message);
      return this.remember(lease.token, digest, err('SHAPE_MISMATCH', message));
    }
    this.deps.metrics.shardsReturned.inc({ job_type: lease.job.type });
    const method = lease.job.hidden ? 'canary' : lease.job.verification;
    const endTimer = this.deps.metrics.verification.startTimer({ method });
    let verdict: Verdict;
    try {
      verdict = await this.verifierFor(lease).verify(live, tile, await trust.current(session.contributorId));
    } catch (e) {
      if (e instanceof TaskUnavailable) return this.unavailable(session, live, e);
      throw e;
    } finally {
      endTimer();
    }
    return this.remember(lease.token, digest, await this.apply(session, live, tile, verdict));
  }

  private async remember(token: string, digest: string, reply: ResultReply): Promise<ResultReply> {
    await this.deps.store.rememberReply(token, digest, JSON.stringify(reply));
    return reply;
  }

  /**
   * The check could not finish: not the sender's doing, so no strike. The
   * shard goes back to the queue; a job whose checks keep running out of
   * time (a model too heavy to recompute, say) fails with the reason.
   */
  private async unavailable(session: Submitter, lease: LiveLease, e: TaskUnavailable): Promise<ResultReply> {
    const { store, log, metrics } = this.deps;
    metrics.verificationUnavailable.inc({ reason: e.reason });
    log.warn({ jobId: lease.job.id, shardId: lease.shardId, contributorId: session.contributorId, reason: e.reason, err: e.message }, 'result could not be verified; shard requeued');
    this.unverifiableTokens.add(lease.token);
    if (this.unverifiableTokens.size > UNVERIFIABLE_TOKENS_KEPT) this.unverifiableTokens.delete(this.unverifiableTokens.values().next().value!);
    if (lease.job.hidden) await this.deps.finisher.retireCanary(lease.job.id); // never handed out twice
    else if (await store.releaseLease(lease.token, lease.sessionId, Date.now())) this.deps.onRequeued(1);
    const counts = e.reason === 'timeout' || e.reason === 'failed';
    const n = counts ? (this.unverifiable.get(lease.job.id) ?? 0) + 1 : 0;
    if (counts) this.unverifiable.set(lease.job.id, n);
    if (this.unverifiable.size > 1_000) this.unverifiable.delete(this.unverifiable.keys().next().value!);
    if (n >= MAX_UNVERIFIABLE && !lease.job.hidden) {
      this.unverifiable.delete(lease.job.id);
      await this.deps.finisher.fail(lease.job.id, unverifiableReason(e, n, this.deps.verifyTaskSeconds));
      return err('JOB_CANCELLED', `this shard's job failed: its results cannot be verified; drop this shard`);
    }
    return err('LEASE_EXPIRED', `the coordinator could not verify this result (${e.reason}); the shard was queued again at no cost to you: drop it`);
  }

  private verifierFor(lease: LeaseLookup): ResultVerifier {
    const v = this.deps.verifiers;
    // An inference canary's known answer is the coordinator's own: every one of its samples is recomputed.
    if (lease.job.hidden) return lease.job.type === 'inference' ? v.inference : v.canary;
    if (lease.job.type === 'inference') return lease.job.verification === 'replication' ? v.inferenceReplication : v.inference;
    return lease.job.verification === 'replication' ? v.replication : v.freivalds;
  }

  private async reject(session: Submitter, lease: LeaseLookup, event: 'protocol-violation' | 'rejected' | 'canary-failed', message: string): Promise<void> {
    const { store, log } = this.deps;
    const outcome = await store.rejectResult(lease.token, Date.now(), this.deps.maxShardFailures, message);
    this.deps.metrics.shardsRejected.inc({ job_type: lease.job.type });
    log.warn({ jobId: lease.job.id, shardId: lease.shardId, contributorId: session.contributorId, reason: message }, 'result rejected');
    await this.deps.trust.record(session.contributorId, event, message);
    if (lease.job.hidden) await this.deps.finisher.retireCanary(lease.job.id);
    else if (outcome.jobFailed) await this.deps.finisher.fail(lease.job.id, outcome.jobFailed);
    else this.deps.onRequeued(1);
  }

  private async apply(session: Submitter, lease: LiveLease, tile: Float32Array, verdict: Verdict): Promise<ResultReply> {
    const { store, trust } = this.deps;
    if (verdict.kind === 'reject') {
      await this.reject(session, lease, lease.job.hidden ? 'canary-failed' : 'rejected', verdict.message);
      if (verdict.confirmed) await this.assembleParked(verdict.confirmed, 'confirmed by the coordinator in a dispute');
      return err(verdict.code, REJECTED_MESSAGE);
    }
    if (verdict.kind === 'unrepresentable') {
      // An honest result of a job that cannot be done: the job fails, the sender keeps its standing.
      this.deps.log.warn({ jobId: lease.job.id, shardId: lease.shardId, contributorId: session.contributorId, reason: verdict.message }, 'job cannot be represented in float32');
      if (lease.job.hidden) await this.deps.finisher.retireCanary(lease.job.id);
      else await this.deps.finisher.fail(lease.job.id, verdict.message);
      return err('JOB_CANCELLED', `this shard's job failed: its exact result overflows float32; drop this shard`);
    }
    if (verdict.kind === 'pending') {
      for (const id of verdict.outvoted ?? []) await trust.record(id, 'rejected', `outvoted on ${lease.shardId}`);
      this.deps.onRequeued(1);
      return { ok: true, status: 'pending' };
    }
    const flops = shardFlops({ rows: lease.rows, cols: lease.cols, k: lease.job.k });
    if (!lease.job.hidden) {
      await this.deps.results.writeTile(lease.job.id, lease.job.m, lease.job.n, { row0: lease.row0, col0: lease.col0, rows: lease.rows, cols: lease.cols, data: tile });
    }
    const accepted = await store.acceptResult(lease.token, Date.now(), flops, verdict.agreed ?? []);
    if (!accepted.accepted) {
      if (accepted.reason === 'ALREADY_VERIFIED') return err('LEASE_EXPIRED', `shard ${lease.shardId} was already completed by another contributor`);
      return err('JOB_CANCELLED', `this shard's job is no longer running; drop this shard`);
    }
    this.deps.onVerified(session.sessionId, flops, Date.now() - lease.grantedAt);
    if (!lease.job.hidden) this.deps.metrics.shardsVerified.inc({ job_type: lease.job.type });
    this.deps.log.info(
      { jobId: lease.job.id, shardId: lease.shardId, contributorId: session.contributorId, ms: Date.now() - lease.grantedAt, gflop: flops / 1e9, canary: lease.job.hidden },
      'result verified',
    );
    const work = { flops, jobId: lease.job.id, now: Date.now() };
    if (lease.job.hidden) await trust.record(session.contributorId, 'canary-passed', lease.shardId);
    else await trust.record(session.contributorId, 'verified', lease.shardId, work);
    for (const id of verdict.agreed ?? []) await trust.record(id, 'verified', `replica of ${lease.shardId}`, work);
    for (const id of verdict.outvoted ?? []) await trust.record(id, 'rejected', `outvoted on ${lease.shardId}`);
    if (lease.job.hidden) await this.deps.finisher.retireCanary(lease.job.id);
    else if (accepted.jobVerified) {
      const job = await store.getJob(lease.job.id);
      if (job) await this.deps.finisher.complete(job);
    }
    return { ok: true, status: 'verified' };
  }
  /**
   * Replicated matmul jobs whose requester allowed it (replicaWait): a parked
   * tile that has waited that long for an independent second opinion is
   * assembled on its own Freivalds check, which it passed when it arrived.
   * Returns how many tiles were assembled.
   */
  async settleOverdueReplicas(now: number): Promise<number> {
    let settled = 0;
    for (const p of await this.deps.store.parkedOlderThan(now)) {
      if (await this.assembleParked(p, `Freivalds' check only, after waiting ${Math.round((now - p.createdAt) / 1000)} s for a replica`, 'matmul')) settled++;
    }
    return settled;
  }

  /** Assembles a parked result on its own (its check is `why`); false when it is gone or its shard was settled meanwhile. */
  private async assembleParked(p: PendingResult, why: string, onlyType?: JobType): Promise<boolean> {
    const { store, trust, results, log } = this.deps;
    const lease = await store.findLease(p.token);
    if (!lease || (onlyType && lease.job.type !== onlyType) || lease.shardState === 'verified') return false;
    const tile = await this.deps.blobs.readFloat32(p.sha256).catch(() => undefined);
    if (!tile) return false; // dropped meanwhile (its shard was settled, or its sender banned)
    const now = Date.now();
    await results.writeTile(lease.job.id, lease.job.m, lease.job.n, { row0: lease.row0, col0: lease.col0, rows: lease.rows, cols: lease.cols, data: tile });
    const flops = shardFlops({ rows: lease.rows, cols: lease.cols, k: lease.job.k });
    const accepted = await store.acceptResult(p.token, now, flops);
    if (!accepted.accepted) return false;
    for (const sha of await store.dropPendingResults({ shardId: lease.shardId })) await this.deps.blobs.delete(sha);
    this.deps.metrics.shardsVerified.inc({ job_type: lease.job.type });
    log.info({ jobId: lease.job.id, shardId: lease.shardId, contributorId: p.contributorId, parkedMs: now - p.createdAt, why }, 'parked result assembled');
    await trust.record(p.contributorId, 'verified', `${lease.shardId} (${why})`, { flops, jobId: lease.job.id, now });
    if (accepted.jobVerified) {
      const job = await store.getJob(lease.job.id);
      if (job) await this.deps.finisher.complete(job);
    }
    return true;
  }
}

function unverifiableReason(e: TaskUnavailable, times: number, seconds: number): string {
  if (e.reason === 'timeout') {
    return (
      `verifying this job's results ran past the coordinator's limit of ${seconds} s per check ${times} times, so they cannot be checked here; ` +
      'for an inference job, submit a lighter model (fewer FLOPs per sample) or use verification=replication'
    );
  }
  return `verifying this job's results failed ${times} times (last: ${e.message})`;
}

/**
 * SHA-256 of a returned result, in hex: what tells a re-send of the same bytes from a different
 * result. Web Crypto hashes on libuv's thread pool, so a 16 MiB tile does not hold the event loop
 * for the tens of milliseconds createHash would.
 */
async function resultDigest(c: Uint8Array | ArrayBuffer): Promise<string> {
  const digest = new Uint8Array(await webcrypto.subtle.digest('SHA-256', c));
  return Buffer.from(digest).toString('hex');
}
