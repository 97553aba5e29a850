import { existsSync } from 'node:fs';
import { join } from 'node:path';
import express, { type Express } from 'express';
import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import { blobsRouter } from './blobs-routes';
import { contributorsRouter } from './contributors-routes';
import { errorHandler, HttpError } from './http-error';
import { jobsRouter, type JobsRouteDeps } from './jobs-routes';

export interface AppDeps extends JobsRouteDeps {
  blobs: BlobStore;
  log: Logger;
  isReady(): boolean;
  clientDir?: string;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');

  app.get('/healthz', (_req, res) => {
    if (deps.isReady()) res.json({ status: 'ok' });
    else res.status(503).json({ error: { code: 'NOT_READY', message: 'the coordinator is starting' } });
  });

  const api = express.Router();
  api.use(jobsRouter(deps));
  api.use(blobsRouter(deps.blobs));
  api.use(contributorsRouter(deps.store));
  api.use((req, _res, next) => next(new HttpError(404, 'NOT_FOUND', `no route ${req.method} ${req.originalUrl}`)));
  app.use('/api/v1', api);
  app.use('/api', (req, _res, next) => next(new HttpError(404, 'NOT_FOUND', `no route ${req.method} ${req.originalUrl}; the API lives under /api/v1`)));

  if (deps.clientDir && existsSync(deps.clientDir)) {
    app.use(express.static(deps.clientDir, { index: 'index.html', extensions: ['html'] }));
    app.get('/', (_req, res) => res.sendFile(join(deps.clientDir!, 'index.html')));
  }
  app.use((req, _res, next) => next(new HttpError(404, 'NOT_FOUND', `no page ${req.originalUrl}`)));
  app.use(errorHandler(deps.log));
  return app;
}
