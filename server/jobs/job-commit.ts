import { sha256Hex } from '../sha256';
import { HttpError } from '../http/http-error';
import type { BlobStore } from '../storage/blob-store';
import type { ResultFiles } from '../storage/result-files';
import { QuotaExceededError, type JobQuota, type NewJob, type Store } from '../store/store';

/**
 * The last step of every upload intake: the job's result file is created and
 * the job recorded, its owner's quota checked in the same transaction; when
 * that fails (quota, the client gone, anything) nothing of the job is left:
 * no result file and none of the blobs it stored that nothing else uses.
 */

export function tooManyActiveJobs(active: number): HttpError {
  return new HttpError(429, 'QUOTA_EXCEEDED', `you have ${active} jobs queued or running, the most this key allows; wait for one to finish or cancel one`);
}

export function storageQuotaExceeded(needed: number, used: number, limit: number): HttpError {
  return new HttpError(413, 'QUOTA_EXCEEDED', `this job needs ${needed} bytes of storage; this key uses ${used} of its ${limit}. Download and DELETE finished jobs to free space`);
}

/** The cheap check before an upload is read (usage then may still change; createJob checks again). */
export function checkStorageQuota(needed: number, storage: { used: number; limit: number } | undefined): void {
  if (storage && storage.used + needed > storage.limit) throw storageQuotaExceeded(needed, storage.used, storage.limit);
}

/**
 * Blobs stored by intakes that have not committed yet, by sha256, and
 * deletions under way. Blobs are shared by content, so a failed intake may
 * delete one only when no committed job refers to it and no other intake is
 * about to: an intake holds a blob from before it writes it until its job
 * commits, and waits for a deletion of the same content to end before writing.
 */
const held = new Map<string, number>();
const deleting = new Map<string, Promise<void>>();

export class IntakeBlobs {
  private readonly mine: string[] = [];

  constructor(private readonly blobs: BlobStore) {}

  async put(bytes: Uint8Array): Promise<{ sha256: string; bytes: number }> {
    // Hashed here as well as in the store: the hold must be in place before the write.
    const sha = sha256Hex(bytes);
    held.set(sha, (held.get(sha) ?? 0) + 1);
    this.mine.push(sha);
    await deleting.get(sha);
    // The store hashes again: let other requests run between the two.
    await new Promise((resolve) => setImmediate(resolve));
    return this.blobs.put(bytes);
  }

  /** Stops holding this intake's blobs (its job committed: the job's panels keep them now). */
  release(): string[] {
    const mine = this.mine.splice(0);
    for (const sha of mine) {
      const n = (held.get(sha) ?? 1) - 1;
      if (n > 0) held.set(sha, n);
      else held.delete(sha);
    }
    return [...new Set(mine)];
  }

  /** The job will not be committed: deletes its blobs that no committed job and no other intake refers to. */
  async discard(store: Store): Promise<void> {
    const candidates = this.release().filter((sha) => !held.has(sha) && !deleting.has(sha));
    if (candidates.length === 0) return;
    // Marked as being deleted before looking at the store, so an intake starting on the same content waits.
    let done: () => void = () => undefined;
    const marker = new Promise<void>((resolve) => (done = resolve));
    for (const sha of candidates) deleting.set(sha, marker);
    try {
      const referenced = await store.referencedBlobs(candidates);
      for (const sha of candidates) if (!referenced.has(sha)) await this.blobs.delete(sha).catch(() => undefined);
    } finally {
      for (const sha of candidates) deleting.delete(sha);
      done();
    }
  }
}

export interface CommitDeps {
  store: Store;
  results: ResultFiles;
}

/**
 * Creates the job's result file and records the job with its quota checked
 * in the committing transaction. `signal`: the request's; a client that left
 * before the commit gets no job (nobody would learn its id).
 */
export async function commitJob(deps: CommitDeps, job: NewJob, intake: IntakeBlobs, opts: { quota?: JobQuota; signal?: AbortSignal }): Promise<void> {
  let resultCreated = false;
  try {
    opts.signal?.throwIfAborted();
    await deps.results.create(job.id, job.m, job.n);
    resultCreated = true;
    opts.signal?.throwIfAborted();
    await deps.store.createJob(opts.quota ? { ...job, quota: opts.quota } : job);
  } catch (err) {
    if (resultCreated) await deps.results.remove(job.id).catch(() => undefined);
    await intake.discard(deps.store);
    if (err instanceof QuotaExceededError) {
      throw err.limit === 'jobs' ? tooManyActiveJobs(err.usage.activeJobs) : storageQuotaExceeded(err.neededBytes, err.usage.storedBytes, err.quota.maxStoredBytes);
    }
    throw err;
  }
  intake.release();
}

/** Runs an intake's work with its blobs held, discarding them if it fails before commitJob. */
export async function withIntakeBlobs<T>(blobs: BlobStore, store: Store, fn: (intake: IntakeBlobs) => Promise<T>): Promise<T> {
  const intake = new IntakeBlobs(blobs);
  try {
    return await fn(intake);
  } catch (err) {
    await intake.discard(store);
    throw err;
  }
}
