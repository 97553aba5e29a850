import { mkdir } from 'node:fs/promises';
import type { TuningCensus } from '../scheduler/tuning-census';
import type { BenchmarkService } from '../benchmarks/benchmark-service';
import { join } from 'node:path';
import { Router, type Response } from 'express';
import { z } from 'zod';
import { InferenceFieldsSchema, JOB_TYPES, ListQuerySchema, SubmitFieldsSchema } from '../../shared/api';
import type { InferenceSpec } from '../../shared/inference-job';
import { acceptInferenceJob, INPUT_FIELD } from '../jobs/inference-intake';
import type { Config } from '../config';
import type { JobFinisher } from '../jobs/job-finisher';
import { tooManyActiveJobs } from '../jobs/job-commit';
import { acceptMatmulJob } from '../jobs/matmul-intake';
import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import type { ResultFiles } from '../storage/result-files';
import type { JobRecord, Store } from '../store/store';
import { apiKeyOf } from './auth';
import { HttpError } from './http-error';
import type { WorkerPool } from '../workers/pool';
import { streamJobEvents, type StreamKey } from './job-events';
import { jobTrustFacts, toJobView } from './job-view';
import { receiveMultipart, type MultipartBody } from './multipart';
import { UploadSlots } from './upload-slots';

export interface JobsRouteDeps {
  config: Config;
  store: Store;
  blobs: BlobStore;
  results: ResultFiles;
  finisher: JobFinisher;
  census: TuningCensus;
  benchmarks: BenchmarkService;
  /** Heavy checks of uploads (an inference model's analysis) run here, off the event loop. */
  workers: WorkerPool;
  log: Logger;
  /** `model`: an inference job's model package, whose holders get the job first. */
  onJobQueued(shards: number, model?: { jobId: string; sha256: string }): void;
  onJobCancelled(jobId: string, revoked: { sessionId: string; shardId: string }[]): void;
  /** Where event streams hear that their key was revoked. */
  revocations: StreamKey['revocations'];
}

