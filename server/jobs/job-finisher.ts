import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import type { ResultFiles } from '../storage/result-files';
import type { JobRecord, Store } from '../store/store';
import type { InferenceSpec } from '../../shared/inference-job';
import { inferenceResultPacker } from './inference-result';

/** Who this coordinator is among several sharing one store; absent for a single (embedded) coordinator. */
export interface NodeIdentity {
  nodeId: string;
  /** Prefix of the session ids of this node's contributor connections. */
  sessionPrefix: string;
}

/**
 * How long a claim on assembling a result holds before another node may take
 * it over: far longer than assembling the largest result takes, so only a
 * claim whose node died is taken.
 */
const FINALIZE_CLAIM_STALE_MS = 10 * 60 * 1000;

/** Ends jobs: assembles or discards their result and frees the input panels nobody else needs. */
export class JobFinisher {
  /** Jobs this process is assembling now: the verifying path and the poller must not both do it. */
  private readonly assembling = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly results: ResultFiles,
    private readonly blobs: BlobStore,
    private readonly log: Logger,
    private readonly node?: NodeIdentity,
  ) {}

  /** Assembles a job whose tiles are all verified, and marks it completed; on several nodes, only the node that claims it. */
  async complete(job: JobRecord): Promise<void> {
    if (this.assembling.has(job.id)) return;
    this.assembling.add(job.id);
    try {
      if (!(await this.store.claimFinalize(job.id, this.node?.nodeId ?? 'local', Date.now(), FINALIZE_CLAIM_STALE_MS))) return;
      await this.assemble(job);
    } finally {
      this.assembling.delete(job.id);
    }
  }

  /**
   * Completes jobs whose tiles are all verified but which are still active: the node that
   * verified the last tile died before assembling. Polled by every node when there are several.
   */
  async finalizePending(): Promise<number> {
    const pending = await this.store.jobsAwaitingFinalize();
    for (const job of pending) await this.complete(job);
    return pending.length;
  }

  private async assemble(job: JobRecord): Promise<void> {
    try {
      const spec = job.type === 'inference' ? await this.store.jobSpec(job.id) : undefined;
      await this.results.finalize(job.id, spec ? inferenceResultPacker(JSON.parse(spec) as InferenceSpec) : undefined);
    } catch (err) {
      this.log.error({ err, jobId: job.id }, 'result file missing at completion');
      await this.fail(job.id, 'the assembled result file was lost; resubmit the job');
      return;
    }
    await this.store.finishJob(job.id, 'completed', Date.now());
    await this.releaseInputs(job.id);
    this.log.info({ jobId: job.id, ms: Date.now() - job.createdAt, shards: job.totalShards }, 'job completed');
  }

  async fail(jobId: string, reason: string): Promise<void> {
    await this.store.finishJob(jobId, 'failed', Date.now(), reason);
    await this.results.remove(jobId);
    await this.releaseInputs(jobId);
    this.log.warn({ jobId, reason }, 'job failed');
  }

  /** Deletes results kept longer than the retention time; returns how many. */
  async expireResults(completedBefore: number): Promise<number> {
    const ids = await this.store.resultsToExpire(completedBefore);
    for (const id of ids) {
      await this.results.remove(id);
      await this.store.markResultDeleted(id);
    }
    if (ids.length > 0) this.log.info({ jobs: ids.length }, 'expired results deleted');
    return ids.length;
  }

  /** A canary has served its purpose (answered, or failed): drop it and its blobs. */
  async retireCanary(jobId: string): Promise<void> {
    await this.store.finishJob(jobId, 'completed', Date.now());
    await this.releaseInputs(jobId);
  }

  /** After cancellation has been recorded in the store. */
  async discard(jobId: string): Promise<void> {
    await this.results.remove(jobId);
    await this.releaseInputs(jobId);
  }

  private async releaseInputs(jobId: string): Promise<void> {
    for (const sha of await this.store.releaseJobPanels(jobId)) await this.blobs.delete(sha);
  }

  /**
   * Start-up recovery after a crash: leases held by the old process's sockets go
   * back to the queue (on several nodes, only this node's), jobs whose tiles were
   * all verified are finalized, and blobs or temporary files no job refers to are removed.
   */
  async recover(): Promise<void> {
    const released = await this.store.releaseAllActiveLeases(Date.now(), this.node?.sessionPrefix);
    // Canaries are prepared per process; the old process's unused ones are dropped. Hidden jobs carry
    // no node, so with several nodes they are left alone: another node's pool may be using them.
    if (!this.node) for (const id of await this.store.activeHiddenJobs()) await this.retireCanary(id);
    const finalized = await this.finalizePending();
    const removed = await this.blobs.collectGarbage(await this.store.referencedBlobs());
    this.log.info({ released, finalized, blobsRemoved: removed }, 'recovered state');
  }
}
