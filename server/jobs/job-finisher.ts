import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import type { ResultFiles } from '../storage/result-files';
import type { JobRecord, Store } from '../store/store';
import type { InferenceSpec } from '../../shared/inference-job';
import { inferenceResultPacker } from './inference-result';

/** Ends jobs: assembles or discards their result and frees the input panels nobody else needs. */
export class JobFinisher {
  constructor(
    private readonly store: Store,
    private readonly results: ResultFiles,
    private readonly blobs: BlobStore,
    private readonly log: Logger,
  ) {}

  async complete(job: JobRecord): Promise<void> {
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
   * back to the queue, jobs whose tiles were all verified are finalized, and
   * blobs or temporary files no job refers to are removed.
   */
  async recover(): Promise<void> {
    const released = await this.store.releaseAllActiveLeases(Date.now());
    // Canaries are prepared per process; the old process's unused ones are dropped.
    for (const id of await this.store.activeHiddenJobs()) await this.retireCanary(id);
    const pending = await this.store.jobsAwaitingFinalize();
    for (const job of pending) await this.complete(job);
    const removed = await this.blobs.collectGarbage(await this.store.referencedBlobs());
    this.log.info({ released, finalized: pending.length, blobsRemoved: removed }, 'recovered state');
  }
}
