import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Router } from 'express';
import { z } from 'zod';
import { JOB_TYPES } from '../../shared/api';
import type { Config } from '../config';
import type { JobFinisher } from '../jobs/job-finisher';
import { acceptMatmulJob } from '../jobs/matmul-intake';
import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import type { ResultFiles } from '../storage/result-files';
import type { Store } from '../store/store';
import { HttpError } from './http-error';
import { toJobView } from './job-view';
import { receiveMultipart } from './multipart';

export interface JobsRouteDeps {
  config: Config;
  store: Store;
  blobs: BlobStore;
  results: ResultFiles;
  finisher: JobFinisher;
  log: Logger;
  onJobQueued(shards: number): void;
  onJobCancelled(revoked: { sessionId: string; shardId: string }[]): void;
}

const JobIdSchema = z.string().uuid();
const VerificationSchema = z.enum(['freivalds', 'replication']).default('freivalds');
const PrioritySchema = z.coerce.number().int().min(-10).max(10).default(0);
const ListQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) });

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new HttpError(400, 'BAD_REQUEST', `${what}${issue?.path.length ? ` ${issue.path.join('.')}` : ''}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

export function jobsRouter(deps: JobsRouteDeps): Router {
  const { config, store } = deps;
  const router = Router();
  const uploadDir = join(config.dataDir, 'uploads');

  const loadJob = async (rawId: string) => {
    const id = JobIdSchema.safeParse(rawId);
    const job = id.success ? await store.getJob(id.data) : undefined;
    if (!job) throw new HttpError(404, 'JOB_NOT_FOUND', `no job with id ${JSON.stringify(rawId)}`);
    return job;
  };

  router.post('/jobs', async (req, res) => {
    await mkdir(uploadDir, { recursive: true });
    const body = await receiveMultipart(req, uploadDir, { maxFileBytes: config.maxUploadBytes, allowedFiles: ['a', 'b'] }).catch((err: unknown) => {
      if (err instanceof HttpError && err.status === 413) res.set('Connection', 'close');
      throw err;
    });
    try {
      const type = body.fields.type;
      if (type === undefined) throw new HttpError(400, 'MISSING_FIELD', `missing form field "type"; one of: ${JOB_TYPES.join(', ')}`);
      if (type !== 'matmul') throw new HttpError(400, 'UNKNOWN_JOB_TYPE', `unknown job type ${JSON.stringify(type)}; one of: ${JOB_TYPES.join(', ')}`);
      const priority = parseOrThrow(PrioritySchema, body.fields.priority, 'form field priority (an integer from -10 to 10)');
      const verification = parseOrThrow(VerificationSchema, body.fields.verification, 'form field verification (freivalds or replication)');
      const job = await acceptMatmulJob(deps, body.files, { owner: null, priority, verification });
      deps.log.info({ jobId: job.id, m: job.m, k: job.k, n: job.n, shards: job.totalShards }, 'job accepted');
      deps.onJobQueued(job.totalShards);
      res.status(201).location(`/api/v1/jobs/${job.id}`).json(toJobView(job));
    } finally {
      await body.cleanup();
    }
  });

  router.get('/jobs', async (req, res) => {
    const q = parseOrThrow(ListQuerySchema, req.query, 'query parameter');
    const jobs = await store.listJobs({ limit: q.limit });
    res.json({ jobs: jobs.map(toJobView) });
  });

  router.get('/jobs/:id', async (req, res) => {
    res.json(toJobView(await loadJob(req.params.id)));
  });

  router.get('/jobs/:id/result', async (req, res) => {
    const job = await loadJob(req.params.id);
    if (job.status !== 'completed') {
      const why = job.status === 'failed' || job.status === 'cancelled' ? `it ended ${job.status}${job.reason ? `: ${job.reason}` : ''}` : `it is ${job.status} (${job.verifiedShards}/${job.totalShards} tiles verified)`;
      throw new HttpError(409, 'RESULT_NOT_READY', `job ${job.id} has no result: ${why}`);
    }
    res.type('application/octet-stream');
    res.attachment(`${job.id}.npy`);
    await new Promise<void>((resolve, reject) => res.sendFile(deps.results.finalPath(job.id), (err) => (err ? reject(err) : resolve())));
  });

  router.delete('/jobs/:id', async (req, res) => {
    const job = await loadJob(req.params.id);
    if (job.status === 'completed' || job.status === 'failed') {
      throw new HttpError(409, 'JOB_FINISHED', `job ${job.id} already ended ${job.status}; nothing to cancel`);
    }
    const cancelled = await store.cancelJob(job.id, Date.now(), 'cancelled by the requester');
    if (cancelled) {
      await deps.finisher.discard(job.id);
      deps.onJobCancelled(cancelled.revoked);
    }
    res.json(toJobView(cancelled?.job ?? job));
  });

  return router;
}