const JobIdSchema = z.string().uuid();

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new HttpError(400, 'BAD_REQUEST', `${what}${issue?.path.length ? ` ${issue.path.join('.')}` : ''}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

const ACTIVE = new Set(['queued', 'running']);

export function jobsRouter(deps: JobsRouteDeps): Router {
  const { config, store } = deps;
  const router = Router();
  const uploadDir = join(config.dataDir, 'uploads');
  const uploadSlots = new UploadSlots(config.maxConcurrentUploads);

  const specOf = async (job: JobRecord): Promise<InferenceSpec | undefined> => {
    if (job.type !== 'inference') return undefined;
    const spec = await store.jobSpec(job.id);
    return spec ? (JSON.parse(spec) as InferenceSpec) : undefined;
  };

  /** A job that is not the caller's is reported as missing (404), so job ids do not leak. */
  const loadJob = async (rawId: string, res: Response): Promise<JobRecord> => {
    const id = JobIdSchema.safeParse(rawId);
    const job = id.success ? await store.getJob(id.data) : undefined;
    if (!job || job.hidden || job.owner !== apiKeyOf(res).id) throw new HttpError(404, 'JOB_NOT_FOUND', `no job with id ${JSON.stringify(rawId)}`);
    res.locals.jobId = job.id;
    return job;
  };

  router.post('/jobs', async (req, res) => {
    const key = apiKeyOf(res);
    // Cheap checks before the body is read (the quota is taken again, atomically, when the job is committed).
    // The connection is kept, so Node discards the body unread and a client still sending gets the answer.
    const usage = await store.ownerUsage(key.id);
    if (usage.activeJobs >= key.maxConcurrentJobs) throw tooManyActiveJobs(usage.activeJobs);
    const release = uploadSlots.acquire(key.id);
    // A client leaving mid-upload or while its job is cut stops the intake: a job nobody will hear of is not committed.
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) gone.abort(new HttpError(400, 'UPLOAD_ABORTED', 'the client closed the connection before the job was accepted'));
    });
    let body: MultipartBody;
    try {
      await mkdir(uploadDir, { recursive: true });
      const maxFileBytes = Math.min(config.maxUploadBytes, key.maxUploadBytes);
      body = await receiveMultipart(req, uploadDir, { maxFileBytes, allowedFiles: ['a', 'b', 'model', 'input'], namedFiles: { pattern: INPUT_FIELD, max: 16 }, idleMs: config.uploadIdleMs });
    } catch (err) {
      release();
      if (err instanceof HttpError && (err.status === 413 || err.status === 408)) res.set('Connection', 'close');
      throw err;
    }
    const quota = { maxActiveJobs: key.maxConcurrentJobs, maxStoredBytes: key.maxStoredBytes };
    let accepted: { job: JobRecord; spec?: InferenceSpec; log: Record<string, unknown> };
    try {
      if (body.fields.type === undefined) throw new HttpError(400, 'MISSING_FIELD', `missing form field "type"; one of: ${JOB_TYPES.join(', ')}`);
      if (!(JOB_TYPES as readonly string[]).includes(body.fields.type)) {
        throw new HttpError(400, 'UNKNOWN_JOB_TYPE', `unknown job type ${JSON.stringify(body.fields.type)}; one of: ${JOB_TYPES.join(', ')}`);
      }
      const storage = { used: usage.storedBytes, limit: key.maxStoredBytes };
      if (body.fields.type === 'benchmark') {
        const extra = Object.keys(body.files);
        if (extra.length > 0) throw new HttpError(400, 'UNEXPECTED_FILE', `a benchmark takes no files (got ${extra.map((f) => JSON.stringify(f)).join(', ')}); its inputs are generated from a seed`);
        // A benchmark stores nothing of the requester's: only its job count is limited.
        const job = await deps.benchmarks.accept(body.fields, key.id, { ...quota, maxStoredBytes: Number.POSITIVE_INFINITY });
        accepted = { job, log: { type: 'benchmark', contributors: job.totalShards } };
      } else if (body.fields.type === 'inference') {
        const fields = parseOrThrow(InferenceFieldsSchema, body.fields, 'form field');
        const { job, spec } = await acceptInferenceJob(deps, body.files, { owner: key.id, priority: fields.priority, verification: fields.verification, ...(fields.checks > 0 ? { checks: fields.checks } : {}), storage, quota, signal: gone.signal });
        accepted = { job, spec, log: { type: 'inference', batch: job.m, shards: job.totalShards } };
      } else {
        const stray = Object.keys(body.files).filter((f) => f !== 'a' && f !== 'b');
        if (stray.length > 0) throw new HttpError(400, 'UNEXPECTED_FILE', `unexpected file field "${stray[0]}"; this job takes: a, b`);
        const fields = parseOrThrow(SubmitFieldsSchema, body.fields, 'form field');
        const job = await acceptMatmulJob(deps, body.files, { owner: key.id, priority: fields.priority, verification: fields.verification, replicaWaitMs: fields.replicaWait * 1000, storage, quota, signal: gone.signal });
        accepted = { job, log: { m: job.m, k: job.k, n: job.n, shards: job.totalShards } };
      }
    } finally {
      // Before the answer: a client that sends its next job on hearing back finds its slot free and no file of this one left.
      await body.cleanup();
      release();
    }
    const { job, spec } = accepted;
    res.locals.jobId = job.id;
    deps.log.info({ requestId: res.locals.requestId, jobId: job.id, owner: key.name, ...accepted.log }, 'job accepted');
    deps.onJobQueued(job.totalShards, spec && { jobId: job.id, sha256: spec.model.sha256 });
    res.status(201).location(`/api/v1/jobs/${job.id}`).json(toJobView(job, spec));
  });

  router.get('/jobs', async (req, res) => {
    const q = parseOrThrow(ListQuerySchema, req.query, 'query parameter');
    const jobs = await store.listJobs({ owner: apiKeyOf(res).id, limit: q.limit });
    res.json({ jobs: jobs.map((j) => toJobView(j)) });
  });

  router.get('/jobs/:id', async (req, res) => {
    const job = await loadJob(req.params.id, res);
    res.json(toJobView(job, await specOf(job), await jobTrustFacts(store, job)));
  });

  router.get('/jobs/:id/events', async (req, res) => {
    const job = await loadJob(req.params.id, res);
    await streamJobEvents(req, res, job.id, store, { keyId: apiKeyOf(res).id, revocations: deps.revocations });
  });

  router.get('/jobs/:id/result', async (req, res) => {
    const job = await loadJob(req.params.id, res);
    // A benchmark's result is its report, complete or so far: the runs are small and kept with the job.
    if (job.type === 'benchmark') {
      res.json(await deps.benchmarks.report(job));
      return;
    }
    if (job.status === 'completed' && job.resultDeleted) {
      throw new HttpError(410, 'RESULT_DELETED', `the result of job ${job.id} was deleted (results are kept ${config.resultTtlMs / 3_600_000} hours after completion)`);
    }
    if (job.status !== 'completed') {
      const why = ACTIVE.has(job.status) ? `it is ${job.status} (${job.verifiedShards}/${job.totalShards} tiles verified)` : `it ended ${job.status}${job.reason ? `: ${job.reason}` : ''}`;
      throw new HttpError(409, 'RESULT_NOT_READY', `job ${job.id} has no result: ${why}`);
    }
    const spec = await specOf(job);
    // In networked mode the result may have been assembled on another coordinator: this fetches a local copy.
    const file = await deps.results.localFile(job.id);
    if (!file) throw new HttpError(500, 'RESULT_LOST', `the result of job ${job.id} is missing from storage; resubmit the job`);
    res.type('application/octet-stream');
    // An inference job's result is .npy for one output, .npz (keyed by output name) for several.
    res.attachment(`${job.id}.${spec && spec.outputs.length > 1 ? 'npz' : 'npy'}`);
    await new Promise<void>((resolve, reject) => res.sendFile(file, (err) => (err ? reject(err) : resolve())));
  });

  /** Cancels a queued or running job; on a finished job, deletes its stored result (freeing quota). */
  router.delete('/jobs/:id', async (req, res) => {
    const job = await loadJob(req.params.id, res);
    if (!ACTIVE.has(job.status)) {
      await deps.results.remove(job.id);
      await store.markResultDeleted(job.id);
      res.json(toJobView((await store.getJob(job.id))!));
      return;
    }
    const cancelled = await store.cancelJob(job.id, Date.now(), 'cancelled by the requester');
    if (cancelled) {
      await deps.finisher.discard(job.id);
      deps.onJobCancelled(job.id, cancelled.revoked);
    }
    res.json(toJobView(cancelled?.job ?? job));
  });

  return router;
}
